"""Spike counting, decoding and the spike-count noise bound of the attention circuits.

Noise model (docs/model.md §4). Three stages of Poisson counts feed the decoded output ŷ; to first
order (delta method) their variances add:

* write: feature neuron j fires n_jt ~ Poisson(lw_tj) spikes while token t is learned, and both
  the Hebbian weights (H = n^T v) and the process calcium (z = sum_t n_t) are built from them;
* read: n_j ~ Poisson(lr_sj) feature spikes during read s, shared by numerator and denominator;
* output: the value populations fire Poisson counts with mean G * y± (G: known gain).

``expected_spike_error`` returns the variance of each output element and the relative Frobenius
error they imply, the bound the spiking output is compared against.
"""

import numpy as np


def window_counts(times, indices, windows, n_neurons, dt) -> np.ndarray:
    """Spike counts (n_windows x n_neurons) of each neuron in each [start, stop) window (seconds).

    Spike times are multiples of the time step ``dt``; comparing them half a step early makes a
    spike at exactly ``start`` count in the window whatever the floating-point rounding.
    """
    times = np.asarray(times, dtype=float) + 0.5 * dt
    indices = np.asarray(indices, dtype=int)
    counts = np.zeros((len(windows), n_neurons), dtype=np.int64)
    for w, (start, stop) in enumerate(windows):
        sel = (times >= start) & (times < stop)
        counts[w] = np.bincount(indices[sel], minlength=n_neurons)
    return counts


def decode_on_off(population_counts, gain) -> np.ndarray:
    """ŷ = (N_on - N_off) / gain from counts of ON/OFF populations (channel 2i: ON, 2i+1: OFF)."""
    population_counts = np.asarray(population_counts, dtype=float)
    return (population_counts[:, 0::2] - population_counts[:, 1::2]) / gain


def expected_spike_error(write_rates, read_rates, values, output_gain, write_noise=True, memory=None) -> dict:
    """Delta-method variance of the decoded output of a kernel attention circuit.

    write_rates: (L x m) expected feature counts per learned token; read_rates: (Lq x m) expected
    feature counts per read; values: (L x d_v); output_gain: expected output count per unit of
    (one polarity of) y. ``write_noise=False`` when write counts are deterministic (regular firing).
    ``memory`` (Lq x L, default all ones) weights token t at read s: 0 for tokens not yet written
    (causal reads). Returns the ideal output ``y`` and its positive/negative parts, the
    per-element variances of each stage, and ``relative_error``: sqrt(sum var) / |y|_F.
    """
    lw = np.asarray(write_rates, dtype=float)
    lr = np.asarray(read_rates, dtype=float)
    v = np.asarray(values, dtype=float)
    memory = np.ones((len(lr), len(lw))) if memory is None else np.asarray(memory, dtype=float)
    kernel = (lr @ lw.T) * memory                        # Lq x L, unnormalised attention weights
    total = kernel.sum(axis=1, keepdims=True)
    y_pos = kernel @ np.maximum(v, 0) / total
    y_neg = kernel @ np.maximum(-v, 0) / total
    y = y_pos - y_neg

    var_output = (y_pos + y_neg) / output_gain

    # Read stage: numerator sum_j H_sji n_j over denominator sum_j z_sj n_j with the same feature
    # counts n_j; to first order the variance is sum_j (H_sji - y_si z_sj)^2 lr_sj / denom_s^2, and
    # H_sji - y_si z_sj = sum_t memory_st lw_tj (v_ti - y_si).
    dev = v[None, :, :] - y[:, None, :]                   # Lq x L x d_v
    resid = np.einsum("st,tj,sti->sji", memory, lw, dev)  # Lq x m x d_v
    denom = np.einsum("st,tj,sj->s", memory, lw, lr)
    var_read = np.einsum("sj,sji->si", lr, resid ** 2) / denom[:, None] ** 2

    # Write stage: sum_t (v_ti - y_si)^2 sum_j lr_sj^2 lw_tj / W_s^2, W_s = sum_t kernel_st
    spread = (lr ** 2 @ lw.T) * memory ** 2               # Lq x L
    var_write = np.einsum("st,sti->si", spread, dev ** 2) / total ** 2 if write_noise else np.zeros_like(y)

    var_total = var_output + var_read + var_write
    norm = np.linalg.norm(y)
    return {
        "y": y, "y_pos": y_pos, "y_neg": y_neg,
        "var_output": var_output, "var_read": var_read, "var_write": var_write,
        "relative_error": float(np.sqrt(var_total.sum()) / norm),
        "relative_error_output": float(np.sqrt(var_output.sum()) / norm),
        "relative_error_read": float(np.sqrt(var_read.sum()) / norm),
        "relative_error_write": float(np.sqrt(var_write.sum()) / norm),
    }


def expected_total_error(y_rate, y_true, bound) -> float:
    """Expected relative error of the spiking output against ``y_true`` when spikes scatter around
    the rate ideal ``y_rate`` with relative rms ``bound``: independent parts add in quadrature,
    sqrt(|y_rate - y_true|^2 + (bound |y_rate|)^2) / |y_true|."""
    rate_part = np.linalg.norm(y_rate - y_true)
    noise_part = bound * np.linalg.norm(y_rate)
    return float(np.hypot(rate_part, noise_part) / np.linalg.norm(y_true))


def error_against_budget(y_spike, y_ideal, variance, against, bound="quantisation_bound") -> dict:
    """A spiking stage's output against its ideal and its noise budget, the one check every stage
    (linear, feed-forward) reports: ``rel_err_spike_vs_<against>`` (relative Frobenius error), the
    budget ``<bound>`` = sqrt(sum var) / |ideal| from independent per-element ``variance``, their
    ratio ``spike_vs_<against>_over_bound`` and its ``bound_tolerance_ratio``
    (:func:`chi_square_tolerance` with n_eff = (sum var)^2 / sum var^2)."""
    variance = np.asarray(variance, dtype=float)
    expected = float(np.sqrt(variance.sum()) / np.linalg.norm(y_ideal))
    measured = float(np.linalg.norm(np.asarray(y_spike) - y_ideal) / np.linalg.norm(y_ideal))
    return {f"rel_err_spike_vs_{against}": measured, bound: expected, f"spike_vs_{against}_over_bound": measured / expected,
            "bound_tolerance_ratio": chi_square_tolerance(variance.sum() ** 2 / np.sum(variance ** 2))}


def tolerance_ratio(noise, n_sigma=4.0) -> float:
    """Largest plausible (measured / expected) relative error under ``expected_spike_error``, with
    the per-element variances taken as independent (n_eff = (sum var)^2 / sum var^2)."""
    var = noise["var_output"] + noise["var_read"] + noise["var_write"]
    return chi_square_tolerance(var.sum() ** 2 / np.sum(var ** 2), n_sigma)


def chi_square_tolerance(n_eff, n_sigma=4.0) -> float:
    """Largest plausible (measured / expected) relative error when the squared error is a sum of
    scaled chi-square(1) terms with ``n_eff`` effective degrees of freedom: its ratio to the
    expectation has standard deviation sqrt(2 / n_eff); allowing ``n_sigma`` of those gives
    sqrt(1 + n_sigma * sqrt(2 / n_eff))."""
    return float(np.sqrt(1 + n_sigma * np.sqrt(2 / n_eff)))


def effective_dof(cov) -> float:
    """Effective degrees of freedom (tr C)^2 / tr(C^2) of a squared error whose elements have
    covariance C."""
    cov = np.asarray(cov, float)
    return float(np.trace(cov) ** 2 / np.sum(cov * cov))


def output_covariance(write_counts, read_counts, values, var_output) -> np.ndarray:
    """Delta-method covariance ((n_queries d_v) x (n_queries d_v), query-major) of a kernel-attention
    circuit's output from Poisson write counts n (L x m), read counts r (n_queries x m) -- used as
    their own means -- and independent output-count variances ``var_output`` (n_queries x d_v);
    the Jacobians are
    written out in ``experiments.paper_common.noise_dof``."""
    n, r = np.asarray(write_counts, float), np.asarray(read_counts, float)
    v = np.asarray(values, float)
    hebb, z = n.T @ v, n.sum(axis=0)
    denom = r @ z
    y = (r @ hebb) / denom[:, None]
    n_q, d_v = y.shape
    # Write stage: columns (t, j) of the Jacobian scaled by the Poisson sd sqrt(n_tj).
    jac_w = np.einsum("sj,sti->sitj", r, v[None, :, :] - y[:, None, :]) / denom[:, None, None, None]
    jac_w = (jac_w * np.sqrt(n)[None, None]).reshape(n_q * d_v, -1)
    cov = jac_w @ jac_w.T
    # Read stage: block-diagonal in the query s.
    for s in range(n_q):
        resid = (hebb - y[s][None, :] * z[:, None]) / denom[s]                                # m x d_v
        cov[s * d_v:(s + 1) * d_v, s * d_v:(s + 1) * d_v] += resid.T @ (r[s][:, None] * resid)
    return cov + np.diag(np.ravel(var_output))
