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
# # The spiking transformer: a sentence through all-MiniLM-L6-v2
#
# One forward pass of all-MiniLM-L6-v2 (6 layers, 12 heads each, a 1536-unit feed-forward block per
# layer) with chosen stages on spiking circuits and the rest in NumPy (docs/model.md §8–§10):
#
# * `qkv`: the layer input's encoders drive W_QKV's synapses onto accumulating units;
# * `attention`: every head on the exact neuron–astrocyte circuit (tutorial 4);
# * `attn_out`: W_O's synapses, driven by the heads' value neurons;
# * `ffn`: encoders, W_1's synapses and spiking GELU populations;
# * `ffn_out`: W_2's synapses, driven by the GELU neurons.
#
# The whole model on spikes takes about 16 s per sentence on two cores with the C++ standalone
# device and the default latency code (one spike per value, docs/model.md §11). Here a small slice
# runs on the runtime device on the rate code, the baseline the latency code replaced, whose noise
# budgets are Poisson bounds: every stage of **layer 0**, but only heads 0 and 1 and the first 64 FFN
# units on spikes (the other heads and units in NumPy), with small populations. Then we read curated
# runs of the whole model on both codes. Needs the model, as tutorial 4.

# %%
import brian2

brian2.prefs.codegen.target = "numpy"      # small networks: no compilation needed

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import circuits
from analysis.attention import relative_error
from circuits.runners import CircuitPool
from experiments.plotting import attention_maps_figure, bill_figure, layer_error_figure
from runs.folders import read_json
from transformer import bill
from transformer.executors import ALL_STAGES, parse_codes
from transformer.spiking import attention_maps, block_parameters, spiking_minilm

# %% [markdown]
# ## A small spiking pass
#
# `spiking_minilm` runs the NumPy reference pass once, checks every circuit of the run on it (sizes,
# parameters against their units and the time step) before anything is simulated, then runs the
# spiking pass. `CircuitPool` is the device runner (here one runtime process; `CircuitPool(
# "cpp_standalone", workers=2)` for real runs). Block parameters are named `BLOCK.NAME`. The run
# holds, per sentence, the reference pass and the spiking pass: every layer's input, its blocks'
# outputs and intermediates, and one record per stage.

# %%
TEXT = "A man plays a guitar."
OPTIONS = {"head": {"neurons_per_key": 8, "neurons_per_value": 8},
           "ffn": {"neurons_per_unit": 16, "off_neurons_per_unit": 2}}
PARAMS = block_parameters({"linear.dt": "1*ms", "linear.dt_enc": "0.5*ms", "linear.lin_enc_gain": "100*Hz"},
                          head_code="rate")

with CircuitPool() as pool:
    run = spiking_minilm([TEXT], ALL_STAGES, layers=[0], pool=pool, heads=(0, 1), ffn_units=64,
                         params=PARAMS, options=OPTIONS, map_layer=0, codes=parse_codes("rate"), log=print)
spiking, reference = run.spiking[0], run.reference[0]
print(f"tokens: {spiking.tokens}")
print(f"sentence embedding: cosine {spiking.embedding @ reference.embedding:.5f} with the NumPy model's")

# %% [markdown]
# ## Every spiking stage against its noise budget
#
# Each stage's record holds its error against NumPy on the same inputs and the error its noise
# budget predicts: the linear stage's encoder quantisation, the heads' and GELU units' Poisson
# bounds. W_O and W_2 on synapses are exactly the weight matrices applied to the decoded spikes.

# %%
layer0 = spiking.layers[0]
records = {**layer0.attention.stages, **layer0.ffn.stages}
print("on spikes:", [name for name, record in records.items() if record["on"] == "spikes"])
qkv = records["qkv"]
print(f"qkv      : error {qkv['rel_err_spike_vs_product']:.4f}, quantisation bound {qkv['quantisation_bound']:.4f}")
for h in records["attention"]["heads"]:
    print(f"head {h['head']}   : error vs softmax {h['rel_err_spike_vs_softmax']:.3f}, spikes vs rate "
          f"{h['rel_err_spike_vs_rate']:.3f}, Poisson bound {h['poisson_bound']:.3f}")
ffn = records["ffn"]
print(f"ffn      : {ffn['units']} units, error vs GELU {ffn['rel_err_spike_vs_gelu']:.3f}, "
      f"Poisson bound {ffn['poisson_bound']:.3f}")

attention_maps_figure(spiking.tokens, attention_maps(run), "attention_maps.png", "layer 0, heads 0 and 1")
display(Image("attention_maps.png"))

# %% [markdown]
# ## The error through the layers
#
# Only layer 0 ran on spikes; its error enters the residual stream and travels through the five
# NumPy layers after it. The hidden-state error after each layer is the relative distance between
# the two passes' layer outputs (`transformer.spiking.run_metrics` computes the same for
# metrics.json).

# %%
layers = []
for n, (layer, ref) in enumerate(zip(spiking.layers, reference.layers)):
    on_spikes = [name for block in (layer.attention, layer.ffn) for name, record in block.stages.items()
                 if record["on"] == "spikes"]
    layers.append({"layer": n, "spiking": on_spikes, "rel_err_hidden": relative_error(layer.output, ref.output)})
    print(f"layer {n}: hidden-state error {layers[-1]['rel_err_hidden']:.4f}"
          f"{'  (on spikes: ' + ', '.join(on_spikes) + ')' if on_spikes else ''}")
layer_error_figure([{"layers": layers}], "layer_error.png")
display(Image("layer_error.png"))

# %% [markdown]
# ## The bill: spikes, synaptic events, energy
#
# `transformer.bill` counts what the simulation did (each population's spikes, each synapse object's
# events, astrocyte-process updates) and what stayed in NumPy (multiply-accumulates), and prices
# them with Horowitz 2014's 45 nm figures: 0.9 pJ per synaptic event (an accumulate), 4.6 pJ per
# MAC. `bill.bill` adds up stage records given as (layer, stage, record); metrics.json's `bill` is
# that of every stage of the pass, here we take layer 0's alone and then the whole pass.

# %%
stages = [(n, name, record) for n, layer in enumerate(spiking.layers) for block in (layer.attention, layer.ffn)
          for name, record in block.stages.items()]
layer0_bill = bill.bill([entry for entry in stages if entry[0] == 0])
print(bill.bill_table(layer0_bill))
whole = bill.bill(stages)
print(f"\nwhole pass: {whole['spikes']:,} spikes, {whole['synaptic_events']:,} synaptic events, "
      f"{whole['fraction_on_synapses']:.1%} of the model's MACs on synapses")
bill_figure(layer0_bill, "bill.png")
display(Image("bill.png"))

# %% [markdown]
# Per operation a synaptic event is cheaper than a MAC, but the circuits spend many events per MAC
# they replace (rate codes count spikes over hundreds of milliseconds); the table's last columns set
# each stage's energy against the same arithmetic in a conventional network.
#
# ## The whole model on synapses: a curated run
#
# `python -m experiments.spiking_minilm --texts experiments/data/sentences.txt --spiking all --code rate` ran all
# six layers with every stage on spikes (W_QKV, the heads, W_O, the GELU layers, W_2) for eight
# sentences (results/README.md). Its `metrics.json` holds each sentence's cosine, the hidden-state
# error after every layer, and the run's bill.

# %%
curated = Path(circuits.__file__).resolve().parent.parent / "results/curated/spiking_minilm/20261130-202538-8sent"
# read_json names the file in one line if a copy left it damaged (and says how to restore it)
full = read_json(curated / "metrics.json", "restore the curated run: git checkout -- results/curated")
summary = full["summary"]
print(f"{summary['n_sentences']} sentences, {summary['n_spiking_heads']} heads and "
      f"{summary['n_spiking_ffn_blocks']} FFN blocks on spikes, {summary['total_spikes']:,} spikes, "
      f"{summary['fraction_on_synapses']:.0%} of the MACs on synapses; "
      f"cosine with the NumPy model: min {summary['cosine_min']:.4f}, median {summary['cosine_median']:.4f}")
print(bill.bill_table(full["bill"]))
layer_error_figure(full["sentences"], "curated_layer_error.png")
display(Image("curated_layer_error.png"))
bill_figure(full["bill"], "curated_bill.png")
display(Image("curated_bill.png"))

# %% [markdown]
# With every weight matrix on synapses the hidden-state error grows from ~6 % after layer 0 to
# ~14 % after layer 5, and the sentence embeddings keep a cosine above 0.99 with the NumPy model's.
# The bill shows where the spikes go: W_O, driven by the heads' value neurons, takes three quarters
# of the synaptic events, because every value spike reaches all 384 output units.
#
# ## The same model on the latency code
#
# The latency code, the default since, carries every value in one spike (docs/model.md §11): a latency encoder fires once
# per token window, the sooner the larger the value, and the synapse delivers its weight times what
# that spike carries. The heads run on the latency exact-kernel circuit (docs/model.md §3): each key
# neuron fires one spike per query whose efficacy carries exp(q·k) relative to a fixed top, and the
# astrocyte sums those efficacies and divides by the sum, as it did the rate code's counts. The
# curated run of the same eight sentences:

# %%
latency_run = curated.parent / "20261206-064117-8sent"
lean = read_json(latency_run / "metrics.json", "restore the curated run: git checkout -- results/curated")
for name, run in (("rate code", full), ("latency code", lean)):
    n = run["summary"]["n_sentences"]
    print(f"{name:>12}: {run['bill']['energy_joules'] / n * 1e3:6.3f} mJ per sentence "
          f"({run['bill']['energy_joules'] / run['bill']['energy_joules_conventional']:.2f}x the fp32 network), "
          f"{run['bill']['synaptic_events_per_mac']:6.1f} synaptic events per MAC, "
          f"cosine median {run['summary']['cosine_median']:.4f}")
print(bill.bill_table(lean["bill"]))

# %% [markdown]
# One spike per value makes every weight matrix cost one synaptic event per multiply-accumulate, and
# one spike per key and query the attention core two: the model spends a fifth of the conventional
# network's energy in 32-bit float, and its embeddings are closer to the NumPy model's (no Poisson
# noise). Against 8-bit integer arithmetic it is still four times dearer: a synaptic event at 0.9 pJ
# costs four int8 multiply-accumulates.
#
# ## One network: LayerNorm by an astrocyte, and its ablation
#
# Everything above reads each stage's output as numbers, and NumPy adds the residual and computes
# LayerNorm. In the default run of the whole model nothing is read between the embedding and the
# pooled output (docs/model.md §12): stages pass spikes, the residual sum converges on synapses, and
# each LayerNorm is a circuit whose astrocyte sets the gain (docs/model.md §13). An interneuron reads
# the tokens' mean through the same afferents and subtracts it with one spike; square neurons fire
# once each and the astrocyte sums their squared efficacies, S = mean (z − μ)²; the output neurons
# divide by √S and fire n = (z − μ)/σ. Here is layer 0's LayerNorm on one sentence's residual sum,
# with the astrocyte working and held at its mean signal over the tokens:

# %%
from circuits.layernorm import layernorm_spec, token_gains
from transformer import minilm
from transformer.forward import forward

(sentence,) = forward(["The cat sat quietly on the warm windowsill."])
z = sentence.layers[0].input + sentence.layers[0].attention.output
for blocked in (False, True):
    result = layernorm_spec([(z, np.eye(z.shape[1]))], np.zeros(z.shape[1]), block_astrocyte=blocked,
                            mu_top=minilm.code_range(0, "ln1_mean"),
                            d_top=minilm.code_range(0, "ln1_centred")).simulate()
    gain, inverse_sigma = token_gains(result)
    print(f"astrocyte {'blocked' if blocked else 'working'}: error against LayerNorm "
          f"{result.metrics['rel_err_spike_vs_layernorm']:.4f} (budget {result.metrics['layernorm_budget']:.4f}); "
          f"gain / (1/sigma) per token from {np.min(gain / inverse_sigma):.3f} to {np.max(gain / inverse_sigma):.3f}")

# %% [markdown]
# Working, the gain is 1/σ within the code's step for every token and the error is the codes' own;
# blocked, every token is divided by the same number and the error grows tenfold. In the whole model
# the blocked LayerNorm astrocytes (`--block-astrocyte layernorm`) break the embeddings; the curated
# runs of the eight sentences:

# %%
network = curated.parent / "20261206-092950-8sent"
network_blocked = curated.parent / "20261206-093529-8sent"
for name, folder in (("one network", network), ("LayerNorm astrocytes blocked", network_blocked)):
    run = read_json(folder / "metrics.json", "restore the curated run: git checkout -- results/curated")
    s = run["summary"]
    print(f"{name:>29}: cosine median {s['cosine_median']:.4f} (min {s['cosine_min']:.4f}), NumPy operations "
          f"between the edges {s['numpy_ops']:,}, {run['bill']['per_sentence']['energy_joules'] * 1e3:.3f} mJ per sentence")

# %% [markdown]
# The one network keeps the embeddings within a cosine of 0.999 of the NumPy model's with no NumPy
# arithmetic between its edges, on the same bill as the chain of stages (the LayerNorm circuits add
# about 2 300 events per token each). With the LayerNorm astrocytes held at their mean signal the
# residual stream's scale is no longer reset per token, it drifts through the layers, and the
# sentence embeddings lose the model's (cosine near 0): the astrocytes carry the normalisation.
