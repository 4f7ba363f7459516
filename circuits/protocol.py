"""The write/read protocol: when each token is learned and when each query is read.

Write phase: token t is presented for ``t_settle + t_learn``; plasticity and calcium integration
are on (``write_phase`` = 1) only for the last ``t_learn``, after the input filters have settled.
Read phase: query s is presented for ``t_settle + t_read``; transmission through the astrocyte-
gated synapses is on (``read_phase`` = 1) for the whole window and the output is counted in the
last ``t_read``. By default all tokens are written, then all queries read; with ``causal`` the read
of query s follows the write of token s (autoregressive attention: query s sees tokens 0..s).
Inputs and phases are stored per time bin and handed to Brian2 as TimedArrays.
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
#: circuits, counting of the feed-forward circuit.
WINDOWS = ("t_settle", "t_learn", "t_read", "t_count", "t_consolidate")

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


@dataclass(frozen=True)
class Schedule:
    """Timing of ``n_tokens`` writes and ``n_queries`` reads (all in seconds): every write first,
    then a pause ``t_consolidate``, then every read; or, if ``causal``, write token s then read
    query s (no pause)."""

    n_tokens: int
    n_queries: int
    t_settle: float
    t_learn: float
    t_read: float
    causal: bool = False
    bin: float = float(TABLE_BIN)
    t_consolidate: float = 0.0

    @classmethod
    def from_params(cls, n_tokens, n_queries, params, causal=False) -> "Schedule":
        """The schedule of a parameter set from ``circuits.circuit_parameters`` (windows checked there)."""
        if causal and n_queries != n_tokens:
            raise ValueError(f"causal attention needs one query per token, got {n_queries} queries "
                             f"for {n_tokens} tokens")
        pause = 0.0 if causal or "t_consolidate" not in params else float(params["t_consolidate"])
        return cls(n_tokens, n_queries, float(params["t_settle"]), float(params["t_learn"]),
                   float(params["t_read"]), bool(causal), t_consolidate=pause)

    @property
    def token_period(self) -> float:
        return self.t_settle + self.t_learn

    @property
    def read_period(self) -> float:
        return self.t_settle + self.t_read

    @property
    def write_end(self) -> float | None:
        """End of the write phase (None if causal: writes and reads alternate)."""
        return None if self.causal else self.n_tokens * self.token_period

    @property
    def duration(self) -> float:
        return self.n_tokens * self.token_period + self.t_consolidate + self.n_queries * self.read_period

    def token_windows(self) -> np.ndarray:
        """Whole write windows (settling included), one per token."""
        step = self.token_period + self.read_period if self.causal else self.token_period
        start = np.arange(self.n_tokens) * step
        return np.stack([start, start + self.token_period], axis=1)

    def learn_windows(self) -> np.ndarray:
        start = self.token_windows()[:, 0] + self.t_settle
        return np.stack([start, start + self.t_learn], axis=1)

    def query_windows(self) -> np.ndarray:
        """Whole read windows (settling included), one per query."""
        if self.causal:
            start = self.token_windows()[:, 1]
        else:
            start = self.write_end + self.t_consolidate + np.arange(self.n_queries) * self.read_period
        return np.stack([start, start + self.read_period], axis=1)

    def read_windows(self) -> np.ndarray:
        """Counting windows, one per query."""
        win = self.query_windows()
        return np.stack([win[:, 0] + self.t_settle, win[:, 1]], axis=1)

    def n_bins(self) -> int:
        return int(round(self.duration / self.bin))

    def _bin_index(self, t) -> np.ndarray:
        return np.rint(np.asarray(t) / self.bin).astype(int)

    def input_rows(self) -> np.ndarray:
        """For each bin, the row of ``concat(keys, queries)`` presented to the feature layer (in the
        pause before the reads, the first query: no phase is on, nothing is learned or read)."""
        rows = np.full(self.n_bins(), self.n_tokens, dtype=int)
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

    def recruitment(self) -> np.ndarray:
        """(n_bins x n_tokens) table: 1 while token t is being learned (its key neuron recruited)."""
        out = np.zeros((self.n_bins(), self.n_tokens))
        for t, (start, stop) in enumerate(self.learn_windows()):
            a, b = self._bin_index([start, stop])
            out[a:b, t] = 1.0
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
