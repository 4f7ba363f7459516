"""Causal (autoregressive) attention: tokens stream in and a read follows each token.

    python -m experiments.causal_stream                  # both circuits, synthetic head
    python -m experiments.causal_stream --quick          # small and fast

Query s is read right after token s is written, so it can only attend to tokens 0..s. Both
circuits run on the same head; each read is compared with causal softmax attention, with the
circuit's causal rate ideal (causal linear attention for the random-feature circuit) and with the
causal uniform baseline (mean of the values written so far). Writes metrics.json (per circuit),
outputs.npz, each circuit's spikes in ``<circuit>/spikes.npz`` (and ``run.nwb`` with ``--export
nwb``) and causal_stream.png (error per position).
"""

from pathlib import Path

import numpy as np

from analysis.attention import synthetic_head
from circuits.head import head_spec
from circuits.protocol import SHORT_PROTOCOL
from circuits.seeds import SeedStreams
from experiments import cli
from runs.folders import new_run_dir, run_record, write_atomic, write_json
from runs.spikes import save_run_spikes

NAME = "causal_stream"
CIRCUITS = ("random", "exact")
#: The head and circuit sizes; --quick: a small head, small circuits and the short protocol.
SIZES = {"tokens": 16, "dim": 8, "value_dim": 8, "norm": 0.7}
QUICK_SIZES = {"tokens": 6, "dim": 4, "value_dim": 4, "norm": 0.7}
QUICK_OPTIONS = {"random": {"n_features": 64, "neurons_per_value": 16},
                 "exact": {"neurons_per_key": 4, "neurons_per_value": 16}}


def build_parser():
    p = cli.experiment_parser(NAME, __doc__)
    p.add_argument("--quick", action="store_true", help="small head and short windows")
    cli.add_run_options(p, NAME)
    return p


def row_errors(estimate, reference) -> np.ndarray:
    """Relative error of each query's output vector."""
    return np.linalg.norm(estimate - reference, axis=1) / np.linalg.norm(reference, axis=1)


def causal_specs(args) -> dict:
    """One causal spec per circuit, on the same synthetic head."""
    sizes = QUICK_SIZES if args.quick else SIZES
    q, k, v = synthetic_head(sizes["tokens"], sizes["dim"], sizes["value_dim"], sizes["norm"],
                             SeedStreams(args.seed).head)
    overrides = {**(SHORT_PROTOCOL if args.quick else {}), **cli.parameter_overrides(args)}
    return {circuit: head_spec(q, k, v, circuit, params=overrides, seed=args.seed, spike_seed=args.spike_seed,
                               causal=True, **(QUICK_OPTIONS[circuit] if args.quick else {}))
            for circuit in CIRCUITS}


def plot(runs, path):
    from experiments import plotting
    from experiments.plotting import plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    first = next(iter(runs.values()))
    positions = np.arange(len(first.y_softmax))
    ax.plot(positions, row_errors(first.y_uniform, first.y_softmax), "k:", label="uniform (prefix mean)")
    for name, res in runs.items():
        ax.plot(positions, row_errors(res.y_spike, res.y_softmax), "o-", label=f"{name}: spikes")
        ax.plot(positions, row_errors(res.y_rate, res.y_softmax), "--", label=f"{name}: rate ideal")
    ax.set_xlabel("position s (query reads tokens 0..s)")
    ax.set_ylabel("relative error vs causal softmax")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plotting.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    specs, parent = cli.checked_specs(parser, args, NAME, causal_specs)
    results = dict(zip(specs, cli.simulate_specs(list(specs.values()), args, NAME)))
    run_dir = new_run_dir(parent, f"seed{args.seed}")
    first = results["random"]
    record = run_record(NAME, args.seed, quick=args.quick, spike_seed=args.spike_seed,
                        source={"synthetic": QUICK_SIZES if args.quick else SIZES},
                        circuits={name: r.circuit.config for name, r in results.items()},
                        parameters={name: r.spec.params.to_json() for name, r in results.items()}, device=first.device)
    write_json(run_dir / "params.json", record)
    for name, result in results.items():
        save_run_spikes(run_dir / name, result.circuit, record, NAME, args.keep_all_spikes, args.export)
    write_json(run_dir / "metrics.json", {name: r.metrics for name, r in results.items()})
    write_atomic(run_dir / "outputs.npz", lambda fh: np.savez_compressed(
        fh, q=first.spec.q, k=first.spec.k, v=first.spec.v, y_softmax=first.y_softmax, y_uniform=first.y_uniform,
        **{f"{name}_{key}": getattr(r, key) for name, r in results.items() for key in ("y_spike", "y_rate")}),
        binary=True)
    if not args.no_figures:
        plot(results, run_dir / "causal_stream.png")
    if not args.quiet:
        for name, r in results.items():
            cli.print_summary(r.metrics, f"{NAME}/{name}")
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
