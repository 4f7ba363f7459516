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
from circuits import circuit_kind
from circuits.head import HeadResult, head_spec, simulate
from circuits.seeds import SeedStreams
from experiments import cli
from runs.folders import new_run_dir, run_record, write_json
from runs.spikes import save_run_spikes

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
    """Read q, k, v (and optional scale) from an npz file; ValueError with one line if unusable."""
    if not path.is_file():
        raise ValueError(f"--qkv file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # zip, pickle and format errors all mean the same to the user
        raise ValueError(f"--qkv {path}: not a readable .npz file ({exc.__class__.__name__}: {exc})") from None
    missing = [n for n in ("q", "k", "v") if n not in arrays]
    if missing:
        raise ValueError(f"--qkv {path}: missing array(s) {', '.join(missing)} (found {', '.join(arrays) or 'none'})")
    scale = arrays.get("scale")
    if scale is not None and np.size(scale) != 1:
        raise ValueError(f"--qkv {path}: scale must be a scalar, got shape {np.shape(scale)}")
    return check_qkv(arrays["q"], arrays["k"], arrays["v"], None if scale is None else float(np.ravel(scale)[0]))


def synthetic_args_head(args):
    """The synthetic head of --tokens/--dim/--value-dim/--norm, from the head stream of --seed."""
    for name in ("tokens", "dim", "value_dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not np.isfinite(args.norm) or args.norm <= 0:
        raise ValueError(f"--norm must be a positive number, got {args.norm}")
    return synthetic_head(args.tokens, args.dim, args.value_dim, args.norm, SeedStreams(args.seed).head)


def write_run(result: HeadResult, parent, label: str, experiment: str, source: dict, figures=True,
              keep_all_spikes=False, export=(), extra_metrics=None) -> Path:
    """A new run folder under ``parent`` with params.json, metrics.json (the result's metrics and
    ``extra_metrics``), outputs.npz, spikes.npz (``runs.spikes``; ``export=("nwb",)`` adds run.nwb)
    and (``figures``) raster.png and prediction.png; returns it."""
    spec, circuit, metrics = result.spec, result.circuit, {**result.metrics, **(extra_metrics or {})}
    run_dir = new_run_dir(Path(parent), label)
    record = run_record(experiment, spec.seed, spike_seed=spec.spike_seed, circuit=circuit.config, source=source,
                        parameters=spec.params.to_json(), device=result.device)
    write_json(run_dir / "params.json", record)
    save_run_spikes(run_dir, circuit, record, experiment, keep_all_spikes, export)
    np.savez_compressed(run_dir / "outputs.npz", y_spike=result.y_spike, y_rate=result.y_rate,
                        y_softmax=result.y_softmax, y_uniform=result.y_uniform, q=spec.q, k=spec.k, v=spec.v,
                        scale=spec.scale, population_counts=result.population_counts())
    write_json(run_dir / "metrics.json", metrics)
    if figures:
        from experiments.plotting import prediction_figure, raster_figure

        size = circuit_kind(spec.circuit).size_label(circuit.config)
        raster_figure(result.raster(), run_dir / "raster.png", f"{spec.circuit} circuit, {size}, seed {spec.seed}")
        prediction_figure(result.y_softmax, {
            f"spikes ({metrics['rel_err_spike_vs_softmax']:.1%})": result.y_spike,
            f"rate ideal ({metrics['rel_err_rate_vs_softmax']:.1%})": result.y_rate,
            f"uniform baseline ({metrics['rel_err_uniform_vs_softmax']:.1%})": result.y_uniform},
            run_dir / "prediction.png", "relative error vs softmax in brackets")
    return run_dir


def run_label(spec, *parts) -> str:
    """The run folder's label: ``parts``, circuit, seed and spike seed, e.g. ``L2H5-exact-seed0``."""
    return "-".join(filter(None, [*parts, spec.circuit, f"seed{spec.seed}",
                                  None if spec.spike_seed is None else f"spikes{spec.spike_seed}"]))


def simulate_with_progress(spec, args, name, runner):
    """Simulate one head on ``runner`` with progress lines on stderr (unless --quiet)."""
    from runs.folders import progress_reporter

    size = circuit_kind(spec.circuit).size_label(spec.options)
    cli.say(name, args, f"{spec.circuit} circuit on {args.device}: {size}, {len(spec.k)} tokens, {len(spec.q)} "
                        f"queries")
    return simulate(spec, runner, None if args.quiet else progress_reporter(name))


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
