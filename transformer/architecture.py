"""What the one network (``transformer.network``) needs of a post-LayerNorm transformer.

The network wires every stage of a post-LN transformer on cells: the embeddings' LayerNorm, then
per layer W_QKV, the heads, W_O with the residual and a LayerNorm, the feed-forward block with the
residual and a LayerNorm. all-MiniLM-L6-v2 (``transformer.minilm.architecture``, a sentence
encoder whose output edge is the mean over tokens) and the project's character model
(``transformer.chargpt.architecture``, causal heads and a language-model head on synapses) both
have that shape; an :class:`Architecture` says which weights, sizes, latency-code ranges and edges
the network uses for each.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Architecture:
    """A post-LN transformer as the network reads it.

    ``hidden_size``/``intermediate_size``/``n_heads``/``head_dim``/``n_layers`` its sizes (the bill's
    MACs, ``transformer.bill.stage_macs``, read them too); ``layer_norm_eps`` its LayerNorms' eps;
    ``causal``: query s reads keys 0..s only; ``embedding_ln``: the embeddings' LayerNorm (gamma,
    beta); ``layer_weights(layer)``: a layer's weights named as ``transformer.minilm.layer_weights``
    names them; ``head_scale``: the kernel scale of every head; ``ranges``: the calibrated
    latency-code tops ({layer: {stage: top}}, ``transformer.calibration``); ``embedding_sum(item)``:
    an input's tokens and the sum of its embeddings (L x H, the float input edge); ``max_tokens``: the
    longest input (a causal model's context); ``readout``: the
    language-model head's ``w`` (V x H) and ``b`` run on synapses at the output edge, or None (the
    output edge is the mean over tokens, L2-normalised); ``vocab``: the readout's symbols."""

    name: str
    n_layers: int
    n_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    layer_norm_eps: float
    causal: bool
    embedding_ln: tuple
    layer_weights: Callable
    head_scale: float
    ranges: dict
    embedding_sum: Callable
    max_tokens: int
    readout: dict | None = None
    vocab: str | None = None

    @property
    def vocab_size(self) -> int:
        return 0 if self.readout is None else len(self.readout["w"])

    def code_range(self, layer, stage, head=None) -> float:
        """The calibrated top of ``stage``'s latency code in ``layer`` (``"embedding"`` for the
        input edge); for a per-head stage (``attention_score``) that of ``head``."""
        top = self.ranges[str(layer)][stage]
        if isinstance(top, list):
            if head is None:
                raise ValueError(f"the range of {stage!r} is one per head: name the head")
            return float(top[head])
        return top

    def split_heads(self, qkv: np.ndarray) -> tuple:
        """Queries, keys and values (each n_heads x L x head_dim) of the stacked projections (L x 3H);
        head h owns columns h*d:(h+1)*d of each."""
        def heads(x):
            return x.reshape(x.shape[0], self.n_heads, self.head_dim).transpose(1, 0, 2)

        return tuple(heads(part) for part in np.split(qkv, 3, axis=1))

    @staticmethod
    def concat_heads(per_head: np.ndarray) -> np.ndarray:
        """Heads' outputs (n_heads x L x head_dim) side by side (L x H)."""
        return per_head.transpose(1, 0, 2).reshape(per_head.shape[1], -1)
