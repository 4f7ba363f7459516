"""The attention denominator of the exact-kernel heads and the adenosine level that holds it.

Both codes of the exact-kernel head (``circuits.exact_kernel``, rate; ``circuits.exact_latency``,
latency) normalise the same way: the astrocyte's adenosine hyperpolarises every key neuron by theta,
which settles where exp(theta / delta_u) is proportional to sum_t z_t exp(x_q . x_k_t), the
memory-weighted attention denominator (``models.gliotransmission``). Their ideals and read-outs
compute it here, below both.
"""

import numpy as np

from circuits.circuit import memory_weights


def log_denominator(x_keys, x_queries, memory) -> tuple:
    """(scores, log of the memory-weighted attention denominator per query): scores are x_q . x_k
    (0 for keys not yet written, whose afferents are empty); ``memory``: the processes' read
    variable per read and token in units of a just-written process's release per read spike
    (``circuits.exact_kernel.release_per_token``; ``circuits.circuit.memory_weights``)."""
    scores = np.where(memory > 0, x_queries @ x_keys.T, 0.0)
    top = scores.max(axis=1, keepdims=True)
    return scores, top[:, 0] + np.log(np.sum(memory * np.exp(scores - top), axis=1))


def process_memory(params, schedule) -> np.ndarray:
    """The processes' read variable per read and token (the denominator of ``memory_weights``)."""
    return memory_weights(params, schedule.age_at_reads())[1]


def adenosine_level(params, schedule, x_keys, x_queries, neurons_per_key) -> np.ndarray:
    """Rate-model hyperpolarisation theta (V) that the astrocyte's adenosine feedback settles at in
    each read: exp(theta / delta_u) = rho_key * n_key / R_key_target * sum_t memory_t exp(x_q . x_k),
    the attention denominator (``models.gliotransmission``)."""
    _, log_sum = log_denominator(x_keys, x_queries, process_memory(params, schedule))
    gain = float(params["rho_key"]) * neurons_per_key / float(params["R_key_target"])
    return float(params["delta_u"]) * (np.log(gain) + log_sum)
