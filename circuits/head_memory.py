"""A causal head whose tripartite memory persists between tokens: attention for text generation::

    memory = CausalHeadMemory(64, 32, 32, x_top=3.0, v_top=4.0, score_top=20.0, y_top=4.0, params=protocol)
    for q_t, k_t, v_t in stream:              # one-token SpikeTrains (or value rows)
        out = memory.step(q_t, k_t, v_t)      # out.context: the SpikeTrain the next stage replays
    memory.result()                           # the steps as the whole causal head's HeadResult

Generating text, each new character is written into every head's memory once and read once; what
was written stays in the synapses and the astrocyte's processes between tokens, and the prefix is
never simulated again. :class:`CausalHeadMemory` is one causal head of ``circuits.exact_latency``
(one-spike keys, its queries, keys and values replayed from spike trains; docs/model.md §3, "One
spike per key"), built once on Brian2's runtime device with ``capacity`` (write, read) periods::

    step t:  write window t (k_t onto key neuron t's afferents, v_t onto its Hebbian weights and
             its process) | read window t (q_t; every written key fires once, the astrocyte divides)

:meth:`CausalHeadMemory.step` writes token t's spikes into the rows of the replay tables of its
two windows (``circuits.codes.write_replay_table``: in place, which the runtime device reads at
the next run), admits key neuron t to the reads, and advances the same Network by one period.
Nothing else changes between steps: the network, its state and its clocks carry on where the last
step stopped (Brian2 resumes every clock at its next time step), and the one-spike head draws no
random numbers while it runs, so t steps give the spikes of the whole causal head run once on the
same t tokens (tests/test_head_memory.py). What must be known before simulating is what the whole
head needs before it runs: the tops of range of the queries and keys (``x_top``, one top) and of
the values (``v_top``), the score top theta_ref / delta_u (``score_top``, nats), the output's top
(``y_top``), the parameters and the seed.

One difference from the whole causal head: a key neuron takes part in the reads from its own
token's step on (``in_use``), where the whole head's not yet written keys fire in every read with
no weight and no process memory. The outputs are the same (those spikes add exact zeros to the
numerator and to the astrocyte's signal); the memory's bill has t key spikes per read, not
``capacity``. Its afferents still reach every key neuron: a query's or key's spike makes
``capacity`` afferent events whatever t is, as in the whole head.

Costs on the runtime device (Cython; chargpt's head size, d = d_v = 32, capacity 64, on a shared
2-core machine under load): a step takes 0.3-0.45 s, about 0.2 s of it the period's 1600 steps of
the dt_enc clock and 0.14 s what Brian2 does at every ``Network.run``: it re-creates every code object
and collects garbage. The collection grows with the process's heap (0.6-0.9 s per step after the
Cython compiler has run in the process); ``gc.freeze()`` once the memories are built removes most of
it. Building takes about 1 s with the compiled code on disk, 130-150 s without it; a memory built while
another is alive gets renamed code objects (Brian2 keeps names unique), hence code of its own, compiled
once and cached on disk like the first.
"""

import time
from dataclasses import dataclass, replace

import numpy as np
from brian2 import second
from brian2.devices.device import RuntimeDevice, get_device

from circuits import circuit_parameters
from circuits.codes import SpikeTrain, check_replayable, concatenated, latency_levels, write_replay_table
from circuits.exact_latency import astrocyte_log_signal, counting_windows, key_efficacies, output_windows
from circuits.head import HeadResult, head_spec
from circuits.normaliser import process_memory
from circuits.protocol import Schedule
from circuits.runners import RuntimeRunner
from models.parameters import ParameterSet


@dataclass(frozen=True)
class MemoryStep:
    """What one step of a :class:`CausalHeadMemory` gives: token t written, query t read.

    Attributes
    ----------
    token : int
        t, the step's token (0 for the first).
    context : circuits.codes.SpikeTrain
        Query t's context as its value neurons fired it (one token, ON/OFF per value dimension, top
        ``y_top``): the train the attention output's next stage replays.
    y : numpy.ndarray
        The context those spikes carry (d_v), ``context.values()[0]``.
    signal : float
        The astrocyte's signal at the end of read t's key window in units of one token's release,
        A / (kappa n_w) = sum over written keys of z_t e_t: the attention denominator over
        exp(score_top).
    log_signal : float
        score_top + ln(signal): the astrocyte's log denominator, log sum_t z_t exp(x_q . x_k_t)
        within ln(B_key) / 2 (``circuits.exact_latency.astrocyte_log_signal``).
    efficacy : numpy.ndarray
        (t + 1) what each written key's spike carried in read t, B_key^(1/2 - k) (0: did not fire).
    attention : numpy.ndarray
        (t + 1) the attention weights read t implies: efficacy times the processes' memory z_t,
        normalised.
    key_spikes : tuple
        (times in s, key neuron indices) of read t's key window: the raster of the last read.
    key_window : tuple
        (start, stop) of read t's key window, s.
    spikes : dict
        Spikes of each population in this step, by group name.
    synaptic_events : dict
        Synaptic events of each Synapses object in this step (``SpikingCircuit.synaptic_events``).
    wall_seconds : float
        Wall time of the step's simulation (the Network's run of one period).
    """

    token: int
    context: SpikeTrain
    y: np.ndarray
    signal: float
    log_signal: float
    efficacy: np.ndarray
    attention: np.ndarray
    key_spikes: tuple
    key_window: tuple
    spikes: dict
    synaptic_events: dict
    wall_seconds: float


class CausalHeadMemory:
    """One causal one-spike head stepped token by token (see the module docstring).

    Parameters
    ----------
    capacity : int
        Tokens the memory holds: its key neurons and (write, read) periods.
    dim, value_dim : int
        Width of the queries and keys (d) and of the values (d_v).
    x_top, v_top : float
        Tops of range of the latency code of the queries and keys (scaled by sqrt(scale) already: the
        memory's scale is 1), and of the values: the trains' ``x_top``.
    score_top : float
        The one-spike key code's threshold theta_ref / delta_u, in nats.
    y_top : float
        Top of range of the output's latency code (the context trains' ``x_top``).
    params : dict or models.parameters.ParameterSet, optional
        The exact head's parameters (overrides by name, or a ParameterSet), e.g.
        ``transformer.spiking.HEAD_ONE_SPIKE_PROTOCOL``.
    astrocyte : str
        The processes' model (``"minimal"``, ``"gchi"``, ``"lr1994"``).
    seed : int
        The head's seed (``circuits.seeds.SeedStreams``).

    Attributes
    ----------
    steps : int
        Tokens written and read so far.
    build_seconds : float
        Wall time of building the network and generating (with Cython, compiling) its code.
    wall_seconds : float
        Wall time of the steps' simulation so far.

    Raises
    ------
    ValueError
        With one line, for a device other than the runtime device, a capacity or width below 1, or
        anything ``circuits.head.head_spec`` refuses (``models.parameters.ParameterError``).
    """

    def __init__(self, capacity, dim, value_dim, *, x_top, v_top, score_top, y_top, params=None,
                 astrocyte="minimal", seed=0):
        if not isinstance(get_device(), RuntimeDevice):
            raise ValueError(f"a head memory runs on Brian2's runtime device, not {type(get_device()).__name__}")
        for name, n in (("capacity", capacity), ("dim", dim), ("value_dim", value_dim)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
        if not isinstance(params, ParameterSet):
            params = circuit_parameters("exact", astrocyte, params)
        self.capacity, self.params, self.seed = int(capacity), params, seed
        base, levels = float(params["code_base"]), latency_levels(params)
        # The head of ``capacity`` silent tokens: every input arrives later, through the replay tables.
        silent = [SpikeTrain(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), self.capacity, n, top, base,
                             levels) for n, top in ((dim, x_top), (dim, x_top), (value_dim, v_top))]
        self._options = dict(code="latency", key_code="latency", causal=True, score_top=score_top, y_top=y_top,
                             astrocyte=astrocyte)
        spec = head_spec(*silent, "exact", params=params, seed=seed, **self._options)
        t0 = time.perf_counter()
        self._circuit = spec.builder(*spec.arrays, **spec.builder_arguments())
        self._keys = self._circuit.groups["key_neurons"]
        self._keys.in_use = 0.0                 # each key joins the reads once its token is written
        self._key_table = self._circuit.groups["key_encoders"].namespace["spike_table"].values
        self._value_table = self._circuit.groups["value_encoders"].namespace["spike_table"].values
        self._circuit.network.run(0 * second, namespace={})
        self.build_seconds = time.perf_counter() - t0
        schedule = self._circuit.schedule
        self._period = schedule.token_period + schedule.read_period
        self._windows = {"token": schedule.token_windows()[:, 0], "learn": schedule.learn_windows()[:, 0],
                         "read": schedule.query_windows()[:, 0]}
        self._tops = {"q": (dim, float(x_top)), "k": (dim, float(x_top)), "v": (value_dim, float(v_top))}
        self._written = []
        self._spikes, self._events = {}, {}
        self.steps, self.wall_seconds = 0, 0.0

    def _train(self, x, name) -> SpikeTrain:
        """Input ``name`` (q, k or v) of one token as a checked SpikeTrain: a train, or a value row
        encoded by the latency code at the memory's top (``SpikeTrain.encoded``)."""
        n_dims, top = self._tops[name]
        if not isinstance(x, SpikeTrain):
            x = np.asarray(x, dtype=float)
            if x.shape not in ((n_dims,), (1, n_dims)) or not np.all(np.isfinite(x)):
                raise ValueError(f"{name} must be one token's {n_dims} finite values or its SpikeTrain, "
                                 f"got shape {x.shape}")
            x = SpikeTrain.encoded(x.reshape(1, n_dims), top, float(self.params["code_base"]),
                                   latency_levels(self.params))
        if x.n_tokens != 1 or x.n_dims != n_dims or x.x_top != top:
            raise ValueError(f"{name} must be a train of one token of {n_dims} dimensions at top {top:g}, got "
                             f"{x.n_tokens} token(s) of {x.n_dims} at top {x.x_top:g}")
        check_replayable(x, self.params)
        return x

    def step(self, q, k, v) -> MemoryStep:
        """Write token t (key ``k``, value ``v``) and read query ``q``: one (write, read) period of the
        same Network. Each input is a one-token ``circuits.codes.SpikeTrain`` (queries and keys
        scaled by sqrt(scale) already) or one token's values. ValueError with one line, before
        anything is simulated, for a step beyond the capacity or an input that does not fit."""
        if self.steps >= self.capacity:
            raise ValueError(f"step {self.steps + 1} is beyond the memory's capacity of {self.capacity} tokens")
        q, k, v = self._train(q, "q"), self._train(k, "k"), self._train(v, "v")
        t = self.steps
        write_replay_table(self._key_table, k, self._windows["learn"][[t]], signed=True)
        write_replay_table(self._key_table, q, self._windows["read"][[t]], signed=True)
        write_replay_table(self._value_table, v, self._windows["token"][[t]])
        self._keys.in_use[t] = 1.0
        t0 = time.perf_counter()
        self._circuit.network.run(self._period * second, namespace={})
        wall = time.perf_counter() - t0
        self.steps, self.wall_seconds = t + 1, self.wall_seconds + wall
        self._written.append((q, k, v))
        return self._read_out(wall)

    @property
    def simulated_seconds(self) -> float:
        """Simulated time so far: ``steps`` (write, read) periods."""
        return float(self._circuit.network.t / second)

    def circuit(self):
        """The steps so far as the whole causal head's circuit (``circuits.exact_latency``'s
        LatencyAttentionCircuit, live: its monitors are the memory's): the schedule of ``steps``
        tokens and the inputs written, so that its read-outs (``decode``, ``population_spikes``,
        ``synaptic_events``, ``key_efficacies``, ``astrocyte_log_signal``, ``one_spike_rate_model``,
        ``emitted_context``) describe them. Its config keeps the memory's structure (``n_tokens``:
        the capacity)."""
        if not self.steps:
            raise ValueError("the memory has not been stepped yet")
        q, k, v = (concatenated(trains).values() for trains in zip(*self._written))
        schedule = Schedule.from_params(self.steps, self.steps, self.params, causal=True)
        return replace(self._circuit, schedule=schedule, inputs={"x_keys": k, "x_queries": q, "values": v},
                       has_run=True)

    def result(self) -> HeadResult:
        """The steps so far as ``circuits.head.HeadResult`` of the whole causal head on the tokens
        written (decoded contexts, the one-spike head's ideal and error budget, causal softmax,
        metrics), its circuit frozen; ``wall_seconds`` the steps' simulation time."""
        circuit = self.circuit()
        spec = head_spec(*(concatenated(trains) for trains in zip(*self._written)), "exact", params=self.params,
                         seed=self.seed, **self._options)
        return spec.result(circuit.freeze(), self.wall_seconds, RuntimeRunner())

    def _read_out(self, wall) -> MemoryStep:
        """The last step's :class:`MemoryStep` from the live monitors."""
        circuit, t = self.circuit(), self.steps - 1
        params, config = self.params, circuit.config
        values = circuit.monitors["value_neurons_spikes"]
        context = SpikeTrain.recorded(values.t_[:], values.i[:], output_windows(circuit.schedule, params)[[t], 0],
                                      float(params["dt_enc"]), config["value_dim"], config["y_top"],
                                      float(params["code_base"]), config["levels"])
        log_signal = float(astrocyte_log_signal(circuit)[t])
        efficacy = key_efficacies(circuit)[t]
        weighted = efficacy * process_memory(params, circuit.schedule)[t]
        start, stop = counting_windows(circuit.schedule, params)[t]
        keys = circuit.monitors["key_neurons_spikes"]
        key_t, key_i = np.asarray(keys.t_[:]), np.asarray(keys.i[:])
        # Spike times sit on the dt_enc grid: half a step either side keeps rounding out of the window edges.
        half_step = float(params["dt_enc"]) / 2
        inside = (key_t >= start - half_step) & (key_t < stop - half_step)
        spikes, events = circuit.population_spikes(), circuit.synaptic_events()
        step = MemoryStep(t, context, context.values()[0], float(np.exp(log_signal - config["score_top"])), log_signal,
                          efficacy, weighted / weighted.sum() if weighted.sum() > 0 else weighted,
                          (key_t[inside], key_i[inside]), (float(start), float(stop)),
                          {name: n - self._spikes.get(name, 0) for name, n in spikes.items()},
                          {name: n - self._events.get(name, 0) for name, n in events.items()}, wall)
        self._spikes, self._events = spikes, events
        return step


class MemoryProcess:
    """A :class:`CausalHeadMemory` in a process of its own, stepped through a pipe.

    Brian2 names a network's objects, and its runtime device compiles code that carries those
    names; a head built while another is alive in the same process gets renamed objects
    (``key_neurons_1``...) and compiles all its code again (about a minute on 2 cores, and a
    generator keeps sixteen heads). In a fresh process every head is the first: the code compiled
    once is found in Brian2's disk cache. Steps sent to several processes run at once
    (:meth:`send`, then :meth:`receive`), and each process holds its memory's state between steps
    as an in-process memory does, so the steps' results are the same (``tests/test_generation.py``).

    Arguments as :class:`CausalHeadMemory`'s; ``codegen_target``: Brian2's code-generation target
    in the process (default this process's)."""

    def __init__(self, *args, codegen_target=None, **kwargs):
        import multiprocessing

        import brian2

        context = multiprocessing.get_context("spawn")        # a fresh Brian2, its names free
        self._pipe, child = context.Pipe()
        target = brian2.prefs.codegen.target if codegen_target is None else codegen_target
        self._process = context.Process(target=_serve_memory, args=(child, target, args, kwargs), daemon=True)
        self._process.start()
        child.close()
        self._build_seconds = None

    @property
    def build_seconds(self) -> float:
        """Seconds the process took to build its memory; waits for the build (its errors are
        raised here), which runs while the caller starts other processes."""
        if self._build_seconds is None:
            self._build_seconds = self._reply()
        return self._build_seconds

    def _reply(self):
        try:
            status, value = self._pipe.recv()
        except EOFError:
            raise RuntimeError("a head memory's process ended unexpectedly") from None
        if status == "error":
            raise value
        return value

    def send(self, q, k, v) -> None:
        """Start a step (see :meth:`CausalHeadMemory.step`); :meth:`receive` gives its result."""
        self.build_seconds
        self._pipe.send(("step", (q, k, v)))

    def receive(self) -> MemoryStep:
        """The result of the step last sent (a ValueError of the step is raised here)."""
        return self._reply()

    def step(self, q, k, v) -> MemoryStep:
        self.send(q, k, v)
        return self.receive()

    def close(self) -> None:
        if self._process.is_alive():
            self._pipe.send(("close", None))
            self._process.join(timeout=10)
        self._pipe.close()


def _serve_memory(pipe, codegen_target, args, kwargs) -> None:
    """A memory process's loop: build the memory, then answer steps until told to close."""
    import brian2

    brian2.prefs.codegen.target = codegen_target
    try:
        memory = CausalHeadMemory(*args, **kwargs)
    except Exception as exc:                      # sent back: the caller raises it
        pipe.send(("error", exc))
        return
    pipe.send(("ok", memory.build_seconds))
    while True:
        command, payload = pipe.recv()
        if command == "close":
            return
        try:
            pipe.send(("ok", memory.step(*payload)))
        except ValueError as exc:
            pipe.send(("error", exc))
