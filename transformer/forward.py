"""The forward pass of all-MiniLM-L6-v2, written once; an executor runs each layer's two blocks::

    x_0 = LN(embeddings)                                       (NumPy)
    for every layer:  h   = LN(x + attention_block(x))         executor.attention, then NumPy
                      x'  = LN(h + ffn_block(h))               executor.ffn, then NumPy
    embedding = mean_pool(x_6)                                 (NumPy)

The pass owns the embeddings, residual additions, LayerNorms and pooling; an executor
(``transformer.executors``) returns each block's output before the residual: the attention block's
context W_O + b_O from q, k, v = W_QKV x + b_QKV, and the feed-forward block's W_2 GELU(W_1 h + b_1)
+ b_2. ``NumPyExecutor`` is the reference; ``SpikingExecutor`` runs chosen stages on spiking circuits.
Sentences are processed as a batch, layer by layer, so an executor can run every sentence's
circuits of one layer together.
"""

from dataclasses import dataclass, field

import numpy as np

from transformer import bill, minilm
from transformer.executors import BlockOutput, NumPyExecutor


@dataclass
class LayerPass:
    """One layer of one sentence: its input, both blocks' outputs (with their intermediates and
    records), the attention block's LayerNorm output ``h`` and the layer's ``output``."""

    input: np.ndarray
    attention: BlockOutput
    h: np.ndarray
    ffn: BlockOutput
    output: np.ndarray


@dataclass
class SentencePass:
    """One sentence through the model: ``tokens``, the embedding layer's output and every layer;
    ``edge_stages``: [layer label, stage, record] of what runs outside the layers (the embeddings'
    LayerNorm)."""

    text: str
    tokens: list
    embedded: np.ndarray
    layers: list = field(default_factory=list)
    edge_stages: list = field(default_factory=list)

    @property
    def states(self) -> list:
        """Hidden states (each L x H): the embedding output, then every layer's output."""
        return [self.embedded] + [layer.output for layer in self.layers]

    @property
    def embedding(self) -> np.ndarray:
        """The sentence embedding: the last hidden states mean-pooled and L2-normalised."""
        return minilm.mean_pool(self.states[-1])


def forward(texts, executor=None, *, sentence_ids=None, log=None) -> list:
    """Run sentences through the model, each layer's blocks on an executor.

    Parameters
    ----------
    texts : list of str
        The sentences, processed as a batch layer by layer.
    executor : transformer.executors.Executor, optional
        Runs each layer's attention and feed-forward blocks (default:
        ``transformer.executors.NumPyExecutor``, the reference).
    sentence_ids : list of int, optional
        Each text's index in its corpus (default 0, 1, ...), from which a spiking executor derives
        the seeds of its circuits.
    log : callable, optional
        Takes one progress line per layer.

    Returns
    -------
    list of SentencePass
        One per text: tokens, the embedding layer's output and every layer's input, block outputs
        (with their intermediates and stage records) and output.
    """
    executor = executor or NumPyExecutor()
    model = minilm.load_model()
    sentence_ids = list(range(len(texts))) if sentence_ids is None else list(sentence_ids)
    passes = [SentencePass(text, *minilm.embed(text)) for text in texts]
    for p in passes:
        p.edge_stages.append(["embedding", "layernorm", bill.numpy_stage("layernorm", len(p.tokens), model)])
    hidden = [p.embedded for p in passes]
    for layer in range(model.n_layers):
        w = minilm.layer_weights(layer)
        attention = executor.attention(layer, hidden, sentence_ids)
        h = [minilm.layer_norm(x + a.output, w["ln1_gamma"], w["ln1_beta"], model.layer_norm_eps)
             for x, a in zip(hidden, attention)]
        ffn = executor.ffn(layer, h, sentence_ids)
        out = [minilm.layer_norm(x + f.output, w["ln2_gamma"], w["ln2_beta"], model.layer_norm_eps)
               for x, f in zip(h, ffn)]
        # The residual sums and LayerNorms between the blocks are NumPy's (the chain of spiking stages).
        for x, a, f in zip(hidden, attention, ffn):
            a.stages["ln1"] = bill.numpy_stage("ln1", len(x), model)
            f.stages["ln2"] = bill.numpy_stage("ln2", len(x), model)
        for p, x, a, hh, f, o in zip(passes, hidden, attention, h, ffn, out):
            p.layers.append(LayerPass(x, a, hh, f, o))
        hidden = out
        if log is not None:
            log(f"layer {layer} done")
    return passes


def hidden_states(text: str) -> tuple:
    """Tokens of ``text`` and its hidden states in the NumPy reference (each L x H, float64):
    element 0 is the embedding output (input of layer 0), element i the output of layer i-1."""
    (sentence,) = forward([text])
    return sentence.tokens, sentence.states


def sentence_embedding(text: str) -> np.ndarray:
    """Sentence embedding (H,) of the NumPy reference: mean of the last hidden states over all
    tokens ([CLS] and [SEP] included, as sentence-transformers does for an unpadded input), L2-normalised."""
    (sentence,) = forward([text])
    return sentence.embedding


def attention_qkv(text: str, layer: int, head: int) -> dict:
    """Queries, keys and values of one head of one layer for ``text`` (NumPy reference).

    Parameters
    ----------
    text : str
        The input sentence.
    layer : int
        The layer, 0-5.
    head : int
        The head, 0-11.

    Returns
    -------
    dict
        ``tokens`` (list of L wordpieces), ``q``, ``k``, ``v`` (each L x head_dim float64, the
        head's projections of that layer's input hidden states, biases included) and ``scale`` =
        1/sqrt(head_dim), so that the model's attention output of the head is
        softmax(scale q k^T) v.
    """
    model = minilm.load_model()
    minilm.check_layer(model, layer)
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < model.n_heads:
        raise ValueError(f"head must be an integer in [0, {model.n_heads - 1}], got {head!r}")
    (sentence,) = forward([text])
    q, k, v = minilm.split_heads(sentence.layers[layer].attention.parts["qkv"])
    return {"tokens": sentence.tokens, "q": q[head], "k": k[head], "v": v[head], "scale": minilm.head_scale()}
