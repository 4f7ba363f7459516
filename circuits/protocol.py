"""The write/read protocol: when each token is learned and when each query is read.

Write phase: token t is presented for ``t_settle + t_learn``; plasticity and calcium integration
are on (``write_phase`` = 1) only for the last ``t_learn``, after the input filters have settled.
Read phase: query s is presented for ``t_settle + t_read``; transmission through the astrocyte-
gated synapses is on (``read_phase`` = 1) for the whole window and the output is counted in the
last ``t_read``. By default all tokens are written, then all queries read; with ``causal`` the read
of query s follows the write of token s (autoregressive attention: query s sees tokens 0..s).
Inputs and phases are stored per time bin and handed to Brian2 as TimedArrays.

Length buckets. A schedule may hold empty windows besides its tokens' and queries' (``pad_to``,
:func:`bucket_length`): a sentence of L tokens then runs on the structure (group sizes, tables,
duration) of ``pad_to`` tokens, so every sentence of a bucket shares one compiled standalone
binary. Empty windows show no input and have every phase off: nothing is recruited, learned,
written, read or counted in them. The attention circuits put the empty write windows *before* the
real ones and the empty read windows *after* the real reads, so every real token is as old at every
real read as without padding (its memory fades alike); the feed-forward and linear stages put
theirs after the real tokens. Every method below describes the real tokens and queries unless it
says otherwise (``padded=True``: every window, empty ones included, in time order).
"""

from dataclasses import dataclass

import numpy as np
from brian2 import ms

from models.parameters import Parameter, ParameterError

PROTOCOL_PARAMETERS = (
    Parameter("dt", 0.1 * ms, ms, "integration time step of neurons, synapses and processes", positive=True),
    Parameter("t_settle", 100 * ms, ms, "settling time at the start of each token and each read",
              positive=True),
    Parameter("t_learn", 300 * ms, ms, "plasticity window per token (write phase)", positive=True),
    Parameter("t_read", 800 * ms, ms, "counting window per query (read phase)", positive=True),
    Parameter("t_consolidate", 0 * ms, ms, "pause between the last write and the first read (not causal): a "
              "read-out that keeps integrating after a spike finishes first (G-ChI: 5 receptor times, "
              "circuits.circuit_parameters)", nonnegative=True),
    Parameter("record_dt", 5 * ms, ms, "sampling interval of recorded astrocyte calcium", positive=True),
)

#: Resolution of the input and phase tables (the TimedArrays' dt).
TABLE_BIN = 1 * ms

#: Short protocol of the paper experiments, quick runs and tests: 100 ms settling (5 membrane
#: time constants of the feature neurons), 200 ms learning per token, 400 ms counting per query.
SHORT_PROTOCOL = {"t_settle": "100*ms", "t_learn": "200*ms", "t_read": "400*ms"}

#: Protocol windows (whole numbers of TABLE_BIN): settling, learning and reading of the attention
#: circuits, counting of the feed-forward circuit, a latency code's window.
WINDOWS = ("t_settle", "t_learn", "t_read", "t_count", "t_code", "t_consolidate")

#: Time steps per time constant that the (exact or Euler) integration needs at least.
STEPS_PER_TIME_CONSTANT = 10
#: Largest spike probability per time step of a rate parameter. Spikes are Bernoulli draws
#: ``rand() < rate*dt``: their count variance is (1 - p) of a Poisson process's (the noise bounds
#: assume Poisson), and a draw cannot represent p > 1, which an escape-noise neuron driven to a few
#: times its rate parameter reaches unless p stays small. p <= 0.2 keeps the variance within 20 % of
#: Poisson and leaves a factor 5 of headroom.
MAX_SPIKE_PROBABILITY = 0.2


def check_resolution(params, exclude=()) -> None:
    """Refuse (ParameterError, one line) a time step too coarse for the model: every time constant
    (a parameter in seconds, protocol windows aside) must span ``STEPS_PER_TIME_CONSTANT`` steps, and
    every rate parameter (in Hz; ``exclude``: total rates of a population, checked per neuron by
    the caller) must fire with probability <= ``MAX_SPIKE_PROBABILITY`` per step. The protocol's
    windows must be whole table bins."""
    dt = params["dt"]
    checked = [name for name in params if not params.spec(name).dimensionless and name not in exclude
               and name not in ("dt", "dt_enc", "record_dt") + WINDOWS]
    for name in checked:
        value = params[name]
        if value.dim == ms.dim and float(value) > 0 and dt > value / STEPS_PER_TIME_CONSTANT:
            raise ParameterError(f"dt = {dt / ms:g} ms is too coarse for {name} = {_in_unit(params, name)}: "
                                 f"needs dt <= {name}/{STEPS_PER_TIME_CONSTANT}")
    for name in checked:
        if params[name].dim == (1 / ms).dim:
            check_spike_probability(name, params[name], dt)
    if dt > TABLE_BIN:
        raise ParameterError(f"dt = {dt / ms:g} ms is coarser than the input tables' bin of {TABLE_BIN / ms:g} ms")
    for name in (w for w in WINDOWS if w in params):
        ratio = float(params[name] / TABLE_BIN)
        if abs(ratio - round(ratio)) > 1e-9:
            raise ParameterError(f"{name} must be a whole number of {TABLE_BIN / ms:g} ms (the input tables' bin), "
                                 f"got {_in_unit(params, name)}")


def _in_unit(params, name) -> str:
    """A parameter's value in its declared unit, e.g. ``10 ms``."""
    spec = params.spec(name)
    return f"{float(params[name] / spec.unit):g} {spec.unit_name()}"


def check_spike_probability(name, rate, dt) -> None:
    """Refuse a rate whose spike probability per step, rate * dt, exceeds MAX_SPIKE_PROBABILITY."""
    p = float(rate * dt)
    if p > MAX_SPIKE_PROBABILITY:
        raise ParameterError(f"{name} = {float(rate):g} Hz fires with probability {p:.3g} per step of "
                             f"dt = {dt / ms:g} ms; a spike draw rand() < rate*dt needs <= "
                             f"{MAX_SPIKE_PROBABILITY}: lower {name} or dt")


#: Default length buckets of :func:`bucket_length`: all-MiniLM-L6-v2 was trained on inputs of up to
#: 128 word pieces.
BUCKETS = (16, 32, 64, 128)


def bucket_length(n_tokens, buckets=BUCKETS) -> int:
    """The smallest of ``buckets`` that holds ``n_tokens`` tokens: the ``pad_to`` of a sentence, so
    that a corpus compiles each circuit once per bucket rather than once per sentence length.
    ValueError with one line for a non-positive length or one over the largest bucket."""
    if isinstance(n_tokens, bool) or int(n_tokens) != n_tokens or n_tokens < 1:
        raise ValueError(f"n_tokens must be an integer >= 1, got {n_tokens!r}")
    fitting = [int(b) for b in buckets if b >= n_tokens]
    if not fitting:
        raise ValueError(f"{n_tokens} tokens are more than the largest length bucket, {max(buckets)}")
    return min(fitting)


def check_pad_to(pad_to, *lengths) -> None:
    """ValueError with one line unless ``pad_to`` is None or an integer >= every one of ``lengths``."""
    if pad_to is None:
        return
    if isinstance(pad_to, bool) or not isinstance(pad_to, (int, np.integer)) or pad_to < 1:
        raise ValueError(f"pad_to must be an integer >= 1 or None, got {pad_to!r}")
    if max(lengths) > pad_to:
        raise ValueError(f"pad_to = {pad_to} is shorter than the input ({max(lengths)} tokens)")


@dataclass(frozen=True)
class Schedule:
    """Timing of ``n_tokens`` writes and ``n_queries`` reads (all in seconds): every write first,
    then a pause ``t_consolidate``, then every read; or, if ``causal``, write token s then read
    query s (no pause).

    ``pad_tokens`` empty write windows and ``pad_queries`` empty read windows (see the module
    docstring): the write windows go before the real ones if ``pad_first`` (attention), after them
    otherwise (feed-forward and linear stages); the read windows after the real reads. Causal
    schedules pad with empty (write, read) pairs before the real ones."""

    n_tokens: int
    n_queries: int
    t_settle: float
    t_learn: float
    t_read: float
    causal: bool = False
    bin: float = float(TABLE_BIN)
    t_consolidate: float = 0.0
    pad_tokens: int = 0
    pad_queries: int = 0
    pad_first: bool = True

    def __post_init__(self):
        if self.causal and (self.pad_tokens != self.pad_queries or not self.pad_first):
            raise ValueError("a causal schedule pads with empty (write, read) pairs before the real ones")

    @classmethod
    def from_params(cls, n_tokens, n_queries, params, causal=False, pad_to=None) -> "Schedule":
        """The schedule of a parameter set from ``circuits.circuit_parameters`` (windows checked there);
        ``pad_to``: the number of write windows and of read windows (None: one per token and query)."""
        if causal and n_queries != n_tokens:
            raise ValueError(f"causal attention needs one query per token, got {n_queries} queries "
                             f"for {n_tokens} tokens")
        check_pad_to(pad_to, n_tokens, n_queries)
        pause = 0.0 if causal or "t_consolidate" not in params else float(params["t_consolidate"])
        pads = {} if pad_to is None else {"pad_tokens": pad_to - n_tokens, "pad_queries": pad_to - n_queries}
        return cls(n_tokens, n_queries, float(params["t_settle"]), float(params["t_learn"]),
                   float(params["t_read"]), bool(causal), t_consolidate=pause, **pads)

    @property
    def token_period(self) -> float:
        return self.t_settle + self.t_learn

    @property
    def read_period(self) -> float:
        return self.t_settle + self.t_read

    @property
    def n_token_windows(self) -> int:
        """Write windows, empty ones included (the structure: one key population each)."""
        return self.n_tokens + self.pad_tokens

    @property
    def n_query_windows(self) -> int:
        """Read windows, empty ones included."""
        return self.n_queries + self.pad_queries

    @property
    def write_end(self) -> float | None:
        """End of the write phase (None if causal: writes and reads alternate)."""
        return None if self.causal else self.n_token_windows * self.token_period

    @property
    def duration(self) -> float:
        return (self.n_token_windows * self.token_period + self.t_consolidate
                + self.n_query_windows * self.read_period)

    def token_slots(self) -> np.ndarray:
        """Index of each token's write window among all write windows (in time order)."""
        return np.arange(self.n_tokens) + (self.pad_tokens if self.pad_first else 0)

    def query_slots(self) -> np.ndarray:
        """Index of each query's read window among all read windows (in time order): the rows of
        the real queries in a table of every read window's values (``read_windows(padded=True)``)."""
        return np.arange(self.n_queries) + (self.pad_tokens if self.causal else 0)

    def token_windows(self, padded=False) -> np.ndarray:
        """Whole write windows (settling included), one per token (``padded``: every write window)."""
        slots = np.arange(self.n_token_windows) if padded else self.token_slots()
        step = self.token_period + self.read_period if self.causal else self.token_period
        start = slots * step
        return np.stack([start, start + self.token_period], axis=1)

    def learn_windows(self, padded=False) -> np.ndarray:
        start = self.token_windows(padded)[:, 0] + self.t_settle
        return np.stack([start, start + self.t_learn], axis=1)

    def query_windows(self, padded=False) -> np.ndarray:
        """Whole read windows (settling included), one per query (``padded``: every read window)."""
        slots = np.arange(self.n_query_windows) if padded else self.query_slots()
        if self.causal:
            start = slots * (self.token_period + self.read_period) + self.token_period
        else:
            start = self.write_end + self.t_consolidate + slots * self.read_period
        return np.stack([start, start + self.read_period], axis=1)

    def read_windows(self, padded=False) -> np.ndarray:
        """Counting windows, one per query (``padded``: one per read window)."""
        win = self.query_windows(padded)
        return np.stack([win[:, 0] + self.t_settle, win[:, 1]], axis=1)

    def n_bins(self) -> int:
        return int(round(self.duration / self.bin))

    def _bin_index(self, t) -> np.ndarray:
        return np.rint(np.asarray(t) / self.bin).astype(int)

    def input_rows(self) -> np.ndarray:
        """For each bin, the row of ``concat(keys, queries, [0])`` presented to the feature layer (in the
        pause before the reads, the first query: no phase is on, nothing is learned or read; in an
        empty window, row -1: no input)."""
        rows = np.full(self.n_bins(), self.n_tokens, dtype=int)
        if self.pad_tokens or self.pad_queries:
            for start, stop in np.concatenate([self.token_windows(True), self.query_windows(True)]):
                a, b = self._bin_index([start, stop])
                rows[a:b] = -1
        for t, (start, stop) in enumerate(self.token_windows()):
            a, b = self._bin_index([start, stop])
            rows[a:b] = t
        for s, (start, stop) in enumerate(self.query_windows()):
            a, b = self._bin_index([start, stop])
            rows[a:b] = self.n_tokens + s
        return rows

    def phase(self, windows) -> np.ndarray:
        """A 0/1 table that is 1 in the given windows."""
        out = np.zeros(self.n_bins())
        for start, stop in windows:
            a, b = self._bin_index([start, stop])
            out[a:b] = 1.0
        return out

    def write_phase(self) -> np.ndarray:
        return self.phase(self.learn_windows())

    def read_phase(self) -> np.ndarray:
        return self.phase(self.query_windows())

    def recruited_token(self) -> np.ndarray:
        """For each bin, the token whose key population is recruited (its learning window), -1 for
        none; empty windows' populations (after the real tokens') are never recruited. One column,
        not one per population: at 128 tokens a bins x populations 0/1 table was 105 MB a run."""
        out = np.full(self.n_bins(), -1.0)
        for t, (start, stop) in enumerate(self.learn_windows()):
            a, b = self._bin_index([start, stop])
            out[a:b] = t
        return out

    def contrast(self) -> np.ndarray:
        """+1 in the first half of each learning window, -1 in the second half, 0 elsewhere (the
        two phases of the contrastive Hebbian rule); the input is mirrored where it is -1."""
        out = np.zeros(self.n_bins())
        for start, stop in self.learn_windows():
            a, b = self._bin_index([start, stop])
            half = a + (b - a) // 2
            out[a:half], out[half:b] = 1.0, -1.0
        return out

    def value_rows(self) -> np.ndarray:
        """For each bin, the token whose value is presented to the value neurons (-1: none)."""
        rows = np.full(self.n_bins(), -1, dtype=int)
        for t, (start, stop) in enumerate(self.token_windows()):
            a, b = self._bin_index([start, stop])
            rows[a:b] = t
        return rows

    def age_at_reads(self) -> np.ndarray:
        """(n_queries x n_tokens) time from the middle of each token's learning window to the
        middle of each read's counting window (for the fading of weights and calcium); negative
        for tokens written after the read (causal)."""
        learn_mid = self.learn_windows().mean(axis=1)
        read_mid = self.read_windows().mean(axis=1)
        return read_mid[:, None] - learn_mid[None, :]
