"""The latency code's range per layer and stage, fixed once from a calibration corpus.

A latency code delivers values up to its top of range x_top (docs/model.md §11). The range must
hold all-MiniLM-L6-v2's outlier features (clipping them loses the embedding) and must not come
from the sentence being encoded (that would be a computation on the hidden state outside the
spiking network). As for the scales of a quantised network, or the data-based normalisation of
converted spiking networks (Diehl et al. 2015, doi:10.1109/IJCNN.2015.7280696; Rueckauer et al. 2017,
doi:10.3389/fnins.2017.00682), each stage's range is set once from the NumPy model on a
calibration corpus: ``headroom`` times the largest |input| of that stage over the corpus. The table
ships with the project (``transformer/data/code_ranges.json``, read by
``transformer.minilm.code_range``) with the corpus's SHA-256; ``python -m transformer.calibration
--texts FILE`` writes it again.

Stage inputs: ``qkv`` the layer input, ``attn_out`` the heads' context (also the heads' output
range), ``ffn`` the attention block's LayerNorm output h, ``ffn_out`` the GELU activations; the
heads' inputs ``attention_qk`` (queries and keys scaled by sqrt(scale), as the key encoders carry
them) and ``attention_v`` (values); and the heads' scores ``attention_score``, one top per head
(scale q . k in nats, the one-spike key code's threshold theta_ref / delta_u: ``headroom`` times the
head's largest score; ``circuits.exact_latency``), a list of ``n_heads`` values. The LayerNorms'
cells (``circuits.layernorm``): ``ln1_mean``/``ln1_centred`` after attention, ``ln2_mean``/``ln2_centred``
after the feed-forward block (the mean of the residual sum z and z minus it); under ``embedding``
the embeddings' sum (``input``, the network's float input) and its LayerNorm's ``ln_mean``/``ln_centred``.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from transformer import minilm
from transformer.forward import forward

#: Margin over the largest input of the calibration corpus (values beyond the range are clipped).
HEADROOM = 2.0


#: Stages whose range is one per head (a list): their largest signed value, not |value|.
PER_HEAD = ("attention_score",)


def stage_inputs(layer_pass, model=None) -> dict:
    """What each latency code of one layer encodes (a ``transformer.forward.LayerPass`` of
    ``model``, a ``transformer.architecture.Architecture``, default all-MiniLM's); the per-head
    stages (:data:`PER_HEAD`) as arrays of n_heads x ... (a causal model's scores: the pairs a query
    reads, s >= t)."""
    model = model or minilm.architecture()
    q, k, v = model.split_heads(layer_pass.attention.parts["qkv"])
    scores = model.head_scale * np.einsum("hsd,htd->hst", q, k)
    if model.causal:
        reads = np.tril(np.ones(scores.shape[1:], dtype=bool))
        scores = scores[:, reads]
    return {"qkv": layer_pass.input, "attention_qk": np.sqrt(model.head_scale) * np.concatenate([q, k]),
            "attention_v": v, "attn_out": model.concat_heads(layer_pass.attention.parts["context"]),
            "ffn": layer_pass.h, "ffn_out": layer_pass.ffn.parts["activations"], "attention_score": scores}


def layernorm_inputs(z) -> dict:
    """What a LayerNorm's cells encode (``circuits.layernorm``): the mean its interneuron fires
    (``mean``) and the centred values its squaring neurons fire (``centred``), of its input z (L x H)."""
    mean = z.mean(axis=1, keepdims=True)
    return {"mean": mean, "centred": z - mean}


def calibrate(texts, headroom=HEADROOM) -> dict:
    """{layer: {stage: range}} of all-MiniLM-L6-v2 over ``texts`` (:func:`calibrate_passes`)."""
    return calibrate_passes([minilm.embedding_sum(text)[1] for text in texts], forward(texts),
                            minilm.architecture(), headroom)


def calibrate_passes(embedded, passes, model, headroom=HEADROOM) -> dict:
    """{layer: {stage: range}}: ``headroom`` times the largest abs(input) of each stage over a NumPy
    reference's ``passes`` (``transformer.forward.SentencePass``) of ``model`` and their inputs'
    embedding sums ``embedded``; for a per-head stage (:data:`PER_HEAD`), a list of ``headroom``
    times each head's largest score."""
    ranges = {}
    for x_sum, sentence in zip(embedded, passes):
        inputs = {"input": x_sum, **{f"ln_{name}": x for name, x in layernorm_inputs(x_sum).items()}}
        tops = ranges.setdefault("embedding", {})
        for stage, x in inputs.items():
            tops[stage] = max(tops.get(stage, 0.0), float(np.abs(x).max()))
        for layer, step in enumerate(sentence.layers):
            residual = {"ln1": step.input + step.attention.output, "ln2": step.h + step.ffn.output}
            layer_inputs = {**stage_inputs(step, model), **{f"{ln}_{name}": x for ln, z in residual.items()
                                                            for name, x in layernorm_inputs(z).items()}}
            for stage, x in layer_inputs.items():
                if stage in PER_HEAD:
                    top = ranges.setdefault(str(layer), {}).get(stage, np.full(len(x), -np.inf))
                    ranges[str(layer)][stage] = np.maximum(top, x.reshape(len(x), -1).max(axis=1))
                    continue
                top = ranges.setdefault(str(layer), {}).get(stage, 0.0)
                ranges[str(layer)][stage] = max(top, float(np.abs(x).max()))
    return {layer: {stage: ([headroom * float(t) for t in top] if stage in PER_HEAD else headroom * top)
                    for stage, top in tops.items()} for layer, tops in ranges.items()}


def calibrate_chargpt(headroom=HEADROOM) -> dict:
    """{layer: {stage: range}} of chargpt over its calibration windows (``transformer.chargpt``)."""
    from transformer import chargpt

    texts = chargpt.calibration_texts()
    return calibrate_passes([chargpt.embedding_sum(t)[1] for t in texts], [chargpt.reference_pass(t) for t in texts],
                            chargpt.architecture(calibrated=False), headroom)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m transformer.calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("minilm", "chargpt"), default="minilm")
    parser.add_argument("--texts", type=Path, help="all-MiniLM's calibration corpus, one sentence a line")
    parser.add_argument("--headroom", type=float, default=HEADROOM)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: the shipped table (transformer/data/code_ranges.json; chargpt's in "
                             "transformer/data/chargpt/)")
    args = parser.parse_args(argv)
    if args.model == "chargpt":
        from transformer import chargpt

        texts = chargpt.calibration_texts()
        table = {"corpus": f"{len(texts)} windows of the training split of {chargpt.TEXT_FILE.name}",
                 "corpus_sha256": hashlib.sha256("".join(texts).encode("ascii")).hexdigest(),
                 "n_sentences": len(texts), "headroom": args.headroom, "ranges": calibrate_chargpt(args.headroom)}
        out = args.out or chargpt.RANGES_FILE
    else:
        if args.texts is None:
            parser.error("--texts is required for all-MiniLM-L6-v2")
        data = args.texts.read_bytes()
        texts = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
        table = {"corpus": args.texts.name, "corpus_sha256": hashlib.sha256(data).hexdigest(), "n_sentences": len(texts),
                 "headroom": args.headroom, "ranges": calibrate(texts, args.headroom)}
        out = args.out or minilm.RANGES_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
