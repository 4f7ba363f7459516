"""Exact-kernel key-query-value tripartite circuit: one key population per stored token.

Random features approximate peaky, real attention heads badly (docs/model.md §3), so this circuit
stores every token in its own key neurons and computes exp(scale q.k_t) directly:

    key/query encoders --written k_t--> key neurons (token t) ==Hebbian, tripartite==> value neurons
                                            |     ^ global adaptive inhibition          ^
                                            +-- astrocyte processes -> astrocyte -------+ 1/A

Write phase, token t: its key population is recruited and fires regularly at ``rho_recruit``; the
encoder->key afferents learn k_t with a two-phase contrastive Hebbian rule (``models.synapses``);
the key->value tripartite synapses learn v_t (Hebbian) and the processes integrate the key spikes
(z_t, the same for every token). Read phase, query s: key neurons of token t fire at
rho_key * exp(x_q . x_k - theta / delta_u) with x = sqrt(scale) * (q or k); the global inhibition
theta keeps the population's total rate at ``R_key_target``. Value neuron i fires at
rho_value * sum_t w_ti n_t / sum_t Ca_t n_t: softmax attention up to spike noise.
"""

import numpy as np
from brian2 import Network, linked_var

from analysis.attention import check_qkv, kernel_attention
from analysis.spikes import expected_spike_error
from circuits import blocks, circuit_parameters
from circuits.circuit import AttentionCircuit, memory_weights
from circuits.seeds import seed_streams
from circuits.protocol import TABLE_BIN, Schedule
from models.encoders import polarity_sign
from models.neurons import (GLOBAL_INHIBITION_EQS, GLOBAL_INHIBITION_ON_PRE, KEY_NEURON_EQS,
                            KEY_NEURON_RESET, KEY_NEURON_THRESHOLD)
from models.parameters import ParameterError, ParameterSet
from models.synapses import (AFFERENT_SYNAPSE_MODEL, AFFERENT_SYNAPSE_ON_PRE, TRIPARTITE_SYNAPSE_MODEL,
                             TRIPARTITE_SYNAPSE_ON_PRE)


def afferent_learning_rate(params, encoders_per_dim):
    """eta_key such that a fully written afferent weight, summed over ON/OFF encoders, gives the
    drive delta_u * x_q . x_k: eta_key = delta_u / (n_enc * g^2 * (t_learn/2) * tau_syn)."""
    g = params["key_enc_gain"]
    return params["delta_u"] / (encoders_per_dim * g ** 2 * (params["t_learn"] / 2) * params["tau_syn"])


def build_exact_kernel_circuit(q, k, v, *, scale=None, neurons_per_key=16, neurons_per_value=32,
                               encoders_per_dim=4, astrocyte="minimal", encoder="regular",
                               block_astrocyte=False, preload=False, causal=False, params=None,
                               seed=0, spike_seed=None) -> AttentionCircuit:
    """Build the exact-kernel circuit for one head (see the module docstring).

    ``preload`` sets the afferent weights to k_t directly instead of writing them with spikes
    (isolates the read phase's error). Other arguments (``causal`` included) as in
    ``build_random_feature_circuit``.
    """
    q, k, v, scale = check_qkv(q, k, v, scale)
    blocks.check_options(astrocyte, encoder, neurons_per_key=neurons_per_key,
                         neurons_per_value=neurons_per_value, encoders_per_dim=encoders_per_dim)
    if not isinstance(params, ParameterSet):
        params = circuit_parameters("exact", astrocyte, params)
    schedule = Schedule.from_params(len(k), len(q), params, causal)
    half = float(params["t_learn"] / TABLE_BIN) / 2
    if half != int(half):
        raise ParameterError(f"t_learn must be an even number of {TABLE_BIN} for the two learning phases")
    streams = seed_streams(seed, spike_seed)
    phases = streams.phases
    x_keys, x_queries = np.sqrt(scale) * k, np.sqrt(scale) * q
    n_tokens, dim, value_dim = len(k), q.shape[1], v.shape[1]

    # The key encoders show k_t, then its mirror -k_t, while token t is learned; then the queries.
    contrast = schedule.contrast()
    x_rows = np.concatenate([x_keys, x_queries])[schedule.input_rows()]
    x_rows = np.where(contrast[:, None] < 0, -x_rows, x_rows)
    namespace, value_namespace = blocks.input_namespace(params, schedule, x_rows, v)
    namespace.update(recruit_table=blocks.table(schedule.recruitment(), "recruit_table"),
                     contrast=blocks.table(contrast, "contrast_table"))

    key_encoders = blocks.encoder_population(2 * dim, encoders_per_dim, encoder, params, namespace, phases,
                                             "key_encoders")
    value_encoders = blocks.encoder_population(2 * value_dim, encoders_per_dim, encoder, params, value_namespace,
                                               phases, "value_encoders")
    keys = blocks.neuron_group(n_tokens * neurons_per_key, KEY_NEURON_EQS, params, namespace, "key_neurons",
                               threshold=KEY_NEURON_THRESHOLD, reset=KEY_NEURON_RESET, method="euler")
    keys.v = params["v_rest"]
    keys.token = np.arange(len(keys)) // neurons_per_key
    # Random pacing phases: the population samples the value neurons' depolarisation at many phases.
    keys.phase = phases.uniform(0, 1, size=len(keys))
    inhibition = blocks.neuron_group(1, GLOBAL_INHIBITION_EQS, params, namespace, "global_inhibition",
                                     method="euler")
    keys.theta = linked_var(inhibition, "theta", index=np.zeros(len(keys), dtype=int))
    inhibition_synapses = blocks.synapses(keys, inhibition, None, params, namespace, "inhibition_synapses", {},
                                          on_pre=GLOBAL_INHIBITION_ON_PRE)

    pre, post = np.meshgrid(np.arange(len(key_encoders)), np.arange(len(keys)), indexing="ij")
    afferents = blocks.synapses(key_encoders, keys, AFFERENT_SYNAPSE_MODEL, params, namespace,
                                "afferent_synapses", {"i": pre.ravel(), "j": post.ravel()},
                                on_pre=AFFERENT_SYNAPSE_ON_PRE,
                                # Preloaded weights are final: the write phase must not add to them.
                                extra={"eta_key": (0 if preload else 1) * afferent_learning_rate(params, encoders_per_dim)})
    if preload:
        afferents.w_aff = preloaded_afferents(x_keys, pre.ravel(), post.ravel(), encoders_per_dim,
                                              neurons_per_key, params)

    blocked_signal = None
    if block_astrocyte:
        blocked_signal = expected_astrocyte_signal(params, schedule, n_tokens * neurons_per_key)
    drive, values, teacher = blocks.value_layer(value_dim, neurons_per_value, value_encoders, encoders_per_dim,
                                         params, namespace, blocked_signal)
    tripartite = blocks.synapses(keys, drive, TRIPARTITE_SYNAPSE_MODEL, params, namespace, "tripartite_synapses",
                                 {}, on_pre=TRIPARTITE_SYNAPSE_ON_PRE, method="exact")
    cell, processes, astro_monitors = blocks.astrocyte(keys, astrocyte, params, namespace)
    if not block_astrocyte:
        blocks.link_astrocyte(values, cell)

    groups = {"key_encoders": key_encoders, "value_encoders": value_encoders, "key_neurons": keys,
              "global_inhibition": inhibition, "value_drive": drive, "value_neurons": values, "astrocyte": cell,
              "afferent_synapses": afferents, "inhibition_synapses": inhibition_synapses,
              "teacher_synapses": teacher, "tripartite_synapses": tripartite, "astro_processes": processes}
    monitors = {**blocks.spike_monitors(groups, "key_neurons"), "astrocyte_monitor": astro_monitors[0],
                "process_monitor": astro_monitors[1]}
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "exact", "key_layer": "key_neurons", "neurons_per_key": neurons_per_key,
              "neurons_per_value": neurons_per_value, "encoders_per_dim": encoders_per_dim,
              "astrocyte": astrocyte, "encoder": encoder, "block_astrocyte": bool(block_astrocyte), "causal": bool(causal),
              "preload": bool(preload), "scale": scale, "n_tokens": n_tokens, "n_queries": len(q), "dim": dim,
              "value_dim": value_dim}
    inputs = {"x_keys": x_keys, "x_queries": x_queries, "values": v}
    return AttentionCircuit("exact", network, groups, monitors, schedule, params, config, inputs, streams)


def preloaded_afferents(x_keys, pre, post, encoders_per_dim, neurons_per_key, params):
    """Afferent weights as the write phase would leave them on average: ON channel j of the
    encoders -> key neuron of token t gets +eta_key * g * t_learn/2 * x_tj, OFF channel the negative."""
    channel = pre // encoders_per_dim
    token = post // neurons_per_key
    sign = polarity_sign(channel)
    eta = afferent_learning_rate(params, encoders_per_dim)
    per_unit = eta * params["key_enc_gain"] * params["t_learn"] / 2
    return sign * x_keys[token, channel // 2] * per_unit


def write_spikes_per_key(params) -> float:
    """Spikes each key neuron fires while its token is written (regular, so exact up to one)."""
    return float(np.floor(float(params["rho_recruit"] * params["t_learn"])))


def write_spikes_per_process(k, scale, params, seeds, options) -> np.ndarray:
    """Write spikes of each astrocyte process (one per key neuron, written once): the CICR check of
    ``circuits.head.head_spec`` (same signature as the random circuit's)."""
    return np.full(len(k) * options["neurons_per_key"], write_spikes_per_key(params))


def expected_astrocyte_signal(params, schedule, n_key_neurons) -> float:
    """Rate-model astrocyte signal A (the same for every query: the inhibition fixes the total
    key rate), the blocked-astrocyte level."""
    calcium = float(params["kappa"]) * write_spikes_per_key(params)
    return float(params["tau_read"]) * float(params["R_key_target"]) * calcium


def rate_model(circuit: AttentionCircuit) -> dict:
    """The circuit's ideal, softmax attention (with the fading of weights and calcium), and the
    expected spike-count error around it: read counts of each key population are Poisson with mean
    R_key_target * t_read * attention weight; write counts are regular (no write noise)."""
    p, s, inp = circuit.params, circuit.schedule, circuit.inputs
    numerator, denominator = memory_weights(p, s.age_at_reads())
    # Key populations of tokens not yet written (causal reads) have zero afferent weights: score 0.
    scores = np.where(denominator > 0, inp["x_queries"] @ inp["x_keys"].T, 0.0)
    kernel = np.exp(scores - scores.max(axis=1, keepdims=True))
    identity = np.eye(len(inp["x_keys"]))
    y_rate = kernel_attention(kernel, identity, inp["values"], numerator, denominator)
    # The inhibition shares R_key_target among all key populations, written or not.
    read_counts = float(p["R_key_target"]) * s.t_read * kernel / kernel.sum(axis=1, keepdims=True)
    write_counts = write_spikes_per_key(p) * circuit.config["neurons_per_key"] * identity
    noise = expected_spike_error(write_counts, read_counts, inp["values"], circuit.output_gain(),
                                 write_noise=False, memory=denominator)
    return {"y_rate": y_rate, "noise": noise}
