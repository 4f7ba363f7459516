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
    Parameter("record_dt", 5 * ms, ms, "sampling interval of recorded astrocyte calcium", positive=True),
)

#: Resolution of the input and phase tables (the TimedArrays' dt).
TABLE_BIN = 1 * ms


@dataclass(frozen=True)
class Schedule:
    """Timing of ``n_tokens`` writes and ``n_queries`` reads (all in seconds): every write first,
    or, if ``causal``, write token s then read query s."""

    n_tokens: int
    n_queries: int
    t_settle: float
    t_learn: float
    t_read: float
    causal: bool = False
    bin: float = float(TABLE_BIN)

    @classmethod
    def from_params(cls, n_tokens, n_queries, params, causal=False) -> "Schedule":
        for name in ("t_settle", "t_learn", "t_read"):
            ratio = float(params[name] / TABLE_BIN)
            if abs(ratio - round(ratio)) > 1e-9:
                raise ParameterError(f"{name} must be a multiple of {TABLE_BIN}, got {params[name]}")
        if causal and n_queries != n_tokens:
            raise ValueError(f"causal attention needs one query per token, got {n_queries} queries "
                             f"for {n_tokens} tokens")
        return cls(n_tokens, n_queries, float(params["t_settle"]), float(params["t_learn"]),
                   float(params["t_read"]), bool(causal))

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
        return self.n_tokens * self.token_period + self.n_queries * self.read_period

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
            start = self.write_end + np.arange(self.n_queries) * self.read_period
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
        """For each bin, the row of ``concat(keys, queries)`` presented to the feature layer."""
        rows = np.empty(self.n_bins(), dtype=int)
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
