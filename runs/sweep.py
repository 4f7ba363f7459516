"""Parameter sweeps: one experiment over a grid of parameters x seeds, in parallel, resumable.

The experiment is a module object with the interface of ``experiments.attention``: ``build_parser()``
(with ``--seed``, ``--out``, ``--quiet``, ``--no-figures``), ``main(argv)`` returning its new run
folder, and optionally ``prepare(args)`` that checks a point's input without running it. The caller
resolves it and passes the module in (``experiments.sweep`` finds experiments by name; this module
imports none)::

    run_sweep(experiment, {"features": ["64", "128"], "tau_ca": ["1*second", "10*second"]}, seeds=range(5))

A grid name becomes the experiment's option ``--<name with _ as ->`` when it has one (flags take
``true``/``false``), else ``--set name=value``. Fixed arguments go to every point. Every point is
checked with the experiment's own parser (and its ``prepare``) before anything runs.

Each point runs in a fresh Python process (Brian2 keeps global state) that imports the experiment
under the name its module object was imported by (``__spec__.name``), locally (``workers``) or on a
Dask cluster (``scheduler``; needs the optional ``dask[distributed]``). Sweep folder::

    sweep.json     the sweep: experiment, grid, seeds, fixed arguments, points (written once)
    results.csv    one row per point: parameters, seed, status, metrics, run folder (rewritten atomically)
    failures.json  failed points: parameters, seed, error, log file
    points/<id>/   the run folder of each completed point (moved in atomically once it is complete)
    failed/<id>.log  output of each failed point
    tmp/           points in progress; removed when a sweep (re)starts
    .lock          held (flock) by the running sweep, so two cannot write the same folder

Running the same sweep into the same ``out`` folder again skips completed points and runs the rest,
failed ones included, so a killed sweep loses only the points that were in progress;
:func:`sweep_description` reads back what a folder's sweep was (its experiment by module name).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import hashlib
import importlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from runs.folders import (RESULTS_ROOT, FileError, WriteError, new_run_dir, os_reason, read_json, write_atomic,
                          write_json)

# Options every experiment has (experiments/attention.py); the sweep sets them for each point.
CONTROLLED_DESTS = frozenset({"seed", "out", "quiet", "no_figures", "help"})
# Of those, the ones a fixed argument must not set: the sweep's value would silently win.
PER_POINT_DESTS = {"seed": "use --seeds or --seed-list", "out": "use the sweep's --out"}
RESERVED_COLUMNS = ("seed", "status", "run_dir", "error")
#: What sweep.json holds besides its points: the arguments of run_sweep that continue the sweep, and their types.
DESCRIPTION_FIELDS = {"experiment": str, "grid": dict, "seeds": list, "fixed_args": list, "figures": bool}
POLL_SECONDS = 0.05


class SweepError(ValueError):
    """An unusable sweep (bad grid, invalid point, foreign folder); the message fits on one line."""


# ----------------------------------------------------------------------------------------- points


@dataclass(frozen=True)
class Point:
    """One run of the experiment: grid values (as given on the command line) and a seed."""

    params: tuple[tuple[str, str], ...]
    seed: int
    point_id: str
    argv: tuple[str, ...]  # the experiment's arguments, without --out (chosen when it runs)

    def to_json(self) -> dict:
        return {"id": self.point_id, "params": dict(self.params), "seed": self.seed, "argv": list(self.argv)}


def experiment_name(module) -> str:
    """The name under which ``module`` was imported (also when it runs as ``__main__``): the name a
    point's process imports it by, and the experiment a sweep folder records."""
    spec = getattr(module, "__spec__", None)
    return spec.name if spec is not None else module.__name__


def check_experiment(module):
    """``module`` if it has the experiment interface (``build_parser()`` with the options a sweep
    sets, ``main(argv)``); SweepError with one line otherwise."""
    name = experiment_name(module)
    if not (callable(getattr(module, "build_parser", None)) and callable(getattr(module, "main", None))):
        raise SweepError(f"{name} is not an experiment (needs build_parser() and main(argv))")
    options = _options(module.build_parser())
    missing = [opt for opt in ("--seed", "--out", "--quiet", "--no-figures") if opt not in options]
    if missing:
        raise SweepError(f"{name} lacks option(s) {', '.join(missing)} that a sweep sets")
    return module


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    # argparse has no public map from option string to action; this attribute is stable since 2.7.
    return parser._option_string_actions


def _is_flag(action: argparse.Action) -> bool:
    return action.nargs == 0


def grid_arguments(parser: argparse.ArgumentParser, name: str, value: str) -> list[str]:
    """The experiment arguments that set grid parameter ``name`` to ``value``."""
    option = "--" + name.replace("_", "-")
    action = _options(parser).get(option)
    if action is None:
        if "--set" not in _options(parser):
            raise SweepError(f"--grid {name}: the experiment has neither {option} nor --set")
        return ["--set", f"{name}={value}"]
    if action.dest in CONTROLLED_DESTS or action is _options(parser).get("--set"):
        raise SweepError(f"--grid {name}: {option} is set by the sweep itself")
    if _is_flag(action):
        if value.lower() not in ("true", "false"):
            raise SweepError(f"--grid {name}: {option} is a flag, values must be true or false, got {value!r}")
        return [option] if value.lower() == "true" else []
    return [option, value]


def point_id(params: Sequence[tuple[str, str]], seed: int) -> str:
    """Deterministic folder name: readable ``name=value,...,seed=N`` plus a hash that keeps it unique.

    The readable part is sanitised (``1*second`` -> ``1_second``) and may be cut short, so two points
    can share it; the hash of the exact values cannot.
    """
    readable = ",".join([f"{name}={value}" for name, value in params] + [f"seed={seed}"])
    readable = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", readable)[:100]
    digest = hashlib.sha1(json.dumps([list(map(list, params)), seed]).encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def make_points(module, grid: Mapping[str, Sequence[str]], seeds: Sequence[int],
                fixed_args: Sequence[str] = (), figures: bool = False) -> list[Point]:
    """All points of the sweep, grid values varying slowest-first in the given order, seeds fastest."""
    parser = module.build_parser()
    _check_grid(grid, seeds)
    _check_fixed_args(parser, grid, fixed_args)
    tail = ["--quiet"] + ([] if figures else ["--no-figures"])
    points = []
    for values in itertools.product(*grid.values()):
        params = tuple(zip(grid.keys(), values))
        grid_argv = [arg for name, value in params for arg in grid_arguments(parser, name, value)]
        for seed in seeds:
            argv = (*fixed_args, *grid_argv, "--seed", str(seed), *tail)
            points.append(Point(params, seed, point_id(params, seed), argv))
    return points


def _check_grid(grid: Mapping[str, Sequence[str]], seeds: Sequence[int]) -> None:
    for name, values in grid.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise SweepError(f"--grid: bad parameter name {name!r}")
        if not values:
            raise SweepError(f"--grid {name}: no values")
        if len(set(values)) != len(values):
            raise SweepError(f"--grid {name}: repeated value in {','.join(values)}")
    if not seeds:
        raise SweepError("no seeds")
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"repeated seed in {list(seeds)}")


def _check_fixed_args(parser: argparse.ArgumentParser, grid: Mapping, fixed_args: Sequence[str]) -> None:
    """Refuse fixed arguments that the grid or the sweep would silently override (the last one wins)."""
    try:
        args = _strict_parse(parser, fixed_args)
    except _Invalid as exc:
        raise SweepError(f"arguments after --: {exc}") from None
    for dest, how in PER_POINT_DESTS.items():
        if getattr(args, dest) != parser.get_default(dest):
            raise SweepError(f"arguments after --: the sweep sets --{dest.replace('_', '-')} itself ({how})")
    set_action = _options(parser).get("--set")
    set_names = {text.split("=", 1)[0].strip() for text in getattr(args, set_action.dest, None) or []} \
        if set_action else set()
    for name in grid:
        action = _options(parser).get("--" + name.replace("_", "-"))
        fixed = (getattr(args, action.dest) != parser.get_default(action.dest)) if action else name in set_names
        if fixed:
            raise SweepError(f"arguments after -- set {name}, which the grid varies")


class _Invalid(Exception):
    """An argument error raised instead of argparse's print-usage-and-exit."""


def _strict_parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    def error(message):
        raise _Invalid(message)

    # argparse reports every bad argument through parser.error(), which prints and exits; raising
    # instead lets the sweep name the offending point in one line.
    parser.error = error
    return parser.parse_args(list(argv))


def validate_points(module, points: Sequence[Point]) -> None:
    """Parse each point's arguments with the experiment's parser and run its ``prepare`` if it has one.

    Raises SweepError naming the first invalid point, so that nothing runs when any point would fail
    on its input.
    """
    prepare = getattr(module, "prepare", None)
    for point in points:
        try:
            args = _strict_parse(module.build_parser(), point.argv)
            if prepare is not None:
                prepare(args)
        except _Invalid as exc:
            raise SweepError(f"point {point.point_id}: {exc}") from None
        except Exception as exc:  # prepare() may fail in any way; ValueError is its usual one
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            raise SweepError(f"point {point.point_id}: {message}") from None


# ------------------------------------------------------------------------------ one point, one process


@dataclass
class Outcome:
    """What became of one point: a complete run folder, or an error; both inside ``workdir``."""

    error: str | None
    run_dir: Path | None
    workdir: Path

    @property
    def log(self) -> Path:
        """The point's stdout and stderr."""
        return self.workdir / "log.txt"


# Runs in the point's process: import the experiment (by the name its module object had in the sweep's
# process, as ``python -m NAME`` would), call main(), report through a small JSON file (stdout belongs
# to the experiment).
_CHILD_CODE = "import sys; from runs.sweep import point_process_main; sys.exit(point_process_main(sys.argv[1:]))"


def point_process_main(argv: Sequence[str]) -> int:
    """Entry point of a point's process: ``MODULE OUTCOME_JSON EXPERIMENT_ARGS...``."""
    module_name, outcome_file, *experiment_argv = argv
    try:
        run_dir = importlib.import_module(module_name).main(experiment_argv)
        outcome = {"run_dir": str(run_dir)}
    except SystemExit as exc:  # argparse's parser.error() and explicit exits
        outcome = {"error": f"SystemExit({exc.code!r})"}
    except BaseException as exc:  # noqa: BLE001 - any failure of the experiment is the point's result
        traceback.print_exc()
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.flush()
    sys.stderr.flush()
    write_json(Path(outcome_file), outcome)
    return 0 if "run_dir" in outcome else 1


def _child_env() -> dict:
    env = dict(os.environ)
    # Points run side by side, one per core; multithreaded BLAS in each would oversubscribe the CPUs.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    return env


def start_point_process(module_name: str, argv: Sequence[str], workdir: Path) -> subprocess.Popen:
    """Start one point in a new Python process writing its run folder under ``workdir/out``."""
    with open(workdir / "log.txt", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, module_name, str(workdir / "outcome.json"), *argv,
             "--out", str(workdir / "out")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_child_env())


def collect_outcome(workdir: Path, returncode: int) -> Outcome:
    """Read what a finished point process left in ``workdir``."""
    if not (workdir / "outcome.json").is_file():
        return Outcome(f"point process died ({_describe_exit(returncode)})", None, workdir)
    try:
        reported = read_json(workdir / "outcome.json", "the point runs again when the sweep resumes")
        if not isinstance(reported.get("error", reported.get("run_dir")), str):
            raise FileError(f"{workdir / 'outcome.json'}: neither an error nor a run folder; the point runs again "
                            "when the sweep resumes")
    except FileError as exc:
        return Outcome(f"point process died ({_describe_exit(returncode)}): {exc}", None, workdir)
    if "error" in reported:
        error = reported["error"]
        if error.startswith("SystemExit"):  # the reason (argparse's message) is the last line printed
            error = f"{error}: {_last_line(workdir / 'log.txt')}"
        return Outcome(error, None, workdir)
    run_dir = Path(reported["run_dir"])
    if not run_dir.is_absolute():
        run_dir = workdir / run_dir
    if not run_dir.is_dir() or (workdir / "out").resolve() not in run_dir.resolve().parents:
        return Outcome(f"experiment returned {run_dir}, not a new folder inside its --out", None, workdir)
    try:
        _read_metrics(run_dir, "the point runs again when the sweep resumes")
    except FileError as exc:
        return Outcome(str(exc), None, workdir)
    return Outcome(None, run_dir, workdir)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _read_metrics(run_dir: Path, todo: str) -> dict:
    """A point's metrics.json (a JSON object); FileError with one line naming it, ending in ``todo``."""
    return read_json(run_dir / "metrics.json", todo)


# ------------------------------------------------------------------------------------------ runners


def run_local(module_name: str, points: Sequence[Point], tmp_root: Path,
              workers: int) -> Iterator[tuple[Point, Outcome]]:
    """Run points as local processes, at most ``workers`` at once; yield each as it finishes.

    Closing the generator early (error, interrupt) kills the processes still running.
    """
    pending = deque(points)
    running: dict[str, tuple[Point, Path, subprocess.Popen]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                point = pending.popleft()
                workdir = Path(tempfile.mkdtemp(prefix=point.point_id + ".", dir=tmp_root))
                running[point.point_id] = (point, workdir, start_point_process(module_name, point.argv, workdir))
            finished = [key for key, (_, _, proc) in running.items() if proc.poll() is not None]
            if not finished:
                time.sleep(POLL_SECONDS)  # points take seconds to minutes; polling costs nothing
            for key in finished:
                point, workdir, proc = running.pop(key)
                yield point, collect_outcome(workdir, proc.returncode)
    finally:
        for _, _, proc in running.values():
            proc.kill()
            proc.wait()


def connect_dask(scheduler: str):
    """A ``distributed.Client`` for the cluster at ``scheduler`` (``circuits.runners.connect_dask``);
    SweepError if unavailable."""
    from circuits.runners import connect_dask as connect   # imports Brian2: only for a Dask sweep

    try:
        return connect(scheduler)
    except ValueError as exc:
        raise SweepError(str(exc)) from None


def run_dask(client, module_name: str, points: Sequence[Point], tmp_root: Path) -> Iterator[tuple[Point, Outcome]]:
    """Run points as Dask tasks; each task runs its point in a fresh process on a worker.

    Workers need not share a file system with this machine: a task returns the run folder's files and
    they are written here.
    """
    from distributed import as_completed

    futures = {client.submit(remote_point, module_name, list(p.argv), pure=False,
                             key=f"sweep-point-{p.point_id}-{uuid.uuid4().hex[:8]}"): p for p in points}
    try:
        for future in as_completed(futures):
            point = futures[future]
            workdir = Path(tempfile.mkdtemp(prefix=point.point_id + ".", dir=tmp_root))
            try:
                packed = future.result()
            except Exception as exc:  # a worker that died repeatedly (KilledWorker), lost connection, ...
                yield point, Outcome(f"Dask task failed: {type(exc).__name__}: {exc}", None, workdir)
            else:
                yield point, unpack_outcome(packed, workdir)
    finally:
        client.cancel(list(futures))


def remote_point(module_name: str, argv: list[str]) -> dict:
    """Dask task: run one point in a fresh process in a scratch folder; return its outcome and files."""
    with tempfile.TemporaryDirectory(prefix="sweep-point-") as scratch:
        workdir = Path(scratch)
        proc = start_point_process(module_name, argv, workdir)
        outcome = collect_outcome(workdir, proc.wait())
        files = {}
        if outcome.run_dir is not None:
            files = {str(path.relative_to(outcome.run_dir)): path.read_bytes()
                     for path in sorted(outcome.run_dir.rglob("*")) if path.is_file()}
        return {"error": outcome.error, "run_name": outcome.run_dir.name if outcome.run_dir else None,
                "files": files, "log": outcome.log.read_bytes()}


def unpack_outcome(packed: dict, workdir: Path) -> Outcome:
    """Write what :func:`remote_point` returned into ``workdir`` as a local point would have left it."""
    (workdir / "log.txt").write_bytes(packed["log"])
    if packed["error"] is not None:
        return Outcome(packed["error"], None, workdir)
    run_dir = workdir / "out" / packed["run_name"]
    for relative, data in packed["files"].items():
        (run_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / relative).write_bytes(data)
    return Outcome(None, run_dir, workdir)


# -------------------------------------------------------------------------------------- the sweep


class SweepFolder:
    """The sweep folder and its bookkeeping; only the process holding its lock writes to it."""

    def __init__(self, path: Path, points: Sequence[Point], config: dict):
        self.path = path
        self._lock = None
        self.points = list(points)
        self.config = config
        self.status: dict[str, str] = {p.point_id: "pending" for p in points}
        self.metrics: dict[str, dict] = {}
        self.failures: dict[str, dict] = {}

    def points_dir(self) -> Path:
        return self.path / "points"

    def open(self) -> None:
        """Lock the folder, write or check sweep.json, clear tmp/, pick up completed points."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = open(self.path / ".lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel even on SIGKILL
        except BlockingIOError:
            lock.close()
            raise SweepError(f"{self.path} is in use by another running sweep") from None
        self._lock = lock
        self._write_or_check_description()
        shutil.rmtree(self.path / "tmp", ignore_errors=True)  # points that were in progress when killed
        for name in ("tmp", "points", "failed"):
            (self.path / name).mkdir(exist_ok=True)
        for point in self.points:
            folder = self.points_dir() / point.point_id
            if folder.is_dir():  # only complete run folders are ever renamed into points/
                try:
                    self.metrics[point.point_id] = _read_metrics(folder, f"delete {folder} to rerun the point")
                except FileError as exc:
                    raise SweepError(str(exc)) from None
                self.status[point.point_id] = "ok"
                self._remove_failed_log(point)

    def _write_or_check_description(self) -> None:
        description = self.path / "sweep.json"
        wanted = {**self.config, "points": [p.to_json() for p in self.points]}
        if description.exists():
            stored = _read_description(self.path)
            for key, value in wanted.items():
                if stored.get(key) != value:
                    raise SweepError(f"{self.path} holds a different sweep ({key} differs); "
                                     "use another --out, or --resume to continue that one")
        elif any(p.name != ".lock" for p in self.path.iterdir()):
            raise SweepError(f"{self.path} exists and is not a sweep folder (no sweep.json)")
        else:
            write_json(description, {**wanted, "created": datetime.now(timezone.utc).isoformat(
                timespec="seconds"), "command": sys.argv})

    def pending(self) -> list[Point]:
        return [p for p in self.points if self.status[p.point_id] != "ok"]

    def record(self, point: Point, outcome: Outcome) -> None:
        """Move a completed run folder into points/, or note the failure; then rewrite the tables."""
        if outcome.error is None:
            metrics = _read_metrics(outcome.run_dir, "the point runs again when the sweep resumes")
            os.replace(outcome.log, outcome.run_dir / "sweep_point.log")
            os.rename(outcome.run_dir, self.points_dir() / point.point_id)  # the atomic step
            self.metrics[point.point_id] = metrics
            self.status[point.point_id] = "ok"
            self.failures.pop(point.point_id, None)
            self._remove_failed_log(point)
        else:
            log = None
            if outcome.log.exists():  # a Dask task that never ran has no log
                log = f"failed/{point.point_id}.log"
                os.replace(outcome.log, self.path / log)
            self.status[point.point_id] = "failed"
            self.failures[point.point_id] = {"params": dict(point.params), "seed": point.seed,
                                             "error": outcome.error, "log": log}
        shutil.rmtree(outcome.workdir, ignore_errors=True)
        self.write_tables()

    def _remove_failed_log(self, point: Point) -> None:
        (self.path / "failed" / f"{point.point_id}.log").unlink(missing_ok=True)

    def write_tables(self) -> None:
        """Rewrite results.csv (every point) and failures.json atomically."""
        write_json(self.path / "failures.json", self.failures)
        names = list(self.config["grid"])
        metric_names = sorted({name for m in self.metrics.values() for name in m})
        # A metric named like a parameter or a bookkeeping column gets a prefix instead of clobbering it.
        columns = {name: (f"metric_{name}" if name in names or name in RESERVED_COLUMNS else name)
                   for name in metric_names}
        header = names + ["seed", "status"] + list(columns.values()) + ["run_dir", "error"]
        rows = []
        for point in self.points:
            key = point.point_id
            row = {**dict(point.params), "seed": point.seed, "status": self.status[key],
                   "run_dir": f"points/{key}" if self.status[key] == "ok" else "",
                   "error": self.failures.get(key, {}).get("error", "")}
            for name, value in self.metrics.get(key, {}).items():
                row[columns[name]] = value if isinstance(value, (int, float, str)) else json.dumps(value)
            rows.append(row)
        write_atomic(self.path / "results.csv", lambda fh: _write_csv(fh, header, rows))

    def close(self) -> None:
        """Remove tmp/ and release the lock; nothing to do if :meth:`open` did not get the lock."""
        if self._lock is not None:
            shutil.rmtree(self.path / "tmp", ignore_errors=True)
            self._lock.close()
            self._lock = None


def _write_csv(fh, header, rows) -> None:
    writer = csv.DictWriter(fh, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


class Progress:
    """One status line on stderr: rewritten in place on a terminal, one line per update otherwise."""

    def __init__(self, label: str, folder: SweepFolder, stream=sys.stderr):
        self.label, self.folder, self.stream = label, folder, stream
        self.start = time.monotonic()
        self.in_place = hasattr(stream, "isatty") and stream.isatty()
        self.last = None

    def update(self, final: bool = False) -> None:
        counts = list(self.folder.status.values())
        elapsed = int(time.monotonic() - self.start)
        line = (f"[sweep {self.label}] {counts.count('ok')}/{len(counts)} done, {counts.count('failed')} failed, "
                f"{counts.count('pending')} left, {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d} elapsed")
        if self.in_place:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        elif line != self.last:  # in a log file, the closing update usually repeats the last one
            self.stream.write(line + "\n")
        self.last = line
        self.stream.flush()


def default_workers() -> int:
    """CPUs this process may use (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_sweep(experiment, grid: Mapping[str, Sequence[str]], seeds: Sequence[int] = (0,), *,
              fixed_args: Sequence[str] = (), out: Path | None = None, workers: int | None = None,
              scheduler: str | None = None, figures: bool = False, stream=sys.stderr) -> Path:
    """Run (or resume) a sweep and return its folder.

    ``experiment``: the experiment's module object (see the module docstring); ``grid``: parameter
    name -> values as command-line strings; ``seeds``: the seeds of every grid point;
    ``fixed_args``: experiment arguments shared by all points. An ``out`` folder that holds this same
    sweep is resumed. Failed points do not raise: see ``failures.json`` / :func:`read_failures`.
    SweepError for invalid input, raised before anything runs, or a damaged sweep folder;
    ``runs.folders.WriteError`` if the folder cannot be written (full disk, no permission): the
    sweep stops, its completed points kept.
    """
    module = check_experiment(experiment)
    name = experiment_name(module)
    grid = {str(key): [str(v) for v in values] for key, values in grid.items()}
    seeds, fixed_args = [int(s) for s in seeds], [str(a) for a in fixed_args]
    points = make_points(module, grid, seeds, fixed_args, figures)
    validate_points(module, points)
    if workers is not None and workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    client = connect_dask(scheduler) if scheduler else None
    if out is None:
        out = new_run_dir(RESULTS_ROOT / "sweeps", name.rsplit(".", 1)[-1])
    config = {"experiment": name, "grid": grid, "seeds": seeds, "fixed_args": fixed_args, "figures": figures}
    folder = SweepFolder(Path(out), points, config)
    resume = f"completed points are kept: free space or make the folder writable, then resume (--resume {folder.path})"
    try:
        folder.open()
        print(f"[sweep] folder {folder.path}", file=stream)
        folder.write_tables()
        _run_points(folder, name, client, workers or default_workers(), stream)
    except WriteError as exc:
        raise WriteError(exc.path, exc.reason, resume) from None
    except OSError as exc:  # the folder's own bookkeeping (lock, tmp/, logs, moving point folders in) failed
        raise WriteError(exc.filename or folder.path, os_reason(exc), resume) from None
    finally:
        if client is not None:
            client.close()
        folder.close()
    return folder.path


def _run_points(folder: SweepFolder, module_name: str, client, workers: int, stream) -> None:
    progress = Progress(module_name.rsplit(".", 1)[-1], folder, stream)
    progress.update()
    todo = folder.pending()
    tmp_root = folder.path / "tmp"
    runner = (run_dask(client, module_name, todo, tmp_root) if client is not None
              else run_local(module_name, todo, tmp_root, workers))
    try:
        with contextlib.closing(runner):
            for point, outcome in runner:
                folder.record(point, outcome)
                progress.update()
    finally:
        folder.write_tables()
        progress.update(final=True)


def sweep_description(path: Path) -> dict:
    """What the sweep in ``path`` is, from its sweep.json: ``experiment`` (the module name it was
    imported by), ``grid``, ``seeds``, ``fixed_args``, ``figures`` (the arguments of
    :func:`run_sweep` that continue it, once the experiment is resolved), and its points.
    SweepError with one line if there is none or it is damaged."""
    if not (Path(path) / "sweep.json").is_file():
        raise SweepError(f"{path}: no sweep there (no sweep.json)")
    return _read_description(path)


def _read_description(path: Path) -> dict:
    """sweep.json, checked to describe a sweep; SweepError with one line naming it if damaged."""
    file = Path(path) / "sweep.json"
    todo = "the sweep's description is lost: restore sweep.json from a copy, or run the sweep anew with another --out"
    try:
        description = read_json(file, todo)
    except FileError as exc:
        raise SweepError(str(exc)) from None
    wrong = [name for name, kind in DESCRIPTION_FIELDS.items() if not isinstance(description.get(name), kind)]
    if wrong:
        raise SweepError(f"{file}: not a whole sweep description ({', '.join(wrong)} missing or wrong); {todo}")
    return description


def read_failures(path: Path) -> dict:
    """The failed points of the sweep in ``path``: point id -> parameters, seed, error, log;
    SweepError with one line if failures.json is damaged."""
    try:
        return read_json(Path(path) / "failures.json", f"it is written again when the sweep resumes (--resume {path})")
    except FileError as exc:
        raise SweepError(str(exc)) from None
