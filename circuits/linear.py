"""Spiking linear stage: y = W x + b of a sequence of tokens, every multiply-accumulate a synaptic event.

    linear encoders (ON/OFF, one per input channel) ==W==> accumulating output units

Tokens are presented one after another, each for ``t_count``: the encoders fire regularly at
``lin_enc_gain * |x_c|``, every spike adds ``±W[j, c] / (lin_enc_gain t_count)`` to each output unit j,
and the bias flows as a constant current, so a unit's value at the end of a window is W x̂ + b
with x̂ the encoded input (models.projection; docs/model.md §10). No settling: the output units
have no dynamics.

The only noise is the encoders' count quantisation. A regular encoder of rate r started at a
uniformly random phase fires floor(r T) or floor(r T) + 1 times in a window of T, with variance
f (1 - f), f = frac(r T): :func:`rate_model` propagates that through W.

``pad_to`` (a length bucket, ``circuits.protocol.bucket_length``) adds empty windows after the real
tokens, up to ``pad_to``: they show no input and count nothing (``count_phase`` 0: no event and no
bias accumulates), and :meth:`LinearCircuit.decode` gives the real tokens only, so every sentence of
a bucket has one structure (one standalone binary).
"""

import time
from dataclasses import dataclass

import numpy as np
from brian2 import Hz, Network, SpikeMonitor, TimedArray, second

from analysis.attention import relative_error
from analysis.spikes import chi_square_tolerance
from circuits import blocks
from circuits.circuit import SpikingCircuit
from circuits.runners import CircuitSpec, RuntimeRunner, builder_options
from circuits.projection import projection, window_values
from circuits.protocol import Schedule, check_pad_to, check_resolution
from circuits.seeds import SeedStreams, seed_streams
from models.encoders import REGULAR_ENCODER_EQS, REGULAR_ENCODER_RESET, REGULAR_ENCODER_THRESHOLD, polarity_sign, signed_rates
from models.parameters import ParameterError, ParameterSet
from models.projection import LINEAR_PARAMETERS


def linear_parameters(overrides=None) -> ParameterSet:
    """Default parameters of the linear stage with overrides checked by name, unit, sign and
    against the time step."""
    params = ParameterSet(LINEAR_PARAMETERS).override(overrides or {})
    check_resolution(params, exclude=("lin_enc_gain",))
    if params["dt_enc"] > params["dt"]:
        raise ParameterError(f"dt_enc = {float(params['dt_enc']) * 1e3:g} ms must not exceed dt = "
                             f"{float(params['dt']) * 1e3:g} ms")
    return params


def linear_schedule(n_tokens, params, pad_to=None) -> Schedule:
    """Tokens one after another, each ``t_count``, all of it counted (the schedule's learning
    windows); ``pad_to``: empty windows after the real ones, up to that many windows."""
    check_pad_to(pad_to, n_tokens)
    return Schedule(n_tokens, 0, 0.0, float(params["t_count"]), 0.0,
                    pad_tokens=0 if pad_to is None else pad_to - n_tokens, pad_first=False)


def check_linear(x, w, b, params) -> None:
    """Refuse (ValueError/ParameterError, one line) inputs the stage cannot represent: shapes,
    non-finite values and an encoder faster than one spike per ``dt_enc``."""
    for name, array, ndim in (("x", x, 2), ("w", w, 2), ("b", b, 1)):
        if array.ndim != ndim or array.size == 0:
            raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} has non-finite entries")
    if w.shape[1] != x.shape[1] or b.shape[0] != w.shape[0]:
        raise ValueError(f"shapes do not match: x {x.shape}, w {w.shape}, b {b.shape}")
    encoder_step = float(params["lin_enc_gain"] * params["dt_enc"]) * np.abs(x).max()
    if encoder_step > 1:
        raise ParameterError(f"the largest input |x| = {np.abs(x).max():.3g} makes its encoder fire "
                             f"{encoder_step:.2f} times per step of dt_enc; one at most: lower lin_enc_gain or dt_enc")


def build_linear_circuit(x, w, b, *, pad_to=None, params=None, seed=0, spike_seed=None) -> "LinearCircuit":
    """Build the spiking linear stage for tokens ``x`` (L x D), weights ``w`` (out x D, the model's
    layout) and biases ``b`` (out). ``pad_to``: the number of token windows (None: L), for length
    buckets (see the module docstring; the config's ``n_tokens`` counts the windows, the schedule's
    the real tokens). ``params``: overrides or a ParameterSet of :func:`linear_parameters`."""
    x, w, b = (np.asarray(a, dtype=float) for a in (x, w, b))
    if not isinstance(params, ParameterSet):
        params = linear_parameters(params)
    check_linear(x, w, b, params)
    schedule = linear_schedule(len(x), params, pad_to)
    streams = seed_streams(seed, spike_seed)
    n_channels = 2 * x.shape[1]
    gain = float(params["lin_enc_gain"])
    # One row per token window (nothing in empty ones).
    token_rates = np.zeros((schedule.n_token_windows, n_channels))
    token_rates[schedule.token_slots()] = signed_rates(x, gain)
    namespace = {
        "rate_table": TimedArray(token_rates * Hz, dt=schedule.token_period * second, name="lin_rate_table"),
        "count_phase": blocks.table(schedule.write_phase(), "lin_count_phase_table"),
    }
    encoders = blocks.neuron_group(n_channels, REGULAR_ENCODER_EQS, params, namespace, "lin_encoders",
                                   threshold=REGULAR_ENCODER_THRESHOLD, reset=REGULAR_ENCODER_RESET,
                                   method="euler", dt=params["dt_enc"])
    encoders.channel = np.arange(n_channels)
    encoders.phase = streams.phases.uniform(0, 1, size=n_channels)
    # Channel 2c carries +x_c, channel 2c+1 carries -x_c: the OFF synapse has the negated weight.
    channel = np.arange(n_channels)
    weights = (polarity_sign(channel)[:, None] * w.T[channel // 2]) / (gain * schedule.t_learn)
    groups = {"lin_encoders": encoders,
              **projection([(encoders, weights)], b, params, namespace, "lin_out", schedule.learn_windows(padded=True),
                           schedule.duration, float(params["dt_enc"]))}
    monitors = {"lin_encoders_spikes": SpikeMonitor(encoders, name="lin_encoders_spikes"),
                "lin_out_samples": groups.pop("lin_out_samples")}
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "linear", "n_tokens": schedule.n_token_windows, "dim": x.shape[1], "n_out": len(w)}
    return LinearCircuit("linear", network, groups, monitors, schedule, params, config, {"x": x, "w": w, "b": b},
                         streams)


@dataclass
class LinearCircuit(SpikingCircuit):
    """A built spiking linear stage (see :class:`circuits.circuit.SpikingCircuit`): groups
    ``lin_encoders``, ``lin_out_units``, ``lin_out_synapses0``; inputs ``x``, ``w``, ``b``."""

    def decode(self) -> np.ndarray:
        """The accumulated outputs W x̂ + b (tokens x out), one row per real token's counting window."""
        if not self.has_run:
            raise RuntimeError("run the circuit before decoding it")
        values = window_values(self.monitors["lin_out_samples"], self.schedule.n_token_windows, self.config["n_out"])
        return values[self.schedule.token_slots()]


def count_variance(x, gain, t_count) -> np.ndarray:
    """Variance of the decoded ``|x|`` of a regular encoder started at a uniformly random phase:
    ``f (1 - f) / (gain t_count)^2``, ``f = frac(gain t_count |x|)``."""
    expected = gain * t_count * np.abs(np.asarray(x, dtype=float))
    frac = expected - np.floor(expected)
    return frac * (1 - frac) / (gain * t_count) ** 2


def rate_model(circuit: LinearCircuit) -> dict:
    """The stage's ideal, x W^T + b, and the variance of each output from the encoders' count
    quantisation (independent channels)."""
    inp, p = circuit.inputs, circuit.params
    variance = count_variance(inp["x"], float(p["lin_enc_gain"]), circuit.schedule.t_learn) @ (inp["w"] ** 2).T
    return {"y_rate": inp["x"] @ inp["w"].T + inp["b"], "variance": variance}


@dataclass(frozen=True)
class LinearSpec(CircuitSpec):
    """A checked linear stage, ready to simulate on any runner (``circuits.runners``): tokens ``x``
    (L x D), ``w`` (out x D), ``b`` (out), parameters and seeds."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    options: dict
    params: ParameterSet
    seed: int = 0
    spike_seed: int | None = None
    circuit = "linear"

    @property
    def builder(self):
        return build_linear_circuit

    @property
    def arrays(self) -> tuple:
        return self.x, self.w, self.b

    def builder_arguments(self) -> dict:
        return dict(self.options, params=self.params, seed=self.seed, spike_seed=self.spike_seed)

    def simulate(self, runner=None, report=None) -> "LinearResult":
        """Run on ``runner`` (default: a runtime runner) and compare with x W^T + b."""
        runner = runner or RuntimeRunner()
        t0 = time.perf_counter()
        circuit = runner.run(self, report)
        ideal = rate_model(circuit)
        return LinearResult(self, circuit, circuit.decode(), ideal["y_rate"], ideal["variance"],
                            time.perf_counter() - t0)


def linear_spec(x, w, b, *, pad_to=None, params=None, seed=0, spike_seed=None) -> LinearSpec:
    """Check a linear stage before anything is simulated (ValueError/ParameterError with one line).
    ``pad_to``: a length bucket (the stage runs on ``pad_to`` token windows, its result holds the
    real tokens); ``params``: overrides by name or a ParameterSet of :func:`linear_parameters`."""
    options = builder_options(build_linear_circuit, {"pad_to": pad_to}, "the linear stage")
    x, w, b = (np.asarray(a, dtype=float) for a in (x, w, b))
    seeds = SeedStreams(seed, spike_seed)
    if not isinstance(params, ParameterSet):
        params = linear_parameters(params)
    check_linear(x, w, b, params)
    check_pad_to(pad_to, len(x))
    return LinearSpec(x, w, b, options, params, seeds.seed, seeds.spike_seed)


@dataclass
class LinearResult:
    """What one linear stage's run gives: accumulated outputs ``y_spike`` and their ideal ``y_rate``
    = x W^T + b (tokens x out), the variance of each output, and the run circuit frozen."""

    spec: LinearSpec
    circuit: LinearCircuit
    y_spike: np.ndarray
    y_rate: np.ndarray
    variance: np.ndarray
    wall_seconds: float

    @property
    def metrics(self) -> dict:
        expected = float(np.sqrt(self.variance.sum()) / np.linalg.norm(self.y_rate))
        measured = relative_error(self.y_spike, self.y_rate)
        return {"rel_err_spike_vs_product": measured, "quantisation_bound": expected,
                "spike_vs_product_over_bound": measured / expected,
                "bound_tolerance_ratio": chi_square_tolerance(self.variance.sum() ** 2 / np.sum(self.variance ** 2)),
                "total_spikes": self.circuit.total_spikes(), "wall_seconds": self.wall_seconds,
                "simulated_seconds": self.circuit.schedule.duration}
