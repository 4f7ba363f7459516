"""Tests of experiments.sweep on a fake experiment (tests/sweep_fake_experiment.py): fast, no Brian2."""

import csv
import fcntl
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import sweep
from experiments.sweep import SweepError, load_experiment, make_points, run_sweep

ROOT = Path(__file__).resolve().parent.parent
FAKE = "tests.sweep_fake_experiment"


@pytest.fixture(autouse=True)
def importable_fake(monkeypatch):
    """Point processes (and Dask workers) import the fake experiment whatever their working directory."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def read_table(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def expected_score(alpha, seed, gain=0.0, double=False):
    """The fake experiment's score (see tests/sweep_fake_experiment.py)."""
    return alpha * (seed + 1) * (2 if double else 1) + gain * 10


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ----------------------------------------------------------------------------- grid and points


def test_grid_names_map_to_cli_options_or_set():
    points = make_points(load_experiment(FAKE), {"alpha": ["1", "2"], "gain": ["0.5"], "double": ["true", "false"]},
                         [0, 3])
    assert len(points) == 2 * 1 * 2 * 2
    first = points[0]
    assert first.params == (("alpha", "1"), ("gain", "0.5"), ("double", "true")) and first.seed == 0
    argv = list(first.argv)
    assert argv[argv.index("--alpha") + 1] == "1"             # the experiment has --alpha
    assert argv[argv.index("--set") + 1] == "gain=0.5"        # it has no --gain
    assert "--double" in argv                                 # flag, true
    assert "--double" not in points[2].argv                   # flag, false
    assert argv[argv.index("--seed") + 1] == "0" and points[1].argv[points[1].argv.index("--seed") + 1] == "3"
    assert "--quiet" in argv and "--no-figures" in argv


def test_experiment_names_resolve_to_modules():
    assert load_experiment("attention").__name__ == "experiments.attention"
    with pytest.raises(SweepError, match="cannot import"):
        load_experiment("no_such_experiment")


def test_point_ids_are_deterministic_unique_and_readable():
    module = load_experiment(FAKE)
    grid = {"alpha": ["1", "2"], "gain": ["1*second", "1 second"]}  # both values sanitise to 1_second
    ids = [p.point_id for p in make_points(module, grid, [0, 1])]
    assert ids == [p.point_id for p in make_points(module, grid, [0, 1])]
    assert len(set(ids)) == len(ids) == 8
    assert ids[0].startswith("alpha=1,gain=1_second,seed=0-")
    assert all("/" not in i and " " not in i and "*" not in i for i in ids)


@pytest.mark.parametrize("grid, fixed, message", [
    ({"seed": ["1"]}, [], "set by the sweep"),
    ({"out": ["x"]}, [], "set by the sweep"),
    ({"double": ["yes"]}, [], "true or false"),
    ({"alpha": ["1", "1"]}, [], "repeated value"),
    ({"alpha": ["1"]}, ["--alpha", "3"], "which the grid varies"),
    ({"gain": ["1"]}, ["--set", "gain=2"], "which the grid varies"),
    ({"alpha": ["1"]}, ["--seed", "4"], "sets --seed itself"),
    ({"alpha": ["1"]}, ["--no-such-option"], "arguments after --"),
])
def test_bad_grids_are_refused(grid, fixed, message):
    with pytest.raises(SweepError, match=message):
        make_points(load_experiment(FAKE), grid, [0], fixed)


@pytest.mark.parametrize("grid, reason", [
    ("alpha=1,-1", "point alpha=-1,seed=0-"),   # the fake's prepare() refuses alpha < 0
    ("fail=none,bogus", "point fail=bogus,seed=0-"),  # its parser refuses the choice
    ("offset=1,x", "point offset=x,seed=0-"),   # prepare() refuses a non-number --set value
])
def test_invalid_point_rejected_before_any_run(tmp_path, capsys, grid, reason):
    log, out = tmp_path / "calls.log", tmp_path / "sweep"
    with pytest.raises(SystemExit) as exc:
        sweep.main([FAKE, "--grid", grid, "--seeds", "2", "--out", str(out), "--", "--log", str(log)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0], err
    assert not out.exists() and not log.exists()


# ---------------------------------------------------------------------------------------- sweeps


def test_sweep_writes_one_row_per_point_and_complete_folders(tmp_path):
    out, log, progress = tmp_path / "sweep", tmp_path / "calls.log", io.StringIO()
    grid = {"alpha": ["1", "2.5"], "gain": ["0", "0.5"]}
    path = run_sweep(FAKE, grid, [0, 1], fixed_args=["--log", str(log)], out=out, workers=2, stream=progress)
    assert path == out
    rows = read_table(out)
    assert len(rows) == 8 and len(log_lines(log)) == 8
    description = json.loads((out / "sweep.json").read_text())
    assert description["experiment"] == FAKE and description["grid"] == grid and description["seeds"] == [0, 1]
    assert description["fixed_args"] == ["--log", str(log)] and len(description["points"]) == 8
    for row, point in zip(rows, description["points"]):  # the table follows the point list
        assert (row["alpha"], row["gain"], int(row["seed"])) == (point["params"]["alpha"],
                                                                 point["params"]["gain"], point["seed"])
        assert row["status"] == "ok" and row["error"] == ""
        assert float(row["score"]) == expected_score(float(row["alpha"]), int(row["seed"]), float(row["gain"]))
        run_dir = out / row["run_dir"]
        assert run_dir == out / "points" / point["id"]
        assert {p.name for p in run_dir.iterdir()} == {"metrics.json", "params.json", "sweep_point.log"}
        assert json.loads((run_dir / "metrics.json").read_text())["score"] == float(row["score"])
        assert json.loads((run_dir / "params.json").read_text())["seed"] == point["seed"]
    assert json.loads((out / "failures.json").read_text()) == {}
    assert not (out / "tmp").exists() and sorted(p.name for p in (out / "points").iterdir()) == sorted(
        p["id"] for p in description["points"])
    lines = progress.getvalue().splitlines()
    assert lines[-1].startswith("[sweep sweep_fake_experiment] 8/8 done, 0 failed, 0 left, 0:00:")

    # The same sweep again into the same folder: everything is complete, nothing runs.
    run_sweep(FAKE, grid, [0, 1], fixed_args=["--log", str(log)], out=out, workers=2, stream=io.StringIO())
    assert len(log_lines(log)) == 8 and read_table(out) == rows


def test_failing_points_are_reported_and_the_others_complete(tmp_path, capsys):
    out = tmp_path / "sweep"
    status = sweep.main([FAKE, "--grid", "fail=none,raise,exit", "--grid", "alpha=3", "--seed-list", "2",
                         "--workers", "2", "--out", str(out)])
    assert status == 1
    rows = {row["fail"]: row for row in read_table(out)}
    assert rows["none"]["status"] == "ok" and float(rows["none"]["score"]) == expected_score(3, 2)
    assert rows["raise"]["status"] == rows["exit"]["status"] == "failed"
    assert rows["raise"]["score"] == "" and rows["raise"]["run_dir"] == ""
    assert rows["raise"]["error"] == "RuntimeError: told to fail (alpha=3.0)"
    assert rows["exit"]["error"] == "SystemExit(2): sweep_fake_experiment: error: told to exit"
    failures = sweep.read_failures(out)
    assert len(failures) == 2
    for failure in failures.values():
        assert failure["params"]["alpha"] == "3" and failure["seed"] == 2
        assert failure["error"] == rows[failure["params"]["fail"]]["error"]
        assert "told to" in (out / failure["log"]).read_text()  # the point's own output is kept
    assert len(list((out / "points").iterdir())) == 1
    assert "FAILED" in capsys.readouterr().err


def test_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "sweep"
    run_sweep(FAKE, {"alpha": ["1"]}, [0], out=out, workers=1, stream=io.StringIO())
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
        with pytest.raises(SweepError, match="in use"):
            run_sweep(FAKE, {"alpha": ["1"]}, [0], out=out, workers=1, stream=io.StringIO())


def test_a_different_sweep_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "sweep"
    run_sweep(FAKE, {"alpha": ["1"]}, [0], out=out, workers=1, stream=io.StringIO())
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(FAKE, {"alpha": ["1", "2"]}, [0], out=out, workers=1, stream=io.StringIO())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not a sweep folder"):
        run_sweep(FAKE, {"alpha": ["1"]}, [0], out=tmp_path / "other", workers=1, stream=io.StringIO())


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    out, log = tmp_path / "sweep", tmp_path / "calls.log"
    alphas = [str(a) for a in range(1, 7)]
    command = [sys.executable, "-m", "experiments.sweep", FAKE, "--grid", f"alpha={','.join(alphas)}",
               "--workers", "2", "--out", str(out), "--", "--sleep", "0.8", "--log", str(log)]
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (out / "points").is_dir() or not any((out / "points").iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its point processes, mid-flight
        proc.wait()
    finished = {p.name: p.stat().st_ino for p in (out / "points").iterdir()}
    assert 1 <= len(finished) < len(alphas)
    points = {p["id"]: p for p in json.loads((out / "sweep.json").read_text())["points"]}
    calls_before = log_lines(log)
    (out / "tmp" / "stale-point.1234").mkdir(parents=True, exist_ok=True)  # whatever was in progress

    path = sweep.resume_sweep(out, workers=2, stream=io.StringIO())

    calls = log_lines(log)
    for key in finished:  # started once, before the kill, and never again
        assert calls.count(f"alpha={float(points[key]['params']['alpha'])} seed=0") == 1
        assert (out / "points" / key).stat().st_ino == finished[key]
    assert len(calls) - len(calls_before) == len(alphas) - len(finished)
    rows = read_table(path)
    assert sorted(r["alpha"] for r in rows) == sorted(alphas) and {r["status"] for r in rows} == {"ok"}
    assert sorted(p.name for p in (out / "points").iterdir()) == sorted(points)
    assert not (out / "tmp").exists()
    for row in rows:
        assert float(row["score"]) == expected_score(float(row["alpha"]), 0)


def test_dask_cluster_gives_the_same_table(tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (optional extra)")
    grid = {"alpha": ["1", "2"], "fail": ["none", "raise"]}
    run_sweep(FAKE, grid, [0, 1], out=tmp_path / "local", workers=2, stream=io.StringIO())
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        run_sweep(FAKE, grid, [0, 1], out=tmp_path / "dask", scheduler=cluster.scheduler_address,
                  stream=io.StringIO())
    local, remote = read_table(tmp_path / "local"), read_table(tmp_path / "dask")
    assert len(local) == 8 and [r["status"] for r in local].count("ok") == 4
    assert remote == local
    for row in remote:
        if row["status"] == "ok":
            assert (tmp_path / "dask" / row["run_dir"] / "metrics.json").is_file()
    assert sweep.read_failures(tmp_path / "dask") == sweep.read_failures(tmp_path / "local")


def test_missing_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(SweepError, match=r"pip install 'dask\[distributed\]'"):
        sweep.connect_dask("tcp://127.0.0.1:8786")


@pytest.mark.slow
def test_attention_two_point_sweep(tmp_path):
    """The real experiment at tiny sizes: both grid paths (--features, --set tau_ca) reach the circuit."""
    tiny = ["--tokens", "2", "--dim", "2", "--value-dim", "2", "--neurons-per-value", "2",
            "--set", "t_learn=20*ms", "--set", "t_read=20*ms", "--set", "t_settle=20*ms"]
    out = run_sweep("attention", {"features": ["8"], "tau_ca": ["1*second", "10*second"]}, [0],
                    fixed_args=tiny, out=tmp_path / "sweep", workers=2, stream=io.StringIO())
    rows = read_table(out)
    assert [r["status"] for r in rows] == ["ok", "ok"], sweep.read_failures(out)
    for row, tau in zip(rows, (1.0, 10.0)):
        assert math.isfinite(float(row["rel_err_spike_vs_softmax"]))
        params = json.loads((out / row["run_dir"] / "params.json").read_text())
        assert params["parameters"]["tau_ca"]["value"] == tau and params["parameters"]["tau_ca"]["unit"] == "s"
        assert params["circuit"]["n_features"] == 8
