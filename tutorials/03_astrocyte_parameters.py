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
# # Tweak the biophysics: sweep an astrocyte time constant
#
# The astrocyte holds attention's denominator Σ_t K(q, k_t); the Hebbian synapses hold the numerator
# Σ_t K(q, k_t) v_t. Both are memories of the written tokens, and each fades with its own time
# constant: the process calcium with `tau_ca`, the synaptic weights with `tau_hebb` (both 10⁴ s by
# default: no fading over a sequence). What happens to attention when the astrocyte forgets faster?
#
# This tutorial sweeps `tau_ca` from 1 s to 10⁴ s with the Python API, on the exact-kernel circuit
# (whose rate ideal is exactly softmax when nothing fades, so every error beyond spike noise is the
# parameter's doing), twice: with the synapses' `tau_hebb` left at 10⁴ s, and with `tau_hebb` set
# equal to `tau_ca`. docs/model.md §5 derives what to expect.

# %%
import brian2

brian2.prefs.codegen.target = "numpy"      # small networks: no compilation needed

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from analysis.attention import synthetic_head
from circuits.head import head_spec
from circuits.protocol import SHORT_PROTOCOL
from circuits.seeds import SeedStreams
from models.parameters import ParameterError


def show(fig, name):
    """Save a figure next to the notebook and show the saved file."""
    fig.savefig(name, dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(name))


# %% [markdown]
# ## Parameters are checked before anything runs
#
# Any model parameter can be set by name, as a Brian2 quantity or a string; `head_spec` checks its
# unit, its sign, and that the time step resolves it (`dt` at most a tenth of every time constant).
# A wrong value stops with one line:

# %%
q, k, v = synthetic_head(8, 4, 4, 1.0, SeedStreams(0).head)
CIRCUIT = {"neurons_per_key": 8, "neurons_per_value": 16}
PARAMS = {**SHORT_PROTOCOL, "dt": "0.5*ms"}

for bad in ({"tau_ca": "5*mV"}, {"tau_ca": "2*ms"}, {"tau_calcium": "5*second"}):
    try:
        head_spec(q, k, v, "exact", params={**PARAMS, **bad}, **CIRCUIT)
    except (ParameterError, ValueError) as error:
        print(f"{bad}: {error}")

# %% [markdown]
# ## The sweep
#
# One `head_spec(...).simulate()` per point: same head, same seed, only `tau_ca` (and `tau_hebb`)
# changed. The parameters are shared constants of the Brian2 objects, so on the C++ standalone
# device a sweep like this one reuses one compiled binary
# (`circuits.runners.make_runner("cpp_standalone")`); here the runtime device is quick enough.

# %%
taus = [1.0, 3.0, 10.0, 100.0, 1e4]         # s
sweep = {}
for tied in (False, True):
    for tau in taus:
        params = {**PARAMS, "tau_ca": f"{tau}*second"}
        if tied:
            params["tau_hebb"] = params["tau_ca"]
        if tied and tau == 1e4:                 # the default tau_hebb: the same run as untied
            sweep[tied, tau] = sweep[False, tau]
        else:
            sweep[tied, tau] = head_spec(q, k, v, "exact", params=params, seed=0, **CIRCUIT).simulate().metrics
        m = sweep[tied, tau]
        print(f"tau_ca = {tau:7g} s{' = tau_hebb' if tied else '           '}: spikes vs softmax "
              f"{m['rel_err_spike_vs_softmax']:8.3f}, rate ideal vs softmax {m['rel_err_rate_vs_softmax']:8.3f}, "
              f"Poisson bound {m['poisson_bound']:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, tied in zip(axes, (False, True)):
    spikes = [sweep[tied, t]["rel_err_spike_vs_softmax"] for t in taus]
    ideal = [sweep[tied, t]["rel_err_rate_vs_softmax"] for t in taus]
    ideal = np.where(np.array(ideal) > 1e-3, ideal, np.nan)     # 0 at 10^4 s: off a log axis
    bound = [sweep[tied, t]["poisson_bound"] for t in taus]
    ax.plot(taus, spikes, "o-", label="spiking circuit vs softmax")
    ax.plot(taus, ideal, "^--", label="its rate ideal vs softmax")
    ax.plot(taus, bound, ":", color="C3", label="Poisson bound (spike noise)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("astrocyte calcium decay tau_ca (s)")
    ax.set_title("tau_hebb = tau_ca" if tied else "tau_hebb = 10⁴ s (default)", fontsize=10)
axes[0].set_ylabel("relative error vs softmax")
axes[0].legend(fontsize=8)
fig.suptitle("8 tokens written over 2.4 s, then read: what a forgetting astrocyte does")
show(fig, "tau_ca_sweep.png")

# %% [markdown]
# **Left: the astrocyte forgets, the synapses do not.** The numerator keeps every token, the
# denominator loses the early ones: the output is no longer a weighted average and grows past the
# values (errors far above 1 for `tau_ca` of a few seconds, about the length of the sequence).
# **Right: both forget together.** The fading is common to numerator and denominator and cancels
# in the ratio except for its weighting: attention becomes recency-weighted, a_t ∝ K_t exp(−age_t/τ),
# still a weighted average, and its distance from plain softmax falls smoothly as τ grows; once τ
# is a few times the sequence's length the spiking circuit is at its spike-noise floor. (The rate
# ideal's error at 10⁴ s is below 10⁻³, off the axis.)
#
# This is why the biophysical processes' defaults put the IP3 lifetime at 30–50× the write span
# and let `tau_hebb` follow it (README, "The model"). To sweep in parallel processes and write a
# results table instead, use the command line:
# `python -m experiments.sweep attention --grid tau_ca=1*second,10*second --seeds 3`.
#
# Try it: sweep the astrocyte model instead (`astrocyte="gchi"` or `"lr1994"` as a `head_spec`
# option; tutorial 1 shows what each process does), or `rho_value`, or the number of key neurons.
