"""Circuits on a Dask cluster (circuits.runners.DaskPool) and slim results (SpikingCircuit.slim).

A local Dask cluster of two worker processes runs small heads, a feed-forward block and a linear
stage with exactly the results of the same specs run one after another in this process and of a
CircuitPool; slim results keep the decoded outputs and the bill's counts, not the spike trains.
"""

import math
import pickle
import sys

import numpy as np
import pytest

from analysis.attention import synthetic_head
from circuits.feedforward import feedforward_spec
from circuits.head import head_spec
from circuits.linear import linear_spec
from circuits.runners import KEEP_ALL, CircuitPool, DaskPool, check_keep, connect_dask, make_pool, slim_result
from circuits.seeds import SeedStreams
from transformer import bill
from transformer.heads import attention_map_metrics

distributed = pytest.importorskip("distributed", reason="the Dask pool needs the 'sweep' extra")

TINY_PROTOCOL = {"t_settle": "20*ms", "t_learn": "40*ms", "t_read": "60*ms"}
TINY_HEAD = dict(neurons_per_value=4, encoders_per_dim=2, params=TINY_PROTOCOL)
SMALL_FFN = {"neurons_per_unit": 16, "off_neurons_per_unit": 2}
FAST_LINEAR = {"dt": "1*ms", "dt_enc": "1*ms", "lin_enc_gain": "100*Hz", "t_count": "100*ms"}

#: What measured attention maps read of a head: the key neurons' spikes and the adenosine trace.
MAP_KEEP = ("key_neurons", "adenosine_monitor")


def head(seed, circuit="exact"):
    options = dict(TINY_HEAD, n_features=16) if circuit == "random" else TINY_HEAD
    return head_spec(*synthetic_head(3, 2, 2, 0.7, SeedStreams(seed).head), circuit, seed=seed, **options)


def ffn_block(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 8))
    return feedforward_spec(x, rng.standard_normal((6, 8)) / math.sqrt(8), 0.3 * rng.standard_normal(6),
                            w_out=rng.standard_normal((3, 6)), b_out=np.zeros(3), seed=seed, **SMALL_FFN)


def linear_stage(seed):
    rng = np.random.default_rng(seed)
    return linear_spec(rng.normal(size=(3, 6)), rng.normal(size=(4, 6)) / np.sqrt(6), rng.normal(size=4),
                       params=FAST_LINEAR, seed=seed)


def mixed_specs():
    """Heads of both kinds (one with W_O on its value neurons), an FFN block with W_2, a linear stage."""
    rng = np.random.default_rng(7)
    projected = head_spec(*synthetic_head(3, 2, 2, 0.7, SeedStreams(2).head), "exact", seed=2,
                          w_out=rng.normal(size=(3, 2)), b_out=np.zeros(3), **TINY_HEAD)
    return [head(0), head(1, "random"), projected, ffn_block(3), linear_stage(4)]


def outputs(result) -> dict:
    """A result's decoded outputs, whatever its kind."""
    names = ("y_spike", "y_rate", "g_spike", "g_rate", "variance", "y_projected")
    return {name: getattr(result, name) for name in names if getattr(result, name, None) is not None}


def spike_trains(circuit) -> dict:
    return {name: (m.t_, m.i) for name, m in circuit.monitors.items() if name.endswith("_spikes")}


def assert_same_outputs(a, b):
    assert type(a) is type(b)
    oa, ob = outputs(a), outputs(b)
    assert oa.keys() == ob.keys() and oa
    for name in oa:
        np.testing.assert_array_equal(oa[name], ob[name], err_msg=name)
    assert a.circuit.population_spikes() == b.circuit.population_spikes()
    assert a.circuit.synaptic_events() == b.circuit.synaptic_events()
    assert bill.circuit_tally(a.circuit) == bill.circuit_tally(b.circuit)


def assert_same_results(a, b):
    """Same outputs, counts and every spike (bit for bit)."""
    assert_same_outputs(a, b)
    sa, sb = spike_trains(a.circuit), spike_trains(b.circuit)
    assert sa.keys() == sb.keys()
    for name in sa:
        np.testing.assert_array_equal(sa[name][0], sb[name][0], err_msg=name)
        np.testing.assert_array_equal(sa[name][1], sb[name][1], err_msg=name)


@pytest.fixture(scope="module")
def sequential():
    """The specs run one after another in this process, full results."""
    specs = mixed_specs()
    return specs, [spec.simulate() for spec in specs]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local:
        yield local


def test_dask_results_equal_sequential_and_local_pool(cluster, sequential):
    specs, expected = sequential
    with CircuitPool(workers=1) as pool:
        local = pool.run(specs)
    lines = []
    with make_pool(scheduler=cluster.scheduler_address) as pool:
        assert isinstance(pool, DaskPool)
        remote = pool.run(specs, log=lines.append)
    assert len(lines) == len(specs) and lines[-1].startswith(f"{len(specs)}/{len(specs)} done")
    for spec, a, b, c in zip(specs, expected, local, remote):
        assert (c.spec.seed, c.spec.circuit) == (spec.seed, spec.circuit)
        assert_same_results(a, b)
        assert_same_results(a, c)
    assert not np.array_equal(remote[0].y_spike, remote[2].y_spike)   # seeds matter


def test_slim_results_keep_outputs_and_counts(cluster, sequential):
    specs, expected = sequential
    with DaskPool(cluster.scheduler_address, keep=()) as pool:
        slim = pool.run(specs)
        kept = pool.run(specs[:1], keep=MAP_KEEP)[0]
    for full, light in zip(expected, slim):
        assert_same_outputs(full, light)
        assert light.metrics["total_spikes"] == full.metrics["total_spikes"]
        assert len(pickle.dumps(light.circuit)) < len(pickle.dumps(full.circuit))
        assert not any(hasattr(m, "t_") for name, m in light.circuit.monitors.items() if name.endswith("_spikes"))
        assert all(name.endswith("_samples") for name, m in light.circuit.monitors.items()
                   if not name.endswith("_spikes"))
    sizes = [(len(pickle.dumps(light)), len(pickle.dumps(full))) for full, light in zip(expected, slim)]
    assert sum(s for s, _ in sizes) < sum(f for _, f in sizes) / 3, sizes
    with pytest.raises(ValueError, match="slim"):
        slim[0].circuit.window_counts("value_neurons", slim[0].circuit.schedule.read_windows())
    # The attention map and the astrocyte's normaliser read only what MAP_KEEP keeps.
    assert set(kept.circuit.monitors) >= {"key_neurons_spikes", "adenosine_monitor"}
    assert "process_monitor" not in kept.circuit.monitors
    a, b = attention_map_metrics(expected[0]), attention_map_metrics(kept)
    np.testing.assert_array_equal(a["spike_map"], b["spike_map"])
    assert a["metrics"] == b["metrics"]


def test_slim_locally_equals_slim_in_workers(sequential):
    specs, expected = sequential
    with CircuitPool(workers=2, keep=()) as pool:
        remote = pool.run(specs[3:])
    for full, light in zip(expected[3:], remote):
        local = slim_result(full)
        assert_same_outputs(local, light)
        assert pickle.dumps(local.circuit.monitors) == pickle.dumps(light.circuit.monitors)
    assert slim_result(expected[0], KEEP_ALL) is expected[0]
    twice = expected[0].circuit.slim().slim()
    assert twice.population_spikes() == expected[0].circuit.population_spikes()
    assert twice.synaptic_events() == expected[0].circuit.synaptic_events()


def test_workers_import_brian2_in_their_main_thread():
    """Brian2's import installs a signal handler, which a task's thread may not: the pool has every
    worker import it first, so a task may import circuits (or unpickle a spec) in its thread."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as fresh, distributed.Client(fresh) as client:
        assert list(client.run(lambda: "brian2" in __import__("sys").modules).values()) == [False]
        with DaskPool(client) as pool:
            assert pool.client is client
            assert list(client.run(lambda: "brian2" in __import__("sys").modules).values()) == [True]
            assert client.submit(lambda: __import__("circuits.linear").__name__, pure=False).result() == "circuits"
        assert client.status == "running"            # a pool leaves a client it was given open


def test_keep_and_pool_arguments_are_checked():
    assert check_keep(["key_neurons"]) == ("key_neurons",) and check_keep("all") == KEEP_ALL
    for bad in ("key_neurons", [1]):
        with pytest.raises(ValueError, match="keep must be"):
            check_keep(bad)
    with pytest.raises(ValueError, match="exclude each other"):
        make_pool(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="unknown device"):
        make_pool("gpu", scheduler="tcp://127.0.0.1:1")
    with make_pool(workers=2, keep=()) as pool:
        assert isinstance(pool, CircuitPool) and pool.keep == ()


def test_missing_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(ValueError, match=r"pip install 'dask\[distributed\]'"):
        connect_dask("tcp://127.0.0.1:8786")


def compiled_objects(root) -> dict:
    """Modification times of the projects' compiled code objects (main.o, which a build's values
    change, left out)."""
    return {path: path.stat().st_mtime_ns for path in root.rglob("*.o") if path.name != "main.o"}


@pytest.mark.slow
def test_dask_on_cpp_standalone_equals_local_standalone(cluster, tmp_path):
    """Compiled binaries on the workers (one shared cache folder here) give the local binary's
    spikes; one runner alternating circuit kinds recompiles nothing."""
    specs = [head(0), head(1), ffn_block(3)]
    with CircuitPool("cpp_standalone", 1, cache=tmp_path) as pool:
        local = pool.run(specs)
        compiled = compiled_objects(tmp_path)
        assert len({path.relative_to(tmp_path).parts[0] for path in compiled}) == 2    # two projects
        switched = pool.run(specs[::-1])           # feedforward, then exact again: code generated, not compiled
        assert compiled_objects(tmp_path) == compiled
    for a, b in zip(local, switched[::-1]):
        assert_same_results(a, b)
    with DaskPool(cluster.scheduler_address, "cpp_standalone", cache=tmp_path) as pool:
        remote = pool.run(specs)
        again = pool.run(specs, keep=())
    for a, b, c in zip(local, remote, again):
        assert_same_results(a, b)
        assert_same_outputs(a, c)
