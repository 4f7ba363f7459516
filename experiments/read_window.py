"""Spike noise of the random-feature circuit against the read window and the value population size.

    python -m experiments.read_window            # t_read = 100 ... 1600 ms; 4 ... 64 neurons per value
    python -m experiments.read_window --quick    # three small runs, for the tests

One small synthetic head (fixed per seed) is run through the spiking circuit at several counting
windows t_read (neurons per value fixed) and several value-population sizes P (t_read fixed).
Each run's decoded output is compared with its own rate ideal (same features, no spike noise);
``poisson_bound`` is the delta-method relative error of the spike counts
(``rate_model(circuit)['noise']``), with its write, read and output parts.

Theory curves: the write part does not depend on t_read or P; the read part's variance scales as
1/t_read (feature counts in the window grow with it) and the output part's as 1/(t_read P) (the
output gain P t_read rho_value eta/kappa). From the parts at the reference run (t_read_ref, P_ref):

    bound(t_read) = sqrt(w^2 + (r^2 + o^2) t_read_ref / t_read),   bound(P) = sqrt(w^2 + r^2 + o^2 P_ref / P)

so the error falls as 1/sqrt(t_read) until the write-phase floor w. Runs of one seed with the same P
share their write phase (same seed, same random stream until the first read), so a seed's t_read
sweep approaches one draw of the write noise, which may lie above or below w. ``noise_dof`` is the
effective degrees of freedom of each run's squared error (``paper_common.noise_dof``), from which
the tests take their tolerance.

Writes results/read_window/<run>/ with params.json, metrics.json and read_window.png.
"""

import numpy as np

from analysis.attention import relative_error, softmax_attention, synthetic_head
from experiments import cli
from experiments import paper_common as fp

NAME = "read_window"

FULL = {"t_read_ms": [100, 200, 400, 800, 1600], "per_value": [4, 8, 16, 32, 64], "t_read_ref_ms": 400,
        "per_value_ref": 16, "features": 64, "tokens": 6, "queries": 6, "dim": 4, "value_dim": 4, "norm": 1.0,
        "seeds": 3}
QUICK = {"t_read_ms": [100, 300], "per_value": [4, 8], "t_read_ref_ms": 300, "per_value_ref": 8,
         "features": 32, "tokens": 4, "queries": 2, "dim": 4, "value_dim": 4, "norm": 1.0, "seeds": 1}


def build_parser():
    return fp.experiment_parser(NAME, __doc__)


def grid(sizes) -> list[tuple[int, int]]:
    """(t_read in ms, neurons per value) of every run: the t_read sweep at P_ref and the P sweep at
    t_read_ref, the reference run once."""
    points = [(t, sizes["per_value_ref"]) for t in sizes["t_read_ms"]]
    points += [(sizes["t_read_ref_ms"], p) for p in sizes["per_value"] if p != sizes["per_value_ref"]]
    return points


def simulate_point(args, sizes, t_read_ms, per_value, run) -> dict:
    """One circuit run; its errors, Poisson bound (and parts) and the bound's degrees of freedom."""
    from circuits.random_feature import rate_model

    seed = args.seed + run
    q, k, v = synthetic_head(sizes["tokens"], sizes["dim"], sizes["value_dim"], sizes["norm"],
                             np.random.default_rng([seed, 11]))
    q = q[: sizes["queries"]]
    circuit = fp.run_random_circuit(NAME, args, q, k, v, f"t_read = {t_read_ms} ms, P = {per_value}, seed {seed}",
                                    n_features=sizes["features"], neurons_per_value=per_value,
                                    params={**fp.PROTOCOL, "t_read": f"{t_read_ms}*ms"}, seed=seed)
    ideal = rate_model(circuit)
    noise = ideal["noise"]
    y_spike = circuit.decode()
    return {"t_read_ms": t_read_ms, "per_value": per_value, "seed": seed,
            "spike_vs_rate": relative_error(y_spike, ideal["y_rate"]),
            "spike_vs_softmax": relative_error(y_spike, softmax_attention(q, k, v, circuit.config["scale"])),
            "poisson_bound": noise["relative_error"], "bound_write": noise["relative_error_write"],
            "bound_read": noise["relative_error_read"], "bound_output": noise["relative_error_output"],
            "noise_dof": fp.noise_dof(circuit, noise)}


def bound_curves(rows, sizes) -> dict:
    """Per seed: theory curves of the bound against t_read and P from that seed's reference run
    (module docstring), on a fine grid, and its write-phase floor."""
    t = np.geomspace(min(sizes["t_read_ms"]), max(sizes["t_read_ms"]), 50)
    p = np.geomspace(min(sizes["per_value"]), max(sizes["per_value"]), 50)
    curves = {}
    for ref in rows:
        if (ref["t_read_ms"], ref["per_value"]) != (sizes["t_read_ref_ms"], sizes["per_value_ref"]):
            continue
        w2, r2, o2 = ref["bound_write"] ** 2, ref["bound_read"] ** 2, ref["bound_output"] ** 2
        curves[ref["seed"]] = {"t_read_ms": t, "vs_t_read": np.sqrt(w2 + (r2 + o2) * sizes["t_read_ref_ms"] / t),
                               "per_value": p, "vs_per_value": np.sqrt(w2 + r2 + o2 * sizes["per_value_ref"] / p),
                               "write_floor": np.sqrt(w2)}
    return curves


def rms_by_point(rows) -> list[dict]:
    """Per (t_read, P): rms over seeds of the measured spike-vs-rate error and of the bound."""
    out = []
    for key in sorted({(r["t_read_ms"], r["per_value"]) for r in rows}):
        sel = [r for r in rows if (r["t_read_ms"], r["per_value"]) == key]
        measured = float(np.sqrt(np.mean([r["spike_vs_rate"] ** 2 for r in sel])))
        bound = float(np.sqrt(np.mean([r["poisson_bound"] ** 2 for r in sel])))
        out.append({"t_read_ms": key[0], "per_value": key[1], "rms_spike_vs_rate": measured,
                    "rms_poisson_bound": bound, "ratio": measured / bound})
    return out


def plot(rows, curves, sizes, path):
    import matplotlib.pyplot as plt

    with fp.paper_style():
        fig, axes = plt.subplots(1, 2, figsize=(6.6, 3.0), sharey=True)
        panels = [("t_read_ms", "per_value", "read window t$_{read}$ (ms)", "vs_t_read",
                   f"P = {sizes['per_value_ref']} neurons per value"),
                  ("per_value", "t_read_ms", "value neurons per dimension P", "vs_per_value",
                   f"t$_{{read}}$ = {sizes['t_read_ref_ms']} ms")]
        fixed = {"per_value": sizes["per_value_ref"], "t_read_ms": sizes["t_read_ref_ms"]}
        colors = plt.cm.tab10(np.arange(len(curves)))
        for ax, (x, other, label, curve, title), letter in zip(axes, panels, "ab"):
            for (seed, c), color in zip(curves.items(), colors):
                sel = [r for r in rows if r[other] == fixed[other] and r["seed"] == seed]
                ax.plot([r[x] for r in sel], [r["spike_vs_rate"] for r in sel], "o", ms=4, color=color,
                        label=f"seed {seed}: spikes vs rate ideal")
                ax.plot(c[x], c[curve], "-", color=color, lw=0.9, label="  its Poisson bound")
                ax.axhline(c["write_floor"], color=color, ls=":", lw=0.7, label="  its write-phase floor")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            fp.value_ticks(ax.xaxis, sizes[x if x == "t_read_ms" else "per_value"])
            ax.set_xlabel(label)
            ax.set_title(title)
            fp.panel_letter(ax, letter)
        axes[0].set_ylabel("relative error, spikes vs rate ideal")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        fig.suptitle(f"random-feature circuit, m = {sizes['features']}, L = {sizes['tokens']}, d = {sizes['dim']}, "
                     f"d$_v$ = {sizes['value_dim']}, |q|/d$^{{1/4}}$ = {sizes['norm']}; within a seed the t$_{{read}}$ "
                     "runs share one write-phase draw", fontsize=7.5, y=1.0)
        fig.tight_layout()
        return fp.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None):
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    points = grid(sizes)
    run_dir = fp.new_run(NAME, args, sizes,
                         varied={"t_read, neurons_per_value": points})
    rows = [simulate_point(args, sizes, t, p, run) for run in range(sizes["seeds"]) for t, p in points]
    curves = bound_curves(rows, sizes)
    if not args.no_figures:
        plot(rows, curves, sizes, run_dir / f"{NAME}.png")
    summary_rows = rms_by_point(rows)
    metrics = {"runs": rows, "points": summary_rows,
               "max_ratio_spike_over_bound": max(r["spike_vs_rate"] / r["poisson_bound"] for r in rows),
               "rms_ratio_spike_over_bound": float(np.sqrt(np.mean([(r["spike_vs_rate"] / r["poisson_bound"]) ** 2
                                                                   for r in rows]))),
               "write_floor_per_seed": {seed: float(c["write_floor"]) for seed, c in curves.items()}}
    summary = "; ".join(f"T {r['t_read_ms']} ms P {r['per_value']}: {r['rms_spike_vs_rate']:.3f} vs bound "
                        f"{r['rms_poisson_bound']:.3f}" for r in summary_rows)
    return fp.finish(NAME, args, run_dir, metrics, summary)


if __name__ == "__main__":
    main()
