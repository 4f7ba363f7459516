"""The benchmark's memory guard counts the synapses that the circuits really build."""

import gc

import numpy as np
import pytest
from brian2.utils.logger import catch_logs

from analysis.attention import synthetic_head
from benchmarks.attention import NEURONS_PER_KEY, estimated_synapses
from circuits import builder


@pytest.mark.parametrize("circuit", ["random", "exact"])
def test_estimated_synapses_match_built_circuit(circuit):
    from brian2 import Synapses

    L, m, d = 3, 16, 5
    q, k, v = synthetic_head(L, d, d, 0.7, np.random.default_rng(0))
    options = {"n_features": m} if circuit == "random" else {"neurons_per_key": NEURONS_PER_KEY}
    with catch_logs():                      # built to be counted, never run: Brian2 warns when deleted
        built = builder(circuit)(q, k, v, encoders_per_dim=4, **options)
        n_synapses = sum(len(g) for g in built.groups.values() if isinstance(g, Synapses))
        del built
        gc.collect()
    assert n_synapses == estimated_synapses(circuit, L, m, d)
