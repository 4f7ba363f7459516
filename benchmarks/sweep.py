"""Parallel speed-up of the sweep runner: the same points with 1 worker and with N workers.

    python -m benchmarks.sweep                      # 8 points (4 feature counts x 2 seeds), 1 vs 2 workers
    python -m benchmarks.sweep --workers 4 --features 32,64,96,128 --seeds 4

A warm-up point first fills Brian2's code cache, so that both timed sweeps pay only simulation and
process start-up, not Cython compilation. Each point is ``python -m experiments.attention`` on a
small head (``--tokens``, short protocol). Prints and saves ``results.md`` (wall seconds per
sweep, speed-up, parallel efficiency) to a new ``results/benchmarks/<UTC time>-sweep/``.
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from experiments.sweep import read_failures, run_sweep
from runs.folders import new_run_dir

ROOT = Path("results/benchmarks")
PROTOCOL = ["--set", "t_settle=50*ms", "--set", "t_learn=200*ms", "--set", "t_read=400*ms"]


def timed_sweep(grid, seeds, fixed_args, workers, folder) -> float:
    """Wall seconds of one sweep into ``folder``; raises if any point failed."""
    t0 = time.perf_counter()
    out = run_sweep("attention", grid, seeds, fixed_args=fixed_args, out=folder, workers=workers,
                    stream=io.StringIO())
    wall = time.perf_counter() - t0
    failures = read_failures(out)
    if failures:
        raise RuntimeError(f"{len(failures)} sweep points failed, e.g. {failures[0]}")
    return wall


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="workers of the parallel sweep")
    p.add_argument("--features", default="32,64,96,128", help="grid of feature counts m")
    p.add_argument("--seeds", type=int, default=2, help="seeds per grid point")
    p.add_argument("--tokens", type=int, default=8, help="tokens L of each point's head")
    args = p.parse_args(argv)
    grid = {"features": args.features.split(",")}
    seeds = list(range(args.seeds))
    fixed = ["--tokens", str(args.tokens), "--dim", "8", "--value-dim", "8", *PROTOCOL]
    n_points = len(grid["features"]) * len(seeds)
    with tempfile.TemporaryDirectory() as tmp:
        print("warm-up point (fills the code cache) ...", file=sys.stderr, flush=True)
        timed_sweep({"features": grid["features"][:1]}, [0], fixed, 1, Path(tmp) / "warm")
        print(f"{n_points} points, 1 worker ...", file=sys.stderr, flush=True)
        serial = timed_sweep(grid, seeds, fixed, 1, Path(tmp) / "serial")
        print(f"{n_points} points, {args.workers} workers ...", file=sys.stderr, flush=True)
        parallel = timed_sweep(grid, seeds, fixed, args.workers, Path(tmp) / "parallel")
    speedup = serial / parallel
    table = ("| points | 1 worker (s) | {w} workers (s) | speed-up | efficiency |\n|---|---|---|---|---|\n"
             "| {n} | {s:.1f} | {p:.1f} | {x:.2f} | {e:.2f} |\n").format(
        w=args.workers, n=n_points, s=serial, p=parallel, x=speedup, e=speedup / args.workers)
    out = new_run_dir(ROOT, "sweep")
    (out / "results.md").write_text(table)
    print(table)
    print(out)
    return out


if __name__ == "__main__":
    main()
