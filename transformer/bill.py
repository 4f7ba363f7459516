"""What a forward pass spends: spikes, synaptic events, astrocyte updates, NumPy multiply-accumulates, energy.

Counting follows the spiking-transformer literature (Spikformer, Zhou et al. 2023, arXiv:2209.15425;
Yao et al. 2023, Spike-driven Transformer, arXiv:2307.01694): a synaptic operation (SOP) is one presynaptic spike
arriving at one synapse, an accumulate; a conventional network spends one multiply-accumulate (MAC)
per weight and input. Energies at 45 nm, 32-bit floating point (Horowitz 2014, "Computing's energy
problem (and what we can do about it)", ISSCC, doi:10.1109/ISSCC.2014.6757323): an add 0.9 pJ, a
multiply 3.7 pJ, so E_AC = 0.9 pJ per synaptic event and E_MAC = 4.6 pJ per MAC. Like those papers
this counts arithmetic only (no memory access, no neuron state updates). Beside the fp32 network the
bill gives the same arithmetic at 8-bit integers (Horowitz 2014: multiply 0.2 pJ, add 0.03 pJ;
E_MAC_INT8 = 0.23 pJ), the fair conventional competitor of a low-precision spiking code, and the
mean spikes per spiking neuron (the unit of Stanojevic et al., Nat. Commun. 2024, "High-performance
deep spiking neural networks with 0.3 spikes per neuron").

Everything is counted from what the simulation did (``circuits.circuit.SpikingCircuit``: each
source's spike monitor and each synapse object's wiring), not from what it should have done. The
model's MACs per stage (:func:`stage_macs`) say how much of the network's arithmetic a stage
stands for; ``fraction_on_synapses`` is the share of the model's MACs whose stage ran on synapses
(docs/model.md §10).
"""

import numpy as np

#: Energy of one synaptic event (an accumulate) and of one multiply-accumulate, joules (Horowitz 2014).
E_AC = 0.9e-12
E_MAC = 4.6e-12
#: A multiply-accumulate at 8-bit integers, joules (Horowitz 2014: 0.2 pJ multiply + 0.03 pJ add).
E_MAC_INT8 = 0.23e-12

#: A layer's stages in order, and what each computes (docs/model.md §10).
STAGES = {
    "qkv": "q, k, v = W_QKV x + b_QKV",
    "attention": "softmax(scale q k^T) v per head (the attention core)",
    "attn_out": "context W_O + b_O",
    "ffn": "GELU(W_1 h + b_1)",
    "ffn_out": "W_2 g + b_2",
}

#: What sits between a layer's blocks: the residual sum and LayerNorm after each block (``ln1``,
#: ``ln2``) and the embeddings' LayerNorm (``layernorm``). NumPy computes them in the chain of
#: spiking stages; the one network (``transformer.network``) runs them on LayerNorm astrocyte circuits.
NORMALISATION_STAGES = {
    "layernorm": "LayerNorm(e) of the embeddings' sum",
    "ln1": "LayerNorm(x + attention block)",
    "ln2": "LayerNorm(h + feed-forward block)",
}
#: NumPy's arithmetic per hidden value of a residual sum and LayerNorm: the add, the mean's add,
#: the centring, the square, the variance's add, the division by sigma, gamma and beta (the
#: embeddings' LayerNorm has no residual add: one less).
NORMALISATION_OPS = 8
#: NumPy's arithmetic per value a chain of stages decodes to a number and encodes again at a stage
#: boundary (a latency spike's value, then its encoder's start value).
BOUNDARY_OPS = 2

#: Synapse objects whose events update astrocyte processes (the tripartite synapses' glial side).
ASTROCYTE_SYNAPSES = ("astro_processes",)


def stage_macs(stage, n_tokens, model) -> int:
    """Multiply-accumulates of one stage of one layer for a sentence of ``n_tokens`` in a conventional
    network: the weight matrices' products, and for attention q k^T and the weighted sum of v (with
    causal heads, a query s reads s + 1 keys: n (n + 1) / 2 pairs); ``lm_head``, the output edge's
    language-model head (``transformer.architecture.Architecture.readout``)."""
    n, hidden, inner = n_tokens, model.hidden_size, model.intermediate_size
    if stage in NORMALISATION_STAGES:
        return 0            # counted in numpy_ops (the MAC-based bills of the field leave them out)
    pairs = n * (n + 1) // 2 if getattr(model, "causal", False) else n * n
    if stage == "lm_head":
        return n * hidden * model.vocab_size
    return {"qkv": n * hidden * 3 * hidden,
            "attention": model.n_heads * 2 * pairs * model.head_dim,
            "attn_out": n * hidden * hidden,
            "ffn": n * hidden * inner,
            "ffn_out": n * inner * hidden}[stage]


def numpy_stage(stage, n_tokens, model, macs=None) -> dict:
    """The bill of a stage (or of ``macs`` of it) computed in NumPy; ``numpy_ops`` counts its
    arithmetic on the hidden state (a MAC as one; a residual sum and LayerNorm NORMALISATION_OPS per value)."""
    macs = stage_macs(stage, n_tokens, model) if macs is None else int(macs)
    ops = macs
    if stage in NORMALISATION_STAGES:
        ops = (NORMALISATION_OPS - (stage == "layernorm")) * n_tokens * model.hidden_size
    return {"on": "numpy", "model_macs": stage_macs(stage, n_tokens, model), "numpy_macs": macs, "numpy_ops": ops,
            "synaptic_events": 0, "astrocyte_updates": 0, "spikes": {}, "neuron_seconds": {}, "neurons": {}}


def circuit_tally(circuit) -> dict:
    """Spikes per population, neurons and neuron-seconds per population (size x simulated time),
    synaptic events and astrocyte-process updates of one run circuit (frozen or not). Every event
    a spike delivered counts, whether the synapse's phase gate let it change anything or not. A
    replayed population (``config["replay_groups"]``: another circuit's emitters, ``circuits.codes``)
    is not counted as neurons or spikes here: its spikes are the emitters', counted where they fired;
    the events they deliver in this circuit are counted here."""
    replays = set(circuit.config.get("replay_groups", ()))
    spikes = {pop: n for pop, n in circuit.population_spikes().items() if pop not in replays}
    duration = circuit.schedule.duration
    events = circuit.synaptic_events()
    astro = sum(n for name, n in events.items() if name in ASTROCYTE_SYNAPSES)
    return {"synaptic_events": int(sum(events.values()) - astro), "astrocyte_updates": int(astro),
            "spikes": spikes, "neurons": {pop: len(circuit.groups[pop]) for pop in spikes},
            "neuron_seconds": {pop: len(circuit.groups[pop]) * duration for pop in spikes}}


def spiking_stage(stage, n_tokens, model, circuits, numpy_macs=0, decoded=0) -> dict:
    """The bill of a stage run on ``circuits`` (run circuits), with ``numpy_macs`` of it left to NumPy
    and ``decoded`` output values read as numbers and encoded again by the next stage (BOUNDARY_OPS
    each in ``numpy_ops``)."""
    out = {"on": "spikes", "model_macs": stage_macs(stage, n_tokens, model), "numpy_macs": int(numpy_macs),
           "numpy_ops": int(numpy_macs) + BOUNDARY_OPS * int(decoded),
           "synaptic_events": 0, "astrocyte_updates": 0, "spikes": {}, "neuron_seconds": {}, "neurons": {}}
    for circuit in circuits:
        add_tally(out, circuit_tally(circuit))
    return out


def add_tally(total, part) -> dict:
    """Add a tally's counts into ``total`` (in place) and return it."""
    for key in ("synaptic_events", "astrocyte_updates", "numpy_macs", "numpy_ops", "model_macs"):
        if key in part:
            total[key] = total.get(key, 0) + part[key]
    for key in ("spikes", "neuron_seconds", "neurons"):
        for pop, n in part.get(key, {}).items():
            total.setdefault(key, {})[pop] = total.get(key, {}).get(pop, 0) + n
    return total


def energy(tally) -> dict:
    """Energy of a tally: synaptic events and astrocyte updates at E_AC, NumPy MACs at E_MAC; and
    of the same arithmetic in a conventional network (every model MAC at E_MAC, and at E_MAC_INT8)."""
    events = tally["synaptic_events"] + tally["astrocyte_updates"]
    macs = tally["model_macs"]
    spiking_macs = macs - tally["numpy_macs"] if macs else 0
    return {"energy_joules": E_AC * events + E_MAC * tally["numpy_macs"],
            "energy_joules_conventional": E_MAC * macs,
            "energy_joules_conventional_int8": E_MAC_INT8 * macs,
            "fraction_on_synapses": spiking_macs / macs if macs else 0.0,
            "synaptic_events_per_mac": events / spiking_macs if spiking_macs else None}


def summarise(tally) -> dict:
    """A tally with its energy, each population's mean firing rate (Hz) and the mean spikes per
    spiking neuron (each circuit's neurons counted once, as separate cells)."""
    rates = {pop: tally["spikes"][pop] / tally["neuron_seconds"][pop] for pop in tally["spikes"]
             if tally["neuron_seconds"].get(pop)}
    neurons = sum(tally.get("neurons", {}).values())
    return {"synaptic_events": int(tally["synaptic_events"]), "astrocyte_updates": int(tally["astrocyte_updates"]),
            "numpy_macs": int(tally["numpy_macs"]), "numpy_ops": int(tally.get("numpy_ops", tally["numpy_macs"])),
            "model_macs": int(tally["model_macs"]),
            "spikes": int(sum(tally["spikes"].values())), "spikes_by_population": dict(tally["spikes"]),
            "neurons": int(neurons), "spikes_per_neuron": sum(tally["spikes"].values()) / neurons if neurons else None,
            "mean_rate_hz": rates, **energy(tally)}


def bill(stage_records) -> dict:
    """The bill of a forward pass, as ``metrics.json`` keeps it.

    Parameters
    ----------
    stage_records : iterable of tuple
        ``(layer, stage, record)`` of every stage of the pass (the stage records of each layer's
        ``transformer.executors.BlockOutput``; :func:`numpy_stage`, :func:`spiking_stage`).

    Returns
    -------
    dict
        The totals (spikes, synaptic events, astrocyte updates, NumPy and model MACs, energy and
        the conventional network's, the fraction of MACs on synapses: :func:`summarise`), the same
        per layer (``layers``, with each layer's ``stages``) and per stage (``stages``), and the
        energy ``constants`` with their source.
    """
    total, layers, stages, grid = {}, {}, {}, {}
    for layer, stage, record in stage_records:
        add_tally(total, record)
        add_tally(layers.setdefault(str(layer), {}), record)
        add_tally(stages.setdefault(stage, {}), record)
        add_tally(grid.setdefault(str(layer), {}).setdefault(stage, {}), record)
    empty = {"synaptic_events": 0, "astrocyte_updates": 0, "numpy_macs": 0, "model_macs": 0, "spikes": {},
             "neuron_seconds": {}, "neurons": {}}
    return {**summarise({**empty, **total}),
            "layers": {k: {**summarise({**empty, **v}),
                           "stages": {s: summarise({**empty, **t}) for s, t in grid[k].items()}}
                       for k, v in layers.items()},
            "stages": {k: summarise({**empty, **v}) for k, v in stages.items()},
            "constants": {"E_AC_joules": E_AC, "E_MAC_joules": E_MAC, "E_MAC_INT8_joules": E_MAC_INT8,
                          "source": "Horowitz 2014, ISSCC, doi:10.1109/ISSCC.2014.6757323 (45 nm; 32-bit float, "
                                    "8-bit integer)"}}


def bill_table(summary) -> str:
    """The bill as a printable table: one row per stage and the total."""
    rows = [("stage", "on", "spikes", "spikes/neuron", "syn. events", "events/MAC", "astro upd.", "NumPy MACs",
             "NumPy ops", "model MACs", "E (µJ)", "E fp32 (µJ)", "E int8 (µJ)")]
    for name, s in list(summary["stages"].items()) + [("total", summary)]:
        on = "spikes" if s["fraction_on_synapses"] > 0.999 else ("NumPy" if s["fraction_on_synapses"] < 1e-3
                                                                  else f"{s['fraction_on_synapses']:.0%} spikes")
        if not s["model_macs"]:         # the residual sums and LayerNorms: no MACs, on cells or in NumPy
            on = "NumPy" if s.get("numpy_ops") else "spikes"
        # Bills written before the int8 line and the neuron counts (older run folders) lack them: "–".
        per_neuron = "–" if s.get("spikes_per_neuron") is None else f"{s['spikes_per_neuron']:.2f}"
        per_mac = "–" if s["synaptic_events_per_mac"] is None else f"{s['synaptic_events_per_mac']:.2f}"
        int8 = E_MAC_INT8 * s["model_macs"]
        rows.append((name, on, f"{s['spikes']:,}", per_neuron, f"{s['synaptic_events']:,}", per_mac,
                     f"{s['astrocyte_updates']:,}", f"{s['numpy_macs']:,}", f"{s.get('numpy_ops', s['numpy_macs']):,}",
                     f"{s['model_macs']:,}",
                     f"{s['energy_joules'] * 1e6:.1f}", f"{s['energy_joules_conventional'] * 1e6:.1f}",
                     f"{int8 * 1e6:.2f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


def per_sentence(summary, n_sentences) -> dict:
    """Totals per sentence (the bill divided by the number of sentences)."""
    keys = ("synaptic_events", "astrocyte_updates", "numpy_macs", "model_macs", "spikes", "energy_joules",
            "energy_joules_conventional", "energy_joules_conventional_int8")
    return {k: float(np.asarray(summary[k]) / n_sentences) for k in keys}
