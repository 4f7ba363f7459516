"""A printable spike raster of the whole circuit on a small, readable head.

    python -m experiments.raster_gallery            # 6 tokens, 3 queries, d = d_v = 4, m = 32
    python -m experiments.raster_gallery --quick    # 4 tokens, 2 queries (for the tests)

Panels, sharing the time axis (yellow: learning window of each token; blue: counting window of each
query; dashed: end of the write phase; token and query labels on top):
(a) key/query encoders and (b) value encoders (ON red, OFF blue; one row per neuron, grouped by
dimension), (c) feature neurons, (d) value neurons (ON/OFF populations of each value dimension),
(e) calcium of 8 astrocyte processes, (f) the astrocyte's total calcium and its read signal A.

metrics.json reports the spikes and samples behind every panel, the attention errors of the run and
a check of panel (f): with tau_ca >> the run, the astrocyte's total calcium at the end of the write
phase must equal kappa times the feature spikes of all learning windows.

Writes results/raster_gallery/<run>/ with params.json, metrics.json, raster_gallery.png and .pdf.
"""

import numpy as np

from analysis.attention import relative_error, softmax_attention, synthetic_head, uniform_attention
from experiments import cli
from experiments import paper_common as fp
from experiments import plotting
from experiments.plotting import OFF_COLOR, ON_COLOR, shade_phases
from models.encoders import polarity_sign

NAME = "raster_gallery"
PANELS = ("key_encoders", "value_encoders", "features", "values", "process_ca", "astrocyte")

FULL = {"tokens": 6, "queries": 3, "dim": 4, "value_dim": 4, "norm": 1.0, "features": 32, "neurons_per_value": 4,
        "encoders_per_dim": 4}
QUICK = {**FULL, "tokens": 4, "queries": 2}


def build_parser():
    return fp.experiment_parser(NAME, __doc__)


def simulate(args, sizes):
    q, k, v = synthetic_head(sizes["tokens"], sizes["dim"], sizes["value_dim"], sizes["norm"],
                             np.random.default_rng([args.seed, 6]))
    q = q[: sizes["queries"]]
    circuit = fp.run_random_circuit(NAME, args, q, k, v, "raster circuit", n_features=sizes["features"],
                                    neurons_per_value=sizes["neurons_per_value"],
                                    encoders_per_dim=sizes["encoders_per_dim"], params=fp.PROTOCOL, seed=args.seed)
    return {"q": q, "k": k, "v": v, "circuit": circuit}


def analyse(sim, raster) -> dict:
    """Data behind each panel, the attention errors and the calcium-integration check."""
    from circuits.random_feature import rate_model

    c = sim["circuit"]
    y_spike, y_rate = c.decode(), rate_model(c)["y_rate"]
    y_soft = softmax_attention(sim["q"], sim["k"], sim["v"], c.config["scale"])
    t_feat = raster["features"][0] + 0.5 * float(c.params["dt"])
    learning = sum(np.count_nonzero((t_feat >= a) & (t_feat < b)) for a, b in raster["learn_windows"])
    # First sample in the first read's settling time: learning is over, no read has started.
    at_end = np.searchsorted(raster["astro_t"], raster["write_end"] + 0.5 * float(c.params["t_settle"]))
    counts = {name: int(len(raster[name][0])) for name in PANELS[:4]}
    counts.update(process_ca=int(np.size(raster["process_ca"])), astrocyte=int(np.size(raster["ca_total"])))
    return {"panel_data_points": counts, "learning_feature_spikes": int(learning),
            "ca_total_at_write_end": float(raster["ca_total"][at_end]),
            "kappa_times_learning_spikes": float(c.params["kappa"]) * learning,
            "spike_vs_softmax": relative_error(y_spike, y_soft), "spike_vs_rate": relative_error(y_spike, y_rate),
            "rate_vs_softmax": relative_error(y_rate, y_soft),
            "uniform_vs_softmax": relative_error(uniform_attention(sim["v"], len(y_soft)), y_soft),
            "simulated_seconds": c.schedule.duration}


# ------------------------------------------------------------------------------------------ figure

def _signed_raster(ax, spikes, per_channel):
    """Spikes of ON/OFF channel populations (channel 2i: ON, 2i+1: OFF), thin grid between dimensions."""
    t, i = spikes
    on = polarity_sign(i // per_channel) > 0
    ax.scatter(t[on], i[on], s=2, marker="|", lw=0.5, color=ON_COLOR, rasterized=True)
    ax.scatter(t[~on], i[~on], s=2, marker="|", lw=0.5, color=OFF_COLOR, rasterized=True)
    n = int(i.max()) + 1 if len(i) else per_channel
    for edge in range(0, n + 1, 2 * per_channel):
        ax.axhline(edge - 0.5, color="0.85", lw=0.4)
    ax.set_ylim(-0.5, n - 0.5)


def _label_phases(ax, raster):
    """Token labels k_t over learning windows and query labels q_s over counting windows (top axis)."""
    for t, (a, b) in enumerate(raster["learn_windows"]):
        ax.text((a + b) / 2, 1.02, f"$k_{t + 1}$", transform=ax.get_xaxis_transform(), ha="center", fontsize=7)
    for s, (a, b) in enumerate(raster["read_windows"]):
        ax.text((a + b) / 2, 1.02, f"$q_{s + 1}$", transform=ax.get_xaxis_transform(), ha="center", fontsize=7)


def plot(raster, metrics, title, path):
    """The six-panel raster (module docstring); returns the names of the panels that hold data."""
    import matplotlib.pyplot as plt

    with fp.paper_style():
        fig, axes = plt.subplots(6, 1, figsize=(7.0, 7.4), sharex=True,
                                 gridspec_kw={"height_ratios": [1, 1, 1.3, 1, 0.9, 0.9], "hspace": 0.12})
        phases = (raster["learn_windows"], raster["read_windows"], raster["write_end"])
        for ax in axes:
            shade_phases(ax, *phases)
        per_enc = raster["encoders_per_channel"]
        _signed_raster(axes[0], raster["key_encoders"], per_enc)
        axes[0].set_ylabel("key/query\nencoders")
        _signed_raster(axes[1], raster["value_encoders"], per_enc)
        axes[1].set_ylabel("value\nencoders")
        t, i = raster["features"]
        axes[2].scatter(t, i, s=2, marker="|", lw=0.5, color="k", rasterized=True)
        axes[2].set_ylim(-0.5, raster["n_features_shown"] - 0.5)
        axes[2].set_ylabel("feature\nneurons")
        _signed_raster(axes[3], raster["values"], raster["neurons_per_value"])
        axes[3].set_ylabel("value\nneurons")
        axes[4].plot(raster["astro_t"], raster["process_ca"].T, lw=0.7)
        axes[4].set_ylabel("process Ca\n(κ per spike)")
        axes[5].plot(raster["astro_t"], raster["ca_total"], color="tab:olive", lw=1.0)
        axes[5].set_ylabel("astrocyte\ntotal Ca", color="tab:olive")
        ax_signal = axes[5].twinx()
        ax_signal.spines["right"].set_visible(True)
        ax_signal.plot(raster["astro_t"], raster["signal"], color="tab:purple", lw=0.7)
        ax_signal.set_ylabel("signal A", color="tab:purple")
        axes[5].set_xlabel("time (s)")
        axes[5].set_xlim(0, raster["read_windows"][-1, 1])
        for ax, letter in zip(axes, "abcdef"):
            fp.panel_letter(ax, letter)
            ax.tick_params(axis="y", labelsize=6)
        _label_phases(axes[0], raster)
        axes[0].set_title(title, pad=14)
        fig.text(0.5, 0.06, f"yellow: write (learning), blue: read (counting); ON red, OFF blue. Output error vs "
                 f"softmax {metrics['spike_vs_softmax']:.2f} (rate ideal {metrics['rate_vs_softmax']:.2f}, uniform "
                 f"baseline {metrics['uniform_vs_softmax']:.2f})", ha="center", fontsize=6.5)
        drawn = [name for name, ax in zip(PANELS, axes) if ax.has_data()]
        plotting.save(fig, path.with_suffix(".pdf"), close=False, bbox_inches="tight", dpi=None)
        fp.save(fig, path)
    return drawn


@cli.stops_on_failed_writes
def main(argv=None):
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    run_dir = fp.new_run(NAME, args, sizes)
    sim = simulate(args, sizes)
    raster = sim["circuit"].raster_data()
    metrics = analyse(sim, raster)
    if not args.no_figures:
        title = (f"random-feature circuit: L = {sizes['tokens']} tokens, {sizes['queries']} queries, d = {sizes['dim']}, "
                 f"d$_v$ = {sizes['value_dim']}, m = {sizes['features']}, |q|/d$^{{1/4}}$ = {sizes['norm']}")
        metrics["panels_drawn"] = plot(raster, metrics, title, run_dir / f"{NAME}.png")
    summary = (f"panels {metrics['panel_data_points']}; Ca_total at write end {metrics['ca_total_at_write_end']:.4f} vs "
               f"kappa x learning spikes {metrics['kappa_times_learning_spikes']:.4f}")
    return fp.finish(NAME, args, run_dir, metrics, summary)


if __name__ == "__main__":
    main()
