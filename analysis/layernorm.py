"""LayerNorm by an astrocyte (circuits.layernorm, docs/model.md §13): its NumPy reference, what the
circuit's codes deliver at each step, and its error budget.

The circuit computes, per token, from the delivered input z (L x H):

    mu^ = code(mean_j z_j)                  the interneuron's spike   (top mu_top)
    d_j = z_j - mu^                         the units after the centring spike (exact: accumulators)
    S   = eps + mean_j code(|d_j|)^2        the astrocyte (squares' spikes, top d_top)
    n^_j = code(d_j / sqrt(S))              the output spikes         (top n_top)

each ``code`` the latency code's x_top B^(1/2 - k) (``analysis.codes.latency_decode``). Its error
against LayerNorm, to first order (delta method), has three independent parts per token, with
sigma^2 = eps + mean_j (z_j - mu)^2, gain g = 1/sigma (blocked: the held S^(-1/2)) and o_j = g d_j:

* centring: the interneuron's spike delivers mu (1 + r), r of mean square ``latency_relative_variance``;
  every unit is off by -g delta_mu (the circuit does not centre again): one error shared by all H
  outputs of the token, Cov = g^2 Var(mu^) 1 1^T;
* squares: each code(|d_j|)^2 is d_j^2 (1 + rho_j), rho_j = B^(2s) - 1 (the latency code of base B^2),
  so S is off by delta_S = sum_j d_j^2 rho_j / H, with mean m_rho sum_j d_j^2 / H and variance
  sum_j d_j^4 Var(rho) / H^2; the gain S^(-1/2) by -delta_S / (2 S), shared by the token's outputs in
  proportion to o_j: Cov = E[delta_S^2] / (4 S^2) o o^T (working astrocyte only);
* output: each n^_j within B^(+-1/2) of o_j: ``latency_variance`` (independent).

Inputs carried by a latency code (not replayed trains) add delta_z = sum_k W_k delta_u_k, through
LayerNorm's Jacobian J = g (I - 1 1^T / H - o o^T / H): Cov = J (sum_k W_k diag(var u_k) W_k^T) J^T.
The covariances are rank-one or full per token, so the chi-square tolerance uses the effective
degrees of freedom (tr C)^2 / tr C^2 over the token blocks, not the number of outputs.
"""

import numpy as np

from analysis.codes import latency_decode, latency_level, latency_relative_variance, latency_variance
from analysis.spikes import chi_square_tolerance


def layernorm(z, eps) -> np.ndarray:
    """LayerNorm without gain and bias over the last axis (biased variance, as torch.nn.LayerNorm)."""
    z = np.asarray(z, dtype=float)
    d = z - z.mean(axis=-1, keepdims=True)
    return d / np.sqrt(np.mean(d ** 2, axis=-1, keepdims=True) + eps)


def inverse_sigma(z, eps) -> np.ndarray:
    """1 / sqrt(eps + mean_j (z_j - mu)^2) per token (row of ``z``): LayerNorm's gain."""
    z = np.asarray(z, dtype=float)
    return 1.0 / np.sqrt(np.var(z, axis=-1) + eps)


def delivered(z, eps, mu_top, d_top, n_top, base, levels, held=None) -> dict:
    """What the circuit computes from the delivered input ``z`` (tokens x H), each value as its
    neurons' latency code delivers it (see the module docstring): ``mu`` (exact mean), ``mu_hat``
    (the interneuron's spike), ``d`` (the units after centring), ``d_hat`` (what the square neurons
    carry, signed), ``signal`` (the astrocyte's S per token), ``gain`` (S^(-1/2), or with ``held`` the
    blocked astrocyte's held^(-1/2)) and ``n`` (what the output spikes carry)."""
    z = np.asarray(z, dtype=float)
    mu = z.mean(axis=1)
    mu_hat = latency_decode(mu, mu_top, base, levels)
    d = z - mu_hat[:, None]
    d_hat = latency_decode(d, d_top, base, levels)
    signal = eps + np.mean(d_hat ** 2, axis=1)
    divisor = signal if held is None else np.full(len(z), float(held))
    gain = 1.0 / np.sqrt(divisor)
    return {"mu": mu, "mu_hat": mu_hat, "d": d, "d_hat": d_hat, "signal": signal, "gain": gain,
            "n": latency_decode(d * gain[:, None], n_top, base, levels)}


def squared_code_moments(x, x_top, base, levels) -> tuple:
    """Mean and variance of rho = code(|x|)^2 / x^2 - 1 for latency-coded ``x`` (the value's position
    within its level uniform): the code of x^2 with base B^2, mean (B - 1/B) / (2 ln B) - 1 and mean
    square ``latency_relative_variance(B^2)``; rho = -1 exactly (variance 0) below the lowest level."""
    x = np.asarray(x, dtype=float)
    ln_b = np.log(base)
    mean = (base - 1 / base) / (2 * ln_b) - 1
    fired = latency_level(x, x_top, base) < levels
    return (np.where(fired, mean, -1.0),
            np.where(fired, latency_relative_variance(base ** 2) - mean ** 2, 0.0))


def layernorm_budget(z, eps, mu_top, d_top, n_top, base, levels, held=None, inputs=()) -> dict:
    """Delta-method error budget of the circuit's output about its rate ideal (see the module
    docstring). ``z``: the delivered input (tokens x H); ``held``: the blocked astrocyte's S (None:
    working); ``inputs``: pairs (var_u, W) of latency-coded sources (var_u tokens x D, W H x D) whose
    quantisation to propagate (``var_input``; not part of ``variance``).

    Returns ``n_rate`` (the circuit without quantisation: LayerNorm, or blocked (z - mu) held^(-1/2)),
    ``gain_rate`` per token, the per-output variances ``var_centre``, ``var_square``, ``var_output``
    (their sum ``variance``) and ``var_input``, ``dof`` and ``dof_with_input`` (effective degrees of
    freedom of the squared error, (tr C)^2 / tr C^2 summed over token blocks), the tolerances
    ``tolerance`` and ``tolerance_with_input`` (``analysis.spikes.chi_square_tolerance``), and
    ``log_gain_rms``: the expected rms of ln(S^(-1/2) sigma) over tokens (working astrocyte)."""
    z = np.asarray(z, dtype=float)
    n_tokens, n_units = z.shape
    mu = z.mean(axis=1)
    d = z - mu[:, None]
    signal = eps + np.mean(d ** 2, axis=1)
    gain = 1.0 / np.sqrt(signal if held is None else np.full(n_tokens, float(held)))
    out = d * gain[:, None]
    var_mu = latency_variance(mu, mu_top, base, levels)
    var_output = latency_variance(out, n_top, base, levels)
    if held is None:
        rho_mean, rho_var = squared_code_moments(d, d_top, base, levels)
        shift = np.sum(d ** 2 * rho_mean, axis=1) / n_units
        square = (np.sum(d ** 4 * rho_var, axis=1) / n_units ** 2 + shift ** 2) / (4 * signal ** 2)
    else:
        square = np.zeros(n_tokens)
    ones = np.ones(n_units)
    traces, squares, traces_in, squares_in = 0.0, 0.0, 0.0, 0.0
    var_input = np.zeros_like(z)
    for t in range(n_tokens):
        cov = (gain[t] ** 2 * var_mu[t] * np.outer(ones, ones) + square[t] * np.outer(out[t], out[t])
               + np.diag(var_output[t]))
        traces, squares = traces + np.trace(cov), squares + np.sum(cov ** 2)
        if inputs:
            cov_z = sum((w * np.asarray(v, dtype=float)[t]) @ w.T for v, w in inputs)
            scale = out[t] if held is None else np.zeros(n_units)
            jac = gain[t] * (np.eye(n_units) - 1.0 / n_units - np.outer(scale, scale) / n_units)
            cov_in = jac @ cov_z @ jac.T
            var_input[t] = np.diag(cov_in)
            cov = cov + cov_in
        traces_in, squares_in = traces_in + np.trace(cov), squares_in + np.sum(cov ** 2)
    var_centre = np.outer(gain ** 2 * var_mu, ones)
    var_square = square[:, None] * out ** 2
    dof, dof_in = traces ** 2 / squares, traces_in ** 2 / squares_in
    return {"n_rate": out, "gain_rate": gain, "var_centre": var_centre, "var_square": var_square,
            "var_output": var_output, "variance": var_centre + var_square + var_output, "var_input": var_input,
            "dof": float(dof), "dof_with_input": float(dof_in), "tolerance": chi_square_tolerance(dof),
            "tolerance_with_input": chi_square_tolerance(dof_in),
            "log_gain_rms": float(np.sqrt(np.mean(square))) if held is None else 0.0}


def relative_error(measured, ideal) -> float:
    """|measured - ideal|_F / |ideal|_F."""
    ideal = np.asarray(ideal, dtype=float)
    return float(np.linalg.norm(np.asarray(measured, dtype=float) - ideal) / np.linalg.norm(ideal))
