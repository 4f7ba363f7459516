"""Spiking feed-forward block: GELU(W_in x + b_in) of a sequence of tokens, on spiking neurons.

    ffn encoders (ON/OFF, one per channel) ==W_in==> unit drives u_j ---> ON / OFF GELU populations

Tokens are presented one after another, each for ``t_settle + t_count``: the encoders fire at
``ffn_enc_gain * |x_c|``, their spikes reach every unit's drive through the model's weights, and the
unit's ON and OFF GELU neurons fire during the last ``t_count`` (models.feedforward;
docs/model.md §9). The decoded activations (tokens x units) are the block's hidden layer; the
output projection W_out is applied to them outside the circuit, like a head's output projection.

A block may hold a slice of the units (``units``): the units are independent given the input,
so a layer's 1536 units can be spread over processes and the decoded slices concatenated.

``pad_to`` (a length bucket, ``circuits.protocol.bucket_length``) adds empty token windows after the
real ones, up to ``pad_to``: they show no input and count nothing (their ``count_phase`` is 0, so
the GELU neurons, the projection's units and its bias current are silent there), and the read-outs
give the real tokens only. Every sentence of a bucket then has one structure (one standalone binary).

``code="latency"`` (``circuits.codes``, models.feedforward): one spike per value. Each token's period
is two windows of ``t_code``: in the input window the latency encoders fire once per input value
and their spikes accumulate W_in x̂ + b_in in the unit's drive (reset to b_in at every period
start); in the count window each unit's one ON and one OFF GELU latency neuron fires at most once,
at the step k whose level holds max(±GELU(u), 0), and delivers ±g_top code_base^(1/2 - k) to
W_2's synapses. The activations are decoded from those spike times (:meth:`FeedForwardCircuit.decode`);
the error budget is the input's quantisation carried through W_in and GELU' plus the GELU neurons'
own (:func:`rate_model`).
"""

from dataclasses import dataclass

import numpy as np
from brian2 import BrianLogger, Network, linked_var, second

from analysis import codes
from analysis.spikes import error_against_budget
from circuits import blocks
from circuits.circuit import SpikingCircuit
from circuits.codes import (SpikeTrain, check_code, check_latency, check_replayable, input_encoders, latency_levels,
                           latency_neurons, spike_input)
from circuits.runners import CircuitSpec, builder_options
from circuits.projection import output_weights, projection, window_values
from circuits.protocol import Schedule, check_pad_to, check_resolution
from circuits.seeds import SeedStreams, seed_streams
from models.encoders import polarity_sign
from models.feedforward import (FFN_ACTIVATION_UPDATE, FFN_DRIVE_EQS, FFN_PARAMETERS, FFN_SYNAPSE_MODEL,
                                FFN_SYNAPSE_ON_PRE, GELU_FUNCTION, GELU_LATENCY_NEURON_EQS, GELU_LATENCY_START,
                                GELU_NEURON_EQS, GELU_NEURON_RESET, GELU_NEURON_THRESHOLD, LATENCY_DRIVE_EQS,
                                LATENCY_DRIVE_RESET, LATENCY_FFN_SYNAPSE_ON_PRE, MAX_HAZARD_PER_STEP, gelu,
                                gelu_derivative)
from models.parameters import ParameterError, ParameterSet
from models.projection import LATENCY_PROJECTION_ON_PRE

# The encoders and their synapses run on a finer clock than the drives they target, on purpose.
BrianLogger.suppress_name("synapses_dt_mismatch")

#: Smallest value of GELU (at u = -0.7518): the OFF populations' largest activation.
GELU_MIN = -0.1699714


def feedforward_parameters(overrides=None) -> ParameterSet:
    """Default parameters of the feed-forward circuit with overrides checked by name, unit, sign
    and against the time step."""
    params = ParameterSet(FFN_PARAMETERS).override(overrides or {})
    # The rates are checked with the inputs they multiply (check_feedforward): regular encoders and
    # time-rescaled neurons are not Bernoulli draws.
    check_resolution(params, exclude=("ffn_enc_gain", "rho_gelu_on", "rho_gelu_off"))
    if params["dt_enc"] > params["dt"]:
        raise ParameterError(f"dt_enc = {float(params['dt_enc']) * 1e3:g} ms must not exceed dt = "
                             f"{float(params['dt']) * 1e3:g} ms")
    return params


def feedforward_schedule(n_tokens, params, pad_to=None, code="rate") -> Schedule:
    """Tokens one after another, each ``t_settle + t_count`` (rate code) or two windows of
    ``t_code`` (latency code: the input window, then the output window); the schedule's settling
    parts are the input windows, its write (learning) windows the counting windows, and there are
    no reads. ``pad_to``: empty windows after the real ones, up to that many windows."""
    check_pad_to(pad_to, n_tokens)
    pads = 0 if pad_to is None else pad_to - n_tokens
    if code == "latency":
        return Schedule(n_tokens, 0, float(params["t_code"]), float(params["t_code"]), 0.0, pad_tokens=pads,
                        pad_first=False)
    return Schedule(n_tokens, 0, float(params["t_settle"]), float(params["t_count"]), 0.0,
                    pad_tokens=pads, pad_first=False)


def latency_tops(x, w_in, b_in, base, x_top=None, g_top=None) -> tuple:
    """The latency code's tops of range (x_top, g_top): given, or by default
    ``analysis.codes.latency_top`` of the inputs ``x`` and of the activations GELU(W_in x + b_in),
    so that the largest of each is delivered exactly. ValueError with one line unless both are
    positive and finite."""
    x_top = codes.latency_top(x, base) if x_top is None else float(x_top)
    g_top = codes.latency_top(gelu(x @ w_in.T + b_in), base) if g_top is None else float(g_top)
    for name, top in (("x_top", x_top), ("g_top", g_top)):
        if not (np.isfinite(top) and top > 0):
            raise ValueError(f"{name} must be a positive number, got {top:g}")
    return x_top, g_top


def check_feedforward(x, w_in, b_in, params, neurons_per_unit, off_neurons_per_unit, code="rate", x_top=None,
                      g_top=None) -> None:
    """Refuse (ValueError/ParameterError, one line) inputs the circuit cannot represent: shapes,
    non-finite values, an unknown code; for the rate code an encoder faster than one spike per
    ``dt_enc`` and a GELU neuron whose intensity per step passes ``MAX_HAZARD_PER_STEP`` (the
    activations are known before simulating); for the latency code a code that cannot order its
    levels, a ``t_code`` that is not a whole number of steps of ``dt_enc`` and a top of range that
    is not positive (:func:`latency_tops`)."""
    for name, array, ndim in (("x", x, 2), ("w_in", w_in, 2), ("b_in", b_in, 1)):
        if array.ndim != ndim or array.size == 0:
            raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} has non-finite entries")
    if w_in.shape[1] != x.shape[1] or b_in.shape[0] != w_in.shape[0]:
        raise ValueError(f"shapes do not match: x {x.shape}, w_in {w_in.shape}, b_in {b_in.shape}")
    blocks.check_sizes(neurons_per_unit=neurons_per_unit, off_neurons_per_unit=off_neurons_per_unit)
    check_code(code)
    if code == "latency":
        check_latency(params)
        steps = float(params["t_code"] / params["dt_enc"])
        if abs(steps - round(steps)) > 1e-9:
            raise ParameterError(f"t_code = {float(params['t_code']) * 1e3:g} ms must be a whole number of steps of "
                                 f"dt_enc = {float(params['dt_enc']) * 1e3:g} ms")
        latency_tops(x, w_in, b_in, float(params["code_base"]), x_top, g_top)
        return
    encoder_step = float(params["ffn_enc_gain"] * params["dt_enc"]) * np.abs(x).max()
    if encoder_step > 1:
        raise ParameterError(f"the largest input |x| = {np.abs(x).max():.3g} makes its encoder fire "
                             f"{encoder_step:.2f} times per step of dt_enc; one at most: lower ffn_enc_gain or dt_enc")
    activation = gelu(x @ w_in.T + b_in)
    for polarity, largest in (("on", activation.max()), ("off", -GELU_MIN)):
        per_step = float(params[f"rho_gelu_{polarity}"] * params["dt"]) * max(largest, 0.0)
        if per_step > MAX_HAZARD_PER_STEP:
            raise ParameterError(f"the largest GELU activation makes an {polarity.upper()} neuron fire "
                                 f"{per_step:.2f} times per step; at most {MAX_HAZARD_PER_STEP}: lower "
                                 f"rho_gelu_{polarity} or dt")


def build_feedforward_circuit(x, w_in, b_in, *, code="rate", neurons_per_unit=64, off_neurons_per_unit=8,
                              w_out=None, b_out=None, x_top=None, g_top=None, pad_to=None, params=None, seed=0,
                              spike_seed=None) -> "FeedForwardCircuit":
    """Build the spiking GELU layer for tokens ``x`` (L x D), weights ``w_in`` (units x D) and
    biases ``b_in`` (units), in the model's (out, in) layout. ``code``: ``rate`` (regular encoders,
    Poisson GELU populations) or ``latency`` (one spike per value, see the module docstring).
    ``neurons_per_unit``: ON neurons of each unit; ``off_neurons_per_unit``: OFF neurons (rate code;
    the latency code has one of each). ``w_out`` (out x units) and ``b_out`` (out, default zero):
    the output projection W_2 on synapses, driven by the GELU neurons' spikes onto accumulating
    output units (``circuits.projection``). ``x_top``, ``g_top``: the latency code's tops of range
    of the inputs and of the activations (default :func:`latency_tops`). ``pad_to``: the number of
    token windows (None: L), for length buckets (see the module docstring; the config's
    ``n_tokens`` counts the windows, the schedule's the real tokens). ``params``: overrides or a
    ParameterSet of :func:`feedforward_parameters`. ``x`` may be a ``circuits.codes.SpikeTrain``
    (latency code): the block replays it, and ``x_top`` is the train's."""
    train, x = spike_input(x)
    w_in, b_in = (np.asarray(a, dtype=float) for a in (w_in, b_in))
    if not isinstance(params, ParameterSet):
        params = feedforward_parameters(params)
    if train is not None:
        if code != "latency":
            raise ValueError("a spike train is latency-coded: the block must read it with code='latency'")
        x_top = train.x_top
    check_feedforward(x, w_in, b_in, params, neurons_per_unit, off_neurons_per_unit, code, x_top, g_top)
    schedule = feedforward_schedule(len(x), params, pad_to, code)
    streams = seed_streams(seed, spike_seed)
    if code == "latency":
        return _build_latency_circuit(x if train is None else train, w_in, b_in, w_out, b_out, x_top, g_top,
                                      schedule, params, streams)
    phases = streams.phases
    n_windows, n_channels, n_units = schedule.n_token_windows, 2 * x.shape[1], len(w_in)

    # The encoders show token t for its whole window (nothing in empty ones).
    encoders, _ = input_encoders(x, "rate", params, schedule, phases, "ffn_encoders", "ffn_enc_gain")
    namespace = {"count_phase": blocks.table(schedule.write_phase(), "count_phase_table"), "gelu": GELU_FUNCTION}

    drive = blocks.neuron_group(n_units, FFN_DRIVE_EQS, params, namespace, "ffn_drive", method="exact")
    drive.b_in = b_in
    drive.run_regularly(FFN_ACTIVATION_UPDATE, when="before_thresholds", name="ffn_activation")
    channel, unit = np.meshgrid(np.arange(n_channels), np.arange(n_units), indexing="ij")
    channel, unit = channel.ravel(), unit.ravel()
    synapses = blocks.synapses(encoders, drive, FFN_SYNAPSE_MODEL, params, namespace, "ffn_synapses",
                               {"i": channel, "j": unit}, on_pre=FFN_SYNAPSE_ON_PRE, dt=params["dt_enc"])
    # Channel 2c carries +x_c, channel 2c+1 carries -x_c: the OFF synapse has the negated weight.
    synapses.w_ffn = polarity_sign(channel) * w_in[unit, channel // 2] / float(params["ffn_enc_gain"] * params["tau_syn"])

    groups = {"ffn_encoders": encoders, "ffn_drive": drive, "ffn_synapses": synapses}
    for polarity, size in (("on", neurons_per_unit), ("off", off_neurons_per_unit)):
        neurons = blocks.neuron_group(n_units * size, GELU_NEURON_EQS, params, namespace, f"gelu_{polarity}",
                                      threshold=GELU_NEURON_THRESHOLD, reset=GELU_NEURON_RESET, method="euler")
        neurons.rho_gelu = params[f"rho_gelu_{polarity}"]
        neurons.activation = linked_var(drive, f"gelu_{polarity}", index=np.arange(len(neurons)) // size)
        neurons.threshold_draw = phases.exponential(size=len(neurons))
        groups[f"gelu_{polarity}"] = neurons
    monitors = blocks.monitors_of(groups, ("ffn_encoders", "gelu_on", "gelu_off"))
    inputs = {"x": x, "w_in": w_in, "b_in": b_in}
    if w_out is not None:
        # A spike of unit u's ON (OFF) population adds (subtracts) W_2[:, u] over its count gain:
        # a window's accumulated value is W_2 times the decoded activations, plus b_2.
        w_out, b_out = output_weights(w_out, b_out)
        t_count = schedule.t_learn
        sources = [(groups[f"gelu_{polarity}"],
                    sign * np.repeat(w_out.T, size, axis=0) / (size * t_count * float(params[f"rho_gelu_{polarity}"])))
                   for polarity, sign, size in (("on", 1.0, neurons_per_unit), ("off", -1.0, off_neurons_per_unit))]
        groups.update(projection(sources, b_out, params, namespace, "ffn_out", schedule.learn_windows(padded=True),
                                 schedule.duration, float(params["dt"])))
        monitors["ffn_out_samples"] = groups.pop("ffn_out_samples")
        inputs.update(w_out=w_out, b_out=b_out)
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "feedforward", "code": "rate", "n_tokens": n_windows, "dim": x.shape[1], "n_units": n_units,
              "neurons_per_unit": neurons_per_unit, "off_neurons_per_unit": off_neurons_per_unit,
              "n_out": 0 if w_out is None else len(w_out)}
    return FeedForwardCircuit("feedforward", network, groups, monitors, schedule, params, config, inputs, streams)


def _build_latency_circuit(x, w_in, b_in, w_out, b_out, x_top, g_top, schedule, params, streams):
    """The latency-code block of :func:`build_feedforward_circuit` (checked arguments).

    Order of one token period (steps of ``dt_enc``; Brian2 runs a step's slots in the order start,
    groups, before_thresholds, thresholds, synapses, resets, end): at the period's first step the
    drive is reset to b_in (``start``) before the encoders' start (``before_thresholds``), so an
    encoder spike of level 0 (``synapses`` slot of that step) already counts; the encoders fire in
    the first ``levels`` steps only, so at the first step of the count window, one ``t_code`` later,
    the drive holds W_in x̂ + b_in and the GELU neurons' start reads it."""
    base, levels = float(params["code_base"]), latency_levels(params)
    train, x_in = x, x
    if isinstance(train, SpikeTrain):
        x = train.values()
    x_top, g_top = latency_tops(x, w_in, b_in, base, x_top, g_top)
    n_channels, n_units = 2 * x.shape[1], len(w_in)
    encoders, encoded = input_encoders(x_in, "latency", params, schedule, streams.phases, "ffn_encoders",
                                       "ffn_enc_gain", x_top)
    namespace = {"count_phase": blocks.table(schedule.write_phase(), "count_phase_table"), "gelu": GELU_FUNCTION}
    period = schedule.token_period * second

    drive = blocks.neuron_group(n_units, LATENCY_DRIVE_EQS, params, namespace, "ffn_drive", dt=params["dt_enc"])
    drive.b_in = b_in
    drive.run_regularly(LATENCY_DRIVE_RESET, dt=period, when="start", name="ffn_drive_reset")
    channel, unit = np.meshgrid(np.arange(n_channels), np.arange(n_units), indexing="ij")
    channel, unit = channel.ravel(), unit.ravel()
    synapses = blocks.synapses(encoders, drive, FFN_SYNAPSE_MODEL, params, namespace, "ffn_synapses",
                               {"i": channel, "j": unit}, on_pre=LATENCY_FFN_SYNAPSE_ON_PRE, dt=params["dt_enc"])
    # Channel 2c carries +x_c, channel 2c+1 carries -x_c: the OFF synapse has the negated weight.
    synapses.w_ffn = polarity_sign(channel) * w_in[unit, channel // 2]

    groups = {"ffn_encoders": encoders, "ffn_drive": drive, "ffn_synapses": synapses}
    for polarity, sign in (("on", 1.0), ("off", -1.0)):
        groups[f"gelu_{polarity}"] = gelu_latency_neurons(drive, sign, params, namespace, f"gelu_{polarity}", g_top,
                                                          schedule.t_settle)
    monitors = blocks.monitors_of(groups, ("ffn_encoders", "gelu_on", "gelu_off"))
    inputs = {"x": x, "w_in": w_in, "b_in": b_in}
    if w_out is not None:
        # A spike of unit u's ON (OFF) neuron adds (subtracts) W_2[:, u] times what it carries: a
        # count window's accumulated value is W_2 times the decoded activations, plus b_2.
        w_out, b_out = output_weights(w_out, b_out)
        sources = [(groups["gelu_on"], w_out.T), (groups["gelu_off"], -w_out.T)]
        groups.update(projection(sources, b_out, params, namespace, "ffn_out", schedule.learn_windows(padded=True),
                                 schedule.duration, float(params["dt_enc"]), on_pre=LATENCY_PROJECTION_ON_PRE))
        monitors["ffn_out_samples"] = groups.pop("ffn_out_samples")
        inputs.update(w_out=w_out, b_out=b_out)
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "feedforward", "code": "latency", "n_tokens": schedule.n_token_windows, "dim": x.shape[1],
              "n_units": n_units, "neurons_per_unit": 1, "off_neurons_per_unit": 1,
              "n_out": 0 if w_out is None else len(w_out), "x_top": encoded.x_top, "g_top": g_top, "levels": levels,
              "replay_groups": ("ffn_encoders",) if encoded.replayed else ()}
    return FeedForwardCircuit("feedforward", network, groups, monitors, schedule, params, config, inputs, streams)


def gelu_latency_neurons(drive, polarity, params, namespace, name, g_top, window):
    """One latency GELU neuron per unit of ``drive`` (``circuits.codes.latency_neurons`` with the
    unit's drive linked, ``models.feedforward.GELU_LATENCY_NEURON_EQS``), ON (``polarity`` +1) or
    OFF (-1), top of range ``g_top``.

    The count window starts one window (``window`` = ``t_code`` seconds) after its period's start,
    and a ``run_regularly`` clock cannot be offset. So the start runs at *every* window start, once
    per ``t_code`` and neuron (nothing per step), and reads the count windows' table
    ``count_phase``: at a count window's start it sets the potential from the unit's GELU, at an
    input window's (or an empty window's) to 0, which keeps the neuron silent. GELU is computed in
    the start, once per neuron and window."""
    n = len(drive)
    group = latency_neurons(n, GELU_LATENCY_START, params, namespace, name, g_top, window,
                            model=GELU_LATENCY_NEURON_EQS, extra={"polarity": float(polarity)})
    group.channel = np.arange(n)
    group.u = linked_var(drive, "u", index=np.arange(n))
    return group


@dataclass
class FeedForwardCircuit(SpikingCircuit):
    """A built spiking GELU layer (see :class:`circuits.circuit.SpikingCircuit`): groups
    ``ffn_encoders``, ``ffn_drive``, ``ffn_synapses``, ``gelu_on``, ``gelu_off``; inputs ``x``,
    ``w_in``, ``b_in``; the config's ``code`` says how it codes its values (the latency code's
    config adds the tops of range ``x_top``, ``g_top`` and the ``levels`` per window)."""

    @property
    def code(self) -> str:
        return self.config.get("code", "rate")

    def gains(self) -> tuple:
        """Expected spike count of a unit's ON and of its OFF population per unit of activation
        in one counting window: P t_count rho (rate code)."""
        if self.code != "rate":
            raise ValueError("the latency code has no count gains: its spikes carry values (latency_activations)")
        p, t = self.params, self.schedule.t_learn
        return (self.config["neurons_per_unit"] * t * float(p["rho_gelu_on"]),
                self.config["off_neurons_per_unit"] * t * float(p["rho_gelu_off"]))

    def unit_counts(self, polarity) -> np.ndarray:
        """Spike counts (tokens x units) of each unit's ON or OFF population in each counting window."""
        size = self.config["neurons_per_unit" if polarity == "on" else "off_neurons_per_unit"]
        counts = self.window_counts(f"gelu_{polarity}", self.schedule.learn_windows())
        return counts.reshape(len(counts), -1, size).sum(axis=2)

    def latency_activations(self) -> np.ndarray:
        """The latency code's activations (tokens x units) from the GELU neurons' spike times: a
        spike at step k of its count window delivers ``±g_top code_base^(1/2 - k)`` (+: ON, -: OFF),
        a silent neuron 0 (what W_2's synapses receive)."""
        levels, g_top = self.config["levels"], self.config["g_top"]
        base, dt_enc = float(self.params["code_base"]), float(self.params["dt_enc"])
        values = np.zeros((self.schedule.n_token_windows, self.config["n_units"]))
        for polarity, sign in (("on", 1.0), ("off", -1.0)):
            monitor = self.monitors[f"gelu_{polarity}_spikes"]
            # A period is 2 levels steps: the input window, then the count window.
            window, step = np.divmod(np.rint(np.asarray(monitor.t_[:]) / dt_enc).astype(int), 2 * levels)
            np.add.at(values, (window, np.asarray(monitor.i[:], dtype=int)),
                      sign * g_top * base ** (0.5 - (step - levels)))
        return values[self.schedule.token_slots()]

    def emitted(self) -> SpikeTrain:
        """What the latency GELU neurons fired (unit j's ON neuron as channel 2j, its OFF neuron as
        2j+1), token n's activations in its count window: the train the next stage replays."""
        if self.code != "latency":
            raise ValueError("only the latency code's GELU neurons emit a spike train")
        on, off = self.monitors["gelu_on_spikes"], self.monitors["gelu_off_spikes"]
        times = np.concatenate([np.asarray(on.t_[:]), np.asarray(off.t_[:])])
        channels = np.concatenate([2 * np.asarray(on.i[:]), 2 * np.asarray(off.i[:]) + 1])
        starts = self.schedule.token_windows()[:, 0] + self.schedule.t_settle
        return SpikeTrain.recorded(times, channels, starts, float(self.params["dt_enc"]), self.config["n_units"],
                                   self.config["g_top"], float(self.params["code_base"]), self.config["levels"])

    def decode(self) -> np.ndarray:
        """Decoded activations GELU(W_in x + b_in) (tokens x units): from the ON and OFF counts
        (rate code) or spike times (latency code, :meth:`latency_activations`)."""
        if not self.has_run:
            raise RuntimeError("run the circuit before decoding it")
        if self.code == "latency":
            return self.latency_activations()
        gain_on, gain_off = self.gains()
        return self.unit_counts("on") / gain_on - self.unit_counts("off") / gain_off

    def projected(self) -> np.ndarray | None:
        """The output projection's accumulated values W_2 g + b_2 (tokens x out), or None if the
        block was built without ``w_out``."""
        if not self.config["n_out"]:
            return None
        # Sampled in every token window, empty ones included: the real tokens' rows.
        values = window_values(self.monitors["ffn_out_samples"], self.schedule.n_token_windows, self.config["n_out"])
        return values[self.schedule.token_slots()]


def rate_model(circuit: FeedForwardCircuit) -> dict:
    """The circuit's ideal, GELU(W_in x + b_in), and the variance of each decoded activation: from
    Poisson counts, ``|GELU^+| / G_on + |GELU^-| / G_off`` (rate code, docs/model.md §9); or the
    latency code's budget, the inputs' quantisation carried through W_in to the drive u
    (``var_u = var_x @ (W_in ** 2).T``) and through GELU' to the activation, plus the GELU
    neurons' own quantisation: ``GELU'(u)^2 var_u + var_code(GELU(u))`` (``analysis.codes``)."""
    inp = circuit.inputs
    drive = inp["x"] @ inp["w_in"].T + inp["b_in"]
    ideal = gelu(drive)
    if circuit.code == "latency":
        base, levels = float(circuit.params["code_base"]), circuit.config["levels"]
        # Replayed inputs deliver exactly what their train carries: their quantisation is the emitters'.
        var_x = (np.zeros_like(inp["x"]) if circuit.config.get("replay_groups")
                 else codes.latency_variance(inp["x"], circuit.config["x_top"], base, levels))
        var_drive = var_x @ (inp["w_in"] ** 2).T
        variance = (gelu_derivative(drive) ** 2 * var_drive
                    + codes.latency_variance(ideal, circuit.config["g_top"], base, levels))
        return {"g_rate": ideal, "variance": variance}
    gain_on, gain_off = circuit.gains()
    variance = np.maximum(ideal, 0) / gain_on + np.maximum(-ideal, 0) / gain_off
    return {"g_rate": ideal, "variance": variance}


def output_error(variance, w_out, ideal_output) -> float:
    """Expected relative (Frobenius) error of the projected output W_out g (tokens x out) from
    independent activation variances (tokens x units): ``sqrt(sum var @ W_out^2.T) / |W_out g|``."""
    return float(np.sqrt((variance @ (np.asarray(w_out) ** 2).T).sum()) / np.linalg.norm(ideal_output))



@dataclass(frozen=True)
class FeedForwardSpec(CircuitSpec):
    """A checked feed-forward block, ready to simulate on any runner (``circuits.runners``): tokens
    ``x`` (L x D), ``w_in`` (units x D), ``b_in`` (units), builder options, parameters and seeds."""

    x: np.ndarray
    w_in: np.ndarray
    b_in: np.ndarray
    options: dict
    params: ParameterSet
    seed: int = 0
    spike_seed: int | None = None
    circuit = "feedforward"

    @property
    def builder(self):
        return build_feedforward_circuit

    @property
    def arrays(self) -> tuple:
        return self.x, self.w_in, self.b_in

    def builder_arguments(self) -> dict:
        return dict(self.options, params=self.params, seed=self.seed, spike_seed=self.spike_seed)

    def result(self, circuit, wall_seconds, runner=None) -> "FeedForwardResult":
        """The decoded activations against GELU(W_in x + b_in) with their variance
        (:func:`rate_model`), and with ``w_out`` the projected output, for the run ``circuit``."""
        ideal = rate_model(circuit)
        return FeedForwardResult(self, circuit, circuit.decode(), ideal["g_rate"], ideal["variance"], wall_seconds,
                                 circuit.projected())


def feedforward_spec(x, w_in, b_in, *, params=None, seed=0, spike_seed=None, **options) -> FeedForwardSpec:
    """Check a feed-forward block before anything is simulated (ValueError/ParameterError with one
    line). ``options``: ``code`` (``rate`` or ``latency``), ``neurons_per_unit``,
    ``off_neurons_per_unit``, ``w_out``/``b_out`` (the output projection on synapses), ``x_top``,
    ``g_top`` (the latency code's tops of range), see :func:`build_feedforward_circuit`; ``pad_to``
    (a length bucket: the block runs on ``pad_to`` token windows, its result holds the real tokens);
    ``params``: overrides by name or a ParameterSet of :func:`feedforward_parameters`."""
    options = builder_options(build_feedforward_circuit, options, "the feed-forward circuit")
    train, x = spike_input(x)
    w_in, b_in = (np.asarray(a, dtype=float) for a in (w_in, b_in))
    seeds = SeedStreams(seed, spike_seed)
    if not isinstance(params, ParameterSet):
        params = feedforward_parameters(params)
    if train is not None:
        if options["code"] != "latency":
            raise ValueError("a spike train is latency-coded: the block must read it with code='latency'")
        check_replayable(train, params)
    check_feedforward(x, w_in, b_in, params, options["neurons_per_unit"], options["off_neurons_per_unit"],
                      options["code"], train.x_top if train is not None else options["x_top"], options["g_top"])
    check_pad_to(options["pad_to"], len(x))
    if options["w_out"] is not None:
        options["w_out"] = np.asarray(options["w_out"], dtype=float)
        b_out = options["b_out"]
        if options["w_out"].ndim != 2 or options["w_out"].shape[1] != len(w_in) or (
                b_out is not None and np.shape(b_out) != (len(options["w_out"]),)):
            raise ValueError(f"w_out must be out x {len(w_in)} (units) and b_out of length out, got "
                             f"{options['w_out'].shape} and {np.shape(b_out)}")
    return FeedForwardSpec(x if train is None else train, w_in, b_in, options, params, seeds.seed, seeds.spike_seed)


@dataclass
class FeedForwardResult:
    """What one feed-forward block's run gives: decoded activations ``g_spike`` and their ideal
    ``g_rate`` = GELU(W_in x + b_in) (tokens x units), the variance of each decoded activation
    (:func:`rate_model`: Poisson counts, or the latency code's quantisation), the run circuit frozen to plain arrays, and with ``w_out`` the output projection
    accumulated on synapses, ``y_spike`` = W_2 g + b_2 (tokens x out; else None)."""

    spec: FeedForwardSpec
    circuit: FeedForwardCircuit
    g_spike: np.ndarray
    g_rate: np.ndarray
    variance: np.ndarray
    wall_seconds: float
    y_spike: np.ndarray | None = None

    @property
    def metrics(self) -> dict:
        return {**activation_error(self.g_spike, self.g_rate, self.variance),
                "total_spikes": self.circuit.total_spikes(), "wall_seconds": self.wall_seconds,
                "simulated_seconds": self.circuit.schedule.duration}


def activation_error(g_spike, g_rate, variance) -> dict:
    """Decoded activations against GELU: the relative error, its bound (``poisson_bound``, from the
    activations' independent variances, the latency code's too), their ratio and the ratio's
    chi-square tolerance (``analysis.spikes.error_against_budget``)."""
    return error_against_budget(g_spike, g_rate, variance, "gelu", "poisson_bound")
