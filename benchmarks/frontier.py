"""Accuracy against energy: spiking all-MiniLM-L6-v2 runs by code and spike budget, with the lines to beat.

    python -m benchmarks.frontier RUN_DIR [RUN_DIR ...] --out results/curated/frontier

Each RUN_DIR is a finished ``experiments.spiking_minilm`` run folder (``--spiking all``): its
energy per sentence (the bill's convention, ``transformer.bill``) against its embeddings' median
cosine to the NumPy model, labelled by its code and parameter overrides. The figure marks the
conventional network's energy for the same arithmetic in 32-bit float (E_MAC 4.6 pJ) and 8-bit
integers (0.23 pJ), and SpikedAttention's ratio to its ANN (0.42x fp32; Hwang et al., NeurIPS 2024).
Beside the runs, the latency code's own quantisation in NumPy (``--numpy``): every encoded stage's
input delivered as the code delivers it (``analysis.codes.latency_decode``, calibrated ranges), the
heads exact, for a grid of code bases and levels, so a run's cosine can be read against what its
code alone allows. Writes ``frontier.json`` and ``frontier.png`` to a new ``<out>/<UTC time>-frontier/``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from analysis.codes import latency_decode
from models.feedforward import gelu
from runs.folders import new_run_dir, write_json
from transformer import bill, minilm
from transformer.calibration import stage_inputs
from transformer.configuration import RunConfig
from transformer.executors import BlockOutput, NumPyExecutor
from transformer.forward import forward

#: SpikedAttention's energy relative to its ANN (Hwang et al., NeurIPS 2024): the target ratio.
SPIKED_ATTENTION_RATIO = 0.42
#: (code base, levels) of the NumPy curve.
NUMPY_GRID = ((1.3, 50), (1.2, 50), (1.1, 64), (1.1, 100), (1.05, 200))


def run_point(run_dir) -> dict:
    """One run folder's point: energy per sentence (spiking, fp32, int8), cosine median and min, the
    largest similarity change, events per MAC, spikes per neuron, its code (and the latency heads' key
    code) and overrides."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = json.loads((run_dir / "params.json").read_text())
    if "configuration" in record:
        config = RunConfig.from_record(record["configuration"])
        codes, overrides = sorted(set(config.codes.values())), config.overrides
        key_code = config.key_code if config.codes["attention"] == "latency" else None
    else:                   # runs before the corpus runner recorded neither codes nor overrides: the rate code
        codes, overrides, key_code = ["rate"], {}, None
    summary, the_bill = metrics["summary"], metrics["bill"]
    n = summary["n_sentences"]
    return {"run": run_dir.name, "codes": codes, "key_code": key_code, "overrides": overrides,
            "n_sentences": n, "cosine_median": summary["cosine_median"], "cosine_min": summary["cosine_min"],
            "similarity_deviation_max": summary["similarity_deviation_max"],
            "energy_joules_per_sentence": the_bill["energy_joules"] / n,
            "energy_joules_conventional_per_sentence": the_bill["energy_joules_conventional"] / n,
            "energy_joules_int8_per_sentence": the_bill.get("energy_joules_conventional_int8",
                                                            bill.E_MAC_INT8 * the_bill["model_macs"]) / n,
            "synaptic_events_per_mac": the_bill["synaptic_events_per_mac"],
            "spikes_per_neuron": the_bill.get("spikes_per_neuron"),
            "wall_seconds_per_sentence": summary["wall_seconds_per_sentence"]}


class DeliveredExecutor(NumPyExecutor):
    """The NumPy model with every encoded stage's input delivered by the latency code (base
    ``base``, ``levels`` levels, the calibrated ranges), the attention cores exact."""

    def __init__(self, base, levels):
        self.base, self.levels = base, levels

    def deliver(self, layer, stage, x):
        return latency_decode(x, minilm.code_range(layer, stage), self.base, self.levels)

    def attention(self, layer, hidden, sentence_ids) -> list:
        w = minilm.layer_weights(layer)
        out = []
        for x in hidden:
            qkv = minilm.dense(self.deliver(layer, "qkv", x), w["w_qkv"], w["b_qkv"])
            context = minilm.attention_context(*minilm.split_heads(qkv))
            y = minilm.dense(self.deliver(layer, "attn_out", minilm.concat_heads(context)), w["w_o"], w["b_o"])
            out.append(BlockOutput(y, {"qkv": qkv, "context": context}))
        return out

    def ffn(self, layer, h, sentence_ids) -> list:
        w = minilm.layer_weights(layer)
        out = []
        for x in h:
            activations = gelu(minilm.dense(self.deliver(layer, "ffn", x), w["w_1"], w["b_1"]))
            y = minilm.dense(self.deliver(layer, "ffn_out", activations), w["w_2"], w["b_2"])
            out.append(BlockOutput(y, {"activations": activations}))
        return out


def numpy_curve(texts) -> list:
    """The latency code's quantisation alone, per (base, levels) of :data:`NUMPY_GRID`: cosine to the
    model and the fraction of encoded values that fire (events per MAC of the encoded stages)."""
    reference = forward(texts)
    ref = np.array([s.embedding for s in reference])
    rows = []
    for base, levels in NUMPY_GRID:
        passes = forward(texts, DeliveredExecutor(base, levels))
        emb = np.array([s.embedding for s in passes])
        cos = np.sum(emb * ref, axis=1)
        fired = total = 0
        for sentence in reference:
            for layer, step in enumerate(sentence.layers):
                for stage, x in stage_inputs(step).items():
                    if stage.startswith("attention_"):        # the heads' inputs: exact here
                        continue
                    kept = latency_decode(x, minilm.code_range(layer, stage), base, levels) != 0
                    fired, total = fired + int(kept.sum()), total + x.size
        rows.append({"code_base": base, "levels": levels, "cosine_median": float(np.median(cos)),
                     "cosine_min": float(cos.min()), "fraction_fired": fired / total})
    return rows


def frontier_figure(points, curve, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    fp32 = np.median([p["energy_joules_conventional_per_sentence"] for p in points]) * 1e3
    int8 = np.median([p["energy_joules_int8_per_sentence"] for p in points]) * 1e3
    for value, label, style in ((fp32, "conventional, fp32", "-"), (int8, "conventional, int8", "--"),
                                (SPIKED_ATTENTION_RATIO * fp32, "SpikedAttention's 0.42x fp32", ":")):
        ax.axvline(value, color="0.4", ls=style, lw=1)
        ax.text(value, 0.98, f"{label} ", rotation=90, va="top", ha="right", fontsize=7,
                transform=ax.get_xaxis_transform())
    markers = {"rate": ("o", "tab:red"), "latency": ("s", "tab:blue")}
    for p in points:
        code = "latency" if p["codes"] == ["latency"] else "rate" if p["codes"] == ["rate"] else "mixed"
        marker, colour = markers.get(code, ("D", "tab:purple"))
        ax.plot(p["energy_joules_per_sentence"] * 1e3, 1 - p["cosine_median"], marker, color=colour, ms=7)
        ax.annotate(p["label"], (p["energy_joules_per_sentence"] * 1e3, 1 - p["cosine_median"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    for row in curve:
        ax.axhline(1 - row["cosine_median"], color="tab:blue", lw=0.5, alpha=0.4)
        ax.text(0.99, 1 - row["cosine_median"], f"latency code alone (NumPy), B={row['code_base']}, "
                f"{row['levels']} levels", fontsize=6, color="tab:blue", va="bottom", ha="right",
                transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("energy per sentence (mJ; 0.9 pJ per synaptic event, 4.6 pJ per NumPy MAC)")
    ax.set_ylabel("1 - embedding cosine to the model (median)")
    ax.set_title("all-MiniLM-L6-v2 on spikes: accuracy against energy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frontier", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished spiking_minilm run folders (--spiking all)")
    parser.add_argument("--label", action="append", default=[], help="a label per run, in order (default: its code)")
    parser.add_argument("--numpy", type=Path, default=None, metavar="TEXTS",
                        help="also the latency code's quantisation alone in NumPy on these sentences")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = parser.parse_args(argv)
    points = []
    for n, run_dir in enumerate(args.runs):
        try:
            point = run_point(run_dir)
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"{run_dir}: not a finished spiking_minilm run ({exc})")
        point["label"] = args.label[n] if n < len(args.label) else "+".join(point["codes"])
        points.append(point)
    curve = []
    if args.numpy is not None:
        curve = numpy_curve([line.strip() for line in args.numpy.read_text().splitlines() if line.strip()])
    out = new_run_dir(args.out, "frontier")
    write_json(out / "frontier.json", {"points": points, "numpy_latency_code": curve,
                                       "spiked_attention_ratio": SPIKED_ATTENTION_RATIO})
    frontier_figure(points, curve, out / "frontier.png")
    for p in points:
        print(f"{p['label']:>28}: {p['energy_joules_per_sentence'] * 1e3:8.3f} mJ per sentence "
              f"({p['energy_joules_per_sentence'] / p['energy_joules_conventional_per_sentence']:.3f}x fp32), cosine "
              f"{p['cosine_median']:.4f} (min {p['cosine_min']:.4f}), {p['synaptic_events_per_mac']:.2f} events/MAC",
              file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
