"""Shared pieces of the paper experiments (feature_scaling, read_window, astrocyte_models, forgetting,
raster_gallery): their common command line, run folders, circuit runs, noise statistics and the
figure style.

Every paper experiment is ``python -m experiments.<name> [--seed N] [--out DIR] [--quick]``; it
writes a new run folder ``<out>/<UTC time>-<label>seed<N>/`` (``out`` defaults to
``results/<name>``) holding params.json (parameters, sizes, versions), metrics.json and its figure.
``--quick`` selects small sizes (used by the tests); ``--quiet`` and ``--no-figures`` make the
experiments usable as points of ``experiments.sweep``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)
from matplotlib.ticker import NullFormatter  # noqa: E402

from circuits.protocol import SHORT_PROTOCOL  # noqa: E402
from experiments import cli, plotting  # noqa: E402
from experiments.cli import say  # noqa: E402,F401  (the paper experiments' progress lines)
from runs.folders import new_run_dir, output_parent, progress_reporter, run_record, write_json  # noqa: E402

#: Protocol of the paper experiments: shorter than the default (300/800 ms learning/counting) so
#: that a sweep of circuits fits on a small machine.
PROTOCOL = SHORT_PROTOCOL


def experiment_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The options every paper experiment has; the experiment adds its own."""
    p = cli.experiment_parser(name, doc)
    p.add_argument("--seed", type=int, default=0, help="base seed of the heads, random features and spikes")
    p.add_argument("--out", type=Path, default=None, help=f"parent folder of the run folder (default results/{name})")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds to a minute; used by the tests)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-figures", action="store_true", help="skip the figure")
    return p


def new_run(name: str, args, sizes: dict, varied=None, protocol=PROTOCOL) -> Path:
    """A fresh run folder for this experiment (never overwrites an earlier one) holding params.json:
    the experiment's sizes, the base circuit parameter set (random-feature circuit, minimal
    astrocyte, ``protocol``: :data:`PROTOCOL` unless the experiment uses another), the overrides
    ``varied`` between its circuit runs, the seed and the software versions."""
    from circuits import circuit_parameters

    run_dir = new_run_dir(output_parent(args.out, name), f"quick-seed{args.seed}" if args.quick else f"seed{args.seed}")
    write_json(run_dir / "params.json", run_record(
        name, args.seed, quick=args.quick, sizes=sizes,
        parameters=circuit_parameters("random", "minimal", protocol).to_json(), varied_per_run=varied or {}))
    return run_dir


def finish(name: str, args, run_dir: Path, metrics: dict, summary: str) -> Path:
    """Write metrics.json, print the summary (stderr) and the run folder (stdout)."""
    write_json(run_dir / "metrics.json", metrics)
    say(name, args, summary)
    print(run_dir)
    return run_dir


def run_circuit(name: str, args, circuit, what: str):
    """Run a built circuit with progress on stderr; return it."""
    say(name, args, f"{what}: simulating {circuit.schedule.duration:.1f} s of biological time")
    circuit.run(report=None if args.quiet else progress_reporter(name))
    return circuit


def run_random_circuit(name: str, args, q, k, v, what: str, **build):
    """Build the random-feature circuit of one head with keyword arguments ``build`` (those of
    ``build_random_feature_circuit``), run it and return it."""
    from circuits.random_feature import build_random_feature_circuit

    return run_circuit(name, args, build_random_feature_circuit(q, k, v, **build), what)


def noise_dof(circuit, noise: dict) -> float:
    """Effective degrees of freedom n_eff = (tr C)^2 / tr(C^2) of the squared spike-noise error.

    C is the covariance of the decoded output's elements (n_queries * d_v of them); the squared
    error |y_hat - y|^2 is then a sum of chi-square(1) terms along C's eigenvectors, and its ratio to
    its expectation tr C has standard deviation sqrt(2 / n_eff). The write and read stages are NOT
    independent across elements: one token's write counts move every query's output, one read's
    counts move all d_v outputs of that query. Treating the per-element variances as independent
    overstates n_eff two- to four-fold when those stages matter (checked by Monte Carlo of the
    counts on this experiment's heads), so C is built in full, to first order (delta method) in the
    Poisson counts, with the measured counts as plug-in means:

        y_si = sum_j r_sj (n^T v)_ji / D_s,  D_s = sum_j r_sj z_j,  z = sum_t n_t
        write: dy_si/dn_tj = r_sj (v_ti - y_si) / D_s;  read: dy_si/dr_sj = ((n^T v)_ji - y_si z_j) / D_s

    (n: L x m write counts, r: n_queries x m read counts of the key layer) plus the independent
    output-count variances ``noise['var_output']``. ``noise`` is ``rate_model(circuit)['noise']``.
    """
    from analysis.spikes import effective_dof, output_covariance

    layer = circuit.config["key_layer"]
    n = circuit.window_counts(layer, circuit.schedule.learn_windows())
    r = circuit.window_counts(layer, circuit.schedule.read_windows())
    return effective_dof(output_covariance(n, r, circuit.inputs["values"], noise["var_output"]))


# ------------------------------------------------------------------------------------------ figures

def paper_style():
    """Matplotlib settings for print: small fonts, thin lines, no top/right spines."""
    return plt.rc_context({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 6.5,
                           "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.0,
                           "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 200,
                           "legend.frameon": False})


def panel_letter(ax, letter: str) -> None:
    ax.text(-0.12, 1.04, letter, transform=ax.transAxes, fontweight="bold", fontsize=9, va="bottom", ha="right")


def value_ticks(axis, values) -> None:
    """Ticks of a log axis at the given values, labelled as plain numbers."""
    axis.set_ticks(list(values), [f"{v:g}" for v in values])
    axis.set_minor_formatter(NullFormatter())


def save(fig, path: Path) -> Path:
    plotting.save(fig, path, bbox_inches="tight", dpi=None)     # dpi None: the paper style's savefig.dpi
    return path
