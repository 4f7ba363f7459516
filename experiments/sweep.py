"""Parameter sweeps of an experiment named on the command line: one experiment over a grid of
parameters x seeds, in parallel processes, resumable.

    python -m experiments.sweep attention --grid features=64,128,256 --grid tau_ca=1*second,10*second --seeds 5
    python -m experiments.sweep attention --grid features=64,128 --seed-list 3,7 -- --tokens 8
    python -m experiments.sweep attention --grid features=64,128 --scheduler tcp://10.0.0.1:8786
    python -m experiments.sweep --resume results/sweeps/20250101-120000-attention

EXPERIMENT is a module of experiments/ (``attention``) or a dotted module path. A grid name becomes
the experiment's option ``--<name with _ as ->`` when it has one (flags take ``true``/``false``),
else ``--set name=value``. Arguments after ``--`` go to every point. Every point is checked with the
experiment's own parser (and its ``prepare``) before anything runs. Points run in fresh processes
(``--workers``) or on a Dask cluster (``--scheduler``; needs the optional ``dask[distributed]``);
the sweep folder and its tables are described in ``runs.sweep``, which runs the sweep on the
experiment's module object. Re-running with the same ``--out``, or ``--resume DIR``, skips completed
points and runs the rest, failed ones included.

This module finds experiments by name (they live in this layer); ``runs.sweep`` imports none.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from runs import sweep as engine
from runs.folders import FileError
from runs.sweep import SweepError, connect_dask, make_points, read_failures

# The sweep engine's names that callers of the sweep by experiment name use beside run_sweep.
__all__ = ["SweepError", "connect_dask", "load_experiment", "main", "make_points", "read_failures", "resume_sweep",
           "run_sweep"]

PROG = "python -m experiments.sweep"


def load_experiment(name: str):
    """Import the experiment ``experiments.<name>`` (or the dotted module path ``name``) and check it
    has the interface a sweep needs (``runs.sweep.check_experiment``); SweepError with one line."""
    module_name = name if "." in name else f"experiments.{name}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SweepError(f"cannot import experiment {module_name!r}: {exc}") from None
    return engine.check_experiment(module)


def run_sweep(experiment: str, grid: Mapping[str, Sequence[str]], seeds: Sequence[int] = (0,), **options) -> Path:
    """Run (or resume) a sweep of the experiment named ``experiment`` (see :func:`load_experiment`)
    and return its folder; ``grid``, ``seeds`` and ``options`` (``fixed_args``, ``out``, ``workers``,
    ``scheduler``, ``figures``, ``stream``) as in ``runs.sweep.run_sweep``."""
    return engine.run_sweep(load_experiment(experiment), grid, seeds, **options)


def resume_sweep(path: Path, *, workers: int | None = None, scheduler: str | None = None,
                 stream=sys.stderr) -> Path:
    """Continue the sweep in ``path`` as described by its sweep.json (its experiment resolved again
    by the module name recorded there)."""
    config = engine.sweep_description(path)
    return run_sweep(config["experiment"], config["grid"], config["seeds"], fixed_args=config["fixed_args"],
                     out=Path(path), workers=workers, scheduler=scheduler, figures=config["figures"],
                     stream=stream)


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                usage=f"{PROG} [EXPERIMENT] [options] [-- EXPERIMENT ARGS...]")
    p.add_argument("experiment", nargs="?", help="experiment name (experiments/<name>.py) or dotted module")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="values of one parameter (repeatable; the points are the Cartesian product)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, metavar="N", help="run seeds 0..N-1 at every grid point (default 1)")
    seeds.add_argument("--seed-list", metavar="A,B,...", help="run these seeds at every grid point")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local processes at once (default: the number of CPUs)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the points on this Dask cluster")
    folder = p.add_mutually_exclusive_group()
    folder.add_argument("--out", type=Path, help="sweep folder (default results/sweeps/<UTC time>-<experiment>); "
                        "resumed if it holds the same sweep")
    folder.add_argument("--resume", type=Path, metavar="DIR", help="continue the sweep in DIR (from its sweep.json)")
    p.add_argument("--figures", action="store_true", help="let each point draw its figures (off: faster)")
    return p


def parse_grid_option(text: str) -> tuple[str, list[str]]:
    """``"features=64,128"`` -> ``("features", ["64", "128"])``."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise SweepError(f"--grid {text!r}: expected NAME=VALUE1,VALUE2,...")
    return name.strip(), [v.strip() for v in values.split(",")]


def _parse_seeds(args, parser) -> list[int]:
    if args.seed_list is not None:
        try:
            return [int(s) for s in args.seed_list.split(",")]
        except ValueError:
            parser.error(f"--seed-list: expected integers separated by commas, got {args.seed_list!r}")
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    return list(range(args.seeds or 1))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (1 if any point failed). Exits with 2 on invalid input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, fixed = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = build_parser()
    args = parser.parse_args(own)
    try:
        if args.resume is not None:
            if args.experiment or args.grid or args.seeds or args.seed_list or fixed:
                parser.error("--resume takes the sweep from DIR/sweep.json: give no experiment, --grid, "
                             "seeds or experiment arguments")
            path = resume_sweep(args.resume, workers=args.workers, scheduler=args.scheduler)
        else:
            if not args.experiment:
                parser.error("name an experiment (or --resume DIR)")
            grid = dict(parse_grid_option(text) for text in args.grid)
            if len(grid) != len(args.grid):
                parser.error("--grid: a parameter is given twice")
            path = run_sweep(args.experiment, grid, _parse_seeds(args, parser), fixed_args=fixed, out=args.out,
                             workers=args.workers, scheduler=args.scheduler, figures=args.figures)
    except SweepError as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    except FileError as exc:  # a full disk or a damaged file; the message says what to do
        parser.exit(1, f"{PROG}: error: {exc}\n")
    except KeyboardInterrupt:
        print("[sweep] interrupted: completed points are kept; rerun with --resume to finish", file=sys.stderr)
        return 130
    try:
        failures = read_failures(path)
    except SweepError as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    for point_key, failure in failures.items():
        print(f"[sweep] FAILED {point_key}: {failure['error']}", file=sys.stderr)
    print(path)
    return 1 if failures else 0


def cli() -> int:
    """``python -m experiments.sweep``: SIGTERM (batch systems, timeouts) unwinds like Ctrl-C so that
    running points are killed too."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return main()


if __name__ == "__main__":
    sys.exit(cli())
