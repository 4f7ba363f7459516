"""Regime map of the biophysical astrocyte processes (gchi, lr1994) in the attention circuit.

    python -m experiments.astrocyte_models            # L = 8, d = d_v = 4, m = 64, default protocol
    python -m experiments.astrocyte_models --quick    # L = 4, m = 32, 2 x 2 points, no spiking runs (tests)

The circuit reads each process's IP3 above rest as its gliotransmitter release (models/astrocytes.py).
That read-out normalises attention while (i) IP3 stays below the CICR threshold (past it calcium
fires and, in G-ChI, feeds back onto IP3) and (ii) the write span is short against the IP3 lifetime
(tokens written earlier have faded more: recency-weighted attention; the fading common to a read
cancels because the Hebbian weights fade with the same lifetime). The map varies both:

* drive: the per-spike drive (glutamate Y_0 for gchi, the IP3 increment delta_IP3 for lr1994) is
  scaled so that the busiest process's write spikes are a given fraction of ``cicr_spikes``;
* write span / IP3 lifetime: the lifetime is shortened (gchi: Omega_5P and O_delta scaled together,
  same IP3 rest; lr1994: tau_IP3); the Hebbian decay follows it (``circuits.circuit_parameters``).

Every point simulates the m processes alone (Brian2, ``circuits.process_response``), each
driven by its feature neuron's expected write counts (regular spikes in each learning window), and
reads their release in each read window; the numerator is the Hebbian sum with its fading. The
normalisation error is the relative error of that output against the perfect integrator's (the
minimal process without fading: the same features, no astrocyte error); ``error_vs_linear_read_out``
is its error against the linear read-out the circuit's rate ideal assumes (``ip3_memory``), i.e. the
process's nonlinearity alone. The points past the CICR
threshold are the configurations ``circuits.head.head_spec`` refuses. A subset is run spike by spike
through the head API (not with --quick): minimal, gchi and lr1994 at their default drive and lifetime,
same seed. The circuit's default protocol (not the paper experiments' short one): gchi's receptors keep
producing IP3 for ~0.9 s after a spike, so reads that follow the writes within a second or two weigh
the latest tokens less.

Writes results/astrocyte_models/<run>/ with params.json, metrics.json and astrocyte_models.png.
"""

import numpy as np

from analysis.attention import kernel_attention, relative_error, synthetic_head
from analysis.features import draw_feature_weights, positive_features
from circuits.seeds import SeedStreams
from experiments import cli
from experiments import paper_common as fp

NAME = "astrocyte_models"
MODELS = ("gchi", "lr1994")
#: The per-spike drive of each process model, and the parameters its IP3 lifetime is scaled by
#: (divided by the lifetime factor).
DRIVE = {"gchi": "Y_0", "lr1994": "delta_IP3"}
LIFETIME_RATES = {"gchi": ("Omega_5P", "O_delta")}

FULL = {"tokens": 8, "dim": 4, "value_dim": 4, "norm": 1.0, "features": 64, "neurons_per_value": 16,
        "drives": [0.125, 0.25, 0.5, 1.0, 2.0, 4.0], "spans_over_lifetime": [0.05, 0.25, 1.0]}
QUICK = {"tokens": 4, "dim": 4, "value_dim": 4, "norm": 1.0, "features": 32, "neurons_per_value": 8,
         "drives": [0.25, 2.0], "spans_over_lifetime": [0.05, 1.0]}
#: The circuit's default protocol (t_settle 100 ms, t_learn 300 ms, t_read 800 ms).
PROTOCOL = {}
#: Sampling interval of the process traces.
RECORD_DT = "10*ms"


def build_parser():
    return fp.experiment_parser(NAME, __doc__)


def head(sizes, seed):
    """The synthetic head and the circuit's random feature weights (the head API's seed streams)."""
    streams = SeedStreams(seed)
    q, k, v = synthetic_head(sizes["tokens"], sizes["dim"], sizes["value_dim"], sizes["norm"], streams.head)
    return q, k, v, draw_feature_weights(sizes["features"], sizes["dim"], streams.features)


# --------------------------------------------------------------------- process-level regime map

def write_trains(counts, schedule) -> list:
    """Regular spike trains (s) of each process: n_tj spikes evenly spaced in token t's learning
    window, for the (L x m) write counts ``counts``."""
    windows = schedule.learn_windows()
    return [np.concatenate([np.linspace(a, b, int(n), endpoint=False) + (b - a) / (2 * max(int(n), 1))
                            for (a, b), n in zip(windows, counts[:, j])]) for j in range(counts.shape[1])]


def configured(model, drive, span_over_lifetime, n_max, span):
    """Circuit parameters of ``model`` with its per-spike drive scaled so that ``n_max`` write spikes
    are ``drive`` x cicr_spikes, and its IP3 lifetime set to span / ``span_over_lifetime``."""
    from circuits import circuit_parameters
    from models.astrocytes import read_calibration

    base = circuit_parameters("random", model, PROTOCOL)
    factor = span / span_over_lifetime / read_calibration(model, base)["tau_IP3_eff"]
    overrides = {name: base[name] / factor for name in LIFETIME_RATES.get(model, ())}
    if model == "lr1994":
        overrides["tau_IP3"] = base["tau_IP3"] * factor
    scaled = circuit_parameters("random", model, {**PROTOCOL, **overrides})
    cicr = read_calibration(model, scaled)["cicr_spikes"]
    overrides[DRIVE[model]] = base[DRIVE[model]] * drive * cicr / n_max
    return circuit_parameters("random", model, {**PROTOCOL, **overrides})


def map_point(model, params, counts, phi_q, v, schedule):
    """Simulate the processes of one configuration, written with the feature neurons' ``counts``
    (L x m) and read with the queries' features ``phi_q``; the normalised output, its linear
    read-out and calcium."""
    from circuits.circuit import memory_weights
    from circuits.process_response import SHARED_PARAMETERS, process_parameters, simulate_process
    from models.astrocytes import read_calibration

    names = [n for n in process_parameters(model) if n not in SHARED_PARAMETERS]
    lone = process_parameters(model, overrides={n: params[n] for n in names}, dt="1*ms")
    lone = lone.override(record_dt=RECORD_DT)
    t, traces = simulate_process(model, lone, write_trains(counts, schedule), schedule.duration,
                                 record=("release", "C"))
    release = np.stack([traces["release"][:, (t >= a) & (t < b)].mean(axis=1) for a, b in schedule.read_windows()])
    numerator, memory = memory_weights(params, schedule.age_at_reads())
    # The simulated processes' read variable divides the Hebbian numerator; the linear read-out's
    # denominator is the calibrated IP3 memory of each token.
    weighted = ((phi_q @ counts.T) * numerator) @ v
    y = weighted / (phi_q * release / float(params["kappa"])).sum(axis=1)[:, None]
    y_linear = kernel_attention(phi_q, counts, v, numerator, memory)
    calibration = read_calibration(model, params)
    return {"y": y, "y_linear": y_linear, "counts": counts, "t": t, "C": traces["C"],
            "release": traces["release"], "tau_IP3_eff": calibration["tau_IP3_eff"],
            "cicr_spikes": calibration["cicr_spikes"], "ca_peak_uM": float(traces["C"].max() * 1e3)}


def regime_map(args, sizes, q, k, v, weights) -> dict:
    """Every (model, write span / lifetime, drive) point of the map."""
    from analysis.attention import softmax_attention
    from circuits import circuit_parameters
    from circuits.protocol import Schedule

    base = circuit_parameters("random", "minimal", PROTOCOL)
    schedule = Schedule.from_params(len(k), len(q), base)
    span = len(k) * schedule.token_period
    scale = 1 / np.sqrt(q.shape[1])
    # Every configuration writes the same feature counts and reads the same query features: only the
    # processes differ.
    phi_k, phi_q = positive_features(np.sqrt(scale) * k, weights), positive_features(np.sqrt(scale) * q, weights)
    counts = np.rint(float(base["rho_feature"]) * np.sqrt(len(weights)) * phi_k * schedule.t_learn)
    n_max = float(counts.sum(axis=0).max())
    y_integrator = kernel_attention(phi_q, counts, v)
    y_soft = softmax_attention(q, k, v, scale)
    points, traces = [], {}
    for model in MODELS:
        for ratio in sizes["spans_over_lifetime"]:
            for drive in sizes["drives"]:
                fp.say(NAME, args, f"{model}: write span / IP3 lifetime {ratio:g}, drive {drive:g} x CICR")
                params = configured(model, drive, ratio, n_max, span)
                point = map_point(model, params, counts, phi_q, v, schedule)
                points.append({"model": model, "span_over_lifetime": ratio, "drive_over_cicr": drive,
                               "tau_IP3_eff_s": point["tau_IP3_eff"],
                               "span_over_tau_IP3_eff": span / point["tau_IP3_eff"], "cicr_spikes": point["cicr_spikes"],
                               "max_write_spikes": n_max, "ca_peak_uM": point["ca_peak_uM"],
                               "normalisation_error": relative_error(point["y"], y_integrator),
                               "error_vs_linear_read_out": relative_error(point["y"], point["y_linear"]),
                               "error_vs_softmax": relative_error(point["y"], y_soft)})
                if ratio == sizes["spans_over_lifetime"][0]:
                    traces[(model, drive)] = point
    return {"points": points, "traces": traces, "write_span_s": span,
            "integrator_vs_softmax": relative_error(y_integrator, y_soft)}


# ----------------------------------------------------------------------------------- spike subset

def spiking_runs(args, sizes, q, k, v) -> dict:
    """minimal, gchi and lr1994 at their defaults through the head API (same seed)."""
    from circuits.head import head_spec
    from circuits.runners import run_heads

    specs = [head_spec(q, k, v, "random", astrocyte=model, params=PROTOCOL, seed=args.seed,
                       n_features=sizes["features"], neurons_per_value=sizes["neurons_per_value"])
             for model in ("minimal",) + MODELS]
    fp.say(NAME, args, "spiking circuits: minimal, gchi, lr1994")
    results = run_heads(specs)
    return {spec.options["astrocyte"]: result for spec, result in zip(specs, results)}


# ------------------------------------------------------------------------------------------ figure

def caption(metrics) -> str:
    """The figure's text, built from the measured numbers."""
    spikes = metrics["spiking"]
    lines = [f"Processes alone (rate-level writes, m = {metrics['sizes']['features']}): the normalisation error "
             f"is the output's relative error against a perfect integrator's (same features; that integrator "
             f"is {metrics['integrator_vs_softmax']:.3f} from softmax)."]
    for model in MODELS:
        short = min(metrics["sizes"]["spans_over_lifetime"])
        row = [p for p in metrics["points"] if p["model"] == model and p["span_over_lifetime"] == short]
        below = max((p["error_vs_linear_read_out"] for p in row if p["drive_over_cicr"] <= 0.5), default=float("nan"))
        above = max((p["error_vs_linear_read_out"] for p in row if p["drive_over_cicr"] > 1), default=float("nan"))
        floor = min(p["normalisation_error"] for p in row)
        line = (f"{model}, write span / lifetime {short:g}: {below:.3f} from the linear IP3 read-out up to half "
                f"the CICR drive, {above:.2f} past it; {floor:.3f} from the integrator")
        if spikes:
            line += (f"; spiking circuit at its defaults {spikes[model]['rel_err_spike_vs_softmax']:.3f} vs softmax "
                     f"(minimal {spikes['minimal']['rel_err_spike_vs_softmax']:.3f}, ratio "
                     f"{spikes[model]['ratio_to_minimal']:.2f})")
        lines.append(line + ".")
    return "\n".join(lines)


def plot(sim, metrics, path):
    import matplotlib.pyplot as plt

    points, sizes = metrics["points"], metrics["sizes"]
    with fp.paper_style():
        fig = plt.figure(figsize=(7.2, 6.4))
        grid = fig.add_gridspec(3, 2, height_ratios=[1.2, 1, 0.35], hspace=0.6, wspace=0.3)
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(sizes["spans_over_lifetime"])))
        for col, model in enumerate(MODELS):
            ax = fig.add_subplot(grid[0, col])
            for ratio, color in zip(sizes["spans_over_lifetime"], colors):
                row = [p for p in points if p["model"] == model and p["span_over_lifetime"] == ratio]
                ax.plot([p["drive_over_cicr"] for p in row], [p["normalisation_error"] for p in row], "o-",
                        color=color, ms=3, label=f"write span / IP3 lifetime {ratio:g}")
                ax.plot([p["drive_over_cicr"] for p in row], [p["error_vs_linear_read_out"] for p in row], "x--",
                        color=color, ms=3, lw=0.6,
                        label="vs the linear read-out" if ratio == sizes["spans_over_lifetime"][-1] else None)
            ax.axvline(1.0, color="0.3", ls="--", lw=0.8)
            ax.text(1.05, 0.02, "CICR threshold", transform=ax.get_xaxis_transform(), fontsize=6, rotation=90)
            if metrics["spiking"]:
                bound = metrics["spiking"]["minimal"]["poisson_bound"]
                ax.axhline(bound, color="0.5", ls=":", lw=0.8, label=f"spike noise of the circuit ({bound:.2f})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("busiest process's write spikes / CICR spikes")
            ax.set_ylabel("normalisation error")
            ax.set_title("G-ChI (depitta2009)" if model == "gchi" else "Li-Rinzel, NEST form (lr1994)")
            if col == 0:
                ax.legend(loc="upper left")
            fp.panel_letter(ax, "ab"[col])
        for col, model in enumerate(MODELS):
            ax = fig.add_subplot(grid[1, col])
            drives = sorted(d for m, d in sim["traces"] if m == model)
            for drive, style in zip((drives[0], drives[-1]), ("-", "--")):
                point = sim["traces"][(model, drive)]
                busiest = int(np.argmax(point["counts"].sum(axis=0)))
                ax.plot(point["t"], point["C"][busiest] * 1e3, style, color="C3", lw=0.8,
                        label=f"Ca²⁺, drive {drive:g}")
            ax.set_xlabel("time (s)")
            ax.set_ylabel("busiest process Ca²⁺ (µM)")
            ax.axvline(sim["write_span_s"], color="0.6", lw=0.6)
            ax.legend(loc="upper right")
            fp.panel_letter(ax, "cd"[col])
        text = fig.add_subplot(grid[2, :])
        text.axis("off")
        text.text(0, 1, caption(metrics), va="top", ha="left", fontsize=6.5, wrap=True)
        return fp.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None):
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    run_dir = fp.new_run(NAME, args, sizes, varied={"astrocyte": ["minimal", *MODELS],
                                                      "drive parameter": DRIVE,
                                                      "lifetime parameters": {"gchi": list(LIFETIME_RATES["gchi"]),
                                                                              "lr1994": ["tau_IP3"]}},
                         protocol=PROTOCOL)
    q, k, v, weights = head(sizes, args.seed)
    sim = regime_map(args, sizes, q, k, v, weights)
    spiking = {}
    if not args.quick:
        keys = ("rel_err_spike_vs_softmax", "rel_err_spike_vs_rate", "rel_err_rate_vs_softmax", "poisson_bound",
                "bound_tolerance_ratio")
        spiking = {model: {key: r.metrics[key] for key in keys} for model, r in spiking_runs(args, sizes, q, k, v).items()}
        for model in MODELS:
            spiking[model]["ratio_to_minimal"] = (spiking[model]["rel_err_spike_vs_softmax"]
                                                  / spiking["minimal"]["rel_err_spike_vs_softmax"])
    metrics = {"sizes": sizes, "points": sim["points"], "integrator_vs_softmax": sim["integrator_vs_softmax"],
               "write_span_s": sim["write_span_s"], "spiking": spiking}
    if not args.no_figures:
        plot(sim, metrics, run_dir / f"{NAME}.png")
    return fp.finish(NAME, args, run_dir, metrics, caption(metrics))


if __name__ == "__main__":
    main()
