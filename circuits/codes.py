"""A stage's input encoders under a code: the rate code's regular encoders or the latency code's.

    tokens x (L x D) --> ON/OFF encoders (2 D neurons, clock dt_enc) --synapses--> the stage

(models.encoders, analysis.codes; docs/model.md §11). :func:`input_encoders` builds them for a
stage whose tokens each take one window of ``window`` seconds; :class:`Encoded` tells the stage how
its synapses read a spike and what the code delivers (its NumPy reference and variance).
"""

from dataclasses import dataclass

import numpy as np
from brian2 import Hz, TimedArray, second

from analysis import codes
from circuits import blocks
from circuits.protocol import TABLE_BIN
from models.encoders import (CODES, LATENCY_ENCODER_EQS, LATENCY_ENCODER_RESET, LATENCY_ENCODER_START,
                             LATENCY_ENCODER_THRESHOLD, LATENCY_WINDOW_START, REGULAR_ENCODER_EQS,
                             REGULAR_ENCODER_RESET, REGULAR_ENCODER_THRESHOLD, signed_rates)
from models.parameters import ParameterError


def check_code(code) -> None:
    """ValueError with one line for an unknown code."""
    if code not in CODES:
        raise ValueError(f"unknown code {code!r}; choose one of {', '.join(CODES)}")


def latency_levels(params) -> int:
    """Levels of the latency code: steps of ``dt_enc`` in ``t_code``."""
    return int(round(float(params["t_code"] / params["dt_enc"])))


def check_latency(params) -> None:
    """Refuse (ParameterError, one line) a latency code that cannot order its levels."""
    if params["code_base"] <= 1:
        raise ParameterError(f"code_base must be > 1 (the ratio of consecutive levels), got {params['code_base']:g}")
    if latency_levels(params) < 2:
        raise ParameterError("t_code must span at least two steps of dt_enc")


def latency_neurons(n, start, params, namespace, name, x_top, period, model="", extra=None):
    """``n`` latency neurons (``models.encoders.LATENCY_ENCODER_EQS`` plus ``model`` lines, e.g. a
    linked drive) on the clock ``dt_enc`` whose potential and efficacy are set by the code ``start``
    at the beginning of every ``period`` seconds (before the thresholds), with top of range
    ``x_top``: at most one spike per period, within the code's ``t_code / dt_enc`` levels.
    ``extra``: more constants the code reads."""
    base = float(params["code_base"])
    group = blocks.neuron_group(n, LATENCY_ENCODER_EQS + model, params, namespace, name,
                                threshold=LATENCY_ENCODER_THRESHOLD, reset=LATENCY_ENCODER_RESET, method="exact",
                                dt=params["dt_enc"], uses=(start,),
                                extra={"x_top": x_top, "tau_code": params["dt_enc"] / np.log(base),
                                       "efficacy_floor": x_top * base ** (1 - latency_levels(params)),
                                       **(extra or {})})
    group.run_regularly(start, dt=period * second, when="before_thresholds", name=f"{name}_window_start")
    return group


def windowed_latency_neurons(n, model, value, starts, params, namespace, name, x_top, extra=None):
    """``n`` latency neurons (equations ``model``: LATENCY_ENCODER_EQS or one with the same ``v``
    and ``efficacy``) on the clock ``dt_enc`` whose windows start at irregular times: where the 0/1
    table ``starts`` (one entry per TABLE_BIN) is 1, the potential is set to the expression
    ``value`` and the efficacy to x_top sqrt(B) (``models.encoders.LATENCY_WINDOW_START``), before
    the thresholds; at most one spike per window, within the code's ``t_code / dt_enc`` levels.
    ``extra``: more derived constants that ``value`` reads."""
    base = float(params["code_base"])
    start = LATENCY_WINDOW_START.format(value=value)
    namespace = dict(namespace, window_start=blocks.table(starts, f"{name}_start_table"))
    group = blocks.neuron_group(n, model, params, namespace, name, threshold=LATENCY_ENCODER_THRESHOLD,
                                reset=LATENCY_ENCODER_RESET, method="exact", dt=params["dt_enc"], uses=(start,),
                                extra={"x_top": x_top, "tau_code": params["dt_enc"] / np.log(base),
                                       "efficacy_floor": x_top * base ** (1 - latency_levels(params)),
                                       **(extra or {})})
    group.run_regularly(start, dt=TABLE_BIN, when="before_thresholds", name=f"{name}_window_start")
    return group


@dataclass(frozen=True)
class Encoded:
    """How a code's encoders deliver tokens ``x``: ``scale`` multiplies a synapse's weight (the rate
    code: 1 / expected spikes per unit of ``abs(x)``; the latency code: 1, a spike carries its value
    in the encoder's ``efficacy``), ``reads_efficacy`` says whether synapses must read it, and
    ``variance`` gives the expected squared error of what each input delivers (``analysis.codes``;
    the latency code's delivered values: ``analysis.codes.latency_decode``)."""

    code: str
    scale: float
    gain: float = 0.0           # rate: spikes per second per unit of |x|
    window: float = 0.0         # rate: counting window (s)
    x_top: float = 0.0          # latency: top of the range
    base: float = 0.0           # latency: ratio of consecutive levels
    levels: int = 0             # latency: levels in the window

    @property
    def reads_efficacy(self) -> bool:
        return self.code == "latency"

    def variance(self, x) -> np.ndarray:
        """Expected squared error of each delivered value (the latency code's quantisation, the
        regular encoders' count quantisation)."""
        if self.code == "latency":
            return codes.latency_variance(x, self.x_top, self.base, self.levels)
        return codes.count_variance(x, self.gain, self.window)


def input_encoders(x, code, params, schedule, phases, name, gain_name, x_top=None):
    """The ON/OFF encoders of tokens ``x`` (L x D) shown in the schedule's token windows (each
    ``schedule.token_period``; empty windows show nothing), on the clock ``dt_enc``. ``gain_name``:
    the rate code's gain parameter; ``x_top``: the latency code's top of range (default
    ``analysis.codes.latency_top`` of ``x``). ``phases``: the random start phases of the
    regular encoders. Returns (the NeuronGroup ``name``, :class:`Encoded`). Channel 2c carries
    +x_c, channel 2c+1 carries -x_c (``models.encoders.signed_rates``)."""
    check_code(code)
    n_channels = 2 * x.shape[1]
    window = schedule.t_learn
    values = np.zeros((schedule.n_token_windows, n_channels))
    if code == "rate":
        gain = float(params[gain_name])
        values[schedule.token_slots()] = signed_rates(x, gain)
        namespace = {"rate_table": TimedArray(values * Hz, dt=schedule.token_period * second, name=f"{name}_table")}
        group = blocks.neuron_group(n_channels, REGULAR_ENCODER_EQS, params, namespace, name,
                                    threshold=REGULAR_ENCODER_THRESHOLD, reset=REGULAR_ENCODER_RESET,
                                    method="euler", dt=params["dt_enc"])
        group.phase = phases.uniform(0, 1, size=n_channels)
        encoded = Encoded("rate", 1.0 / (gain * window), gain=gain, window=window)
    else:
        check_latency(params)
        base = float(params["code_base"])
        x_top = codes.latency_top(x, base) if x_top is None else float(x_top)
        if x_top <= 0:
            raise ValueError(f"x_top must be > 0, got {x_top:g}")
        values[schedule.token_slots()] = signed_rates(x, 1.0)
        namespace = {"value_table": TimedArray(values, dt=schedule.token_period * second, name=f"{name}_table")}
        group = latency_neurons(n_channels, LATENCY_ENCODER_START, params, namespace, name, x_top,
                                schedule.token_period)
        encoded = Encoded("latency", 1.0, x_top=x_top, base=base, levels=latency_levels(params))
    group.channel = np.arange(n_channels)
    return group, encoded
