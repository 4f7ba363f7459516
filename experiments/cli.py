"""Command-line pieces shared by the experiments that run attention heads (attention, real_head,
causal_stream, multi_head): circuit and run options, their translation into the head API
(``circuits.head``), one-line errors and the summary line; and those of the experiments that run
all-MiniLM-L6-v2 on spikes over a corpus (spiking_minilm, similarity): the model's options
(``transformer.configuration.RunConfig.from_args`` reads them) and the pool of workers.

Options map one to one onto the API: ``--circuit`` and the circuit options give
``head_spec(..., circuit, **options)``; ``--set``/``--params`` its parameter overrides; ``--seed``
and ``--spike-seed`` its seeds; ``--device``/``--threads``/``--standalone-cache`` the runner.
"""

import argparse
import functools
import sys
from pathlib import Path

from circuits import CIRCUITS
from circuits.exact_latency import KEY_CODES
from circuits.protocol import BUCKETS
from circuits.runners import DEVICES, make_pool, make_runner, run_heads
from models import ASTROCYTE_MODELS, ENCODER_KINDS
from models.parameters import ParameterError, load_parameter_file, parse_assignments
from runs.folders import WriteError, output_parent, read_error
from transformer.executors import DEFAULT_CODE
from transformer.spiking import KEEP_FOR_MAPS


def experiment_parser(name: str, doc: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=doc.split("\n\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def stops_on_failed_writes(main):
    """An experiment's ``main(argv)`` that ends with one line (exit status 1) instead of a traceback
    when a file of its run folder cannot be written (a full disk, a read-only folder: the atomic
    writer's ``runs.folders.WriteError``, which names the file); the files written before stay whole."""
    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except WriteError as exc:
            spec = getattr(sys.modules.get(main.__module__), "__spec__", None)   # __main__ under python -m
            print(f"python -m {spec.name if spec else main.__module__}: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)     # as argparse's parser.exit: a sweep point reports the line above as its error
    return run


def add_circuit_options(parser, circuit="random") -> None:
    """``--circuit`` and the circuit's options (sizes and model choices)."""
    circ = parser.add_argument_group("circuit")
    circ.add_argument("--circuit", choices=tuple(CIRCUITS), default=circuit,
                      help="; ".join(f"{name}: {kind.description}" for name, kind in CIRCUITS.items()))
    circ.add_argument("--features", type=int, default=256, help="random circuit: number of feature neurons m")
    circ.add_argument("--neurons-per-key", type=int, default=16, help="exact circuit: key neurons per token")
    circ.add_argument("--preload", action="store_true",
                      help="exact circuit: set the afferent weights to k_t instead of writing them with spikes")
    circ.add_argument("--neurons-per-value", type=int, default=32,
                      help="value neurons per value dimension and polarity (ON/OFF)")
    circ.add_argument("--encoders-per-dim", type=int, default=4,
                      help="encoder neurons per input dimension and polarity")
    circ.add_argument("--astrocyte", choices=ASTROCYTE_MODELS, default="minimal", help="astrocyte process model")
    circ.add_argument("--encoder", choices=ENCODER_KINDS, default="regular", help="token spike generator")
    circ.add_argument("--block-astrocyte", action="store_true",
                      help="negative control: hold the astrocyte's normalising signals at their mean over the read phase")
    circ.add_argument("--causal", action="store_true",
                      help="autoregressive attention: read query s right after writing token s")


def add_minilm_options(parser) -> None:
    """The options of all-MiniLM-L6-v2 on spikes over a corpus: stages on spikes and their codes,
    layers, workers or a Dask scheduler, length buckets, batches, the astrocytes and what crosses
    the stage boundaries (what ``RunConfig.from_args`` and :func:`minilm_pool` read)."""
    model = parser.add_argument_group("model")
    model.add_argument("--spiking", default="all",
                       help="stages on spikes: 'all', 'none' or a subset of qkv,attention,attn_out,ffn,ffn_out")
    model.add_argument("--code", default=DEFAULT_CODE,
                       help="how stage inputs are carried: 'rate' (rate-coded encoders and neurons), "
                            "'latency' (one spike per value, in every stage), or STAGE=CODE pairs, e.g. qkv=latency")
    model.add_argument("--key-code", choices=KEY_CODES, default=None,
                       help="the latency heads' keys: 'latency', one spike per key and read whose efficacy carries "
                            "the exponential (default), or 'regular', firing at an exponential rate (docs/model.md §3)")
    model.add_argument("--layers", default="all", help="'all' or layer numbers 0-5, e.g. 0,3")
    model.add_argument("--map-layer", type=int, default=None,
                       help="layer whose 12 attention maps are drawn (default: the first spiking one)")
    model.add_argument("--workers", type=int, default=None,
                       help="local worker processes per circuit kind (default 2; with --scheduler the cluster's)")
    model.add_argument("--buckets", default=",".join(map(str, BUCKETS)),
                       help="length buckets: every circuit of a sentence runs padded to the smallest bucket that "
                            "holds it, one compiled binary per bucket ('none': each sentence at its own length)")
    model.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run the circuits on this Dask cluster's workers (extra 'sweep') instead of local processes")
    model.add_argument("--batch", type=int, default=4,
                       help="sentences simulated together (of one length); each is written as soon as its batch ends")
    model.add_argument("--astrocyte", choices=ASTROCYTE_MODELS, default="minimal",
                       help="the heads' astrocyte process model")
    model.add_argument("--block-astrocyte", nargs="?", const="all", choices=("all", "heads", "layernorm"),
                       default=None, help="negative control: astrocytes held at their mean signal; 'heads' (the "
                       "attention's normaliser, over the read phase), 'layernorm' (the LayerNorms' gain, over a "
                       "sentence's tokens; --boundaries spikes only) or both (no value)")
    model.add_argument("--boundaries", choices=("spikes", "numpy"), default=None,
                       help="what crosses the stage boundaries: spikes (one network of cells, LayerNorms by "
                       "astrocytes, residuals on synapses; the default where every stage runs on spikes in the "
                       "latency code) or numpy (stages joined by NumPy's residual sums and LayerNorms)")


def minilm_pool(args, config):
    """The pool of workers a corpus run's circuits run on (``circuits.runners.make_pool``): ``--workers``
    local processes (default 2) or the ``--scheduler``'s Dask cluster, on the configuration's device."""
    workers = args.workers if args.workers is not None else (1 if args.scheduler else 2)
    return make_pool(config.device, workers, config.threads, args.standalone_cache,
                     scheduler=args.scheduler, keep=KEEP_FOR_MAPS)


def add_run_options(parser, name: str, seed_help="seed of the head, the random features and the spikes",
                    set_help="override a model parameter, e.g. --set tau_ca=5*second (repeatable)") -> None:
    """Parameters, seeds, output folder, device and verbosity."""
    run = parser.add_argument_group("run")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE", help=set_help)
    run.add_argument("--params", type=Path, help="file of overrides (JSON object or name = value lines)")
    run.add_argument("--seed", type=int, default=0, help=seed_help)
    run.add_argument("--spike-seed", type=int, default=None,
                     help="redraw the spikes alone (head, features and phases stay those of --seed)")
    run.add_argument("--out", type=Path, default=None, help=f"parent folder of the run folder (default results/{name})")
    run.add_argument("--device", choices=DEVICES, default="runtime",
                     help="Brian2 device; cpp_standalone compiles once per circuit structure (cached) and "
                          "re-runs the binary for new inputs and parameter values")
    run.add_argument("--threads", type=int, default=0,
                     help="OpenMP threads of the cpp_standalone binary (0: single-threaded)")
    run.add_argument("--standalone-cache", type=Path, default=None,
                     help="folder of compiled standalone projects (default ~/.cache/astro-transformer/standalone)")
    run.add_argument("--export", action="append", choices=("nwb",), default=[],
                     help="also write the run's spikes, phases and astrocyte traces as run.nwb (needs the nwb extra)")
    run.add_argument("--keep-all-spikes", action="store_true",
                     help="keep every population's spikes in spikes.npz even past runs.spikes.MAX_SPIKES")
    run.add_argument("--no-figures", action="store_true", help="skip the figures")
    run.add_argument("--quiet", action="store_true", help="no progress output")


def circuit_options(args) -> dict:
    """The head API's circuit options from the parsed command line (those of ``args.circuit``)."""
    options = {"neurons_per_value": args.neurons_per_value, "encoders_per_dim": args.encoders_per_dim,
               "astrocyte": args.astrocyte, "encoder": args.encoder, "block_astrocyte": args.block_astrocyte,
               "causal": args.causal}
    if args.circuit == "exact":
        options.update(neurons_per_key=args.neurons_per_key, preload=args.preload)
    else:
        options.update(n_features=args.features)
    return options


def parameter_overrides(args) -> dict:
    """``--params FILE`` then ``--set NAME=VALUE`` (later wins), as name -> value strings."""
    overrides = {}
    if args.params is not None:
        try:
            overrides.update(load_parameter_file(args.params))
        except (OSError, UnicodeDecodeError) as exc:    # its own errors name the file; these would not
            raise read_error(args.params, exc, "give a JSON object or name = value lines in UTF-8",
                             option="--params") from None
    overrides.update(parse_assignments(args.overrides))
    return overrides


def check_export(args) -> None:
    """ValueError with one line if an ``--export`` format's packages are missing (before simulating)."""
    if "nwb" in args.export:
        from runs.nwb import require_pynwb

        try:
            require_pynwb()
        except ImportError as exc:
            raise ValueError(str(exc)) from None


def runner(args):
    """The device runner of ``--device``/``--threads``/``--standalone-cache`` (use it in a with block)."""
    return make_runner(args.device, args.threads, args.standalone_cache)


def checked_specs(parser, args, name: str, make_specs, errors=()):
    """``make_specs(args)`` (head specs, or whatever the experiment builds from its arguments), the
    output folder, the export and device options, all checked before anything is simulated; a
    one-line error (exit status 2) on ParameterError, ValueError or one of ``errors``. Returns
    (specs, parent folder of the run folder)."""
    try:
        specs = make_specs(args)
        parent = output_parent(args.out, name)
        check_export(args)
        runner(args).close()
    except (ParameterError, ValueError, *errors) as exc:
        parser.error(str(exc))
    return specs, parent


def simulate_specs(specs, args, name: str, workers=1) -> list:
    """Run head specs on the device of the command line, ``workers`` processes, with progress lines."""
    return run_heads(specs, args.device, workers=workers, threads=args.threads, cache=args.standalone_cache,
                     log=None if args.quiet else lambda line: say(name, args, line))


def say(name: str, args, message: str) -> None:
    """A progress line on stderr (unless --quiet)."""
    if not args.quiet:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)


def print_summary(metrics, label) -> None:
    """One line of a head's errors: spikes vs softmax and vs the rate ideal, bound, baselines."""
    print(f"[{label}] spikes vs softmax {metrics['rel_err_spike_vs_softmax']:.3f} | spikes vs rate ideal "
          f"{metrics['rel_err_spike_vs_rate']:.3f} (Poisson bound {metrics['poisson_bound']:.3f}) | "
          f"rate ideal vs softmax {metrics['rel_err_rate_vs_softmax']:.3f} | uniform baseline "
          f"{metrics['rel_err_uniform_vs_softmax']:.3f}", file=sys.stderr)
