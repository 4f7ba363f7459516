"""Text from chargpt on spikes: generated with the heads' memories as the key-value cache, or scored
teacher-forced against the NumPy reference.

    python -m experiments.generate --prompt "ROMEO:" --tokens 40                 # greedy, on spikes
    python -m experiments.generate --prompt "ROMEO:" --tokens 40 --temperature 0.8 --seed 1
    python -m experiments.generate --eval-text validation --windows 8            # the held-out 10 %
    python -m experiments.generate --eval-text FILE --windows 8 --block-astrocyte heads
    python -m experiments.generate --resume results/generate/<run folder>

The model is the project's character-level GPT (``transformer.chargpt``: 4 layers of 4 causal heads,
128 wide, a 64-character context, trained on Tiny Shakespeare) run as one network of cells
(``transformer.network``): the embeddings' sum encoded once, every weight matrix on synapses, the
heads' exponential and normaliser by key neurons and astrocytes, the residual sums and LayerNorms
by LayerNorm astrocyte circuits, the language-model head's logits read once at the output edge.

**Generation** (``--prompt``, ``--tokens``): each character runs once through the network
(``transformer.generation``): it is written into every head's tripartite memory and read there
once; the memories are the same Brian2 networks from the first character to the last, so what
was written stays in their synapses and astrocyte processes (no re-simulation of the prefix).
The next character is the most likely (greedy) or drawn from softmax(logits / ``--temperature``)
with ``--seed``; the text is printed as it is generated. The context is the model's: prompt and
generated text together hold at most 64 characters.

**Teacher-forced evaluation** (``--eval-text FILE``, or ``validation``: the held-out last 10 % of
the shipped text): ``--windows`` windows of ``--chars`` characters evenly spaced over the text,
each run through the network with causal heads (every position reads its prefix in the window)
and scored on the next character at every position. Windows stream like a corpus run: each
finished window is written at once to ``windows/<id>.json`` and ``--resume DIR`` continues a
killed run without recomputing one.

Writes a run folder: params.json; for an evaluation metrics.json (``perplexity_reference``,
``perplexity_spiking`` and their ratio, ``top1_agreement``: the fraction of positions whose most
likely next character is the reference's, ``seconds_per_token``, the bill in total and per token,
the hidden state's error per layer) and logprobs.png (the spiking model's log-probability of each
target against the reference's); for a generation generated.txt, metrics.json (seconds per
token, the bill per token), reads.npz (what the memories read: ``memory_reads``), raster.png (the
last character's pass: which heads' key neurons fire, each astrocyte's normaliser) and
attention.png (the last layer's heads' attention over the generated text).
"""

import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np

from experiments import cli
from models.parameters import ParameterError
from runs.folders import FileError, new_run_dir, output_parent, read_json, run_record, write_atomic, write_json
from transformer import bill, chargpt, network
from transformer.spiking import block_parameters, parameters_record

NAME = "generate"
#: Windows of an evaluation simulated together (their circuits fill the pool's workers).
BATCH = 4
#: What a window's record holds.
WINDOW_FIELDS = ("id", "start", "text", "logprob_reference", "logprob_spiking", "argmax_reference", "argmax_spiking",
                 "layer_errors", "stage_tallies", "wall_seconds")


def build_parser():
    p = cli.experiment_parser(NAME, __doc__)
    what = p.add_argument_group("what to run")
    what.add_argument("--prompt", default=None, help="text to continue on spikes (characters of the vocabulary)")
    what.add_argument("--tokens", type=int, default=40, help="characters to generate")
    what.add_argument("--temperature", type=float, default=0.0, help="0: greedy; > 0: sample")
    what.add_argument("--eval-text", default=None, metavar="FILE",
                      help="score next-character predictions teacher-forced on this text ('validation': the "
                           "shipped held-out 10 %%)")
    what.add_argument("--windows", type=int, default=8, help="evaluation windows, evenly spaced over the text")
    what.add_argument("--chars", type=int, default=None, help="characters per window (default: the context, 64)")
    what.add_argument("--resume", type=Path, default=None, help="continue the evaluation run in this folder")
    model = p.add_argument_group("model")
    model.add_argument("--block-astrocyte", nargs="?", const="all", choices=("all", "heads", "layernorm"),
                       default=None, help="negative control: astrocytes held at their mean signal; 'heads' (the "
                       "attention's normaliser), 'layernorm' (the LayerNorms' gain) or both (no value)")
    model.add_argument("--workers", type=int, default=2, help="worker processes of the circuits")
    cli.add_run_options(p, NAME, seed_help="seed of the sampling (--temperature > 0) and of the circuits")
    p.set_defaults(device="cpp_standalone")
    return p


def blocked_roles(value) -> tuple:
    """``--block-astrocyte``'s astrocyte roles (``transformer.network.ASTROCYTE_ROLES``)."""
    return () if value is None else ("heads", "layernorm") if value == "all" else (value,)


def network_parameters(args) -> dict:
    """Every block's ParameterSet: chargpt's (``transformer.chargpt.NETWORK_PARAMETERS``) and the
    command line's ``--set BLOCK.NAME=VALUE``."""
    return block_parameters({**chargpt.NETWORK_PARAMETERS, **cli.parameter_overrides(args)},
                            head_code="latency", head_key_code="latency")


# --- teacher-forced evaluation ---

def eval_text(name) -> str:
    """The text an evaluation reads: the shipped held-out split, or a file (ValueError, one line)."""
    if name == "validation":
        return chargpt.split_text()[1]
    path = Path(name)
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} as ASCII text: {exc}") from None


def window_starts(n_chars, n_windows, chars) -> list:
    """Starts of ``n_windows`` windows of ``chars`` characters and their next one, evenly spaced."""
    if n_chars < chars + 1:
        raise ValueError(f"the text holds {n_chars} characters; a window needs {chars + 1}")
    return [int(s) for s in np.linspace(0, n_chars - chars - 1, n_windows).round()]


def configure_eval(args) -> dict:
    """The evaluation's recorded configuration, checked before anything is simulated."""
    model = chargpt.load_model()
    chars = model.block_size if args.chars is None else args.chars
    if not 2 <= chars <= model.block_size:
        raise ValueError(f"--chars must lie in [2, {model.block_size}], got {chars}")
    if args.windows < 1:
        raise ValueError(f"--windows must be >= 1, got {args.windows}")
    text = eval_text(args.eval_text)
    chargpt.encode(text, model)
    starts = window_starts(len(text), args.windows, chars)
    return {"eval_text": args.eval_text, "chars": chars, "windows": [text[s:s + chars + 1] for s in starts],
            "starts": starts, "block_astrocyte": list(blocked_roles(args.block_astrocyte)), "seed": args.seed,
            "overrides": cli.parameter_overrides(args)}


def window_path(run_dir, n) -> Path:
    return Path(run_dir) / "windows" / f"{n:05d}.json"


def finished_windows(run_dir, n_windows) -> set:
    """The windows whose records are whole; a damaged one is reported and recomputed."""
    done = set()
    for n in range(n_windows):
        path = window_path(run_dir, n)
        if not path.is_file():
            continue
        try:
            record = read_json(path, f"recomputing window {n}")
            missing = [f for f in WINDOW_FIELDS if f not in record]
            if missing or record["id"] != n:
                raise FileError(f"{path}: not a whole record of window {n}; recomputing it")
            done.add(n)
        except FileError as exc:
            print(exc, file=sys.stderr, flush=True)
    return done


def window_record(n, start, window, sentence, reference, wall) -> dict:
    """What one window's run gives: both models' log-probabilities of each next character and their
    most likely ones, the hidden state's error per layer, the bill."""
    targets = chargpt.encode(window[1:])
    rows = np.arange(len(targets))
    lp_ref = chargpt.log_softmax(reference.logits)[rows, targets]
    lp_spk = chargpt.log_softmax(sentence.logits)[rows, targets]
    errors = [float(np.linalg.norm(s.output - r.output) / np.linalg.norm(r.output))
              for s, r in zip(sentence.layers, reference.layers)]
    stages = {}
    for _, stage, record in network.pass_records(sentence):
        bill.add_tally(stages.setdefault(stage, {}), record)        # its counts only
    return {"id": n, "start": start, "text": window, "logprob_reference": lp_ref.tolist(),
            "logprob_spiking": lp_spk.tolist(), "argmax_reference": reference.logits.argmax(axis=1).tolist(),
            "argmax_spiking": sentence.logits.argmax(axis=1).tolist(), "layer_errors": errors, "stage_tallies": stages,
            "wall_seconds": wall}


def run_eval(run_dir, config, pool, say) -> None:
    """Every pending window through the network, in batches, each written when its batch ends."""
    params = block_parameters({**chargpt.NETWORK_PARAMETERS, **config["overrides"]}, head_code="latency",
                              head_key_code="latency")
    spiking = network.SpikingNetwork(pool, params, model=chargpt.architecture(), seed=config["seed"],
                                     block_astrocyte=tuple(config["block_astrocyte"]), log=say)
    windows = config["windows"]
    (Path(run_dir) / "windows").mkdir(exist_ok=True)
    pending = sorted(set(range(len(windows))) - finished_windows(run_dir, len(windows)))
    for first in range(0, len(pending), BATCH):
        ids = pending[first:first + BATCH]
        inputs = [windows[n][:-1] for n in ids]
        references = [chargpt.reference_pass(text) for text in inputs]
        t0 = time.perf_counter()
        passes = spiking.run(inputs, ids, references)
        wall = (time.perf_counter() - t0) / len(ids)
        for n, sentence, reference in zip(ids, passes, references):
            write_json(window_path(run_dir, n), window_record(n, config["starts"][n], windows[n], sentence,
                                                              reference, wall))
        say(f"windows {first + len(ids)}/{len(pending)} done")


def eval_metrics(run_dir, config) -> dict:
    """metrics.json of an evaluation, from its window records."""
    records = [read_json(window_path(run_dir, n), "--resume the run") for n in range(len(config["windows"]))]
    lp_ref = np.concatenate([r["logprob_reference"] for r in records])
    lp_spk = np.concatenate([r["logprob_spiking"] for r in records])
    agree = np.concatenate([np.equal(r["argmax_reference"], r["argmax_spiking"]) for r in records])
    n_tokens = len(lp_ref)
    total = bill.bill([("all", stage, tally) for r in records for stage, tally in r["stage_tallies"].items()])
    total.pop("layers")
    ppl_ref, ppl_spk = math.exp(-lp_ref.mean()), math.exp(-lp_spk.mean())
    # Standard error of the ratio's log: the per-position differences of log-probability.
    diff = lp_ref - lp_spk
    return {"perplexity_reference": ppl_ref, "perplexity_spiking": ppl_spk, "perplexity_ratio": ppl_spk / ppl_ref,
            "perplexity_ratio_log_se": float(diff.std(ddof=1) / math.sqrt(n_tokens)) if n_tokens > 1 else None,
            "top1_agreement": float(agree.mean()), "n_predictions": int(n_tokens), "n_windows": len(records),
            "chars_per_window": config["chars"], "block_astrocyte": config["block_astrocyte"],
            "layer_errors_median": np.median([r["layer_errors"] for r in records], axis=0).tolist(),
            "seconds_per_token": float(sum(r["wall_seconds"] for r in records) / n_tokens),
            "bill": total, "bill_per_token": bill.per_sentence(total, n_tokens)}


def plot_logprobs(run_dir, config, metrics, path) -> None:
    from experiments import plotting
    from experiments.plotting import plt

    records = [read_json(window_path(run_dir, n), "--resume the run") for n in range(len(config["windows"]))]
    ref = np.concatenate([r["logprob_reference"] for r in records])
    spk = np.concatenate([r["logprob_spiking"] for r in records])
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(ref, spk, ".", ms=3, alpha=0.5)
    low = min(ref.min(), spk.min())
    ax.plot([low, 0], [low, 0], "k:", lw=1)
    ax.set_xlabel("log p(next character), NumPy reference")
    ax.set_ylabel("log p(next character), on spikes")
    ax.set_title(f"perplexity {metrics['perplexity_reference']:.2f} (reference), "
                 f"{metrics['perplexity_spiking']:.2f} (spikes)\ntop-1 agreement {metrics['top1_agreement']:.3f}, "
                 f"{metrics['n_predictions']} positions", fontsize=8)
    fig.tight_layout()
    plotting.save(fig, path)


def evaluate(args, parser) -> Path:
    if args.resume is not None:
        run_dir = args.resume
        config = read_json(run_dir / "params.json", "not a generate run folder")["configuration"]
    else:
        config = configure_eval(args)
        run_dir = new_run_dir(output_parent(args.out, NAME), f"eval-{len(config['windows'])}windows")
        write_json(run_dir / "params.json", run_record(
            NAME, args.seed, configuration=config, model=chargpt.load_model().record["config"],
            parameters=parameters_record(network_parameters(args))))
    say = (lambda line: None) if args.quiet else (lambda line: cli.say(NAME, args, line))
    from circuits.runners import CircuitPool

    with CircuitPool(args.device, workers=args.workers, threads=args.threads, cache=args.standalone_cache) as pool:
        run_eval(run_dir, config, pool, say)
    metrics = eval_metrics(run_dir, config)
    write_json(run_dir / "metrics.json", metrics)
    if not args.no_figures:
        plot_logprobs(run_dir, config, metrics, run_dir / "logprobs.png")
    if not args.quiet:
        per = metrics["bill_per_token"]
        print(f"[{NAME}] {metrics['n_predictions']} positions in {metrics['n_windows']} windows: perplexity "
              f"{metrics['perplexity_reference']:.3f} (reference), {metrics['perplexity_spiking']:.3f} (spikes; "
              f"ratio {metrics['perplexity_ratio']:.3f}); top-1 agreement {metrics['top1_agreement']:.3f}; "
              f"{metrics['seconds_per_token']:.2f} s and {per['energy_joules'] * 1e6:.2f} uJ per token "
              f"({per['energy_joules_conventional'] * 1e6:.2f} uJ fp32)", file=sys.stderr)
    print(run_dir)
    return run_dir


# --- generation ---

def check_generation(args) -> dict:
    """The generation's recorded configuration, checked before anything is simulated."""
    model = chargpt.load_model()
    if not args.prompt:
        raise ValueError("--prompt must hold at least one character")
    chargpt.encode(args.prompt, model)
    if args.tokens < 1 or len(args.prompt) + args.tokens > model.block_size:
        raise ValueError(f"prompt and generated text hold at most {model.block_size} characters (the model's "
                         f"context): --tokens must lie in [1, {model.block_size - len(args.prompt)}]")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ValueError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    if args.block_astrocyte is not None:
        raise ValueError("an astrocyte cannot be held at its mean over tokens still to come: --block-astrocyte is "
                         "for --eval-text")
    if args.device == "cpp_standalone" and args.workers < 2:
        raise ValueError("the heads' memories run on the runtime device in this process: with cpp_standalone the "
                         "other circuits need --workers >= 2 (processes of their own)")
    return {"prompt": args.prompt, "tokens": args.tokens, "temperature": args.temperature, "seed": args.seed,
            "overrides": cli.parameter_overrides(args)}


def generate(args, parser) -> Path:
    from circuits.runners import CircuitPool
    from transformer.generation import SpikingGenerator

    config = check_generation(args)
    model = chargpt.load_model()
    run_dir = new_run_dir(output_parent(args.out, NAME), f"{len(args.prompt)}+{args.tokens}chars")
    params = network_parameters(args)
    write_json(run_dir / "params.json", run_record(NAME, args.seed, configuration=config,
                                                   model=model.record["config"], parameters=parameters_record(params)))
    say = (lambda line: None) if args.quiet else (lambda line: cli.say(NAME, args, line))
    rng = np.random.default_rng(args.seed)
    text, passes = args.prompt, []
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(CircuitPool(args.device, workers=args.workers, threads=args.threads,
                                               cache=args.standalone_cache, keep=()))
        say("building the heads' memories (a first run compiles their code: minutes)")
        generator = stack.enter_context(SpikingGenerator(pool, params, chargpt.architecture(), seed=args.seed))
        print(args.prompt, end="", flush=True)
        # The prompt is written character by character; its last one's logits give the first new one.
        for position in range(len(args.prompt) + args.tokens - 1):
            step = generator.step(text[position])
            passes.append(step)
            if position >= len(args.prompt) - 1:
                text += model.vocab[chargpt.next_character(step.logits, args.temperature, rng)]
                print(text[-1], end="", flush=True)
        print(flush=True)
    metrics = generation_metrics(passes, text, config)
    reads = memory_reads(passes)
    write_atomic(run_dir / "generated.txt", lambda f: f.write(text + "\n"))
    write_atomic(run_dir / "reads.npz", lambda f: np.savez_compressed(f, **reads), binary=True)
    write_json(run_dir / "metrics.json", metrics)
    if not args.no_figures:
        plot_raster(reads, run_dir / "raster.png")
        plot_attention(reads, text, run_dir / "attention.png")
    if not args.quiet:
        per = metrics["bill_per_token"]
        print(f"[{NAME}] {metrics['n_steps']} characters on spikes: {metrics['seconds_per_token']:.1f} s and "
              f"{per['energy_joules'] * 1e6:.2f} uJ per character ({per['energy_joules_conventional'] * 1e6:.2f} uJ "
              f"fp32)", file=sys.stderr)
    print(run_dir)
    return run_dir


def generation_metrics(passes, text, config) -> dict:
    """metrics.json of a generation: the text, seconds and the bill per character pass."""
    total = bill.bill([record for p in passes for record in p.records])
    total.pop("layers")
    n = len(passes)
    return {"text": text, "prompt": config["prompt"], "n_steps": n,
            "seconds_per_token": float(sum(p.wall_seconds for p in passes) / n), "bill": total,
            "bill_per_token": bill.per_sentence(total, n)}


def memory_reads(passes) -> dict:
    """What the heads' memories read, as arrays (``reads.npz``): ``attention`` (layer x head x query
    x key; NaN above the diagonal), ``log_signal`` (layer x head x query: each astrocyte's log
    denominator) and the last character's read: its key neurons' spikes (``key_time`` from its key
    window's start, s; ``key``; ``key_layer``; ``key_head``) and the written keys' ``efficacy``
    (layer x head x key)."""
    n, n_layers, n_heads = len(passes), len(passes[0].steps), len(passes[0].steps[0])
    attention = np.full((n_layers, n_heads, n, n), np.nan)
    log_signal = np.zeros((n_layers, n_heads, n))
    for t, p in enumerate(passes):
        for layer, row in enumerate(p.steps):
            for head, s in enumerate(row):
                attention[layer, head, t, :t + 1] = s.attention
                log_signal[layer, head, t] = s.log_signal
    last = [(layer, head, s) for layer, row in enumerate(passes[-1].steps) for head, s in enumerate(row)]
    return {"attention": attention, "log_signal": log_signal,
            "key_time": np.concatenate([np.asarray(s.key_spikes[0]) - s.key_window[0] for _, _, s in last]),
            "key": np.concatenate([np.asarray(s.key_spikes[1]) for _, _, s in last]),
            "key_layer": np.concatenate([np.full(len(s.key_spikes[1]), layer) for layer, _, s in last]),
            "key_head": np.concatenate([np.full(len(s.key_spikes[1]), head) for _, head, s in last]),
            "efficacy": np.stack([np.stack([s.efficacy for s in row]) for row in passes[-1].steps])}


def plot_raster(reads, path) -> None:
    """The last character's read in every head: the key neurons that fired (time within the key
    window, stored position; colour: the spike's efficacy relative to the read's strongest, log10)
    and each astrocyte's log denominator."""
    from experiments import plotting
    from experiments.plotting import plt

    n_layers, n_heads, n = reads["log_signal"].shape
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.2 * n_heads, 1.7 * n_layers), sharex=True, sharey=True,
                             squeeze=False)
    for layer in range(n_layers):
        for head, ax in enumerate(axes[layer]):
            mine = (reads["key_layer"] == layer) & (reads["key_head"] == head)
            keys = reads["key"][mine]
            efficacy = reads["efficacy"][layer, head]
            relative = efficacy[keys] / efficacy.max() if len(keys) else np.zeros(0)
            ax.scatter(reads["key_time"][mine] * 1e3, keys, c=np.log10(np.maximum(relative, 1e-12)), s=6,
                       cmap="viridis", vmin=-4, vmax=0)
            ax.set_title(f"L{layer} H{head}: log A = {reads['log_signal'][layer, head, -1]:.1f}", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[layer][0].set_ylabel("key (position)", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("ms into the key window", fontsize=7)
    fig.suptitle(f"character {n - 1}'s read: the keys that fire (colour: log10 efficacy over the read's strongest) "
                 f"and each astrocyte's log denominator", fontsize=8)
    fig.tight_layout()
    plotting.save(fig, path)


def plot_attention(reads, text, path, layer=None) -> None:
    """The attention weights each read implied (``MemoryStep.attention``) over the text, for every
    head of ``layer`` (default the last)."""
    from experiments import plotting
    from experiments.plotting import plt

    attention = reads["attention"]
    layer = len(attention) - 1 if layer is None else layer
    n = attention.shape[2]
    fig, axes = plt.subplots(1, attention.shape[1], figsize=(3.2 * attention.shape[1], 3.4), squeeze=False)
    labels = [repr(ch)[1:-1] for ch in text[:n]]
    for head, ax in enumerate(axes[0]):
        ax.imshow(attention[layer, head], cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        ax.set_xticks(range(n), labels, fontsize=5)
        ax.set_yticks(range(n), labels, fontsize=5)
        ax.set_xlabel("key (character written)", fontsize=7)
    axes[0][0].set_ylabel("query (character read)", fontsize=7)
    fig.tight_layout()
    plotting.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if (args.eval_text is None) == (args.prompt is None) and args.resume is None:
            raise ValueError("give --prompt (generate) or --eval-text (evaluate), one of them")
        network_parameters(args)
        if args.eval_text is not None or args.resume is not None:
            return evaluate(args, parser)
        return generate(args, parser)
    except (chargpt.ChargptUnavailable, ParameterError, ValueError, FileError) as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
