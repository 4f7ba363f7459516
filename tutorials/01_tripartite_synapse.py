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
# # One tripartite synapse: what an astrocyte process remembers
#
# In the circuit every feature (or key) neuron's synapses are wrapped by one **astrocyte process**.
# While tokens are written, each presynaptic spike drives the process; while queries are read, the
# process releases gliotransmitter in proportion to what it has stored, and the astrocyte sums its
# processes into attention's denominator (docs/model.md §2, §5). This tutorial drives one process
# alone with a presynaptic spike train and looks at what it stores, for the three process models:
#
# * `minimal`: a Ca²⁺ integrator, `Ca += kappa` per spike, decaying with `tau_ca` (10⁴ s by default);
# * `gchi`: the G-ChI model of De Pittà et al. 2009 (glutamate → receptors → IP3 → Ca²⁺-induced Ca²⁺ release);
# * `lr1994`: Li–Rinzel Ca²⁺ with IP3 that integrates its input linearly, as NEST's `astrocyte_lr_1994`.
#
# For the biophysical models the circuit reads **IP3 above rest**, not Ca²⁺: IP3 integrates the
# input, Ca²⁺ does not (it stays near rest, then fires all-or-none once IP3 crosses the threshold of
# Ca²⁺-induced Ca²⁺ release, CICR). Then we change one parameter and watch that happen.
#
# The functions used: `circuits.process_response.process_parameters` and `simulate_process` (the
# circuit's own process equations on Brian2, started at their rest state), and
# `models.astrocytes.read_calibration` (the read-out's constants at rest). The command line
# `python -m experiments.astrocyte_response` does the same for a run folder.

# %%
import brian2

brian2.prefs.codegen.target = "numpy"      # small networks: no compilation needed

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from circuits.process_response import process_parameters, simulate_process
from models.astrocytes import read_calibration


def show(fig, name):
    """Save a figure next to the notebook and show the saved file."""
    fig.savefig(name, dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(name))


# %% [markdown]
# ## The presynaptic spike train
#
# A write phase as the circuit sees it: a neuron firing regularly at 20 Hz for 5 s (100 spikes),
# then silence. Each process model gets the same train; we follow it for 20 s.

# %%
spikes = np.arange(1.0, 6.0, 0.05)          # s: 20 Hz from t = 1 s to 6 s
duration = 20.0                             # s
print(f"{len(spikes)} presynaptic spikes")

# %% [markdown]
# ## Three process models, one train
#
# `process_parameters(kind)` gives the model's default parameter set (every value with its unit and
# source, checked); `simulate_process` returns the time axis and the recorded variables (one row per
# process). `C` and `IP3` are concentrations in mM; we plot µM.

# %%
traces = {}
for kind in ("minimal", "gchi", "lr1994"):
    params = process_parameters(kind)
    record = ("Ca",) if kind == "minimal" else ("C", "IP3")
    t, traces[kind] = simulate_process(kind, params, [spikes], duration, record=record)
    if kind != "minimal":
        cal = read_calibration(kind, params)
        print(f"{kind:7s} IP3 at rest {float(cal['IP3_rest']) * 1e3:.3f} uM, per spike "
              f"{float(cal['IP3_per_spike']) * 1e6:.3f} nM, lifetime {cal['tau_IP3_eff']:.0f} s, "
              f"CICR after ~{cal['cicr_spikes']:.0f} fast spikes")

fig, axes = plt.subplots(4, 1, figsize=(7, 7), sharex=True, gridspec_kw={"height_ratios": [0.4, 1, 1, 1]})
axes[0].eventplot(spikes, color="k", lw=0.5)
axes[0].set_yticks([])
axes[0].set_ylabel("input")
axes[1].plot(t, traces["minimal"]["Ca"][0], color="C2")
axes[1].set_ylabel("minimal\nCa (a.u.)")
for ax, kind in zip(axes[2:], ("gchi", "lr1994")):
    ax.plot(t, traces[kind]["IP3"][0] * 1e3, color="C0", label="IP3")
    ax.set_ylabel(f"{kind}\nIP3 (µM)", color="C0")
    ca = ax.twinx()
    ca.plot(t, traces[kind]["C"][0] * 1e3, color="C3", lw=0.8, label="Ca²⁺")
    ca.set_ylabel("Ca²⁺ (µM)", color="C3")
axes[-1].set_xlabel("time (s)")
axes[0].set_title("one process, three models: what 100 presynaptic spikes leave behind")
show(fig, "process_models.png")

# %% [markdown]
# The minimal process counts spikes: `Ca` climbs by `kappa` = 0.001 per spike and stays (its decay
# time is 10⁴ s). G-ChI's IP3 rises while the receptors are bound and keeps the increment for
# minutes; Li–Rinzel's IP3 steps up by `delta_IP3` per spike and decays with `tau_IP3` = 300 s. In
# both, Ca²⁺ barely moves (mind the right-hand axes: about 2 %): the input stays far below the CICR
# threshold, so the read-out (IP3 above rest) is linear in the number of spikes, which is what
# attention's denominator needs.
#
# ## One parameter changed: a stronger synapse
#
# `delta_IP3` is the IP3 that one spike adds in the Li–Rinzel process (0.25 nM here; NEST's
# default is 0.2 nM per unit weight). Raise it eightfold and the same 100 spikes carry IP3 past the
# CICR threshold: Ca²⁺ fires, and IP3 is no longer proportional to the input. `read_calibration`
# predicts this before anything is simulated (`cicr_spikes`), and `head_spec` refuses a head whose
# busiest process would get that far. Overrides are checked by name and unit like every parameter.

# %%
variants = {"delta_IP3 = 0.25 nM (default)": {}, "delta_IP3 = 2 nM": {"delta_IP3": "2e-3*umolar"}}
fig, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
for (label, overrides), color in zip(variants.items(), ("C0", "C1")):
    params = process_parameters("lr1994", overrides=overrides)
    cal = read_calibration("lr1994", params)
    t, tr = simulate_process("lr1994", params, [spikes], duration, record=("C", "IP3"))
    print(f"{label}: CICR after ~{cal['cicr_spikes']:.0f} spikes; peak Ca2+ {tr['C'].max() * 1e3:.2f} uM")
    axes[0].plot(t, tr["IP3"][0] * 1e3, color=color, label=label)
    axes[1].plot(t, tr["C"][0] * 1e3, color=color)
axes[0].axhline(float(cal["IP3_cicr"]) * 1e3, color="0.4", ls="--", lw=0.8, label="CICR threshold")
axes[0].set_ylabel("IP3 (µM)")
axes[0].legend(fontsize=8)
axes[1].set_ylabel("Ca²⁺ (µM)")
axes[1].set_xlabel("time (s)")
axes[0].set_title("lr1994: an eightfold stronger synapse crosses into CICR")
show(fig, "parameter_change.png")

# %% [markdown]
# Try another parameter: `tau_IP3` (the IP3 lifetime, 300 s here, NEST's default 7.142 s) sets how
# long the process remembers a token; tutorial 3 sweeps the minimal process's `tau_ca` inside a whole
# attention head and shows what a short memory does to attention.
