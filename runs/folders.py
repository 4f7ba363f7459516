"""Run folders: where experiments write, never overwriting an earlier run."""

import contextlib
import json
import os
import platform
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_ROOT = PROJECT_ROOT / "results"


def new_run_dir(parent: Path, label: str) -> Path:
    """Create and return a fresh folder ``parent/<UTC time>-<label>[-n]``; never reuses one."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = parent / (f"{stamp}-{label}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder in {parent}")


def output_parent(out, experiment: str) -> Path:
    """The parent folder of an experiment's run folders (``out``, default ``results/<experiment>``),
    created now, before anything is simulated; ValueError with one line if it cannot be."""
    parent = Path(out) if out is not None else RESULTS_ROOT / experiment
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the output folder {parent}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into the output folder {parent}: permission denied")
    return parent


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write a file to; it replaces ``path`` when the block ends
    without error and is removed otherwise, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write) -> None:
    """Write a text file atomically (:func:`atomic_path`); ``write``: a callable given the open file."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            write(fh)


def write_json(path: Path, data) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    write_atomic(path, lambda fh: json.dump(data, fh, indent=2, sort_keys=True, default=to_jsonable))


def run_record(experiment: str, seed, **fields) -> dict:
    """The content of a run's ``params.json``: the experiment, its seed, the given fields (circuit
    configuration, parameter tables, sizes...) and the software versions."""
    return {"experiment": experiment, "seed": seed, **fields, "versions": versions()}


def to_jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def versions() -> dict:
    """Versions of the software a result depends on, and the git commit of this project."""
    import brian2
    import matplotlib

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"python": platform.python_version(), "brian2": brian2.__version__, "numpy": np.__version__,
            "matplotlib": matplotlib.__version__, "platform": platform.platform(),
            "git_commit": commit, "git_dirty": dirty, "argv": sys.argv}


def progress_reporter(label: str, stream=sys.stderr):
    """A Brian2 ``report`` callback that prints simulated time, percentage and time left."""
    def report(elapsed, completed, start, duration):
        left = elapsed * (1 - completed) / completed if completed > 0 else float("nan")
        print(f"[{label}] {float(completed) * 100:5.1f}% of {float(duration):.1f} s simulated, "
              f"{float(elapsed):.0f} s elapsed, ~{left:.0f} s left", file=stream, flush=True)
    return report


def peak_memory_mb() -> dict:
    """Peak resident memory (MiB) of this process (``main``) and of its largest finished child
    (``largest_child``: a worker, the compiler or a standalone binary)."""
    import resource

    return {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
