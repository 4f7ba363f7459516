"""What a code delivers: the value a downstream synapse receives for an input value, and its error budget.

A stage's input values x reach its synapses through encoders (``models.encoders``, docs/model.md
§11). Each code here has its NumPy reference (the value delivered) and its variance (the budget the
circuits' errors are checked against); a linear map W propagates independent variances as
``var @ (W ** 2).T``.

* Rate code, regular encoders: a window of T at rate g|x| started at a uniformly random phase counts
  floor(gT|x|) or floor(gT|x|) + 1 spikes; the delivered value errs with variance
  f (1 - f) / (gT)^2, f = frac(gT|x|). About 1/eps spikes for a relative error eps.
* Latency code: one spike per value, at the first step k at which |x| B^k >= x_top, delivered as
  x_top B^(1/2 - k): |x| within a factor B^(+-1/2). Taking the value's position between two levels
  as uniform, the relative error r = B^s - 1 (s uniform in [-1/2, 1/2)) has mean square
  :func:`latency_relative_variance`, (ln B)^2 / 12 to first order. Values below the lowest level
  (k beyond the window's ``levels`` steps) deliver nothing: their whole value is the error.
"""

import numpy as np


def count_variance(x, gain, t_count) -> np.ndarray:
    """Variance of the decoded ``|x|`` of a regular encoder started at a uniformly random phase:
    ``f (1 - f) / (gain t_count)^2``, ``f = frac(gain t_count |x|)``."""
    expected = gain * t_count * np.abs(np.asarray(x, dtype=float))
    frac = expected - np.floor(expected)
    return frac * (1 - frac) / (gain * t_count) ** 2


def latency_level(x, x_top, base) -> np.ndarray:
    """The step k (0, 1, ...) at which a latency encoder of ``|x|`` fires: the first with
    |x| B^k >= x_top; a large number for x = 0 (never)."""
    a = np.abs(np.asarray(x, dtype=float))
    with np.errstate(divide="ignore"):
        k = np.ceil(np.log(x_top / a) / np.log(base) - 1e-12)
    return np.where(a > 0, np.maximum(k, 0), np.iinfo(np.int32).max)


def latency_decode(x, x_top, base, levels) -> np.ndarray:
    """The signed value a latency-coded ``x`` delivers: sign(x) x_top B^(1/2 - k) for levels
    k < ``levels``, 0 below the lowest level."""
    x = np.asarray(x, dtype=float)
    k = latency_level(x, x_top, base)
    fired = k < levels
    return np.where(fired, np.sign(x) * x_top * base ** (0.5 - np.where(fired, k, 0)), 0.0)


def latency_relative_variance(base) -> float:
    """Mean square of B^s - 1 for s uniform in [-1/2, 1/2): the latency code's relative error
    variance for a value between two levels (exactly; (ln B)^2 / 12 to first order)."""
    ln_b = np.log(base)
    return float((base - 1 / base) / (2 * ln_b) - 2 * (np.sqrt(base) - 1 / np.sqrt(base)) / ln_b + 1)


def latency_variance(x, x_top, base, levels) -> np.ndarray:
    """Expected squared error of each latency-coded value: x^2 times
    :func:`latency_relative_variance` where it fires, x^2 where it is below the lowest level."""
    x = np.asarray(x, dtype=float)
    fired = latency_level(x, x_top, base) < levels
    return x ** 2 * np.where(fired, latency_relative_variance(base), 1.0)


def latency_top(x, base) -> float:
    """The top of a latency code's range for inputs ``x``: max |x| sqrt(B), so the largest value
    sits in the middle of its level and is delivered exactly."""
    return float(np.abs(np.asarray(x, dtype=float)).max() * np.sqrt(base))


# ------------------------------------------------------ the one-spike key code (log-domain latency)

def key_efficacy(scores, score_top, base, levels) -> np.ndarray:
    """What one-spike keys deliver (circuits.exact_latency, ``key_code="latency"``): a key of score
    u (nats) ramps from u by ln B per step and fires at the first step k with u + k ln B >= score_top,
    k = max(ceil((score_top - u) / ln B), 0); its efficacy B^(1/2 - k) is exp(u - score_top) within
    B^(+-1/2) (the latency code of x = e^u with top e^score_top, in the log domain). Keys above
    score_top clip (k = 0); keys that need k >= ``levels`` never fire (0)."""
    steps = (score_top - np.asarray(scores, dtype=float)) / np.log(base)
    k = np.maximum(np.ceil(steps - 1e-12), 0)
    fired = k < levels
    return np.where(fired, base ** (0.5 - np.where(fired, k, 0)), 0.0)


def key_efficacy_variance(scores, score_top, base, levels) -> np.ndarray:
    """Expected squared relative error of each one-spike key's weight, e / exp(u - score_top) - 1
    (:func:`key_efficacy`): :func:`latency_relative_variance` inside the window (a score's position
    within its step taken as uniform); the clipping's own squared error above the top (known, not
    random: the key fires at step 0 however far above it lies); 1 below the window (the key is
    missing)."""
    u = np.asarray(scores, dtype=float)
    steps = (score_top - u) / np.log(base)
    clipped = steps <= -1
    missing = np.ceil(steps - 1e-12) >= levels
    clip_error = (np.sqrt(base) * np.exp(np.minimum(score_top - u, 0.0)) - 1) ** 2
    return np.where(missing, 1.0, np.where(clipped, clip_error, latency_relative_variance(base)))


# ------------------------------------------------------ the latency-coded attention head's budget

def leaky_regular_count(rate, tau):
    """Mean and variance of a regular spike train's exponentially filtered count at a time T,
    sum_k exp(-(T - s_k) / tau), for a train of ``rate`` (spikes s_k every P = 1/rate, a uniformly
    random phase, started long before T). With m = rate tau: the mean is m and the variance
    (m / 2) coth(1 / (2 m)) - m^2, which is 1/12 - 1/(720 m^2) + ... for m >> 1 (the filter smooths
    the count's floor/ceil step; a counted window would give f (1 - f), 1/6 on average) and m / 2
    for m << 1 (a rare spike, either just before T or long gone). Returns (mean, variance)."""
    m = np.asarray(rate, dtype=float) * float(tau)
    safe = np.maximum(m, 1e-300)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        exact = safe / 2 / np.tanh(1 / (2 * safe)) - safe ** 2
        series = 1 / 12 - 1 / (720 * safe ** 2)
    var = np.where(m > 10, series, np.where(m > 0, exact, 0.0))
    return m, np.maximum(var, 0.0)


def latency_attention_error(x_queries, x_keys, values, numerator, denominator, key_counts, key_count_variance,
                            var_queries, var_keys, var_values, var_output, count_scale=None) -> dict:
    """Delta-method error budget of the latency-coded exact-kernel head (circuits.exact_latency), the
    counterpart of ``analysis.spikes.expected_spike_error`` for the rate head.

    The head computes y_s = sum_t numerator_st e^(u_st) v_t / sum_t denominator_st e^(u_st) with
    u_st = x_q_s . x_k_t, each factor delivered by a code, and the ratio carried by key spike counts:

    * scores (``var_queries``: Lq x d, ``var_keys``: L x d, the squared errors of each delivered
      component, ``latency_variance``): delta u_st = sum_j (x_q_sj e^k_tj + x_k_tj e^q_sj + e^q_sj e^k_tj),
      through G_sti = d y_si / d u_st = K_st (numerator_st v_ti - denominator_st y_si) / D_s
      (K_st = e^(u_st), D_s = sum_t denominator_st K_st). A query's errors are shared by all its
      keys (the sum over t is inside the square), a key's by all its queries (counted per query);
    * values (``var_values``: L x d_v, the teacher's code): d y_si / d v_ti = numerator_st K_st / D_s;
    * key counts (``key_counts``, ``key_count_variance``: Lq x L, each key's filtered count at the
      end of the read and its variance, :func:`leaky_regular_count`): y is their ratio,
      d y_si / d n_st = (numerator_st v_ti - denominator_st y_si) / sum_t denominator_st n_st;
    * output (``var_output``: Lq x d_v, the value neurons' latency code).

    ``count_scale`` (blocked astrocyte): the read is the unnormalised sum
    y_s = sum_t numerator_st n_st v_t / count_scale, with n_st = key_counts; its score and count
    terms follow from that (no ratio). Independent terms add. Returns the ideal ``y`` and the
    variances per element: ``var_write`` (scores and values: what the codes wrote and showed),
    ``var_read`` (key counts), ``var_output``, their parts ``var_score`` and ``var_value``, and the
    relative errors sqrt(sum var) / |y|_F of each and of all (``relative_error``)."""
    xq, xk, v = (np.asarray(a, dtype=float) for a in (x_queries, x_keys, values))
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    counts, count_var = np.asarray(key_counts, dtype=float), np.asarray(key_count_variance, dtype=float)
    scores = xq @ xk.T
    if count_scale is None:
        written = den > 0
        top = np.where(written, scores, -np.inf).max(axis=1, keepdims=True)
        kernel = np.where(written, np.exp(scores - top), 0.0)
        total = np.sum(den * kernel, axis=1, keepdims=True)
        y = (num * kernel) @ v / total
        resid = num[:, :, None] * v[None, :, :] - den[:, :, None] * y[:, None, :]          # Lq x L x d_v
        gradient = kernel[:, :, None] * resid / total[:, :, None]                          # d y / d u
        value_gradient = num * kernel / total
        count_gradient = resid / np.sum(den * counts, axis=1)[:, None, None]
    else:
        y = (num * counts) @ v / count_scale
        gradient = (num * counts)[:, :, None] * v[None, :, :] / count_scale
        value_gradient = num * counts / count_scale
        count_gradient = np.broadcast_to(num[:, :, None] * v[None, :, :] / count_scale, gradient.shape)
    vq, vk = np.asarray(var_queries, dtype=float), np.asarray(var_keys, dtype=float)
    shared_query = np.einsum("sti,tj->sij", gradient, xk) ** 2                             # Lq x d_v x d
    var_score = (np.einsum("sij,sj->si", shared_query, vq)
                 + np.einsum("sti,sj,tj->si", gradient ** 2, xq ** 2, vk)
                 + np.einsum("sti,sj,tj->si", gradient ** 2, vq, vk))
    var_value = value_gradient ** 2 @ np.asarray(var_values, dtype=float)
    var_read = np.einsum("st,sti->si", count_var, count_gradient ** 2)
    var_output = np.asarray(var_output, dtype=float)
    var_write = var_score + var_value
    norm = np.linalg.norm(y)
    parts = {"output": var_output, "read": var_read, "write": var_write, "score": var_score, "value": var_value}
    return {"y": y, **{f"var_{name}": var for name, var in parts.items()},
            "relative_error": float(np.sqrt((var_output + var_read + var_write).sum()) / norm),
            **{f"relative_error_{name}": float(np.sqrt(var.sum()) / norm) for name, var in parts.items()}}
