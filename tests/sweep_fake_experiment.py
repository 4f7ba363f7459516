"""A stand-in experiment for tests/test_sweep.py: the interface of experiments.attention, no simulation.

Metrics are a deterministic function of --alpha, --double, the --set overrides and --seed.
--fail raise|exit makes a run raise or exit through parser.error, --sleep makes it slow, and
--log FILE appends one line per run (written first, so a killed run is counted too).
"""

import argparse
import random
import time
from pathlib import Path

from runs.folders import new_run_dir, write_json

NAME = "fake"
SET_NAMES = ("gain", "offset")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep_fake_experiment")
    p.add_argument("--alpha", type=float, default=1.0, help="scales the score; must be >= 0")
    p.add_argument("--double", action="store_true", help="doubles the score")
    p.add_argument("--fail", choices=["none", "raise", "exit"], default="none")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep before finishing")
    p.add_argument("--log", type=Path, help="append one line per run to this file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help=f"one of {', '.join(SET_NAMES)} (a number)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def prepare(args) -> dict:
    """Check the input without running: alpha >= 0, known --set names with numeric values."""
    if args.alpha < 0:
        raise ValueError(f"--alpha must be >= 0, got {args.alpha}")
    overrides = {}
    for text in args.overrides:
        name, _, value = text.partition("=")
        if name not in SET_NAMES:
            raise ValueError(f"unknown parameter {name!r}")
        try:
            overrides[name] = float(value)
        except ValueError:
            raise ValueError(f"{name}: not a number: {value!r}") from None
    return overrides


def main(argv=None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        overrides = prepare(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.log is not None:
        with open(args.log, "a") as fh:
            fh.write(f"alpha={args.alpha} seed={args.seed}\n")
    time.sleep(args.sleep)
    if args.fail == "raise":
        raise RuntimeError(f"told to fail (alpha={args.alpha})")
    if args.fail == "exit":
        parser.error("told to exit")
    metrics = {"score": args.alpha * (args.seed + 1) * (2 if args.double else 1)
               + overrides.get("gain", 0.0) * 10 + overrides.get("offset", 0.0),
               "noise": random.Random(args.seed).random()}
    run_dir = new_run_dir(args.out if args.out is not None else Path("results") / NAME, f"seed{args.seed}")
    write_json(run_dir / "params.json", {"experiment": NAME, "seed": args.seed, "alpha": args.alpha,
                                         "overrides": overrides})
    write_json(run_dir / "metrics.json", metrics)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
