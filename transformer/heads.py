"""A real head of all-MiniLM-L6-v2 on the exact circuit: its q/k/v and the attention map its key
neurons' spikes measure.

:func:`real_qkv` takes one head's q, k, v and scale from the NumPy reference pass
(``transformer.forward.attention_qkv``) after checking the text against :data:`MAX_TOKENS`, the
longest input the circuits here take. :func:`measured_attention` reads the attention weights from
the exact circuit's key populations (one per token): their spike counts in each read window,
normalised over tokens. :func:`attention_map_metrics` sets the measured map against the true
softmax map and the astrocyte's normaliser against the attention denominator
(``circuits.exact_kernel.astrocyte_normaliser``, docs/model.md §3).
"""

import numpy as np

from analysis.attention import attention_weights, relative_error
from circuits.exact_kernel import astrocyte_normaliser, token_counts
from circuits.exact_latency import key_efficacies, one_spike_normaliser
from circuits.normaliser import process_memory
from circuits.head import HeadResult

#: The most tokens ([CLS] and [SEP] included) of a text the circuits here take: the longest inputs
#: all-MiniLM-L6-v2 was trained on (128 word pieces), the largest length bucket
#: (``circuits.protocol.BUCKETS``).
MAX_TOKENS = 128


#: What the heads' results must carry in full for the attention maps (:func:`attention_map_metrics`):
#: the key neurons' spikes, the astrocyte's adenosine trace (regular keys) or its read signal
#: (one-spike keys); every other spike train stays in the worker.
KEEP_FOR_MAPS = ("key_neurons", "adenosine_monitor", "read_signal_monitor")

def real_qkv(text: str, layer: int, head: int) -> dict:
    """q, k, v, scale and tokens of one head of all-MiniLM-L6-v2 on a text.

    Parameters
    ----------
    text : str
        The input, at most :data:`MAX_TOKENS` tokens with [CLS] and [SEP].
    layer : int
        The layer, 0-5.
    head : int
        The head, 0-11.

    Returns
    -------
    dict
        ``tokens``, ``q``, ``k``, ``v`` and ``scale``, as ``transformer.forward.attention_qkv``.

    Raises
    ------
    ValueError
        With one line for an empty or too long text or a layer or head out of range
        (``transformer.minilm.MiniLMUnavailable``, a RuntimeError, without the model).
    """
    from transformer.forward import attention_qkv
    from transformer.minilm import tokenize

    if not text.strip():
        raise ValueError("--text is empty")
    n_tokens = len(tokenize(text)[0])
    if n_tokens > MAX_TOKENS:
        raise ValueError(f"--text has {n_tokens} tokens; the circuits here take at most {MAX_TOKENS}")
    return attention_qkv(text, layer, head)


def one_spike_keys(circuit) -> bool:
    """Whether an exact circuit's keys fire one spike per read (``key_code="latency"``)."""
    return circuit.config.get("key_code", "regular") == "latency"


def measured_attention(result: HeadResult) -> np.ndarray | None:
    """Attention weights measured from the key populations' spike counts in each read window
    (exact circuit), or with one-spike keys from what each key's spike carried times its process's
    memory (``circuits.exact_latency.key_efficacies``); None for circuits without per-token neurons."""
    circuit = result.circuit
    if circuit.kind != "exact":
        return None
    if one_spike_keys(circuit):                      # real queries x real tokens, padded or not
        per_token = key_efficacies(circuit) * process_memory(circuit.params, circuit.schedule)
        return per_token / np.where(per_token.sum(axis=1, keepdims=True) > 0, per_token.sum(axis=1, keepdims=True), 1)
    per_token = token_counts(circuit)
    return per_token / np.maximum(per_token.sum(axis=1, keepdims=True), 1)


def attention_map_metrics(result: HeadResult) -> dict:
    """A head's true attention map against the one its spikes measured, and its normaliser.

    Parameters
    ----------
    result : circuits.head.HeadResult
        A run head (exact circuit for the measured map and the normaliser).

    Returns
    -------
    dict
        ``true_map`` (softmax(scale q k^T), Lq x L); ``spike_map`` (:func:`measured_attention`,
        None for the random circuit); ``normaliser`` (exact circuit: the astrocyte's signal per
        query against the attention denominator, ``circuits.exact_kernel.astrocyte_normaliser``;
        else None); ``metrics``: ``max_attention_weight_mean`` and for the exact circuit
        ``rel_err_attention_map``, ``normaliser_log_error`` and ``denominator_log_spread``.
    """
    spec = result.spec
    true_map = attention_weights(spec.q, spec.k, spec.scale)
    spike_map = measured_attention(result)
    metrics = {"max_attention_weight_mean": float(true_map.max(axis=1).mean())}
    normaliser = None
    if spike_map is not None:
        metrics["rel_err_attention_map"] = relative_error(spike_map, true_map)
        normaliser = (one_spike_normaliser if one_spike_keys(result.circuit) else astrocyte_normaliser)(result.circuit)
        metrics.update(normaliser_log_error=normaliser["log_error"], denominator_log_spread=normaliser["log_spread"])
    return {"true_map": true_map, "spike_map": spike_map, "normaliser": normaliser, "metrics": metrics}
