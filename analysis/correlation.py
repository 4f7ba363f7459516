"""Correlation coefficients in NumPy: Pearson's r and Spearman's rank correlation with average ranks for ties.

Spearman's rho is Pearson's r of the ranks, tied values sharing the mean of the ranks they span
(as ``scipy.stats.spearmanr`` and the STS/SICK evaluations compute it). A constant input has no
defined correlation: NaN.
"""

import numpy as np


def _paired(x, y) -> tuple:
    """Two 1-D float arrays of one length (at least 2), finite; ValueError with one line otherwise."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"need two 1-D arrays of one length, got shapes {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError(f"need at least 2 pairs, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("the values contain NaN or inf")
    return x, y


def average_ranks(x) -> np.ndarray:
    """Ranks 1..n of ``x`` (1-D), tied values sharing the mean of the ranks they span:
    ``average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]``."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"need a 1-D array, got shape {x.shape}")
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Runs of equal values in sorted order: run r spans sorted positions [start_r, end_r).
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    mean_rank = (starts + ends + 1) / 2.0          # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def pearson(x, y) -> float:
    """Pearson's correlation coefficient of paired values (NaN if either is constant)."""
    x, y = _paired(x, y)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    if denominator == 0:
        return float("nan")
    return float(np.clip(np.sum(dx * dy) / denominator, -1.0, 1.0))


def spearman(x, y) -> float:
    """Spearman's rank correlation of paired values: Pearson's r of their average ranks (ties
    share the mean rank; NaN if either is constant)."""
    x, y = _paired(x, y)
    return pearson(average_ranks(x), average_ranks(y))
