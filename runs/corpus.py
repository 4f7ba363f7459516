"""A streamed, resumable corpus run of all-MiniLM-L6-v2 on spiking circuits, in a run folder.

The corpus runner of ``experiments.spiking_minilm``, shared with the experiments that embed a
corpus the same way (``experiments.similarity``): sentences run in batches (sentences of one
length, or length bucket, together), each finished sentence is written at once (atomically) to
``sentences/<id>.json`` and dropped from memory, and a second call on the same folder continues a
killed run, recomputing no finished sentence (every circuit's seed derives from its sentence's
index, so the embeddings equal those of an uninterrupted run). A damaged sentence record is
reported in one line and computed again. :func:`read_run` reads a run's configuration back from
its params.json for ``--resume``.
"""

import sys
import time
from pathlib import Path

import numpy as np

from circuits.protocol import bucket_length
from runs.folders import FileError, read_json, write_atomic, write_json
from transformer import minilm
from transformer.configuration import RunConfig
from transformer.spiking import attention_maps, sentence_records, spiking_minilm

#: What a sentence's record holds (``transformer.spiking.sentence_records``, plus its wall time).
RECORD_FIELDS = ("id", "text", "tokens", "cosine", "embedding", "reference_embedding", "layers", "stages",
                 "wall_seconds")


def sentence_path(run_dir, sentence_id) -> Path:
    """Where a finished sentence's record lives in a run folder."""
    return Path(run_dir) / "sentences" / f"{sentence_id:05d}.json"


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
    report = report or (lambda line: print(line, file=sys.stderr, flush=True))
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


def run_corpus(run_dir, config: RunConfig, pool, say=None, report=None) -> None:
    """Run every sentence of ``config.texts`` not yet in ``run_dir``, batch by batch; each finished
    sentence is written (atomically) to ``sentences/<id>.json`` and dropped from memory, the map
    layer's attention maps of sentence 0 to ``attention_maps.npz``. ``say`` takes progress lines
    (sentences done, heads per second, time left), ``report`` the line of each damaged record
    found (:func:`finished`)."""
    texts = config.texts
    pending = sorted(set(range(len(texts))) - finished(run_dir, len(texts), report))
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


def read_run(run_dir, experiment: str) -> tuple:
    """The params.json record of the ``experiment``'s run in ``run_dir`` and its configuration
    (``RunConfig.from_record``); ValueError with one line if there is none, it is another
    experiment's, or it is damaged."""
    path = Path(run_dir) / "params.json"
    if not path.is_file():
        raise ValueError(f"--resume {run_dir}: no {experiment} run there (no params.json)")
    todo = "the run's configuration is lost: restore params.json from a copy, or start a new run"
    record = read_json(path, todo)
    if record.get("experiment") != experiment:
        raise ValueError(f"--resume {run_dir}: no {experiment} run there (params.json is of "
                         f"{record.get('experiment')!r})")
    try:
        return record, RunConfig.from_record(record.get("configuration"))
    except ValueError as exc:
        raise FileError(f"{path}: {exc}; {todo}") from None
