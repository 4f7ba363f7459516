"""Spiking linear stage: y = W x + b of a sequence of tokens, every multiply-accumulate a synaptic event.

    linear encoders (ON/OFF, one per input channel) ==W==> accumulating output units

Tokens are presented one after another, each for one window, and the bias flows as a constant
current, so a unit's value at the end of a window is W x̂ + b with x̂ the input as its code delivers
it (models.projection; docs/model.md §10-§11). No settling: the output units have no dynamics.
Two codes (``code``; ``circuits.codes``):

* ``rate``: the encoders fire regularly at ``lin_enc_gain * abs(x_c)`` for ``t_count``, and every
  spike adds ``±W[j, c] / (lin_enc_gain t_count)`` to each output unit j. A regular encoder of
  rate r started at a uniformly random phase fires floor(r T) or floor(r T) + 1 times in a window
  of T: variance f (1 - f), f = frac(r T).
* ``latency``: each encoder fires at most once per window of ``t_code``, the sooner the larger
  ``abs(x_c)``, and its spike adds ``±W[j, c]`` times what it carries (x_c within a factor
  code_base^(±1/2)): one synaptic event per input value and output unit, a multiply-accumulate's
  worth.

The only noise is the code's quantisation: :func:`rate_model` propagates it through W.

``pad_to`` (a length bucket, ``circuits.protocol.bucket_length``) adds empty windows after the real
tokens, up to ``pad_to``: they show no input and count nothing (``count_phase`` 0: no event and no
bias accumulates), and :meth:`LinearCircuit.decode` gives the real tokens only, so every sentence of
a bucket has one structure (one standalone binary).
"""

from dataclasses import dataclass

import numpy as np
from brian2 import Network, SpikeMonitor

from analysis.spikes import error_against_budget
from circuits import blocks
from circuits.circuit import SpikingCircuit
from circuits.codes import (Encoded, SpikeTrain, check_code, check_latency, check_replayable, input_encoders,
                           spike_input)
from circuits.runners import CircuitSpec, builder_options
from circuits.projection import emitters, projection, window_values
from circuits.protocol import Schedule, check_pad_to, check_resolution
from circuits.seeds import SeedStreams, seed_streams
from models.encoders import polarity_sign
from models.parameters import ParameterError, ParameterSet
from models.projection import LATENCY_PROJECTION_ON_PRE, LINEAR_PARAMETERS


def linear_parameters(overrides=None) -> ParameterSet:
    """Default parameters of the linear stage with overrides checked by name, unit, sign and
    against the time step."""
    params = ParameterSet(LINEAR_PARAMETERS).override(overrides or {})
    check_resolution(params, exclude=("lin_enc_gain",))
    if params["dt_enc"] > params["dt"]:
        raise ParameterError(f"dt_enc = {float(params['dt_enc']) * 1e3:g} ms must not exceed dt = "
                             f"{float(params['dt']) * 1e3:g} ms")
    return params


def linear_schedule(n_tokens, params, pad_to=None, code="rate") -> Schedule:
    """Tokens one after another, each one window (``t_count`` for the rate code, ``t_code`` for the
    latency code), all of it counted (the schedule's learning windows); ``pad_to``: empty windows
    after the real ones, up to that many windows."""
    check_pad_to(pad_to, n_tokens)
    window = float(params["t_code" if code == "latency" else "t_count"])
    return Schedule(n_tokens, 0, 0.0, window, 0.0, pad_tokens=0 if pad_to is None else pad_to - n_tokens,
                    pad_first=False)


def check_emitting(emit_top, code) -> None:
    """Refuse (ValueError, one line) emitters the stage cannot have: a non-positive top, or a rate code."""
    if emit_top is None:
        return
    if code != "latency":
        raise ValueError("emitters carry the latency code: emit_top needs code='latency'")
    if not emit_top > 0:
        raise ValueError(f"emit_top must be > 0, got {emit_top!r}")


def check_linear(x, w, b, params, code="rate") -> None:
    """Refuse (ValueError/ParameterError, one line) inputs the stage cannot represent: shapes,
    non-finite values, an unknown code, a rate-code encoder faster than one spike per ``dt_enc``,
    a latency code that cannot order its levels."""
    for name, array, ndim in (("x", x, 2), ("w", w, 2), ("b", b, 1)):
        if array.ndim != ndim or array.size == 0:
            raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} has non-finite entries")
    if w.shape[1] != x.shape[1] or b.shape[0] != w.shape[0]:
        raise ValueError(f"shapes do not match: x {x.shape}, w {w.shape}, b {b.shape}")
    check_code(code)
    if code == "latency":
        check_latency(params)
        return
    encoder_step = float(params["lin_enc_gain"] * params["dt_enc"]) * np.abs(x).max()
    if encoder_step > 1:
        raise ParameterError(f"the largest input |x| = {np.abs(x).max():.3g} makes its encoder fire "
                             f"{encoder_step:.2f} times per step of dt_enc; one at most: lower lin_enc_gain or dt_enc")


def build_linear_circuit(x, w, b, *, code="rate", x_top=None, pad_to=None, emit_top=None, params=None, seed=0,
                         spike_seed=None) -> "LinearCircuit":
    """Build the spiking linear stage for tokens ``x`` (L x D), weights ``w`` (out x D, the model's
    layout) and biases ``b`` (out). ``code``: ``rate`` (regular encoders) or ``latency`` (one spike
    per input value, ``circuits.codes``); ``x_top``: the latency code's top of range (default:
    ``max(abs(x)) * sqrt(code_base)``). ``pad_to``: the number of token windows (None: L), for length
    buckets (see the module docstring; the config's ``n_tokens`` counts the windows, the schedule's
    the real tokens). ``params``: overrides or a ParameterSet of :func:`linear_parameters`. ``x`` may be
    a ``circuits.codes.SpikeTrain`` (latency code): the stage replays it. ``emit_top``: the outputs
    travel on as spikes, one ON/OFF pair of latency emitters per output unit with that top of range
    firing each window's value in the next window (one more window at the end;
    :meth:`LinearCircuit.emitted`); None: the outputs are only read."""
    train, x = spike_input(x)
    w, b = (np.asarray(a, dtype=float) for a in (w, b))
    if not isinstance(params, ParameterSet):
        params = linear_parameters(params)
    check_linear(x, w, b, params, code)
    check_emitting(emit_top, code)
    windows = None if emit_top is None else (len(x) if pad_to is None else pad_to) + 1
    schedule = linear_schedule(len(x), params, pad_to if windows is None else windows, code)
    streams = seed_streams(seed, spike_seed)
    encoders, encoded = input_encoders(x if train is None else train, code, params, schedule, streams.phases,
                                       "lin_encoders", "lin_enc_gain", x_top)
    namespace = {"count_phase": blocks.table(schedule.write_phase(), "lin_count_phase_table")}
    # Channel 2c carries +x_c, channel 2c+1 carries -x_c: the OFF synapse has the negated weight.
    channel = np.arange(len(encoders))
    weights = polarity_sign(channel)[:, None] * w.T[channel // 2] * encoded.scale
    on_pre = LATENCY_PROJECTION_ON_PRE if encoded.reads_efficacy else None
    groups = {"lin_encoders": encoders,
              **projection([(encoders, weights)], b, params, namespace, "lin_out", schedule.learn_windows(padded=True),
                           schedule.duration, float(params["dt_enc"]), on_pre=on_pre, handoff=emit_top is not None)}
    monitors = {"lin_encoders_spikes": SpikeMonitor(encoders, name="lin_encoders_spikes"),
                "lin_out_samples": groups.pop("lin_out_samples")}
    if emit_top is not None:
        groups["lin_emitters"] = emitters(groups["lin_out_units"], params, "lin_emitters", emit_top,
                                          schedule.token_period)
        monitors["lin_emitters_spikes"] = SpikeMonitor(groups["lin_emitters"], name="lin_emitters_spikes")
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "linear", "code": code, "n_tokens": schedule.n_token_windows, "dim": x.shape[1],
              "n_out": len(w), "replay_groups": ("lin_encoders",) if train is not None else (),
              "emits": emit_top is not None}
    inputs = {"x": x, "w": w, "b": b}
    if code == "latency":
        config.update(x_top=encoded.x_top, levels=encoded.levels)
    if emit_top is not None:
        config["emit_top"] = float(emit_top)
    return LinearCircuit("linear", network, groups, monitors, schedule, params, config, inputs, streams,
                         encoded=encoded)


@dataclass
class LinearCircuit(SpikingCircuit):
    """A built spiking linear stage (see :class:`circuits.circuit.SpikingCircuit`): groups
    ``lin_encoders``, ``lin_out_units``, ``lin_out_synapses0``; inputs ``x``, ``w``, ``b``; ``encoded``:
    what its code delivers (:class:`circuits.codes.Encoded`)."""

    encoded: Encoded | None = None

    def emitted(self) -> SpikeTrain:
        """What the emitters fired (a built stage with ``emit_top``): token n's outputs as spikes in
        the window after its own, the train the next stage replays."""
        if not self.config["emits"]:
            raise ValueError("this linear stage was built without emitters (emit_top)")
        monitor = self.monitors["lin_emitters_spikes"]
        starts = self.schedule.token_windows()[:, 0] + self.schedule.token_period
        return SpikeTrain.recorded(monitor.t_[:], monitor.i[:], starts, float(self.params["dt_enc"]),
                                   self.config["n_out"], self.config["emit_top"], float(self.params["code_base"]),
                                   self.config["levels"])

    def decode(self) -> np.ndarray:
        """The accumulated outputs W x̂ + b (tokens x out), one row per real token's counting window."""
        if not self.has_run:
            raise RuntimeError("run the circuit before decoding it")
        values = window_values(self.monitors["lin_out_samples"], self.schedule.n_token_windows, self.config["n_out"])
        return values[self.schedule.token_slots()]


def rate_model(circuit: LinearCircuit) -> dict:
    """The stage's ideal, x W^T + b, and the variance of each output from its code's quantisation
    (independent channels; ``circuits.codes.Encoded.variance``)."""
    inp = circuit.inputs
    variance = circuit.encoded.variance(inp["x"]) @ (inp["w"] ** 2).T
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
    def workers_key(self) -> str:
        """One set of workers per code, shape of W, output (emitted spikes or accumulated values) and
        input (replayed or encoded): a model's pass alternates between W_QKV's slices and its
        read-out, and a worker switching between them would compile again at every switch."""
        emits = "emit" if self.options["emit_top"] is not None else "accumulate"
        inputs = "replay" if isinstance(self.x, SpikeTrain) else "encode"
        return f"linear:{self.options['code']}:{self.w.shape[1]}->{self.w.shape[0]}:{emits}:{inputs}"

    @property
    def builder(self):
        return build_linear_circuit

    @property
    def arrays(self) -> tuple:
        return self.x, self.w, self.b

    def builder_arguments(self) -> dict:
        return dict(self.options, params=self.params, seed=self.seed, spike_seed=self.spike_seed)

    def result(self, circuit, wall_seconds, runner) -> "LinearResult":
        """The accumulated outputs against x W^T + b and the code's variance."""
        ideal = rate_model(circuit)
        return LinearResult(self, circuit, circuit.decode(), ideal["y_rate"], ideal["variance"], wall_seconds)


def linear_spec(x, w, b, *, code="rate", x_top=None, pad_to=None, emit_top=None, params=None, seed=0,
                spike_seed=None) -> LinearSpec:
    """Check a linear stage before anything is simulated (ValueError/ParameterError with one line).
    ``code``, ``x_top``: see :func:`build_linear_circuit`; ``pad_to``: a length bucket (the stage
    runs on ``pad_to`` token windows, its result holds the real tokens); ``params``: overrides by
    name or a ParameterSet of :func:`linear_parameters`."""
    options = builder_options(build_linear_circuit, {"code": code, "x_top": x_top, "pad_to": pad_to,
                                                     "emit_top": emit_top}, "the linear stage")
    train, values = spike_input(x)
    w, b = (np.asarray(a, dtype=float) for a in (w, b))
    seeds = SeedStreams(seed, spike_seed)
    if not isinstance(params, ParameterSet):
        params = linear_parameters(params)
    check_linear(values, w, b, params, code)
    check_emitting(emit_top, code)
    check_pad_to(pad_to, len(values))
    if train is not None:
        check_replayable(train, params)
    return LinearSpec(values if train is None else train, w, b, options, params, seeds.seed, seeds.spike_seed)


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
        return {**error_against_budget(self.y_spike, self.y_rate, self.variance, "product"),
                "total_spikes": self.circuit.total_spikes(), "wall_seconds": self.wall_seconds,
                "simulated_seconds": self.circuit.schedule.duration}
