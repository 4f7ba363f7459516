"""A stage's input encoders under a code: the rate code's regular encoders or the latency code's.

    tokens x (L x D) --> ON/OFF encoders (2 D neurons, clock dt_enc) --synapses--> the stage

(models.encoders, analysis.codes; docs/model.md §11). :func:`input_encoders` builds them for a
stage whose tokens each take one window of ``window`` seconds; :class:`Encoded` tells the stage how
its synapses read a spike and what the code delivers (its NumPy reference and variance).

Across a stage boundary the values travel as spikes (docs/model.md §12): a :class:`SpikeTrain` is
what a stage's latency emitters fired (channel, token window, step), recorded in one circuit and
replayed in the next by :func:`replayed_neurons`, whose spikes carry what the emitters' did. Given
a train instead of values, :func:`input_encoders` builds those replayed terminals: the stage reads
the spikes, nothing is decoded to numbers and encoded again.
"""

from dataclasses import dataclass

import numpy as np
from brian2 import Hz, TimedArray, second

from analysis import codes
from circuits import blocks
from circuits.protocol import TABLE_BIN
from models.encoders import (CODES, LATENCY_ENCODER_EQS, LATENCY_ENCODER_RESET, LATENCY_ENCODER_START,
                             LATENCY_ENCODER_THRESHOLD, LATENCY_REPLAY_EQS, LATENCY_REPLAY_POLARITY,
                             LATENCY_REPLAY_RESET, LATENCY_REPLAY_START, LATENCY_REPLAY_THRESHOLD,
                             LATENCY_REPLAY_WINDOW_START, LATENCY_WINDOW_START,
                             REGULAR_ENCODER_EQS, REGULAR_ENCODER_RESET, REGULAR_ENCODER_THRESHOLD, polarity_sign,
                             signed_rates)
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


@dataclass(frozen=True, eq=False)
class SpikeTrain:
    """Values crossing a stage boundary as latency spikes (docs/model.md §12): spike n was fired by
    ON/OFF channel ``channel[n]`` (2c carries +x_c, 2c+1 carries -x_c; ``models.encoders.signed_rates``)
    in token window ``token[n]``, ``step[n]`` steps of dt_enc after that window's start, by emitters
    whose latency code has top of range ``x_top``, ratio ``base`` and ``levels`` levels: it carries
    x_top base^(1/2 - step). At most one spike per channel and window."""

    token: np.ndarray
    channel: np.ndarray
    step: np.ndarray
    n_tokens: int
    n_dims: int
    x_top: float
    base: float
    levels: int

    def __post_init__(self):
        slots = self.token.astype(np.int64) * 2 * self.n_dims + self.channel
        if len(np.unique(slots)) != len(slots):
            raise ValueError("a latency emitter fires at most once per window: the train has repeated spikes")
        if len(self.step) and (self.step.min() < 0 or self.step.max() >= self.levels):
            raise ValueError(f"spike steps must lie in [0, {self.levels}), got {self.step.min()}..{self.step.max()}")

    @classmethod
    def recorded(cls, times, indices, starts, dt_enc, n_dims, x_top, base, levels, channels=None) -> "SpikeTrain":
        """The train of emitters recorded by a spike monitor (spike ``times`` in s, neuron ``indices``)
        whose real tokens' windows start at ``starts`` (s, one per token, in order); ``channels``: the
        ON/OFF channel of each neuron (default: the neuron's index). Spikes outside those windows'
        ``levels`` steps (empty windows: none should fire) are not part of the train."""
        times, indices = np.asarray(times, dtype=float), np.asarray(indices, dtype=int)
        starts = np.asarray(starts, dtype=float)
        steps_from_zero = np.rint(times / dt_enc).astype(np.int64)
        start_steps = np.rint(starts / dt_enc).astype(np.int64)
        token = np.searchsorted(start_steps, steps_from_zero, side="right") - 1
        step = steps_from_zero - start_steps[np.maximum(token, 0)]
        keep = (token >= 0) & (step < levels)
        channel = indices[keep] if channels is None else np.asarray(channels)[indices[keep]]
        order = np.lexsort((channel, token[keep]))
        return cls(token[keep][order], channel[order], step[keep][order], len(starts), int(n_dims), float(x_top),
                   float(base), int(levels))

    @classmethod
    def encoded(cls, x, x_top, base, levels) -> "SpikeTrain":
        """The train latency encoders of ``x`` (tokens x dims) at top ``x_top`` fire: one spike per
        value at step ``analysis.codes.latency_level`` on its sign's channel, none for a value below
        the lowest of the ``levels`` levels (it delivers ``analysis.codes.latency_decode(x, ...)``)."""
        x = np.asarray(x, dtype=float)
        steps = codes.latency_level(x, x_top, base)
        token, dim = np.nonzero(steps < levels)
        return cls(token, 2 * dim + (x[token, dim] < 0), steps[token, dim].astype(np.int64), x.shape[0], x.shape[1],
                   float(x_top), float(base), int(levels))

    @property
    def n_channels(self) -> int:
        return 2 * self.n_dims

    @property
    def n_spikes(self) -> int:
        return len(self.step)

    def values(self) -> np.ndarray:
        """What the spikes carry (n_tokens x n_dims): +-x_top base^(1/2 - step), ON minus OFF. Only the
        edges of the network decode a train; a stage reads its spikes."""
        out = np.zeros((self.n_tokens, self.n_dims))
        carried = polarity_sign(self.channel) * self.x_top * self.base ** (0.5 - self.step)
        np.add.at(out, (self.token, self.channel // 2), carried)
        return out

    def step_table(self, rows=None, n_rows=None) -> np.ndarray:
        """(n_rows x n_channels) the recorded step of each channel in each window, -1 where it is
        silent; token n's spikes go to row ``rows[n]`` (default: row n)."""
        rows = np.arange(self.n_tokens) if rows is None else np.asarray(rows, dtype=int)
        table = np.full((self.n_tokens if n_rows is None else n_rows, self.n_channels), -1.0)
        table[rows[self.token], self.channel] = self.step
        return table

    def dims(self, index) -> "SpikeTrain":
        """The train of dimensions ``index`` (integer array), renumbered in that order: the axons of a
        population's subset (one head's queries, a slice of units)."""
        index = np.asarray(index, dtype=int)
        new = np.full(self.n_dims, -1)
        new[index] = np.arange(len(index))
        dim = new[self.channel // 2]
        keep = dim >= 0
        channel = 2 * dim[keep] + self.channel[keep] % 2
        order = np.lexsort((channel, self.token[keep]))
        return SpikeTrain(self.token[keep][order], channel[order], self.step[keep][order], self.n_tokens, len(index),
                          self.x_top, self.base, self.levels)


def joined(trains) -> SpikeTrain:
    """Trains of one code and token windows side by side (dimensions of the first, then the
    second's...): several circuits' emitters as one population (the heads' contexts, FFN slices)."""
    first = trains[0]
    for train in trains:
        if (train.n_tokens, train.x_top, train.base, train.levels) != (first.n_tokens, first.x_top, first.base,
                                                                      first.levels):
            raise ValueError("trains joined into one population need one code and one token count")
    offsets = np.cumsum([0] + [2 * t.n_dims for t in trains[:-1]])
    token = np.concatenate([t.token for t in trains])
    channel = np.concatenate([t.channel + offset for t, offset in zip(trains, offsets)])
    step = np.concatenate([t.step for t in trains])
    order = np.lexsort((channel, token))
    return SpikeTrain(token[order], channel[order], step[order], first.n_tokens, sum(t.n_dims for t in trains),
                      first.x_top, first.base, first.levels)


def concatenated(trains) -> SpikeTrain:
    """Trains of one code and width one after another (the first's tokens, then the second's...): the
    one-token trains of a stream as one train."""
    first = trains[0]
    for train in trains:
        if (train.n_dims, train.x_top, train.base, train.levels) != (first.n_dims, first.x_top, first.base,
                                                                    first.levels):
            raise ValueError("trains concatenated into one stream need one code and one width")
    offsets = np.cumsum([0] + [t.n_tokens for t in trains[:-1]])
    return SpikeTrain(np.concatenate([t.token + offset for t, offset in zip(trains, offsets)]),
                      np.concatenate([t.channel for t in trains]), np.concatenate([t.step for t in trains]),
                      sum(t.n_tokens for t in trains), first.n_dims, first.x_top, first.base, first.levels)


def spike_input(x) -> tuple:
    """A stage's input as (its SpikeTrain or None, the values it delivers as a float array): a
    stage's NumPy reference and checks take the values a train carries."""
    if isinstance(x, SpikeTrain):
        return x, x.values()
    return None, np.asarray(x, dtype=float)


def spike_inputs(*inputs) -> tuple:
    """Several inputs of one stage (a head's q, k, v): (their SpikeTrains, or None if they are
    values, and the values each delivers). A stage takes all its inputs as trains or none."""
    is_train = [isinstance(x, SpikeTrain) for x in inputs]
    if any(is_train) and not all(is_train):
        raise ValueError("a stage takes all its inputs as spike trains or all as values")
    return (tuple(inputs) if all(is_train) else None), tuple(spike_input(x)[1] for x in inputs)


def check_replayable(train, params) -> None:
    """Refuse (ValueError, one line) a train the receiving stage's clock cannot replay: its code's
    ratio or levels differ from the stage's latency code."""
    if not np.isclose(train.base, float(params["code_base"])) or train.levels != latency_levels(params):
        raise ValueError(f"a spike train of code base {train.base:g} and {train.levels} levels cannot be replayed "
                         f"on a stage of code_base {float(params['code_base']):g} and {latency_levels(params)} levels")


def replayed_neurons(train, params, namespace, name, period, rows, n_rows):
    """The terminals of ``train``'s emitters in a receiving circuit (``models.encoders.LATENCY_REPLAY_EQS``,
    one per ON/OFF channel, clock dt_enc): windows start every ``period`` seconds, token n's in
    window ``rows[n]`` of ``n_rows``; each fires at its recorded step with the efficacy the emitter's
    spike had. The recorded steps are the only thing the group reads (a table of spike times)."""
    check_replayable(train, params)
    base = float(params["code_base"])
    namespace = dict(namespace, spike_table=TimedArray(train.step_table(rows, n_rows), dt=period * second,
                                                       name=f"{name}_table"))
    group = blocks.neuron_group(train.n_channels, LATENCY_REPLAY_EQS, params, namespace, name,
                                threshold=LATENCY_REPLAY_THRESHOLD, reset=LATENCY_REPLAY_RESET, method="exact",
                                dt=params["dt_enc"], uses=(LATENCY_REPLAY_START,),
                                extra={"x_top": train.x_top, "tau_code": params["dt_enc"] / np.log(base),
                                       "step_rate": 1 / params["dt_enc"]})
    group.spike_step = -1
    group.channel = np.arange(train.n_channels)
    group.run_regularly(LATENCY_REPLAY_START, dt=period * second, when="before_thresholds",
                        name=f"{name}_window_start")
    return group


def replay_rows(times) -> np.ndarray:
    """The rows (TABLE_BIN each) of a replay table where windows starting at ``times`` (s) begin."""
    return np.rint(np.asarray(times, dtype=float) / float(TABLE_BIN)).astype(int)


def write_replay_table(table, train, times, signed=False) -> None:
    """Write ``train`` into the spike table of :func:`replayed_windowed_neurons` (in place): token n's
    recorded step + 1 (0: silent) in the row of the window starting at ``times[n]``, per ON/OFF channel
    or, ``signed``, per dimension with the spike's polarity as its sign."""
    column = train.channel // 2 if signed else train.channel
    sign = polarity_sign(train.channel) if signed else 1.0
    table[replay_rows(times)[train.token], column] = sign * (train.step + 1)


def replayed_windowed_neurons(shown, n_bins, params, namespace, name, signed=False):
    """Terminals replaying trains in windows at irregular times (a head's: keys at their learning
    windows, queries at their reads): ``shown`` holds (train, times) pairs, token n of a train in the
    window starting at ``times[n]`` (s, on a TABLE_BIN boundary), all trains of one code and width.
    One terminal per ON/OFF channel, or with ``signed`` one per dimension whose spike carries its
    polarity (``polarity``: +1 where the ON channel fired, -1 the OFF one), on the clock dt_enc."""
    trains = [train for train, _ in shown]
    first = trains[0]
    for train in trains:
        check_replayable(train, params)
        if train.n_dims != first.n_dims or train.x_top != first.x_top:
            raise ValueError(f"{name}: the trains replayed by one population need one width and top of range")
    width = first.n_dims if signed else first.n_channels
    table, starts = np.zeros((n_bins, width)), np.zeros(n_bins)
    for train, times in shown:
        starts[replay_rows(times)] = 1.0
        write_replay_table(table, train, times, signed)
    base = float(params["code_base"])
    eqs = LATENCY_REPLAY_EQS + ("polarity : 1\n" if signed else "")
    namespace = dict(namespace, spike_table=blocks.table(table, f"{name}_spike_table"),
                     window_start=blocks.table(starts, f"{name}_start_table"))
    uses = (LATENCY_REPLAY_WINDOW_START, LATENCY_REPLAY_POLARITY) if signed else (LATENCY_REPLAY_WINDOW_START,)
    group = blocks.neuron_group(width, eqs, params, namespace, name, threshold=LATENCY_REPLAY_THRESHOLD,
                                reset=LATENCY_REPLAY_RESET, method="exact", dt=params["dt_enc"], uses=uses,
                                extra={"x_top": first.x_top, "tau_code": params["dt_enc"] / np.log(base),
                                       "step_rate": 1 / params["dt_enc"]})
    group.spike_step = -1
    group.channel = np.arange(width)
    for k, code in enumerate(uses):
        group.run_regularly(code, dt=TABLE_BIN, when="before_thresholds", name=f"{name}_window_start{k}")
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
    replayed: bool = False      # latency: the spikes of another stage's emitters (SpikeTrain)

    @property
    def reads_efficacy(self) -> bool:
        return self.code == "latency"

    def variance(self, x) -> np.ndarray:
        """Expected squared error of each delivered value (the latency code's quantisation, the
        regular encoders' count quantisation). Replayed spikes deliver exactly what their train
        carries (``x`` is then ``SpikeTrain.values``): the quantisation is the emitting stage's."""
        if self.replayed:
            return np.zeros_like(np.asarray(x, dtype=float))
        if self.code == "latency":
            return codes.latency_variance(x, self.x_top, self.base, self.levels)
        return codes.count_variance(x, self.gain, self.window)


def input_encoders(x, code, params, schedule, phases, name, gain_name, x_top=None):
    """The ON/OFF encoders of tokens ``x`` (L x D) shown in the schedule's token windows (each
    ``schedule.token_period``; empty windows show nothing), on the clock ``dt_enc``. ``gain_name``:
    the rate code's gain parameter; ``x_top``: the latency code's top of range (default
    ``analysis.codes.latency_top`` of ``x``). ``phases``: the random start phases of the
    regular encoders. Returns (the NeuronGroup ``name``, :class:`Encoded`). Channel 2c carries
    +x_c, channel 2c+1 carries -x_c (``models.encoders.signed_rates``). ``x`` may be a
    :class:`SpikeTrain` (latency code only): the group is then its emitters' replayed terminals
    (:func:`replayed_neurons`) and ``x_top`` is the train's."""
    check_code(code)
    if isinstance(x, SpikeTrain):
        if code != "latency":
            raise ValueError("a spike train is latency-coded: the stage must read it with the latency code")
        group = replayed_neurons(x, params, {}, name, schedule.token_period, schedule.token_slots(),
                                 schedule.n_token_windows)
        return group, Encoded("latency", 1.0, x_top=x.x_top, base=x.base, levels=x.levels, replayed=True)
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
