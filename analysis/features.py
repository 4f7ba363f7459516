"""Positive random features for the softmax kernel (Choromanski et al. 2021, docs/model.md §3)."""

import numpy as np

from analysis.attention import kernel_attention


def draw_feature_weights(n_features: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Random projection W (n_features x dim), rows w_r ~ N(0, I_d)."""
    return rng.standard_normal((n_features, dim))


def positive_features(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """phi_r(x) = exp(w_r^T x - |x|^2/2) / sqrt(m): E[phi(x)^T phi(y)] = exp(x^T y)."""
    x = np.atleast_2d(x)
    sq = 0.5 * np.sum(x ** 2, axis=1, keepdims=True)
    return np.exp(x @ weights.T - sq) / np.sqrt(weights.shape[0])


def performer_attention(q, k, v, scale, weights) -> np.ndarray:
    """Linear attention with positive random features (Performer): the random-feature estimate of
    softmax(scale q k^T) v with feature weights ``weights`` (m x d)."""
    x_q, x_k = np.sqrt(scale) * q, np.sqrt(scale) * k
    return kernel_attention(positive_features(x_q, weights), positive_features(x_k, weights), v)


def performer_relative_error(x: np.ndarray, y: np.ndarray, n_features: int) -> np.ndarray:
    """Relative standard error of one kernel entry: sqrt((exp(|x+y|^2) - 1) / m)."""
    return np.sqrt((np.exp(np.sum((x + y) ** 2, axis=-1)) - 1.0) / n_features)
