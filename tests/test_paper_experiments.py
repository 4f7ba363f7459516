"""The paper experiments at their ``--quick`` sizes: each checks its central claim, with a
tolerance taken from the statistics of what it measures (seed-to-seed spread, spike counts).

Spike-noise tolerance (the rule of tests/test_circuit.py): the squared relative error of a decoded
output against its rate ideal is a sum of scaled chi-square(1) terms; with n_eff effective degrees
of freedom its ratio to the expected value has standard deviation sqrt(2 / n_eff), and four of them
are allowed. Here n_eff (``noise_dof`` in the metrics) comes from the full covariance of the output
elements (``experiments.paper_common.noise_dof``), because write- and read-stage noise is shared
between elements; the first test checks that covariance against a Monte Carlo of the counts.
"""

import json

import numpy as np
import pytest
from matplotlib.image import imread

from analysis.spikes import chi_square_tolerance
from experiments import astrocyte_models, feature_scaling, forgetting, raster_gallery, read_window

SIGMAS = 4

def run_quick(module, tmp_path):
    """Run an experiment at quick sizes; return its run folder and metrics."""
    run_dir = module.main(["--quick", "--quiet", "--seed", "0", "--out", str(tmp_path)])
    assert (run_dir / "params.json").is_file()
    png = run_dir / f"{module.NAME}.png"
    assert imread(png).ndim == 3, "figure is not an image"
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_noise_dof_matches_monte_carlo_of_poisson_counts():
    """The covariance behind ``noise_dof``: its trace is the delta-method variance of
    ``analysis.spikes.expected_spike_error`` (write + read stages), and the degrees of freedom it
    implies match those of the squared error over Poisson draws of the counts, 2 mean^2 / variance,
    within 4 standard errors of that estimate (from the sample kurtosis of the squared error)."""
    from analysis.attention import kernel_attention, synthetic_head
    from analysis.features import draw_feature_weights, positive_features
    from analysis.spikes import expected_spike_error
    from analysis.spikes import output_covariance

    rng = np.random.default_rng(1)
    q, k, v = synthetic_head(6, 4, 4, 1.0, rng)
    w = draw_feature_weights(64, 4, rng)
    x_q, x_k = positive_features(np.sqrt(0.5) * q, w), positive_features(np.sqrt(0.5) * k, w)
    write, read = 48 * x_k, 96 * x_q                      # expected counts: 30 Hz * sqrt(m) * 0.2 s / 0.4 s
    no_output = np.zeros((len(q), v.shape[1]))
    cov = output_covariance(write, read, v, no_output)
    noise = expected_spike_error(write, read, v, output_gain=1.0)
    assert np.trace(cov) == pytest.approx(float(np.sum(noise["var_write"] + noise["var_read"])), rel=1e-9)
    dof = np.trace(cov) ** 2 / np.sum(cov * cov)

    y = kernel_attention(x_q, x_k, v)
    draws = 3000
    sq = np.empty(draws)
    for i in range(draws):
        n, r = rng.poisson(write), rng.poisson(read)
        sq[i] = np.sum(((r @ (n.T @ v)) / (r @ n.sum(axis=0))[:, None] - y) ** 2)
    mc_dof = 2 * sq.mean() ** 2 / sq.var()
    kurtosis = np.mean((sq - sq.mean()) ** 4) / sq.var() ** 2
    se = mc_dof * np.sqrt((kurtosis - 1) / draws)         # relative sd of a sample variance
    assert abs(dof - mc_dof) <= SIGMAS * se, (dof, mc_dof, se)
    assert dof < 0.7 * np.sum(np.diag(cov)) ** 2 / np.sum(np.diag(cov) ** 2)   # correlations matter here


def test_feature_scaling_error_falls_as_one_over_sqrt_m(tmp_path):
    """Rate-ideal error at |q|/d^(1/4) = 0.5: log-log slope -1/2 within 4 standard errors of the
    mean per-head slope, and the delta-method theory predicts the mean squared error at m = 4096
    within 4 standard errors of the per-head ratio; the spiking point within its Poisson bound."""
    _, metrics = run_quick(feature_scaling, tmp_path)
    curve = metrics["curves"]["0.5"]
    assert abs(curve["slope_mean"] + 0.5) <= SIGMAS * curve["slope_se"], curve
    assert abs(curve["ratio_to_theory_at_max_m"] - 1) <= SIGMAS * curve["ratio_to_theory_se"], curve
    assert curve["rms_measured"][-1] < curve["rms_uniform"]
    for point in metrics["spiking"]:
        assert point["spike_vs_rate"] <= chi_square_tolerance(point["noise_dof"], SIGMAS) * point["poisson_bound"], point


def test_read_window_spike_errors_within_poisson_bound(tmp_path):
    """Every run's spiking error is within the chi-square factor of its Poisson bound, and the
    bound's scaling (write part fixed, read part ~1/t_read, output part ~1/(t_read P)) that the
    figure's theory curves use reproduces every run's own bound."""
    run_dir, metrics = run_quick(read_window, tmp_path)
    sizes = json.loads((run_dir / "params.json").read_text())["sizes"]
    ref = next(r for r in metrics["runs"] if (r["t_read_ms"], r["per_value"]) ==
               (sizes["t_read_ref_ms"], sizes["per_value_ref"]))
    for r in metrics["runs"]:
        assert r["spike_vs_rate"] <= chi_square_tolerance(r["noise_dof"], SIGMAS) * r["poisson_bound"], r
        t_ratio = sizes["t_read_ref_ms"] / r["t_read_ms"]
        p_ratio = sizes["per_value_ref"] / r["per_value"]
        predicted = np.sqrt(ref["bound_write"] ** 2 + ref["bound_read"] ** 2 * t_ratio
                            + ref["bound_output"] ** 2 * t_ratio * p_ratio)
        assert r["poisson_bound"] == pytest.approx(predicted, rel=1e-9)
    assert len({(r["t_read_ms"], r["per_value"]) for r in metrics["runs"]}) == 3


def test_astrocyte_models_regime_map(tmp_path):
    """Regime map (--quick: L = 4, m = 32; processes alone). Below the CICR threshold both processes
    normalise as the linear IP3 read-out predicts (``ip3_memory`` at the middle of each read window;
    within 5 %); past it G-ChI's Ca2+ feeds back onto IP3 and its output leaves that read-out by more
    than 3x as much, while lr1994's IP3 (linear, no feedback) stays on it. A write span as long as the
    IP3 lifetime adds recency: the error against the perfect integrator grows by more than 0.1."""
    _, metrics = run_quick(astrocyte_models, tmp_path)
    points = {(p["model"], p["span_over_lifetime"], p["drive_over_cicr"]): p for p in metrics["points"]}
    values = [v for p in metrics["points"] for v in p.values() if isinstance(v, float)]
    assert values and np.all(np.isfinite(values))
    short, long_ = astrocyte_models.QUICK["spans_over_lifetime"]
    weak, strong = astrocyte_models.QUICK["drives"]
    for model in astrocyte_models.MODELS:
        for span in (short, long_):
            assert points[model, span, weak]["error_vs_linear_read_out"] <= 0.05, points[model, span, weak]
        assert (points[model, long_, weak]["normalisation_error"]
                > points[model, short, weak]["normalisation_error"] + 0.1), model
    gchi_weak, gchi_strong = points["gchi", short, weak], points["gchi", short, strong]
    assert gchi_strong["error_vs_linear_read_out"] > 3 * max(gchi_weak["error_vs_linear_read_out"], 0.01)
    assert points["lr1994", short, strong]["error_vs_linear_read_out"] <= 0.05


def test_forgetting_follows_exp_age_over_tau_and_block_grows_with_length(tmp_path):
    """Recency: the fitted decay rate equals 1/tau within 4 standard errors and differs from 0
    (no forgetting) by more than 4; the weights match exp(-age/tau) with a chi-square below its mean
    plus 4 standard deviations. Block: the normalised output stays the weighted average (1) within
    its Poisson bound at every L, the hard-blocked output follows the unnormalised sum A(L)/A_ref
    within 4 standard errors and grows with L by far more than its noise."""
    _, metrics = run_quick(forgetting, tmp_path)
    for r in metrics["recency"]:
        assert abs(r["z_lambda"]) <= SIGMAS, r
        assert r["lambda"] > SIGMAS * r["lambda_se"], r
        n = len(r["w_measured"])
        assert r["chi2_vs_prediction"] <= n + SIGMAS * np.sqrt(2 * n), r
    block = metrics["block"]
    for r in block:
        assert r["normalised_vs_ideal"] <= chi_square_tolerance(r["normalised_noise_dof"], SIGMAS) * r["normalised_bound"], r
        assert abs(r["blocked_z"]) <= SIGMAS, r
    first, last = block[0], block[-1]
    assert last["blocked_predicted_mean"] >= 2 * first["blocked_predicted_mean"], "design: too little growth"
    spread = np.hypot(first["blocked_mean"] * first["blocked_relative_se"], last["blocked_mean"] * last["blocked_relative_se"])
    assert last["blocked_mean"] - first["blocked_mean"] > SIGMAS * spread


def test_raster_gallery_draws_every_panel(tmp_path):
    """The PNG (and PDF) exist, every panel has data, and the astrocyte's total calcium at the end of
    the write phase is kappa times the learning-window feature spikes (tau_ca >> run: relative decay
    below duration / tau_ca, allowed twice)."""
    run_dir, metrics = run_quick(raster_gallery, tmp_path)
    assert (run_dir / "raster_gallery.pdf").is_file()
    assert metrics["panels_drawn"] == list(raster_gallery.PANELS)
    assert all(metrics["panel_data_points"][p] > 0 for p in raster_gallery.PANELS), metrics["panel_data_points"]
    params = json.loads((run_dir / "params.json").read_text())["parameters"]
    rel = 2 * metrics["simulated_seconds"] / params["tau_ca"]["value"]
    assert metrics["ca_total_at_write_end"] == pytest.approx(metrics["kappa_times_learning_spikes"], rel=rel)
    assert metrics["learning_feature_spikes"] > 0
