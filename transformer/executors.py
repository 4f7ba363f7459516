"""Executors of a layer's blocks: the NumPy reference, and spiking circuits on any runner.

An executor takes one layer's inputs for a batch of sentences and returns, per sentence, the
block's output before the residual (``BlockOutput``), its intermediates and one record per stage
(``transformer.bill``: what the stage spent, and for spiking stages its errors against their noise
budgets). Stages (``transformer.bill.STAGES``)::

    attention block:  qkv  -> attention -> attn_out      feed-forward block:  ffn -> ffn_out

On spikes (``SpikingExecutor``, docs/model.md §8-§10):

* ``qkv``: the layer input's regular encoders drive W_QKV's synapses onto accumulating units
  (``circuits.linear``).
* ``attention``: every head on the exact-kernel neuron-astrocyte circuit (``circuits.head``).
* ``attn_out``: W_O's synapses onto accumulating units, driven by the heads' value neurons (with
  ``attention`` on spikes in the same code) or by encoders of the context (the heads' decoded
  output, or NumPy's).
* ``ffn``: encoders, W_1's synapses and spiking GELU populations (``circuits.feedforward``).
* ``ffn_out``: W_2's synapses onto accumulating units, driven by the GELU neurons (with ``ffn`` on
  spikes in the same code) or by encoders of the activations (decoded, or NumPy's).

Each stage's inputs are carried by a code (``codes``; ``circuits.codes``): the rate code or the
latency code (one spike per value). A latency code's top of range is the stage's calibrated one
(``transformer.calibration``), never read off the sentence. W_O (W_2) in a code other than its
source's is a stage of its own on encoders of the source's decoded output.

A block split over several circuits (heads, slices of units) adds their accumulated partial
outputs; the bias current flows in the first of them.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from analysis.attention import relative_error
from analysis.spikes import error_against_budget
from circuits.feedforward import activation_error, feedforward_spec, output_error
from circuits.exact_latency import check_key_code
from circuits.head import head_spec
from circuits.linear import linear_spec
from circuits.protocol import bucket_length
from models.encoders import CODES
from models.feedforward import gelu
from transformer import bill, minilm

#: Stages that ``--spiking all`` runs on spikes, in order.
ALL_STAGES = tuple(bill.STAGES)
#: The code of every stage a run does not name (``--code``): the latency code, one spike per value
#: (docs/model.md §11); the rate code stays selectable per stage as the baseline it replaced.
DEFAULT_CODE = "latency"
#: The latency heads' key code unless a run names another (head option ``key_code``): one spike per
#: key and read whose efficacy carries the exponential (``circuits.exact_latency``, docs/model.md §3);
#: ``"regular"``, keys firing regularly at an exponential rate, stays selectable.
DEFAULT_KEY_CODE = "latency"
#: Output units of W_QKV (1152) and hidden units of the FFN (1536) are split into this many
#: circuits, simulated in parallel (each holds a slice of the outputs).
QKV_SLICES = 2
FFN_SLICES = 2
#: The heads' metrics kept per layer and sentence.
HEAD_METRICS = ("rel_err_spike_vs_softmax", "rel_err_spike_vs_rate", "poisson_bound", "spike_vs_rate_over_bound",
                "bound_tolerance_ratio", "total_spikes", "wall_seconds")


@dataclass
class BlockOutput:
    """A block's output before the residual (L x H), its intermediates (``qkv`` L x 3H, ``context``
    n_heads x L x d; ``activations`` L x I) and one record per stage."""

    output: np.ndarray
    parts: dict
    stages: dict = field(default_factory=dict)


class Executor(ABC):
    """Runs the attention and feed-forward blocks of one layer for a batch of sentences."""

    @abstractmethod
    def attention(self, layer, hidden, sentence_ids) -> list:
        """Per sentence (input ``hidden`` L x H): context W_O + b_O as a :class:`BlockOutput`."""

    @abstractmethod
    def ffn(self, layer, h, sentence_ids) -> list:
        """Per sentence (input ``h`` L x H): W_2 GELU(W_1 h + b_1) + b_2 as a :class:`BlockOutput`."""


class NumPyExecutor(Executor):
    """The model in float64 NumPy: the reference every spiking run is compared with."""

    def attention(self, layer, hidden, sentence_ids) -> list:
        model, w = minilm.load_model(), minilm.layer_weights(layer)
        out = []
        for x in hidden:
            qkv = minilm.dense(x, w["w_qkv"], w["b_qkv"])
            context = minilm.attention_context(*minilm.split_heads(qkv))
            y = minilm.dense(minilm.concat_heads(context), w["w_o"], w["b_o"])
            out.append(BlockOutput(y, {"qkv": qkv, "context": context},
                                   {s: bill.numpy_stage(s, len(x), model) for s in ("qkv", "attention", "attn_out")}))
        return out

    def ffn(self, layer, h, sentence_ids) -> list:
        model, w = minilm.load_model(), minilm.layer_weights(layer)
        out = []
        for x in h:
            activations = gelu(minilm.dense(x, w["w_1"], w["b_1"]))
            y = minilm.dense(activations, w["w_2"], w["b_2"])
            out.append(BlockOutput(y, {"activations": activations},
                                   {s: bill.numpy_stage(s, len(x), model) for s in ("ffn", "ffn_out")}))
        return out


def parse_stages(text) -> tuple:
    """``--spiking``: 'all', 'none' or a comma-separated subset of the stages (``attention,ffn``);
    ValueError with one line otherwise."""
    text = text.strip()
    if text == "all":
        return ALL_STAGES
    if text == "none":
        return ()
    stages = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in stages if s not in ALL_STAGES]
    if not stages or unknown:
        raise ValueError(f"--spiking takes 'all', 'none' or a comma-separated subset of {', '.join(ALL_STAGES)}, "
                         f"got {text!r}")
    return tuple(s for s in ALL_STAGES if s in stages)


def parse_codes(text) -> dict:
    """``--code``: 'rate', 'latency' (every stage) or comma-separated STAGE=CODE pairs
    (``attention=rate,ffn=rate``; the others :data:`DEFAULT_CODE`). Returns the code of every stage; ValueError with
    one line otherwise. W_O and W_2 driven by the heads' or the FFN's neurons take their source's
    code (:meth:`SpikingExecutor.driven_by_source`)."""
    text = text.strip()
    if text in CODES:
        return {s: text for s in ALL_STAGES}
    codes = {s: DEFAULT_CODE for s in ALL_STAGES}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        stage, eq, code = (part.strip() for part in pair.partition("="))
        if not eq or stage not in ALL_STAGES or code not in CODES:
            raise ValueError(f"--code takes {' or '.join(CODES)}, or STAGE=CODE pairs with a stage of "
                             f"{', '.join(ALL_STAGES)}, got {text!r}")
        codes[stage] = code
    return codes


def circuit_seed(seed, *indices) -> int:
    """An independent integer seed for one circuit (sentence, layer, head or slice) of a run."""
    return int(np.random.SeedSequence([seed, *indices]).generate_state(1)[0])


#: The stage whose neurons can drive an output projection's synapses.
_SOURCE = {"attn_out": "attention", "ffn_out": "ffn"}

#: Offsets of each stage's circuits in the seed tree (heads use 0-11, as before the other stages existed).
_SEED_OFFSET = {"ffn": 100, "qkv": 200, "attn_out": 300, "ffn_out": 400}


class SpikingExecutor(Executor):
    """Runs ``stages`` of ``layers`` (default all) on spiking circuits of ``pool``
    (a ``circuits.runners.CircuitPool``), the rest in NumPy.

    ``heads`` (default all) and ``ffn_units`` (default all: the first ``ffn_units`` hidden units)
    limit what of a spiking layer runs on spikes. ``params``/``options``: per block (``head``,
    ``ffn``, ``linear``) parameter overrides (or ParameterSets) and builder options (the heads' may
    name their ``key_code``, default :data:`DEFAULT_KEY_CODE`, on the latency code only). ``seed`` and
    ``spike_seed`` seed every circuit through :func:`circuit_seed`. ``map_layer``: keep that layer's
    head results (``self.maps``: per sentence id, the head results). ``buckets``: length buckets
    (``circuits.protocol.bucket_length``): every circuit of a sentence runs padded to its bucket, so a
    corpus compiles one binary per bucket and circuit kind (None: each sentence at its own length).
    ``codes``: each stage's code (:func:`parse_codes`; a stage not named: :data:`DEFAULT_CODE`).
    ``log``: progress lines.
    """

    def __init__(self, pool, stages=ALL_STAGES, *, layers=None, heads=None, ffn_units=None, params=None,
                 options=None, seed=0, spike_seed=None, map_layer=None, buckets=None, codes=None, log=None):
        model = minilm.load_model()
        self.pool, self.stages = pool, tuple(stages)
        self.layers = tuple(range(model.n_layers)) if layers is None else tuple(layers)
        self.heads = tuple(range(model.n_heads)) if heads is None else tuple(heads)
        self.ffn_units = model.intermediate_size if ffn_units is None else int(ffn_units)
        self.params = {block: (params or {}).get(block, {}) for block in ("head", "ffn", "linear")}
        self.options = {block: dict((options or {}).get(block, {})) for block in ("head", "ffn", "linear")}
        self.seed, self.spike_seed = seed, spike_seed
        self.map_layer, self.maps = map_layer, {}
        self.buckets = None if buckets is None else tuple(buckets)
        self.codes = {s: DEFAULT_CODE for s in ALL_STAGES} | dict(codes or {})
        named = self.options["head"].pop("key_code", None)
        if named is not None:
            check_key_code(named, self.codes["attention"])
        self.key_code = named or DEFAULT_KEY_CODE
        self.say = log or (lambda line: None)

    def pad_to(self, n_tokens) -> dict:
        """The circuits' ``pad_to`` option for a sentence of ``n_tokens`` (none without buckets)."""
        return {} if self.buckets is None else {"pad_to": bucket_length(n_tokens, self.buckets)}

    def on_spikes(self, layer, stage) -> bool:
        return layer in self.layers and stage in self.stages

    def code_options(self, stage, layer, **tops) -> dict:
        """A stage's code option and, on the latency code, its tops of range (``tops``: option name
        -> the calibrated input whose range it takes, ``transformer.calibration``). The rate code
        has no range."""
        code = self.codes[stage]
        if code == "rate":
            return {"code": code}
        return {"code": code, **{option: minilm.code_range(layer, name) for option, name in tops.items()}}

    def driven_by_source(self, layer, stage) -> bool:
        """Whether an output projection (``attn_out``, ``ffn_out``) runs on its spiking source's own
        neurons (the heads' value neurons, the FFN's GELU neurons): both on spikes, in one code.
        Otherwise, on spikes, it is a linear stage of its own whose encoders carry the source's
        decoded output in the projection's code."""
        source = _SOURCE[stage]
        return (self.on_spikes(layer, stage) and self.on_spikes(layer, source)
                and self.codes[stage] == self.codes[source])

    def _seeds(self, *indices) -> dict:
        return {"seed": circuit_seed(self.seed, *indices),
                "spike_seed": None if self.spike_seed is None else circuit_seed(self.spike_seed, *indices)}

    # --- specs: built (and so checked) before anything is simulated ---

    def linear_specs(self, stage, layer, sentence_id, x, w, b, slices=1) -> list:
        """The linear circuits of one stage of one sentence: output units split into ``slices``."""
        parts = np.array_split(np.arange(len(w)), slices)
        return [linear_spec(x, w[part], b[part], **self.code_options(stage, layer, x_top=stage),
                            params=self.params["linear"], **self.pad_to(len(x)),
                            **self._seeds(sentence_id, layer, _SEED_OFFSET[stage] + n), **self.options["linear"])
                for n, part in enumerate(parts)]

    def head_specs(self, layer, sentence_id, q, k, v) -> list:
        """The spiking heads of one sentence, with W_O on their value neurons if ``attn_out`` spikes."""
        model, w = minilm.load_model(), minilm.layer_weights(layer)
        specs = []
        for n, head in enumerate(self.heads):
            projection = {}
            if self.driven_by_source(layer, "attn_out"):
                columns = slice(head * model.head_dim, (head + 1) * model.head_dim)
                projection = {"w_out": w["w_o"][:, columns], "b_out": w["b_o"] if n == 0 else np.zeros(model.hidden_size)}
            # The one-spike key code takes its head's calibrated score top.
            keys = {}
            if self.codes["attention"] == "latency":
                keys = {"key_code": self.key_code}
                if self.key_code == "latency":
                    keys["score_top"] = minilm.code_range(layer, "attention_score", head)
            specs.append(head_spec(q[head], k[head], v[head], "exact", scale=minilm.head_scale(),
                                   **self.code_options("attention", layer, x_top="attention_qk", v_top="attention_v",
                                                       y_top="attn_out"),
                                   params=self.params["head"], **self.pad_to(q.shape[1]),
                                   **self._seeds(sentence_id, layer, head),
                                   **self.options["head"], **projection, **keys))
        return specs

    def ffn_specs(self, layer, sentence_id, h) -> list:
        """The FFN slices of one sentence, with W_2 on their GELU neurons if ``ffn_out`` spikes."""
        w = minilm.layer_weights(layer)
        slices = np.array_split(np.arange(self.ffn_units), min(FFN_SLICES, self.ffn_units))
        specs = []
        for n, part in enumerate(slices):
            projection = {}
            if self.driven_by_source(layer, "ffn_out"):
                projection = {"w_out": w["w_2"][:, part], "b_out": w["b_2"] if n == 0 else np.zeros(len(w["b_2"]))}
            specs.append(feedforward_spec(h, w["w_1"][part], w["b_1"][part],
                                          **self.code_options("ffn", layer, x_top="ffn", g_top="ffn_out"),
                                          params=self.params["ffn"], **self.pad_to(len(h)),
                                          **self._seeds(sentence_id, layer, _SEED_OFFSET["ffn"] + n),
                                          **self.options["ffn"], **projection))
        return specs

    def check(self, reference) -> None:
        """Build (and so check) every circuit of a run on the reference pass's inputs (a list of
        ``transformer.forward.SentencePass``) before anything is simulated; ValueError/ParameterError
        with one line."""
        w_cache = {}
        for sentence_id, sentence in enumerate(reference):
            for layer in self.layers:
                w = w_cache.setdefault(layer, minilm.layer_weights(layer))
                step = sentence.layers[layer]
                if self.on_spikes(layer, "qkv"):
                    self.linear_specs("qkv", layer, sentence_id, step.input, w["w_qkv"], w["b_qkv"])
                if self.on_spikes(layer, "attention"):
                    self.head_specs(layer, sentence_id, *minilm.split_heads(step.attention.parts["qkv"]))
                if self.on_spikes(layer, "attn_out") and not self.driven_by_source(layer, "attn_out"):
                    self.linear_specs("attn_out", layer, sentence_id, minilm.concat_heads(step.attention.parts["context"]),
                                      w["w_o"], w["b_o"])
                if self.on_spikes(layer, "ffn"):
                    self.ffn_specs(layer, sentence_id, step.h)
                if self.on_spikes(layer, "ffn_out") and not self.driven_by_source(layer, "ffn_out"):
                    self.linear_specs("ffn_out", layer, sentence_id, step.ffn.parts["activations"], w["w_2"], w["b_2"])

    # --- blocks ---

    def _run_linear(self, stage, layer, inputs, sentence_ids, w, b, slices=1) -> tuple:
        """A linear stage of every sentence on spikes: (outputs, stage records)."""
        model = minilm.load_model()
        specs = [self.linear_specs(stage, layer, sid, x, w, b, slices) for sid, x in zip(sentence_ids, inputs)]
        results = self.pool.run([s for group in specs for s in group],
                                log=lambda line: self.say(f"layer {layer} {stage}: circuits {line}"))
        outputs, records = [], []
        for n, x in enumerate(inputs):
            mine = results[n * slices:(n + 1) * slices]
            y = np.concatenate([r.y_spike for r in mine], axis=1)
            ideal = np.concatenate([r.y_rate for r in mine], axis=1)
            variance = np.concatenate([r.variance for r in mine], axis=1)
            record = bill.spiking_stage(stage, len(x), model, [r.circuit for r in mine], decoded=y.size)
            record.update(error_against_budget(y, ideal, variance, "product"),
                          wall_seconds=sum(r.wall_seconds for r in mine))
            outputs.append(y)
            records.append(record)
        return outputs, records

    def attention(self, layer, hidden, sentence_ids) -> list:
        model, w = minilm.load_model(), minilm.layer_weights(layer)
        reference = NumPyExecutor().attention(layer, hidden, sentence_ids)
        if self.on_spikes(layer, "qkv"):
            qkv, qkv_records = self._run_linear("qkv", layer, hidden, sentence_ids, w["w_qkv"], w["b_qkv"], QKV_SLICES)
        else:
            qkv, qkv_records = [r.parts["qkv"] for r in reference], [r.stages["qkv"] for r in reference]
        qkv_heads = [minilm.split_heads(x) for x in qkv]
        contexts = [minilm.attention_context(*parts) for parts in qkv_heads]
        outputs = [None] * len(hidden)
        attention_records = [bill.numpy_stage("attention", len(x), model) for x in hidden]
        out_records = [bill.numpy_stage("attn_out", len(x), model) for x in hidden]
        if self.on_spikes(layer, "attention"):
            specs = [s for sid, parts in zip(sentence_ids, qkv_heads) for s in self.head_specs(layer, sid, *parts)]
            results = self.pool.run(specs, log=lambda line: self.say(f"layer {layer} attention: heads {line}"))
            n_heads = len(self.heads)
            for n, x in enumerate(hidden):
                mine = results[n * n_heads:(n + 1) * n_heads]
                for head, result in zip(self.heads, mine):
                    contexts[n][head] = result.y_spike
                numpy_heads = model.n_heads - n_heads
                core_macs = bill.stage_macs("attention", len(x), model) * numpy_heads // model.n_heads
                # The contexts are read as numbers unless W_O runs on the value neurons' spikes.
                decoded = 0 if self.driven_by_source(layer, "attn_out") else len(x) * len(mine) * model.head_dim
                attention_records[n] = bill.spiking_stage("attention", len(x), model, [r.circuit for r in mine],
                                                          numpy_macs=core_macs, decoded=decoded)
                attention_records[n]["heads"] = [{"head": head, **{k: r.metrics[k] for k in HEAD_METRICS}}
                                                 for head, r in zip(self.heads, mine)]
                if layer == self.map_layer:
                    self.maps[sentence_ids[n]] = dict(zip(self.heads, mine))
                if self.driven_by_source(layer, "attn_out"):
                    # The spiking heads' value neurons drove W_O's synapses; the other heads' part is NumPy.
                    spiking = sum(r.y_projected for r in mine)
                    rest = [h for h in range(model.n_heads) if h not in self.heads]
                    columns = np.concatenate([np.arange(h * model.head_dim, (h + 1) * model.head_dim) for h in rest]
                                             ) if rest else np.arange(0)
                    outputs[n] = spiking + contexts[n].transpose(1, 0, 2).reshape(len(x), -1)[:, columns] @ w["w_o"][:, columns].T
                    out_records[n] = bill.spiking_stage("attn_out", len(x), model, [],
                                                        numpy_macs=len(x) * len(columns) * model.hidden_size,
                                                        decoded=len(x) * model.hidden_size)
                    _book_projection_events(attention_records[n], out_records[n], mine, "out_synapses")
        if self.on_spikes(layer, "attn_out") and not self.driven_by_source(layer, "attn_out"):
            flat = [minilm.concat_heads(c) for c in contexts]
            outputs, out_records = self._run_linear("attn_out", layer, flat, sentence_ids, w["w_o"], w["b_o"])
        outputs = [minilm.dense(minilm.concat_heads(c), w["w_o"], w["b_o"]) if y is None else y
                   for c, y in zip(contexts, outputs)]
        blocks = []
        for n, x in enumerate(hidden):
            stages = {"qkv": qkv_records[n], "attention": attention_records[n], "attn_out": out_records[n]}
            if stages["attention"]["on"] == "spikes" or stages["qkv"]["on"] == "spikes":
                stages["attention"]["rel_err_context"] = relative_error(contexts[n], reference[n].parts["context"])
            stages["attn_out"]["rel_err_output"] = relative_error(outputs[n], reference[n].output)
            blocks.append(BlockOutput(outputs[n], {"qkv": qkv[n], "context": contexts[n]}, stages))
        return blocks

    def ffn(self, layer, h, sentence_ids) -> list:
        model, w = minilm.load_model(), minilm.layer_weights(layer)
        reference = NumPyExecutor().ffn(layer, h, sentence_ids)
        activations = [r.parts["activations"].copy() for r in reference]
        ffn_records = [r.stages["ffn"] for r in reference]
        out_records = [r.stages["ffn_out"] for r in reference]
        outputs = [None] * len(h)
        if self.on_spikes(layer, "ffn"):
            per_sentence = [self.ffn_specs(layer, sid, x) for sid, x in zip(sentence_ids, h)]
            n_slices = len(per_sentence[0])
            results = self.pool.run([s for group in per_sentence for s in group],
                                    log=lambda line: self.say(f"layer {layer} FFN: blocks {line}"))
            units = self.ffn_units
            for n, x in enumerate(h):
                mine = results[n * n_slices:(n + 1) * n_slices]
                ideal = activations[n][:, :units].copy()
                activations[n][:, :units] = np.concatenate([r.g_spike for r in mine], axis=1)
                variance = np.concatenate([r.variance for r in mine], axis=1)
                numpy_units = model.intermediate_size - units
                decoded = 0 if self.driven_by_source(layer, "ffn_out") else len(x) * units
                record = bill.spiking_stage("ffn", len(x), model, [r.circuit for r in mine],
                                            numpy_macs=len(x) * model.hidden_size * numpy_units, decoded=decoded)
                record.update(units=units, **activation_error(activations[n][:, :units], ideal, variance),
                              rel_err_output=relative_error(activations[n][:, :units] @ w["w_2"][:, :units].T,
                                                            ideal @ w["w_2"][:, :units].T),
                              poisson_bound_output=output_error(variance, w["w_2"][:, :units], ideal @ w["w_2"][:, :units].T),
                              wall_seconds=sum(r.wall_seconds for r in mine))
                ffn_records[n] = record
                if self.driven_by_source(layer, "ffn_out"):
                    # The spiking slices' GELU neurons drove W_2's synapses; the other units' part is NumPy.
                    outputs[n] = sum(r.y_spike for r in mine) + activations[n][:, units:] @ w["w_2"][:, units:].T
                    out_records[n] = bill.spiking_stage("ffn_out", len(x), model, [],
                                                        numpy_macs=len(x) * numpy_units * model.hidden_size,
                                                        decoded=len(x) * model.hidden_size)
                    _book_projection_events(record, out_records[n], mine, "ffn_out_synapses")
        if self.on_spikes(layer, "ffn_out") and not self.driven_by_source(layer, "ffn_out"):
            outputs, out_records = self._run_linear("ffn_out", layer, activations, sentence_ids, w["w_2"], w["b_2"])
        outputs = [minilm.dense(g, w["w_2"], w["b_2"]) if y is None else y for g, y in zip(activations, outputs)]
        blocks = []
        for n in range(len(h)):
            stages = {"ffn": ffn_records[n], "ffn_out": out_records[n]}
            stages["ffn_out"]["rel_err_output"] = relative_error(outputs[n], reference[n].output)
            blocks.append(BlockOutput(outputs[n], {"activations": activations[n]}, stages))
        return blocks


def _book_projection_events(source_record, out_record, results, prefix) -> None:
    """Move the events of an output projection run inside another stage's circuits (W_O in the
    heads', W_2 in the FFN's: Synapses named ``<prefix>*``) from that stage's record to the
    projection's own."""
    for result in results:
        moved = sum(n for name, n in result.circuit.synaptic_events().items() if name.startswith(prefix))
        source_record["synaptic_events"] -= moved
        out_record["synaptic_events"] += moved
