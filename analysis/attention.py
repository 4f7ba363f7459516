"""Reference attention computed with NumPy (independent of the spiking simulation)."""

import numpy as np


def check_qkv(q, k, v, scale=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Validate a head's queries (Lq x d), keys (L x d) and values (L x d_v); return float arrays
    and the score scale (default 1/sqrt(d)). Raises ValueError with a one-line message."""
    arrays = {}
    for name, a in (("q", q), ("k", k), ("v", v)):
        a = np.asarray(a)
        if a.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (tokens x dims), got shape {a.shape}")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {a.shape})")
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        a = a.astype(float)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
        arrays[name] = a
    q, k, v = arrays["q"], arrays["k"], arrays["v"]
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"q and k must have the same dimension, got q {q.shape} and k {k.shape}")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"k and v must have the same number of tokens, got k {k.shape} and v {v.shape}")
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[1])
    scale = float(np.asarray(scale))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    return q, k, v, scale


def softmax_weights(scores, mask=None) -> np.ndarray:
    """Row-wise softmax of ``scores`` (..., Lq x L), computed stably; ``mask`` (broadcastable, True:
    keep) gives the excluded entries weight 0."""
    scores = np.asarray(scores, dtype=float)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def attention_weights(q, k, scale, causal=False) -> np.ndarray:
    """softmax(scale * q k^T), optionally causal (query s sees keys <= s)."""
    scores = scale * q @ k.T
    return softmax_weights(scores, np.tril(np.ones(scores.shape, dtype=bool)) if causal else None)


def softmax_attention(q, k, v, scale, causal=False) -> np.ndarray:
    """Exact softmax attention softmax(scale * q k^T) v, optionally causal (query s sees keys <= s)."""
    return attention_weights(q, k, scale, causal) @ v


def kernel_attention(phi_q, phi_k, v, numerator_decay=None, denominator_decay=None) -> np.ndarray:
    """Linear attention with feature maps: y_s = sum_t K_st v_t / sum_t K_st, K = phi_q phi_k^T.

    ``numerator_decay`` and ``denominator_decay`` (Lq x L) weight each kernel entry in the
    numerator (Hebbian weights fading) and the denominator (astrocyte calcium fading).
    """
    kernel = phi_q @ phi_k.T
    num = kernel if numerator_decay is None else kernel * numerator_decay
    den = kernel if denominator_decay is None else kernel * denominator_decay
    return (num @ v) / den.sum(axis=1, keepdims=True)


def uniform_attention(v, n_queries, causal=False) -> np.ndarray:
    """The uniform-attention baseline: every query returns the mean of V (causal: of the values
    written so far, query s averaging v_0..v_s)."""
    if causal:
        return np.cumsum(v, axis=0) / np.arange(1, len(v) + 1)[:, None]
    return np.repeat(v.mean(axis=0, keepdims=True), n_queries, axis=0)


def relative_error(estimate, reference) -> float:
    """Relative Frobenius error ||estimate - reference|| / ||reference||."""
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


def synthetic_head(n_tokens, dim, value_dim, norm, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random Q, K (each row of norm ``norm * dim**0.25``, so |q|/d^(1/4) = norm) and V ~ N(0, 1)."""
    def rows(n):
        x = rng.standard_normal((n, dim))
        return norm * dim ** 0.25 * x / np.linalg.norm(x, axis=1, keepdims=True)
    return rows(n_tokens), rows(n_tokens), rng.standard_normal((n_tokens, value_dim))
