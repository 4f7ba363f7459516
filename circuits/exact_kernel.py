"""Exact-kernel key-query-value tripartite circuit: one key population per stored token.

Random features approximate peaky, real attention heads badly (docs/model.md §3), so this circuit
stores every token in its own key neurons and computes exp(scale q.k_t) directly:

    key/query encoders --written k_t--> key neurons (token t) ==Hebbian, tripartite==> value neurons
                                            ^        |                                  ^
                              adenosine theta        +-- astrocyte processes -> astrocyte --+ 1/A
                                            +------------------------------------- A --+

Write phase, token t: its key population is recruited and fires regularly at ``rho_recruit``; the
encoder->key afferents learn k_t with a two-phase contrastive Hebbian rule (``models.synapses``);
the key->value tripartite synapses learn v_t (Hebbian) and the processes integrate the key spikes
(z_t, the same for every token). Read phase, query s: key neurons of token t fire at
rho_key * exp(x_q . x_k - theta / delta_u) with x = sqrt(scale) * (q or k). The astrocyte
integrates their spikes weighted by its processes' memory, A ~ sum_t z_t n_t, and normalises in two
ways (``models.gliotransmission``): its adenosine hyperpolarises every key neuron by theta, which
settles where exp(theta / delta_u) is proportional to sum_t z_t exp(scale q.k_t), the attention
denominator; and value neuron i fires at rho_value * sum_t w_ti n_t / A. Softmax attention up to
spike noise. With the astrocyte blocked, theta and A are constants and the read is an unnormalised
sum of exp(scale q.k_t) v_t.

``pad_to`` (a length bucket, ``circuits.protocol.bucket_length``) builds the circuit of ``pad_to``
tokens and queries and runs the real ones on it: ``pad_to - L`` empty write windows before the
real writes (every real token as old at every real read as without padding) and empty read windows
after the real reads (``circuits.protocol``). The empty windows' key populations come after the
real ones (neurons ``L * neurons_per_key`` on); they are never recruited and their ``in_use``
value is 0, so they never fire: their afferents and tripartite synapses stay zero and their
processes are never written or read. Empty read windows have every phase off: nothing fires in
them. What differs from one sentence of a bucket to another is values only (tables, initial
values), so a standalone binary serves the whole bucket; the read-outs (``decode``, the rate
model, :func:`token_counts`, the projection) give the real queries and tokens only.
"""

import numpy as np
from brian2 import Network, volt

from analysis.attention import check_qkv, kernel_attention
from analysis.spikes import expected_spike_error
from circuits import blocks
from circuits.circuit import AttentionCircuit, memory_weights, output_gain
from circuits.codes import check_code, spike_inputs
from circuits.exact_latency import build_latency_exact_circuit, check_key_code, check_latency_head, write_spikes
from circuits.exact_latency import rate_model as latency_rate_model
from circuits.projection import output_weights, projection
from circuits.kinds import CircuitKind, kind_parameters
from circuits.normaliser import adenosine_level, log_denominator, process_memory
from circuits.seeds import seed_streams
from circuits.protocol import TABLE_BIN, Schedule
from models.encoders import DT_ENC, LATENCY_CODE_PARAMETERS, polarity_sign
from models.gliotransmission import ADENOSINE_FEEDBACK_PARAMETERS, adenosine_set_point
from models.neurons import (FEATURE_NEURON_PARAMETERS, KEY_NEURON_EQS, KEY_NEURON_PARAMETERS, KEY_NEURON_RESET,
                            KEY_NEURON_THRESHOLD, ONE_SPIKE_KEY_PARAMETERS)
from models.parameters import ParameterError, ParameterSet
from models.synapses import AFFERENT_SYNAPSE_MODEL, AFFERENT_SYNAPSE_ON_PRE


def afferent_learning_rate(params, encoders_per_dim):
    """eta_key such that a fully written afferent weight, summed over ON/OFF encoders, gives the
    drive delta_u * x_q . x_k: eta_key = delta_u / (n_enc * g^2 * (t_learn/2) * tau_syn)."""
    g = params["key_enc_gain"]
    return params["delta_u"] / (encoders_per_dim * g ** 2 * (params["t_learn"] / 2) * params["tau_syn"])


def check_exact_protocol(params, code="rate", key_code="regular", causal=False) -> None:
    """Refuse (ParameterError/ValueError, one line) a code or protocol the exact-kernel head cannot
    run, from its parameters alone (no head needed: a run checks its heads' protocol before it
    begins): the code and key code, the latency head's windows (``exact_latency.check_latency_head``)
    and, where a token is written in two phases (the rate head, the regular latency keys' mirror),
    a learning window of an even number of table bins."""
    check_code(code)
    check_key_code(key_code, code)
    if code == "latency":
        check_latency_head(params, causal, key_code)
    if code == "rate" or key_code == "regular":
        half = float(params["t_learn"] / TABLE_BIN) / 2
        if half != int(half):
            raise ParameterError(f"t_learn must be an even number of {TABLE_BIN} for the two learning phases")


def build_exact_kernel_circuit(q, k, v, *, scale=None, neurons_per_key=16, neurons_per_value=32,
                               encoders_per_dim=4, astrocyte="minimal", encoder="regular",
                               block_astrocyte=False, preload=False, causal=False, w_out=None, b_out=None,
                               pad_to=None, code="rate", x_top=None, v_top=None, y_top=None, key_code="regular",
                               score_top=None, params=None, seed=0, spike_seed=None) -> AttentionCircuit:
    """Build the exact-kernel circuit for one head (see the module docstring).

    ``preload`` sets the afferent weights to k_t directly instead of writing them with spikes
    (isolates the read phase's error). ``w_out`` (out x d_v) and ``b_out`` (out, default zero): the
    head's output projection W_O on synapses, driven by the value neurons' spikes in the counting
    windows onto accumulating units (``circuits.projection``; a transformer's attention output).
    ``block_astrocyte`` holds the astrocyte's read-phase signals
    (the key neurons' adenosine hyperpolarisation theta and the value neurons' divisor A) at their
    mean over the read phase (:func:`blocked_signals`): the negative control. ``pad_to``: the
    number of key populations and read windows (None: L and Lq), for length buckets (see the module
    docstring); the config's ``n_tokens`` and ``n_queries`` count them, the schedule's the real ones.
    ``code``: ``rate`` (this module's circuit) or ``latency``: values in few spikes, one key
    neuron per token, one encoder and one value neuron per ON/OFF channel
    (``circuits.exact_latency``; ``neurons_per_key``, ``neurons_per_value``, ``encoders_per_dim``
    and ``encoder`` do not apply); ``x_top``, ``v_top``, ``y_top``: its tops of range for the scaled
    queries and keys, the values and the output (default: from this head's own, see
    ``circuits.exact_latency``). ``key_code`` (latency head only): ``regular`` key neurons firing
    at exp(u - theta) through a counting part, or ``latency``: one spike per key and read whose
    efficacy carries exp(u - theta_ref), ``score_top`` = theta_ref / delta_u in nats (default the
    head's own largest score; ``circuits.exact_latency``). Other arguments (``causal`` included) as in
    ``build_random_feature_circuit``.
    """
    trains, (q, k, v) = spike_inputs(q, k, v)
    q, k, v, scale = check_qkv(q, k, v, scale)
    blocks.check_options(astrocyte, encoder, neurons_per_key=neurons_per_key,
                         neurons_per_value=neurons_per_value, encoders_per_dim=encoders_per_dim)
    if not isinstance(params, ParameterSet):
        params = kind_parameters(EXACT, astrocyte, params)
    schedule = Schedule.from_params(len(k), len(q), params, causal, pad_to)
    check_exact_protocol(params, code, key_code, causal)
    if trains is not None and code != "latency":
        raise ValueError("only the latency head replays spike trains (code='latency')")
    streams = seed_streams(seed, spike_seed)
    if code == "latency":
        return build_latency_exact_circuit(q, k, v, scale, schedule, params, streams, astrocyte=astrocyte,
                                           block_astrocyte=block_astrocyte, preload=preload, w_out=w_out, b_out=b_out,
                                           x_top=x_top, v_top=v_top, y_top=y_top, key_code=key_code,
                                           score_top=score_top, trains=trains)
    phases = streams.phases
    x_keys, x_queries = np.sqrt(scale) * k, np.sqrt(scale) * q
    n_tokens, dim, value_dim = len(k), q.shape[1], v.shape[1]
    n_populations = schedule.n_token_windows            # n_tokens, or pad_to with empty ones

    # The key encoders show k_t, then its mirror -k_t, while token t is learned; then the queries
    # (nothing in empty windows: the last row).
    contrast = schedule.contrast()
    x_rows = np.concatenate([x_keys, x_queries, np.zeros((1, dim))])[schedule.input_rows()]
    x_rows = np.where(contrast[:, None] < 0, -x_rows, x_rows)
    namespace, value_namespace = blocks.input_namespace(params, schedule, x_rows, v)
    namespace.update(recruited_token=blocks.table(schedule.recruited_token(), "recruited_token_table"),
                     contrast=blocks.table(contrast, "contrast_table"))

    key_encoders = blocks.encoder_population(2 * dim, encoders_per_dim, encoder, params, namespace, phases,
                                             "key_encoders")
    value_encoders = blocks.encoder_population(2 * value_dim, encoders_per_dim, encoder, params, value_namespace,
                                               phases, "value_encoders")
    keys = blocks.neuron_group(n_populations * neurons_per_key, KEY_NEURON_EQS, params, namespace, "key_neurons",
                               threshold=KEY_NEURON_THRESHOLD, reset=KEY_NEURON_RESET, method="euler")
    keys.v = params["v_rest"]
    population = np.arange(len(keys)) // neurons_per_key
    keys.token = population
    keys.in_use = (population < n_tokens).astype(float)            # 0: an empty window's population
    # Random pacing phases: the population samples the value neurons' depolarisation at many phases.
    keys.phase = phases.uniform(0, 1, size=len(keys))
    pre, post = np.meshgrid(np.arange(len(key_encoders)), np.arange(len(keys)), indexing="ij")
    afferents = blocks.synapses(key_encoders, keys, AFFERENT_SYNAPSE_MODEL, params, namespace,
                                "afferent_synapses", {"i": pre.ravel(), "j": post.ravel()},
                                on_pre=AFFERENT_SYNAPSE_ON_PRE,
                                # Preloaded weights are final: the write phase must not add to them.
                                extra={"eta_key": (0 if preload else 1) * afferent_learning_rate(params, encoders_per_dim)})
    if preload:
        x_populations = np.concatenate([x_keys, np.zeros((n_populations - n_tokens, dim))])
        afferents.w_aff = preloaded_afferents(x_populations, pre.ravel(), post.ravel(), encoders_per_dim,
                                              neurons_per_key, params)

    groups, monitors = blocks.tripartite_circuit(key_encoders, value_encoders, ("key_neurons", keys),
                                                 ("afferent_synapses", afferents), value_dim, neurons_per_value,
                                                 encoders_per_dim, astrocyte, params, namespace)
    cell, values = groups["astrocyte"], groups["value_neurons"]
    blocked = blocked_signals(params, schedule, x_keys, x_queries, neurons_per_key) if block_astrocyte else None
    normaliser = blocks.key_normaliser(cell, values, keys, params, namespace,
                                       adenosine_set_point(params, release_per_token(params)), blocked)
    groups.update(normaliser[0])
    monitors.update(normaliser[1])
    n_out = 0
    if w_out is not None:
        w_out, b_out = output_weights(w_out, b_out)
        n_out = len(w_out)
        # A spike of the ON (OFF) population of value dimension i adds (subtracts) W_O[:, i] over
        # the output gain: a read's accumulated value is W_O times the decoded output, plus b_O.
        population = np.arange(len(values)) // neurons_per_value
        weights = (polarity_sign(population)[:, None] * w_out.T[population // 2]
                   / output_gain(params, schedule, neurons_per_value))
        counting = dict(namespace, count_phase=blocks.table(schedule.phase(schedule.read_windows()), "out_count_table"))
        # Sampled at the end of every read window, empty ones included (one table per bucket).
        groups.update(projection([(values, weights)], b_out, params, counting,
                                 "out", schedule.read_windows(padded=True), schedule.duration, float(params["dt"])))
        monitors["out_samples"] = groups.pop("out_samples")
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "exact", "n_out": n_out, "key_layer": "key_neurons", "neurons_per_key": neurons_per_key,
              "neurons_per_value": neurons_per_value, "encoders_per_dim": encoders_per_dim,
              "astrocyte": astrocyte, "encoder": encoder, "block_astrocyte": bool(block_astrocyte), "causal": bool(causal),
              "preload": bool(preload), "scale": scale, "n_tokens": n_populations,
              "n_queries": schedule.n_query_windows, "dim": dim,
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
    ``circuits.head.head_spec`` (same signature as the random circuit's); the latency head's one
    key neuron per token gets ``circuits.exact_latency.write_spikes``."""
    if options.get("code") == "latency":
        return np.full(len(k), float(write_spikes(params)))
    return np.full(len(k) * options["neurons_per_key"], write_spikes_per_key(params))


def release_per_token(params) -> float:
    """Gliotransmitter release per read spike of a process whose token was just written (kappa per
    write spike): the unit in which the processes' memory of the write counts."""
    return float(params["kappa"]) * write_spikes_per_key(params)


def blocked_signals(params, schedule, x_keys, x_queries, neurons_per_key) -> tuple:
    """The blocked astrocyte's constants: (A, theta), the mean over the read phase of the signals the
    working astrocyte holds -- A at its set point, theta at :func:`adenosine_level` averaged over the
    reads (each read lasts as long)."""
    theta = adenosine_level(params, schedule, x_keys, x_queries, neurons_per_key).mean()
    return adenosine_set_point(params, release_per_token(params)), theta * volt


def measured_adenosine_level(circuit: AttentionCircuit) -> np.ndarray:
    """Mean theta (V) over each read's counting window: from the adenosine monitor of a run circuit,
    or the blocked astrocyte's constant."""
    if circuit.config["block_astrocyte"]:
        p, s, inp = circuit.params, circuit.schedule, circuit.inputs
        theta = blocked_signals(p, s, inp["x_keys"], inp["x_queries"], circuit.config["neurons_per_key"])[1]
        return np.full(s.n_queries, float(theta))
    monitor = circuit.monitors["adenosine_monitor"]
    t, theta = np.asarray(monitor.t_[:]), np.asarray(monitor.theta_[0])
    return np.array([theta[(t >= start) & (t < stop)].mean() for start, stop in circuit.schedule.read_windows()])


def token_counts(circuit: AttentionCircuit) -> np.ndarray:
    """Spike counts (n_queries x n_tokens) of each real token's key population in each real read's
    counting window; a padded circuit's empty populations and reads left out."""
    s, per_key = circuit.schedule, circuit.config["neurons_per_key"]
    counts = circuit.window_counts("key_neurons", s.read_windows())[:, :s.n_tokens * per_key]
    return counts.reshape(len(counts), s.n_tokens, per_key).sum(axis=2)


def astrocyte_normaliser(circuit: AttentionCircuit) -> dict:
    """The attention denominator of each query and what the astrocyte holds of it.

    ``denominator``: sum_t z_t exp(scale q.k_t) (z_t the processes' memory, 1 for a token just
    written); ``astrocyte``: exp(theta / delta_u) * R_key_target / (rho_key n_key) with theta the
    adenosine hyperpolarisation measured in the read (``measured_adenosine_level``): equal to the
    denominator when the astrocyte normalises, one constant when it is blocked. ``log_error``: rms
    of log(astrocyte / denominator) over the queries (its mean removed: a common factor cancels in
    attention); ``log_spread``: standard deviation of log(denominator) over the queries, what a
    blocked astrocyte misses; ``blocked``: the level a blocked astrocyte holds for every query (the
    mean over the reads of the rate-model theta, :func:`blocked_signals`)."""
    p, s, inp = circuit.params, circuit.schedule, circuit.inputs
    _, log_sum = log_denominator(inp["x_keys"], inp["x_queries"], process_memory(p, s))
    gain = float(p["rho_key"]) * circuit.config["neurons_per_key"] / float(p["R_key_target"])
    log_astrocyte = measured_adenosine_level(circuit) / float(p["delta_u"]) - np.log(gain)
    gap = log_astrocyte - log_sum
    held = blocked_signals(p, s, inp["x_keys"], inp["x_queries"], circuit.config["neurons_per_key"])[1]
    return {"denominator": np.exp(log_sum), "astrocyte": np.exp(log_astrocyte),
            "blocked": float(np.exp(float(held) / float(p["delta_u"]) - np.log(gain))),
            "log_error": float(np.sqrt(np.mean((gap - gap.mean()) ** 2))), "log_spread": float(np.std(log_sum))}


def rate_model(circuit: AttentionCircuit) -> dict:
    """The circuit's ideal and the expected spike-count error around it. Write counts are regular
    (no write noise); read counts of each key population are Poisson with the rates the astrocyte
    sets. Working astrocyte: softmax attention (with the fading of weights and processes), the key
    populations firing R_key_target * exp(x_q . x_k) / sum_t memory_t exp(x_q . x_k). Blocked:
    theta and A are constants, the key populations fire n_key * rho_key * exp(x_q . x_k - theta/delta_u)
    and the output is that unnormalised sum over A; rates past one spike per step are clipped as
    the Bernoulli draws clip them (key and value neurons). The latency head has its own
    (``circuits.exact_latency.rate_model``)."""
    if circuit.config.get("code") == "latency":
        return latency_rate_model(circuit)
    p, s, inp, config = circuit.params, circuit.schedule, circuit.inputs, circuit.config
    numerator, denominator = memory_weights(p, s.age_at_reads())
    scores, log_sum = log_denominator(inp["x_keys"], inp["x_queries"], denominator)
    identity = np.eye(len(inp["x_keys"]))
    rate_total = float(p["R_key_target"])
    population_rates = rate_total * np.exp(scores - log_sum[:, None])
    y_rate = kernel_attention(np.exp(scores - log_sum[:, None]), identity, inp["values"], numerator, denominator)
    if config["block_astrocyte"]:
        dt = float(p["dt"])
        _, theta = blocked_signals(p, s, inp["x_keys"], inp["x_queries"], config["neurons_per_key"])
        per_neuron = float(p["rho_key"]) * np.exp(scores - float(theta) / float(p["delta_u"]))
        population_rates = config["neurons_per_key"] * np.minimum(per_neuron * dt, 1) / dt
        # Value neurons: rho_value * sum_t w_t n_t / A_target, with A_target = that of R_key_target.
        y_free = (population_rates * numerator) @ inp["values"] / rate_total
        ceiling = 1 / (dt * float(p["rho_value"]) * float(p["eta_hebb"]) / float(p["kappa"]))
        y_rate = np.minimum(np.maximum(y_free, 0), ceiling) - np.minimum(np.maximum(-y_free, 0), ceiling)
    read_counts = population_rates * s.t_read
    if config["block_astrocyte"]:
        noise = _unnormalised_read_error(read_counts, numerator, inp["values"], y_rate, circuit.output_gain(),
                                         rate_total * s.t_read)
    else:
        write_counts = write_spikes_per_key(p) * config["neurons_per_key"] * identity
        noise = expected_spike_error(write_counts, read_counts, inp["values"], circuit.output_gain(),
                                     write_noise=False, memory=denominator)
    return {"y_rate": y_rate, "noise": noise}


def _unnormalised_read_error(read_counts, numerator, values, y, output_gain, count_scale) -> dict:
    """Spike-count error of a blocked read, y = sum_t n_t numerator_t v_t / count_scale with Poisson key
    counts n_t (no ratio) and Poisson output counts; keys as ``analysis.spikes.expected_spike_error``."""
    var_read = (read_counts * numerator ** 2) @ values ** 2 / count_scale ** 2
    var_output = np.abs(y) / output_gain
    norm = np.linalg.norm(y)
    return {"y": y, "var_output": var_output, "var_read": var_read, "var_write": np.zeros_like(y),
            "relative_error": float(np.sqrt((var_read + var_output).sum()) / norm),
            "relative_error_output": float(np.sqrt(var_output.sum()) / norm),
            "relative_error_read": float(np.sqrt(var_read.sum()) / norm), "relative_error_write": 0.0}


#: The latency head's code (``code="latency"``, ``circuits.exact_latency``): its levels, window and
#: the encoders' clock (unused by the rate head, whose generated code does not declare them).
LATENCY_HEAD_PARAMETERS = (DT_ENC, *LATENCY_CODE_PARAMETERS, *ONE_SPIKE_KEY_PARAMETERS)

#: The exact-kernel circuit's entry in the registry (``circuits.CIRCUITS``).
EXACT = CircuitKind(
    "exact", build_exact_kernel_circuit, rate_model, write_spikes_per_process, "key_neurons",
    tuple(p for p in FEATURE_NEURON_PARAMETERS if p.name != "rho_feature") + KEY_NEURON_PARAMETERS
    + ADENOSINE_FEEDBACK_PARAMETERS + LATENCY_HEAD_PARAMETERS,
    "neurons_per_key", "{neurons_per_key} key neurons per token", "one key population per stored token (exact softmax kernel)",
    population_rates=(("R_key_target", "neurons_per_key"),))
