"""Speed and scale of the attention circuits on Brian2's runtime and C++ standalone devices.

    python -m benchmarks.attention --quick                       # a few small points (minutes)
    python -m benchmarks.attention --tokens 16,64 --features 64,256 --devices cpp_standalone
    python -m benchmarks.attention                               # L in {16,64,256} x m in {64,256,1024}, d = 32

Each point runs in a fresh Python process (Brian2's device is global, and the peak memory is then
that point's own). Per point: build (+ compile) time, run wall time, simulated time, real-time
factor (simulated / run wall), neuron updates and synaptic events per wall second (group sizes x
steps; events counted as the bill counts them, ``SpikingCircuit.synaptic_events``), peak resident
memory of the point's process and its children (the compiler and the standalone binary), and the time of the NumPy
softmax reference. Standalone points compile into a fresh project folder (unless ``--cache``) and
also time a re-run with new inputs and seed through run_args against that full rebuild: in total
(``rebuild_over_rerun`` = (compile + run) / re-run, bounded by the simulation both must do) and in
what each adds to the simulation (``compile_over_rerun_setup``). Runtime points generate their
code with a run of no time first, so their ``build_s`` holds Brian2's Cython compilation (none
when its cache already has the code) and ``run_s`` the simulation alone. The exact
circuit has no m: its key layer is 16 neurons per token, and it is run once per L. Points whose
estimated memory exceeds ``--max-gb`` are skipped with the reason printed. After each point, writes
``results.csv``, ``results.md`` and ``scaling.png`` (run wall time vs L and vs m*d) to a new
``results/benchmarks/<UTC time>/``, so a stopped grid keeps the points it finished.
"""

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from runs.folders import new_run_dir, peak_memory_mb

ROOT = Path("results/benchmarks")
QUICK_PROTOCOL = {"t_settle": "50*ms", "t_learn": "100*ms", "t_read": "200*ms"}
NEURONS_PER_KEY = 16
COLUMNS = ("circuit", "device", "threads", "L", "m", "d", "neurons", "synapses", "build_s", "run_s", "simulated_s",
           "realtime_factor", "neuron_updates_per_s", "synaptic_events_per_s", "peak_rss_mb",
           "rerun_s", "rerun_setup_s", "rebuild_over_rerun", "compile_over_rerun_setup", "numpy_softmax_s")
BYTES_PER_SYNAPSE = 120      # several float64 variables, indices and Brian2's per-synapse bookkeeping


def estimated_synapses(circuit, L, m, d, encoders=4) -> int:
    """Synapse count of one point (the memory they need dominates at scale): input, tripartite (one
    per key-layer neuron and value population), astrocyte processes and teacher synapses (the exact
    circuit's adenosine feedback is a linked variable, no synapses)."""
    key_layer = m if circuit == "random" else NEURONS_PER_KEY * L
    return 2 * d * encoders * key_layer + key_layer * 2 * d + key_layer + 2 * d * encoders


def neuron_updates(circuit) -> float:
    """Neuron state updates of a (frozen) circuit: group sizes x time steps."""
    steps = circuit.schedule.duration / float(circuit.params["dt"])
    return steps * sum(len(g) for g in circuit.groups.values() if not g.synapses)


def peak_rss_mb() -> float:
    """Peak resident memory (MiB) of this process and of its largest waited-for child."""
    return max(peak_memory_mb().values())


def run_point(point) -> dict:
    """Measure one point in this process (called in the child)."""
    from analysis.attention import softmax_attention, synthetic_head
    from circuits.head import head_spec
    from circuits.runners import make_runner

    L, m, d, circuit_kind, device = point["L"], point["m"], point["d"], point["circuit"], point["device"]
    options = {"n_features": m} if circuit_kind == "random" else {"neurons_per_key": NEURONS_PER_KEY}
    specs = [head_spec(*synthetic_head(L, d, d, 0.7, np.random.default_rng(seed)), circuit_kind,
                       params=point["protocol"], seed=seed, **options) for seed in (0, 1)]
    t0 = time.perf_counter()
    softmax_attention(specs[0].q, specs[0].k, specs[0].v, specs[0].scale)
    numpy_s = time.perf_counter() - t0
    # A fresh project folder unless --cache: build_s is then a full code generation + compilation.
    root = point.get("cache") or (tempfile.mkdtemp(prefix="astro-bench-") if device != "runtime" else None)
    with make_runner(device, point["threads"], root) as runner:
        circuit = runner.run(specs[0])
        # Runtime: the build holds Brian2's code generation (and Cython compilation, none when its cache
        # has the code), run_s the simulation alone; standalone: run_s is the binary alone.
        row = {"build_s": runner.timings["build"], "run_s": runner.timings["binary"]}
        if device != "runtime":
            t0 = time.perf_counter()
            runner.run(specs[1])
            row.update(rerun_s=time.perf_counter() - t0)
            # Everything a re-run adds to the simulation itself (runtime build of the values, run_args,
            # reading results), against what a rebuild adds (code generation and compilation).
            row["rerun_setup_s"] = row["rerun_s"] - runner.timings["binary"]
            row["rebuild_over_rerun"] = (row["build_s"] + row["run_s"]) / row["rerun_s"]
            row["compile_over_rerun_setup"] = row["build_s"] / row["rerun_setup_s"]
    stats = (neuron_updates(circuit), sum(circuit.synaptic_events().values()))
    simulated = circuit.schedule.duration
    row.update(circuit=circuit_kind, device=device, threads=point["threads"] if device != "runtime" else "",
               L=L, m=m if circuit_kind == "random" else "", d=d,
               neurons=sum(len(g) for g in circuit.groups.values() if not g.synapses),
               synapses=sum(len(g) for g in circuit.groups.values() if g.synapses),
               simulated_s=simulated, realtime_factor=simulated / row["run_s"],
               neuron_updates_per_s=stats[0] / row["run_s"], synaptic_events_per_s=stats[1] / row["run_s"],
               numpy_softmax_s=numpy_s, peak_rss_mb=peak_rss_mb())
    if device != "runtime" and not point.get("cache"):
        shutil.rmtree(root, ignore_errors=True)
    return row


def points(args) -> list[dict]:
    """The grid, exact-circuit points once per L."""
    grid = []
    for circuit in args.circuits:
        for L in args.tokens:
            for m in (args.features if circuit == "random" else args.features[:1]):
                for device in args.devices:
                    grid.append({"circuit": circuit, "device": device, "L": L, "m": m, "d": args.dim,
                                 "protocol": QUICK_PROTOCOL if args.quick else {}, "cache": args.cache,
                                 "threads": args.threads})
    return grid


def measure(point, max_gb) -> dict | None:
    """Run one point in a fresh process; None (reason printed) if skipped or failed."""
    label = f"{point['circuit']} {point['device']} L={point['L']} m={point['m']} d={point['d']}"
    gb = estimated_synapses(point["circuit"], point["L"], point["m"], point["d"]) * BYTES_PER_SYNAPSE / 1e9
    if gb > max_gb:
        print(f"skip {label}: ~{gb:.1f} GB of synapses > --max-gb {max_gb}", file=sys.stderr)
        return None
    print(f"run  {label}", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.attention", "--point", json.dumps(point)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"fail {label}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_tables(rows, out: Path) -> str:
    """Write results.csv and results.md (whole files, so a killed grid keeps every finished point);
    return the markdown table."""
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    return table


def scaling_figure(rows, path: Path):
    """Run wall time against L (one line per circuit, device and m) and against m*d (one line per
    device and L), log-log with a slope-1 guide: linear scaling runs parallel to the guide. The
    exact circuit grows with L (a key population per token), so its run time goes as L²."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6))
    keys = sorted({(r["circuit"], r["device"], r["m"]) for r in rows}, key=str)
    for circuit, device, m in keys:
        pts = sorted((r["L"], r["run_s"]) for r in rows if (r["circuit"], r["device"], r["m"]) == (circuit, device, m))
        if len(pts) > 1:
            label = f"{circuit} {device}" + (f" m={m}" if circuit == "random" else "")
            ax_l.loglog(*zip(*pts), "o-", label=label)
    for device, L in sorted({(r["device"], r["L"]) for r in rows if r["circuit"] == "random"}):
        pts = sorted((r["m"] * r["d"], r["run_s"]) for r in rows
                     if (r["circuit"], r["device"], r["L"]) == ("random", device, L))
        if len(pts) > 1:
            ax_m.loglog(*zip(*pts), "o-", label=f"random {device} L={L}")
    for ax, xlabel in ((ax_l, "tokens L"), (ax_m, "features x dimension m*d")):
        if ax.lines:
            x = np.array(ax.get_xlim())
            y0 = min(min(line.get_ydata()) for line in ax.lines)
            ax.loglog(x, y0 * x / x[0], "k:", lw=0.8, label="slope 1 (linear)")
            if ax is ax_l and any(r["circuit"] == "exact" for r in rows):
                # the exact circuit has a key population per token: L populations x L steps of input
                ax.loglog(x, y0 * (x / x[0]) ** 2, "k--", lw=0.8, label="slope 2 (exact circuit: L²)")
            ax.legend(fontsize=6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("run wall time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ints(text):
    return [int(x) for x in text.split(",")]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.attention", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short protocol and small sizes (L 8,16; m 64; d 8)")
    p.add_argument("--tokens", type=ints, default=None, help="L values (default 16,64,256)")
    p.add_argument("--features", type=ints, default=None, help="m values (default 64,256,1024)")
    p.add_argument("--dim", type=int, default=None, help="d = d_v (default 32)")
    p.add_argument("--circuits", type=lambda s: s.split(","), default=["random", "exact"])
    p.add_argument("--devices", type=lambda s: s.split(","), default=["runtime", "cpp_standalone"])
    p.add_argument("--threads", type=int, default=0, help="OpenMP threads of standalone binaries (0: none)")
    p.add_argument("--max-gb", type=float, default=8.0, help="skip points estimated above this memory")
    p.add_argument("--cache", default=None, help="standalone project cache folder")
    p.add_argument("--point", help=argparse.SUPPRESS)  # internal: measure one point, print JSON
    args = p.parse_args(argv)
    if args.point:
        print(json.dumps(run_point(json.loads(args.point))))
        return None
    quick = {"tokens": [8, 16], "features": [64], "dim": 8}
    full = {"tokens": [16, 64, 256], "features": [64, 256, 1024], "dim": 32}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    out = new_run_dir(ROOT, "quick" if args.quick else "grid")
    rows, grid = [], points(args)
    for n, point in enumerate(grid, 1):
        row = measure(point, args.max_gb)
        if row is not None:
            rows.append(row)
            table = write_tables(rows, out)
            scaling_figure(rows, out / "scaling.png")
            print(f"done {n}/{len(grid)}: run {row['run_s']:.1f} s, real-time factor {row['realtime_factor']:.2f}",
                  file=sys.stderr, flush=True)
    print(table if rows else "no point finished")
    print(out)
    return out


if __name__ == "__main__":
    main()
