"""Multi-head attention: h heads over one token stream, each its own circuit, outputs concatenated.

    python -m experiments.multi_head                 # 4 heads of the random-feature circuit
    python -m experiments.multi_head --circuit exact --heads 2 --quick

Token embeddings X (L x D) are projected by per-head random matrices into q_h, k_h (d) and v_h
(d_v); the projections are scaled so that |q|/d^(1/4) is about ``--norm``. Every head is a complete
circuit (its own feature or key neurons, tripartite synapses and astrocyte) driven by the same
token schedule; heads do not interact, so they are simulated one after another, or in parallel
processes with ``--workers`` (same results). The output is the concatenation [y_1 ... y_h]
(L x h d_v). Writes metrics.json (per head and for the concatenation), outputs.npz (the
concatenated outputs and each head's ``head<h>_q``, ``_k``, ``_v``), each head's spikes in
``head<h>/spikes.npz`` (and ``run.nwb`` with ``--export nwb``) and multi_head.png (error per head).
"""

import sys
from pathlib import Path

import numpy as np

from analysis.attention import relative_error
from circuits.head import head_spec
from circuits.protocol import SHORT_PROTOCOL
from circuits.seeds import SeedStreams
from experiments import cli
from runs.folders import new_run_dir, run_record, write_atomic, write_json
from runs.spikes import save_run_spikes

NAME = "multi_head"
#: --quick: small circuits and the short protocol.
QUICK = {"n_features": 64, "neurons_per_key": 4, "neurons_per_value": 16}


def build_parser():
    p = cli.experiment_parser(NAME, __doc__)
    p.add_argument("--heads", type=int, default=4, help="number of heads h")
    p.add_argument("--tokens", type=int, default=12, help="sequence length L")
    p.add_argument("--model-dim", type=int, default=32, help="token embedding dimension D")
    p.add_argument("--dim", type=int, default=8, help="per-head key/query dimension d")
    p.add_argument("--value-dim", type=int, default=4, help="per-head value dimension d_v")
    p.add_argument("--norm", type=float, default=0.7, help="typical |q|/d^(1/4) of every head")
    p.add_argument("--quick", action="store_true", help="small circuits and short windows")
    p.add_argument("--workers", type=int, default=1, help="worker processes that simulate heads in parallel")
    cli.add_circuit_options(p)
    cli.add_run_options(p, NAME, seed_help="seed of the embeddings and projections; head h runs with seed + h")
    return p


def project_heads(n_heads, n_tokens, model_dim, dim, value_dim, norm, rng):
    """Token embeddings and per-head Q/K/V: X ~ N(0, 1), W ~ N(0, 1/D) rescaled so that the mean
    |q|/d^(1/4) (and |k|/d^(1/4)) of each head equals ``norm``."""
    x = rng.standard_normal((n_tokens, model_dim))
    heads = []
    for _ in range(n_heads):
        w_q, w_k, w_v = (rng.standard_normal((model_dim, n)) / np.sqrt(model_dim) for n in (dim, dim, value_dim))
        q, k = x @ w_q, x @ w_k
        q *= norm * dim ** 0.25 / np.linalg.norm(q, axis=1).mean()
        k *= norm * dim ** 0.25 / np.linalg.norm(k, axis=1).mean()
        heads.append((q, k, x @ w_v))
    return x, heads


def plot(per_head, concat, path):
    from experiments import plotting
    from experiments.plotting import plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    idx = np.arange(len(per_head))
    width = 0.27
    for offset, key, label in ((-width, "rel_err_spike_vs_softmax", "spikes"),
                               (0, "rel_err_rate_vs_softmax", "rate ideal"),
                               (width, "rel_err_uniform_vs_softmax", "uniform baseline")):
        ax.bar(idx + offset, [m[key] for m in per_head], width, label=label)
    ax.axhline(concat["rel_err_spike_vs_softmax"], color="k", ls="--", lw=0.8,
               label="spikes, concatenated heads")
    ax.set_xticks(idx, [f"head {h}" for h in idx])
    ax.set_ylabel("relative error vs softmax")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plotting.save(fig, path)


def head_specs(args) -> list:
    """Checked specs of the h heads (ValueError/ParameterError with one line)."""
    for name in ("heads", "tokens", "model_dim", "dim", "value_dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    _, heads = project_heads(args.heads, args.tokens, args.model_dim, args.dim, args.value_dim, args.norm,
                             SeedStreams(args.seed).head)
    options = cli.circuit_options(args)
    overrides = cli.parameter_overrides(args)
    if args.quick:
        options.update({name: value for name, value in QUICK.items() if name in options})
        overrides = {**SHORT_PROTOCOL, **overrides}
    return [head_spec(q, k, v, args.circuit, params=overrides, seed=args.seed + h, spike_seed=args.spike_seed,
                      **options) for h, (q, k, v) in enumerate(heads)]


@cli.stops_on_failed_writes
def main(argv=None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    specs, parent = cli.checked_specs(parser, args, NAME, head_specs)
    # Heads share one structure: on cpp_standalone each worker compiles it once (or finds it cached).
    results = cli.simulate_specs(specs, args, NAME, args.workers)
    metrics = [r.metrics for r in results]
    concat = {key: np.concatenate([getattr(r, key) for r in results], axis=1)
              for key in ("y_spike", "y_rate", "y_softmax", "y_uniform")}
    summary = {f"rel_err_{name}_vs_softmax": relative_error(concat[f"y_{name}"], concat["y_softmax"])
               for name in ("spike", "rate", "uniform")}
    run_dir = new_run_dir(parent, f"{args.circuit}-seed{args.seed}")
    record = run_record(NAME, args.seed, heads=args.heads, circuit=results[0].circuit.config,
                        parameters=specs[0].params.to_json(), device=results[0].device,
                        source={k: getattr(args, k) for k in ("tokens", "model_dim", "dim", "value_dim", "norm")})
    write_json(run_dir / "params.json", record)
    for h, result in enumerate(results):
        save_run_spikes(run_dir / f"head{h}", result.circuit, {**record, "seed": result.spec.seed}, NAME,
                        args.keep_all_spikes, args.export)
    write_json(run_dir / "metrics.json", {"concatenated": summary, "heads": metrics})
    write_atomic(run_dir / "outputs.npz", lambda fh: np.savez_compressed(
        fh, **concat, **{f"head{h}_{name}": getattr(spec, name) for h, spec in enumerate(specs) for name in "qkv"}),
        binary=True)
    if not args.no_figures:
        plot(metrics, summary, run_dir / "multi_head.png")
    if not args.quiet:
        print(f"[{NAME}] concatenated output: spikes {summary['rel_err_spike_vs_softmax']:.3f}, rate ideal "
              f"{summary['rel_err_rate_vs_softmax']:.3f}, uniform {summary['rel_err_uniform_vs_softmax']:.3f}",
              file=sys.stderr)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
