"""Forgetting and the astrocyte's normalisation: recency-weighted attention, and what a block does.

    python -m experiments.forgetting            # tau = 0.5, 1, 2 s; L = 2 ... 16 for the block
    python -m experiments.forgetting --quick    # tau = 1 s; L = 2, 6 (for the tests)

(a) Recency. With finite calcium decay tau_ca and Hebbian decay tau_hebb, set equal to tau, token t
enters both the numerator and the denominator with weight exp(-age_t / tau), so attention becomes
recency-weighted: a_t = K_t exp(-age_t/tau) / sum_t' K_t' exp(-age_t'/tau) (docs/model.md §5). To read
a_t off the output, every key is the same vector (so K_t is the same for every token and softmax
attention is exactly uniform, 1/L) and the values are one-hot (v_t = e_t, d_v = L): output i is the
weight of token i. The decoded weights, averaged over the reads, are fitted with
w_t = A exp(-lambda Delta_t), Delta_t the age relative to the newest token, by weighted least
squares (Gauss-Newton); the prediction is lambda = 1/tau. Variances (plug-in delta method from the
measured feature counts): output Poisson counts, w_t/G per read (G: the output gain), and the
write-phase counts of each token, shared by all reads, relative variance
eps^2 = sum_j lambda_j r_j^2 / (sum_j lambda_j r_j)^2 (lambda_j: write count of feature j per token,
r_j: its read count) propagated through the normalisation; read noise cancels to first order because
all tokens have the same features.

(b) Block. The values are all 1, so the normalised circuit returns 1 (a weighted average of ones)
for every sequence length L. ``block_astrocyte=True`` freezes the astrocyte's signal A at its mean
over this head's queries -- which already grows with L. A hard block holds A at one fixed level; we
emulate it by overwriting that frozen constant, before running, with the frozen level of the
shortest sequence, A_ref. The value neurons then fire at rho_value * numerator / A_ref and the
output grows with L as the unnormalised sum does: predicted y_s(L) = A_s(L) / A_ref with A_s the
expected astrocyte signal of query s (``expected_astrocyte_signal``). Tokens are the first L rows
of one fixed key sequence, read by the same queries; calcium and Hebbian weights do not fade here.

Writes results/forgetting/<run>/ with params.json, metrics.json and forgetting.png.
"""

import numpy as np

from analysis.attention import relative_error, synthetic_head
from experiments import cli
from experiments import paper_common as fp

NAME = "forgetting"

FULL = {"taus_s": [0.5, 1.0, 2.0], "tokens": 8, "lengths": [2, 4, 8, 16], "queries": 4, "dim": 4, "norm": 1.0,
        "features": 64, "neurons_per_value": 16}
QUICK = {"taus_s": [1.0], "tokens": 6, "lengths": [2, 6], "queries": 2, "dim": 4, "norm": 1.0,
         "features": 64, "neurons_per_value": 16}


def build_parser():
    return fp.experiment_parser(NAME, __doc__)


# --------------------------------------------------------------------------------- (a) recency

def recency_head(sizes, seed):
    """Identical keys (norm ``norm``), random queries and one-hot values (d_v = L)."""
    rng = np.random.default_rng([seed, 3])
    q, k, _ = synthetic_head(sizes["tokens"], sizes["dim"], 1, sizes["norm"], rng)
    keys = np.repeat(k[:1], sizes["tokens"], axis=0)
    return q[: sizes["queries"]], keys, np.eye(sizes["tokens"])


def simulate_recency(args, sizes, tau) -> dict:
    q, k, v = recency_head(sizes, args.seed)
    circuit = fp.run_random_circuit(NAME, args, q, k, v, f"recency, tau = {tau} s", n_features=sizes["features"],
                                    neurons_per_value=sizes["neurons_per_value"], seed=args.seed,
                                    params={**fp.PROTOCOL, "tau_ca": f"{tau}*second", "tau_hebb": f"{tau}*second"})
    return {"tau": tau, "circuit": circuit}


def recency_weight_variance(w, gain, n_reads, write_rel_var) -> np.ndarray:
    """Variance of each token's weight averaged over ``n_reads`` reads (module docstring, (a)).

    w: predicted weights (sum 1); gain: output count per unit weight per read; write_rel_var: eps^2,
    the relative variance of one token's read-weighted write count. Perturbing token t' by
    delta_t' moves w_t by w_t (delta_t - sum_t' w_t' delta_t'), whose variance is
    w_t^2 eps^2 ((1 - w_t)^2 + sum_{t' != t} w_t'^2).
    """
    others = np.sum(w ** 2) - w ** 2
    return w / (gain * n_reads) + w ** 2 * write_rel_var * ((1 - w) ** 2 + others)


def fit_exponential(delta, w, var, iterations=50) -> dict:
    """Weighted least squares of w = A exp(-lam delta) (Gauss-Newton from the log-linear fit).
    Returns lam, A, their standard errors (from (J^T W J)^-1) and the fit's chi-square."""
    slope, intercept = np.polyfit(delta, np.log(np.maximum(w, 1e-12)), 1, w=np.sqrt(w ** 2 / var))
    theta = np.array([np.exp(intercept), -slope])
    weights = 1 / var
    for _ in range(iterations):
        amp, lam = theta
        f = amp * np.exp(-lam * delta)
        jac = np.stack([f / amp, -delta * f], axis=1)
        normal = jac.T @ (weights[:, None] * jac)
        theta = theta + np.linalg.solve(normal, jac.T @ (weights * (w - f)))
    amp, lam = theta
    f = amp * np.exp(-lam * delta)
    jac = np.stack([f / amp, -delta * f], axis=1)
    cov = np.linalg.inv(jac.T @ (weights[:, None] * jac))
    return {"lambda": float(lam), "lambda_se": float(np.sqrt(cov[1, 1])), "amplitude": float(amp),
            "amplitude_se": float(np.sqrt(cov[0, 0])), "chi2": float(np.sum(weights * (w - f) ** 2)),
            "dof": len(w) - 2}


def analyse_recency(run) -> dict:
    """Measured token weights vs age, their variance, the exponential fit and the prediction."""
    from circuits.random_feature import rate_model

    c, tau = run["circuit"], run["tau"]
    s = c.schedule
    learn_mid = s.learn_windows().mean(axis=1)
    delta = learn_mid[-1] - learn_mid                          # age relative to the newest token
    y_spike, y_rate = c.decode(), rate_model(c)["y_rate"]       # n_reads x L
    w_measured, w_predicted = y_spike.mean(axis=0), y_rate.mean(axis=0)
    per_token = c.window_counts("features", s.learn_windows()).mean(axis=0)      # lambda_j (identical keys)
    reads = c.window_counts("features", s.read_windows()).mean(axis=0)           # r_j
    write_rel_var = float(np.sum(per_token * reads ** 2) / np.sum(per_token * reads) ** 2)
    var = recency_weight_variance(w_predicted, c.output_gain(), len(y_spike), write_rel_var)
    fit = fit_exponential(delta, w_measured, var)
    return {"tau_s": tau, "lambda_predicted": 1 / tau, **fit,
            "z_lambda": (fit["lambda"] - 1 / tau) / fit["lambda_se"],
            "chi2_vs_prediction": float(np.sum((w_measured - w_predicted) ** 2 / var)),
            "age_s": delta.tolist(), "w_measured": w_measured.tolist(), "w_predicted": w_predicted.tolist(),
            "w_se": np.sqrt(var).tolist(), "uniform_weight": 1 / len(delta)}


# ----------------------------------------------------------------------------------- (b) block

def block_head(sizes, seed, length):
    """First ``length`` keys of one fixed sequence, the same queries for every length, values 1."""
    rng = np.random.default_rng([seed, 4])
    q, k, _ = synthetic_head(max(sizes["lengths"]), sizes["dim"], 1, sizes["norm"], rng)
    return q[: sizes["queries"]], k[:length], np.ones((length, 1))


def simulate_block(args, sizes) -> list[dict]:
    """For each length: the normalised circuit and the hard-blocked one (A held at A_ref)."""
    from circuits.random_feature import build_random_feature_circuit

    build = {"n_features": sizes["features"], "neurons_per_value": sizes["neurons_per_value"], "params": fp.PROTOCOL,
             "seed": args.seed}
    runs, a_ref = [], None
    for length in sorted(sizes["lengths"]):
        q, k, v = block_head(sizes, args.seed, length)
        normalised = fp.run_random_circuit(NAME, args, q, k, v, f"normalised, L = {length}", **build)
        blocked = build_random_feature_circuit(q, k, v, block_astrocyte=True, **build)
        clamp = blocked.groups["astrocyte_block"]
        if a_ref is None:                        # shortest sequence: its frozen level is the reference
            a_ref = float(clamp.A[0])
        clamp.A = a_ref
        fp.run_circuit(NAME, args, blocked, f"hard-blocked (A = A_ref), L = {length}")
        runs.append({"length": length, "normalised": normalised, "blocked": blocked, "a_ref": a_ref})
    return runs


def blocked_mean_relative_se(write_counts, read_counts, output_counts) -> float:
    """Relative standard error of the query-averaged output of a blocked circuit with values 1
    (plug-in delta method from measured counts). Its output is proportional to
    D = sum_s sum_j z_j r_sj (z_j: write count of feature j, r_sj: read count in read s):
    write part sum_j z_j R_j^2 / D^2 (R_j = sum_s r_sj), read part sum_sj z_j^2 r_sj / D^2, output
    part 1 / (total ON-population count)."""
    z, r = np.asarray(write_counts, float), np.asarray(read_counts, float)
    total = np.sum(z * r.sum(axis=0))
    var = (np.sum(z * r.sum(axis=0) ** 2) + np.sum(z ** 2 * r)) / total ** 2 + 1 / np.sum(output_counts)
    return float(np.sqrt(var))


def analyse_block(runs) -> list[dict]:
    from circuits.random_feature import expected_astrocyte_signal, rate_model

    rows = []
    for run in runs:
        norm_c, block_c = run["normalised"], run["blocked"]
        ideal = rate_model(norm_c)
        y_norm = norm_c.decode()
        inp, s = block_c.inputs, block_c.schedule
        signal = expected_astrocyte_signal(inp["feature_weights"], inp["x_keys"], inp["x_queries"], block_c.params, s)
        predicted = signal / run["a_ref"]                      # y_rate = 1 for values 1
        y_block = block_c.decode()[:, 0]
        se = blocked_mean_relative_se(block_c.window_counts("features", s.learn_windows()).sum(axis=0),
                                      block_c.window_counts("features", s.read_windows()),
                                      block_c.population_counts()[:, 0])
        rows.append({"length": run["length"], "normalised_mean": float(y_norm.mean()),
                     "normalised_vs_ideal": relative_error(y_norm, ideal["y_rate"]),
                     "normalised_bound": ideal["noise"]["relative_error"],
                     "normalised_noise_dof": fp.noise_dof(norm_c, ideal["noise"]),
                     "blocked_mean": float(y_block.mean()), "blocked_predicted_mean": float(predicted.mean()),
                     "blocked_relative_se": se,
                     "blocked_z": float((y_block.mean() / predicted.mean() - 1) / se)})
    return rows


# ------------------------------------------------------------------------------------------ figure

def plot(recency, block, path):
    import matplotlib.pyplot as plt

    with fp.paper_style():
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(6.8, 2.9))
        colors = plt.cm.plasma(np.linspace(0.1, 0.75, len(recency)))
        for r, color in zip(recency, colors):
            age = np.array(r["age_s"])
            ax_a.errorbar(age, r["w_measured"], yerr=r["w_se"], fmt="o", ms=3, color=color, capsize=1.5,
                          label=f"τ = {r['tau_s']} s: fit 1/λ = {1 / r['lambda']:.2f} s "
                                f"(λ = {r['lambda']:.2f} ± {r['lambda_se']:.2f} /s)")
            ax_a.plot(age, r["w_predicted"], "-", color=color, lw=0.8)
        ax_a.axhline(recency[0]["uniform_weight"], color="0.5", ls=":", lw=0.8, label="softmax (uniform, 1/L)")
        ax_a.set_yscale("log")
        ax_a.set_xlabel("age of the token at the read, relative to the newest (s)")
        ax_a.set_ylabel("weight of the token in the output")
        ax_a.set_title("identical keys, one-hot values; line: exp(-age/τ)")
        ax_a.legend(loc="lower left")
        fp.panel_letter(ax_a, "a")

        lengths = [r["length"] for r in block]
        ax_b.plot(lengths, [r["normalised_mean"] for r in block], "o-", color="tab:green",
                  label="astrocyte normalisation (weighted average)")
        ax_b.errorbar(lengths, [r["blocked_mean"] for r in block],
                      yerr=[r["blocked_mean"] * r["blocked_relative_se"] for r in block], fmt="s", ms=4,
                      color="tab:red", capsize=2, label="astrocyte blocked at A$_{ref}$ (spikes)")
        ax_b.plot(lengths, [r["blocked_predicted_mean"] for r in block], "--", color="tab:red",
                  label="unnormalised sum, predicted A(L)/A$_{ref}$")
        ax_b.axhline(1, color="0.5", ls=":", lw=0.8, label="softmax (mean of values = 1)")
        ax_b.set_xlabel("sequence length L")
        ax_b.set_ylabel("output, mean over queries (values all 1)")
        ax_b.set_title("no forgetting; hard block emulated by fixing A")
        ax_b.legend(loc="upper left")
        fp.panel_letter(ax_b, "b")
        fig.tight_layout()
        return fp.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None):
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    run_dir = fp.new_run(NAME, args, sizes,
                         varied={"tau_ca = tau_hebb (s)": sizes["taus_s"], "block lengths": sizes["lengths"]})
    recency = [analyse_recency(simulate_recency(args, sizes, tau)) for tau in sizes["taus_s"]]
    block = analyse_block(simulate_block(args, sizes))
    if not args.no_figures:
        plot(recency, block, run_dir / f"{NAME}.png")
    metrics = {"recency": recency, "block": block,
               "max_abs_z_lambda": max(abs(r["z_lambda"]) for r in recency),
               "blocked_growth": block[-1]["blocked_mean"] / block[0]["blocked_mean"],
               "blocked_growth_predicted": block[-1]["blocked_predicted_mean"] / block[0]["blocked_predicted_mean"],
               "normalised_growth": block[-1]["normalised_mean"] / block[0]["normalised_mean"]}
    summary = "; ".join(f"tau {r['tau_s']} s: lambda {r['lambda']:.3f} +- {r['lambda_se']:.3f} (predicted "
                        f"{1 / r['tau_s']:.3f})" for r in recency)
    summary += (f" | blocked output grows x{metrics['blocked_growth']:.2f} from L = {block[0]['length']} to "
                f"{block[-1]['length']} (predicted x{metrics['blocked_growth_predicted']:.2f}); normalised "
                f"x{metrics['normalised_growth']:.3f}")
    return fp.finish(NAME, args, run_dir, metrics, summary)


if __name__ == "__main__":
    main()
