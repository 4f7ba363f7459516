"""The exact-kernel head on few spikes: ``build_exact_kernel_circuit(..., code="latency")``.

The circuit of ``circuits.exact_kernel`` (one key neuron per stored token, the astrocyte's
adenosine feedback and divisive gain) with its values carried by the latency code
(``models.encoders``, ``analysis.codes``; docs/model.md §3, §11) instead of rate codes:

    key/query latency encoders --one-shot written k_t--> key neurons (one per token) ==Hebbian==> value drives
    (one per ON/OFF channel)                              ^  regular, exp rate   |         ^ I_num    | I_num/A
                                         adenosine theta  +   astrocyte processes -> astrocyte A --+  v
    value latency encoders --teacher (held)--> value drives                           value latency neurons --W_O-->

Write, token t (its window: t_settle, then t_learn): the value encoders fire one spike per nonzero
component at the window's start, which sets the held teacher drive I_teach to v_t (as the code
delivers it); the key/query encoders show k_t at the start of the learning window and its mirror
-k_t at its middle, one spike per nonzero component each, and the afferents onto the recruited
key neuron write w_aff = +-delta_u k_tj one shot (``models.synapses.LATENCY_AFFERENT_SYNAPSE_ON_PRE``).
The recruited key neuron fires n_w = round(rho_recruit t_learn) regular spikes: the Hebbian weights
become eta_hebb n_w v_t and its process integrates n_w spikes (z_t, the same for every token).

Read, query s (its window: t_settle, then t_read): the encoders show the query at the window's
start, and each key neuron's accumulating drive becomes u_t = delta_u x_q . x_k (no filter: no
ripple, no curvature bias). In the counting part, the first t_read - t_code, key neuron t fires
regularly at rho_key exp((u_t - theta) / delta_u) from a random phase; theta, the astrocyte's
adenosine hyperpolarisation (``models.gliotransmission``), is common to all keys, so their rates
stand in the ratio of softmax at every moment, whatever theta does, and theta's integral control
holds the astrocyte's signal A at its set point: exp(theta / delta_u) tracks
sum_t z_t exp(x_q . x_k_t), the attention denominator. I_num (tripartite synapses, w_ti per key
spike) and A (processes, release_t per key spike) filter the key spikes alike (tau_read), so at the
end of the counting part I_num / A is the ratio of equally weighted counts: y = (kappa / eta_hebb)
I_num / A is softmax attention up to the counts' quantisation. In the output window, the read's last
t_code, the ON and OFF value neuron of each dimension fire one latency spike for max(+-y, 0),
top of range y_top (default max |y_ideal| sqrt(B), known before simulating); W_O (``w_out``) reads
them through their efficacy in the output windows. :meth:`LatencyAttentionCircuit.decode` gives y
from the spike times.

The error budget (:func:`rate_model`, ``analysis.codes.latency_attention_error``) has four parts:
the scores (x_q and x_k each within B^(+-1/2)), the teacher's values, the key counts (a regular
train's filtered count has variance ~1/12 of a spike) and the output's latency code.

Departures from physiology (besides the rate head's): one-shot synapse writing in proportion to
the presynaptic efficacy, a drive that accumulates without leak and is cleared at each read, and
regular firing at an exponential rate. The counting part should last several tau_read, so that a
read forgets the previous one (I_num and A decay between reads; what is left enters as a bias of
exp(-T_count / tau_read)).

Padding (``pad_to``) as in the rate head: empty windows show nothing, their key neurons are never
recruited and never fire, empty reads have no output window. Causal schedules use the same tables
(keys not yet written fire but carry no weight and no process memory).

Measured (layer 2, head 5 of all-MiniLM-L6-v2 on "The quick brown fox jumps over the lazy dog.",
12 tokens, d = d_v = 32; dt 0.1 ms, dt_enc 0.05 ms, t_code 5 ms, B = 1.05, R_key_target 5 kHz,
tau_read 20 ms, counting 100 ms, tau_theta 40 ms): 0.057 from softmax against a budget of 0.060,
4.7e5 synaptic events (the rate head on the short protocol: 0.119 and 1.9e7); the blocked
astrocyte's output is 9.8x further from softmax.
"""

from dataclasses import dataclass

import numpy as np
from brian2 import Network, linked_var, volt

from analysis import codes
from analysis.attention import kernel_attention
from circuits import blocks
from circuits.circuit import AttentionCircuit, memory_weights
from circuits.codes import check_latency, latency_levels, windowed_latency_neurons
from circuits.normaliser import adenosine_level, log_denominator, process_memory
from circuits.projection import projection
from circuits.protocol import TABLE_BIN
from models.encoders import LATENCY_ENCODER_EQS, LATENCY_TABLE_VALUE, polarity_sign, signed_rates
from models.gliotransmission import adenosine_set_point
from models.neurons import (LATENCY_KEY_NEURON_EQS, LATENCY_KEY_NEURON_RESET, LATENCY_KEY_NEURON_THRESHOLD,
                            LATENCY_KEY_NEURON_WINDOWS, LATENCY_TEACHER_WINDOWS, LATENCY_VALUE_DRIVE_EQS,
                            LATENCY_VALUE_NEURON_EQS, LATENCY_VALUE_NEURON_VALUE)
from models.parameters import ParameterError
from models.projection import LATENCY_PROJECTION_ON_PRE
from models.synapses import (LATENCY_AFFERENT_SYNAPSE_MODEL, LATENCY_AFFERENT_SYNAPSE_ON_PRE,
                             LATENCY_TEACHER_SYNAPSE_ON_PRE, TEACHER_SYNAPSE_MODEL, TRIPARTITE_SYNAPSE_MODEL,
                             TRIPARTITE_SYNAPSE_ON_PRE)

#: Most spikes per time step of a regular key neuron at the astrocyte's set point (R_key_target, all
#: attention on one key): a phase neuron fires at most once per step, and theta's transients
#: overshoot the set point: a factor 2 of headroom.
MAX_KEY_SPIKES_PER_STEP = 0.5


def write_spikes(params) -> int:
    """Write spikes of a recruited key neuron: its phase starts at 1/2, so round(rho_recruit t_learn)."""
    return int(np.floor(float(params["rho_recruit"] * params["t_learn"]) + 0.5))


def check_latency_head(params, causal=False) -> None:
    """Refuse (ParameterError, one line) a protocol the latency head cannot run."""
    check_latency(params)
    t_code, dt_enc, dt = (float(params[n]) for n in ("t_code", "dt_enc", "dt"))
    if dt_enc > dt:
        raise ParameterError(f"dt_enc = {dt_enc * 1e3:g} ms must not exceed dt = {dt * 1e3:g} ms")
    if float(params["t_settle"]) < t_code:
        raise ParameterError("t_settle must hold the value's and the query's latency window (t_settle >= t_code)")
    if float(params["t_learn"]) < 2 * t_code:
        raise ParameterError("t_learn must hold the key's two latency windows (t_learn >= 2 t_code)")
    if float(params["t_read"]) <= t_code:
        raise ParameterError("t_read must be longer than its output window (t_read > t_code)")
    if write_spikes(params) < 1:
        raise ParameterError("rho_recruit * t_learn must give a recruited key neuron at least one write spike")
    per_step = float(params["R_key_target"] * params["dt"])
    if per_step > MAX_KEY_SPIKES_PER_STEP:
        raise ParameterError(f"R_key_target = {float(params['R_key_target']):g} Hz makes a regular key neuron fire "
                             f"{per_step:.2g} times per step of dt; {MAX_KEY_SPIKES_PER_STEP} at most: lower it or dt")


def _starts(schedule, times) -> np.ndarray:
    """A 0/1 table (one entry per TABLE_BIN) that is 1 in the bins where ``times`` fall."""
    out = np.zeros(schedule.n_bins())
    out[np.rint(np.asarray(times, dtype=float) / schedule.bin).astype(int)] = 1.0
    return out


def output_windows(schedule, params, padded=False) -> np.ndarray:
    """The value neurons' output windows: the last t_code of each read window."""
    reads = schedule.read_windows(padded)
    return np.stack([reads[:, 1] - float(params["t_code"]), reads[:, 1]], axis=1)


def counting_windows(schedule, params) -> np.ndarray:
    """The key neurons' counting parts: each read window but its output window."""
    reads = schedule.read_windows()
    return np.stack([reads[:, 0], reads[:, 1] - float(params["t_code"])], axis=1)


def delivered_inputs(x_keys, x_queries, values, params, x_top=None, v_top=None) -> dict:
    """Tops of range and what the codes deliver (``analysis.codes.latency_decode``): the keys and
    queries share one encoder population (one top), the values have their own; a top not given is
    the head's own largest value times sqrt(B)."""
    base, levels = float(params["code_base"]), latency_levels(params)
    x_top = codes.latency_top(np.concatenate([x_keys, x_queries]), base) if x_top is None else float(x_top)
    v_top = codes.latency_top(values, base) if v_top is None else float(v_top)
    return {"x_top": x_top, "v_top": v_top, "base": base, "levels": levels,
            "x_keys": codes.latency_decode(x_keys, x_top, base, levels),
            "x_queries": codes.latency_decode(x_queries, x_top, base, levels),
            "values": codes.latency_decode(values, v_top, base, levels)}


def ideal(params, schedule, x_keys, x_queries, values, blocked) -> dict:
    """The head's ideal output (exact inputs, no quantisation) and what it takes: the memory weights,
    each key's rate per read, the blocked astrocyte's constants. Working astrocyte: softmax with
    the processes' and weights' fading, the keys firing at R_key_target e^u / sum_t z_t e^u.
    Blocked: A and theta held at their mean over the reads (theta from the delivered scores), the
    keys firing at rho_key exp(u - theta / delta_u), y = sum_t numerator_t rate_t v_t / R_key_target."""
    numerator, denominator = memory_weights(params, schedule.age_at_reads())
    scores, log_sum = log_denominator(x_keys, x_queries, denominator)
    rate_total = float(params["R_key_target"])
    rates = rate_total * np.where(denominator > 0, np.exp(scores - log_sum[:, None]), 0.0)
    y = kernel_attention(np.exp(scores - log_sum[:, None]), np.eye(len(x_keys)), values, numerator, denominator)
    out = {"numerator": numerator, "denominator": denominator, "scores": scores, "y": y}
    if blocked:
        theta = float(adenosine_level(params, schedule, x_keys, x_queries, 1).mean())
        rates = float(params["rho_key"]) * np.exp(scores - theta / float(params["delta_u"]))
        out["y"] = (rates * numerator) @ values / rate_total
        out["theta"] = theta
    out["rates"] = rates
    return out


def build_latency_exact_circuit(q, k, v, scale, schedule, params, streams, *, astrocyte="minimal",
                                block_astrocyte=False, preload=False, w_out=None, b_out=None, x_top=None, v_top=None,
                                y_top=None) -> "LatencyAttentionCircuit":
    """Build the latency-coded exact-kernel head (see the module docstring); called by
    ``circuits.exact_kernel.build_exact_kernel_circuit`` with ``code="latency"`` after it has checked
    the head and built its schedule and seeds. One key neuron per token, one encoder per ON/OFF
    channel and one value neuron per ON/OFF channel: the rate head's ``neurons_per_key``,
    ``encoders_per_dim``, ``neurons_per_value`` and ``encoder`` do not apply. ``x_top``, ``v_top``,
    ``y_top``: tops of range (default the head's own: :func:`delivered_inputs`, and the ideal
    output's largest value times sqrt(B))."""
    check_latency_head(params, schedule.causal)
    x_keys, x_queries = np.sqrt(scale) * k, np.sqrt(scale) * q
    n_tokens, dim, value_dim = len(k), q.shape[1], v.shape[1]
    n_populations = schedule.n_token_windows
    delivered = delivered_inputs(x_keys, x_queries, v, params, x_top, v_top)
    reference = ideal(params, schedule, delivered["x_keys"], delivered["x_queries"], delivered["values"],
                      block_astrocyte)
    y_top = codes.latency_top(reference["y"], delivered["base"]) if y_top is None else float(y_top)
    n_write = write_spikes(params)
    release_ref = float(params["kappa"]) * n_write

    learn = schedule.learn_windows()
    reads = schedule.query_windows()
    namespace = dict(write_phase=blocks.table(schedule.write_phase(), "write_phase_table"),
                     read_phase=blocks.table(schedule.read_phase(), "read_phase_table"),
                     recruited_token=blocks.table(schedule.recruited_token(), "recruited_token_table"),
                     contrast=blocks.table(schedule.contrast(), "contrast_table"))

    # Key/query encoders: k_t at the learning window's start, -k_t at its middle, x_q at the read's start.
    half = schedule.t_learn / 2
    key_times = np.concatenate([learn[:, 0], learn[:, 0] + half, reads[:, 0]])
    key_values = np.concatenate([x_keys, -x_keys, x_queries])
    table = np.zeros((schedule.n_bins(), 2 * dim))
    table[np.rint(key_times / schedule.bin).astype(int)] = signed_rates(key_values, 1.0)
    key_encoders = windowed_latency_neurons(2 * dim, LATENCY_ENCODER_EQS, LATENCY_TABLE_VALUE,
                                            _starts(schedule, key_times), params,
                                            dict(value_table=blocks.table(table, "key_value_table")), "key_encoders",
                                            delivered["x_top"])
    key_encoders.channel = np.arange(2 * dim)
    # Value encoders: v_t at the token window's start (the teacher holds it through the write).
    token_starts = schedule.token_windows()[:, 0]
    table = np.zeros((schedule.n_bins(), 2 * value_dim))
    table[np.rint(token_starts / schedule.bin).astype(int)] = signed_rates(v, 1.0)
    value_encoders = windowed_latency_neurons(2 * value_dim, LATENCY_ENCODER_EQS, LATENCY_TABLE_VALUE,
                                              _starts(schedule, token_starts), params,
                                              dict(value_table=blocks.table(table, "value_value_table")),
                                              "value_encoders", delivered["v_top"])
    value_encoders.channel = np.arange(2 * value_dim)

    counting = counting_windows(schedule, params)
    key_namespace = dict(namespace, count_phase=blocks.table(schedule.phase(counting), "count_phase_table"),
                         query_start=blocks.table(_starts(schedule, reads[:, 0]), "query_start_table"),
                         learn_start=blocks.table(_starts(schedule, learn[:, 0]), "learn_start_table"),
                         count_start=blocks.table(_starts(schedule, counting[:, 0]), "count_start_table"))
    keys = blocks.neuron_group(n_populations, LATENCY_KEY_NEURON_EQS, params, key_namespace, "key_neurons",
                               threshold=LATENCY_KEY_NEURON_THRESHOLD, reset=LATENCY_KEY_NEURON_RESET,
                               method="euler", uses=(LATENCY_KEY_NEURON_WINDOWS,),
                               extra={"golden": (np.sqrt(5) - 1) / 2})
    keys.run_regularly(LATENCY_KEY_NEURON_WINDOWS, dt=TABLE_BIN, when="start", name="key_neurons_windows")
    keys.token = np.arange(n_populations)
    keys.in_use = (np.arange(n_populations) < n_tokens).astype(float)
    keys.phase_offset = streams.phases.uniform(0, 1, size=n_populations)
    pre, post = np.meshgrid(np.arange(2 * dim), np.arange(n_populations), indexing="ij")
    afferents = blocks.synapses(key_encoders, keys, LATENCY_AFFERENT_SYNAPSE_MODEL, params, namespace,
                                "afferent_synapses", {"i": pre.ravel(), "j": post.ravel()},
                                on_pre=LATENCY_AFFERENT_SYNAPSE_ON_PRE, dt=params["dt_enc"],
                                extra={"eta_key": (0 if preload else 1) * params["delta_u"]})
    if preload:
        x_written = np.concatenate([delivered["x_keys"], np.zeros((n_populations - n_tokens, dim))])
        afferents.w_aff = (polarity_sign(pre.ravel()) * x_written[post.ravel(), pre.ravel() // 2]
                           * float(params["delta_u"])) * volt

    drive = blocks.neuron_group(2 * value_dim, LATENCY_VALUE_DRIVE_EQS, params,
                                dict(namespace, teach_start=blocks.table(_starts(schedule, token_starts),
                                                                         "teach_start_table")),
                                "value_drive", method="exact", uses=(LATENCY_TEACHER_WINDOWS,))
    drive.run_regularly(LATENCY_TEACHER_WINDOWS, dt=TABLE_BIN, when="start", name="value_drive_windows")
    teacher = blocks.synapses(value_encoders, drive, TEACHER_SYNAPSE_MODEL, params, namespace, "teacher_synapses",
                              {"i": np.arange(2 * value_dim), "j": np.arange(2 * value_dim)},
                              on_pre=LATENCY_TEACHER_SYNAPSE_ON_PRE, dt=params["dt_enc"])
    outputs = output_windows(schedule, params)
    values = windowed_latency_neurons(2 * value_dim, LATENCY_VALUE_NEURON_EQS, LATENCY_VALUE_NEURON_VALUE,
                                      _starts(schedule, outputs[:, 0]), params, namespace, "value_neurons", y_top,
                                      # The divisive gain's scale: y = (kappa / eta_hebb) I_num / A (the
                                      # Hebbian and release gains per write spike).
                                      extra={"output_scale": float(params["kappa"]) / float(params["eta_hebb"])})
    values.I_num = linked_var(drive, "I_num", index=np.arange(2 * value_dim))
    values.I_num_opposite = linked_var(drive, "I_num", index=np.arange(2 * value_dim) ^ 1)
    tripartite = blocks.synapses(keys, drive, TRIPARTITE_SYNAPSE_MODEL, params, namespace, "tripartite_synapses", {},
                                 on_pre=TRIPARTITE_SYNAPSE_ON_PRE, method="exact")
    cell, processes, (astrocyte_monitor, process_monitor) = blocks.astrocyte(keys, astrocyte, params, namespace)
    groups = {"key_encoders": key_encoders, "value_encoders": value_encoders, "key_neurons": keys,
              "value_drive": drive, "value_neurons": values, "astrocyte": cell, "afferent_synapses": afferents,
              "teacher_synapses": teacher, "tripartite_synapses": tripartite, "astro_processes": processes}
    monitors = {**blocks.spike_monitors(groups, "key_neurons"), "astrocyte_monitor": astrocyte_monitor,
                "process_monitor": process_monitor}
    set_point = adenosine_set_point(params, release_ref)
    blocked = (set_point, reference["theta"] * volt) if block_astrocyte else None
    normaliser = blocks.key_normaliser(cell, values, keys, params, namespace, set_point, blocked)
    groups.update(normaliser[0])
    monitors.update(normaliser[1])
    n_out = 0
    if w_out is not None:
        n_out = len(w_out)
        # The ON (OFF) value neuron of dimension i adds (subtracts) W_O[:, i] times what it carries.
        channel = np.arange(2 * value_dim)
        weights = polarity_sign(channel)[:, None] * np.asarray(w_out, dtype=float).T[channel // 2]
        gate = dict(namespace, count_phase=blocks.table(schedule.phase(outputs), "out_count_table"))
        # Sampled at the end of every read window, empty ones included (one table per bucket).
        groups.update(projection([(values, weights)], np.zeros(n_out) if b_out is None else b_out, params, gate,
                                 "out", output_windows(schedule, params, padded=True), schedule.duration,
                                 float(params["dt_enc"]), on_pre=LATENCY_PROJECTION_ON_PRE))
        monitors["out_samples"] = groups.pop("out_samples")
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "exact", "code": "latency", "n_out": n_out, "key_layer": "key_neurons",
              "neurons_per_key": 1, "neurons_per_value": 1, "encoders_per_dim": 1, "astrocyte": astrocyte,
              "encoder": "latency", "block_astrocyte": bool(block_astrocyte), "causal": bool(schedule.causal),
              "preload": bool(preload), "scale": scale, "n_tokens": n_populations,
              "n_queries": schedule.n_query_windows, "dim": dim, "value_dim": value_dim,
              "x_top": delivered["x_top"], "v_top": delivered["v_top"], "y_top": y_top,
              "levels": delivered["levels"], "write_spikes": n_write}
    inputs = {"x_keys": x_keys, "x_queries": x_queries, "values": v}
    return LatencyAttentionCircuit("exact", network, groups, monitors, schedule, params, config, inputs, streams)


@dataclass
class LatencyAttentionCircuit(AttentionCircuit):
    """The latency-coded exact-kernel head (see the module docstring): one value neuron per ON/OFF
    channel, whose single spike per read carries the output."""

    def output_windows(self, padded=False) -> np.ndarray:
        return output_windows(self.schedule, self.params, padded)

    def population_counts(self) -> np.ndarray:
        """Spikes (n_queries x 2 d_v) of each ON/OFF value neuron in each real read's output window
        (0 or 1)."""
        return self.window_counts("value_neurons", self.output_windows())

    def decode(self) -> np.ndarray:
        """The output y (n_queries x d_v) from the value neurons' spike times: a spike k steps of
        dt_enc into its read's output window carries y_top B^(1/2 - k); ON minus OFF."""
        if not self.has_run:
            raise RuntimeError("run the circuit before decoding it")
        mon = self.monitors["value_neurons_spikes"]
        t, i = np.asarray(mon.t_[:], dtype=float), np.asarray(mon.i[:], dtype=int)
        dt_enc, base, y_top = float(self.params["dt_enc"]), float(self.params["code_base"]), self.config["y_top"]
        value_dim = self.config["value_dim"]
        y = np.zeros((self.schedule.n_queries, value_dim))
        for s, (start, stop) in enumerate(self.output_windows()):
            inside = (t >= start - dt_enc / 2) & (t < stop - dt_enc / 2)
            steps = np.rint((t[inside] - start) / dt_enc)
            np.add.at(y[s], i[inside] // 2, polarity_sign(i[inside]) * y_top * base ** (0.5 - steps))
        return y


def rate_model(circuit: LatencyAttentionCircuit) -> dict:
    """The head's ideal (softmax with the memory's fading; blocked: the unnormalised sum) and its
    error budget on the latency code (``analysis.codes.latency_attention_error``): scores and values
    quantised by the code (each component within B^(+-1/2)), each key's filtered count at the end of
    the counting part (a regular train at the key's rate, ``analysis.codes.leaky_regular_count``),
    and the output's latency code at top y_top."""
    p, s, inp, config = circuit.params, circuit.schedule, circuit.inputs, circuit.config
    blocked = config["block_astrocyte"]
    base, levels = float(p["code_base"]), config["levels"]
    delivered = delivered_inputs(inp["x_keys"], inp["x_queries"], inp["values"], p)
    scores_at = ideal(p, s, delivered["x_keys"], delivered["x_queries"], delivered["values"], blocked)
    exact = ideal(p, s, inp["x_keys"], inp["x_queries"], inp["values"], blocked)
    if blocked:
        # The blocked read's rates follow the scores about the held theta: from the exact scores.
        exact = dict(exact, rates=float(p["rho_key"]) * np.exp(exact["scores"] - scores_at["theta"] / float(p["delta_u"])))
        exact["y"] = (exact["rates"] * exact["numerator"]) @ inp["values"] / float(p["R_key_target"])
    tau = float(p["tau_read"])
    counts, count_var = codes.leaky_regular_count(exact["rates"], tau)
    noise = codes.latency_attention_error(
        inp["x_queries"], inp["x_keys"], inp["values"], exact["numerator"], exact["denominator"], counts, count_var,
        codes.latency_variance(inp["x_queries"], config["x_top"], base, levels),
        codes.latency_variance(inp["x_keys"], config["x_top"], base, levels),
        codes.latency_variance(inp["values"], config["v_top"], base, levels),
        codes.latency_variance(exact["y"], config["y_top"], base, levels),
        count_scale=float(p["R_key_target"]) * tau if blocked else None)
    return {"y_rate": exact["y"], "noise": noise}


def settled_adenosine_level(circuit: LatencyAttentionCircuit, tail=0.25) -> np.ndarray:
    """Mean theta (V) over the last ``tail`` of each real read's counting part, where the adenosine
    loop has settled (a read's counting part lasts a few tau_theta; the mean over the whole read,
    ``circuits.exact_kernel.measured_adenosine_level``, includes the loop's transient from the
    previous query's level)."""
    monitor = circuit.monitors["adenosine_monitor"]
    t, theta = np.asarray(monitor.t_[:]), np.asarray(monitor.theta_[0])
    windows = counting_windows(circuit.schedule, circuit.params)
    return np.array([theta[(t >= stop - tail * (stop - start)) & (t < stop)].mean() for start, stop in windows])


def delivered_log_denominator(circuit: LatencyAttentionCircuit) -> np.ndarray:
    """log sum_t z_t exp(x_q . x_k_t) per real query, with the keys and queries as the code delivered
    them (the denominator the circuit computes; quantised scores differ from the exact ones by
    ~|x_q||x_k| ln(B)/sqrt(6 d))."""
    p, inp = circuit.params, circuit.inputs
    delivered = delivered_inputs(inp["x_keys"], inp["x_queries"], inp["values"], p)
    return log_denominator(delivered["x_keys"], delivered["x_queries"], process_memory(p, circuit.schedule))[1]
