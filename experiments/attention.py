"""One attention head computed by the spiking neuron-astrocyte circuit, compared with real attention.

    python -m experiments.attention                       # synthetic head, default sizes
    python -m experiments.attention --qkv head.npz        # a user's head: arrays q, k, v [, scale]
    python -m experiments.attention --set tau_ca=5*second --seed 3 --out results/mine

Writes a new run folder (never overwriting) with params.json, metrics.json, outputs.npz and
figures (raster.png, prediction.png). Metrics compare the decoded spiking output with exact softmax
attention, with the circuit's own rate ideal (same features, no spike noise) and the uniform
baseline (mean of V); ``poisson_bound`` is the expected spike-vs-rate error from spike counts.
"""

from pathlib import Path

import numpy as np

from analysis.attention import check_qkv, synthetic_head
from circuits.head import head_spec
from circuits.seeds import SeedStreams
from experiments import cli
from experiments.head_run import run_label, simulate_with_progress, write_run
from runs.folders import read_npz

NAME = "attention"


def build_parser():
    p = cli.experiment_parser(NAME, __doc__)
    head = p.add_argument_group("attention head")
    head.add_argument("--qkv", type=Path, help="npz file with q (L x d), k (L x d), v (L x d_v), optional scale")
    head.add_argument("--tokens", type=int, default=16, help="synthetic head: sequence length L")
    head.add_argument("--dim", type=int, default=8, help="synthetic head: key/query dimension d")
    head.add_argument("--value-dim", type=int, default=8, help="synthetic head: value dimension d_v")
    head.add_argument("--norm", type=float, default=0.7, help="synthetic head: |q|/d^(1/4) = |k|/d^(1/4)")
    cli.add_circuit_options(p)
    cli.add_run_options(p, NAME)
    return p


def load_qkv(path: Path):
    """Read q, k, v (and optional scale) from an npz file; ValueError with one line naming it if unusable."""
    if not path.is_file():
        raise ValueError(f"--qkv file not found: {path}")
    todo = "give an .npz file with arrays q, k, v (and optionally scale)"
    arrays = read_npz(path, todo, option="--qkv")
    missing = [n for n in ("q", "k", "v") if n not in arrays]
    if missing:
        raise ValueError(f"--qkv {path}: missing array(s) {', '.join(missing)} (found {', '.join(arrays) or 'none'})")
    scale = arrays.get("scale")
    if scale is not None and np.size(scale) != 1:
        raise ValueError(f"--qkv {path}: scale must be a scalar, got shape {np.shape(scale)}")
    try:
        return check_qkv(arrays["q"], arrays["k"], arrays["v"], None if scale is None else float(np.ravel(scale)[0]))
    except (ValueError, TypeError) as exc:      # a scale that is no number: TypeError or ValueError of float()
        raise ValueError(f"--qkv {path}: {exc}") from None


def synthetic_args_head(args):
    """The synthetic head of --tokens/--dim/--value-dim/--norm, from the head stream of --seed."""
    for name in ("tokens", "dim", "value_dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not np.isfinite(args.norm) or args.norm <= 0:
        raise ValueError(f"--norm must be a positive number, got {args.norm}")
    return synthetic_head(args.tokens, args.dim, args.value_dim, args.norm, SeedStreams(args.seed).head)


def head_and_source(args) -> tuple:
    """The head spec of the command line and where its q, k, v came from (for params.json)."""
    if args.qkv is not None:
        q, k, v, scale = load_qkv(args.qkv)
        source = {"qkv_file": str(args.qkv)}
    else:
        q, k, v = synthetic_args_head(args)
        scale = None
        source = {"synthetic": {"tokens": args.tokens, "dim": args.dim, "value_dim": args.value_dim,
                                "norm": args.norm, "seed": args.seed}}
    spec = head_spec(q, k, v, args.circuit, scale=scale, params=cli.parameter_overrides(args), seed=args.seed,
                     spike_seed=args.spike_seed, **cli.circuit_options(args))
    return spec, source


@cli.stops_on_failed_writes
def main(argv=None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    (spec, source), parent = cli.checked_specs(parser, args, NAME, head_and_source)
    with cli.runner(args) as runner:
        result = simulate_with_progress(spec, args, NAME, runner)
    run_dir = write_run(result, parent, run_label(spec), NAME, source, figures=not args.no_figures,
                        keep_all_spikes=args.keep_all_spikes, export=args.export)
    if not args.quiet:
        cli.print_summary(result.metrics, NAME)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
