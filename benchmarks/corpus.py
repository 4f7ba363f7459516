"""Throughput and memory of corpus runs: mixed sentence lengths on length buckets, 1 and 2 workers.

    python -m benchmarks.corpus                                   # layer 0's heads on spikes
    python -m benchmarks.corpus --spiking attention,ffn --layers all
    python -m benchmarks.corpus --memory 10,100                   # peak memory of the main process
    python -m benchmarks.corpus --dask                            # the corpus runs on a local Dask cluster

A corpus of 20 sentences of 10-30 tokens (``benchmarks/data/corpus.txt``) runs through
``experiments.spiking_minilm``'s corpus runner on the C++ standalone device:

1. every sentence alone, 2 workers, on a pool warmed by a sentence of its bucket: the warm
   one-sentence time of each (as ``benchmarks.minilm`` measures it);
2. the whole corpus in one run with 2 workers, then with 1 worker, each on a pool warmed by one
   sentence of every bucket (its workers then switch between the buckets' binaries as a corpus run does);
   local processes, or with ``--dask`` a local Dask cluster of that many single-threaded worker processes.

It prints the corpus's seconds per sentence against the one-sentence runs' (no rebuilding between
lengths: within 25 %), the speed-up of 2 workers over 1 (at least 1.7x on 2 cores), and, with
``--memory``, the peak resident memory of the main process for corpora of those sizes (each a
separate ``python -m experiments.spiking_minilm`` process; within 20 %). Writes ``corpus.json`` to a
new ``results/benchmarks/<UTC time>-corpus/``.
"""

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from circuits.protocol import bucket_length
from circuits.runners import make_pool
from experiments import spiking_minilm as experiment
from runs.folders import new_run_dir, run_record, write_json
from transformer import minilm
from transformer.configuration import RunConfig, parse_layers
from transformer.executors import parse_stages
from transformer.spiking import KEEP_FOR_MAPS

CORPUS = Path(__file__).parent / "data" / "corpus.txt"


def corpus_config(texts, stages, layers) -> RunConfig:
    """A corpus run's configuration, made by ``experiments.spiking_minilm`` from its command line."""
    argv = [arg for text in texts for arg in ("--text", text)]
    argv += ["--spiking", ",".join(stages), "--layers", ",".join(map(str, layers))]
    return experiment.configure(experiment.build_parser().parse_args(argv))


@contextlib.contextmanager
def corpus_pool(workers, dask=False):
    """``workers`` local worker processes, or with ``dask`` a local Dask cluster of ``workers``
    single-threaded worker processes (as the README starts them on a real one)."""
    if not dask:
        with make_pool("cpp_standalone", workers, keep=KEEP_FOR_MAPS) as pool:
            yield pool
        return
    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client, \
            make_pool("cpp_standalone", scheduler=client, keep=KEEP_FOR_MAPS) as pool:
        yield pool


def timed_runs(corpora, stages, layers, workers, warmup=(), dask=False) -> list:
    """Wall seconds of corpus runs of each of ``corpora`` (lists of texts), one after another on one
    pool, after an untimed run of ``warmup`` on it (its workers then hold warm binaries)."""
    times = []
    with tempfile.TemporaryDirectory() as folder, corpus_pool(workers, dask) as pool:
        for n, texts in enumerate([list(warmup)] + [list(c) for c in corpora]):
            if not texts:
                continue
            run_dir = Path(folder) / str(n)
            run_dir.mkdir()
            t0 = time.perf_counter()
            experiment.run_corpus(run_dir, corpus_config(texts, stages, layers), pool)
            if n:
                times.append(time.perf_counter() - t0)
    return times


def peak_memory(n_sentences, texts, stages, layers) -> float:
    """Peak resident memory (MiB) of the main process of a corpus run of ``n_sentences`` (the
    corpus repeated), run as its own ``python -m experiments.spiking_minilm`` process."""
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text("\n".join((texts * (n_sentences // len(texts) + 1))[:n_sentences]) + "\n")
        out = subprocess.run([sys.executable, "-m", "experiments.spiking_minilm", "--texts", str(corpus),
                              "--spiking", ",".join(stages), "--layers", ",".join(map(str, layers)),
                              "--out", folder, "--quiet", "--no-figures"],
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        return json.loads((Path(out) / "metrics.json").read_text())["summary"]["peak_rss_mb"]["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spiking", default="attention")
    parser.add_argument("--layers", default="0")
    parser.add_argument("--memory", default=None, help="corpus sizes whose peak memory to measure, e.g. 10,100")
    parser.add_argument("--dask", action="store_true",
                        help="run the whole-corpus runs on a local Dask cluster (extra 'sweep') instead of local processes")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = parser.parse_args(argv)
    texts = [line.strip() for line in CORPUS.read_text().splitlines() if line.strip()]
    stages = parse_stages(args.spiking)
    layers = parse_layers(args.layers, minilm.load_model().n_layers)
    buckets = {}
    for text in texts:
        buckets.setdefault(bucket_length(len(minilm.tokenize(text)[0])), []).append(text)
    t0 = time.perf_counter()
    alone = []                     # each sentence alone on a pool warmed on its bucket: the warm benchmark's way
    for members in buckets.values():
        alone += timed_runs([[text] for text in members], stages, layers, 2, warmup=members[:1])
    warmup = time.perf_counter() - t0 - sum(alone)
    first = [members[0] for members in buckets.values()]
    together = {workers: timed_runs([texts], stages, layers, workers, warmup=first, dask=args.dask)[0]
                for workers in (2, 1)}
    result = {"n_sentences": len(texts), "lengths": [len(minilm.tokenize(t)[0]) for t in texts],
              "buckets": sorted(buckets), "pool": "dask" if args.dask else "processes", "spiking": list(stages),
              "layers": list(layers), "warmup_seconds": warmup,
              "alone_seconds": alone, "alone_per_sentence": sum(alone) / len(texts),
              "corpus_per_sentence": {str(w): t / len(texts) for w, t in together.items()},
              "corpus_over_alone": together[2] / sum(alone), "speedup_2_over_1": together[1] / together[2]}
    if args.memory:
        sizes = [int(n) for n in args.memory.split(",")]
        result["peak_rss_mb_main"] = {str(n): peak_memory(n, texts, ("qkv",), (0,)) for n in sizes}
    out = new_run_dir(args.out, "corpus")
    write_json(out / "corpus.json", {**result, "record": run_record("benchmarks.corpus", None)})
    print(f"{len(texts)} sentences of {min(result['lengths'])}-{max(result['lengths'])} tokens on buckets "
          f"{result['buckets']}, {'+'.join(stages)} of layers {list(layers)}: corpus {together[2] / len(texts):.1f} s "
          f"per sentence (2 workers) vs {result['alone_per_sentence']:.1f} s alone (x{result['corpus_over_alone']:.2f}); "
          f"2 workers {result['speedup_2_over_1']:.2f}x one ({result['pool']}); warm-up {warmup:.0f} s")
    if args.memory:
        print("peak memory of the main process: " + ", ".join(f"{n} sentences {mb:.0f} MB"
                                                              for n, mb in result["peak_rss_mb_main"].items()))
    print(out)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
