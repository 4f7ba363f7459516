"""One attention head computed by the spiking neuron-astrocyte circuit, compared with real attention.

    python -m experiments.attention                       # synthetic head, default sizes
    python -m experiments.attention --qkv head.npz        # a user's head: arrays q, k, v [, scale]
    python -m experiments.attention --set tau_ca=5*second --seed 3 --out results/mine

Writes a new run folder (never overwriting) with params.json, metrics.json, outputs.npz and
figures (raster.png, prediction.png). Metrics compare the decoded spiking output with exact softmax
attention, with the circuit's own rate ideal (same features, no spike noise) and the uniform
baseline (mean of V); ``poisson_bound`` is the expected spike-vs-rate error from spike counts.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from analysis.spikes import tolerance_ratio
from analysis.attention import check_qkv, relative_error, softmax_attention, synthetic_head, uniform_attention
from circuits import CIRCUITS
from runs.folders import RESULTS_ROOT, new_run_dir, versions, write_json
from models import ASTROCYTE_MODELS, ENCODER_KINDS
from models.parameters import ParameterError, load_parameter_file, parse_assignments

NAME = "attention"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    head = p.add_argument_group("attention head")
    head.add_argument("--qkv", type=Path, help="npz file with q (L x d), k (L x d), v (L x d_v), optional scale")
    head.add_argument("--tokens", type=int, default=16, help="synthetic head: sequence length L")
    head.add_argument("--dim", type=int, default=8, help="synthetic head: key/query dimension d")
    head.add_argument("--value-dim", type=int, default=8, help="synthetic head: value dimension d_v")
    head.add_argument("--norm", type=float, default=0.7, help="synthetic head: |q|/d^(1/4) = |k|/d^(1/4)")
    circ = p.add_argument_group("circuit")
    circ.add_argument("--circuit", choices=CIRCUITS, default="random",
                      help="random: the paper's random-feature circuit; exact: one key population per token")
    circ.add_argument("--features", type=int, default=256, help="random circuit: number of feature neurons m")
    circ.add_argument("--neurons-per-key", type=int, default=16, help="exact circuit: key neurons per token")
    circ.add_argument("--preload", action="store_true",
                      help="exact circuit: set the afferent weights to k_t instead of writing them with spikes")
    circ.add_argument("--neurons-per-value", type=int, default=32,
                      help="value neurons per value dimension and polarity (ON/OFF)")
    circ.add_argument("--encoders-per-dim", type=int, default=4,
                      help="encoder neurons per input dimension and polarity")
    circ.add_argument("--astrocyte", choices=ASTROCYTE_MODELS, default="minimal", help="astrocyte process model")
    circ.add_argument("--encoder", choices=ENCODER_KINDS, default="regular", help="token spike generator")
    circ.add_argument("--causal", action="store_true",
                      help="autoregressive attention: read query s right after writing token s")
    circ.add_argument("--block-astrocyte", action="store_true",
                      help="negative control: replace the astrocyte's per-query signal by its mean")
    run = p.add_argument_group("run")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="override a model parameter, e.g. --set tau_ca=5*second (repeatable)")
    run.add_argument("--params", type=Path, help="file of overrides (JSON object or name = value lines)")
    run.add_argument("--seed", type=int, default=0, help="seed of the head, the random features and the spikes")
    run.add_argument("--out", type=Path, default=None, help="parent folder of the run folder "
                     f"(default results/{NAME})")
    add_device_options(run)
    run.add_argument("--no-figures", action="store_true", help="skip the figures")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def add_device_options(parser) -> None:
    """--device, --threads and --standalone-cache, shared by the experiments that run their circuits
    through :func:`simulate`; :func:`device_argv` passes them on."""
    parser.add_argument("--device", choices=("runtime", "cpp_standalone"), default="runtime",
                        help="Brian2 device; cpp_standalone compiles once per circuit structure (cached) and "
                             "re-runs the binary for new inputs and parameter values")
    parser.add_argument("--threads", type=int, default=0,
                        help="OpenMP threads of the cpp_standalone binary (0: single-threaded)")
    parser.add_argument("--standalone-cache", type=Path, default=None,
                        help="folder of compiled standalone projects (default ~/.cache/astro-transformer/standalone)")


def new_standalone(args):
    """A ``circuits.standalone.StandaloneCircuits`` for ``args`` (``--device cpp_standalone``), else None."""
    if args.device != "cpp_standalone":
        return None
    from circuits.standalone import StandaloneCircuits

    return StandaloneCircuits(args.circuit, root=args.standalone_cache, threads=args.threads)


def release_device(result) -> None:
    """Close the standalone circuits a :func:`simulate` result holds (call once its monitors are read)."""
    if result["standalone"] is not None:
        result["standalone"].close()


def device_argv(args) -> list:
    """The device options of ``args`` as command-line arguments of this experiment."""
    argv = ["--device", args.device, "--threads", str(args.threads)]
    return argv + (["--standalone-cache", str(args.standalone_cache)] if args.standalone_cache else [])


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


def prepare(args) -> dict:
    """Everything that can be checked before simulating: head, parameters, sizes."""
    from circuits import circuit_parameters

    overrides = {}
    if args.params is not None:
        overrides.update(load_parameter_file(args.params))
    overrides.update(parse_assignments(args.overrides))
    params = circuit_parameters(args.circuit, args.astrocyte, overrides)
    for name in ("features", "neurons_per_key", "neurons_per_value", "encoders_per_dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.qkv is not None:
        q, k, v, scale = load_qkv(args.qkv)
        source = {"qkv_file": str(args.qkv)}
    else:
        for name in ("tokens", "dim", "value_dim"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        if not np.isfinite(args.norm) or args.norm <= 0:
            raise ValueError(f"--norm must be a positive number, got {args.norm}")
        q, k, v = synthetic_head(args.tokens, args.dim, args.value_dim, args.norm, np.random.default_rng(args.seed))
        q, k, v, scale = check_qkv(q, k, v)
        source = {"synthetic": {"tokens": args.tokens, "dim": args.dim, "value_dim": args.value_dim,
                                "norm": args.norm, "seed": args.seed}}
    if args.threads < 0 or (args.threads and args.device != "cpp_standalone"):
        raise ValueError(f"--threads must be >= 0 and needs --device cpp_standalone, "
                         f"got {args.threads} on {args.device}")
    if args.causal and len(q) != len(k):
        raise ValueError(f"--causal needs one query per token, got {len(q)} queries and {len(k)} keys")
    return {"q": q, "k": k, "v": v, "scale": scale, "params": params, "source": source}


def simulate(args, prepared, standalone=None) -> dict:
    """Build and run the circuit; return decoded outputs, references and the circuit.

    ``standalone``: a ``circuits.standalone.StandaloneCircuits`` to run on with ``--device
    cpp_standalone`` (default: a new one, returned as ``result["standalone"]`` for the caller to
    close)."""
    from circuits import exact_kernel, random_feature
    from runs.folders import progress_reporter

    q, k, v, scale = prepared["q"], prepared["k"], prepared["v"], prepared["scale"]
    t0 = time.perf_counter()
    common = dict(scale=scale, neurons_per_value=args.neurons_per_value, encoders_per_dim=args.encoders_per_dim,
                  astrocyte=args.astrocyte, encoder=args.encoder, block_astrocyte=args.block_astrocyte,
                  causal=args.causal, params=prepared["params"], seed=args.seed)
    if args.circuit == "exact":
        module, builder = exact_kernel, exact_kernel.build_exact_kernel_circuit
        common.update(neurons_per_key=args.neurons_per_key, preload=args.preload)
        size = f"{args.neurons_per_key} key neurons per token"
    else:
        module, builder = random_feature, random_feature.build_random_feature_circuit
        common.update(n_features=args.features)
        size = f"{args.features} feature neurons"
    if args.device == "cpp_standalone":
        # Holds Brian2's global device until the caller releases it (release_device) once it has
        # read the monitors; a caller running several heads of one structure passes its own.
        standalone = standalone or new_standalone(args)
        if not args.quiet:
            print(f"[{NAME}] {args.circuit} circuit on cpp_standalone: {size}, {len(k)} tokens, "
                  f"{len(q)} queries", file=sys.stderr, flush=True)
        circuit = standalone.run(q, k, v, **common)
    else:
        circuit = builder(q, k, v, **common)
        if not args.quiet:
            print(f"[{NAME}] built {args.circuit} circuit: {size}, "
                  f"{len(k)} tokens, {len(q)} queries; compiling and running "
                  f"{circuit.schedule.duration:.1f} s of biological time", file=sys.stderr, flush=True)
        circuit.run(report=None if args.quiet else progress_reporter(NAME))
    wall = time.perf_counter() - t0
    ideal = module.rate_model(circuit)
    return {"circuit": circuit, "y_spike": circuit.decode(), "y_rate": ideal["y_rate"], "noise": ideal["noise"],
            "y_softmax": softmax_attention(q, k, v, scale, causal=args.causal),
            "y_uniform": uniform_attention(v, len(q), causal=args.causal),
            "wall_seconds": wall, "standalone": standalone}


def metrics_of(result) -> dict:
    ys, yr, yt, yu = result["y_spike"], result["y_rate"], result["y_softmax"], result["y_uniform"]
    noise = result["noise"]
    circuit = result["circuit"]
    return {
        "rel_err_spike_vs_softmax": relative_error(ys, yt),
        "rel_err_spike_vs_rate": relative_error(ys, yr),
        "rel_err_rate_vs_softmax": relative_error(yr, yt),
        "rel_err_uniform_vs_softmax": relative_error(yu, yt),
        "spike_vs_rate_over_bound": relative_error(ys, yr) / noise["relative_error"],
        "poisson_bound": noise["relative_error"],
        "bound_tolerance_ratio": tolerance_ratio(noise),
        "poisson_bound_output": noise["relative_error_output"],
        "poisson_bound_read": noise["relative_error_read"],
        "poisson_bound_write": noise["relative_error_write"],
        "cosine_spike_vs_softmax": float(np.sum(ys * yt) / (np.linalg.norm(ys) * np.linalg.norm(yt))),
        "total_spikes": circuit.total_spikes(),
        "wall_seconds": result["wall_seconds"],
        "simulated_seconds": circuit.schedule.duration,
    }


def write_run(args, prepared, result, metrics, label="", experiment=NAME) -> Path:
    """Write params.json, metrics.json, outputs.npz and figures into a new run folder under
    ``args.out`` (default results/attention)."""
    circuit = result["circuit"]
    run_dir = new_run_dir(args.out if args.out is not None else RESULTS_ROOT / NAME,
                          "-".join(filter(None, [label, args.circuit, f"seed{args.seed}"])))
    write_json(run_dir / "params.json", {
        "experiment": experiment, "seed": args.seed, "circuit": circuit.config, "source": prepared["source"],
        "parameters": prepared["params"].to_json(),
        "device": {"name": args.device, "openmp_threads": args.threads},
        "versions": versions()})
    np.savez_compressed(run_dir / "outputs.npz", y_spike=result["y_spike"], y_rate=result["y_rate"],
                        y_softmax=result["y_softmax"], y_uniform=result["y_uniform"], q=prepared["q"],
                        k=prepared["k"], v=prepared["v"], scale=prepared["scale"],
                        population_counts=circuit.population_counts())
    write_json(run_dir / "metrics.json", metrics)
    if not args.no_figures:
        from experiments.plotting import prediction_figure, raster_figure

        size = (f"m = {args.features}" if args.circuit == "random"
                else f"{args.neurons_per_key} key neurons per token")
        raster_figure(circuit.raster_data(), run_dir / "raster.png",
                      f"{args.circuit} circuit, {size}, seed {args.seed}")
        prediction_figure(result["y_softmax"], {
            f"spikes ({metrics['rel_err_spike_vs_softmax']:.1%})": result["y_spike"],
            f"rate ideal ({metrics['rel_err_rate_vs_softmax']:.1%})": result["y_rate"],
            f"uniform baseline ({metrics['rel_err_uniform_vs_softmax']:.1%})": result["y_uniform"]},
            run_dir / "prediction.png", "relative error vs softmax in brackets")
    return run_dir


def print_summary(metrics, label):
    print(f"[{label}] spikes vs softmax {metrics['rel_err_spike_vs_softmax']:.3f} | spikes vs rate ideal "
          f"{metrics['rel_err_spike_vs_rate']:.3f} (Poisson bound {metrics['poisson_bound']:.3f}) | "
          f"rate ideal vs softmax {metrics['rel_err_rate_vs_softmax']:.3f} | uniform baseline "
          f"{metrics['rel_err_uniform_vs_softmax']:.3f}", file=sys.stderr)


def main(argv=None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        prepared = prepare(args)
    except (ParameterError, ValueError) as exc:
        parser.error(str(exc))
    result = simulate(args, prepared)
    metrics = metrics_of(result)
    run_dir = write_run(args, prepared, result, metrics)
    release_device(result)
    if not args.quiet:
        print_summary(metrics, NAME)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
