"""chargpt on spikes one character at a time, the heads' tripartite memories as the key-value cache.

A character's pass is the network's (``transformer.network``) for one token: the embeddings' sum
encoded once, the embedding LayerNorm circuit, then per layer W_QKV, the heads, W_O with the
residual and a LayerNorm, the feed-forward block with the residual and a LayerNorm, and the
language-model head, whose logits are read once. Every stage but the heads is position-wise: it
runs on a circuit of this one token (the network's own specs, run on the pool). The heads are not:
query t reads every key and value written before it. Each head is one
``circuits.head_memory.CausalHeadMemory``, built once (capacity: the model's context) and kept
for the whole text; a character's q, k and v spikes are written into it and read once, and what
was written stays in its synapses and astrocyte processes for the next character. The prefix is
never simulated again.

Stepping the characters of a text gives the logits of the whole text run once through the network
with causal heads (tests/test_generation.py): the latency code draws no random numbers, so the
position-wise circuits of one token give what the same circuits of the whole text give at that
token, and a memory stepped t times gives the spikes of the whole causal head.
"""

import gc
import time
from dataclasses import dataclass, field

import numpy as np

from circuits.codes import joined
from circuits.head_memory import CausalHeadMemory, MemoryProcess
from transformer import bill
from transformer.network import SpikingNetwork, layernorm_record, residual_records


#: A memory's populations that replay another stage's emitters (their spikes are counted there).
REPLAYED = ("key_encoders", "value_encoders")


@dataclass
class CharacterPass:
    """One character through the network: its ``logits`` (V), the heads' memory steps
    (``steps[layer][head]``, ``circuits.head_memory.MemoryStep``), the stage records of the
    position-wise circuits and the heads' bill of this step (``records``: (layer, stage, record)),
    and its wall time."""

    position: int
    logits: np.ndarray
    steps: list
    records: list = field(default_factory=list)
    wall_seconds: float = 0.0


class SpikingGenerator:
    """chargpt's network stepped one character at a time (``model``: its
    ``transformer.architecture.Architecture``; ``pool``, ``params``, ``seed`` and ``block_astrocyte``
    as :class:`transformer.network.SpikingNetwork`'s, without blocking: an astrocyte cannot be held
    at its mean over tokens still to come). ``processes``: each head's memory in a process of its
    own (``circuits.head_memory.MemoryProcess``: compiled once, the heads of a layer step at once),
    or all in this one. ``n_layers``: only the first layers (a check of the first stages). Close it
    (or use it in a ``with``) to end the memories' processes."""

    def __init__(self, pool, params, model, *, seed=0, n_layers=None, processes=True, log=None):
        if not model.causal:
            raise ValueError(f"{model.name} reads every token at once; generation needs causal heads")
        self.network = SpikingNetwork(pool, params, model=model, seed=seed, log=log)
        self.model, self.params = model, params
        self.n_layers = model.n_layers if n_layers is None else n_layers
        self.capacity = model.max_tokens
        memory = MemoryProcess if processes else CausalHeadMemory
        def make(layer, head):
            return memory(self.capacity, model.head_dim, model.head_dim,
                          x_top=model.code_range(layer, "attention_qk"), v_top=model.code_range(layer, "attention_v"),
                          score_top=model.code_range(layer, "attention_score", head),
                          y_top=model.code_range(layer, "attn_out"), params=params["head"], seed=seed)

        # The first memory alone: in processes, it compiles the code the others then find cached.
        first = make(0, 0)
        first.build_seconds
        self.memories = [[first if (layer, head) == (0, 0) else make(layer, head) for head in range(model.n_heads)]
                         for layer in range(self.n_layers)]
        self.build_seconds = max(m.build_seconds for layer in self.memories for m in layer)
        # Brian2 collects garbage at every run; freezing the memories' objects keeps each step's
        # collection to what the step itself made.
        gc.freeze()
        self.position = 0

    def close(self) -> None:
        for memory in (m for layer in self.memories for m in layer):
            if isinstance(memory, MemoryProcess):
                memory.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def step(self, character: str) -> CharacterPass:
        """Write ``character`` (at the next position) through the network and read its logits."""
        if self.position >= self.capacity:
            raise ValueError(f"the context holds {self.capacity} characters; this generator is full")
        t0 = time.perf_counter()
        net, model, sid = self.network, self.model, self.position
        _, x = model.embedding_sum(character, start=self.position)
        (ln,) = net.run_stage(net.embedding_specs(sid, x), "embedding LayerNorm", ())
        records = [("embedding", "layernorm", layernorm_record("layernorm", ln, model))]
        train, (gamma, beta) = ln.train, model.embedding_ln
        steps = []
        for layer in range(self.n_layers):
            w = model.layer_weights(layer)
            qkv = net.run_stage(net.qkv_specs(layer, sid, train, gamma, beta), f"layer {layer} qkv", ("lin_emitters",))
            q, k, v = net.split_qkv(*(r.circuit.emitted() for r in qkv))
            head_steps = step_memories(self.memories[layer], [(q.dims(d), k.dims(d), v.dims(d)) for d in net.head_dims()])
            steps.append(head_steps)
            context = joined([s.context for s in head_steps])
            (ln1,) = net.run_stage(net.attention_residual_specs(layer, sid, context, train, gamma, beta),
                                   f"layer {layer} residual + LayerNorm 1", ())
            ffn = net.run_stage(net.ffn_specs(layer, sid, ln1.train, w["ln1_gamma"], w["ln1_beta"]), f"layer {layer} FFN",
                           ("gelu_on", "gelu_off"))
            activations = joined([r.circuit.emitted() for r in ffn])
            (ln2,) = net.run_stage(net.ffn_residual_specs(layer, sid, activations, ln1.train),
                                   f"layer {layer} residual + LayerNorm 2", ())
            residual = residual_records(ln1, ln2, 1, model)
            records += [(layer, "qkv", bill.spiking_stage("qkv", 1, model, [r.circuit for r in qkv])),
                        (layer, "attention", memory_stage(head_steps, self.position, model)),
                        (layer, "attn_out", residual["attn_out"]), (layer, "ln1", residual["ln1"]),
                        (layer, "ffn", bill.spiking_stage("ffn", 1, model, [r.circuit for r in ffn])),
                        (layer, "ffn_out", residual["ffn_out"]), (layer, "ln2", residual["ln2"])]
            train, gamma, beta = ln2.train, w["ln2_gamma"], w["ln2_beta"]
        (readout,) = net.run_stage(net.readout_specs(sid, train, gamma, beta), "readout", ())
        records.append(("output", "lm_head", bill.spiking_stage("lm_head", 1, model, [readout.circuit])))
        self.position += 1
        return CharacterPass(sid, readout.y_spike[0], steps, records, time.perf_counter() - t0)


def step_memories(memories, inputs) -> list:
    """One step of every memory (its q, k, v in ``inputs``), those in processes at once."""
    for memory, qkv in zip(memories, inputs):
        if isinstance(memory, MemoryProcess):
            memory.send(*qkv)
    return [memory.receive() if isinstance(memory, MemoryProcess) else memory.step(*qkv)
            for memory, qkv in zip(memories, inputs)]


def memory_stage(head_steps, position, model) -> dict:
    """The attention stage's bill of one character: what its heads' memories spent in this step,
    and the model's MACs of query ``position`` reading ``position + 1`` keys."""
    record = bill.spiking_stage("attention", 1, model, [])
    record["model_macs"] = model.n_heads * 2 * (position + 1) * model.head_dim
    for s in head_steps:
        astro = sum(n for name, n in s.synaptic_events.items() if name in bill.ASTROCYTE_SYNAPSES)
        bill.add_tally(record, {"synaptic_events": sum(s.synaptic_events.values()) - astro, "astrocyte_updates": astro,
                                "spikes": {pop: n for pop, n in s.spikes.items() if pop not in REPLAYED}})
    return record
