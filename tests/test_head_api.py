"""The head API (circuits.head): checks before simulating, independent seed streams, results that
do not depend on where (which process) a head ran."""

import pickle

import numpy as np
import pytest
from brian2.utils.logger import catch_logs

from analysis.attention import softmax_attention, synthetic_head
from circuits import builder
from circuits.head import circuit_options, head_spec, run_head
from circuits.runners import run_heads
from circuits.seeds import STREAMS, SeedStreams
from models.parameters import ParameterError

TINY_PROTOCOL = {"t_settle": "20*ms", "t_learn": "40*ms", "t_read": "60*ms"}
TINY = dict(n_features=16, neurons_per_value=4, encoders_per_dim=2, params=TINY_PROTOCOL)


def tiny_head(seed=0):
    return synthetic_head(3, 2, 2, 0.7, SeedStreams(seed).head)


def spikes(circuit):
    return {name: (mon.t_, mon.i) for name, mon in circuit.monitors.items() if name.endswith("_spikes")}


def assert_same_spikes(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name][0], b[name][0], err_msg=name)
        np.testing.assert_array_equal(a[name][1], b[name][1], err_msg=name)


def built_inputs(q, k, v, **kwargs):
    """A circuit's drawn inputs (feature weights, phases, spike seed) without running it."""
    with catch_logs():                         # built, never run: Brian2 warns when it is deleted
        circuit = builder("random")(q, k, v, **kwargs)
        drawn = {"weights": circuit.inputs["feature_weights"], "phases": np.array(circuit.groups["key_encoders"].phase),
                 "spikes": circuit.seeds.spikes}
        del circuit
    return drawn


def test_feature_weights_are_independent_of_the_head():
    """The bug this guards: head and features drawn from one stream made W's first rows the queries."""
    n_tokens, dim = 16, 8
    for seed in range(3):
        q, k, v = synthetic_head(n_tokens, dim, dim, 0.7, SeedStreams(seed).head)
        w = built_inputs(q, k, v, n_features=64, seed=seed)["weights"][:n_tokens]
        cosine = np.sum(w * q, axis=1) / (np.linalg.norm(w, axis=1) * np.linalg.norm(q, axis=1))
        # Independent directions in d = 8: |cos| ~ 1/sqrt(8); all 16 above 0.99 has probability ~0.
        assert np.max(np.abs(cosine)) < 0.99, cosine
    draws = {name: np.random.default_rng(SeedStreams(0)._child(name)).random(4) for name in STREAMS}
    for a in STREAMS:
        for b in STREAMS:
            assert a == b or not np.allclose(draws[a], draws[b])


def test_spike_seed_redraws_spikes_with_head_features_and_phases_fixed():
    q, k, v = tiny_head()
    base = built_inputs(q, k, v, n_features=16, seed=0)
    other_spikes = built_inputs(q, k, v, n_features=16, seed=0, spike_seed=7)
    other_seed = built_inputs(q, k, v, n_features=16, seed=1)
    np.testing.assert_array_equal(base["weights"], other_spikes["weights"])
    np.testing.assert_array_equal(base["phases"], other_spikes["phases"])
    assert base["spikes"] != other_spikes["spikes"]
    assert not np.allclose(base["weights"], other_seed["weights"])
    assert SeedStreams(0, 7).spikes == SeedStreams(5, 7).spikes        # the spike seed alone sets them


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_featurs=8), "unknown option 'n_featurs'"),
    (dict(n_features=0), "n_features must be an integer >= 1"),
    (dict(params={"dt": "5*ms"}), "too coarse for tau_syn"),
    (dict(params={"t_read": "0.1*ms"}), "t_read must be a whole number of 1 ms"),
    (dict(params={"rho_value": "1e7*Hz"}), "rho_value = 1e+07 Hz fires with probability"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(causal=True, q_rows=2), "causal attention needs one query per token"),
    (dict(astrocyte="glia"), "unknown astrocyte model 'glia'"),
])
def test_head_spec_refuses_bad_input_with_one_line(kwargs, message):
    q, k, v = tiny_head()
    q = q[:kwargs.pop("q_rows", len(q))]
    with pytest.raises((ValueError, ParameterError)) as exc:
        head_spec(q, k, v, "random", **kwargs)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_exact_population_rate_is_checked_per_neuron():
    q, k, v = tiny_head()
    head_spec(q, k, v, "exact", neurons_per_key=4)
    with pytest.raises(ParameterError, match="R_key_target/neurons_per_key"):
        head_spec(q, k, v, "exact", neurons_per_key=1, params={"R_key_target": "3000*Hz"})


def test_options_follow_the_builders():
    assert {"n_features", "neurons_per_value", "astrocyte", "causal"} <= set(circuit_options("random"))
    assert {"neurons_per_key", "preload"} <= set(circuit_options("exact"))
    assert "n_features" not in circuit_options("exact")


def test_result_is_plain_data_with_references():
    q, k, v = tiny_head()
    result = run_head(q, k, v, "random", seed=0, **TINY)
    np.testing.assert_allclose(result.y_softmax, softmax_attention(q, k, v, 1 / np.sqrt(2)))
    copy = pickle.loads(pickle.dumps(result))
    assert_same_spikes(spikes(copy.circuit), spikes(result.circuit))
    np.testing.assert_array_equal(copy.population_counts(), result.population_counts())
    assert result.metrics["total_spikes"] == sum(len(i) for _, i in spikes(result.circuit).values()) > 0
    assert result.raster()["values"][0].size == len(result.circuit.monitors["value_neurons_spikes"].t_)


def test_heads_in_worker_processes_equal_heads_in_sequence():
    specs = [head_spec(*tiny_head(seed), "random", seed=seed, **TINY) for seed in (0, 1, 2)]
    sequential = run_heads(specs)
    parallel = run_heads(specs, workers=2)
    for a, b in zip(sequential, parallel):
        assert_same_spikes(spikes(a.circuit), spikes(b.circuit))
        np.testing.assert_array_equal(a.y_spike, b.y_spike)
    assert not np.array_equal(sequential[0].y_spike, sequential[1].y_spike)


@pytest.mark.parametrize("astrocyte", ["gchi", "lr1994"])
def test_cicr_limit_refuses_writes_past_the_threshold(astrocyte):
    """The main experiment's head (random circuit, L = 16, m = 256: busiest process ~340 expected
    write spikes) and a real-head-sized exact circuit (30 per key neuron) are accepted; 3 s of
    learning per token (~3300 spikes: past gchi's ~2400 and lr1994's ~780) or a drive per spike that
    lowers the CICR count below 30 is
    refused before anything is built, with the counts in one line."""
    from models.astrocytes import read_calibration
    from circuits import circuit_parameters

    q, k, v = synthetic_head(16, 8, 8, 0.7, SeedStreams(0).head)
    head_spec(q, k, v, "random", astrocyte=astrocyte)
    head_spec(q[:12], k[:12], v[:12], "exact", astrocyte=astrocyte)
    with pytest.raises(ParameterError, match=r"~3\d{3} write spikes, past the \d+ at which its IP3 starts CICR") as err:
        head_spec(q, k, v, "random", astrocyte=astrocyte, params={"t_learn": "3*second"})
    assert "\n" not in str(err.value)
    drive = "Y_0" if astrocyte == "gchi" else "delta_IP3"
    base = circuit_parameters("exact", astrocyte)
    stronger = base[drive] * read_calibration(astrocyte, base)["cicr_spikes"] / 20      # CICR at ~20 spikes
    with pytest.raises(ParameterError, match=r"~30 write spikes, past the 2\d at which"):
        head_spec(q[:12], k[:12], v[:12], "exact", astrocyte=astrocyte, params={drive: stronger})
