"""The paper's random-feature key-query-value tripartite circuit (Kozachkov et al., PNAS 2023).

Layers (docs/model.md §2):

    key/query encoders --W--> feature neurons ==tripartite, Hebbian==> value neurons <-- value encoders
                                    |                                       ^
                                    +---- astrocyte processes -> astrocyte -+  (divisive gain 1/A)

Write phase: token t drives the encoders with x = sqrt(scale) k_t and the value encoders with v_t;
feature neuron r fires at rho_feature * exp(w_r^T x - |x|^2/2); the Hebbian synapses accumulate
S ~ sum_t phi(k_t) v_t^T and the processes' calcium z ~ sum_t phi(k_t).
Read phase: query s drives the encoders with x = sqrt(scale) q_s; value neuron i receives
sum_j S_ij phi_j(q) and the astrocyte sum_j z_j phi_j(q); the value neuron fires at
rho_value * numerator / denominator: the normalisation is an explicit divisive gain set by the
astrocyte. exp(scale q.k) = E[phi(x_q)^T phi(x_k)], so the output approximates softmax attention.
"""

import numpy as np
from brian2 import Network

from analysis.attention import check_qkv, kernel_attention
from analysis.features import draw_feature_weights, positive_features
from analysis.spikes import expected_spike_error
from circuits import blocks
from circuits.circuit import AttentionCircuit, memory_weights
from circuits.kinds import CircuitKind, kind_parameters
from circuits.seeds import seed_streams
from circuits.protocol import Schedule
from models.encoders import polarity_sign
from models.neurons import FEATURE_NEURON_EQS, FEATURE_NEURON_PARAMETERS, FEATURE_NEURON_THRESHOLD
from models.parameters import ParameterSet
from models.synapses import INPUT_SYNAPSE_MODEL, INPUT_SYNAPSE_ON_PRE


def build_random_feature_circuit(q, k, v, *, scale=None, n_features=256, neurons_per_value=32,
                                 encoders_per_dim=4, astrocyte="minimal", encoder="regular",
                                 block_astrocyte=False, causal=False, params=None, seed=0,
                                 spike_seed=None) -> AttentionCircuit:
    """Build the random-feature circuit for one head.

    q: (Lq x d) queries, k: (L x d) keys, v: (L x d_v) values; the kernel is exp(scale q.k)
    (default scale 1/sqrt(d)). ``params``: a ParameterSet from :func:`circuit_parameters` or a
    mapping of overrides. ``block_astrocyte`` holds the astrocyte's signal A at its mean over the
    read phase (no per-query normalisation: the negative control). ``causal``: read
    query s right after writing token s (autoregressive attention; needs one query per token).
    """
    q, k, v, scale = check_qkv(q, k, v, scale)
    blocks.check_options(astrocyte, encoder, n_features=n_features, neurons_per_value=neurons_per_value,
                         encoders_per_dim=encoders_per_dim)
    if not isinstance(params, ParameterSet):
        params = kind_parameters(RANDOM, astrocyte, params)
    schedule = Schedule.from_params(len(k), len(q), params, causal)
    streams = seed_streams(seed, spike_seed)
    phases = streams.phases
    weights = draw_feature_weights(n_features, q.shape[1], streams.features)
    x_keys, x_queries = np.sqrt(scale) * k, np.sqrt(scale) * q
    dim, value_dim = q.shape[1], v.shape[1]

    # Inputs and phase signals as TimedArrays, one row per 1 ms bin.
    x_rows = np.concatenate([x_keys, x_queries])[schedule.input_rows()]
    namespace, value_namespace = blocks.input_namespace(params, schedule, x_rows, v)
    namespace["feature_bias"] = blocks.table(-0.5 * np.sum(x_rows ** 2, axis=1), "feature_bias_table")

    key_encoders = blocks.encoder_population(2 * dim, encoders_per_dim, encoder, params, namespace, phases,
                                             "key_encoders")
    value_encoders = blocks.encoder_population(2 * value_dim, encoders_per_dim, encoder, params, value_namespace,
                                               phases, "value_encoders")

    features = blocks.neuron_group(n_features, FEATURE_NEURON_EQS, params, namespace, "features",
                                   threshold=FEATURE_NEURON_THRESHOLD, method="exact")
    features.v = params["v_rest"]
    pre, post = np.meshgrid(np.arange(len(key_encoders)), np.arange(n_features), indexing="ij")
    input_synapses = blocks.synapses(key_encoders, features, INPUT_SYNAPSE_MODEL, params, namespace,
                                     "input_synapses", {"i": pre.ravel(), "j": post.ravel()},
                                     on_pre=INPUT_SYNAPSE_ON_PRE)
    channel = pre.ravel() // encoders_per_dim
    sign = polarity_sign(channel)                                   # ON: +w, OFF: -w
    unit_weight = params["delta_u"] / (encoders_per_dim * params["key_enc_gain"] * params["tau_syn"])
    input_synapses.w_in = sign * weights[post.ravel(), channel // 2] * unit_weight

    groups, monitors = blocks.tripartite_circuit(key_encoders, value_encoders, ("features", features),
                                                 ("input_synapses", input_synapses), value_dim, neurons_per_value,
                                                 encoders_per_dim, astrocyte, params, namespace)
    values = groups["value_neurons"]
    if block_astrocyte:
        signal = expected_astrocyte_signal(weights, x_keys, x_queries, params, schedule).mean()
        groups["astrocyte_block"] = blocks.blocked_astrocyte(params, namespace, signal)
        blocks.link_astrocyte(groups["astrocyte_block"], values)
    else:
        blocks.link_astrocyte(groups["astrocyte"], values)
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "random", "key_layer": "features", "n_features": n_features, "neurons_per_value": neurons_per_value,
              "encoders_per_dim": encoders_per_dim, "astrocyte": astrocyte, "encoder": encoder,
              "block_astrocyte": bool(block_astrocyte), "causal": bool(causal), "scale": scale, "n_tokens": len(k),
              "n_queries": len(q), "dim": dim, "value_dim": value_dim}
    inputs = {"x_keys": x_keys, "x_queries": x_queries, "values": v, "feature_weights": weights}
    return AttentionCircuit("random", network, groups, monitors, schedule, params, config, inputs, streams)


def _feature_counts(weights, x, rate, window):
    """Expected spike counts of each feature neuron for each input row in a window of ``window`` s."""
    return rate * np.sqrt(weights.shape[0]) * positive_features(x, weights) * window


def write_spikes_per_process(k, scale, params, seeds, options) -> np.ndarray:
    """Expected write spikes of each astrocyte process (m,): its feature neuron's expected counts
    summed over the written tokens, rho_feature sqrt(m) phi(x_k) t_learn (the CICR check of
    ``circuits.head.head_spec``); ``seeds``: the head's SeedStreams (the builder's feature weights)."""
    weights = draw_feature_weights(options["n_features"], k.shape[1], seeds.features)
    counts = _feature_counts(weights, np.sqrt(scale) * k, float(params["rho_feature"]), float(params["t_learn"]))
    return counts.sum(axis=0)


def expected_astrocyte_signal(weights, x_keys, x_queries, params, schedule) -> np.ndarray:
    """Rate-model value of the astrocyte's read signal A for each query, tau_read sum_j release_j rho_j(q)
    with each process's release its memory of the write (its mean over the reads is the blocked
    astrocyte's constant)."""
    rate = float(params["rho_feature"])
    _, memory = memory_weights(params, schedule.age_at_reads())
    release = float(params["kappa"]) * memory @ _feature_counts(weights, x_keys, rate, schedule.t_learn)
    read_rates = _feature_counts(weights, x_queries, rate, 1.0)
    return float(params["tau_read"]) * np.sum(read_rates * release, axis=1)


def rate_model(circuit: AttentionCircuit) -> dict:
    """The circuit's own ideal: the same features, weights and fading, no spike noise.

    Returns ``y_rate`` (Lq x d_v) and the expected spike-count error of the circuit around it
    (see :func:`analysis.spikes.expected_spike_error`), under key ``noise``.
    """
    p, s, inp = circuit.params, circuit.schedule, circuit.inputs
    weights, rate = inp["feature_weights"], float(p["rho_feature"])
    phi_k = positive_features(inp["x_keys"], weights)
    phi_q = positive_features(inp["x_queries"], weights)
    numerator, denominator = memory_weights(p, s.age_at_reads())
    y_rate = kernel_attention(phi_q, phi_k, inp["values"], numerator, denominator)
    noise = expected_spike_error(_feature_counts(weights, inp["x_keys"], rate, s.t_learn),
                                 _feature_counts(weights, inp["x_queries"], rate, s.t_read),
                                 inp["values"], circuit.output_gain(), memory=denominator)
    return {"y_rate": y_rate, "noise": noise}


#: The random-feature circuit's entry in the registry (``circuits.CIRCUITS``).
RANDOM = CircuitKind(
    "random", build_random_feature_circuit, rate_model, write_spikes_per_process, "features",
    FEATURE_NEURON_PARAMETERS, "n_features", "m = {n_features} feature neurons",
    "the paper's random-feature circuit: m feature neurons carry positive random features")
