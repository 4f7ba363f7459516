"""Speed and memory of all-MiniLM-L6-v2 on spikes: sentences through all six layers, cold and warm.

    python -m benchmarks.minilm                       # every stage on spikes, latency code, 2 workers
    python -m benchmarks.minilm --text "..." --text "..."   # several lengths
    python -m benchmarks.minilm --code rate           # the rate-code baseline
    python -m benchmarks.minilm --spiking attention --workers 1

Runs each sentence once to compile (or find in the cache) the binaries of its length bucket (cold,
``--buckets`` as ``experiments.spiking_minilm`` pads it), then times ``--repeats`` runs with the
binaries warm (each printed, and their median per sentence): wall time per sentence, per head (a head's own run:
its runtime build of the values, the binary, reading the results) and per FFN slice, synaptic
events per second of wall time, and the peak resident memory of the main process and of its
largest child (a worker process, the compiler or a binary). Writes ``minilm.json`` to a new
``results/benchmarks/<UTC time>/``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from circuits.protocol import BUCKETS
from circuits.runners import CircuitPool
from runs.folders import new_run_dir, peak_memory_mb, run_record, write_json
from transformer.configuration import parse_buckets
from transformer.executors import ALL_STAGES, DEFAULT_CODE, FFN_SLICES, parse_codes, parse_stages
from transformer.spiking import run_metrics, sentence_records, spiking_minilm

SENTENCE = "A man is playing a guitar on the stage."      # 12 tokens with [CLS] and [SEP]


def sentence_point(run) -> dict:
    """One warm run's figures: wall time per sentence, per head and per FFN slice, events per second."""
    metrics = run_metrics(sentence_records(run), run.stages, run.wall_seconds)
    layers = metrics["sentences"][0]["layers"]
    heads = [h["wall_seconds"] for layer in layers for h in layer.get("attention", {}).get("heads", [])]
    ffn = [layer["ffn"]["wall_seconds"] for layer in layers if "ffn" in layer]
    events = metrics["bill"]["synaptic_events"] + metrics["bill"]["astrocyte_updates"]
    return {"wall_seconds_per_sentence": run.wall_seconds, "n_tokens": len(run.spiking[0].tokens),
            "heads": len(heads), "wall_seconds_per_head_mean": float(np.mean(heads)) if heads else None,
            "ffn_slices": FFN_SLICES * len(ffn),
            "wall_seconds_per_ffn_slice_mean": float(np.mean(ffn)) / FFN_SLICES if ffn else None,
            "synaptic_events": events, "synaptic_events_per_second": events / run.wall_seconds,
            "energy_joules": metrics["bill"]["energy_joules"],
            "fraction_on_synapses": metrics["bill"]["fraction_on_synapses"], "cosine": metrics["summary"]["cosine_min"]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.minilm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", action="append", default=None,
                        help=f"a sentence, repeatable: each is timed on its own (default: {SENTENCE!r})")
    parser.add_argument("--spiking", default="all")
    parser.add_argument("--code", default=DEFAULT_CODE, help="'rate', 'latency' or STAGE=CODE pairs (experiments.spiking_minilm)")
    parser.add_argument("--boundaries", choices=("spikes", "numpy"), default=None,
                        help="what crosses the stage boundaries (experiments.spiking_minilm; default spikes where "
                             "every stage runs on spikes in the latency code)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per sentence (the median is printed)")
    parser.add_argument("--buckets", default=",".join(map(str, BUCKETS)),
                        help="length buckets, as experiments.spiking_minilm pads a sentence ('none': its own length)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = parser.parse_args(argv)
    try:
        stages, codes, buckets = parse_stages(args.spiking), parse_codes(args.code), parse_buckets(args.buckets)
    except ValueError as exc:
        parser.error(str(exc))
    texts = args.text or [SENTENCE]
    whole = stages == ALL_STAGES and all(code == "latency" for code in codes.values())
    boundaries = args.boundaries or ("spikes" if whole else "numpy")
    if boundaries == "spikes" and not whole:
        parser.error("--boundaries spikes needs every stage on spikes in the latency code")
    points = []
    with CircuitPool("cpp_standalone", args.workers) as pool:
        for text in texts:
            t0 = time.perf_counter()
            spiking_minilm([text], stages, pool=pool, codes=codes, buckets=buckets,   # cold: compile or find the binaries
                           boundaries=boundaries)
            cold = time.perf_counter() - t0
            for repeat in range(args.repeats):
                run = spiking_minilm([text], stages, pool=pool, seed=repeat + 1, codes=codes, buckets=buckets,
                                     boundaries=boundaries)
                points.append({"cold_seconds": cold, **sentence_point(run)})
    memory = peak_memory_mb()
    result = {"points": points, "peak_rss_mb": memory, "workers": args.workers, "spiking": list(stages),
              "boundaries": boundaries,
              "codes": codes, "buckets": None if buckets is None else list(buckets), "texts": texts}
    out = new_run_dir(args.out, "minilm")
    write_json(out / "minilm.json", {**result, "record": run_record("benchmarks.minilm", None)})
    for point in points:
        per_head = point["wall_seconds_per_head_mean"]
        print(f"{point['n_tokens']} tokens, {'+'.join(stages) or 'nothing'} on spikes, {boundaries} across the "
              f"boundaries, {args.workers} workers: "
              f"{point['wall_seconds_per_sentence']:.1f} s per sentence"
              + (f", {per_head:.2f} s per head (own run)" if per_head else "")
              + f", {point['synaptic_events_per_second'] / 1e6:.0f} M synaptic events per second, "
              f"{point['fraction_on_synapses']:.1%} of MACs on synapses, cosine {point['cosine']:.4f}")
    medians = {}
    for point in points:
        medians.setdefault(point["n_tokens"], []).append(point["wall_seconds_per_sentence"])
    print("median warm seconds per sentence: "
          + ", ".join(f"{n} tokens {np.median(walls):.1f} s" for n, walls in medians.items()))
    cold = ", ".join(f"{point['cold_seconds']:.0f} s" for point in points[::args.repeats])
    print(f"cold runs (compile or cache): {cold}; peak memory: main {memory['main']:.0f} MB, "
          f"largest child {memory['largest_child']:.0f} MB")
    print(out)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
