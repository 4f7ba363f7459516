"""One astrocyte process driven by presynaptic spikes: check a parameter change before a circuit.

    python -m experiments.astrocyte_response --rate 20*Hz --duration 40*second
    python -m experiments.astrocyte_response --spike-times spikes.txt --astrocyte gchi --preset stimberg2018
    python -m experiments.astrocyte_response --astrocyte lr1994 --set tau_IP3=10*second --rate 5*Hz

The process (models/astrocytes.py, simulated alone by ``circuits.process_response``) starts at its
computed rest state; every input spike is a write-phase spike (glutamate release for gchi, IP3
increment for lr1994). ``--spike-times``: one time in seconds a line; ``--rate``: Poisson input for
``--input-duration`` (default: the whole run); no input: the process stays at rest. Writes a new run
folder with params.json (every parameter with unit and source, the read-out calibration and CICR
threshold), traces.npz (``t`` in s, ``C`` and ``IP3`` in uM, the model's other state, ``spikes`` in
s) and response.png (input spikes, IP3, Ca2+).
"""

from pathlib import Path

import numpy as np

from experiments import cli
from models.parameters import ParameterError, parse_assignments, parse_quantity

NAME = "astrocyte_response"


def build_parser():
    from models.astrocytes import ASTROCYTE_MODELS, PRESETS

    from experiments.cli import experiment_parser

    p = experiment_parser(NAME, __doc__)
    p.add_argument("--astrocyte", choices=[m for m in ASTROCYTE_MODELS if m != "minimal"], default="gchi")
    p.add_argument("--preset", default=None,
                   help="parameter preset: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in PRESETS.items()
                                                         if k != "minimal") + " (default: the first)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="override a process parameter, e.g. --set Omega_5P=0.1/second (repeatable)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--spike-times", type=Path, help="file of presynaptic spike times, one (in s) a line")
    source.add_argument("--rate", default=None, help="Poisson input rate, e.g. 20*Hz")
    p.add_argument("--input-duration", default=None, help="Poisson input lasts this long (default: the run)")
    p.add_argument("--duration", default="40*second", help="simulated time, a Brian2 quantity")
    p.add_argument("--dt", default="1*ms", help="integration time step")
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson input")
    p.add_argument("--out", type=Path, default=None, help="parent folder of the run folder (default results/astrocyte_response)")
    return p


def _input_spikes(args, duration) -> np.ndarray:
    from brian2 import Hz

    if args.spike_times is not None:
        if not args.spike_times.is_file():
            raise ParameterError(f"spike-time file not found: {args.spike_times}")
        try:
            times = np.loadtxt(args.spike_times, ndmin=1, dtype=float)
        except ValueError as exc:
            raise ParameterError(f"{args.spike_times}: not one number a line ({exc})") from None
        if not np.all(np.isfinite(times)) or np.any(times < 0) or np.any(times >= duration):
            raise ParameterError(f"{args.spike_times}: spike times must lie in [0, duration = {duration:g} s)")
        return np.sort(times)
    if args.rate is None:
        return np.zeros(0)
    rate = parse_quantity(args.rate, "--rate")
    if not getattr(rate, "has_same_dimensions", lambda u: False)(Hz) or not float(rate) >= 0:
        raise ParameterError(f"--rate: expected a rate >= 0 such as 20*Hz, got {args.rate!r}")
    length = duration if args.input_duration is None else _seconds(args.input_duration, "--input-duration")
    rng = np.random.default_rng(args.seed)
    times = np.sort(rng.uniform(0, min(length, duration), rng.poisson(float(rate) * min(length, duration))))
    return times[np.diff(np.r_[-1.0, times]) > 1e-3]       # at most one spike per 1 ms step


def _seconds(text, name) -> float:
    from brian2 import second

    value = parse_quantity(text, name)
    if not getattr(value, "has_same_dimensions", lambda u: False)(second) or not float(value) > 0:
        raise ParameterError(f"{name}: expected a positive time such as 40*second, got {text!r}")
    return float(value)


def plot(t, traces, spikes, calibration, path):
    from experiments import paper_common as fp
    import matplotlib.pyplot as plt

    with fp.paper_style():
        fig, axes = plt.subplots(3, 1, figsize=(6, 5), sharex=True, gridspec_kw={"height_ratios": [0.4, 1, 1]})
        axes[0].eventplot(spikes, lineoffsets=0.5, linelengths=0.8, color="k", lw=0.5)
        axes[0].set_yticks([])
        axes[0].set_ylabel(f"input\n({len(spikes)} spikes)")
        axes[1].plot(t, traces["IP3"][0], color="C0")
        if calibration:
            axes[1].axhline(float(calibration["IP3_rest"]) * 1e3, color="0.5", lw=0.6, ls=":", label="rest")
            axes[1].axhline(float(calibration["IP3_cicr"]) * 1e3, color="C3", lw=0.6, ls="--",
                            label=f"CICR threshold (~{calibration['cicr_spikes']:.0f} fast spikes)")
            axes[1].legend(loc="upper right")
        axes[1].set_ylabel("IP$_3$ (µM)")
        axes[2].plot(t, traces["C"][0], color="C2")
        axes[2].set_ylabel("Ca$^{2+}$ (µM)")
        axes[2].set_xlabel("time (s)")
        return fp.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None):
    from circuits.process_response import process_parameters, simulate_process
    from models.astrocytes import PRESETS, read_calibration
    from runs.folders import new_run_dir, output_parent, run_record, write_atomic, write_json

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.preset is not None and args.preset not in PRESETS[args.astrocyte]:
            raise ParameterError(f"--preset: the {args.astrocyte} process has presets {', '.join(PRESETS[args.astrocyte])}")
        params = process_parameters(args.astrocyte, args.preset, parse_assignments(args.overrides), args.dt)
        duration = _seconds(args.duration, "--duration")
        spikes = _input_spikes(args, duration)
        calibration = read_calibration(args.astrocyte, params, args.preset)
        parent = output_parent(args.out, NAME)
    except (ParameterError, ValueError) as exc:
        parser.error(str(exc))
    record = ("C", "IP3", "h") + (("Gamma_A", "Y_S") if args.astrocyte == "gchi" else ())
    t, traces = simulate_process(args.astrocyte, params, [spikes], duration, args.preset, record)
    run_dir = new_run_dir(parent, f"{args.astrocyte}-{args.preset or 'default'}-seed{args.seed}")
    to_um = {"C": 1e3, "IP3": 1e3, "Y_S": 1e3}
    write_atomic(run_dir / "traces.npz", lambda fh: np.savez(
        fh, t=t, spikes=spikes, **{v: traces[v][0] * to_um.get(v, 1.0) for v in record}), binary=True)
    write_json(run_dir / "params.json", run_record(
        NAME, args.seed, astrocyte=args.astrocyte, preset=args.preset, duration_s=duration,
        n_input_spikes=int(len(spikes)), parameters=params.to_json(),
        calibration={k: float(v) * (1e3 if k.startswith("IP3") else 1.0) for k, v in calibration.items()
                     if k != "ip3_modes"},
        calibration_units={"IP3_rest": "uM", "IP3_per_spike": "uM", "IP3_cicr": "uM", "tau_IP3_eff": "s",
                           "tau_receptor": "s", "cicr_spikes": "spikes"},
        ip3_modes={"rate_per_s": [[r.real, r.imag] for r, _ in calibration["ip3_modes"]],
                   "coefficient_per_spike": [[c.real, c.imag] for _, c in calibration["ip3_modes"]]}))
    plot(t, traces, spikes, calibration, run_dir / "response.png")
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
