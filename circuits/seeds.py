"""Independent random streams from one seed.

One run draws random numbers for four unrelated purposes: the synthetic head (q, k, v), the random
feature weights W, the pacing phases of regular encoders and key neurons, and Brian2's spikes
(escape-noise and Poisson draws). Performer's estimator assumes W independent of the head, so the
four must not share a stream: :func:`seed_streams` spawns them from one ``numpy.random.SeedSequence``.
A separate ``spike_seed`` redraws the spikes while the head, the features and the phases stay fixed.
"""

from dataclasses import dataclass

import numpy as np

#: Order of the children spawned from a run's seed (append only: reordering changes every run).
STREAMS = ("head", "features", "phases", "spikes")


@dataclass(frozen=True)
class SeedStreams:
    """The seeds of one run. ``seed``: the run's seed; ``spike_seed``: the seed of the spikes alone
    (None: derived from ``seed``). Each property returns a fresh generator at the start of its stream."""

    seed: int
    spike_seed: int | None = None

    def __post_init__(self):
        for name in ("seed", "spike_seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    def _child(self, name) -> np.random.SeedSequence:
        return np.random.SeedSequence(int(self.seed)).spawn(len(STREAMS))[STREAMS.index(name)]

    @property
    def head(self) -> np.random.Generator:
        return np.random.default_rng(self._child("head"))

    @property
    def features(self) -> np.random.Generator:
        return np.random.default_rng(self._child("features"))

    @property
    def phases(self) -> np.random.Generator:
        return np.random.default_rng(self._child("phases"))

    @property
    def spikes(self) -> int:
        """Integer seed of Brian2's random numbers (``brian2.seed`` / the standalone binary)."""
        source = (self._child("spikes") if self.spike_seed is None
                  else np.random.SeedSequence([int(self.spike_seed), STREAMS.index("spikes")]))
        return int(source.generate_state(1, dtype=np.uint32)[0])


def seed_streams(seed, spike_seed=None) -> SeedStreams:
    """The :class:`SeedStreams` of ``seed`` (an int, or SeedStreams passed through unchanged)."""
    if isinstance(seed, SeedStreams):
        if spike_seed is not None and spike_seed != seed.spike_seed:
            raise ValueError("give spike_seed either in the SeedStreams or as an argument, not both")
        return seed
    return SeedStreams(seed, spike_seed)
