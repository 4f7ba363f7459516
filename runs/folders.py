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
        except OSError as exc:
            raise WriteError(path, os_reason(exc)) from None
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


class FileError(ValueError):
    """A file that cannot be read or written as a run needs it (damaged, cut short, of the wrong
    kind, a full disk, no permission). The message is one line: the file, what is wrong and what to
    do. A ValueError, so that the command lines report it as their other input errors: one line."""


class WriteError(FileError):
    """A file that could not be written (full disk, no permission, read-only folder); whatever was
    at ``path`` before is left as it was (see :func:`atomic_path`)."""

    def __init__(self, path, reason, todo="free space or make the folder writable, then run again"):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: cannot write it ({reason}); {todo}")


def os_reason(exc: OSError) -> str:
    """The system's words for an OSError (``No space left on device``), without the errno and path."""
    return exc.strerror or str(exc)


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write a file to; it replaces ``path`` when the block ends
    without error and is removed otherwise, so readers never see half a file. Every writer of a run
    folder's files goes through here: an OSError while writing (full disk, no permission,
    read-only folder) becomes a :class:`WriteError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        yield tmp
        # On the disk before the rename: a full disk or a crash cannot leave a short file under the final name.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(path, os_reason(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write, binary=False) -> None:
    """Write a file atomically (:func:`atomic_path`); ``write``: a callable given the open file
    (text, or bytes with ``binary``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") if binary else open(tmp, "w", newline="") as fh:
            write(fh)


def write_json(path: Path, data) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    write_atomic(path, lambda fh: json.dump(data, fh, indent=2, sort_keys=True, default=to_jsonable))


def _label(path, option) -> str:
    return f"{option} {path}" if option else str(path)


def read_text(path, todo: str, option=None) -> str:
    """The text of a UTF-8 file; :class:`FileError` naming it (as ``option path`` when it came from
    a command-line option) with ``todo`` when it cannot be read or is not UTF-8 text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise read_error(path, exc, todo, option) from None


def read_error(path, exc, todo: str, option=None) -> FileError:
    """The :class:`FileError` of a file whose reading raised ``exc`` (an OSError or a
    UnicodeDecodeError), for readers that open files themselves."""
    if isinstance(exc, UnicodeDecodeError):
        return FileError(f"{_label(path, option)}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                         f"{exc.start}); {todo}")
    return FileError(f"{_label(path, option)}: cannot read it ({os_reason(exc)}); {todo}")


def read_json(path, todo: str, kind=dict, option=None):
    """The JSON content of a file, checked to be a ``kind`` (dict: a JSON object); :class:`FileError`
    naming the file with ``todo`` when it cannot be read, is empty, cut short or not JSON, or holds
    another kind of value."""
    text = read_text(path, todo, option)
    if not text.strip():
        raise FileError(f"{_label(path, option)}: empty file; {todo}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileError(f"{_label(path, option)}: not valid JSON, damaged or cut short ({exc.msg}, line "
                        f"{exc.lineno} column {exc.colno}); {todo}") from None
    if not isinstance(data, kind):
        raise FileError(f"{_label(path, option)}: holds {_json_kind(type(data))}, not {_json_kind(kind)}; {todo}")
    return data


def _json_kind(kind) -> str:
    return {dict: "a JSON object", list: "a JSON list", str: "a JSON string", int: "a number", float: "a number",
            bool: "true or false", type(None): "null"}.get(kind, kind.__name__)


def read_npz(path, todo: str, option=None) -> dict:
    """Every array of a NumPy ``.npz`` file (no pickled objects), read now; :class:`FileError` naming
    the file with ``todo`` when it cannot be read or is not a whole .npz archive."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except OSError as exc:
        raise read_error(path, exc, todo, option) from None
    except Exception as exc:  # zip, zlib, pickle and format errors all mean a damaged or foreign file
        raise FileError(f"{_label(path, option)}: not a readable .npz file, damaged or cut short "
                        f"({type(exc).__name__}: {str(exc).split('. ')[0]}); {todo}") from None


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
