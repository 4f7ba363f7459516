"""Train chargpt (``transformer.chargpt``) on Tiny Shakespeare with PyTorch, and write its weights.

PyTorch is needed here only (the ``train`` extra: ``pip install -e '.[train]'``); the model is used
everywhere else through ``transformer.chargpt``, in NumPy. The recipe is nanoGPT's CPU "baby GPT"
(``config/train_shakespeare_char.py`` with ``--block_size=64 --batch_size=12 --n_layer=4 --n_head=4
--n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``): AdamW (betas 0.9, 0.99, weight
decay 0.1 on matrices and embeddings, none on biases and LayerNorms), learning rate 1e-3 after a
100-iteration linear warm-up, cosine decay to 1e-4 at the last iteration, gradients clipped to norm
1, batches of 12 random 64-character windows of the training split, weights drawn from N(0, 0.02)
(the two residual output projections N(0, 0.02 / sqrt(2 n_layers))), biases 0. The model differs
from nanoGPT's in its layout (post-LayerNorm, as BERT: ``--layout pre-LN`` trains nanoGPT's for
comparison, which is not exported), its untied output head with a bias, and the LayerNorm on the
embeddings.

    python -m transformer.chargpt_train --iters 2000 --seed 0 --out transformer/data/chargpt

Progress lines give the iteration, the batch loss, the learning rate and the speed; every
``--eval-interval`` iterations the loss on fixed windows of both splits (every 8th of the
validation split's, as many of the training split's). At the end the whole validation split is
scored as ``transformer.chargpt.validation_loss`` does (in float32, the training precision, and
with the float32 weights in float64), and ``--out`` receives ``weights.npz`` (float32, compressed)
and ``chargpt.json`` (configuration, vocabulary, training settings and curve, the text's sha256 and
both validation losses). One seed gives the same weights on the same machine and PyTorch build
(single-threaded, deterministic algorithms).
"""

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer import chargpt

DEFAULTS = {"iters": 2000, "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100, "betas": (0.9, 0.99),
            "weight_decay": 0.1, "grad_clip": 1.0, "init_std": 0.02}
#: Training-curve windows: every EVAL_STRIDE-th validation window (and as many training windows).
EVAL_STRIDE = 8


class Block(nn.Module):
    """One layer; post-LN: x = LN_1(x + attn(x)); x = LN_2(x + mlp(x)). Pre-LN (nanoGPT's):
    x = x + attn(LN_1(x)); x = x + mlp(LN_2(x))."""

    def __init__(self, n_embd, n_heads, eps, layout):
        super().__init__()
        self.n_heads, self.layout = n_heads, layout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.o = nn.Linear(n_embd, n_embd)
        self.ln1 = nn.LayerNorm(n_embd, eps=eps)
        self.fc1 = nn.Linear(n_embd, 4 * n_embd)
        self.fc2 = nn.Linear(4 * n_embd, n_embd)
        self.ln2 = nn.LayerNorm(n_embd, eps=eps)

    def attention(self, x):
        b, t, c = x.shape
        q, k, v = (part.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2)
                   for part in self.qkv(x).split(c, dim=2))
        scores = q @ k.transpose(-2, -1) / math.sqrt(c // self.n_heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return self.o((weights @ v).transpose(1, 2).reshape(b, t, c))

    def mlp(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, PyTorch's default

    def forward(self, x):
        if self.layout == "post-LN":
            x = self.ln1(x + self.attention(x))
            return self.ln2(x + self.mlp(x))
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """The PyTorch twin of ``transformer.chargpt``: the same parameters under parallel names."""

    def __init__(self, vocab_size, n_layers=4, n_heads=4, n_embd=128, block_size=64, eps=1e-5, layout="post-LN"):
        super().__init__()
        self.block_size, self.layout = block_size, layout
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        # post-LN: the embeddings' LayerNorm (BERT's); pre-LN: the final LayerNorm (nanoGPT's ln_f).
        self.ln = nn.LayerNorm(n_embd, eps=eps)
        self.layers = nn.ModuleList(Block(n_embd, n_heads, eps, layout) for _ in range(n_layers))
        self.head = nn.Linear(n_embd, vocab_size)

    def init_weights(self, std):
        for name, p in self.named_parameters():
            if name.endswith(("o.weight", "fc2.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * len(self.layers)))
            elif name.startswith("ln") or ".ln" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        if self.layout == "post-LN":
            x = self.ln(x)
        for layer in self.layers:
            x = layer(x)
        if self.layout == "pre-LN":
            x = self.ln(x)
        return self.head(x)


#: NumPy names (``transformer.chargpt``) of the PyTorch parameters.
def numpy_name(name: str) -> str:
    top = {"wte.weight": "wte", "wpe.weight": "wpe", "ln.weight": "ln_gamma", "ln.bias": "ln_beta",
           "head.weight": "head.w", "head.bias": "head.b"}
    if name in top:
        return top[name]
    _, layer, module, kind = name.split(".")
    short = {"qkv": "qkv", "o": "o", "fc1": "1", "fc2": "2"}
    if module in ("ln1", "ln2"):
        return f"layers.{layer}.{module}_{'gamma' if kind == 'weight' else 'beta'}"
    return f"layers.{layer}.{'w' if kind == 'weight' else 'b'}_{short[module]}"


def from_npz(path, vocab_size, config=chargpt.CONFIG) -> CharGPT:
    """A post-LN PyTorch model holding the weights of a ``weights.npz`` (float32)."""
    model = CharGPT(vocab_size, config["n_layers"], config["n_heads"], config["n_embd"], config["block_size"],
                    config["layer_norm_eps"], "post-LN")
    with np.load(path) as w:
        model.load_state_dict({name: torch.from_numpy(w[numpy_name(name)]) for name in model.state_dict()})
    return model


def learning_rate(it, iters, args) -> float:
    """nanoGPT's schedule: linear warm-up, then cosine decay from lr to min_lr at the last iteration."""
    if it < args.warmup_iters:
        return args.lr * (it + 1) / (args.warmup_iters + 1)
    ratio = (it - args.warmup_iters) / max(1, iters - args.warmup_iters)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(ratio, 1.0))) * (args.lr - args.min_lr)


@torch.no_grad()
def windows_loss(model, batches, chunk=256) -> float:
    """Mean cross-entropy over (inputs, targets) batches of windows (``chargpt.validation_windows``)."""
    model.eval()
    total, count = 0.0, 0
    for inputs, targets in batches:
        for start in range(0, len(inputs), chunk):
            x = torch.from_numpy(inputs[start:start + chunk])
            y = torch.from_numpy(targets[start:start + chunk])
            logits = model(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    model.train()
    return total / count


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m transformer.chargpt_train", description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=DEFAULTS["iters"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=chargpt.MODEL_DIR, help="folder for weights.npz and chargpt.json")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--min-lr", type=float, default=DEFAULTS["min_lr"])
    parser.add_argument("--warmup-iters", type=int, default=DEFAULTS["warmup_iters"])
    parser.add_argument("--layout", choices=("post-LN", "pre-LN"), default="post-LN",
                        help="pre-LN (nanoGPT's) is trained and scored but not written")
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--log-interval", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.batch_size < 1:
        parser.error("--iters and --batch-size must be positive")

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    config = dict(chargpt.CONFIG, layout=args.layout)
    text = chargpt.load_text()
    vocab = chargpt.vocabulary(text)
    index = {ch: i for i, ch in enumerate(vocab)}
    train_text, val_text = chargpt.split_text(text)
    train = np.array([index[ch] for ch in train_text], dtype=np.int64)
    val = np.array([index[ch] for ch in val_text], dtype=np.int64)
    block = config["block_size"]
    val_batches = chargpt.validation_windows(val, block)
    val_curve = [(val_batches[0][0][::EVAL_STRIDE], val_batches[0][1][::EVAL_STRIDE])]
    train_inputs, train_targets = chargpt.validation_windows(train, block)[0]
    pick = np.linspace(0, len(train_inputs) - 1, len(val_curve[0][0])).astype(int)
    train_curve = [(train_inputs[pick], train_targets[pick])]
    train_t = torch.from_numpy(train)

    model = CharGPT(len(vocab), config["n_layers"], config["n_heads"], config["n_embd"], block,
                    config["layer_norm_eps"], args.layout)
    model.init_weights(DEFAULTS["init_std"])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": DEFAULTS["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=DEFAULTS["betas"])
    n_params = sum(p.numel() for p in model.parameters())
    print(f"chargpt {args.layout}: {n_params} parameters, vocabulary {len(vocab)}, {len(train)} training and "
          f"{len(val)} validation characters; {args.iters} iterations of {args.batch_size} x {block}, seed {args.seed}",
          flush=True)

    curve = []
    start = time.perf_counter()
    lossf = float("nan")
    for it in range(args.iters + 1):
        if it % args.eval_interval == 0 or it == args.iters:
            point = {"iter": it, "train_loss": windows_loss(model, train_curve), "val_loss": windows_loss(model, val_curve),
                     "seconds": round(time.perf_counter() - start, 1)}
            curve.append(point)
            print(f"eval  iter {it:5d}: train {point['train_loss']:.4f}, val {point['val_loss']:.4f} "
                  f"(fixed windows), {point['seconds']:.0f} s", flush=True)
        if it == args.iters:
            break
        lr = learning_rate(it, args.iters, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        ix = torch.randint(len(train_t) - block, (args.batch_size,), generator=generator)
        x = torch.stack([train_t[i:i + block] for i in ix])
        y = torch.stack([train_t[i + 1:i + 1 + block] for i in ix])
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), DEFAULTS["grad_clip"])
        optimizer.step()
        lossf = loss.item()
        if it % args.log_interval == 0:
            elapsed = time.perf_counter() - start
            print(f"iter {it:5d}: loss {lossf:.4f}, lr {lr:.2e}, {(it + 1) / elapsed:.1f} it/s, {elapsed:.0f} s",
                  flush=True)
    train_seconds = time.perf_counter() - start

    val_float32 = windows_loss(model, val_batches)
    val_float64 = windows_loss(model.double(), val_batches)
    model.float()
    predictions = sum(t.size for _, t in val_batches)
    print(f"validation (all {predictions} predictions): {val_float32:.5f} (float32), {val_float64:.5f} "
          f"(float32 weights in float64), perplexity {math.exp(val_float32):.3f}", flush=True)

    record = {
        "model": "chargpt",
        "config": dict(config, vocab_size=len(vocab), parameters=n_params),
        "vocab": vocab,
        "text_file": chargpt.TEXT_FILE.name,
        "text_source": chargpt.TEXT_SOURCE,
        "text_sha256": chargpt.TEXT_SHA256,
        "split": {"characters": len(text), "train": len(train), "validation": len(val),
                  "validation_fraction": chargpt.VALIDATION_FRACTION},
        "training": {"iters": args.iters, "batch_size": args.batch_size, "block_size": block, "lr": args.lr,
                     "min_lr": args.min_lr, "warmup_iters": args.warmup_iters, "lr_decay_iters": args.iters,
                     "schedule": "linear warm-up, cosine decay", "optimizer": "AdamW",
                     "betas": list(DEFAULTS["betas"]), "weight_decay": DEFAULTS["weight_decay"],
                     "weight_decay_on": "matrices and embeddings", "grad_clip": DEFAULTS["grad_clip"],
                     "init_std": DEFAULTS["init_std"], "seed": args.seed, "threads": args.threads,
                     "seconds": round(train_seconds, 1), "iters_per_second": round(args.iters / train_seconds, 2),
                     "torch": torch.__version__, "python": platform.python_version(),
                     "machine": platform.machine(), "git_commit": git_commit()},
        "curve": curve,
        "curve_windows": f"every {EVAL_STRIDE}th validation window and as many evenly spaced training windows "
                         f"({len(val_curve[0][0])} x {block} characters each)",
        "validation": {"loss": val_float32, "perplexity": math.exp(val_float32),
                       "bits_per_char": val_float32 / math.log(2), "loss_float64": val_float64,
                       "predictions": predictions, "windows": sum(len(i) for i, _ in val_batches),
                       "measured_by": "PyTorch: float32, and the float32 weights in float64; the whole "
                                      "validation split in non-overlapping 64-character windows"},
        "command": "python -m transformer.chargpt_train " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.layout != "post-LN":
        print(json.dumps(record["validation"], indent=1))
        print("pre-LN is not exported (transformer.chargpt computes the post-LN layout)")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = {chargpt_name: p.detach().numpy().astype(np.float32)
              for chargpt_name, p in ((numpy_name(n), p) for n, p in model.state_dict().items())}
    np.savez_compressed(args.out / "weights.npz", **arrays)
    (args.out / "chargpt.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out / 'weights.npz'} and {args.out / 'chargpt.json'}")


if __name__ == "__main__":
    main()
