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
"""

import time
from dataclasses import dataclass

import numpy as np
from brian2 import BrianLogger, Hz, Network, SpikeMonitor, TimedArray, linked_var, second

from analysis.attention import relative_error
from analysis.spikes import chi_square_tolerance
from circuits import blocks
from circuits.circuit import SpikingCircuit
from circuits.runners import CircuitSpec, RuntimeRunner, builder_options
from circuits.projection import projection, window_values
from circuits.protocol import Schedule, check_pad_to, check_resolution
from circuits.seeds import SeedStreams, seed_streams
from models.encoders import (REGULAR_ENCODER_EQS, REGULAR_ENCODER_RESET, REGULAR_ENCODER_THRESHOLD, polarity_sign,
                             signed_rates)
from models.feedforward import (FFN_ACTIVATION_UPDATE, FFN_DRIVE_EQS, FFN_PARAMETERS, FFN_SYNAPSE_MODEL,
                                FFN_SYNAPSE_ON_PRE, GELU_FUNCTION, GELU_NEURON_EQS, GELU_NEURON_RESET,
                                GELU_NEURON_THRESHOLD, MAX_HAZARD_PER_STEP, gelu)
from models.parameters import ParameterError, ParameterSet

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


def feedforward_schedule(n_tokens, params, pad_to=None) -> Schedule:
    """Tokens one after another, each ``t_settle + t_count``; the schedule's write (learning)
    windows are the counting windows, and there are no reads. ``pad_to``: empty windows after the
    real ones, up to that many windows."""
    check_pad_to(pad_to, n_tokens)
    return Schedule(n_tokens, 0, float(params["t_settle"]), float(params["t_count"]), 0.0,
                    pad_tokens=0 if pad_to is None else pad_to - n_tokens, pad_first=False)


def check_feedforward(x, w_in, b_in, params, neurons_per_unit, off_neurons_per_unit) -> None:
    """Refuse (ValueError/ParameterError, one line) inputs the circuit cannot represent: shapes,
    non-finite values, an encoder faster than one spike per ``dt_enc``, and a GELU neuron whose
    intensity per step passes ``MAX_HAZARD_PER_STEP`` (the activations are known before simulating)."""
    for name, array, ndim in (("x", x, 2), ("w_in", w_in, 2), ("b_in", b_in, 1)):
        if array.ndim != ndim or array.size == 0:
            raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} has non-finite entries")
    if w_in.shape[1] != x.shape[1] or b_in.shape[0] != w_in.shape[0]:
        raise ValueError(f"shapes do not match: x {x.shape}, w_in {w_in.shape}, b_in {b_in.shape}")
    blocks.check_sizes(neurons_per_unit=neurons_per_unit, off_neurons_per_unit=off_neurons_per_unit)
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


def build_feedforward_circuit(x, w_in, b_in, *, neurons_per_unit=64, off_neurons_per_unit=8, w_out=None,
                              b_out=None, pad_to=None, params=None, seed=0, spike_seed=None) -> "FeedForwardCircuit":
    """Build the spiking GELU layer for tokens ``x`` (L x D), weights ``w_in`` (units x D) and
    biases ``b_in`` (units), in the model's (out, in) layout. ``neurons_per_unit``: ON neurons of
    each unit; ``off_neurons_per_unit``: OFF neurons. ``w_out`` (out x units) and ``b_out`` (out,
    default zero): the output projection W_2 on synapses, driven by the GELU neurons' spikes onto
    accumulating output units (``circuits.projection``). ``pad_to``: the number of token windows
    (None: L), for length buckets (see the module docstring; the config's ``n_tokens`` counts the
    windows, the schedule's the real tokens). ``params``: overrides or a ParameterSet of
    :func:`feedforward_parameters`."""
    x, w_in, b_in = (np.asarray(a, dtype=float) for a in (x, w_in, b_in))
    if not isinstance(params, ParameterSet):
        params = feedforward_parameters(params)
    check_feedforward(x, w_in, b_in, params, neurons_per_unit, off_neurons_per_unit)
    schedule = feedforward_schedule(len(x), params, pad_to)
    streams = seed_streams(seed, spike_seed)
    phases = streams.phases
    n_windows, n_channels, n_units = schedule.n_token_windows, 2 * x.shape[1], len(w_in)

    # One row per token window: the encoders show token t for its whole window (nothing in empty ones).
    token_rates = np.zeros((n_windows, n_channels))
    token_rates[schedule.token_slots()] = signed_rates(x, float(params["ffn_enc_gain"]))
    namespace = {
        "rate_table": TimedArray(token_rates * Hz, dt=schedule.token_period * second, name="ffn_rate_table"),
        "count_phase": blocks.table(schedule.write_phase(), "count_phase_table"),
        "gelu": GELU_FUNCTION,
    }
    encoders = blocks.neuron_group(n_channels, REGULAR_ENCODER_EQS, params, namespace, "ffn_encoders",
                                   threshold=REGULAR_ENCODER_THRESHOLD, reset=REGULAR_ENCODER_RESET,
                                   method="euler", dt=params["dt_enc"])
    encoders.channel = np.arange(n_channels)
    encoders.phase = phases.uniform(0, 1, size=n_channels)

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
    monitors = {f"{name}_spikes": SpikeMonitor(groups[name], name=f"{name}_spikes")
                for name in ("ffn_encoders", "gelu_on", "gelu_off")}
    inputs = {"x": x, "w_in": w_in, "b_in": b_in}
    if w_out is not None:
        # A spike of unit u's ON (OFF) population adds (subtracts) W_2[:, u] over its count gain:
        # a window's accumulated value is W_2 times the decoded activations, plus b_2.
        w_out = np.asarray(w_out, dtype=float)
        b_out = np.zeros(len(w_out)) if b_out is None else np.asarray(b_out, dtype=float)
        t_count = schedule.t_learn
        sources = [(groups[f"gelu_{polarity}"],
                    sign * np.repeat(w_out.T, size, axis=0) / (size * t_count * float(params[f"rho_gelu_{polarity}"])))
                   for polarity, sign, size in (("on", 1.0, neurons_per_unit), ("off", -1.0, off_neurons_per_unit))]
        groups.update(projection(sources, b_out, params, namespace, "ffn_out", schedule.learn_windows(padded=True),
                                 schedule.duration, float(params["dt"])))
        monitors["ffn_out_samples"] = groups.pop("ffn_out_samples")
        inputs.update(w_out=w_out, b_out=b_out)
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "feedforward", "n_tokens": n_windows, "dim": x.shape[1], "n_units": n_units,
              "neurons_per_unit": neurons_per_unit, "off_neurons_per_unit": off_neurons_per_unit,
              "n_out": 0 if w_out is None else len(w_out)}
    return FeedForwardCircuit("feedforward", network, groups, monitors, schedule, params, config, inputs, streams)


@dataclass
class FeedForwardCircuit(SpikingCircuit):
    """A built spiking GELU layer (see :class:`circuits.circuit.SpikingCircuit`): groups
    ``ffn_encoders``, ``ffn_drive``, ``ffn_synapses``, ``gelu_on``, ``gelu_off``; inputs ``x``,
    ``w_in``, ``b_in``."""

    def gains(self) -> tuple:
        """Expected spike count of a unit's ON and of its OFF population per unit of activation
        in one counting window: P t_count rho."""
        p, t = self.params, self.schedule.t_learn
        return (self.config["neurons_per_unit"] * t * float(p["rho_gelu_on"]),
                self.config["off_neurons_per_unit"] * t * float(p["rho_gelu_off"]))

    def unit_counts(self, polarity) -> np.ndarray:
        """Spike counts (tokens x units) of each unit's ON or OFF population in each counting window."""
        size = self.config["neurons_per_unit" if polarity == "on" else "off_neurons_per_unit"]
        counts = self.window_counts(f"gelu_{polarity}", self.schedule.learn_windows())
        return counts.reshape(len(counts), -1, size).sum(axis=2)

    def decode(self) -> np.ndarray:
        """Decoded activations GELU(W_in x + b_in) (tokens x units) from the ON and OFF counts."""
        if not self.has_run:
            raise RuntimeError("run the circuit before decoding it")
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
    """The circuit's ideal, GELU(W_in x + b_in), and the variance of each decoded activation from
    Poisson counts: ``|GELU^+| / G_on + |GELU^-| / G_off`` (docs/model.md §9)."""
    inp = circuit.inputs
    ideal = gelu(inp["x"] @ inp["w_in"].T + inp["b_in"])
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

    def simulate(self, runner=None, report=None) -> "FeedForwardResult":
        """Run on ``runner`` (default: a runtime runner) and compare with GELU(W_in x + b_in)."""
        runner = runner or RuntimeRunner()
        t0 = time.perf_counter()
        circuit = runner.run(self, report)
        ideal = rate_model(circuit)
        return FeedForwardResult(self, circuit, circuit.decode(), ideal["g_rate"], ideal["variance"],
                                 time.perf_counter() - t0, circuit.projected())


def feedforward_spec(x, w_in, b_in, *, params=None, seed=0, spike_seed=None, **options) -> FeedForwardSpec:
    """Check a feed-forward block before anything is simulated (ValueError/ParameterError with one
    line). ``options``: ``neurons_per_unit``, ``off_neurons_per_unit``, ``w_out``/``b_out`` (the
    output projection on synapses, see :func:`build_feedforward_circuit`), ``pad_to`` (a length
    bucket: the block runs on ``pad_to`` token windows, its result holds the real tokens); ``params``:
    overrides by name or a ParameterSet of :func:`feedforward_parameters`."""
    options = builder_options(build_feedforward_circuit, options, "the feed-forward circuit")
    x, w_in, b_in = (np.asarray(a, dtype=float) for a in (x, w_in, b_in))
    seeds = SeedStreams(seed, spike_seed)
    if not isinstance(params, ParameterSet):
        params = feedforward_parameters(params)
    check_feedforward(x, w_in, b_in, params, options["neurons_per_unit"], options["off_neurons_per_unit"])
    check_pad_to(options["pad_to"], len(x))
    if options["w_out"] is not None:
        options["w_out"] = np.asarray(options["w_out"], dtype=float)
        b_out = options["b_out"]
        if options["w_out"].ndim != 2 or options["w_out"].shape[1] != len(w_in) or (
                b_out is not None and np.shape(b_out) != (len(options["w_out"]),)):
            raise ValueError(f"w_out must be out x {len(w_in)} (units) and b_out of length out, got "
                             f"{options['w_out'].shape} and {np.shape(b_out)}")
    return FeedForwardSpec(x, w_in, b_in, options, params, seeds.seed, seeds.spike_seed)


@dataclass
class FeedForwardResult:
    """What one feed-forward block's run gives: decoded activations ``g_spike`` and their ideal
    ``g_rate`` = GELU(W_in x + b_in) (tokens x units), the Poisson variance of each decoded
    activation, the run circuit frozen to plain arrays, and with ``w_out`` the output projection
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
    """Decoded activations against GELU: the relative error, its Poisson bound (from the
    activations' independent variances), their ratio and the ratio's chi-square tolerance."""
    expected = float(np.sqrt(variance.sum()) / np.linalg.norm(g_rate))
    measured = relative_error(g_spike, g_rate)
    return {"rel_err_spike_vs_gelu": measured, "poisson_bound": expected,
            "spike_vs_gelu_over_bound": measured / expected,
            "bound_tolerance_ratio": chi_square_tolerance(variance.sum() ** 2 / np.sum(variance ** 2))}
