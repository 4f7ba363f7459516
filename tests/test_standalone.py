"""The C++ standalone device: one compilation per structure, re-runs through run_args.

All runs share one module fixture (Brian2's device is global to the process, so the order of
builds and re-runs is fixed there); each test checks one property of the results. Fresh builds
share the cache folder, so their code is regenerated with the values compiled in but ``make``
recompiles only the files that changed.
"""

import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from brian2 import get_device
from brian2.devices.device import runtime_device

from analysis.attention import relative_error, synthetic_head
from analysis.spikes import tolerance_ratio
from circuits.protocol import SHORT_PROTOCOL
from circuits.random_feature import rate_model
from circuits.head import head_spec
from circuits.runners import run_heads
from circuits import standalone
from circuits.standalone import SCRATCH_ENV, StandaloneCircuits

SMALL = SHORT_PROTOCOL
FASTER_VALUES = dict(SMALL, rho_value="400*Hz")
OPTIONS = dict(n_features=64, neurons_per_value=16, encoders_per_dim=4)


def head(seed, n_tokens=6):
    return synthetic_head(n_tokens, 4, 4, 1.2, np.random.default_rng(seed))


def spikes(circuit):
    """Every spike monitor's (times, indices), keyed by monitor name."""
    return {name: (np.asarray(mon.t_[:]).copy(), np.asarray(mon.i[:]).copy())
            for name, mon in circuit.monitors.items() if name.endswith("_spikes")}


def summary(circuit):
    """What the tests compare, read while the compiled network still holds this run's results."""
    return {"spikes": spikes(circuit), "y": circuit.decode(), "ideal": rate_model(circuit)}


def fresh_build(root, q, k, v, params, seed):
    """A new StandaloneCircuits (so a new build, values compiled in) for one run."""
    with StandaloneCircuits("random", root=root) as fresh:
        result = summary(fresh.run(q, k, v, params=params, seed=seed, **OPTIONS))
        assert fresh.builds == 1
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("standalone")
    scratch = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SCRATCH_ENV, str(scratch))          # inherited by the pool's workers
        out = _runs(root)
    # What the runs left: run_args arrays or results in the projects (the build makes an empty
    # results folder), anything in the scratch folder.
    out["left_in_projects"] = sorted(str(path.relative_to(root)) for path in root.glob("*/static_arrays/init_*"))
    out["left_in_projects"] += sorted(str(path.relative_to(root)) for path in root.glob("*/results/*"))
    out["left_in_scratch"] = sorted(path.name for path in scratch.iterdir())
    return out


def _runs(root):
    out = {}
    with StandaloneCircuits("random", root=root) as cached:
        out["first"] = summary(cached.run(*head(0), params=SMALL, seed=0, **OPTIONS))
        out["new_inputs"] = summary(cached.run(*head(1), params=SMALL, seed=0, **OPTIONS))
        out["new_value"] = summary(cached.run(*head(0), params=FASTER_VALUES, seed=0, **OPTIONS))
        out["builds"] = cached.builds
    out["device_after_close"] = get_device()
    out["fresh_new_inputs"] = fresh_build(root, *head(1), SMALL, 0)
    out["fresh_new_value"] = fresh_build(root, *head(0), FASTER_VALUES, 0)
    # Four heads of the same structure over two worker processes that share the compiled project
    # (their runs overlap), and the same heads one after another in this process.
    specs = [head_spec(*head(seed), "random", params=SMALL, seed=seed, **OPTIONS) for seed in range(1, 5)]
    out["parallel"] = [spikes(r.circuit) for r in run_heads(specs, "cpp_standalone", workers=2, cache=root)]
    out["sequential"] = [spikes(r.circuit) for r in run_heads(specs, "cpp_standalone", cache=root)]
    return out


def test_runs_leave_no_files_behind(runs):
    # Every run writes its arrays and reads its results in a scratch folder of its own, removed after.
    assert runs["left_in_projects"] == []
    assert runs["left_in_scratch"] == []


def test_scratch_folders_of_killed_processes_are_removed(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{standalone.scratch_name(int(finished.stdout))}x"
    alive = tmp_path / f"{standalone.scratch_name()}x"
    # A process of another machine that shares the folder: its process ids are not this host's.
    elsewhere = tmp_path / f"{standalone.scratch_name(int(finished.stdout), host='elsewhere')}x"
    for folder in (dead, alive, elsewhere):
        (folder / "results").mkdir(parents=True)
    assert standalone.remove_stale_scratch(tmp_path) == [dead]
    assert alive.is_dir() and elsewhere.is_dir() and not dead.exists()


def test_scratch_leaves_a_small_dev_shm_for_the_temporary_folder(monkeypatch):
    monkeypatch.delenv(SCRATCH_ENV, raising=False)
    monkeypatch.setattr(standalone, "SHM_MIN_FREE", 1 << 62)
    assert standalone.scratch_root() == Path(tempfile.gettempdir())
    monkeypatch.setenv(SCRATCH_ENV, "/somewhere/else")
    assert standalone.scratch_root() == Path("/somewhere/else")


def test_a_full_scratch_folder_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(standalone.shutil, "disk_usage", lambda path: shutil_usage(free=1 << 10))
    error = standalone._no_space_error(tmp_path, RuntimeError("Project run failed"))
    assert SCRATCH_ENV in str(error) and "\n" not in str(error)
    monkeypatch.setattr(standalone.shutil, "disk_usage", lambda path: shutil_usage(free=1 << 40))
    assert standalone._no_space_error(tmp_path, RuntimeError("Project run failed")) is None


def shutil_usage(free):
    return collections.namedtuple("usage", "total used free")(1 << 41, 0, free)


def assert_same_spikes(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name][0], b[name][0], err_msg=name)
        np.testing.assert_array_equal(a[name][1], b[name][1], err_msg=name)


def test_rerun_with_new_inputs_equals_fresh_build(runs):
    assert_same_spikes(runs["new_inputs"]["spikes"], runs["fresh_new_inputs"]["spikes"])
    # ... and the inputs did change the spikes.
    assert not np.array_equal(runs["new_inputs"]["y"], runs["first"]["y"])


def test_rerun_with_new_parameter_value_equals_fresh_build(runs):
    assert_same_spikes(runs["new_value"]["spikes"], runs["fresh_new_value"]["spikes"])
    first, faster = runs["first"]["spikes"], runs["new_value"]["spikes"]
    assert len(faster["value_neurons_spikes"][0]) > 1.3 * len(first["value_neurons_spikes"][0])


def test_same_structure_compiles_once(runs):
    assert runs["builds"] == 1


@pytest.mark.slow
def test_structure_change_rebuilds(tmp_path):
    """A new number of tokens changes the tables' shapes: a second project (a full compilation,
    about a minute on two busy cores, hence slow)."""
    with StandaloneCircuits("random", root=tmp_path) as circuits:
        circuits.run(*head(0), params=SMALL, seed=0, **OPTIONS)
        first = circuits.directory
        circuits.run(*head(0, n_tokens=5), params=SMALL, seed=0, **OPTIONS)
        assert circuits.builds == 2
        assert circuits.directory != first


def test_concurrent_runs_of_one_project_equal_sequential_runs(runs):
    """Processes sharing one compiled project each read and write their own results (bit for bit
    the spikes of the same heads run one after another), and different seeds gave different spikes."""
    for parallel, sequential in zip(runs["parallel"], runs["sequential"]):
        assert_same_spikes(parallel, sequential)
    first, second = runs["sequential"][:2]
    assert not np.array_equal(first["value_neurons_spikes"][1], second["value_neurons_spikes"][1])


def test_close_restores_runtime_device(runs):
    assert runs["device_after_close"] is runtime_device


@pytest.mark.parametrize("name", ["first", "new_inputs", "new_value"])
def test_standalone_output_within_spike_count_bound_of_rate_ideal(runs, name):
    """The same statistical check as the runtime circuit's (tests/test_circuit.py)."""
    result = runs[name]
    noise = result["ideal"]["noise"]
    measured = relative_error(result["y"], result["ideal"]["y_rate"])
    assert measured <= tolerance_ratio(noise) * noise["relative_error"], (measured, noise["relative_error"])


@pytest.mark.slow
def test_latency_linear_stage_reruns_with_new_inputs_and_range(tmp_path):
    """A latency-coded linear stage compiles once: a second input (another x_top, a value of its
    encoders, not of its structure) re-runs the binary and still gives W times what the code
    delivers (analysis.codes, NumPy) plus b."""
    from analysis.codes import latency_decode
    from circuits.linear import linear_spec
    from circuits.runners import StandaloneRunner

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(6, 8)), rng.normal(size=6)
    params = {"dt": "1*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2}
    runner = StandaloneRunner(cache=tmp_path)
    try:
        for scale in (1.0, 7.0):
            x = scale * rng.normal(size=(3, 8))
            result = linear_spec(x, w, b, code="latency", params=params).simulate(runner)
            delivered = latency_decode(x, result.circuit.config["x_top"], 1.2, 40)
            np.testing.assert_allclose(result.y_spike, delivered @ w.T + b, rtol=1e-9, atol=1e-12)
        assert runner._circuits["linear"].builds == 1
    finally:
        runner.close()
