"""all-MiniLM-L6-v2 with chosen stages on spiking circuits, against its NumPy reference, with its bill.

:func:`spiking_minilm` runs the reference forward pass once per sentence, checks every circuit of
the run on it (before anything is simulated), runs the spiking pass and returns both;
:func:`sentence_records` turns each sentence into a JSON-ready record and :func:`run_metrics`
the records into what ``metrics.json`` keeps (cosines, per-layer and per-stage
errors, every head's and block's errors against their budgets, and the bill of
``transformer.bill``). Parameters reach every block through :func:`block_parameters`.
"""

import time
from dataclasses import dataclass

import numpy as np

from analysis.attention import relative_error
from circuits import circuit_parameters
from circuits.feedforward import feedforward_parameters
from circuits.layernorm import layernorm_parameters
from circuits.linear import linear_parameters
from circuits.protocol import SHORT_PROTOCOL
from models.parameters import ParameterError, ParameterSet
from transformer import bill, minilm
from transformer.executors import ALL_STAGES, DEFAULT_CODE, DEFAULT_KEY_CODE, SpikingExecutor
from transformer.forward import forward
from transformer.network import SpikingNetwork
from transformer.heads import KEEP_FOR_MAPS

#: The heads' protocol: the short windows at a 0.5 ms step (5x fewer steps than the default
#: 0.1 ms at the same spike counts; docs/model.md §9 checks the error stays at its bound).
HEAD_PROTOCOL = {**SHORT_PROTOCOL, "dt": "0.5*ms"}
#: The latency-coded heads' protocol (``circuits.exact_latency``): the code of every stage
#: (``models.encoders``: windows t_code = 10 ms of B = 1.05 at dt_enc = 0.05 ms, 200 levels) for the
#: query, key and value spikes and the output, a counting part of 100 ms (5 tau_read, so a read
#: forgets the last), the astrocyte's set point at 5 kHz of key spikes and tau_theta = 40 ms so that
#: theta settles within the read (measured on MiniLM layer 2 head 5: 0.057 from softmax, budget 0.060).
#: Its step dt is its own, not the rate heads' or the encoded stages' 0.5 ms
#: (``models.encoders.STAGE_CLOCK_PARAMETERS``): a regular key neuron at the 5 kHz set point fires
#: 0.5 times per step of 0.1 ms, its limit (``circuits.exact_latency.MAX_KEY_SPIKES_PER_STEP``).
HEAD_LATENCY_PROTOCOL = {"dt": "0.1*ms", "t_settle": "10*ms", "t_learn": "20*ms", "t_read": "110*ms", "R_key_target": "5*kHz",
                         "tau_read": "20*ms", "tau_theta": "40*ms"}
#: The latency heads' protocol under the one-spike key code (head option ``key_code="latency"``,
#: ``circuits.exact_latency``): the query's window (t_settle = t_code), a key window of 40 ms at
#: B_key = 1.1 (800 steps of dt_enc, 76 nats below the calibrated score top: layer 0 head 2's top is
#: 78, its queries' top scores >= 14 over the calibration corpus) and the output window t_code; no
#: counting part, no adenosine settling: a read of 60 ms instead of 120. A token's write takes one
#: latency window (t_learn = t_code: signed key encoders write k_t alone, no mirror), with one write
#: spike of its key neuron.
HEAD_ONE_SPIKE_PROTOCOL = {**HEAD_LATENCY_PROTOCOL, "t_learn": "10*ms", "t_read": "50*ms", "key_code_base": 1.1}
#: The heads' circuit options: 8 encoders per dimension (default 4) halve the ripple of the key
#: neurons' drive, whose curvature bias (E exp(v) > exp(E v)) is most of real heads' error above
#: the Poisson bound (docs/model.md §9).
HEAD_OPTIONS = {"encoders_per_dim": 8}
#: The circuits whose parameters a run sets, by the prefix that names them (``--set ffn.tau_m=5*ms``).
BLOCKS = {"head": "the exact-kernel attention heads", "ffn": "the feed-forward GELU blocks",
          "linear": "the encoded linear stages (qkv, and attn_out/ffn_out without their spiking source)",
          "layernorm": "the LayerNorm astrocyte circuits (residual sums; --boundaries spikes)"}


def block_parameters(overrides, astrocyte="minimal", head_code=DEFAULT_CODE, head_key_code=DEFAULT_KEY_CODE) -> dict:
    """Every block's full ParameterSet from ``overrides`` named ``BLOCK.NAME`` (e.g.
    ``ffn.tau_m``, ``head.tau_read``, ``linear.lin_enc_gain``), each checked by the block's own
    parameter table (name, unit, sign, time step); the heads start from :data:`HEAD_PROTOCOL`, or on
    the latency code (``head_code``) from :data:`HEAD_LATENCY_PROTOCOL`, and with the one-spike key
    code (``head_key_code="latency"``) from :data:`HEAD_ONE_SPIKE_PROTOCOL`. ValueError/ParameterError
    with one line for an unnamed block, an unknown block or parameter."""
    per_block = {block: {} for block in BLOCKS}
    for key, value in overrides.items():
        block, dot, name = key.partition(".")
        if not dot or block not in BLOCKS:
            raise ValueError(f"parameter {key!r} must name its block: {', '.join(b + '.NAME' for b in BLOCKS)}")
        per_block[block][name] = value
    protocol = HEAD_LATENCY_PROTOCOL if head_code == "latency" else HEAD_PROTOCOL
    if head_code == "latency" and head_key_code == "latency":
        protocol = HEAD_ONE_SPIKE_PROTOCOL
    makers = {"head": lambda o: circuit_parameters("exact", astrocyte, {**protocol, **o}),
              "ffn": feedforward_parameters, "linear": linear_parameters, "layernorm": layernorm_parameters}
    params = {}
    for block, made in makers.items():
        try:
            params[block] = made(per_block[block])
        except ParameterError as exc:
            raise ParameterError(f"{block}: {exc}") from None
    return params


@dataclass
class SpikingRun:
    """A run: per sentence the reference pass and the spiking pass (``transformer.forward.SentencePass``),
    the kept head results of the map layer (by sentence id), the stages on spikes and the wall time."""

    reference: list
    spiking: list
    maps: dict
    stages: tuple
    layers: tuple
    wall_seconds: float
    sentence_ids: list


def spiking_minilm(texts, stages=ALL_STAGES, layers=None, *, pool, sentence_ids=None, heads=None,
                   ffn_units=None, params=None, options=None, seed=0, spike_seed=None, map_layer=None,
                   buckets=None, codes=None, boundaries="numpy", block_layernorm=False, log=None) -> SpikingRun:
    """Run sentences through all-MiniLM-L6-v2 with chosen stages on spikes, against the NumPy model.

    The reference pass runs first; every circuit of the run is checked on it before anything is
    simulated.

    Parameters
    ----------
    texts : list of str
        The sentences.
    stages : tuple of str
        The stages on spikes in every chosen layer (``transformer.executors.ALL_STAGES``: ``qkv``,
        ``attention``, ``attn_out``, ``ffn``, ``ffn_out``; default all).
    layers : list of int, optional
        The layers whose stages run on spikes (default all).
    pool : circuits.runners.CircuitPool
        The device runner(s) the circuits run on.
    sentence_ids : list of int, optional
        Each text's index in its corpus (default 0, 1, ...: the circuits' seeds derive from it, so
        a sentence gives the same result in any batch).
    heads, ffn_units : optional
        The heads and the number of FFN units on spikes (default all; see
        ``transformer.executors.SpikingExecutor``).
    params : dict, optional
        Per block ParameterSets or overrides (:func:`block_parameters`; default its defaults).
    options : dict, optional
        Per block builder options (default ``{"head": HEAD_OPTIONS}``).
    seed, spike_seed : int, optional
        The seeds the circuits' seeds derive from.
    map_layer : int, optional
        The layer whose head results the run keeps for attention maps (:func:`attention_maps`).
    buckets : tuple of int, optional
        Length buckets (``circuits.protocol.bucket_length``; default none).
    codes : dict, optional
        Each stage's code, ``rate`` or ``latency`` (``transformer.executors.parse_codes``; a stage not
        named: ``transformer.executors.DEFAULT_CODE``).
    boundaries : str
        ``numpy``: the stages joined by NumPy's residual sums and LayerNorms (``transformer.forward``);
        ``spikes``: one network of cells from token to embedding (``transformer.network``; every stage
        on spikes in the latency code with one-spike keys, ``transformer.configuration.RunConfig``
        checks it), the heads' astrocytes blocked if the heads' options say so.
    block_layernorm : bool
        With ``boundaries="spikes"``: the LayerNorm astrocytes held at their mean signal.
    log : callable, optional
        Takes progress lines.

    Returns
    -------
    SpikingRun
        Per sentence the reference and the spiking pass (``transformer.forward.SentencePass``),
        the kept head results, the stages and layers on spikes and the wall time.
    """
    t0 = time.perf_counter()
    options = {"head": HEAD_OPTIONS} if options is None else options
    if params is None:
        params = block_parameters({}, head_code=(codes or {}).get("attention", DEFAULT_CODE),
                                  head_key_code=options.get("head", {}).get("key_code", DEFAULT_KEY_CODE))
    sentence_ids = list(range(len(texts))) if sentence_ids is None else list(sentence_ids)
    reference = forward(texts, sentence_ids=sentence_ids)
    if boundaries == "spikes":
        head = options.get("head", {})
        blocked = ("heads",) * bool(head.get("block_astrocyte")) + ("layernorm",) * bool(block_layernorm)
        network = SpikingNetwork(pool, params, head_options=head, seed=seed, spike_seed=spike_seed, buckets=buckets,
                                 block_astrocyte=blocked, map_layer=map_layer, log=log)
        spiking = network.run(texts, sentence_ids, reference)
        return SpikingRun(reference, spiking, network.maps, ALL_STAGES, tuple(range(len(spiking[0].layers))),
                          time.perf_counter() - t0, sentence_ids)
    executor = SpikingExecutor(pool, stages, layers=layers, heads=heads, ffn_units=ffn_units, params=params,
                               options=options, seed=seed, spike_seed=spike_seed, map_layer=map_layer,
                               buckets=buckets, codes=codes, log=log)
    executor.check(reference)
    say = log or (lambda line: None)

    def progress(line):
        elapsed = time.perf_counter() - t0
        say(f"{line}; {elapsed:.0f} s elapsed")

    spiking = forward(texts, executor, sentence_ids=sentence_ids, log=progress)
    return SpikingRun(reference, spiking, executor.maps, executor.stages, executor.layers, time.perf_counter() - t0,
                      sentence_ids)


def sentence_records(run: SpikingRun) -> list:
    """One JSON-ready record per sentence of a run: ``id``, text, tokens, both embeddings, their
    cosine, per layer the hidden-state error and every spiking stage's record (``layers``), and the
    raw stage records the bill adds up (``stages``: [layer, stage, record])."""
    records = []
    for sentence_id, s, r in zip(run.sentence_ids, run.spiking, run.reference):
        layers, raw = [], []
        for n, (layer, ref) in enumerate(zip(s.layers, r.layers)):
            stages = {name: record for block in (layer.attention, layer.ffn) for name, record in block.stages.items()}
            raw.extend([n, name, record] for name, record in stages.items())
            spiking = {name: _public(record) for name, record in stages.items() if record["on"] == "spikes"}
            layers.append({"layer": n, "spiking": list(spiking), "rel_err_hidden": relative_error(layer.output, ref.output),
                           **spiking})
        raw.extend(list(entry) for entry in s.edge_stages)
        records.append({"id": int(sentence_id), "text": s.text, "tokens": s.tokens,
                        "cosine": float(s.embedding @ r.embedding), "embedding": s.embedding.tolist(),
                        "reference_embedding": r.embedding.tolist(), "layers": layers, "stages": raw})
    return records


def run_metrics(records, stages, wall_seconds, peak_rss_mb=None) -> dict:
    """metrics.json from the sentences' records (:func:`sentence_records`, in corpus order): the
    summary, the bill (totals, per layer with its stages, per stage), per sentence its cosine,
    hidden-state error after every layer and every spiking stage's record, and the similarity matrices."""
    spiking = np.array([r["embedding"] for r in records])
    reference = np.array([r["reference_embedding"] for r in records])
    deviation = np.abs(spiking @ spiking.T - reference @ reference.T)
    sentences = [{k: r[k] for k in ("id", "text", "tokens", "cosine", "layers")} for r in records]
    heads = [h for s in sentences for layer in s["layers"] for h in layer.get("attention", {}).get("heads", [])]
    ffns = [layer["ffn"] for s in sentences for layer in s["layers"] if "ffn" in layer]
    the_bill = bill.bill([tuple(entry) for r in records for entry in r["stages"]])
    cosines = [s["cosine"] for s in sentences]
    summary = {
        "n_sentences": len(sentences),
        "stages_on_spikes": list(stages),
        "cosine_min": float(min(cosines)),
        "cosine_median": float(np.median(cosines)),
        "cosine_mean": float(np.mean(cosines)),
        "similarity_deviation_max": float(deviation.max()),
        "n_spiking_heads": len(heads),
        "n_spiking_ffn_blocks": len(ffns),
        "head_rel_err_spike_vs_softmax_median": float(np.median([h["rel_err_spike_vs_softmax"] for h in heads])) if heads else None,
        "head_spike_vs_rate_over_bound_mean": float(np.mean([h["spike_vs_rate_over_bound"] for h in heads])) if heads else None,
        "ffn_rel_err_output_mean": float(np.mean([f["rel_err_output"] for f in ffns])) if ffns else None,
        "total_spikes": the_bill["spikes"],
        "numpy_ops": the_bill["numpy_ops"],
        "fraction_on_synapses": the_bill["fraction_on_synapses"],
        "wall_seconds": wall_seconds,
        "wall_seconds_per_sentence": wall_seconds / len(sentences),
        "peak_rss_mb": peak_rss_mb,
    }
    return {"summary": summary, "bill": {**the_bill, "per_sentence": bill.per_sentence(the_bill, len(sentences))},
            "sentences": sentences, "similarity_spiking": spiking @ spiking.T,
            "similarity_reference": reference @ reference.T}


def _public(record) -> dict:
    """A stage record as metrics.json keeps it: the mean firing rate of each population (Hz)
    instead of its neuron-seconds."""
    rates = {pop: record["spikes"][pop] / seconds for pop, seconds in record["neuron_seconds"].items() if seconds}
    return {**{k: v for k, v in record.items() if k != "neuron_seconds"}, "mean_rate_hz": rates}


def parameters_record(params) -> dict:
    """Every block's parameters as params.json records them."""
    return {block: (p.to_json() if isinstance(p, ParameterSet) else p) for block, p in params.items()}


def attention_maps(run: SpikingRun, sentence_id=0) -> list:
    """The map layer's heads of one sentence (if the run holds it): ``head``, ``true`` and
    ``spike`` attention maps."""
    from transformer.heads import attention_map_metrics

    maps = []
    for head, result in sorted(run.maps.get(sentence_id, {}).items()):
        metrics = attention_map_metrics(result)
        maps.append({"head": head, "true": metrics["true_map"], "spike": metrics["spike_map"]})
    return maps


def check_texts(texts) -> list:
    """The sentences, each checked against the tokenizer and the circuits' longest input."""
    from transformer.heads import MAX_TOKENS

    if not texts or not all(t.strip() for t in texts):
        raise ValueError("no sentence given (empty --text or --texts file)")
    for text in texts:
        n_tokens = len(minilm.tokenize(text)[0])
        if n_tokens > MAX_TOKENS:
            raise ValueError(f"{text[:40]!r}... has {n_tokens} tokens; the circuits here take at most {MAX_TOKENS}")
    return [t.strip() for t in texts]
