"""Exact vs random-feature circuits on many real all-MiniLM-L6-v2 heads: one table.

    python -m experiments.real_head_table                  # 12 heads, 3 sentences x layers/heads below
    python -m experiments.real_head_table --out results/real_heads/mine

For every (sentence, layer, head) it runs the spiking exact-kernel circuit (a run folder of
experiments.real_head, ``experiments.head_run.write_real_head_run``) and reports its error against
the real head's output, the cosine similarity, the same circuit with the astrocyte blocked (its
signals held at their mean over the read phase: the ablation of the normalisation), how closely the
astrocyte's signal follows the attention denominator, the random-feature circuit's rate ideal at
m = 256 and 1024 (NumPy, mean over seeds: a lower bound on what its spikes can reach) and the
uniform baseline. ``--astrocyte`` picks the process model.
Writes table.csv, table.md and the runs' folders.
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from analysis.attention import relative_error, softmax_attention
from analysis.features import draw_feature_weights, performer_attention
from circuits.head import run_head
from experiments import cli
from models.astrocytes import ASTROCYTE_MODELS
from runs.folders import new_run_dir, output_parent, write_atomic, write_json

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Astrocytes wrap synapses and listen to neurons.",
    "She sold her old bicycle because the city built a new subway line.",
)
HEADS = ((0, 3), (2, 5), (4, 7), (5, 10))          # (layer, head) pairs, spread over depth
#: The table's numeric columns, in order (their medians are the summary).
COLUMNS = ("exact_spike_vs_head", "exact_cosine", "exact_poisson_bound", "exact_astrocyte_blocked",
           "normaliser_log_error", "denominator_log_spread", "random_rate_m256", "random_rate_m1024",
           "uniform_baseline")


def random_feature_errors(q, k, v, scale, n_features, seeds) -> float:
    """Mean relative error of random-feature (Performer) attention vs softmax over seeds."""
    y = softmax_attention(q, k, v, scale)
    errors = []
    for seed in seeds:
        w = draw_feature_weights(n_features, q.shape[1], np.random.default_rng(seed))
        errors.append(relative_error(performer_attention(q, k, v, scale, w), y))
    return float(np.mean(errors))


@cli.stops_on_failed_writes
def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m experiments.real_head_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="parent folder (default results/real_heads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rf-seeds", type=int, default=5, help="seeds of the random-feature rate ideal")
    parser.add_argument("--astrocyte", default="minimal", choices=ASTROCYTE_MODELS, help="astrocyte process model")
    args = parser.parse_args(argv)
    from experiments.head_run import write_real_head_run
    from transformer.heads import real_qkv
    from transformer.minilm import MiniLMUnavailable

    try:
        heads = [dict(real_qkv(text, layer, head), text=text, layer=layer, head=head)
                 for text in SENTENCES for layer, head in HEADS]
        parent = output_parent(args.out, "real_heads")
    except MiniLMUnavailable as exc:
        parser.error(str(exc))
    table_dir = new_run_dir(parent, "table")
    rows = []
    for head in heads:
        text, layer, q, k, v, scale = head["text"], head["layer"], head["q"], head["k"], head["v"], head["scale"]
        print(f"[real_head_table] {len(rows) + 1}/{len(heads)}: layer {layer} head {head['head']}, {text!r}",
              file=sys.stderr, flush=True)
        result = run_head(q, k, v, "exact", scale=scale, seed=args.seed, astrocyte=args.astrocyte)
        run, metrics = write_real_head_run(result, table_dir / "runs", head)
        blocked = run_head(q, k, v, "exact", scale=scale, seed=args.seed, astrocyte=args.astrocyte,
                           block_astrocyte=True)
        _, blocked_metrics = write_real_head_run(blocked, table_dir / "runs_blocked", head)
        rf = {m: random_feature_errors(q, k, v, scale, m, range(args.rf_seeds)) for m in (256, 1024)}
        rows.append({
            "text": text, "layer": layer, "head": head["head"], "tokens": len(q),
            "exact_spike_vs_head": metrics["rel_err_spike_vs_softmax"],
            "exact_cosine": metrics["cosine_spike_vs_softmax"],
            "exact_poisson_bound": metrics["poisson_bound"],
            "exact_astrocyte_blocked": blocked_metrics["rel_err_spike_vs_softmax"],
            "normaliser_log_error": metrics["normaliser_log_error"],
            "denominator_log_spread": metrics["denominator_log_spread"],
            "random_rate_m256": rf[256], "random_rate_m1024": rf[1024],
            "uniform_baseline": metrics["rel_err_uniform_vs_softmax"],
            "max_attention_weight_mean": metrics["max_attention_weight_mean"],
            "run": str(run.relative_to(table_dir)),
        })
    def write_table(fh):
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    write_atomic(table_dir / "table.csv", write_table)
    summary = {key: float(np.median([r[key] for r in rows])) for key in COLUMNS}
    summary["blocked_over_astrocyte"] = float(np.median([r["exact_astrocyte_blocked"] / r["exact_spike_vs_head"]
                                                         for r in rows]))
    write_json(table_dir / "summary.json", {"median": summary, "n_heads": len(rows), "astrocyte": args.astrocyte})
    lines = ["| sentence | layer | head | L | exact (spikes) err | cosine | Poisson bound | astrocyte blocked | "
             "astrocyte vs denominator (log rms) | denominator spread (log sd) | random m=256 (rate) | "
             "random m=1024 (rate) | uniform |", "|---|---|---|---|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append(f"| {r['text'][:28]}… | {r['layer']} | {r['head']} | {r['tokens']} | "
                     + " | ".join(f"{r[c]:.4f}" if c == "exact_cosine" else f"{r[c]:.3f}" for c in COLUMNS) + " |")
    lines.append("| **median** | | | | " + " | ".join(
        f"**{summary[c]:.4f}**" if c == "exact_cosine" else f"**{summary[c]:.3f}**" for c in COLUMNS) + " |")
    lines.append(f"\nastrocyte: {args.astrocyte}; median blocked / with astrocyte: {summary['blocked_over_astrocyte']:.1f}x")
    write_atomic(table_dir / "table.md", lambda fh: fh.write("\n".join(lines) + "\n"))
    print("\n".join(lines), file=sys.stderr)
    print(table_dir)
    return table_dir


if __name__ == "__main__":
    main()
