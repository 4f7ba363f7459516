"""LayerNorm by an astrocyte as one spiking stage: n_j = (z_j - mu) / sigma per token, z = sum_k W_k u_k + b.

    sources (latency encoders, or replayed trains) ==W_k==> units z_j ----------> square ON/OFF --squared--> astrocyte S
                 \\==mean_j W_k==> interneuron m --centring spike (H events)--^   output ON/OFF <--z_j, S^(-1/2)--+
                                                                                  (the emitted SpikeTrain)

(models.layernorm for the cells and their sources; analysis.layernorm for the NumPy reference and
the budget; docs/model.md §13). One token at a time, four windows of ``t_code`` each (token n
occupies windows 4n..4n+3; no pipelining):

0. *input*: the sources' latency spikes (token n's in window 4n) add W_k[j, c] times what they
   carry to unit j, reset to b_j at the token's start, and the column means of W_k to the
   interneuron, reset to mean(b): at the window's end z_j = b_j + sum_k W_k û_k and m = mean_j z_j;
1. *centring*: the interneuron's ON or OFF latency neuron (top ``mu_top``) fires once for m, and its
   spike reaches every unit with weight -polarity: H events; z_j now holds d_j = z_j - m̂;
2. *squares*: each unit's ON/OFF latency pair (top ``d_top``) starts from max(+-d_j, 0) and fires once;
   the astrocyte's processes add efficacy^2 / H to S, reset to eps at the token's start: one
   astrocyte update per spike;
3. *output*: each unit's ON/OFF latency pair (top ``n_top``, default sqrt(H) sqrt(B), which abs(d_j) /
   sigma never passes) starts from max(+-d_j, 0) / sqrt(S) and fires once; their spikes are the
   stage's output, a :class:`circuits.codes.SpikeTrain` (:meth:`LayerNormCircuit.output_train`).

Order within a step of ``dt_enc`` (Brian2's slots: start, groups, before_thresholds, thresholds,
synapses, resets, end): the resets of z, m and S run at a token's first step (``start``), before the
encoders' window start (``before_thresholds``), so a spike at level 0 already counts; a latency
neuron fires only in the first ``levels`` steps of its window, so every start of the next window
(``before_thresholds`` of its first step) reads its inputs complete. The window starts of the
centring, square and output neurons run at every window start and read 0/1 tables of their windows
(``centre_window``...; 0 in the other windows and in empty ones), as the FFN's GELU neurons do.

Weights are wired where they are non-zero (``circuits.projection.connections``): a diagonal W_k
(the residual with diag(gamma) of the previous LayerNorm) costs 2H synapses (one per ON/OFF channel)
and H events per token, not 2H^2. The wiring pattern is part of the circuit's structure (config
``wiring``), so a standalone binary is reused only for the same pattern.

Tops of range (values, not structure: ``circuits.standalone.VALUE_CONFIG``): ``x_top`` of a source
given or max abs(u) sqrt(B) (a train's own); ``mu_top`` and ``d_top`` given or the largest delivered
abs(mu) and abs(d_j) times sqrt(B) (computed before simulating from the delivered inputs, as the other
stages' output tops); ``n_top`` given or sqrt(H) sqrt(B).

``block_astrocyte``: the output neurons read a stand-in holding S at its mean over the sentence's
real tokens (computed before simulating from the delivered inputs, as the heads' blocked astrocyte
is): the same division for every token, no per-token normalisation. The astrocyte still integrates
(its events are counted); it no longer acts.

``pad_to`` (a length bucket) adds empty tokens after the real ones: no input, every window table 0,
no spike; the read-outs give the real tokens only.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
from brian2 import Network, SpikeMonitor, StateMonitor, TimedArray, linked_var, second

from analysis import codes
from analysis import layernorm as reference
from circuits import blocks
from circuits.circuit import SpikingCircuit
from circuits.codes import (Encoded, SpikeTrain, check_latency, check_replayable, latency_levels, latency_neurons,
                            replayed_neurons, spike_input)
from circuits.projection import connections
from circuits.protocol import Schedule, check_pad_to, check_resolution
from circuits.runners import CircuitSpec, builder_options
from circuits.seeds import SeedStreams, seed_streams
from models.encoders import LATENCY_ENCODER_START, polarity_sign, signed_rates
from models.layernorm import (ASTROCYTE_EQS, ASTROCYTE_RESET, BLOCKED_ASTROCYTE_EQS, CENTRE_NEURON_EQS, CENTRE_START,
                              INTERNEURON_EQS, INTERNEURON_ON_PRE, INTERNEURON_RESET, LAYERNORM_PARAMETERS,
                              OUTPUT_NEURON_EQS, OUTPUT_START, PROCESS_ON_PRE, SQUARE_NEURON_EQS, SQUARE_START,
                              SYNAPSE_MODEL, UNIT_EQS, UNIT_ON_PRE, UNIT_RESET)
from models.parameters import ParameterError, ParameterSet

#: Windows of ``t_code`` per token, in order.
WINDOWS = ("input", "centre", "square", "output")


def layernorm_parameters(overrides=None) -> ParameterSet:
    """Default parameters of the LayerNorm stage with overrides checked by name, unit, sign and
    against the time step; the latency code must order its levels in whole steps of ``dt_enc``."""
    params = ParameterSet(LAYERNORM_PARAMETERS).override(overrides or {})
    check_resolution(params)
    if params["dt_enc"] > params["dt"]:
        raise ParameterError(f"dt_enc = {float(params['dt_enc']) * 1e3:g} ms must not exceed dt = "
                             f"{float(params['dt']) * 1e3:g} ms")
    check_latency(params)
    steps = float(params["t_code"] / params["dt_enc"])
    if abs(steps - round(steps)) > 1e-9:
        raise ParameterError(f"t_code = {float(params['t_code']) * 1e3:g} ms must be a whole number of steps of "
                             f"dt_enc = {float(params['dt_enc']) * 1e3:g} ms")
    return params


def layernorm_schedule(n_tokens, params, pad_to=None) -> Schedule:
    """Tokens one after another, each four windows of ``t_code`` (:data:`WINDOWS`): the schedule's
    token windows are the whole periods, its settling parts the first three windows and its learning
    windows the output windows. ``pad_to``: empty tokens after the real ones, up to that many."""
    check_pad_to(pad_to, n_tokens)
    t_code = float(params["t_code"])
    return Schedule(n_tokens, 0, 3 * t_code, t_code, 0.0, pad_tokens=0 if pad_to is None else pad_to - n_tokens,
                    pad_first=False)


def window_starts(schedule, params, window) -> np.ndarray:
    """Start times (s) of window ``window`` (one of :data:`WINDOWS`) of every real token."""
    return schedule.token_windows()[:, 0] + WINDOWS.index(window) * float(params["t_code"])


def window_table(schedule, params, window) -> np.ndarray:
    """0/1 per table bin: 1 in window ``window`` of every real token."""
    starts = window_starts(schedule, params, window)
    return schedule.phase(np.stack([starts, starts + float(params["t_code"])], axis=1))


# ------------------------------------------------------------------------------------ checks


def _top(value, name) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value:g}")
    return value


def check_layernorm(sources, bias, params, x_top=None, mu_top=None, d_top=None, n_top=None) -> tuple:
    """Refuse (ValueError/ParameterError, one line) inputs the stage cannot represent: ``sources``
    not a non-empty list of (inputs, weights) pairs, arrays of the wrong shape or with non-finite
    entries, sources of different lengths or unit counts, a train the stage's code cannot replay,
    tops of range that are not positive numbers (or one given for a train in a per-source ``x_top``:
    a train's top is its own; one number applies to the coded sources).
    Returns the checked sources as (train or None, values L x D, W H x D) and the bias."""
    if isinstance(sources, (np.ndarray, SpikeTrain)) or not isinstance(sources, (list, tuple)) or not sources:
        raise ValueError("sources must be a non-empty list of (inputs, weights) pairs")
    bias = np.asarray(bias, dtype=float)
    if bias.ndim != 1 or bias.size == 0 or not np.all(np.isfinite(bias)):
        raise ValueError(f"bias must be a non-empty 1-D array of finite values, got shape {bias.shape}")
    per_source = isinstance(x_top, (list, tuple, np.ndarray))
    tops = list(x_top) if per_source else [x_top] * len(sources)
    if len(tops) != len(sources):
        raise ValueError(f"x_top must be one number or one per source ({len(sources)}), got {len(tops)}")
    checked, n_tokens = [], None
    for k, pair in enumerate(sources):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"source {k} must be a pair (inputs, weights)")
        train, values = spike_input(pair[0])
        w = np.asarray(pair[1], dtype=float)
        for name, array in (("inputs", values), ("weights", w)):
            if array.ndim != 2 or array.size == 0:
                raise ValueError(f"source {k}: {name} must be a non-empty 2-D array, got shape {array.shape}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"source {k}: {name} have non-finite entries")
        if w.shape != (len(bias), values.shape[1]):
            raise ValueError(f"source {k}: weights must be {len(bias)} x {values.shape[1]} (units x inputs), "
                             f"got {w.shape}")
        if n_tokens is not None and len(values) != n_tokens:
            raise ValueError(f"source {k} has {len(values)} tokens, source 0 has {n_tokens}")
        n_tokens = len(values)
        if train is not None:
            check_replayable(train, params)
            if per_source and tops[k] is not None:
                raise ValueError(f"source {k} is a spike train: its top of range is the train's, not x_top")
            tops[k] = None
        elif tops[k] is not None:
            _top(tops[k], f"x_top of source {k}")
        checked.append((train, values, w))
    for name, top in (("mu_top", mu_top), ("d_top", d_top), ("n_top", n_top)):
        if top is not None:
            _top(top, name)
    return checked, bias, tops


def _default_top(x, base) -> float:
    """``analysis.codes.latency_top`` of ``x``, or 1 where every value is zero (nothing fires)."""
    top = codes.latency_top(x, base)
    return top if top > 0 else 1.0


def layernorm_tops(checked, bias, tops, params, mu_top=None, d_top=None, n_top=None) -> dict:
    """The tops of range and what the codes deliver: ``x_top`` per source, the delivered input ``z``
    (tokens x H; sum_k W_k û_k + b), the exact ``z_exact`` (the sources' values uncoded), ``mu_top``,
    ``d_top`` and ``n_top`` (see the module docstring)."""
    base, levels = float(params["code_base"]), latency_levels(params)
    x_tops = [train.x_top if train is not None else (_default_top(values, base) if top is None else float(top))
              for (train, values, _), top in zip(checked, tops)]
    delivered = [values if train is not None else codes.latency_decode(values, top, base, levels)
                 for (train, values, _), top in zip(checked, x_tops)]
    z = sum(u @ w.T for u, (_, _, w) in zip(delivered, checked)) + bias
    z_exact = sum(values @ w.T for _, values, w in checked) + bias
    mu_top = _default_top(z.mean(axis=1), base) if mu_top is None else float(mu_top)
    mu_hat = codes.latency_decode(z.mean(axis=1), mu_top, base, levels)
    d_top = _default_top(z - mu_hat[:, None], base) if d_top is None else float(d_top)
    n_top = float(np.sqrt(len(bias) * base)) if n_top is None else float(n_top)
    return {"x_top": tuple(x_tops), "z": z, "z_exact": z_exact, "mu_top": mu_top, "d_top": d_top, "n_top": n_top}


# ----------------------------------------------------------------------------------- builder


def source_neurons(k, train, values, x_top, schedule, params):
    """Source ``k``'s ON/OFF latency neurons, ``source<k>``: latency encoders of ``values`` (tokens x D)
    at top ``x_top``, or the replayed terminals of ``train``; token n's spikes in its input window
    (window 4 slot(n)). Returns (the group, :class:`circuits.codes.Encoded`)."""
    t_code, name = float(params["t_code"]), f"source{k}"
    rows = len(WINDOWS) * schedule.token_slots()
    n_rows = len(WINDOWS) * schedule.n_token_windows
    base, levels = float(params["code_base"]), latency_levels(params)
    if train is not None:
        group = replayed_neurons(train, params, {}, name, t_code, rows, n_rows)
        return group, Encoded("latency", 1.0, x_top=train.x_top, base=base, levels=levels, replayed=True)
    table = np.zeros((n_rows, 2 * values.shape[1]))
    table[rows] = signed_rates(values, 1.0)
    group = latency_neurons(len(table[0]), LATENCY_ENCODER_START, params,
                            {"value_table": TimedArray(table, dt=t_code * second, name=f"{name}_table")}, name,
                            x_top, t_code)
    group.channel = np.arange(len(table[0]))
    return group, Encoded("latency", 1.0, x_top=x_top, base=base, levels=levels)


def _wire(source, target, weights, params, name, on_pre, digest):
    """Synapses ``name`` from ``source`` to ``target`` where ``weights`` (source x target) is non-zero
    (None if nowhere), their pattern fed to ``digest``."""
    pre, post, values = connections(weights, sparse=True)
    digest.update(np.asarray(weights.shape, dtype=np.int64).tobytes() + np.packbits(weights != 0).tobytes())
    if not len(pre):
        return None
    synapses = blocks.synapses(source, target, SYNAPSE_MODEL, params, {}, name, {"i": pre, "j": post},
                               on_pre=on_pre, dt=params["dt_enc"])
    synapses.w_ln = values
    return synapses


def _latency_pair_group(n_units, start, model, params, namespace, name, top):
    """An ON/OFF latency pair per unit (neuron 2j: ON, 2j + 1: OFF), started at every window."""
    group = latency_neurons(2 * n_units, start, params, namespace, name, top, float(params["t_code"]), model=model)
    channel = np.arange(2 * n_units)
    group.channel = channel
    group.polarity = polarity_sign(channel)
    return group


def build_layernorm_circuit(sources, bias, *, x_top=None, mu_top=None, d_top=None, n_top=None, block_astrocyte=False,
                            pad_to=None, params=None, seed=0, spike_seed=None) -> "LayerNormCircuit":
    """Build the LayerNorm stage (see the module docstring) for ``sources``, a list of pairs (u_k, W_k):
    u_k tokens x D_k values (latency-coded at top ``x_top``) or a :class:`circuits.codes.SpikeTrain`
    (replayed), W_k H x D_k; ``bias`` (H). ``x_top``: one number for every coded source or one per
    source (None: each source's max abs(u) sqrt(B); a train's top is its own); ``mu_top``, ``d_top``,
    ``n_top``: the interneuron's, the squares' and the output's tops (defaults: the module
    docstring). ``block_astrocyte``: the ablation (S held at its mean over the real tokens).
    ``pad_to``: the number of token periods (None: the real tokens). ``params``: overrides or a
    ParameterSet of :func:`layernorm_parameters`. No random numbers: ``seed`` and ``spike_seed``
    only name the run."""
    if not isinstance(params, ParameterSet):
        params = layernorm_parameters(params)
    checked, bias, tops = check_layernorm(sources, bias, params, x_top, mu_top, d_top, n_top)
    n_units, n_tokens = len(bias), len(checked[0][1])
    schedule = layernorm_schedule(n_tokens, params, pad_to)
    streams = seed_streams(seed, spike_seed)
    ranges = layernorm_tops(checked, bias, tops, params, mu_top, d_top, n_top)
    base, levels, eps = float(params["code_base"]), latency_levels(params), float(params["ln_eps"])
    held = None
    if block_astrocyte:
        held = float(reference.delivered(ranges["z"], eps, ranges["mu_top"], ranges["d_top"], ranges["n_top"], base,
                                         levels)["signal"].mean())
    t_code, dt_enc = float(params["t_code"]), params["dt_enc"]
    period = len(WINDOWS) * t_code * second
    tables = {f"{w}_window": blocks.table(window_table(schedule, params, w), f"{w}_window_table")
              for w in WINDOWS[1:]}

    # 0. Units and interneuron, reset at every token's start.
    units = blocks.neuron_group(n_units, UNIT_EQS, params, {}, "units", dt=dt_enc, uses=(UNIT_RESET,))
    units.b_unit = bias
    units.run_regularly(UNIT_RESET, dt=period, when="start", name="units_reset")
    interneuron = blocks.neuron_group(1, INTERNEURON_EQS, params, {}, "interneuron", dt=dt_enc,
                                      uses=(INTERNEURON_RESET,))
    interneuron.b_mean = float(bias.mean())
    interneuron.run_regularly(INTERNEURON_RESET, dt=period, when="start", name="interneuron_reset")
    groups = {"units": units, "interneuron": interneuron}
    spiking = []
    wiring = hashlib.sha256()
    for k, ((train, values, w), top) in enumerate(zip(checked, ranges["x_top"])):
        source, _ = source_neurons(k, train, values, top, schedule, params)
        groups[f"source{k}"] = source
        spiking.append(f"source{k}")
        # Channel 2c carries +u_c, channel 2c+1 carries -u_c: the OFF synapse has the negated weight.
        channel = np.arange(len(source))
        weights = polarity_sign(channel)[:, None] * w.T[channel // 2]
        for name, target, matrix, on_pre in ((f"source{k}_synapses", units, weights, UNIT_ON_PRE),
                                             (f"source{k}_interneuron_synapses", interneuron,
                                              weights.mean(axis=1, keepdims=True), INTERNEURON_ON_PRE)):
            synapses = _wire(source, target, matrix, params, name, on_pre, wiring)
            if synapses is not None:
                groups[name] = synapses

    # 1. The interneuron's signed spike subtracts its mean from every unit.
    centre = latency_neurons(2, CENTRE_START, params, {"centre_window": tables["centre_window"]}, "centre_neurons",
                             ranges["mu_top"], t_code, model=CENTRE_NEURON_EQS)
    centre.channel = np.arange(2)
    centre.polarity = polarity_sign(np.arange(2))
    centre.m = linked_var(interneuron, "m", index=np.zeros(2, dtype=int))
    pre, post = np.divmod(np.arange(2 * n_units), n_units)
    centring = blocks.synapses(centre, units, SYNAPSE_MODEL, params, {}, "centre_synapses", {"i": pre, "j": post},
                               on_pre=UNIT_ON_PRE, dt=dt_enc)
    centring.w_ln = -polarity_sign(pre)
    groups.update(centre_neurons=centre, centre_synapses=centring)

    # 2. The squares reach the astrocyte's processes with squared efficacy.
    squares = _latency_pair_group(n_units, SQUARE_START, SQUARE_NEURON_EQS, params,
                                  {"square_window": tables["square_window"]}, "square_neurons", ranges["d_top"])
    squares.z = linked_var(units, "z", index=np.arange(2 * n_units) // 2)
    cell = blocks.neuron_group(1, ASTROCYTE_EQS, params, {}, "astrocyte", dt=dt_enc, uses=(ASTROCYTE_RESET,))
    cell.S = eps
    cell.run_regularly(ASTROCYTE_RESET, dt=period, when="start", name="astrocyte_reset")
    processes = blocks.synapses(squares, cell, "", params, {}, "astro_processes",
                                {"i": np.arange(2 * n_units), "j": np.zeros(2 * n_units, dtype=int)},
                                on_pre=PROCESS_ON_PRE, dt=dt_enc, extra={"n_units": float(n_units)})
    groups.update(square_neurons=squares, astrocyte=cell, astro_processes=processes)

    # 3. The output neurons divide each deviation by the square root of the astrocyte's signal.
    outputs = _latency_pair_group(n_units, OUTPUT_START, OUTPUT_NEURON_EQS, params,
                                  {"output_window": tables["output_window"]}, "output_neurons", ranges["n_top"])
    outputs.z = linked_var(units, "z", index=np.arange(2 * n_units) // 2)
    signal = cell
    if block_astrocyte:
        signal = blocks.neuron_group(1, BLOCKED_ASTROCYTE_EQS, params, {}, "astrocyte_block", dt=dt_enc)
        signal.S = held
        groups["astrocyte_block"] = signal
    outputs.S = linked_var(signal, "S", index=np.zeros(2 * n_units, dtype=int))
    groups["output_neurons"] = outputs

    monitors = {f"{name}_spikes": SpikeMonitor(groups[name], name=f"{name}_spikes")
                for name in (*spiking, "centre_neurons", "square_neurons", "output_neurons")}
    # The astrocyte's S at every window's end (the output window's start: what the outputs divide by).
    monitors["signal_monitor"] = StateMonitor(cell, "S", record=True, dt=t_code * second, when="end",
                                              name="signal_monitor")
    network = Network(*groups.values(), *monitors.values())
    config = {"circuit": "layernorm", "code": "latency", "n_tokens": schedule.n_token_windows, "n_units": n_units,
              "source_dims": tuple(int(v.shape[1]) for _, v, _ in checked),
              "replayed": tuple(train is not None for train, _, _ in checked), "levels": levels,
              "block_astrocyte": bool(block_astrocyte), "wiring": wiring.hexdigest()[:16],
              "x_top": ranges["x_top"], "mu_top": ranges["mu_top"], "d_top": ranges["d_top"], "n_top": ranges["n_top"]}
    inputs = {"values": tuple(v for _, v, _ in checked), "weights": tuple(w for _, _, w in checked), "bias": bias,
              "z": ranges["z"], "z_exact": ranges["z_exact"], "held": held}
    return LayerNormCircuit("layernorm", network, groups, monitors, schedule, params, config, inputs, streams)


# --------------------------------------------------------------------------------- read-outs


@dataclass
class LayerNormCircuit(SpikingCircuit):
    """A built LayerNorm stage (see :class:`circuits.circuit.SpikingCircuit`): groups ``source<k>``,
    ``units``, ``interneuron``, ``centre_neurons``, ``square_neurons``, ``astrocyte``,
    ``output_neurons`` (and ``astrocyte_block``), synapses ``source<k>_synapses``,
    ``source<k>_interneuron_synapses``, ``centre_synapses``, ``astro_processes``; inputs ``values``,
    ``weights``, ``bias`` of the sources, the delivered input ``z``, the uncoded ``z_exact`` and the
    blocked astrocyte's ``held`` S (None when it works)."""

    def output_windows(self) -> np.ndarray:
        """Start times (s) of the real tokens' output windows."""
        return window_starts(self.schedule, self.params, "output")

    def output_train(self) -> SpikeTrain:
        """The output neurons' spikes as a :class:`circuits.codes.SpikeTrain` (channel 2j: +n_j,
        2j + 1: -n_j; top ``n_top``): what the next stage replays."""
        if not self.has_run:
            raise RuntimeError("run the circuit before reading its output")
        monitor = self.monitors["output_neurons_spikes"]
        return SpikeTrain.recorded(monitor.t_[:], monitor.i[:], self.output_windows(), float(self.params["dt_enc"]),
                                   self.config["n_units"], self.config["n_top"], float(self.params["code_base"]),
                                   self.config["levels"])

    def decode(self) -> np.ndarray:
        """What the output spikes carry (real tokens x H): +-n_top B^(1/2 - k), ON minus OFF."""
        return self.output_train().values()

    def signal(self) -> np.ndarray:
        """The astrocyte's S at each real token's output window (eps + mean_j d̂_j^2)."""
        monitor = self.monitors["signal_monitor"]
        steps = np.rint(np.asarray(monitor.t_[:]) / float(self.params["t_code"])).astype(int)
        wanted = np.rint(self.output_windows() / float(self.params["t_code"])).astype(int)
        return np.asarray(monitor.S[0])[np.searchsorted(steps, wanted)]

    def gain(self) -> np.ndarray:
        """The divisive gain the output neurons applied per real token: the astrocyte's S^(-1/2), or
        blocked, the held S^(-1/2)."""
        held = self.inputs["held"]
        if held is not None:
            return np.full(self.schedule.n_tokens, float(held) ** -0.5)
        return self.signal() ** -0.5


def rate_model(circuit: LayerNormCircuit) -> dict:
    """The stage's references and error budget (``analysis.layernorm.layernorm_budget``) on the
    delivered input: LayerNorm (``n_ideal``), the circuit without quantisation (``n_rate``: the same,
    or blocked (z - mu) held^(-1/2)), LayerNorm of the uncoded input (``n_exact``), 1/sigma per token,
    and the variances (``var_input``: the coded sources' quantisation through LayerNorm)."""
    p, config, inp = circuit.params, circuit.config, circuit.inputs
    base, levels, eps = float(p["code_base"]), config["levels"], float(p["ln_eps"])
    coded = [(codes.latency_variance(values, top, base, levels), w)
             for values, w, top, replayed in zip(inp["values"], inp["weights"], config["x_top"], config["replayed"])
             if not replayed]
    budget = reference.layernorm_budget(inp["z"], eps, config["mu_top"], config["d_top"], config["n_top"], base,
                                        levels, inp["held"], coded)
    return {**budget, "n_ideal": reference.layernorm(inp["z"], eps),
            "n_exact": reference.layernorm(inp["z_exact"], eps),
            "inverse_sigma": reference.inverse_sigma(inp["z"], eps)}


# ------------------------------------------------------------------------------------ specs


@dataclass(frozen=True)
class LayerNormSpec(CircuitSpec):
    """A checked LayerNorm stage, ready to simulate on any runner (``circuits.runners``): ``sources``
    (pairs of values or a SpikeTrain, and weights H x D), ``bias`` (H), builder options, parameters
    and seeds."""

    sources: tuple
    bias: np.ndarray
    options: dict
    params: ParameterSet
    seed: int = 0
    spike_seed: int | None = None
    circuit = "layernorm"

    @property
    def workers_key(self) -> str:
        """One set of workers per shape of sources (the embeddings', the residual sum after attention
        and after the feed-forward block) and per astrocyte, working or blocked: a model's pass (or
        an ablation beside it) alternates between them."""
        blocked = ":blocked" if self.options["block_astrocyte"] else ""
        return "layernorm:" + ",".join(str(np.shape(w)[1]) for _, w in self.sources) + blocked

    @property
    def builder(self):
        return build_layernorm_circuit

    @property
    def arrays(self) -> tuple:
        return self.sources, self.bias

    def builder_arguments(self) -> dict:
        return dict(self.options, params=self.params, seed=self.seed, spike_seed=self.spike_seed)

    def result(self, circuit, wall_seconds, runner=None) -> "LayerNormResult":
        """The output spikes' values against LayerNorm of the delivered input, with the budget."""
        return LayerNormResult(self, circuit, circuit.decode(), rate_model(circuit), circuit.gain(),
                               circuit.output_train(), wall_seconds)


def layernorm_spec(sources, bias, *, params=None, seed=0, spike_seed=None, **options) -> LayerNormSpec:
    """Check a LayerNorm stage before anything is simulated (ValueError/ParameterError with one line).
    ``options``: ``x_top``, ``mu_top``, ``d_top``, ``n_top``, ``block_astrocyte``, ``pad_to`` (see
    :func:`build_layernorm_circuit`); ``params``: overrides by name or a ParameterSet of
    :func:`layernorm_parameters`."""
    options = builder_options(build_layernorm_circuit, options, "the LayerNorm stage")
    seeds = SeedStreams(seed, spike_seed)
    if not isinstance(params, ParameterSet):
        params = layernorm_parameters(params)
    checked, bias, _ = check_layernorm(sources, bias, params, options["x_top"], options["mu_top"], options["d_top"],
                                       options["n_top"])
    check_pad_to(options["pad_to"], len(checked[0][1]))
    if not isinstance(options["block_astrocyte"], (bool, np.bool_)):
        raise ValueError(f"block_astrocyte must be True or False, got {options['block_astrocyte']!r}")
    sources = tuple((values if train is None else train, w) for train, values, w in checked)
    return LayerNormSpec(sources, bias, options, params, seeds.seed, seeds.spike_seed)


@dataclass
class LayerNormResult:
    """What one LayerNorm stage's run gives: ``n_spike`` (what the output spikes carry, real tokens x
    H), the references and budget of :func:`rate_model` (``reference``; ``n_ideal`` LayerNorm of the
    delivered input), ``gain`` (the divisive gain applied per token: the astrocyte's S^(-1/2)), the
    emitted ``train`` and the run circuit, frozen."""

    spec: LayerNormSpec
    circuit: LayerNormCircuit
    n_spike: np.ndarray
    reference: dict
    gain: np.ndarray
    train: SpikeTrain
    wall_seconds: float

    @property
    def n_ideal(self) -> np.ndarray:
        return self.reference["n_ideal"]

    @property
    def n_rate(self) -> np.ndarray:
        return self.reference["n_rate"]

    @property
    def variance(self) -> np.ndarray:
        """Expected squared error of each output about ``n_rate``: centring, squares, output code."""
        return self.reference["variance"]

    @property
    def inverse_sigma(self) -> np.ndarray:
        """1/sigma per real token of the delivered input: what the gain should be."""
        return self.reference["inverse_sigma"]

    def y(self, gamma, beta) -> np.ndarray:
        """The LayerNorm's output with its learned gain and bias, gamma n + beta (what the next stages'
        synaptic gains and constant currents make of the emitted n)."""
        return np.asarray(gamma, dtype=float) * self.n_spike + np.asarray(beta, dtype=float)

    @property
    def metrics(self) -> dict:
        """Errors against the references and the budget (each a relative Frobenius error), the gain's
        log rms against 1/sigma (measured and expected), spikes, events and times."""
        ref = self.reference
        norm = np.linalg.norm(ref["n_rate"])
        budget = float(np.sqrt(ref["variance"].sum()) / norm)
        with_input = float(np.sqrt((ref["variance"] + ref["var_input"]).sum()) / np.linalg.norm(ref["n_exact"]))
        error = reference.relative_error(self.n_spike, ref["n_rate"])
        error_exact = reference.relative_error(self.n_spike, ref["n_exact"])
        log_gap = np.log(self.gain / self.inverse_sigma)
        events = self.circuit.synaptic_events()
        return {"rel_err_spike_vs_layernorm": reference.relative_error(self.n_spike, ref["n_ideal"]),
                "rel_err_spike_vs_rate": error, "layernorm_budget": budget, "spike_vs_rate_over_budget": error / budget,
                "budget_tolerance_ratio": ref["tolerance"],
                "rel_err_spike_vs_exact": error_exact, "budget_with_input": with_input,
                "spike_vs_exact_over_budget": error_exact / with_input,
                "budget_with_input_tolerance_ratio": ref["tolerance_with_input"],
                "gain_log_rms": float(np.sqrt(np.mean(log_gap ** 2))),
                "gain_log_rms_expected": ref["log_gain_rms"],
                "total_spikes": self.circuit.total_spikes(),
                "synaptic_events": int(sum(n for name, n in events.items() if name != "astro_processes")),
                "astrocyte_updates": int(events.get("astro_processes", 0)),
                "wall_seconds": self.wall_seconds, "simulated_seconds": self.circuit.schedule.duration}


def token_gains(result: LayerNormResult) -> tuple:
    """Per real token, (the gain the astrocyte applied, S^(-1/2); the true 1/sigma of the delivered
    input): the astrocyte's gain against LayerNorm's (for a gain-vs-1/sigma figure)."""
    return np.asarray(result.gain, dtype=float), np.asarray(result.inverse_sigma, dtype=float)
