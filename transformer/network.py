"""all-MiniLM-L6-v2 as one network of cells, from token to embedding (docs/model.md §12).

Every stage's output travels to the next stage as spikes: the stages' latency emitters fire, their
spikes are recorded (``circuits.codes.SpikeTrain``) and replayed in the next stage's circuit, where
they reach its synapses as the emitters' own would. No hidden state is decoded to numbers between
the two edges of the network::

    embedding sum e (float, the edge)  --encoders-->  LayerNorm astrocyte circuit  --> n_0
    every layer:   n --W_QKV diag(gamma)--> q, k, v emitters --> 12 heads --> context emitters
                   context --W_O--+                                          (value neurons)
                   n --gamma------+--> z = residual sum --> LayerNorm astrocyte --> n_1
                   n_1 --W_1 diag(gamma_1)--> GELU emitters --W_2--+
                   n_1 --gamma_1-----------------------------------+--> LayerNorm astrocyte --> n_2
    pooled embedding (float, the edge): mean over tokens of gamma n + beta, L2-normalised

A LayerNorm circuit (``circuits.layernorm``) emits n = (z - mu) / sigma; its learned gain gamma and
bias beta act downstream as synaptic gains (the next projections' weights times gamma, the residual
synapses' gamma) and constant currents (the next biases plus W beta, the next residual sum's beta):
the same arithmetic, on synapses. The residual is convergence: the block output's spikes (through
W_O or W_2) and the block input's spikes (through gamma) reach the same accumulating units.

What stays in NumPy: the embedding lookup and sum (the input edge, encoded once) and the mean over
tokens of the last layer's spikes with the final L2 normalisation (the output edge). Hidden states
are also decoded from the trains for the run's diagnostics (errors per layer against the reference
pass), never fed back.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from analysis.attention import relative_error
from circuits.codes import joined
from circuits.exact_latency import emitted_context
from circuits.feedforward import feedforward_spec
from circuits.head import head_spec
from circuits.layernorm import layernorm_spec
from circuits.linear import linear_spec
from circuits.protocol import bucket_length
from transformer import bill, minilm
from transformer.executors import FFN_SLICES, HEAD_METRICS, BlockOutput, circuit_seed
from transformer.forward import LayerPass, SentencePass
from transformer.heads import KEEP_FOR_MAPS

#: Which astrocytes ``--block-astrocyte`` can hold at their mean signal: the heads' (the attention's
#: normaliser) and the LayerNorms' (the gain that tracks 1/sigma).
ASTROCYTE_ROLES = ("heads", "layernorm")
#: Seed offsets of the network's circuits (the heads keep 0-11 as in ``transformer.executors``).
_SEED = {"qkv": 200, "ffn": 100, "ln1": 500, "ln2": 600, "embedding": 700, "readout": 800}


@dataclass
class NetworkPass(SentencePass):
    """A sentence through the network: as ``transformer.forward.SentencePass`` (every hidden state
    decoded from its spikes, for diagnostics), plus the stage records of the edges' circuits
    (``edge_stages``: the embedding LayerNorm; the language-model head) and what the output edge
    reads: the pooled embedding, or the logits (L x V) of a model with a readout."""

    edge_stages: list = field(default_factory=list)
    pooled: np.ndarray | None = None
    logits: np.ndarray | None = None

    @property
    def embedding(self) -> np.ndarray:
        return self.pooled


def _affine(train, gamma, beta):
    """What a LayerNorm's train stands for downstream, gamma n + beta (a diagnostic decode)."""
    return gamma * train.values() + beta


class SpikingNetwork:
    """Runs sentences through the whole model on spiking circuits of ``pool``, one stage of every
    sentence at a time (the circuits of a stage run in parallel). ``params``: per block ParameterSets
    (``head``, ``ffn``, ``linear``, ``layernorm``); ``head_options``: the heads' builder options;
    ``block_astrocyte``: the astrocyte roles held at their mean (:data:`ASTROCYTE_ROLES`);
    ``buckets``: length buckets; ``map_layer``: keep that layer's head results (``self.maps``)."""

    def __init__(self, pool, params, *, model=None, head_options=None, seed=0, spike_seed=None, buckets=None,
                 block_astrocyte=(), map_layer=None, log=None):
        unknown = set(block_astrocyte) - set(ASTROCYTE_ROLES)
        if unknown:
            raise ValueError(f"block_astrocyte takes {', '.join(ASTROCYTE_ROLES)}, got {sorted(unknown)}")
        self.pool, self.params, self.seed, self.spike_seed = pool, params, seed, spike_seed
        self.model = minilm.architecture() if model is None else model
        eps = float(params["layernorm"]["ln_eps"])
        if eps != self.model.layer_norm_eps:
            raise ValueError(f"layernorm.ln_eps = {eps:g} but {self.model.name}'s LayerNorms use "
                             f"{self.model.layer_norm_eps:g}")
        self.head_options = {k: v for k, v in (head_options or {}).items()
                             if k not in ("encoders_per_dim", "key_code", "block_astrocyte")}
        self.buckets, self.blocked, self.map_layer = buckets, tuple(block_astrocyte), map_layer
        self.maps = {}
        self.say = log or (lambda line: None)

    def _seeds(self, *indices) -> dict:
        return {"seed": circuit_seed(self.seed, *indices),
                "spike_seed": None if self.spike_seed is None else circuit_seed(self.spike_seed, *indices)}

    def _pad(self, n_tokens) -> dict:
        return {} if self.buckets is None else {"pad_to": bucket_length(n_tokens, self.buckets)}

    def run_stage(self, specs, what, keep):
        """Run one stage's circuits on the pool, a progress line per circuit (``what``: the stage)."""
        return self.pool.run(specs, log=lambda line: self.say(f"{what}: circuits {line}"), keep=keep)

    # --- the stages: specs of one sentence ---

    def layernorm_specs(self, name, layer, sentence_id, sources, bias, n_tokens, x_top=None) -> list:
        """The LayerNorm circuit ``name`` (``ln1``, ``ln2`` of ``layer``; ``embedding``) of one
        sentence, its interneuron's and squares' tops calibrated (``transformer.calibration``);
        ``x_top``: the top of its float sources (the embedding edge)."""
        where, prefix = ("embedding", "ln") if name == "embedding" else (layer, name)
        return [layernorm_spec(sources, bias, x_top=x_top, mu_top=self.model.code_range(where, f"{prefix}_mean"),
                               d_top=self.model.code_range(where, f"{prefix}_centred"), params=self.params["layernorm"],
                               block_astrocyte="layernorm" in self.blocked, **self._pad(n_tokens),
                               **self._seeds(sentence_id, layer, _SEED[name]))]

    def embedding_specs(self, sentence_id, x) -> list:
        """The input edge: the embeddings' sum ``x`` (tokens x H), encoded once, into the embedding
        LayerNorm circuit."""
        hidden = self.model.hidden_size
        return self.layernorm_specs("embedding", 0, sentence_id, [(x, np.eye(hidden))], np.zeros(hidden), len(x),
                                    x_top=self.model.code_range("embedding", "input"))

    def attention_residual_specs(self, layer, sentence_id, context, train, gamma, beta) -> list:
        """The residual sum and LayerNorm after attention: W_O on the heads' ``context`` spikes,
        diag(gamma) on the block input's (``train``), b_O + beta the bias."""
        w = self.model.layer_weights(layer)
        return self.layernorm_specs("ln1", layer, sentence_id, [(context, w["w_o"]), (train, np.diag(gamma))],
                                    w["b_o"] + beta, train.n_tokens)

    def ffn_residual_specs(self, layer, sentence_id, activations, train) -> list:
        """The residual sum and LayerNorm after the feed-forward block: W_2 on the GELU ``activations``'
        spikes, diag(gamma_1) on the first LayerNorm's (``train``), b_2 + beta_1 the bias."""
        w = self.model.layer_weights(layer)
        return self.layernorm_specs("ln2", layer, sentence_id, [(activations, w["w_2"]),
                                                                (train, np.diag(w["ln1_gamma"]))],
                                    w["b_2"] + w["ln1_beta"], train.n_tokens)

    def qkv_specs(self, layer, sentence_id, train, gamma, beta) -> list:
        """W_QKV on the LayerNorm's spikes, one circuit for q and k (one top) and one for v: gamma on
        the synapses, W beta in the bias current; q and k scaled by sqrt(head_scale) (what the heads'
        keys carry), emitted with the heads' calibrated tops."""
        w, hidden = self.model.layer_weights(layer), self.model.hidden_size
        root = np.sqrt(self.model.head_scale)
        specs = []
        for n, (rows, scale, top) in enumerate(((slice(0, 2 * hidden), root, "attention_qk"),
                                                 (slice(2 * hidden, 3 * hidden), 1.0, "attention_v"))):
            weights = scale * w["w_qkv"][rows]
            specs.append(linear_spec(train, weights * gamma, scale * w["b_qkv"][rows] + weights @ beta,
                                     code="latency", emit_top=self.model.code_range(layer, top),
                                     params=self.params["linear"], **self._pad(train.n_tokens),
                                     **self._seeds(sentence_id, layer, _SEED["qkv"] + n)))
        return specs

    def split_qkv(self, qk, v) -> list:
        """The q, k and v trains of a token's W_QKV emitters (``qkv_specs``: q and k in one circuit)."""
        dims = np.arange(self.model.hidden_size)
        return [qk.dims(dims), qk.dims(self.model.hidden_size + dims), v]

    def head_dims(self) -> list:
        """The columns of q, k and v each head owns."""
        d = self.model.head_dim
        return [np.arange(head * d, (head + 1) * d) for head in range(self.model.n_heads)]

    def head_specs(self, layer, sentence_id, q, k, v) -> list:
        """The heads on the q, k, v emitters' spikes (causal if the model's are), each emitting its context."""
        model = self.model
        specs = []
        for head, dims in enumerate(self.head_dims()):
            specs.append(head_spec(q.dims(dims), k.dims(dims), v.dims(dims), "exact", code="latency",
                                   key_code="latency", score_top=model.code_range(layer, "attention_score", head),
                                   y_top=model.code_range(layer, "attn_out"), causal=model.causal,
                                   params=self.params["head"],
                                   block_astrocyte="heads" in self.blocked, **self._pad(q.n_tokens),
                                   **self._seeds(sentence_id, layer, head), **self.head_options))
        return specs

    def ffn_specs(self, layer, sentence_id, train, gamma, beta) -> list:
        """W_1 and the GELU emitters on the LayerNorm's spikes, in slices of hidden units."""
        w = self.model.layer_weights(layer)
        specs = []
        for n, part in enumerate(np.array_split(np.arange(len(w["w_1"])), FFN_SLICES)):
            specs.append(feedforward_spec(train, w["w_1"][part] * gamma, w["b_1"][part] + w["w_1"][part] @ beta,
                                          code="latency", g_top=self.model.code_range(layer, "ffn_out"),
                                          params=self.params["ffn"], **self._pad(train.n_tokens),
                                          **self._seeds(sentence_id, layer, _SEED["ffn"] + n)))
        return specs

    # --- the pass ---

    def run(self, texts, sentence_ids, reference=None, n_layers=None) -> list:
        """Every sentence through the network; ``reference``: the NumPy passes, for the errors;
        ``n_layers``: only the first layers (a check of the first stages; the pooled embedding is
        then that of the last layer run)."""
        model = self.model
        t0 = time.perf_counter()
        embedded = [model.embedding_sum(text) for text in texts]
        # The input edge: the embeddings' sum, encoded once, into the embedding LayerNorm.
        results = self.run_stage([s for sid, (_, x) in zip(sentence_ids, embedded) for s in self.embedding_specs(sid, x)],
                                 "embedding LayerNorm", keep=())
        trains = [r.train for r in results]
        gamma, beta = model.embedding_ln
        passes = [NetworkPass(text, tokens, _affine(t, gamma, beta),
                              edge_stages=[["embedding", "layernorm", layernorm_record("layernorm", r, model)]])
                  for text, (tokens, x), t, r in zip(texts, embedded, trains, results)]
        for layer in range(model.n_layers if n_layers is None else n_layers):
            w = model.layer_weights(layer)
            x_in = [_affine(t, gamma, beta) for t in trains]
            # W_QKV, then the heads on its emitters' spikes.
            qkv = self.run_stage([s for sid, t in zip(sentence_ids, trains)
                             for s in self.qkv_specs(layer, sid, t, gamma, beta)], f"layer {layer} qkv",
                            keep=("lin_emitters",))
            qkv_trains = [self.split_qkv(*(r.circuit.emitted() for r in qkv[2 * n:2 * n + 2])) for n in range(len(texts))]
            heads = self.run_stage([s for sid, (q, k, v) in zip(sentence_ids, qkv_trains)
                               for s in self.head_specs(layer, sid, q, k, v)], f"layer {layer} attention",
                              keep=("value_neurons", *KEEP_FOR_MAPS))
            n_heads = model.n_heads
            head_trains = [emitted_context(r.circuit) for r in heads]
            contexts = [joined(head_trains[n * n_heads:(n + 1) * n_heads]) for n in range(len(texts))]
            if layer == self.map_layer:
                for n, sid in enumerate(sentence_ids):
                    self.maps[sid] = dict(enumerate(heads[n * n_heads:(n + 1) * n_heads]))
            # The residual sum and LayerNorm after attention: W_O on the contexts' spikes, gamma on the input's.
            ln1 = self.run_stage([s for sid, t, c in zip(sentence_ids, trains, contexts)
                             for s in self.attention_residual_specs(layer, sid, c, t, gamma, beta)],
                            f"layer {layer} residual + LayerNorm 1", keep=())
            h_trains = [r.train for r in ln1]
            ffn = self.run_stage([s for sid, t in zip(sentence_ids, h_trains)
                             for s in self.ffn_specs(layer, sid, t, w["ln1_gamma"], w["ln1_beta"])],
                            f"layer {layer} FFN", keep=("gelu_on", "gelu_off"))
            activations = [joined([r.circuit.emitted() for r in ffn[n * FFN_SLICES:(n + 1) * FFN_SLICES]])
                           for n in range(len(texts))]
            ln2 = self.run_stage([s for sid, t, g in zip(sentence_ids, h_trains, activations)
                             for s in self.ffn_residual_specs(layer, sid, g, t)],
                            f"layer {layer} residual + LayerNorm 2", keep=())
            out_trains = [r.train for r in ln2]
            for n, p in enumerate(passes):
                length = len(p.tokens)
                heads_n = heads[n * n_heads:(n + 1) * n_heads]
                q, k, v = (t.values() for t in qkv_trains[n])
                root = np.sqrt(model.head_scale)
                context = np.stack([t.values() for t in head_trains[n * n_heads:(n + 1) * n_heads]])
                a = model.concat_heads(context) @ w["w_o"].T + w["b_o"]
                h = _affine(h_trains[n], w["ln1_gamma"], w["ln1_beta"])
                g = activations[n].values()
                f = g @ w["w_2"].T + w["b_2"]
                residual = residual_records(ln1[n], ln2[n], length, model)
                attention_stages = {
                    "qkv": bill.spiking_stage("qkv", length, model, [r.circuit for r in qkv[2 * n:2 * n + 2]]),
                    "attention": bill.spiking_stage("attention", length, model, [r.circuit for r in heads_n]),
                    "attn_out": residual["attn_out"], "ln1": residual["ln1"]}
                attention_stages["attention"]["heads"] = [{"head": head, **{key: r.metrics[key] for key in HEAD_METRICS}}
                                                          for head, r in enumerate(heads_n)]
                ffn_n = ffn[n * FFN_SLICES:(n + 1) * FFN_SLICES]
                ffn_stages = {"ffn": bill.spiking_stage("ffn", length, model, [r.circuit for r in ffn_n]),
                              "ffn_out": residual["ffn_out"], "ln2": residual["ln2"]}
                attention_stages["qkv"]["wall_seconds"] = sum(r.wall_seconds for r in qkv[2 * n:2 * n + 2])
                ffn_stages["ffn"]["wall_seconds"] = sum(r.wall_seconds for r in ffn_n)
                if reference is not None:
                    ref = reference[n].layers[layer]
                    attention_stages["attention"]["rel_err_context"] = relative_error(context, ref.attention.parts["context"])
                    attention_stages["attn_out"]["rel_err_output"] = relative_error(a, ref.attention.output)
                    ffn_stages["ffn"]["rel_err_output"] = relative_error(f, ref.ffn.output)
                    ffn_stages["ffn_out"]["rel_err_output"] = relative_error(f, ref.ffn.output)
                qkv_values = np.concatenate([q / root, k / root, v], axis=1)
                p.layers.append(LayerPass(x_in[n], BlockOutput(a, {"qkv": qkv_values, "context": context},
                                                               attention_stages),
                                          h, BlockOutput(f, {"activations": g}, ffn_stages),
                                          _affine(out_trains[n], w["ln2_gamma"], w["ln2_beta"])))
            trains, gamma, beta = out_trains, w["ln2_gamma"], w["ln2_beta"]
            self.say(f"layer {layer} done; {time.perf_counter() - t0:.0f} s elapsed")
        if model.readout is None:
            # The output edge: the last LayerNorm's spikes decoded once, pooled and normalised.
            for p, t in zip(passes, trains):
                p.pooled = minilm.mean_pool(_affine(t, gamma, beta))
            return passes
        # The output edge: the language-model head on the last LayerNorm's spikes (W diag(gamma) on
        # the synapses, b + W beta the bias), its accumulated logits read once.
        readout = self.run_stage([s for sid, t in zip(sentence_ids, trains)
                             for s in self.readout_specs(sid, t, gamma, beta)], "readout", keep=())
        for p, r in zip(passes, readout):
            p.logits = r.y_spike
            record = bill.spiking_stage("lm_head", len(p.tokens), model, [r.circuit])
            record["wall_seconds"] = r.wall_seconds
            p.edge_stages.append(["output", "lm_head", record])
        return passes

    def readout_specs(self, sentence_id, train, gamma, beta) -> list:
        """The language-model head on the last LayerNorm's spikes: logits accumulated, not emitted."""
        w, b = self.model.readout["w"], self.model.readout["b"]
        return [linear_spec(train, w * gamma, b + w @ beta, code="latency", params=self.params["linear"],
                            **self._pad(train.n_tokens), **self._seeds(sentence_id, 0, _SEED["readout"]))]


#: A LayerNorm circuit's metrics kept in its stage record (``circuits.layernorm.LayerNormResult``).
LAYERNORM_METRICS = ("rel_err_spike_vs_layernorm", "rel_err_spike_vs_rate", "layernorm_budget",
                     "spike_vs_rate_over_budget", "budget_tolerance_ratio", "gain_log_rms", "gain_log_rms_expected",
                     "wall_seconds")
#: The synapses of a LayerNorm circuit's first source: W_O (W_2) on the contexts' (activations') spikes.
PROJECTION_SYNAPSES = "source0_synapses"


def pass_records(sentence) -> list:
    """(layer, stage, record) of every stage of a pass (``NetworkPass``), the edges' included: what
    ``transformer.bill.bill`` adds up."""
    return list(sentence.edge_stages) + [(layer, stage, record) for layer, lp in enumerate(sentence.layers)
                                         for block in (lp.attention, lp.ffn) for stage, record in block.stages.items()]


def layernorm_record(stage, result, model) -> dict:
    """A LayerNorm circuit's stage record: its bill and its errors against LayerNorm and its budget."""
    record = bill.spiking_stage(stage, result.n_spike.shape[0], model, [result.circuit])
    metrics = result.metrics
    record.update({key: metrics[key] for key in LAYERNORM_METRICS})
    return record


def residual_records(ln1, ln2, n_tokens, model) -> dict:
    """The stage records of a layer's two residual sums (``ln1``, ``ln2``: the LayerNorm circuits'
    results): ``attn_out`` and ``ffn_out``, W_O and W_2 on the synapses inside the LayerNorm circuits
    (:func:`book_projection_events`), and ``ln1`` and ``ln2``, the LayerNorms."""
    records = {"attn_out": bill.spiking_stage("attn_out", n_tokens, model, []), "ln1": layernorm_record("ln1", ln1, model),
               "ffn_out": bill.spiking_stage("ffn_out", n_tokens, model, []), "ln2": layernorm_record("ln2", ln2, model)}
    book_projection_events(records["ln1"], records["attn_out"], ln1)
    book_projection_events(records["ln2"], records["ffn_out"], ln2)
    return records


def book_projection_events(layernorm_record, out_record, result) -> None:
    """Move the events of the projection inside a LayerNorm circuit (W_O, W_2: the synapses of its
    first source, :data:`PROJECTION_SYNAPSES`) from the LayerNorm's record to the projection's stage."""
    moved = result.circuit.synaptic_events().get(PROJECTION_SYNAPSES, 0)
    layernorm_record["synaptic_events"] -= moved
    out_record["synaptic_events"] += moved
