"""Figures of the attention experiments (matplotlib only; no simulation, no analysis here)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from models.encoders import polarity_sign  # noqa: E402
from runs.folders import atomic_path  # noqa: E402

ON_COLOR, OFF_COLOR = "tab:red", "tab:blue"
WRITE_COLOR, READ_COLOR = "#fff3d6", "#e3f0ff"


def save(fig, path, close=True, **options):
    """Write a figure (format from the file's suffix; ``options`` of ``savefig``, default dpi 110)
    atomically, as every file of a run folder: a full disk leaves no half image, and a failure is a
    one-line ``runs.folders.WriteError``. The figure is closed either way unless ``close`` is false."""
    try:
        with atomic_path(path) as tmp:        # tmp ends in path's name: savefig takes the format from it
            fig.savefig(tmp, **{"dpi": 110, **options})
    finally:
        if close:
            plt.close(fig)


def shade_phases(ax, learn_windows, read_windows, write_end=None):
    """Shade learning (write) windows yellow and counting (read) windows blue; a dashed line at the
    end of the write phase (None in causal runs, which alternate writes and reads)."""
    for start, stop in learn_windows:
        ax.axvspan(start, stop, color=WRITE_COLOR, lw=0, zorder=0)
    for start, stop in read_windows:
        ax.axvspan(start, stop, color=READ_COLOR, lw=0, zorder=0)
    if write_end is not None:
        ax.axvline(write_end, color="k", lw=0.8, ls="--")


def _spikes(ax, times, indices, per_channel, label):
    channel = indices // per_channel
    on = polarity_sign(channel) > 0
    ax.scatter(times[on], indices[on], s=0.5, color=ON_COLOR, marker="|", linewidths=0.5, rasterized=True)
    ax.scatter(times[~on], indices[~on], s=0.5, color=OFF_COLOR, marker="|", linewidths=0.5, rasterized=True)
    ax.set_ylabel(label)


def raster_figure(raster: dict, path, title=""):
    """Token encoders, feature and value neurons and astrocyte Ca2+ across write and read phases.

    ``raster``: arrays of spike times/indices per layer (``key_encoders``, ``value_encoders``,
    ``features``, ``values``: (t, i) pairs), their population sizes, the astrocyte traces
    (``astro_t``, ``ca_total``, ``signal``, ``process_ca``) and the phase windows.
    """
    fig, axes = plt.subplots(5, 1, figsize=(11, 10), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1, 2, 1.5, 1.5]})
    t, i = raster["key_encoders"]
    _spikes(axes[0], t, i, raster["encoders_per_channel"], "key/query\nencoders")
    t, i = raster["value_encoders"]
    _spikes(axes[1], t, i, raster["encoders_per_channel"], "value\nencoders")
    t, i = raster["features"]
    axes[2].scatter(t, i, s=0.5, color="k", marker="|", linewidths=0.4, rasterized=True)
    axes[2].set_ylabel(f"{raster['key_layer'].replace('_', ' ')}\n(first {raster['n_features_shown']})")
    t, i = raster["values"]
    _spikes(axes[3], t, i, raster["neurons_per_value"], "value neurons\n(red ON, blue OFF)")
    ax = axes[4]
    for trace in raster["process_ca"]:
        ax.plot(raster["astro_t"], trace, lw=0.6, color="tab:green", alpha=0.6)
    ax.set_ylabel("process Ca\n(green)")
    ax2 = ax.twinx()
    ax2.plot(raster["astro_t"], raster["ca_total"], color="tab:olive", lw=1.2, label="astrocyte total Ca")
    ax2.plot(raster["astro_t"], raster["signal"], color="tab:purple", lw=0.8, label="gliotransmitter signal A")
    ax2.legend(loc="upper left", fontsize=7)
    ax.set_xlabel("time (s)   [yellow: write (learning), blue: read (query)]")
    for ax in axes:
        shade_phases(ax, raster["learn_windows"], raster["read_windows"], raster["write_end"])
    axes[0].set_title(title)
    fig.tight_layout()
    save(fig, path)


def prediction_figure(y_true, estimates: dict, path, title=""):
    """Scatter of each estimate's output elements against the true (softmax) output."""
    fig, ax = plt.subplots(figsize=(5.2, 5))
    lo = min(float(np.min(y_true)), *(float(np.min(e)) for e in estimates.values()))
    hi = max(float(np.max(y_true)), *(float(np.max(e)) for e in estimates.values()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
    markers = iter("o^sxd")
    for label, est in estimates.items():
        ax.scatter(y_true.ravel(), est.ravel(), s=12, marker=next(markers), label=label, alpha=0.8)
    ax.set_xlabel("softmax attention output")
    ax.set_ylabel("estimate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def attention_map_figure(tokens, true_map, spike_map, path, title=""):
    """The true attention map and (if given) the one measured from key-neuron spikes, tokens as labels."""
    maps = [("softmax attention", true_map)] + ([("from key-neuron spikes", spike_map)] if spike_map is not None else [])
    size = 2.5 + 0.28 * len(tokens)
    fig, axes = plt.subplots(1, len(maps), figsize=(size * len(maps), size), squeeze=False)
    for ax, (label, data) in zip(axes[0], maps):
        im = ax.imshow(data, cmap="viridis", vmin=0, vmax=float(np.max(true_map)))
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        ax.set_title(label, fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=9)
    save(fig, path)


def normaliser_figure(denominator, astrocyte, path, title="", blocked=None):
    """The astrocyte's normalising signal per query against the attention denominator
    sum_t exp(beta q.k_t) (log-log; the identity line is exact normalisation); ``blocked``: the
    level a blocked astrocyte holds for every query, drawn as a horizontal line."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    levels = np.concatenate([np.ravel(denominator), np.ravel(astrocyte), [] if blocked is None else [blocked]])
    low, high = np.min(levels) / 1.5, np.max(levels) * 1.5
    ax.plot([low, high], [low, high], color="0.6", lw=1, label="astrocyte = denominator")
    ax.scatter(denominator, astrocyte, s=18, color="tab:green", zorder=3,
               label=r"astrocyte: $e^{\theta/\Delta u}\,R/(\rho_{key} n_{key})$, one dot a query")
    if blocked is not None:
        ax.axhline(blocked, color="tab:red", ls="--", lw=1, label="astrocyte blocked: its mean over the reads")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(r"attention denominator $\sum_t z_t\, e^{\beta q\cdot k_t}$")
    ax.set_ylabel("astrocyte's adenosine signal")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save(fig, path)


def layer_error_figure(sentences, path):
    """Relative error of the hidden state after every layer, one line per sentence (metrics.json's
    ``sentences``), spiking layers marked."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for n, sentence in enumerate(sentences):
        layers = [r["layer"] for r in sentence["layers"]]
        errors = [r["rel_err_hidden"] for r in sentence["layers"]]
        ax.plot(layers, errors, "o-", lw=1, ms=3, label=f"sentence {n + 1}" if len(sentences) <= 8 else None)
    spiking = [r["layer"] for r in sentences[0]["layers"] if r["spiking"]]
    for layer in spiking:
        ax.axvspan(layer - 0.4, layer + 0.4, color=READ_COLOR, lw=0, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel("layer (shaded: on spikes)")
    ax.set_ylabel("hidden-state error vs NumPy model")
    ax.set_title("error through the layers", fontsize=9)
    if len(sentences) <= 8:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


def attention_maps_figure(tokens, maps, path, title=""):
    """Each head's true attention map above the one measured from its key neurons' spikes
    (``maps``: list of {head, true, spike})."""
    n = len(maps)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 0.6, 3.6), squeeze=False)
    for col, entry in enumerate(maps):
        vmax = float(entry["true"].max())
        for row, key in enumerate(("true", "spike")):
            ax = axes[row, col]
            ax.imshow(entry[key], cmap="viridis", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"head {entry['head']}", fontsize=8)
    axes[0, 0].set_ylabel("softmax", fontsize=8)
    axes[1, 0].set_ylabel("spikes", fontsize=8)
    fig.suptitle(f"{title} ({len(tokens)} tokens; rows: queries, columns: keys)", fontsize=9)
    save(fig, path)


def similarity_figure(reference, spiking, path):
    """Sentence-similarity matrices of the reference and the spiking model, and their difference."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
    for ax, (label, data) in zip(axes[:2], (("reference (NumPy)", reference), ("spiking", spiking))):
        im = ax.imshow(data, cmap="viridis", vmin=min(reference.min(), spiking.min()), vmax=1)
        ax.set_title(label, fontsize=9)
    fig.colorbar(im, ax=axes[:2].tolist(), shrink=0.8)
    diff = spiking - reference
    bound = max(float(np.abs(diff).max()), 1e-6)
    im = axes[2].imshow(diff, cmap="RdBu_r", vmin=-bound, vmax=bound)
    axes[2].set_title("spiking - reference", fontsize=9)
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_xlabel("sentence")
        ax.set_ylabel("sentence")
    save(fig, path)


def bill_figure(bill, path):
    """Where a spiking pass spends (metrics.json's ``bill``): per stage the synaptic events,
    astrocyte updates and NumPy multiply-accumulates, and the energy against the same arithmetic
    in a conventional network (4.6 pJ per MAC; 0.9 pJ per synaptic event)."""
    order = ("qkv", "attention", "attn_out", "ffn", "ffn_out")              # a layer's stages in order
    stages = sorted(bill["stages"], key=lambda s: order.index(s) if s in order else len(order))
    x = np.arange(len(stages))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    parts = (("synaptic_events", "synaptic events", "tab:purple"), ("astrocyte_updates", "astrocyte updates", "tab:green"),
             ("numpy_macs", "NumPy MACs", "tab:orange"), ("model_macs", "model MACs (conventional)", "k"))
    width = 0.2
    for n, (key, label, color) in enumerate(parts):
        values = [bill["stages"][s][key] or np.nan for s in stages]          # none: no bar
        left.bar(x + (n - 1.5) * width, values, width, label=label, color=color, alpha=0.8 if key != "model_macs" else 0.4)
    left.set_yscale("log")
    left.set_xticks(x, stages)
    left.set_ylabel("operations")
    left.set_title("operations per stage (all sentences; no bar: none)", fontsize=9)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    spiking = [bill["stages"][s]["energy_joules"] * 1e6 for s in stages]
    conventional = [bill["stages"][s]["energy_joules_conventional"] * 1e6 for s in stages]
    right.bar(x - 0.2, spiking, 0.4, label="this run (0.9 pJ/event, 4.6 pJ/NumPy MAC)", color="tab:purple")
    right.bar(x + 0.2, conventional, 0.4, label="conventional network (4.6 pJ/MAC)", color="k", alpha=0.4)
    right.set_yscale("log")
    right.set_xticks(x, stages)
    right.set_ylabel("energy (µJ)")
    right.set_title(f"energy: {bill['energy_joules'] * 1e6:.0f} µJ vs {bill['energy_joules_conventional'] * 1e6:.0f} µJ "
                    f"conventional; {bill['fraction_on_synapses']:.0%} of MACs on synapses", fontsize=9)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    save(fig, path)
