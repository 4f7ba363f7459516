"""One simulation interface: circuit specs, device runners, and pools of worker processes.

A :class:`CircuitSpec` is a checked circuit, ready to simulate (an attention head,
``circuits.head.HeadSpec``; a feed-forward block, ``circuits.feedforward.FeedForwardSpec``): it names
its builder, the builder's arguments and its circuit kind. A :class:`Runner` builds and runs a spec on
one device and returns the run circuit frozen to plain arrays; callers choose a device once
(:func:`make_runner`) and never branch on it. :class:`RuntimeRunner` runs on Brian2's runtime
device, :class:`StandaloneRunner` on its C++ standalone device (one compiled binary per circuit
structure, reused across specs); another back-end implements :class:`Runner` the same way.

:class:`CircuitPool` and :func:`run_heads` run many specs on one runner, or fan them out over
worker processes, each with its own runner; the results are those of the same specs run one after
another (same seed, same spikes)::

    from circuits.head import head_spec
    from circuits.runners import make_runner
    with make_runner("cpp_standalone") as runner:
        results = [head_spec(q, k, v, seed=s).simulate(runner) for s in range(4)]
"""

from __future__ import annotations

import abc
import inspect
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import brian2

from circuits.circuit import SpikingCircuit
from circuits.standalone import StandaloneCircuits

#: The devices a runner runs on: Brian2's runtime device and its C++ standalone device.
DEVICES = ("runtime", "cpp_standalone")

#: Builder arguments that are not circuit options (a spec holds them separately).
_NOT_OPTIONS = ("scale", "params", "seed", "spike_seed")


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

    @abc.abstractmethod
    def simulate(self, runner: Runner | None = None, report=None):
        """Run on ``runner`` (default: a :class:`~circuits.runners.RuntimeRunner`) and compare the run with the
        spec's references; returns the spec's result object. ``report``: a Brian2 progress callback
        (runtime device only)."""


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
    (global) device until :meth:`close`. ``timings``: see ``StandaloneCircuits``."""

    name = "cpp_standalone"

    def __init__(self, threads=0, cache=None):
        StandaloneCircuits.check_threads(threads)
        self.threads, self.cache = int(threads), cache
        self._circuits = {}
        self.timings = {}

    def run(self, spec, report=None) -> SpikingCircuit:
        if spec.circuit not in self._circuits:
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


# One runner per worker process of a CircuitPool, made by _start_worker.
_worker_runner = None


def _start_worker(device, threads, cache, codegen_target):
    global _worker_runner
    brian2.prefs.codegen.target = codegen_target
    _worker_runner = make_runner(device, threads, cache)


def _simulate_in_worker(spec):
    return spec.simulate(_worker_runner)


class CircuitPool:
    """Runs specs (heads, feed-forward blocks: any :class:`CircuitSpec`) over worker processes that
    outlive one call, so a model's layers reuse the workers and their compiled binaries. Each circuit
    kind gets its own ``workers`` processes (a process keeps one standalone network, see
    :class:`StandaloneRunner`); ``workers=1`` runs in this process. Results equal those of the same
    specs run one after another (same seeds, same spikes)."""

    def __init__(self, device="runtime", workers=1, threads=0, cache=None):
        if isinstance(workers, bool) or int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        check_device(device, threads)
        self.device, self.workers, self.threads, self.cache = device, int(workers), threads, cache
        self._pools, self._runners = {}, {}

    def _pool(self, kind):
        if kind not in self._pools:
            context = multiprocessing.get_context("spawn")       # a fresh Brian2 in every worker
            self._pools[kind] = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                                    initargs=(self.device, self.threads, self.cache,
                                                              brian2.prefs.codegen.target))
        return self._pools[kind]

    def run(self, specs, log=None) -> list:
        """Simulate ``specs``; returns their results in order. ``log``: a callable taking one
        progress line per finished spec (e.g. ``print``)."""
        specs = list(specs)
        t0, results = time.perf_counter(), [None] * len(specs)

        def progress(done):
            if log is not None:
                elapsed = time.perf_counter() - t0
                log(f"{done}/{len(specs)} done, {elapsed:.0f} s elapsed, "
                    f"~{elapsed / done * (len(specs) - done):.0f} s left")

        if self.workers == 1:
            for n, spec in enumerate(specs):
                if spec.circuit not in self._runners:
                    self._runners[spec.circuit] = make_runner(self.device, self.threads, self.cache)
                results[n] = spec.simulate(self._runners[spec.circuit])
                progress(n + 1)
            return results
        futures = {self._pool(spec.circuit).submit(_simulate_in_worker, spec): n for n, spec in enumerate(specs)}
        for done, future in enumerate(as_completed(futures), 1):
            results[futures[future]] = future.result()
            progress(done)
        return results

    def close(self):
        for pool in self._pools.values():
            pool.shutdown()
        for runner in self._runners.values():
            runner.close()
        self._pools.clear()
        self._runners.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
