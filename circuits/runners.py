"""One simulation interface: circuit specs, device runners, and pools of worker processes.

A :class:`CircuitSpec` is a checked circuit, ready to simulate (an attention head,
``circuits.head.HeadSpec``; a feed-forward block, ``circuits.feedforward.FeedForwardSpec``): it names
its builder, the builder's arguments and its circuit kind. A :class:`Runner` builds and runs a spec on
one device and returns the run circuit frozen to plain arrays; callers choose a device once
(:func:`make_runner`) and never branch on it. :class:`RuntimeRunner` runs on Brian2's runtime
device, :class:`StandaloneRunner` on its C++ standalone device (one compiled binary per circuit
structure, reused across specs); another back-end implements :class:`Runner` the same way.

:class:`CircuitPool` and :func:`run_heads` run many specs on one runner, or fan them out over
worker processes, each with its own runner; :class:`DaskPool` sends them to the workers of a Dask
cluster (:func:`make_pool` makes either). The results are those of the same specs run one after
another (same seed, same spikes). A pool's ``keep`` makes its workers send back slim results
(:func:`slim_result`: decoded outputs, spike totals and synaptic events, no spike trains)::

    from circuits.head import head_spec
    from circuits.runners import make_runner
    with make_runner("cpp_standalone") as runner:
        results = [head_spec(q, k, v, seed=s).simulate(runner) for s in range(4)]
"""

from __future__ import annotations

import abc
import dataclasses
import gc
import inspect
import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed

import brian2

from circuits.circuit import SpikingCircuit
from circuits.standalone import StandaloneCircuits

#: The devices a runner runs on: Brian2's runtime device and its C++ standalone device.
DEVICES = ("runtime", "cpp_standalone")

#: Builder arguments that are not circuit options (a spec holds them separately).
_NOT_OPTIONS = ("scale", "params", "seed", "spike_seed")

#: A pool's ``keep`` for full results: every monitor's data as ``spec.simulate`` returns it.
KEEP_ALL = "all"


# ------------------------------------------------------------------------------------ interfaces


class CircuitSpec(abc.ABC):
    """What a runner needs of a checked circuit: its kind, its builder and the builder's arguments.

    Attributes
    ----------
    circuit : str
        The circuit kind (``"random"``, ``"exact"``, ``"feedforward"``): specs of one kind share
        a worker process of a :class:`CircuitPool` and a runner's compiled network.
    """

    circuit: str

    @property
    def workers_key(self) -> str:
        """Which worker processes of a :class:`CircuitPool` run the spec: one set per circuit kind,
        or per structure where a kind has several that one run alternates between (a worker keeps
        one compiled network, and switching structures makes it build again)."""
        return self.circuit

    @property
    @abc.abstractmethod
    def builder(self):
        """The builder: ``builder(*arrays, **builder_arguments())`` returns the circuit to run."""

    @property
    @abc.abstractmethod
    def arrays(self) -> tuple:
        """The builder's positional arguments (the inputs)."""

    @abc.abstractmethod
    def builder_arguments(self) -> dict:
        """The builder's keyword arguments: options, parameters, seeds."""

    def simulate(self, runner: Runner | None = None, report=None):
        """Run on ``runner`` (default: a :class:`~circuits.runners.RuntimeRunner`) and compare the run with the
        spec's references (:meth:`result`); returns the spec's result object. ``report``: a Brian2
        progress callback (runtime device only). The one simulate path of every circuit kind."""
        runner = runner or RuntimeRunner()
        t0 = time.perf_counter()
        circuit = runner.run(self, report)
        return self.result(circuit, time.perf_counter() - t0, runner)

    @abc.abstractmethod
    def result(self, circuit, wall_seconds, runner):
        """The spec's result object for its run ``circuit`` (frozen): the read-out, its references
        and its noise budget; ``wall_seconds`` the run's wall time, ``runner`` the device it ran on."""


class Runner(abc.ABC):
    """A simulation device: builds and runs specs, returns their run circuits frozen.

    Attributes
    ----------
    name : str
        The device's name (one of :data:`DEVICES`).
    threads : int
        OpenMP threads of the simulation (0: single-threaded).
    timings : dict
        Seconds of the last run's stages (``build``, ``binary``...).
    """

    name: str
    threads: int = 0

    @abc.abstractmethod
    def run(self, spec: CircuitSpec, report=None) -> SpikingCircuit:
        """Build and run ``spec``; returns the run circuit frozen (``SpikingCircuit.freeze``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the runner holds (Brian2's device, compiled networks)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def builder_options(builder, options=None, what="this circuit") -> dict:
    """A builder's keyword options (those that are not the kernel scale, parameters or seeds, which a
    spec holds separately) with their defaults, updated by ``options``; ValueError with one line for
    an option the builder does not take (``what`` names the circuit in the message)."""
    defaults = {name: p.default for name, p in inspect.signature(builder).parameters.items()
                if p.kind is p.KEYWORD_ONLY and name not in _NOT_OPTIONS}
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for {what}; it takes {', '.join(sorted(defaults))}")
    return {**defaults, **(options or {})}


# --------------------------------------------------------------------------------------- runners


class RuntimeRunner(Runner):
    """Brian2's runtime device (numpy or Cython code per ``brian2.prefs.codegen.target``).

    ``timings`` holds the last run's seconds: ``build`` (building the network and generating, and
    with Cython compiling, its code in a run of no time) and ``binary`` (the simulation alone).
    """

    name = "runtime"

    def __init__(self):
        self.timings = {}

    def run(self, spec, report=None) -> SpikingCircuit:
        t0 = time.perf_counter()
        circuit = spec.builder(*spec.arrays, **spec.builder_arguments())
        circuit.network.run(0 * brian2.second, namespace={})
        t1 = time.perf_counter()
        circuit.run(report=report)
        self.timings = {"build": t1 - t0, "binary": time.perf_counter() - t1}
        return circuit.freeze()

    def close(self):
        pass


class StandaloneRunner(Runner):
    """Brian2's C++ standalone device: each circuit structure compiles once (cached in ``cache``,
    default ``circuits.standalone.DEFAULT_ROOT``) and its binary is re-run for every spec of that
    structure. ``threads``: OpenMP threads of the binary (0: single-threaded). Holds Brian2's
    (global) device until :meth:`close`. ``timings``: see ``StandaloneCircuits``.

    Specs of several circuit kinds may alternate: a spec of another kind than the last releases the
    last kind's network before building its own (generating its code again, ~2-4 s; its compiled
    objects stay cached). Brian2 renames objects whose names are still taken, so a network built
    while another kind's objects were alive got other names, other code and a full recompilation
    (16-34 s per switch)."""

    name = "cpp_standalone"

    def __init__(self, threads=0, cache=None):
        StandaloneCircuits.check_threads(threads)
        self.threads, self.cache = int(threads), cache
        self._circuits = {}
        self.timings = {}

    def run(self, spec, report=None) -> SpikingCircuit:
        if spec.circuit not in self._circuits:
            self.close()
            gc.collect()                 # Brian2's objects hold cycles: free their names now
            self._circuits[spec.circuit] = StandaloneCircuits(spec.circuit, root=self.cache, threads=self.threads,
                                                              build=spec.builder)
        circuits = self._circuits[spec.circuit]
        circuit = circuits.run(*spec.arrays, **spec.builder_arguments())
        self.timings = circuits.timings
        return circuit

    def close(self):
        for circuits in self._circuits.values():
            circuits.close()
        self._circuits.clear()


def check_device(device, threads=0) -> None:
    """ValueError with one line unless ``device`` is one of DEVICES and ``threads`` fits it."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "runtime" and threads:
        raise ValueError(f"threads ({threads}) need the cpp_standalone device")
    StandaloneCircuits.check_threads(threads)


def make_runner(device="runtime", threads=0, cache=None) -> Runner:
    """A runner for one device, chosen once: callers never branch on the device.

    Parameters
    ----------
    device : {"runtime", "cpp_standalone"}
        Brian2's runtime device (numpy or Cython code per ``brian2.prefs.codegen.target``) or its
        C++ standalone device (one compiled binary per circuit structure, reused across specs).
    threads : int
        OpenMP threads of the standalone device (0: none).
    cache : str or pathlib.Path, optional
        The standalone device's folder of compiled projects (default
        ``circuits.standalone.DEFAULT_ROOT``).

    Returns
    -------
    Runner

    Raises
    ------
    ValueError
        With one line for an unknown device or threads it cannot use.
    """
    check_device(device, threads)
    return RuntimeRunner() if device == "runtime" else StandaloneRunner(threads, cache)


# ---------------------------------------------------------------------------------- worker pools


def check_keep(keep):
    """``keep`` as a pool takes it: :data:`KEEP_ALL` (full results) or a tuple of population and
    monitor names kept in full by slim results (``()``: none); ValueError with one line otherwise."""
    if keep == KEEP_ALL:
        return KEEP_ALL
    if isinstance(keep, str) or not all(isinstance(name, str) for name in keep):
        raise ValueError(f"keep must be {KEEP_ALL!r} or a list of population/monitor names, got {keep!r}")
    return tuple(keep)


def slim_result(result, keep=()):
    """A spec's result (``HeadResult``, ``FeedForwardResult``, ``LinearResult``: any dataclass with a
    run ``circuit``) with its circuit slimmed (``SpikingCircuit.slim``): decoded outputs, references,
    projections, metrics, spike totals per population and synaptic events as in ``result``, but no
    spike trains or traces except those named in ``keep``; :data:`KEEP_ALL` returns ``result``."""
    keep = check_keep(keep)
    if keep == KEEP_ALL:
        return result
    return dataclasses.replace(result, circuit=result.circuit.slim(keep))


def _simulate(spec, runner, keep):
    return slim_result(spec.simulate(runner), keep)


def _progress(log, t0, done, total):
    if log is not None:
        elapsed = time.perf_counter() - t0
        log(f"{done}/{total} done, {elapsed:.0f} s elapsed, ~{elapsed / done * (total - done):.0f} s left")


# One runner per worker process of a CircuitPool, made by _start_worker.
_worker_runner = None


def _start_worker(device, threads, cache, codegen_target):
    global _worker_runner
    brian2.prefs.codegen.target = codegen_target
    _worker_runner = make_runner(device, threads, cache)


def _simulate_in_worker(spec, keep=KEEP_ALL):
    return _simulate(spec, _worker_runner, keep)


class CircuitPool:
    """Runs specs (heads, feed-forward blocks: any :class:`CircuitSpec`) over worker processes that
    outlive one call, so a model's layers reuse the workers and their compiled binaries. Each circuit
    kind gets its own ``workers`` processes (a process keeps one standalone network, see
    :class:`StandaloneRunner`); ``workers=1`` runs in this process. Results equal those of the same
    specs run one after another (same seeds, same spikes).

    ``keep``: :data:`KEEP_ALL` (default) returns full results; a list of names returns slim ones
    (:func:`slim_result`, made in the worker, so only they cross to this process), keeping in full
    the spike trains and traces of the populations and monitors it names: ``()`` for a model's bill
    and outputs, ``("key_neurons", "adenosine_monitor")`` for measured attention maps
    (``transformer.heads.attention_map_metrics``). :meth:`run` takes ``keep`` for one call."""

    def __init__(self, device="runtime", workers=1, threads=0, cache=None, *, keep=KEEP_ALL):
        if isinstance(workers, bool) or int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        check_device(device, threads)
        self.device, self.workers, self.threads, self.cache = device, int(workers), threads, cache
        self.keep = check_keep(keep)
        self._pools, self._runner = {}, None

    def _pool(self, kind):
        if kind not in self._pools:
            context = multiprocessing.get_context("spawn")       # a fresh Brian2 in every worker
            self._pools[kind] = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                                    initargs=(self.device, self.threads, self.cache,
                                                              brian2.prefs.codegen.target))
        return self._pools[kind]

    def run(self, specs, log=None, keep=None) -> list:
        """Simulate ``specs``; returns their results in order. ``log``: a callable taking one
        progress line per finished spec (e.g. ``print``). ``keep``: this call's (default: the pool's)."""
        specs = list(specs)
        keep = self.keep if keep is None else check_keep(keep)
        t0, results = time.perf_counter(), [None] * len(specs)
        if self.workers == 1:
            if self._runner is None:
                self._runner = make_runner(self.device, self.threads, self.cache)
            for n, spec in enumerate(specs):
                results[n] = _simulate(spec, self._runner, keep)
                _progress(log, t0, n + 1, len(specs))
            return results
        futures = {self._pool(spec.workers_key).submit(_simulate_in_worker, spec, keep): n
                   for n, spec in enumerate(specs)}
        for done, future in enumerate(as_completed(futures), 1):
            results[futures[future]] = future.result()
            _progress(log, t0, done, len(specs))
        return results

    def close(self):
        for pool in self._pools.values():
            pool.shutdown()
        if self._runner is not None:
            self._runner.close()
        self._pools.clear()
        self._runner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------ Dask pools


def connect_dask(scheduler: str):
    """A ``distributed.Client`` for the Dask cluster at ``scheduler`` (``tcp://HOST:PORT``);
    ValueError with one line if Dask is not installed or the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs Dask: pip install 'dask[distributed]' "
                         "(the project's optional extra 'sweep')") from None
    try:
        return Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None


# The runner of a Dask worker process, by (device, threads, cache, codegen target): it outlives tasks
# and pools, so a worker compiles (or loads from its cache) a structure once; one at a time, as a
# StandaloneRunner releases one kind's network before building another's.
_dask_runners = {}
# Brian2's device and preferences are global to a process: a worker's tasks run one at a time.
_dask_lock = threading.Lock()


def _dask_worker_plugin():
    """A Dask worker plugin that imports Brian2 when a worker starts (and on the workers already
    running when it is registered). Brian2's import installs a signal handler, which only a
    process's main thread may do; a worker's tasks run in other threads."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ImportBrian2(WorkerPlugin):
        idempotent = True
        name = "astro-transformer-import-brian2"

        def setup(self, worker):          # on the worker's event loop, in its main thread
            import circuits.runners       # noqa: F401 (imports Brian2 and the circuits)

    return ImportBrian2()


def _simulate_on_dask_worker(spec, device, threads, cache, codegen_target, keep):
    """Dask task: simulate ``spec`` on this worker's runner for its kind; returns the result
    (slimmed per ``keep``)."""
    with _dask_lock:
        brian2.prefs.codegen.target = codegen_target
        if device == "runtime":
            brian2.set_device("runtime")     # a standalone runner of this worker leaves its device set
        key = (device, threads, None if cache is None else str(cache), codegen_target)
        if key not in _dask_runners:
            for runner in _dask_runners.values():
                runner.close()
            _dask_runners.clear()
            _dask_runners[key] = make_runner(device, threads, cache)
        return _simulate(spec, _dask_runners[key], keep)


class DaskPool:
    """Runs specs as tasks on a Dask cluster, with :class:`CircuitPool`'s interface and results.

    ``scheduler``: the scheduler's address (``tcp://HOST:8786``) or a ``distributed.Client``
    (left open by :meth:`close`). Every worker process keeps its runner (device, threads, cache)
    across tasks and pools, so on cpp_standalone it compiles a structure once (or finds it in
    ``cache``, a folder on each worker's machine; default each machine's
    ``circuits.standalone.DEFAULT_ROOT``). A worker runs its tasks one at a time (start workers
    with ``--nthreads 1`` and ``--nworkers`` for parallelism); on cpp_standalone a worker process
    that turns to another circuit kind regenerates that kind's code (2-4 s; its compiled objects
    stay cached, see :class:`StandaloneRunner`), so submit a model's stages one after another, as
    ``transformer.executors`` does. The workers import this project (same code, same Brian2).
    Results come back in the order of the specs and equal those of the same specs run one after
    another (each run's random numbers come from its spec's seeds). ``keep``: as
    :class:`CircuitPool`'s."""

    def __init__(self, scheduler, device="runtime", threads=0, cache=None, *, keep=KEEP_ALL):
        check_device(device, threads)
        self.device, self.threads, self.cache = device, threads, None if cache is None else str(cache)
        self.keep = check_keep(keep)
        self._own_client = isinstance(scheduler, str)
        self.client = connect_dask(scheduler) if self._own_client else scheduler
        self.client.register_plugin(_dask_worker_plugin())

    def run(self, specs, log=None, keep=None) -> list:
        """Simulate ``specs`` on the cluster; returns their results in order. ``log``: one progress
        line per finished spec. ``keep``: this call's (default: the pool's). The first failure is
        raised and the call's other tasks cancelled."""
        from distributed import as_completed

        specs = list(specs)
        keep = self.keep if keep is None else check_keep(keep)
        target = brian2.prefs.codegen.target
        t0, results = time.perf_counter(), [None] * len(specs)
        futures = {self.client.submit(_simulate_on_dask_worker, spec, self.device, self.threads, self.cache, target,
                                      keep, pure=False, key=f"circuit-{spec.circuit}-{n}-{uuid.uuid4().hex}"): n
                   for n, spec in enumerate(specs)}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                results[futures[future]] = future.result()
                _progress(log, t0, done, len(specs))
        except BaseException:
            self.client.cancel(list(futures))
            raise
        return results

    def close(self):
        """Close the client if this pool connected it (the workers keep their runners)."""
        if self._own_client and self.client is not None:
            self.client.close()
        self.client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_pool(device="runtime", workers=1, threads=0, cache=None, *, scheduler=None, keep=KEEP_ALL):
    """The pool for a command line's ``--device --workers --threads --standalone-cache
    --scheduler``: a :class:`CircuitPool` of ``workers`` local processes, or with ``scheduler``
    (an address or a ``distributed.Client``) a :class:`DaskPool` on that cluster, whose workers
    replace local ones (``workers`` must then be 1). ValueError with one line for bad arguments or
    an unreachable scheduler."""
    if scheduler is None:
        return CircuitPool(device, workers, threads, cache, keep=keep)
    if workers != 1:
        raise ValueError(f"--workers ({workers}) and --scheduler exclude each other: the cluster's workers run the circuits")
    return DaskPool(scheduler, device, threads, cache, keep=keep)


def run_heads(specs, device="runtime", *, workers=1, threads=0, cache=None, log=None) -> list:
    """Run many heads (or other specs, see :class:`CircuitPool`) on a pool made for this call.

    Parameters
    ----------
    specs : iterable of CircuitSpec
        Checked circuits, e.g. from ``circuits.head.head_spec``.
    device : {"runtime", "cpp_standalone"}
        The device, as :func:`make_runner`.
    workers : int
        Worker processes; more than 1 fans the specs out over that many processes, each with its
        own runner (on cpp_standalone each compiles or reuses the cached binary of a structure
        once).
    threads, cache
        As :func:`make_runner`.
    log : callable, optional
        Takes one progress line per finished spec (e.g. ``print``).

    Returns
    -------
    list
        The specs' results in the order of ``specs``, equal to those of ``workers=1``.
    """
    # The pool spawns a worker only when a spec is waiting and none is idle: no more than len(specs).
    with CircuitPool(device, workers, threads, cache) as pool:
        return pool.run(specs, log)
