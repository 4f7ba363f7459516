"""Attention circuits on Brian2's C++ standalone device: compile once per structure, re-run many times.

Every model parameter is a ``(shared, constant)`` variable of the object that uses it, inputs and
phase signals are ``TimedArray`` s and random weights are synaptic variables (``circuits.blocks``), so
the generated C++ code depends only on the circuit's *structure*: circuit kind, sizes, model
choices and protocol lengths (which fix the tables' shapes). :class:`StandaloneCircuits` compiles a
project once per structure and runs the binary again with ``device.run(run_args=...)`` for new
heads, parameter values and seeds::

    circuits = StandaloneCircuits("random")
    first = circuits.run(q1, k1, v1, n_features=256, seed=0)    # generates code and compiles
    second = circuits.run(q2, k2, v2, n_features=256, seed=1)   # same binary, new run_args
    y = second.decode()
    circuits.close()                                            # back to the runtime device

What a re-run passes. The same builder is called on the runtime device (no simulation, no
compilation beyond Brian2's cached synapse generators), which computes every initial value for
the new call exactly as a fresh build would (random features, encoder phases, parameters...);
the initial value of every user-visible state variable and the contents of every TimedArray
the code reads are then handed to the compiled binary. The spike generator's seed is read from
the environment variable :data:`SEED_ENV` by the generated ``main`` (see :func:`_seed_expression`),
so a new seed needs no recompilation either. Every run, the first after a build included, passes all
values as run_args, so a run never depends on what a build left in the project folder. A re-run
therefore gives exactly the spikes of a fresh standalone build with the same inputs and seed
(``tests/test_standalone.py``); it does not give the spikes of the runtime device, whose
random-number streams differ.

Where a run's files go. A run writes its run_args arrays and reads its results (Brian2 writes
every array of the network, ~200 files) in a scratch folder of its own under :func:`scratch_root`
(RAM-backed ``/dev/shm`` where it has room), removed once its monitors are read: nothing of a run
is left in the project folder. The folders of this host's processes killed during a run are
removed by the next :class:`StandaloneCircuits` made (a folder shared by several machines keeps
the others'), and a scratch folder too full for a run's files is a one-line error naming
:data:`SCRATCH_ENV`. Brian2 itself would write each run_args array into the project's
``static_arrays`` under the hash of its contents, never removed (a cache grew by gigabytes a day),
and the results beside it on disk: on a virtual machine's disk those ~200 file creations and
deletions took 0.05-0.2 s per run, as long as a head's simulation (0.05 s).

Several processes may share one compiled project (sweeps, heads fanned out over processes): each
run has its own scratch folder, and a lock file beside the project (``flock``) lets a build start
only when no binary of that project runs, and a binary only when no build is under way. Concurrent
runs give exactly the results of the same runs made one after another (``tests/test_standalone.py``).

Brian2's device is global to the process: while a :class:`StandaloneCircuits` is in use, objects
built elsewhere in the process are built for the standalone device too, and only one
:class:`StandaloneCircuits` owns the compiled network at a time (another one that runs rebuilds).
:meth:`StandaloneCircuits.close` (or leaving a ``with`` block) resets Brian2 to the runtime device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import brian2
from brian2 import Quantity, TimedArray, prefs, set_device
from brian2.core.variables import ArrayVariable
from brian2.devices.device import all_devices

from circuits import builder
from circuits.circuit import SpikingCircuit

#: Environment variable from which the compiled binary reads the seed of its random numbers.
SEED_ENV = "ASTRO_TRANSFORMER_SEED"

#: Default parent folder of the compiled projects, one sub-folder per structure.
DEFAULT_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "astro-transformer" / "standalone"
#: Environment variable naming the folder of the runs' scratch folders (default: :func:`scratch_root`).
SCRATCH_ENV = "ASTRO_TRANSFORMER_SCRATCH"
#: Least free space of ``/dev/shm`` for runs to use it: a run's folder holds its circuit's arrays
#: (tens of MB for a 128-token FFN slice), and a container's ``/dev/shm`` is often 64 MB.
SHM_MIN_FREE = 1 << 30
#: Prefix of a run's scratch folder; the host and process id follow it (:func:`scratch_name`).
SCRATCH_PREFIX = "astro-transformer-run-"
#: Free space below which a failed run is put down to a full scratch folder.
SCRATCH_FULL = 16 << 20


def scratch_root() -> Path:
    """The folder in which each run makes its scratch folder (run_args arrays, results): the
    environment's :data:`SCRATCH_ENV`, else ``/dev/shm`` (RAM) where it is a writable folder with
    :data:`SHM_MIN_FREE` free, else the system's temporary folder."""
    if os.environ.get(SCRATCH_ENV):
        return Path(os.environ[SCRATCH_ENV])
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= SHM_MIN_FREE:
        return shm
    return Path(tempfile.gettempdir())


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                  # another user's process
        pass
    return True


def scratch_name(pid=None, host=None) -> str:
    """The start of a run's scratch folder name: :data:`SCRATCH_PREFIX`, the host and the process id
    (default this process's), so that a folder shared by several machines (:data:`SCRATCH_ENV`) tells
    whose process made it."""
    return f"{SCRATCH_PREFIX}{host or socket.gethostname()}-{os.getpid() if pid is None else pid}-"


def remove_stale_scratch(root: Path) -> list:
    """Remove the scratch folders in ``root`` of this host's processes no longer running (killed
    during a run, which leaves its folder in RAM); returns their paths."""
    removed = []
    mine = f"{SCRATCH_PREFIX}{socket.gethostname()}-"
    for path in Path(root).glob(f"{mine}*"):
        pid = path.name[len(mine):].split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _no_space_error(root: Path, exc: Exception) -> OSError | None:
    """One-line OSError if ``root`` is (nearly) full, which is why a run's files could not be
    written; None otherwise."""
    if shutil.disk_usage(root).free >= SCRATCH_FULL:
        return None
    return OSError(errno.ENOSPC, f"no space left for a run's files in {root} ({type(exc).__name__}); "
                                 f"set {SCRATCH_ENV} to a folder with room")


class _SeedExpression:
    """Stands in for the integer seed in Brian2's generated ``main``.

    Brian2 writes ``brian::_random_generators[_i].seed(<repr(seed)>L + _i);``. This object's repr is a
    C expression that reads :data:`SEED_ENV` (0 if unset) and ends in ``+ 0`` so that the appended
    ``L`` suffix stays valid C++; ``stdlib.h`` (getenv, strtoul) is included by Brian2's ``main.cpp``.
    """

    def __repr__(self):
        return f'(getenv("{SEED_ENV}") ? strtoul(getenv("{SEED_ENV}"), NULL, 10) : 0UL) + 0'


#: Configuration entries that are values, not structure: the kernel scale only scales inputs, and a
#: latency code's tops of range are shared constants of its neurons (the latency head's keys and
#: queries ``x_top``, values ``v_top`` and output ``y_top``; the one-spike key code's threshold
#: ``score_top``; the LayerNorm stage's interneuron ``mu_top``, squares ``d_top`` and output ``n_top``;
#: a linear stage's emitters ``emit_top``).
VALUE_CONFIG = ("scale", "x_top", "g_top", "v_top", "y_top", "score_top", "mu_top", "d_top", "n_top", "emit_top")


def structure_key(circuit: SpikingCircuit) -> tuple:
    """Everything the generated code depends on: the circuit's configuration without its values
    (:data:`VALUE_CONFIG`), the table and clock resolutions, the number of table bins, the parameter
    names (they become declared variables) and the Brian2 version."""
    config = {name: value for name, value in circuit.config.items() if name not in VALUE_CONFIG}
    params = circuit.params
    steps = tuple((name, float(params[name])) for name in ("dt", "dt_enc", "record_dt") if name in params)
    return (circuit.kind, tuple(sorted(config.items())), circuit.schedule.n_bins(), steps, tuple(sorted(params)),
            brian2.__version__)


def _owned_state_variables(group) -> dict:
    """Name -> Variable of the writable state variables a group owns (parameters included; linked,
    read-only and internal variables excluded)."""
    return {name: var for name, var in group.variables.items()
            if isinstance(var, ArrayVariable) and not var.read_only and not name.startswith("_")
            and getattr(var.owner, "name", None) == group.name}


def run_args_for(compiled: SpikingCircuit, fresh: SpikingCircuit, used_timed_arrays) -> dict:
    """``run_args`` that give the compiled circuit the initial state and inputs of ``fresh``, the same
    structure built on the runtime device: every owned state variable and every TimedArray the
    compiled code reads (``used_timed_arrays``)."""
    run_args = {}
    for name, group in compiled.groups.items():
        source = fresh.groups[name]
        for var_name, var in _owned_state_variables(group).items():
            value = source.variables[var_name].get_value()
            run_args[getattr(group, var_name)] = Quantity(value, dim=var.dim, copy=True)
        for key, table in group.namespace.items():
            if isinstance(table, TimedArray) and table in used_timed_arrays:
                new = source.namespace[key]
                run_args[table] = Quantity(new.values, dim=new.dim, copy=True)
    return run_args


def write_run_args(device, run_args: dict, folder: Path) -> list:
    """``run_args`` (variable or TimedArray -> value) as the binary's command-line arguments, each
    array written to ``folder`` (an absolute path, which the binary reads as a file) instead of the
    project's ``static_arrays``; Brian2's own checks of each value's unit and shape apply."""
    args = []
    for key, value in run_args.items():
        prepare = (device._prepare_timed_array_run_arg if isinstance(key, TimedArray)
                   else device._prepare_variableview_run_arg)
        name, string_value, value_name, array = prepare(key, value)
        if value_name:
            path = folder / value_name
            array.tofile(path)
            string_value = str(path)
        args.append(f"{name}={string_value}")
    return args


@contextlib.contextmanager
def _project_lock(directory: Path, mode):
    """Hold ``flock`` on the project folder's lock file: exclusive (``LOCK_EX``) to generate and
    compile, shared (``LOCK_SH``) to run the binary. Processes then share one compiled project
    safely: a build waits for running binaries, and no binary starts during a build."""
    with open(directory.parent / f"{directory.name}.lock", "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_run_leftovers(directory: Path):
    """Remove what runs of earlier versions left in a project folder (held exclusively): run_args
    arrays in ``static_arrays`` (``init_*``, with their lock files) and results folders."""
    for path in (directory / "static_arrays").glob("init_*"):
        path.unlink(missing_ok=True)
    shutil.rmtree(directory / "results", ignore_errors=True)


def _mark_values_only(circuit: SpikingCircuit):
    """Mark the objects of a runtime build that only supplied values: they are never simulated,
    which Brian2 would otherwise report as a likely mistake when they are garbage-collected."""
    for obj in circuit.network.objects:
        obj._network = "values only"


class StandaloneCircuits:
    """Attention circuits of one kind on the C++ standalone device, compiled once per structure.

    ``root``: parent folder of the projects (default :data:`DEFAULT_ROOT`); each structure gets the
    sub-folder named by the hash of :func:`structure_key` and ``threads``, so compiled objects are
    reused across processes (Brian2 rewrites only changed files and ``make`` recompiles only those).
    ``threads``: OpenMP threads of the binary (0: none, single-threaded). Spikes are reproducible for
    a given number of threads; a different number draws other random numbers.
    ``builds`` counts code generations + compilations; ``timings`` holds the last call's seconds:
    ``prepare`` (runtime build of the values, run_args), ``build`` (code generation and
    compilation, 0 for a re-run), ``run`` (the binary, with reading its results) and ``binary``
    (the binary alone, Brian2's timer).
    """

    #: The instance whose network the standalone device holds (the device is global).
    _owner: StandaloneCircuits | None = None

    def __init__(self, kind="random", root=None, threads=0, build=None):
        self.check_threads(threads)
        self.builder = build or builder(kind)
        self.kind = kind
        self.threads = int(threads)
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self.builds = 0
        self.key = None
        self.directory = None
        self.timings = {}
        self._compiled = None
        remove_stale_scratch(scratch_root())

    @staticmethod
    def check_threads(threads):
        """ValueError with one line unless ``threads`` is a non-negative integer."""
        if isinstance(threads, bool) or int(threads) != threads or threads < 0:
            raise ValueError(f"threads must be a non-negative integer, got {threads!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, *arrays, seed=0, spike_seed=None, **options) -> SpikingCircuit:
        """Simulate one head (``arrays``: q, k, v) or block (the builder's positional arrays); returns
        the run circuit, frozen (``SpikingCircuit.freeze``): its ``decode()``, ``raster_data()`` and
        monitors hold this run's results.

        ``options``: keyword arguments of the builder (``n_features``, ``neurons_per_value``,
        ``params``...). A new structure (see :func:`structure_key`) compiles a new project first.
        """
        device = all_devices["cpp_standalone"]
        t0 = time.perf_counter()
        # The runtime build computes every initial value and input as a fresh build would.
        set_device("runtime")
        fresh = self.builder(*arrays, seed=seed, spike_seed=spike_seed, **options)
        key = structure_key(fresh) + (("openmp_threads", self.threads),)
        rebuild = StandaloneCircuits._owner is not self or key != self.key
        t1 = time.perf_counter()
        if rebuild:
            self._build(key, *arrays, seed=seed, spike_seed=spike_seed, **options)
        set_device(device, build_on_run=False)
        # Every value and input travels as run_args, also right after a build: what a build left in
        # the project folder (possibly another process's values) never reaches this run.
        run_args = run_args_for(self._compiled, fresh, device.timed_arrays)
        t2 = time.perf_counter()
        # Inherited by the binary; set here rather than in Brian2's run_environment_variables, which
        # logs every change of value.
        os.environ[SEED_ENV] = str(fresh.seeds.spikes)
        root = scratch_root()
        scratch = Path(tempfile.mkdtemp(prefix=scratch_name(), dir=root))
        try:
            args = write_run_args(device, run_args, scratch)
            # Brian2 takes the results folder relative to the project's.
            results = os.path.relpath(scratch / "results", self.directory)
            with _project_lock(self.directory, fcntl.LOCK_SH):      # no rebuild while the binary runs
                device.run(str(self.directory), results_directory=results, with_output=False, run_args=args)
                ran = dataclasses.replace(fresh, network=self._compiled.network, groups=self._compiled.groups,
                                          monitors=self._compiled.monitors, has_run=True).freeze()
        except (OSError, RuntimeError) as exc:       # a full scratch folder: the binary fails to write
            full = _no_space_error(root, exc)
            if full is None:
                raise
            raise full from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.timings = {"prepare": t1 - t0 + (t2 - t1 if not rebuild else 0.0),
                        "build": t2 - t1 if rebuild else 0.0,
                        "run": time.perf_counter() - t2, "binary": device.timers["run_binary"]}
        _mark_values_only(fresh)
        return ran

    def _build(self, key, *args, **kwargs):
        """Generate and compile the project of ``key`` from the builder's arguments (no run), holding
        the project's lock so that no other process compiles into the folder or runs its binary
        meanwhile."""
        device = all_devices["cpp_standalone"]
        # Free the previous structure's objects first: Brian2 renames objects whose names are still
        # alive, which changes the generated code and recompiles a cached project (30 s a switch).
        self._compiled = None
        gc.collect()
        device.reinit()                          # forget any network built before (by any owner)
        set_device(device, build_on_run=False)
        prefs.devices.cpp_standalone.openmp_threads = self.threads
        compiled = self.builder(*args, **kwargs)
        device.seed(_SeedExpression())
        # An empty run namespace: identifiers must resolve in the objects' own namespaces, not in
        # this function's locals (q, k, v would clash with model variables).
        compiled.network.run(compiled.schedule.duration * brian2.second, namespace={})
        digest = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:16]
        self.directory = self.root / digest
        self.directory.mkdir(parents=True, exist_ok=True)
        with _project_lock(self.directory, fcntl.LOCK_EX):
            _remove_run_leftovers(self.directory)
            device.build(directory=str(self.directory), compile=True, run=False, with_output=False)
        self.key, self._compiled, self.builds = key, compiled, self.builds + 1
        StandaloneCircuits._owner = self

    def close(self):
        """Release the standalone device and make Brian2 use the runtime device again."""
        if StandaloneCircuits._owner is self:
            all_devices["cpp_standalone"].reinit()
            StandaloneCircuits._owner = None
        self._compiled = None
        self.key = None
        set_device("runtime")
