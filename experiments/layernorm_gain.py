"""The LayerNorm astrocyte's gain against the true 1/sigma, token by token, on all-MiniLM-L6-v2's own inputs.

    python -m experiments.layernorm_gain                          # the 8 sentences, all 13 LayerNorms
    python -m experiments.layernorm_gain --texts FILE --workers 2

For every LayerNorm of the model (the embeddings', and after each block of each layer) and every
sentence, the residual sum z the NumPy model normalises is given to the LayerNorm astrocyte circuit
(``circuits.layernorm``; docs/model.md §13), once working and once with the astrocyte blocked (its
signal held at its mean over the sentence's tokens). Per token it records the divisive gain the
output neurons applied (the astrocyte's S^(-1/2)) against LayerNorm's 1/sigma, and per circuit its
error against LayerNorm. Writes gain.png (gain against 1/sigma, every token, both conditions),
gains.npz (per site: the gains, 1/sigma, the errors) and metrics.json (per site and overall: the
gain's log rms against 1/sigma, the spread of log sigma over tokens, errors working and blocked).
The interneuron's and squares' tops are the calibrated ones (``transformer.calibration``); the input's
code top is each sentence's own (this experiment feeds z as numbers, where the network feeds spikes).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from circuits.layernorm import layernorm_spec, token_gains
from circuits.protocol import BUCKETS, bucket_length
from circuits.runners import CircuitPool
from experiments import cli, plotting
from runs.folders import new_run_dir, output_parent, run_record, write_atomic, write_json

DEFAULT_TEXTS = Path(__file__).parent / "data" / "sentences.txt"


def sites(text) -> list:
    """(site name, calibration key, residual sum z) of every LayerNorm of the model for ``text``."""
    from transformer import minilm
    from transformer.forward import forward

    (sentence,) = forward([text])
    out = [("embedding", ("embedding", "ln"), minilm.embedding_sum(text)[1])]
    for layer, step in enumerate(sentence.layers):
        out.append((f"L{layer} ln1", (layer, "ln1"), step.input + step.attention.output))
        out.append((f"L{layer} ln2", (layer, "ln2"), step.h + step.ffn.output))
    return out


def gain_figure(points, path) -> None:
    """Gain against 1/sigma per token, log-log, working and blocked, with the identity."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5))
    for blocked, marker, label in ((False, "o", "astrocyte"), (True, "x", "astrocyte blocked")):
        inverse = np.concatenate([p["inverse_sigma"] for p in points if p["blocked"] == blocked])
        gain = np.concatenate([p["gain"] for p in points if p["blocked"] == blocked])
        ax.scatter(inverse, gain, s=9, marker=marker, alpha=0.6, label=label)
    lo = min(np.min(p["inverse_sigma"]) for p in points) / 1.3
    hi = max(np.max(p["inverse_sigma"]) for p in points) * 1.3
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="gain = 1/σ")
    ax.set(xscale="log", yscale="log", xlabel="1/σ of the token (LayerNorm)", ylabel="gain S^(-1/2) the astrocyte applied",
           title="LayerNorm astrocytes, every token and LayerNorm")
    ax.legend(frameon=False)
    plotting.save(fig, path)


@cli.stops_on_failed_writes
def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m experiments.layernorm_gain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="sentences, one a line")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpp_standalone", choices=("runtime", "cpp_standalone"))
    parser.add_argument("--out", type=Path, default=None, help="parent folder (default results/layernorm_gain)")
    args = parser.parse_args(argv)
    from transformer import minilm
    from transformer.minilm import MiniLMUnavailable

    try:
        texts = [line.strip() for line in args.texts.read_text().splitlines() if line.strip()]
        if not texts:
            raise ValueError(f"--texts {args.texts}: no sentence in it")
        per_text = [sites(text) for text in texts]
        parent = output_parent(args.out, "layernorm_gain")
    except (OSError, ValueError, MiniLMUnavailable) as exc:
        parser.error(str(exc))
    specs, keys = [], []
    for n, text_sites in enumerate(per_text):
        for name, (where, prefix), z in text_sites:
            eye = np.eye(z.shape[1])
            for blocked in (False, True):
                specs.append(layernorm_spec([(z, eye)], np.zeros(z.shape[1]),
                                            mu_top=minilm.code_range(where, f"{prefix}_mean"),
                                            d_top=minilm.code_range(where, f"{prefix}_centred"),
                                            block_astrocyte=blocked, pad_to=bucket_length(len(z), BUCKETS)))
                keys.append((n, name, blocked))
    with CircuitPool(args.device, workers=args.workers, keep=()) as pool:
        results = pool.run(specs, log=lambda line: print(f"[layernorm_gain] circuits {line}", file=sys.stderr,
                                                         flush=True))
    points = []
    for (n, name, blocked), result in zip(keys, results):
        gain, inverse = token_gains(result)
        points.append({"text": n, "site": name, "blocked": blocked, "gain": gain, "inverse_sigma": inverse,
                       "error": result.metrics["rel_err_spike_vs_layernorm"]})
    summary = {}
    for name in dict.fromkeys(p["site"] for p in points):
        mine = [p for p in points if p["site"] == name]
        row = {}
        for blocked, label in ((False, "working"), (True, "blocked")):
            chosen = [p for p in mine if p["blocked"] == blocked]
            gap = np.concatenate([np.log(p["gain"] * 1.0 / p["inverse_sigma"]) for p in chosen])
            row[f"gain_log_rms_{label}"] = float(np.sqrt(np.mean(gap ** 2)))
            row[f"error_{label}_median"] = float(np.median([p["error"] for p in chosen]))
        row["log_sigma_spread"] = float(np.std(np.concatenate([np.log(p["inverse_sigma"]) for p in mine
                                                                 if not p["blocked"]])))
        summary[name] = row
    overall = {key: float(np.median([row[key] for row in summary.values()])) for key in next(iter(summary.values()))}
    overall["blocked_over_working_median"] = float(np.median([row["error_blocked_median"] / row["error_working_median"]
                                                              for row in summary.values()]))
    out = new_run_dir(parent, f"{len(texts)}sent")
    gain_figure(points, out / "gain.png")
    arrays = {f"{p['site'].replace(' ', '_')}_{p['text']}_{'blocked' if p['blocked'] else 'working'}_{kind}": p[kind]
              for p in points for kind in ("gain", "inverse_sigma")}
    write_atomic(out / "gains.npz", lambda fh: np.savez_compressed(fh, **arrays), binary=True)
    write_json(out / "metrics.json", {"sites": summary, "median_over_sites": overall, "texts": texts,
                                      "record": run_record("experiments.layernorm_gain", None)})
    for name, row in summary.items():
        print(f"{name:12s} gain log rms {row['gain_log_rms_working']:.4f} (blocked {row['gain_log_rms_blocked']:.3f}), "
              f"log sigma spread {row['log_sigma_spread']:.3f}, error {row['error_working_median']:.4f} "
              f"(blocked {row['error_blocked_median']:.3f})", file=sys.stderr)
    print(out)
    return out


if __name__ == "__main__":
    main()
