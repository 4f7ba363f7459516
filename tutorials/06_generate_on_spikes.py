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
# # Shakespeare on spikes: a character model whose key-value cache is a tripartite memory
#
# chargpt is a small causal language model the project trained on Tiny Shakespeare (4 layers of 4
# heads, 128 wide, a 64-character context; `transformer/chargpt.py`, docs/model.md §14). Its weights
# ship with the project: nothing is trained here. On spikes it is one network of cells like
# all-MiniLM-L6-v2 in tutorial 5, with two differences: its heads are **causal** (query s reads keys
# 0..s) and its output edge is a language-model head on synapses whose logits choose the next
# character.
#
# Generating, each new character is written once into every head's **memory**, a
# `CausalHeadMemory`: the keys on the afferent synapses of a key neuron, the values on its Hebbian
# tripartite synapses, the token's weight in its astrocyte process. The memory is the same Brian2
# network from the first character to the last, so it is the model's key-value cache: the prefix is
# never simulated again.
#
# Here we load the shipped model, let its NumPy reference write a line, then step one real head's
# memory through that line's characters and compare each read with causal softmax attention. The
# whole model's generation and its teacher-forced score on the held-out text are curated runs, read
# at the end.

# %%
import brian2

brian2.prefs.codegen.target = "numpy"      # small networks: no compilation needed

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import circuits
from analysis.attention import softmax_weights
from circuits.head_memory import CausalHeadMemory
from runs.folders import read_json
from transformer import chargpt
from transformer.spiking import block_parameters

# %% [markdown]
# ## The shipped model and a line from its NumPy reference
#
# The record holds the trainer's settings and its validation loss over the held-out last 10 % of
# the text (nanoGPT's CPU "baby GPT" of the same size reaches about 1.88 nats per character).

# %%
model = chargpt.load_model()
print(f"{model.n_layers} layers x {model.n_heads} heads, {model.n_embd} wide, context {model.block_size}; "
      f"validation loss {model.record['validation']['loss']:.3f} nats per character")
PROMPT = "ROMEO:"
line = chargpt.generate(PROMPT, 18)
print(repr(line))

# %% [markdown]
# ## One head's memory, stepped through the line
#
# Layer 0's head 0 reads its queries, keys and values from the model's own projections of the
# line (the NumPy reference's, encoded by the memory's latency encoders; in the network they are
# the W_QKV emitters' spikes). Each step writes character t and reads query t: every key written so
# far fires once, with an efficacy that carries exp(q_t . k_u) relative to the head's score top,
# the tripartite synapses weight those spikes by the values and the astrocyte sums them, the
# denominator. The time steps are coarse (4 ms latency windows of ratio 1.2) to keep this fast; the
# model runs at 10 ms windows of ratio 1.05.

# %%
arch = chargpt.architecture()
reference = chargpt.reference_pass(line)
q, k, v = arch.split_heads(reference.layers[0].attention.parts["qkv"])
root = np.sqrt(arch.head_scale)                      # the keys carry sqrt(scale), as in the network
head = 0
COARSE = {"dt": "0.5*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2, "t_settle": "4*ms",
          "t_learn": "8*ms", "t_read": "48*ms", "key_code_base": 1.2}
params = block_parameters({f"head.{name}": value for name, value in COARSE.items()}, head_code="latency",
                          head_key_code="latency")["head"]
memory = CausalHeadMemory(len(line), arch.head_dim, arch.head_dim, x_top=arch.code_range(0, "attention_qk"),
                          v_top=arch.code_range(0, "attention_v"),
                          score_top=arch.code_range(0, "attention_score", head),
                          y_top=arch.code_range(0, "attn_out"), params=params)
steps = [memory.step(root * q[head, t], root * k[head, t], v[head, t]) for t in range(len(line))]
print(f"built in {memory.build_seconds:.1f} s; {len(steps)} steps of {memory.simulated_seconds / len(steps) * 1e3:.0f} ms "
      f"simulated, {memory.wall_seconds / len(steps):.2f} s each")

# %% [markdown]
# Each read's attention weights (its written keys' efficacies times the processes' memory,
# normalised: what the astrocyte divides by) against causal softmax, and the context the value
# neurons fired against softmax attention's.

# %%
scores = arch.head_scale * q[head] @ k[head].T
true = softmax_weights(scores, np.tril(np.ones_like(scores, dtype=bool)))
measured = np.zeros_like(true)
for t, s in enumerate(steps):
    measured[t, :t + 1] = s.attention
context = np.stack([s.y for s in steps])
target = true @ v[head]
print(f"attention weights: largest difference {np.abs(measured - true).max():.3f}")
print(f"context: relative error {np.linalg.norm(context - target) / np.linalg.norm(target):.3f} against softmax "
      f"attention of the model's q, k, v")
head_metrics = memory.result().metrics          # the steps as one causal head's run, against its budget
print(f"against softmax attention of what the encoders delivered: {head_metrics['rel_err_spike_vs_softmax']:.3f}, "
      f"noise budget {head_metrics['poisson_bound']:.3f} (coarse codes)")
labels = [repr(ch)[1:-1] for ch in line]
fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
for ax, weights, title in zip(axes, (true, measured), ("causal softmax", "read from the memory's spikes")):
    ax.imshow(np.where(np.tril(np.ones_like(weights, dtype=bool)), weights, np.nan), cmap="magma", vmin=0, vmax=1)
    ax.set_xticks(range(len(line)), labels, fontsize=6)
    ax.set_yticks(range(len(line)), labels, fontsize=6)
    ax.set_title(f"layer 0, head {head}: {title}", fontsize=8)
    ax.set_xlabel("key (character written)", fontsize=7)
axes[0].set_ylabel("query (character read)", fontsize=7)
fig.tight_layout()
fig.savefig("memory_attention.png", dpi=120)
plt.close(fig)
display(Image("memory_attention.png"))

# %% [markdown]
# The astrocyte's log signal (its adenosine-free one-spike form: the score top plus the log of its
# summed releases) against the attention's log denominator, log sum over u <= t of exp(score):
# within ln(B_key) / 2 of it at every read.

# %%
log_denominator = np.array([np.log(np.exp(scores[t, :t + 1]).sum()) for t in range(len(line))])
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(log_denominator, "k.-", label="log sum exp(scores), NumPy")
ax.plot([s.log_signal for s in steps], "o", mfc="none", label="astrocyte's log signal")
ax.set_xlabel("character read")
ax.set_ylabel("nats")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig("memory_normaliser.png", dpi=120)
plt.close(fig)
display(Image("memory_normaliser.png"))

# %% [markdown]
# ## The whole model on spikes: curated runs
#
# `python -m experiments.generate --prompt "ROMEO:" --tokens 40` runs every stage of all four
# layers on spikes (C++ standalone for the position-wise circuits, the sixteen memories on the
# runtime device) and prints the text as it comes. Its run folder holds the text, the bill per
# character, a raster of the last character's pass (which keys fired in every head, each
# astrocyte's log denominator) and the attention of the last layer's heads over the text.

# %%
curated = Path(circuits.__file__).resolve().parent.parent / "results/curated/generate"
generation = sorted(p for p in curated.iterdir() if (p / "generated.txt").is_file())[-1]
print((generation / "generated.txt").read_text())
metrics = read_json(generation / "metrics.json", "restore the curated run: git checkout -- results/curated")
per = metrics["bill_per_token"]
print(f"{metrics['seconds_per_token']:.1f} s per character; {per['energy_joules'] * 1e6:.2f} uJ per character by the "
      f"bill ({per['energy_joules_conventional'] * 1e6:.2f} uJ for the same arithmetic in fp32)")
display(Image(generation / "raster.png"))
display(Image(generation / "attention.png"))

# %% [markdown]
# `python -m experiments.generate --eval-text validation --windows 16` scores the model
# teacher-forced on windows of the held-out text: every position's next character, both models.
# With the heads' astrocytes held at their mean (`--block-astrocyte heads`) the attention loses
# its denominator and the perplexity climbs.

# %%
working = None
for run in sorted(p for p in curated.iterdir() if (p / "logprobs.png").is_file()):
    m = read_json(run / "metrics.json", "restore the curated run: git checkout -- results/curated")
    blocked = f"astrocytes blocked: {', '.join(m['block_astrocyte'])}" if m["block_astrocyte"] else "working"
    working = working if m["block_astrocyte"] else run
    print(f"{run.name} ({blocked}): perplexity {m['perplexity_reference']:.3f} (NumPy), {m['perplexity_spiking']:.3f} "
          f"(spikes); top-1 agreement {m['top1_agreement']:.3f} over {m['n_predictions']} characters")
display(Image(working / "logprobs.png"))
