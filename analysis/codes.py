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
