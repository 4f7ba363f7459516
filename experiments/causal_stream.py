"""Causal (autoregressive) attention: tokens stream in and a read follows each token.

    python -m experiments.causal_stream                  # both circuits, synthetic head
    python -m experiments.causal_stream --quick          # small and fast

Query s is read right after token s is written, so it can only attend to tokens 0..s. Both
circuits run on the same head; each read is compared with causal softmax attention, with the
circuit's causal rate ideal (causal linear attention for the random-feature circuit) and with the
causal uniform baseline (mean of the values written so far). Writes metrics.json (per circuit),
outputs.npz and causal_stream.png (error per position).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from experiments import attention
from runs.folders import RESULTS_ROOT, new_run_dir, versions, write_json
from models.parameters import ParameterError

NAME = "causal_stream"
QUICK = ["--tokens", "6", "--dim", "4", "--value-dim", "4", "--features", "64", "--neurons-per-key", "4",
         "--neurons-per-value", "16", "--set", "t_settle=100*ms", "--set", "t_learn=200*ms",
         "--set", "t_read=400*ms"]


def build_parser():
    p = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small head and short windows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help=f"parent folder (default results/{NAME})")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-figures", action="store_true")
    attention.add_device_options(p)
    return p


def row_errors(estimate, reference) -> np.ndarray:
    """Relative error of each query's output vector."""
    return np.linalg.norm(estimate - reference, axis=1) / np.linalg.norm(reference, axis=1)


def run_circuit(circuit, args, extra) -> dict:
    """One circuit through the attention experiment's pipeline, causally."""
    argv = (["--circuit", circuit, "--causal", "--seed", str(args.seed), "--quiet"] + extra
            + attention.device_argv(args))
    exp_args = attention.build_parser().parse_args(argv)
    prepared = attention.prepare(exp_args)
    result = attention.simulate(exp_args, prepared)
    metrics = attention.metrics_of(result)
    attention.release_device(result)          # outputs are read; the next circuit may rebuild
    return {"prepared": prepared, "result": result, "metrics": metrics}


def plot(runs, path):
    from experiments.plotting import plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    first = next(iter(runs.values()))["result"]
    positions = np.arange(len(first["y_softmax"]))
    ax.plot(positions, row_errors(first["y_uniform"], first["y_softmax"]), "k:", label="uniform (prefix mean)")
    for name, run in runs.items():
        res = run["result"]
        ax.plot(positions, row_errors(res["y_spike"], res["y_softmax"]), "o-", label=f"{name}: spikes")
        ax.plot(positions, row_errors(res["y_rate"], res["y_softmax"]), "--", label=f"{name}: rate ideal")
    ax.set_xlabel("position s (query reads tokens 0..s)")
    ax.set_ylabel("relative error vs causal softmax")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    extra = QUICK if args.quick else []
    runs = {}
    for circuit in ("random", "exact"):
        if not args.quiet:
            print(f"[{NAME}] {circuit} circuit", file=sys.stderr, flush=True)
        try:
            runs[circuit] = run_circuit(circuit, args, extra)
        except (ParameterError, ValueError) as exc:
            parser.error(str(exc))
    run_dir = new_run_dir(args.out if args.out is not None else RESULTS_ROOT / NAME, f"seed{args.seed}")
    first = runs["random"]["prepared"]
    write_json(run_dir / "params.json", {
        "experiment": NAME, "seed": args.seed, "quick": args.quick, "source": first["source"],
        "circuits": {name: run["result"]["circuit"].config for name, run in runs.items()},
        "parameters": {name: run["prepared"]["params"].to_json() for name, run in runs.items()},
        "versions": versions()})
    write_json(run_dir / "metrics.json", {name: run["metrics"] for name, run in runs.items()})
    np.savez_compressed(run_dir / "outputs.npz", q=first["q"], k=first["k"], v=first["v"],
                        y_softmax=runs["random"]["result"]["y_softmax"],
                        y_uniform=runs["random"]["result"]["y_uniform"],
                        **{f"{name}_{key}": run["result"][key] for name, run in runs.items()
                           for key in ("y_spike", "y_rate")})
    if not args.no_figures:
        plot(runs, run_dir / "causal_stream.png")
    if not args.quiet:
        for name, run in runs.items():
            attention.print_summary(run["metrics"], f"{NAME}/{name}")
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
