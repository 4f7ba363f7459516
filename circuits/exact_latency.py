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

**One spike per key** (``key_code="latency"``; docs/model.md §3, "One spike per key"). The
regular key code spends ~500 key spikes per read, each reaching every value drive (~60 synaptic
events per model MAC), and needs a 100 ms count and the adenosine loop's settling. The one-spike
key code carries exp((u_t - theta_ref) / delta_u) in the efficacy of a single spike, the
log-domain (time-to-first-spike) softmax of SpikedAttention (Hwang et al., NeurIPS 2024) and of TTFS
networks with ramping potentials (Stanojevic et al. 2024, doi:10.1038/s41467-024-51110-5; Park et
al. 2020, T2FSNN, doi:10.1109/DAC18072.2020.9218689). A read: the query window (t_settle = t_code:
the query's spikes accumulate u_t = delta_u x_q . x_k), the key window (t_read - t_code: key t's
potential starts at u_t and rises by delta_u ln B_key per step of dt_enc; it fires once, on reaching
theta_ref, with efficacy B_key^(1/2 - k) = exp((u_t - theta_ref) / delta_u) within B_key^(+-1/2);
``models.neurons.ONE_SPIKE_KEY_NEURON_EQS``) and the output window (t_code). The tripartite
synapses add w_ti e_t to a leak-free I_num and the processes release_t e_t to a leak-free A, both
cleared at the key window's start, so y = (kappa / eta_hebb) I_num / A is softmax attention:
theta_ref cancels in the ratio, and the astrocyte still carries the denominator: A is
exp(-theta_ref / delta_u) sum_t z_t exp(u_t / delta_u), and its log signal theta_ref / delta_u +
ln(A / release_ref) (:func:`astrocyte_log_signal`) tracks log sum_t z_t exp(x_q . x_k_t) within
ln(B_key) / 2 (:func:`log_signal_bound`). No adenosine loop: theta_ref is a fixed top per head
known before simulating (``score_top`` in nats; default the head's own largest score plus half a
step; in the transformer twice the head's largest score over the calibration corpus,
``transformer.calibration``), like the latency code's x_top; a key above it clips (fires at step 0:
an error, in the budget), a key more than the window's range (key_levels ln B_key) below it never
fires. Blocked (``block_astrocyte``), A is held at its mean over the reads: the read is the
unnormalised sum_t w_t e_t v_t over a constant. Signs travel with single spikes here: one signed
key/query encoder per dimension (its spike carries sign(x); ``models.encoders.SIGNED_LATENCY_POLARITY``)
writes the afferents in one window without the mirror -k_t, and one signed drive per value
dimension takes the tripartite weights (the ON and OFF teachers add +-v), halving the write's and
the read's fan-out: 1.66 synaptic events per model MAC on a 12-token head with d = 32 (2.74 with ON/OFF
pairs). Budget (:func:`one_spike_rate_model`): scores, values and output as above, and each key's
efficacy with relative variance ``analysis.codes.key_efficacy_variance`` in place of the counts.
Departures from physiology besides the regular code's: a release efficacy that falls by B_key
every 0.05 ms (the decaying kernel of TTFS networks, far faster than synaptic depression), a
leak-free numerator and astrocyte signal reset at each read, neurons whose single spike carries a
sign and synapses whose sign is learned.

Padding (``pad_to``) as in the rate head: empty windows show nothing, their key neurons are never
recruited and never fire, empty reads have no output window. Causal schedules use the same tables
(keys not yet written fire but carry no weight and no process memory).

Measured (layer 2, head 5 of all-MiniLM-L6-v2 on "The quick brown fox jumps over the lazy dog.",
12 tokens, d = d_v = 32; dt 0.1 ms, dt_enc 0.05 ms, t_code 5 ms, B = 1.05, R_key_target 5 kHz,
tau_read 20 ms, counting 100 ms, tau_theta 40 ms): 0.057 from softmax against a budget of 0.060,
4.7e5 synaptic events (the rate head on the short protocol: 0.119 and 1.9e7); the blocked
astrocyte's output is 9.8x further from softmax. With the one-spike key code (``key_code="latency"``,
``transformer.spiking.HEAD_ONE_SPIKE_PROTOCOL``, calibrated tops) on "A man is playing a guitar on the
stage." (12 tokens): layer 2 head 5 0.024 from softmax against a budget of 0.027 (regular key code on
the same tops: 0.029, budget 0.029), 1.66 synaptic events per model MAC (59), 1.08 s simulated (1.8),
blocked 22x further from softmax; layer 0 head 2 (scores up to 39 nats) 0.029 (regular: 0.28).
"""

from dataclasses import dataclass

import numpy as np
from brian2 import Network, StateMonitor, linked_var, volt

from analysis import codes
from analysis.attention import kernel_attention
from circuits import blocks
from circuits.circuit import AttentionCircuit, memory_weights
from circuits.codes import (SpikeTrain, check_latency, latency_levels, replayed_windowed_neurons,
                           windowed_latency_neurons)
from circuits.normaliser import adenosine_level, log_denominator, process_memory
from circuits.projection import output_weights, projection
from circuits.protocol import TABLE_BIN
from models.astrocytes import ONE_SPIKE_ASTROCYTE_EQS, ONE_SPIKE_ASTROCYTE_WINDOWS, ONE_SPIKE_READ_ON_PRE
from models.encoders import (LATENCY_ENCODER_EQS, LATENCY_TABLE_VALUE, SIGNED_LATENCY_POLARITY, polarity_sign,
                             signed_rates)
from models.gliotransmission import adenosine_set_point
from models.neurons import (LATENCY_KEY_NEURON_EQS, LATENCY_KEY_NEURON_RESET, LATENCY_KEY_NEURON_THRESHOLD,
                            LATENCY_KEY_NEURON_WINDOWS, LATENCY_TEACHER_WINDOWS, LATENCY_VALUE_DRIVE_EQS,
                            LATENCY_VALUE_NEURON_EQS, LATENCY_VALUE_NEURON_VALUE, ONE_SPIKE_KEY_NEURON_EQS,
                            ONE_SPIKE_KEY_NEURON_RESET, ONE_SPIKE_KEY_NEURON_THRESHOLD, ONE_SPIKE_KEY_NEURON_WINDOWS,
                            ONE_SPIKE_VALUE_DRIVE_EQS, ONE_SPIKE_VALUE_DRIVE_WINDOWS, ONE_SPIKE_VALUE_NEURON_EQS,
                            ONE_SPIKE_VALUE_NEURON_VALUE)
from models.parameters import ParameterError
from models.projection import LATENCY_PROJECTION_ON_PRE
from models.synapses import (LATENCY_AFFERENT_SYNAPSE_MODEL, LATENCY_AFFERENT_SYNAPSE_ON_PRE,
                             LATENCY_TEACHER_SYNAPSE_ON_PRE, ONE_SPIKE_AFFERENT_SYNAPSE_ON_PRE,
                             ONE_SPIKE_TEACHER_SYNAPSE_ON_PRE, ONE_SPIKE_TRIPARTITE_SYNAPSE_ON_PRE, TEACHER_SYNAPSE_MODEL,
                             TRIPARTITE_SYNAPSE_MODEL, TRIPARTITE_SYNAPSE_ON_PRE)

#: Most spikes per time step of a regular key neuron at the astrocyte's set point (R_key_target, all
#: attention on one key): a phase neuron fires at most once per step, and theta's transients
#: overshoot the set point: a factor 2 of headroom.
MAX_KEY_SPIKES_PER_STEP = 0.5


def write_spikes(params) -> int:
    """Write spikes of a recruited key neuron: its phase starts at 1/2, so it fires at
    (n + 1/2) / rho_recruit for every n with that time inside the learning window, not at its end:
    ceil(rho_recruit t_learn - 1/2) (round(rho_recruit t_learn) but where a spike would fall on the
    window's end, as at rho_recruit t_learn = 1/2 or 3/2, which the neuron does not fire)."""
    return int(np.ceil(float(params["rho_recruit"] * params["t_learn"]) - 0.5 - 1e-9))


#: How the key neurons carry exp(u_t - theta) in a read: ``regular`` firing at that rate through a
#: counting part (the adenosine loop holds the total rate), or ``latency``: one spike per key and
#: read whose efficacy carries it (the one-spike key code; see the module docstring).
KEY_CODES = ("regular", "latency")


def check_key_code(key_code, code="latency") -> None:
    """ValueError with one line for an unknown key code, or the one-spike key code off the latency head."""
    if key_code not in KEY_CODES:
        raise ValueError(f"unknown key_code {key_code!r}; choose one of {', '.join(KEY_CODES)}")
    if key_code != "regular" and code != "latency":
        raise ValueError(f"key_code={key_code!r} needs the latency head (code='latency'), got code={code!r}")


def key_levels(params) -> int:
    """Steps of dt_enc in the one-spike key code's key window (the read's t_read - t_code)."""
    return int(round(float((params["t_read"] - params["t_code"]) / params["dt_enc"])))


def check_latency_head(params, causal=False, key_code="regular") -> None:
    """Refuse (ParameterError, one line) a protocol the latency head cannot run."""
    check_latency(params)
    t_code, dt_enc, dt = (float(params[n]) for n in ("t_code", "dt_enc", "dt"))
    if dt_enc > dt:
        raise ParameterError(f"dt_enc = {dt_enc * 1e3:g} ms must not exceed dt = {dt * 1e3:g} ms")
    if float(params["t_settle"]) < t_code:
        raise ParameterError("t_settle must hold the value's and the query's latency window (t_settle >= t_code)")
    # The regular keys write k_t and its mirror -k_t, the one-spike keys' signed encoders k_t alone.
    windows = 1 if key_code == "latency" else 2
    if float(params["t_learn"]) < windows * t_code:
        raise ParameterError(f"t_learn must hold the key's {'latency window' if windows == 1 else 'two latency windows'} "
                             f"(t_learn >= {'' if windows == 1 else '2 '}t_code)")
    if float(params["t_read"]) <= t_code:
        raise ParameterError("t_read must be longer than its output window (t_read > t_code)")
    if write_spikes(params) < 1:
        raise ParameterError("rho_recruit * t_learn must give a recruited key neuron at least one write spike")
    if key_code == "latency":
        if params["key_code_base"] <= 1:
            raise ParameterError(f"key_code_base must be > 1 (the key efficacy's fall per step), "
                                 f"got {params['key_code_base']:g}")
        if key_levels(params) < 2:
            raise ParameterError("t_read - t_code (the key window) must span at least two steps of dt_enc")
        return
    per_step = float(params["R_key_target"] * params["dt"])
    if per_step > MAX_KEY_SPIKES_PER_STEP:
        raise ParameterError(f"R_key_target = {float(params['R_key_target']):g} Hz makes a regular key neuron fire "
                             f"{per_step:.2g} times per step of dt; {MAX_KEY_SPIKES_PER_STEP} at most: lower it or dt")


def check_head_trains(trains, key_code, scale) -> None:
    """Refuse (ValueError, one line) replayed inputs a head cannot take: only one-spike keys read
    signed terminals, queries and keys share one top, and the trains carry already scaled queries
    and keys (scale 1)."""
    if key_code != "latency":
        raise ValueError("a head replays spike trains with one-spike keys only (key_code='latency')")
    if trains[0].x_top != trains[1].x_top:
        raise ValueError(f"queries and keys must share one top of range, got {trains[0].x_top:g} and "
                         f"{trains[1].x_top:g}")
    if scale != 1.0:
        raise ValueError(f"replayed queries and keys carry sqrt(scale) already: scale must be 1, got {scale:g}")


def emitted_context(circuit) -> "SpikeTrain":
    """What a head's value neurons fired (ON/OFF per value dimension), as the train the attention
    output's next stage replays: query s's context in its output window."""
    monitor = circuit.monitors["value_neurons_spikes"]
    starts = output_windows(circuit.schedule, circuit.params)[:, 0]
    return SpikeTrain.recorded(monitor.t_[:], monitor.i[:], starts, float(circuit.params["dt_enc"]),
                               circuit.config["value_dim"], circuit.config["y_top"],
                               float(circuit.params["code_base"]), circuit.config["levels"])


def _starts(schedule, times) -> np.ndarray:
    """A 0/1 table (one entry per TABLE_BIN) that is 1 in the bins where ``times`` fall."""
    out = np.zeros(schedule.n_bins())
    out[np.rint(np.asarray(times, dtype=float) / schedule.bin).astype(int)] = 1.0
    return out


def shown_values(schedule, times, values, params, name, top, signed=False):
    """The latency encoders ``<name>_encoders`` that show row n of ``values`` in a latency window
    starting at ``times[n]``: one per ON/OFF channel of each dimension, or with ``signed`` one per
    dimension whose spike carries the sign (``models.encoders.SIGNED_LATENCY_POLARITY``)."""
    channels = np.asarray(values, dtype=float) if signed else signed_rates(values, 1.0)
    table = np.zeros((schedule.n_bins(), channels.shape[1]))
    table[np.rint(np.asarray(times) / schedule.bin).astype(int)] = channels
    eqs, value = ((LATENCY_ENCODER_EQS + "\npolarity : 1", "abs(value_table(t, channel))") if signed
                  else (LATENCY_ENCODER_EQS, LATENCY_TABLE_VALUE))
    encoders = windowed_latency_neurons(channels.shape[1], eqs, value, _starts(schedule, times), params,
                                        dict(value_table=blocks.table(table, f"{name}_value_table")),
                                        f"{name}_encoders", top)
    if signed:
        encoders.run_regularly(SIGNED_LATENCY_POLARITY, dt=TABLE_BIN, when="before_thresholds",
                               name=f"{name}_encoders_polarity")
    encoders.channel = np.arange(channels.shape[1])
    return encoders


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


def score_top_of(params, schedule, x_keys, x_queries) -> float:
    """The one-spike key code's default score top (nats): the head's own largest delivered score
    plus half a step of ln B_key, so the top key sits in the middle of its level (as
    ``analysis.codes.latency_top`` puts a code's largest value)."""
    scores, _ = log_denominator(x_keys, x_queries, process_memory(params, schedule))
    return float(scores.max() + 0.5 * np.log(float(params["key_code_base"])))


def one_spike_read(params, schedule, x_keys, x_queries, values, score_top, blocked=False) -> dict:
    """The one-spike key code's read as NumPy computes it from the inputs the circuit holds (the
    delivered keys, queries and values): each key's efficacy per read (``analysis.codes.key_efficacy``;
    keys not yet written have score 0 and no weight or memory), the astrocyte's signal per read in
    units of one token's release, A / release_ref = sum_t z_t e_t, and the output: their ratio
    y = sum_t w_t e_t v_t / sum_t z_t e_t, or blocked, over the signal's mean over the reads."""
    numerator, denominator = memory_weights(params, schedule.age_at_reads())
    scores, _ = log_denominator(x_keys, x_queries, denominator)
    efficacy = codes.key_efficacy(scores, score_top, float(params["key_code_base"]), key_levels(params))
    signal = np.sum(denominator * efficacy, axis=1)
    held = float(signal.mean())
    divisor = np.full_like(signal, held) if blocked else np.where(signal > 0, signal, 1.0)
    return {"scores": scores, "efficacy": efficacy, "signal": signal, "held_signal": held,
            "y": (numerator * efficacy) @ values / divisor[:, None]}


def build_latency_exact_circuit(q, k, v, scale, schedule, params, streams, *, astrocyte="minimal",
                                block_astrocyte=False, preload=False, w_out=None, b_out=None, x_top=None, v_top=None,
                                y_top=None, key_code="regular", score_top=None, trains=None) -> "LatencyAttentionCircuit":
    """Build the latency-coded exact-kernel head (see the module docstring); called by
    ``circuits.exact_kernel.build_exact_kernel_circuit`` with ``code="latency"`` after it has checked
    the head and built its schedule and seeds. One key neuron per token, one encoder per ON/OFF
    channel and one value neuron per ON/OFF channel: the rate head's ``neurons_per_key``,
    ``encoders_per_dim``, ``neurons_per_value`` and ``encoder`` do not apply. ``x_top``, ``v_top``,
    ``y_top``: tops of range (default the head's own: :func:`delivered_inputs`, and the ideal
    output's largest value times sqrt(B)). ``key_code``: ``regular`` key firing through a counting
    part, or ``latency``: one spike per key and read (the module docstring); ``score_top``: its
    threshold theta_ref / delta_u in nats (default :func:`score_top_of`, the head's own). ``trains``:
    the (queries, keys, values) as ``circuits.codes.SpikeTrain`` s of another stage's emitters, the
    queries and keys already scaled by sqrt(scale) (one-spike keys only; ``q``, ``k``, ``v`` are then
    what they carry and ``scale`` is 1): the head replays them (their tops are the head's x_top and
    v_top) instead of encoding values (docs/model.md §12)."""
    check_key_code(key_code)
    check_latency_head(params, schedule.causal, key_code)
    one_spike = key_code == "latency"
    if trains is not None:
        check_head_trains(trains, key_code, scale)
        x_top, v_top = trains[0].x_top, trains[2].x_top
    x_keys, x_queries = np.sqrt(scale) * k, np.sqrt(scale) * q
    n_tokens, dim, value_dim = len(k), q.shape[1], v.shape[1]
    n_populations = schedule.n_token_windows
    delivered = delivered_inputs(x_keys, x_queries, v, params, x_top, v_top)
    held_signal = None
    if one_spike:
        score_top = (score_top_of(params, schedule, delivered["x_keys"], delivered["x_queries"]) if score_top is None
                     else float(score_top))
        read = one_spike_read(params, schedule, delivered["x_keys"], delivered["x_queries"], delivered["values"],
                              score_top, block_astrocyte)
        reference, held_signal = {"y": read["y"]}, read["held_signal"]
    else:
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

    if trains is not None:
        # The queries' and keys' emitters replayed, one signed terminal per dimension; the values' per channel.
        key_encoders = replayed_windowed_neurons([(trains[1], learn[:, 0]), (trains[0], reads[:, 0])],
                                                 schedule.n_bins(), params, {}, "key_encoders", signed=True)
    elif one_spike:
        # Key/query encoders, one signed per dimension: k_t at the learning window's start, x_q at the read's start.
        key_encoders = shown_values(schedule, np.concatenate([learn[:, 0], reads[:, 0]]),
                                    np.concatenate([x_keys, x_queries]), params, "key", delivered["x_top"], signed=True)
    else:
        # Key/query encoders: k_t at the learning window's start, -k_t at its middle, x_q at the read's start.
        half = schedule.t_learn / 2
        key_encoders = shown_values(schedule, np.concatenate([learn[:, 0], learn[:, 0] + half, reads[:, 0]]),
                                    np.concatenate([x_keys, -x_keys, x_queries]), params, "key", delivered["x_top"])
    n_key_channels = len(key_encoders)
    # Value encoders: v_t at the token window's start (the teacher holds it through the write).
    token_starts = schedule.token_windows()[:, 0]
    if trains is not None:
        value_encoders = replayed_windowed_neurons([(trains[2], token_starts)], schedule.n_bins(), params, {},
                                                   "value_encoders")
    else:
        value_encoders = shown_values(schedule, token_starts, v, params, "value", delivered["v_top"])

    counting = counting_windows(schedule, params)
    key_namespace = dict(namespace, count_phase=blocks.table(schedule.phase(counting), "count_phase_table"),
                         query_start=blocks.table(_starts(schedule, reads[:, 0]), "query_start_table"),
                         learn_start=blocks.table(_starts(schedule, learn[:, 0]), "learn_start_table"),
                         count_start=blocks.table(_starts(schedule, counting[:, 0]), "count_start_table"))
    if one_spike:
        # The key window is the read's counting part: key_window and key_start name its tables.
        key_base, levels_key = float(params["key_code_base"]), key_levels(params)
        namespace.update(key_window=key_namespace.pop("count_phase"), key_start=key_namespace.pop("count_start"))
        key_namespace.update(key_window=namespace["key_window"], key_start=namespace["key_start"])
        keys = blocks.neuron_group(n_populations, ONE_SPIKE_KEY_NEURON_EQS, params, key_namespace, "key_neurons",
                                   threshold=ONE_SPIKE_KEY_NEURON_THRESHOLD, reset=ONE_SPIKE_KEY_NEURON_RESET,
                                   method="euler", dt=params["dt_enc"], uses=(ONE_SPIKE_KEY_NEURON_WINDOWS,),
                                   extra={"tau_key": params["dt_enc"] / np.log(key_base),
                                          "key_fall": (1 - 1 / key_base) / params["dt_enc"],
                                          "theta_ref": score_top * params["delta_u"]})
        keys.run_regularly(ONE_SPIKE_KEY_NEURON_WINDOWS, dt=TABLE_BIN, when="before_thresholds",
                           name="key_neurons_windows")
    else:
        keys = blocks.neuron_group(n_populations, LATENCY_KEY_NEURON_EQS, params, key_namespace, "key_neurons",
                                   threshold=LATENCY_KEY_NEURON_THRESHOLD, reset=LATENCY_KEY_NEURON_RESET,
                                   method="euler", uses=(LATENCY_KEY_NEURON_WINDOWS,),
                                   extra={"golden": (np.sqrt(5) - 1) / 2})
        keys.run_regularly(LATENCY_KEY_NEURON_WINDOWS, dt=TABLE_BIN, when="start", name="key_neurons_windows")
        keys.phase_offset = streams.phases.uniform(0, 1, size=n_populations)
    keys.token = np.arange(n_populations)
    keys.in_use = (np.arange(n_populations) < n_tokens).astype(float)
    pre, post = np.meshgrid(np.arange(n_key_channels), np.arange(n_populations), indexing="ij")
    afferents = blocks.synapses(key_encoders, keys, LATENCY_AFFERENT_SYNAPSE_MODEL, params, namespace,
                                "afferent_synapses", {"i": pre.ravel(), "j": post.ravel()},
                                on_pre=ONE_SPIKE_AFFERENT_SYNAPSE_ON_PRE if one_spike else LATENCY_AFFERENT_SYNAPSE_ON_PRE,
                                dt=params["dt_enc"], extra={"eta_key": (0 if preload else 1) * params["delta_u"]})
    if preload:
        x_written = np.concatenate([delivered["x_keys"], np.zeros((n_populations - n_tokens, dim))])
        written = (x_written[post.ravel(), pre.ravel()] if one_spike
                   else polarity_sign(pre.ravel()) * x_written[post.ravel(), pre.ravel() // 2])
        afferents.w_aff = written * float(params["delta_u"]) * volt

    # Value drives: one per ON/OFF channel, or under the one-spike key code one signed per dimension.
    channel = np.arange(2 * value_dim)
    drive_eqs, drive_windows = ((ONE_SPIKE_VALUE_DRIVE_EQS, ONE_SPIKE_VALUE_DRIVE_WINDOWS) if one_spike
                                else (LATENCY_VALUE_DRIVE_EQS, LATENCY_TEACHER_WINDOWS))
    drive = blocks.neuron_group(value_dim if one_spike else 2 * value_dim, drive_eqs, params,
                                dict(namespace, teach_start=blocks.table(_starts(schedule, token_starts),
                                                                         "teach_start_table")),
                                "value_drive", method="exact", uses=(drive_windows,))
    drive.run_regularly(drive_windows, dt=TABLE_BIN, when="start", name="value_drive_windows")
    teacher = blocks.synapses(value_encoders, drive, TEACHER_SYNAPSE_MODEL, params, namespace, "teacher_synapses",
                              {"i": channel, "j": channel // 2 if one_spike else channel},
                              on_pre=ONE_SPIKE_TEACHER_SYNAPSE_ON_PRE if one_spike else LATENCY_TEACHER_SYNAPSE_ON_PRE,
                              dt=params["dt_enc"])
    if one_spike:
        teacher.w_teach = polarity_sign(channel)
    outputs = output_windows(schedule, params)
    # The divisive gain's scale: y = (kappa / eta_hebb) I_num / A (the Hebbian and release gains per
    # write spike); under the one-spike key code the floor of A is that of the weakest key spike.
    value_extra = {"output_scale": float(params["kappa"]) / float(params["eta_hebb"])}
    if one_spike:
        value_extra["key_efficacy_floor"] = key_base ** (0.5 - levels_key)
    values = windowed_latency_neurons(2 * value_dim, ONE_SPIKE_VALUE_NEURON_EQS if one_spike else LATENCY_VALUE_NEURON_EQS,
                                      ONE_SPIKE_VALUE_NEURON_VALUE if one_spike else LATENCY_VALUE_NEURON_VALUE,
                                      _starts(schedule, outputs[:, 0]), params, namespace, "value_neurons", y_top,
                                      extra=value_extra)
    if one_spike:
        values.I_num = linked_var(drive, "I_num", index=channel // 2)
        values.polarity = polarity_sign(channel)
    else:
        values.I_num = linked_var(drive, "I_num", index=channel)
        values.I_num_opposite = linked_var(drive, "I_num", index=channel ^ 1)
    if one_spike:
        # Key spikes on the clock dt_enc: the synapses they drive run on it too.
        tripartite = blocks.synapses(keys, drive, TRIPARTITE_SYNAPSE_MODEL, params, namespace, "tripartite_synapses",
                                     {}, on_pre=ONE_SPIKE_TRIPARTITE_SYNAPSE_ON_PRE, method="exact",
                                     dt=params["dt_enc"])
        cell, processes, (astrocyte_monitor, process_monitor) = blocks.astrocyte(
            keys, astrocyte, params, namespace, cell_model=ONE_SPIKE_ASTROCYTE_EQS, read_on_pre=ONE_SPIKE_READ_ON_PRE,
            dt=params["dt_enc"])
        cell.run_regularly(ONE_SPIKE_ASTROCYTE_WINDOWS, dt=TABLE_BIN, when="start", name="astrocyte_windows")
    else:
        tripartite = blocks.synapses(keys, drive, TRIPARTITE_SYNAPSE_MODEL, params, namespace, "tripartite_synapses",
                                     {}, on_pre=TRIPARTITE_SYNAPSE_ON_PRE, method="exact")
        cell, processes, (astrocyte_monitor, process_monitor) = blocks.astrocyte(keys, astrocyte, params, namespace)
    groups = {"key_encoders": key_encoders, "value_encoders": value_encoders, "key_neurons": keys,
              "value_drive": drive, "value_neurons": values, "astrocyte": cell, "afferent_synapses": afferents,
              "teacher_synapses": teacher, "tripartite_synapses": tripartite, "astro_processes": processes}
    monitors = {**blocks.spike_monitors(groups, "key_neurons"), "astrocyte_monitor": astrocyte_monitor,
                "process_monitor": process_monitor}
    if one_spike:
        # The astrocyte's signal at the end of each key window (sampled every table bin, at the
        # end of the step): its log is the attention denominator's (astrocyte_log_signal).
        monitors["read_signal_monitor"] = StateMonitor(cell, "A", record=True, dt=TABLE_BIN, when="end",
                                                       name="read_signal_monitor")
        if block_astrocyte:
            # The negative control: A held at its mean over the reads (what NumPy's read gives).
            block = blocks.blocked_astrocyte(params, namespace, held_signal * release_ref)
            blocks.link_astrocyte(block, values)
            groups["astrocyte_block"] = block
        else:
            blocks.link_astrocyte(cell, values)
    else:
        set_point = adenosine_set_point(params, release_ref)
        blocked = (set_point, reference["theta"] * volt) if block_astrocyte else None
        normaliser = blocks.key_normaliser(cell, values, keys, params, namespace, set_point, blocked)
        groups.update(normaliser[0])
        monitors.update(normaliser[1])
    n_out = 0
    if w_out is not None:
        w_out, b_out = output_weights(w_out, b_out)
        n_out = len(w_out)
        # The ON (OFF) value neuron of dimension i adds (subtracts) W_O[:, i] times what it carries.
        channel = np.arange(2 * value_dim)
        weights = polarity_sign(channel)[:, None] * w_out.T[channel // 2]
        gate = dict(namespace, count_phase=blocks.table(schedule.phase(outputs), "out_count_table"))
        # Sampled at the end of every read window, empty ones included (one table per bucket).
        groups.update(projection([(values, weights)], b_out, params, gate,
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
              "levels": delivered["levels"], "write_spikes": n_write, "key_code": key_code,
              "replay_groups": ("key_encoders", "value_encoders") if trains is not None else ()}
    if one_spike:
        config.update(score_top=score_top, key_levels=levels_key)
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
    if circuit.config.get("key_code", "regular") == "latency":
        return one_spike_rate_model(circuit)
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


def one_spike_rate_model(circuit: LatencyAttentionCircuit) -> dict:
    """The one-spike key code's ideal and error budget (``analysis.codes.latency_attention_error``
    with each key's weight in place of its count). Ideal: softmax with the memory's fading (working),
    or the unnormalised sum_t w_t e_t v_t over the astrocyte's held signal (blocked). Budget, independent
    terms: the scores (x_q, x_k each within B^(+-1/2)) and the teacher's values, as the regular key
    code's; each key's efficacy, exp(u - theta_ref) within B_key^(+-1/2) (relative variance
    ``analysis.codes.key_efficacy_variance``: the code's inside the key window, the clipping's above
    theta_ref, 1 for a key below the window), through dy/d ln e_t = K_t (w_t v_t - z_t y) / D; the
    output's latency code at top y_top."""
    p, s, inp, config = circuit.params, circuit.schedule, circuit.inputs, circuit.config
    blocked = config["block_astrocyte"]
    base, levels = float(p["code_base"]), config["levels"]
    key_base, score_top = float(p["key_code_base"]), config["score_top"]
    delivered = delivered_inputs(inp["x_keys"], inp["x_queries"], inp["values"], p, config["x_top"], config["v_top"])
    read = one_spike_read(p, s, delivered["x_keys"], delivered["x_queries"], delivered["values"], score_top, blocked)
    exact = ideal(p, s, inp["x_keys"], inp["x_queries"], inp["values"], False)
    weight = np.exp(exact["scores"] - score_top)                    # each key's exact weight e^(u - theta_ref)
    relative = codes.key_efficacy_variance(read["scores"], score_top, key_base, key_levels(p))
    y = exact["y"]
    if blocked:
        y = (exact["numerator"] * weight) @ inp["values"] / read["held_signal"]
    noise = codes.latency_attention_error(
        inp["x_queries"], inp["x_keys"], inp["values"], exact["numerator"], exact["denominator"], weight,
        relative * weight ** 2,
        codes.latency_variance(inp["x_queries"], config["x_top"], base, levels),
        codes.latency_variance(inp["x_keys"], config["x_top"], base, levels),
        codes.latency_variance(inp["values"], config["v_top"], base, levels),
        codes.latency_variance(y, config["y_top"], base, levels),
        count_scale=read["held_signal"] if blocked else None)
    return {"y_rate": y, "noise": noise}


def key_efficacies(circuit: LatencyAttentionCircuit) -> np.ndarray:
    """One-spike key code: what each real key's spike carried in each real read (n_queries x
    n_tokens): B_key^(1/2 - k) for a spike k steps of dt_enc into the read's key window
    (``analysis.codes.key_efficacy``), 0 for a key that did not fire. Times the processes' memory
    z_t and normalised over the keys, the attention weights the read measured."""
    s, p = circuit.schedule, circuit.params
    monitor = circuit.monitors["key_neurons_spikes"]
    t, i = np.asarray(monitor.t_[:], dtype=float), np.asarray(monitor.i[:], dtype=int)
    dt_enc, base = float(p["dt_enc"]), float(p["key_code_base"])
    efficacy = np.zeros((s.n_queries, s.n_tokens))
    for r, (start, stop) in enumerate(counting_windows(s, p)):
        inside = (t >= start - dt_enc / 2) & (t < stop - dt_enc / 2) & (i < s.n_tokens)
        efficacy[r, i[inside]] = base ** (0.5 - np.rint((t[inside] - start) / dt_enc))
    return efficacy


def astrocyte_log_signal(circuit: LatencyAttentionCircuit) -> np.ndarray:
    """One-spike key code: the astrocyte's log signal per real query, theta_ref / delta_u +
    ln(A / release_ref), A its signal at the end of the key window (``read_signal_monitor``) and
    release_ref = kappa n_w one token's release. With every key's efficacy exp(u_t - theta_ref)
    within B_key^(+-1/2) it is log sum_t z_t exp(x_q . x_k_t) within +-ln(B_key)/2 (keys below the
    window missing, keys above theta_ref clipped): the astrocyte's log-domain denominator."""
    monitor = circuit.monitors["read_signal_monitor"]
    t, signal = np.asarray(monitor.t_[:]), np.asarray(monitor.A[0])
    ends = counting_windows(circuit.schedule, circuit.params)[:, 1]
    rows = np.searchsorted(t, ends - float(TABLE_BIN) / 2)
    release_ref = float(circuit.params["kappa"]) * circuit.config["write_spikes"]
    with np.errstate(divide="ignore"):
        return circuit.config["score_top"] + np.log(signal[rows] / release_ref)


def one_spike_normaliser(circuit: LatencyAttentionCircuit) -> dict:
    """One-spike key code: the attention denominator of each query and what the astrocyte holds of
    it, as ``circuits.exact_kernel.astrocyte_normaliser`` gives them for the regular keys:
    ``denominator`` sum_t z_t exp(x_q . x_k_t) (the keys and queries as the code delivered them),
    ``astrocyte`` exp(:func:`astrocyte_log_signal`), ``blocked`` the one level a blocked astrocyte
    holds (its signal's mean over the reads, in the same units), ``log_error`` the rms of
    log(astrocyte / denominator) over the queries, its mean removed, and ``log_spread`` the standard
    deviation of the log denominator, what a blocked astrocyte misses."""
    p, config, inp = circuit.params, circuit.config, circuit.inputs
    log_sum = delivered_log_denominator(circuit)
    log_astrocyte = astrocyte_log_signal(circuit)
    gap = log_astrocyte - log_sum
    delivered = delivered_inputs(inp["x_keys"], inp["x_queries"], inp["values"], p, config["x_top"], config["v_top"])
    held = one_spike_read(p, circuit.schedule, delivered["x_keys"], delivered["x_queries"], delivered["values"],
                          config["score_top"])["held_signal"]
    return {"denominator": np.exp(log_sum), "astrocyte": np.exp(log_astrocyte),
            "blocked": float(np.exp(config["score_top"]) * held),
            "log_error": float(np.sqrt(np.mean((gap - gap.mean()) ** 2))), "log_spread": float(np.std(log_sum))}


def log_signal_bound(circuit: LatencyAttentionCircuit) -> dict:
    """What the one-spike key code lets the astrocyte's log signal (:func:`astrocyte_log_signal`)
    differ from the delivered log denominator (:func:`delivered_log_denominator`): ``bound`` per
    query, the worst case (ln B_key / 2, widened by the share of the denominator of keys below the
    window, ln 1/(1 - missing), and by the clipped keys' log error), and ``expected_rms``: the rms of
    ln(sum_t z_t e_t / sum_t z_t K_t) with each e_t's relative error independent and of variance
    ``analysis.codes.key_efficacy_variance``: sqrt(mean over queries of sum_t p_t^2 var_t), p_t the
    attention weight."""
    p, config, inp = circuit.params, circuit.config, circuit.inputs
    delivered = delivered_inputs(inp["x_keys"], inp["x_queries"], inp["values"], p, config["x_top"], config["v_top"])
    read = one_spike_read(p, circuit.schedule, delivered["x_keys"], delivered["x_queries"], delivered["values"],
                          config["score_top"])
    key_base, score_top = float(p["key_code_base"]), config["score_top"]
    memory = memory_weights(p, circuit.schedule.age_at_reads())[1]
    kernel = memory * np.exp(read["scores"] - read["scores"].max(axis=1, keepdims=True))
    weights = kernel / kernel.sum(axis=1, keepdims=True)
    steps = (score_top - read["scores"]) / np.log(key_base)
    missing = np.sum(weights * (np.ceil(steps - 1e-12) >= key_levels(p)), axis=1)
    clipped = np.max(np.where(steps <= -1, np.abs(score_top - read["scores"]) - 0.5 * np.log(key_base), 0), axis=1)
    relative = codes.key_efficacy_variance(read["scores"], score_top, key_base, key_levels(p))
    return {"bound": 0.5 * np.log(key_base) - np.log1p(-np.minimum(missing, 1 - 1e-12)) + clipped,
            "expected_rms": float(np.sqrt(np.mean(np.sum(weights ** 2 * relative, axis=1))))}


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
    p, inp, config = circuit.params, circuit.inputs, circuit.config
    delivered = delivered_inputs(inp["x_keys"], inp["x_queries"], inp["values"], p, config["x_top"], config["v_top"])
    return log_denominator(delivered["x_keys"], delivered["x_queries"], process_memory(p, circuit.schedule))[1]
