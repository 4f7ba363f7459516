"""Run one attention head on a spiking circuit, from a script or a notebook.

    from circuits.head import run_head
    result = run_head(q, k, v, "random", n_features=256, seed=0)
    result.metrics["rel_err_spike_vs_softmax"], result.y_spike, result.raster()

:func:`head_spec` checks everything that can be checked before simulating (the head's arrays, the
circuit kind and its options, every parameter against its unit and the time step) and returns a
:class:`HeadSpec`; ``HeadSpec.simulate`` runs a spec on a device runner and returns a :class:`HeadResult`
(decoded output, the circuit's rate ideal, softmax and uniform references, the expected spike
noise, metrics, and the run circuit frozen to plain arrays: spikes, astrocyte traces, counts).

A :class:`HeadSpec` is a ``circuits.runners.CircuitSpec``: any runner of ``circuits.runners``
(``make_runner("runtime")`` or ``make_runner("cpp_standalone")``) runs it, and ``run_heads`` /
``CircuitPool`` run many heads on one runner or over worker processes with the results of the same
heads run one after another (same seed, same spikes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import brian2
import numpy as np

from analysis.attention import check_qkv, relative_error, softmax_attention, uniform_attention
from analysis.spikes import tolerance_ratio
from circuits import blocks, circuit_kind, circuit_parameters
from circuits.circuit import AttentionCircuit
from circuits.codes import check_replayable, spike_inputs
from circuits.exact_latency import check_head_trains
from circuits.exact_kernel import check_exact_protocol
from circuits.protocol import Schedule, check_spike_probability
from circuits.runners import CircuitSpec, builder_options
from circuits.seeds import SeedStreams
from models.astrocytes import read_calibration
from models.parameters import ParameterError, ParameterSet


@dataclass(frozen=True)
class HeadSpec(CircuitSpec):
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
    trains: tuple | None = None

    @property
    def seeds(self) -> SeedStreams:
        return SeedStreams(self.seed, self.spike_seed)

    @property
    def builder(self):
        return circuit_kind(self.circuit).builder

    @property
    def arrays(self) -> tuple:
        """The builder's positional arguments: the spike trains the head replays, or its values."""
        return self.trains if self.trains is not None else (self.q, self.k, self.v)

    def builder_arguments(self) -> dict:
        return dict(self.options, scale=self.scale, params=self.params, seed=self.seed, spike_seed=self.spike_seed)

    def result(self, circuit, wall_seconds, runner) -> "HeadResult":
        """The decoded output, the rate ideal, softmax and uniform references, the expected spike
        noise, the metrics and the run circuit frozen to plain arrays."""
        ideal = circuit_kind(self.circuit).rate_model(circuit)
        causal = self.options["causal"]
        return HeadResult(self, circuit, circuit.decode(), ideal["y_rate"],
                          softmax_attention(self.q, self.k, self.v, self.scale, causal=causal),
                          uniform_attention(self.v, len(self.q), causal=causal), ideal["noise"], wall_seconds,
                          {"name": runner.name, "openmp_threads": runner.threads, "codegen_target":
                           brian2.prefs.codegen.target if runner.name == "runtime" else "cpp"})


def circuit_options(circuit) -> dict:
    """The builder options of a circuit kind with their defaults (sizes, models, causal...)."""
    return builder_options(circuit_kind(circuit).builder)


def head_spec(q, k, v, circuit="random", *, scale=None, params=None, seed=0, spike_seed=None,
              **options) -> HeadSpec:
    """Check a head and its circuit before anything is simulated.

    Parameters
    ----------
    q, k, v : array_like or circuits.codes.SpikeTrain
        Queries (Lq x d), keys (L x d) and values (L x d_v), finite; or the spike trains of another
        stage's emitters carrying them, queries and keys scaled by sqrt(scale) already (the exact
        circuit on the latency code with one-spike keys; ``scale`` is then 1).
    circuit : str
        The circuit kind: ``"random"`` (random features, the paper's circuit) or ``"exact"`` (one
        population of key neurons per token).
    scale : float, optional
        The kernel's score scale (default 1/sqrt(d)).
    params : dict or models.parameters.ParameterSet, optional
        Overrides by name (``{"tau_ca": "5*second"}``, quantities or strings), each checked against
        its unit and the time step, or a ParameterSet of this circuit and astrocyte.
    seed : int
        The run's seed, split into independent streams (``circuits.seeds.SeedStreams``).
    spike_seed : int, optional
        Redraws Brian2's spikes alone, with the head, features and phases of ``seed`` held fixed.
    **options
        The builder's keyword options (see :func:`circuit_options`), e.g. ``n_features=256``,
        ``astrocyte="minimal"``, ``causal=True``, ``block_astrocyte=True``; for the exact circuit
        ``pad_to`` (a length bucket, ``circuits.protocol.bucket_length``): the head runs on the
        circuit of ``pad_to`` tokens, one compiled binary per bucket, and its result holds the real
        queries only.

    Returns
    -------
    HeadSpec
        The checked head, ready to simulate (``spec.simulate(runner)``).

    Raises
    ------
    ValueError
        With a one-line message for anything unusable (``models.parameters.ParameterError``, a
        ValueError, for parameters).
    """
    kind = circuit_kind(circuit)
    options = builder_options(kind.builder, options, f"the {circuit} circuit")
    trains, (q, k, v) = spike_inputs(q, k, v)
    if trains is not None:
        if circuit != "exact" or options["code"] != "latency":
            raise ValueError("only the exact circuit on the latency code replays spike trains")
        check_head_trains(trains, options["key_code"], 1.0 if scale is None else scale)
        scale = 1.0
    q, k, v, scale = check_qkv(q, k, v, scale)
    seeds = SeedStreams(seed, spike_seed)         # checks both
    blocks.check_options(options["astrocyte"], options["encoder"],
                         **{name: options[name] for name in (kind.size_option, "neurons_per_value", "encoders_per_dim")})
    if not isinstance(params, ParameterSet):
        params = circuit_parameters(circuit, options["astrocyte"], params)
    for name, size_option in kind.population_rates:
        check_spike_probability(f"{name}/{size_option}", params[name] / options[size_option], params["dt"])
    Schedule.from_params(len(k), len(q), params, options["causal"], options.get("pad_to"))
    if circuit == "exact":
        check_exact_protocol(params, options["code"], options["key_code"], options["causal"])
    if options["astrocyte"] != "minimal":
        cicr = read_calibration(options["astrocyte"], params)["cicr_spikes"]
        spikes = float(np.max(kind.write_spikes_per_process(k, scale, params, seeds, options)))
        if spikes > cicr:
            raise ParameterError(f"the busiest astrocyte process gets ~{spikes:.0f} write spikes, past the "
                                 f"{cicr:.0f} at which its IP3 starts CICR (the read-out stops integrating): "
                                 f"fewer or shorter tokens, lower rates, or a weaker drive per spike")
    if trains is not None:
        for train in trains:
            check_replayable(train, params)
    return HeadSpec(q, k, v, scale, circuit, options, params, seeds.seed, seeds.spike_seed, trains)


@dataclass
class HeadResult:
    """What one head's run gives.

    Attributes
    ----------
    spec : HeadSpec
        The head that ran.
    circuit : circuits.circuit.AttentionCircuit
        The run circuit frozen to plain arrays (spike and state monitors' data, schedule,
        parameters, config, seeds).
    y_spike : numpy.ndarray
        The decoded spiking output (Lq x d_v).
    y_rate : numpy.ndarray
        The circuit's rate ideal (same features, weights and fading, no spike noise).
    y_softmax : numpy.ndarray
        Exact (causal) softmax attention.
    y_uniform : numpy.ndarray
        The uniform-attention baseline.
    noise : dict
        The expected spike-count error around the rate ideal (``analysis.spikes.expected_spike_error``).
    wall_seconds : float
        Wall time of the run.
    device : dict
        The runner's name, its OpenMP threads and the code-generation target.
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
            "cosine_spike_vs_softmax": cosine(ys, yt),
            "total_spikes": self.circuit.total_spikes(),
            "wall_seconds": self.wall_seconds,
            "simulated_seconds": self.circuit.schedule.duration,
        }

    @property
    def y_projected(self) -> np.ndarray | None:
        """With ``w_out``: the output projection accumulated on synapses from the value neurons'
        spikes, W_O ŷ + b_O (Lq x out); else None."""
        return self.circuit.projected()

    def raster(self, max_features=64) -> dict:
        """Spike times and indices per layer, astrocyte traces and phase windows (for figures)."""
        return self.circuit.raster_data(max_features)

    def population_counts(self) -> np.ndarray:
        """Spike counts (n_queries x 2 d_v) of each ON/OFF value population in each read window."""
        return self.circuit.population_counts()


# ----------------------------------------------------------------------------------- simulation


def cosine(a, b) -> float:
    """Cosine of two arrays as flat vectors; NaN, without a warning, where either is all zeros (a
    head whose every key fell below its window reads nothing)."""
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.sum(a * b) / norms) if norms > 0 else float("nan")


def run_head(q, k, v, circuit="random", *, runner=None, report=None, **kwargs) -> HeadResult:
    """Check and run one head: :func:`head_spec`, then ``HeadSpec.simulate``.

    Parameters
    ----------
    q, k, v : array_like
        Queries (Lq x d), keys (L x d) and values (L x d_v).
    circuit : str
        The circuit kind, ``"random"`` or ``"exact"``.
    runner : circuits.runners.Runner, optional
        The device runner (default: a new runtime runner); one runner given to many heads of one
        structure reuses its compiled binary (``circuits.runners.make_runner("cpp_standalone")``).
    report : callable, optional
        A Brian2 progress callback (runtime device only).
    **kwargs
        :func:`head_spec`'s keyword arguments: ``scale``, ``params``, ``seed``, ``spike_seed`` and
        the circuit's options.

    Returns
    -------
    HeadResult

    Examples
    --------
    >>> from analysis.attention import synthetic_head
    >>> from circuits.seeds import SeedStreams
    >>> q, k, v = synthetic_head(8, 4, 4, 0.7, SeedStreams(0).head)
    >>> result = run_head(q, k, v, "random", n_features=128, seed=0, params={"t_read": "400*ms"})
    >>> result.metrics["rel_err_spike_vs_softmax"], result.metrics["poisson_bound"]  # doctest: +SKIP
    """
    return head_spec(q, k, v, circuit, **kwargs).simulate(runner, report)
