"""Run one attention head on a spiking circuit, from a script or a notebook.

    from circuits.head import run_head
    result = run_head(q, k, v, "random", n_features=256, seed=0)
    result.metrics["rel_err_spike_vs_softmax"], result.y_spike, result.raster()

:func:`head_spec` checks everything that can be checked before simulating (the head's arrays, the
circuit kind and its options, every parameter against its unit and the time step) and returns a
:class:`HeadSpec`; :func:`simulate` runs a spec on a device runner and returns a :class:`HeadResult`
(decoded output, the circuit's rate ideal, softmax and uniform references, the expected spike
noise, metrics, and the run circuit frozen to plain arrays: spikes, astrocyte traces, counts).

Device runners share one interface (``run(spec, report) -> frozen circuit``, ``close()``):
:class:`RuntimeRunner` (Brian2's runtime device) and :class:`StandaloneRunner` (C++ standalone,
one compiled binary per circuit structure, reused across heads). :class:`CircuitPool` and :func:`run_heads` run many specs
on one runner, or fans them out over worker processes, each with its own runner; the results are
those of the same specs run one after another (same seed, same spikes).
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import brian2
import numpy as np

from analysis.attention import check_qkv, relative_error, softmax_attention, uniform_attention
from analysis.spikes import tolerance_ratio
from circuits import blocks, circuit_kind, circuit_parameters
from circuits.circuit import AttentionCircuit, SpikingCircuit
from circuits.protocol import Schedule, check_spike_probability
from circuits.seeds import SeedStreams
from models.astrocytes import read_calibration
from models.parameters import ParameterError, ParameterSet

#: Builder arguments that are not circuit options (given separately to :func:`head_spec`).
_NOT_OPTIONS = ("scale", "params", "seed", "spike_seed")

DEVICES = ("runtime", "cpp_standalone")


@dataclass(frozen=True)
class HeadSpec:
    """A checked head, ready to simulate: q (Lq x d), k (L x d), v (L x d_v), kernel scale, circuit
    kind with its complete builder options, parameter set and seeds."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scale: float
    circuit: str
    options: dict
    params: ParameterSet
    seed: int = 0
    spike_seed: int | None = None

    @property
    def seeds(self) -> SeedStreams:
        return SeedStreams(self.seed, self.spike_seed)

    @property
    def builder(self):
        return circuit_kind(self.circuit).builder

    @property
    def arrays(self) -> tuple:
        """The builder's positional arguments."""
        return self.q, self.k, self.v

    def builder_arguments(self) -> dict:
        return dict(self.options, scale=self.scale, params=self.params, seed=self.seed, spike_seed=self.spike_seed)

    def simulate(self, runner=None, report=None) -> "HeadResult":
        return simulate(self, runner, report)


def builder_options(builder, options=None, what="this circuit") -> dict:
    """A builder's keyword options (those that are not the kernel scale, parameters or seeds) with
    their defaults, updated by ``options``; ValueError with one line for an option the builder does
    not take (``what`` names the circuit in the message)."""
    defaults = {name: p.default for name, p in inspect.signature(builder).parameters.items()
                if p.kind is p.KEYWORD_ONLY and name not in _NOT_OPTIONS}
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for {what}; it takes {', '.join(sorted(defaults))}")
    return {**defaults, **(options or {})}


def circuit_options(circuit) -> dict:
    """The builder options of a circuit kind with their defaults (sizes, models, causal...)."""
    return builder_options(circuit_kind(circuit).builder)


def head_spec(q, k, v, circuit="random", *, scale=None, params=None, seed=0, spike_seed=None,
              **options) -> HeadSpec:
    """Check a head and its circuit before anything is simulated; ValueError (ParameterError for
    parameters) with a one-line message for anything unusable.

    ``params``: overrides by name (``{"tau_ca": "5*second"}``, quantities or strings) or a
    ParameterSet of this circuit and astrocyte. ``options``: the builder's keyword options
    (see :func:`circuit_options`), e.g. ``n_features=256``, ``astrocyte="minimal"``, ``causal=True``.
    """
    kind = circuit_kind(circuit)
    options = builder_options(kind.builder, options, f"the {circuit} circuit")
    q, k, v, scale = check_qkv(q, k, v, scale)
    seeds = SeedStreams(seed, spike_seed)         # checks both
    blocks.check_options(options["astrocyte"], options["encoder"],
                         **{name: options[name] for name in (kind.size_option, "neurons_per_value", "encoders_per_dim")})
    if not isinstance(params, ParameterSet):
        params = circuit_parameters(circuit, options["astrocyte"], params)
    for name, size_option in kind.population_rates:
        check_spike_probability(f"{name}/{size_option}", params[name] / options[size_option], params["dt"])
    Schedule.from_params(len(k), len(q), params, options["causal"])
    if options["astrocyte"] != "minimal":
        cicr = read_calibration(options["astrocyte"], params)["cicr_spikes"]
        spikes = float(np.max(kind.write_spikes_per_process(k, scale, params, seeds, options)))
        if spikes > cicr:
            raise ParameterError(f"the busiest astrocyte process gets ~{spikes:.0f} write spikes, past the "
                                 f"{cicr:.0f} at which its IP3 starts CICR (the read-out stops integrating): "
                                 f"fewer or shorter tokens, lower rates, or a weaker drive per spike")
    return HeadSpec(q, k, v, scale, circuit, options, params, seeds.seed, seeds.spike_seed)


@dataclass
class HeadResult:
    """What one head's run gives.

    ``y_spike``: the decoded spiking output (Lq x d_v); ``y_rate``: the circuit's rate ideal (same
    features, weights and fading, no spike noise); ``y_softmax``: exact (causal) softmax attention;
    ``y_uniform``: the uniform-attention baseline; ``noise``: the expected spike-count error around
    the rate ideal (``analysis.spikes.expected_spike_error``); ``circuit``: the run circuit frozen to
    plain arrays (spike and state monitors' data, schedule, parameters, config, seeds).
    """

    spec: HeadSpec
    circuit: AttentionCircuit
    y_spike: np.ndarray
    y_rate: np.ndarray
    y_softmax: np.ndarray
    y_uniform: np.ndarray
    noise: dict
    wall_seconds: float
    device: dict = field(default_factory=dict)

    @functools.cached_property
    def metrics(self) -> dict:
        """Relative errors against softmax and the rate ideal, the Poisson bound, spikes, times
        (computed once: experiments read them several times)."""
        ys, yr, yt, yu = self.y_spike, self.y_rate, self.y_softmax, self.y_uniform
        return {
            "rel_err_spike_vs_softmax": relative_error(ys, yt),
            "rel_err_spike_vs_rate": relative_error(ys, yr),
            "rel_err_rate_vs_softmax": relative_error(yr, yt),
            "rel_err_uniform_vs_softmax": relative_error(yu, yt),
            "spike_vs_rate_over_bound": relative_error(ys, yr) / self.noise["relative_error"],
            "poisson_bound": self.noise["relative_error"],
            "bound_tolerance_ratio": tolerance_ratio(self.noise),
            "poisson_bound_output": self.noise["relative_error_output"],
            "poisson_bound_read": self.noise["relative_error_read"],
            "poisson_bound_write": self.noise["relative_error_write"],
            "cosine_spike_vs_softmax": float(np.sum(ys * yt) / (np.linalg.norm(ys) * np.linalg.norm(yt))),
            "total_spikes": self.circuit.total_spikes(),
            "wall_seconds": self.wall_seconds,
            "simulated_seconds": self.circuit.schedule.duration,
        }

    def raster(self, max_features=64) -> dict:
        """Spike times and indices per layer, astrocyte traces and phase windows (for figures)."""
        return self.circuit.raster_data(max_features)

    def population_counts(self) -> np.ndarray:
        """Spike counts (n_queries x 2 d_v) of each ON/OFF value population in each read window."""
        return self.circuit.population_counts()


# --------------------------------------------------------------------------------------- runners


class RuntimeRunner:
    """Brian2's runtime device (numpy or Cython code per ``brian2.prefs.codegen.target``).

    ``timings`` holds the last run's seconds: ``build`` (building the network and generating, and
    with Cython compiling, its code in a run of no time) and ``binary`` (the simulation alone).
    """

    name = "runtime"
    threads = 0

    def __init__(self):
        self.timings = {}

    def run(self, spec, report=None) -> SpikingCircuit:
        """Build and run a spec (a :class:`HeadSpec` or any spec with ``builder``, ``arrays`` and
        ``builder_arguments()``); returns the run circuit, frozen."""
        t0 = time.perf_counter()
        circuit = spec.builder(*spec.arrays, **spec.builder_arguments())
        circuit.network.run(0 * brian2.second, namespace={})
        t1 = time.perf_counter()
        circuit.run(report=report)
        self.timings = {"build": t1 - t0, "binary": time.perf_counter() - t1}
        return circuit.freeze()

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StandaloneRunner(RuntimeRunner):
    """Brian2's C++ standalone device: each circuit structure compiles once (cached in ``cache``,
    default ``circuits.standalone.DEFAULT_ROOT``) and its binary is re-run for every head of that
    structure. ``threads``: OpenMP threads of the binary (0: single-threaded). Holds Brian2's
    (global) device until :meth:`close`."""

    name = "cpp_standalone"

    def __init__(self, threads=0, cache=None):
        from circuits.standalone import StandaloneCircuits

        StandaloneCircuits.check_threads(threads)
        self.threads, self.cache = int(threads), cache
        self._circuits = {}
        self.timings = {}

    def run(self, spec, report=None) -> SpikingCircuit:
        from circuits.standalone import StandaloneCircuits

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
    from circuits.standalone import StandaloneCircuits

    StandaloneCircuits.check_threads(threads)


def make_runner(device="runtime", threads=0, cache=None) -> RuntimeRunner:
    """A runner for ``device`` ("runtime" or "cpp_standalone"); ValueError with one line otherwise."""
    check_device(device, threads)
    return RuntimeRunner() if device == "runtime" else StandaloneRunner(threads, cache)


# ----------------------------------------------------------------------------------- simulation


def simulate(spec: HeadSpec, runner: RuntimeRunner | None = None, report=None) -> HeadResult:
    """Run a checked head on ``runner`` (default: a runtime runner) and compare it with the references.

    ``report``: a Brian2 progress callback (runtime device only).
    """
    runner = runner or RuntimeRunner()
    t0 = time.perf_counter()
    circuit = runner.run(spec, report)
    wall = time.perf_counter() - t0
    ideal = circuit_kind(spec.circuit).rate_model(circuit)
    causal = spec.options["causal"]
    return HeadResult(spec, circuit, circuit.decode(), ideal["y_rate"],
                      softmax_attention(spec.q, spec.k, spec.v, spec.scale, causal=causal),
                      uniform_attention(spec.v, len(spec.q), causal=causal), ideal["noise"], wall,
                      {"name": runner.name, "openmp_threads": runner.threads, "codegen_target":
                       brian2.prefs.codegen.target if runner.name == "runtime" else "cpp"})


def run_head(q, k, v, circuit="random", *, runner=None, report=None, **kwargs) -> HeadResult:
    """Check and run one head: :func:`head_spec` (same arguments) then :func:`simulate`."""
    return simulate(head_spec(q, k, v, circuit, **kwargs), runner, report)


# One runner per worker process of a CircuitPool, made by _start_worker.
_worker_runner = None


def _start_worker(device, threads, cache, codegen_target):
    global _worker_runner
    brian2.prefs.codegen.target = codegen_target
    _worker_runner = make_runner(device, threads, cache)


def _simulate_in_worker(spec):
    return spec.simulate(_worker_runner)


class CircuitPool:
    """Runs specs (heads, feed-forward blocks: anything with ``simulate(runner)`` and a ``circuit``
    kind) over worker processes that outlive one call, so a model's layers reuse the workers and
    their compiled binaries. Each circuit kind gets its own ``workers`` processes (a process keeps
    one standalone network, see :class:`StandaloneRunner`); ``workers=1`` runs in this process.
    Results equal those of the same specs run one after another (same seeds, same spikes)."""

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
    """Run many heads (or other specs, see :class:`CircuitPool`) on a pool made for this call;
    returns their results in the order of ``specs``. ``workers`` > 1 fans them out over that many
    worker processes (each with its own runner, so on cpp_standalone each compiles or reuses the
    cached binary of a structure once); the results equal those of ``workers=1``."""
    # The pool spawns a worker only when a spec is waiting and none is idle: no more than len(specs).
    with CircuitPool(device, workers, threads, cache) as pool:
        return pool.run(specs, log)
