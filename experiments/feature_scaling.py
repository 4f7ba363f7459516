"""Attention error of the random-feature circuit against the number of feature neurons m.

    python -m experiments.feature_scaling              # m = 16 ... 4096, |q|/d^(1/4) = 0.5, 1.0, 1.5
    python -m experiments.feature_scaling --quick      # small sizes, for the tests

Rate ideal (NumPy, no spikes): linear attention with m positive random features, i.e. the circuit's
own ideal (``analysis.features``, ``analysis.attention.kernel_attention``), on synthetic heads
(L tokens, d = key dimension, d_v = value dimension, every |q|/d^(1/4) = |k|/d^(1/4) = norm, V ~ N(0, 1)).
Its relative Frobenius error against softmax attention is averaged in mean square over ``--heads``
heads (a new head and new features for every head and m).

Theory: with x = q/d^(1/4), y_t = k_t/d^(1/4) and u_t = x + y_t, the kernel estimates are
K_t (1 + eps_t) with Cov(eps_t, eps_t') = (exp(u_t . u_t') - 1) / m: all entries share the same
features; t = t' is Performer's per-entry error sqrt((exp|x+y|^2 - 1)/m) (docs/model.md §3).
Linearising the ratio y_hat = sum_t K_t (1+eps_t) v_t / sum_t K_t (1+eps_t) about eps = 0 gives
y_hat - y = sum_t a_t eps_t (v_t - y) (a: softmax weights), whose expected square is
sum_tt' a_t a_t' Cov(eps_t, eps_t') (v_t - y).(v_t' - y). This delta-method rms is exactly
proportional to 1/sqrt(m); it is what the measured rms approaches once m is large enough.

Spiking points: the full circuit at a few small m (one norm, small L and d), its decoded output's
error against softmax beside its own rate ideal and the expected total sqrt(rate^2 + Poisson^2).

Writes results/feature_scaling/<run>/ with params.json, metrics.json and feature_scaling.png.
"""

import numpy as np

from analysis.attention import (attention_weights, relative_error, softmax_attention, synthetic_head,
                                uniform_attention)
from analysis.features import draw_feature_weights, performer_attention
from analysis.spikes import expected_total_error
from experiments import cli
from experiments import paper_common as fp

NAME = "feature_scaling"

FULL = {"features": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096], "norms": [0.5, 1.0, 1.5], "heads": 30,
        "tokens": 8, "dim": 4, "value_dim": 4, "fit_from": 64,
        "spike_features": [16, 64, 256], "spike_norm": 1.0, "spike_seeds": 2, "spike_queries": 8,
        "neurons_per_value": 16}
QUICK = {"features": [64, 256, 1024, 4096], "norms": [0.5], "heads": 30,
         "tokens": 4, "dim": 4, "value_dim": 4, "fit_from": 64,
         "spike_features": [32], "spike_norm": 1.0, "spike_seeds": 1, "spike_queries": 2,
         "neurons_per_value": 16}


def build_parser():
    return fp.experiment_parser(NAME, __doc__)


# ------------------------------------------------------------------------------------ NumPy analysis

def delta_method_error_sq(q, k, v, scale, n_features) -> float:
    """Expected squared relative error E|Y_hat - Y|_F^2 / |Y|_F^2 of linear attention with
    ``n_features`` positive random features against softmax attention, to first order in 1/m
    (see the module docstring). q: (Lq x d), k: (L x d), v: (L x d_v)."""
    x, y = np.sqrt(scale) * q, np.sqrt(scale) * k
    y_soft = softmax_attention(q, k, v, scale)
    a = attention_weights(q, k, scale)
    total = 0.0
    for s in range(len(q)):
        u = x[s] + y                                          # L x d
        cov = np.expm1(u @ u.T) / n_features                  # relative covariance of kernel entries
        dev = v - y_soft[s]                                   # L x d_v
        total += float(np.sum(np.outer(a[s], a[s]) * cov * (dev @ dev.T)))
    return total / float(np.sum(y_soft ** 2))


def rate_ideal_errors(norm, sizes, seed) -> dict:
    """Squared relative errors vs softmax, for ``sizes['heads']`` heads x each m: measured
    (``measured_sq``), delta-method theory (``theory_sq``) and the uniform baseline per head."""
    features = sizes["features"]
    measured = np.empty((sizes["heads"], len(features)))
    theory = np.empty_like(measured)
    uniform = np.empty(sizes["heads"])
    for h in range(sizes["heads"]):
        rng = np.random.default_rng([seed, int(round(100 * norm)), h])
        q, k, v = synthetic_head(sizes["tokens"], sizes["dim"], sizes["value_dim"], norm, rng)
        scale = 1 / np.sqrt(sizes["dim"])
        y_soft = softmax_attention(q, k, v, scale)
        uniform[h] = relative_error(uniform_attention(v, len(q)), y_soft) ** 2
        for i, m in enumerate(features):
            w = draw_feature_weights(m, sizes["dim"], rng)
            y_rate = performer_attention(q, k, v, scale, w)
            measured[h, i] = relative_error(y_rate, y_soft) ** 2
            theory[h, i] = delta_method_error_sq(q, k, v, scale, m)
    return {"measured_sq": measured, "theory_sq": theory, "uniform_sq": uniform}


def summarise_curve(errors, features, fit_from) -> dict:
    """rms curves, seed band and the log-log slope of the error against m.

    The slope is fitted per head (least squares of log error on log m for m >= ``fit_from``);
    its mean and standard error over heads are reported, and so is the mean ratio
    measured^2 / theory^2 at the largest m with its standard error.
    """
    features = np.asarray(features, dtype=float)
    rel = np.sqrt(errors["measured_sq"])
    keep = features >= fit_from
    slopes = np.array([np.polyfit(np.log(features[keep]), np.log(r[keep]), 1)[0] for r in rel])
    ratio = errors["measured_sq"][:, -1] / errors["theory_sq"][:, -1]
    n = len(rel)
    return {
        "rms_measured": np.sqrt(errors["measured_sq"].mean(axis=0)).tolist(),
        "rms_theory": np.sqrt(errors["theory_sq"].mean(axis=0)).tolist(),
        "p16": np.percentile(rel, 16, axis=0).tolist(), "p84": np.percentile(rel, 84, axis=0).tolist(),
        "rms_uniform": float(np.sqrt(errors["uniform_sq"].mean())),
        "slope_mean": float(slopes.mean()), "slope_se": float(slopes.std(ddof=1) / np.sqrt(n)),
        "ratio_to_theory_at_max_m": float(ratio.mean()), "ratio_to_theory_se": float(ratio.std(ddof=1) / np.sqrt(n)),
        "heads": n,
    }


# ---------------------------------------------------------------------------------------- spiking

def spiking_point(args, sizes, m, run) -> dict:
    """Run the circuit with m feature neurons on one head; errors of spikes and rate ideal."""
    from circuits.random_feature import rate_model

    seed = args.seed + run
    q, k, v = synthetic_head(sizes["tokens"], sizes["dim"], sizes["value_dim"], sizes["spike_norm"],
                             np.random.default_rng([seed, 7]))
    q = q[: sizes["spike_queries"]]
    circuit = fp.run_random_circuit(NAME, args, q, k, v, f"spiking circuit m = {m}, seed {seed}",
                                    n_features=m, neurons_per_value=sizes["neurons_per_value"],
                                    params=fp.PROTOCOL, seed=seed)
    ideal = rate_model(circuit)
    y_spike, y_rate = circuit.decode(), ideal["y_rate"]
    y_soft = softmax_attention(q, k, v, circuit.config["scale"])
    bound = ideal["noise"]["relative_error"]
    return {"m": m, "seed": seed,
            "spike_vs_softmax": relative_error(y_spike, y_soft), "rate_vs_softmax": relative_error(y_rate, y_soft),
            "spike_vs_rate": relative_error(y_spike, y_rate), "poisson_bound": bound,
            "noise_dof": fp.noise_dof(circuit, ideal["noise"]),
            "expected_spike_vs_softmax": expected_total_error(y_rate, y_soft, bound),
            "uniform_vs_softmax": relative_error(uniform_attention(v, len(q)), y_soft)}


# ------------------------------------------------------------------------------------------- figure

def plot(curves, spikes, sizes, path):
    import matplotlib.pyplot as plt

    features = np.asarray(sizes["features"])
    with fp.paper_style():
        fig, ax = plt.subplots(figsize=(6.6, 3.6))
        colors = plt.cm.viridis(np.linspace(0.1, 0.8, len(curves)))
        for color, (norm, c) in zip(colors, curves.items()):
            ax.fill_between(features, c["p16"], c["p84"], color=color, alpha=0.15, lw=0)
            ax.plot(features, c["rms_measured"], "o-", ms=3, color=color,
                    label=f"|q|/d$^{{1/4}}$ = {norm}: rate ideal (slope {c['slope_mean']:.2f})")
            ax.plot(features, c["rms_theory"], "--", color=color, label="  delta-method theory (slope -1/2)")
            ax.axhline(c["rms_uniform"], color=color, ls=":", lw=0.8)
        if spikes:
            m = np.array([r["m"] for r in spikes])
            ax.plot(m, [r["spike_vs_softmax"] for r in spikes], "s", ms=5, color="k", label=(
                f"spiking circuit, norm {sizes['spike_norm']}, L = {sizes['tokens']}"))
            ax.plot(m, [r["expected_spike_vs_softmax"] for r in spikes], "s", ms=8, mfc="none", color="tab:red",
                    label="  its rate ideal $\\oplus$ Poisson bound")
            ax.plot(m, [r["rate_vs_softmax"] for r in spikes], "x", ms=5, color="tab:red", label="  its rate ideal")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        fp.value_ticks(ax.xaxis, features)
        ax.set_xlabel("feature neurons m")
        ax.set_ylabel("relative error vs softmax (rms over heads)")
        ax.set_title(f"L = {sizes['tokens']}, d = {sizes['dim']}, d$_v$ = {sizes['value_dim']}, "
                     f"{sizes['heads']} heads; band: 16-84 % of heads; dotted: uniform baseline; slopes fitted for m ≥ "
                     f"{sizes['fit_from']}", fontsize=7)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return fp.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None):
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    run_dir = fp.new_run(NAME, args, sizes)
    curves = {}
    for norm in sizes["norms"]:
        fp.say(NAME, args, f"rate ideal, norm {norm}: {sizes['heads']} heads x m = {sizes['features']}")
        curves[norm] = summarise_curve(rate_ideal_errors(norm, sizes, args.seed), sizes["features"], sizes["fit_from"])
    spikes = [spiking_point(args, sizes, m, run) for m in sizes["spike_features"] for run in range(sizes["spike_seeds"])]
    if not args.no_figures:
        plot(curves, spikes, sizes, run_dir / f"{NAME}.png")
    metrics = {"features": sizes["features"], "curves": {str(n): c for n, c in curves.items()}, "spiking": spikes}
    for norm, c in curves.items():
        metrics[f"slope_norm{norm}"] = c["slope_mean"]
        metrics[f"rms_at_max_m_norm{norm}"] = c["rms_measured"][-1]
    summary = "; ".join(f"norm {n}: slope {c['slope_mean']:.3f} +- {c['slope_se']:.3f}, measured^2/theory^2 at "
                        f"m = {sizes['features'][-1]} {c['ratio_to_theory_at_max_m']:.2f} +- {c['ratio_to_theory_se']:.2f}"
                        for n, c in curves.items())
    return fp.finish(NAME, args, run_dir, metrics, summary)


if __name__ == "__main__":
    main()
