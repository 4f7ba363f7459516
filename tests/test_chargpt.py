"""chargpt (transformer.chargpt): the shipped text and weights, the NumPy reference forward pass and
its sampling. NumPy only; the comparison with the PyTorch twin (transformer.chargpt_train) is
skipped where PyTorch is not installed (the project's environment; ``pip install -e '.[train]'``).
"""

import hashlib
import json
import math

import numpy as np
import pytest

from models.feedforward import gelu as project_gelu
from transformer import chargpt


@pytest.fixture(scope="module")
def model():
    return chargpt.load_model()


def ids_of(model, text):
    return chargpt.encode(text, model)


def test_the_text_is_the_recorded_tiny_shakespeare_split_90_10(model):
    text = chargpt.load_text()
    assert hashlib.sha256(chargpt.TEXT_FILE.read_bytes()).hexdigest() == chargpt.TEXT_SHA256
    assert len(text) == 1_115_394
    train, val = chargpt.split_text()
    assert (len(train), len(val)) == (1_003_854, 111_540) and train + val == text
    assert model.vocab == chargpt.vocabulary() and len(model.vocab) == 65
    assert chargpt.decode(chargpt.encode(val[:500], model), model) == val[:500]
    with pytest.raises(ValueError, match="vocabulary"):
        chargpt.encode("café", model)


def test_validation_windows_predict_every_character_once():
    ids = np.arange(200)
    batches = chargpt.validation_windows(ids, 64)
    inputs = np.concatenate([x.ravel() for x, _ in batches])
    targets = np.concatenate([y.ravel() for _, y in batches])
    assert np.array_equal(inputs, ids[:-1]) and np.array_equal(targets, ids[1:])
    assert [x.shape for x, _ in batches] == [(3, 64), (1, 7)]


def test_the_shipped_weights_reproduce_the_recorded_validation_loss(model):
    """The NumPy pass (float64) over the whole validation split against the trainer's measurements:
    PyTorch with the same float32 weights in float64 (the same arithmetic: to 1e-9), and in float32,
    the training precision (float32 rounds each of ~10^7 operations per character at ~6e-8; the
    recorded difference is ~1e-7, the tolerance 1e-4)."""
    result = chargpt.validation_loss(model)
    recorded = model.record["validation"]
    assert result["predictions"] == recorded["predictions"] == 111_539
    assert result["windows"] == recorded["windows"]
    assert result["loss"] == pytest.approx(recorded["loss_float64"], abs=1e-9)
    assert result["loss"] == pytest.approx(recorded["loss"], abs=1e-4)
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert result["loss"] < 1.88  # nanoGPT's baby GPT: about 1.88


def test_the_record_describes_the_model(model):
    record = json.loads(chargpt.RECORD_FILE.read_text())
    assert record["text_sha256"] == chargpt.TEXT_SHA256
    for key in ("n_layers", "n_heads", "n_embd", "block_size", "layout", "activation", "head"):
        assert record["config"][key] == chargpt.CONFIG[key]
    assert (model.n_layers, model.n_heads, model.head_dim, model.block_size) == (4, 4, 32, 64)
    with np.load(chargpt.WEIGHTS_FILE) as w:
        assert all(w[name].dtype == np.float32 for name in w.files)
        assert sum(w[name].size for name in w.files) == record["config"]["parameters"]


def test_layer_weights_are_named_as_minilm_layer_weights(model):
    w = chargpt.layer_weights(0, model)
    assert set(w) == {"w_qkv", "b_qkv", "w_o", "b_o", "w_1", "b_1", "w_2", "b_2",
                      "ln1_gamma", "ln1_beta", "ln2_gamma", "ln2_beta"}
    shapes = {"w_qkv": (384, 128), "b_qkv": (384,), "w_o": (128, 128), "w_1": (512, 128), "w_2": (128, 512)}
    assert all(w[name].shape == shape and w[name].dtype == np.float64 for name, shape in shapes.items())
    with pytest.raises(ValueError):
        chargpt.layer_weights(4, model)


def test_the_forward_pass_is_causal(model):
    """Changing the character at position t changes no logits before t, and those at t."""
    ids = ids_of(model, chargpt.split_text()[1][1000:1064])
    logits = chargpt.forward(ids, model)
    for t in (0, 17, 40, 63):
        changed = ids.copy()
        changed[t] = (changed[t] + 11) % len(model.vocab)
        other = chargpt.forward(changed, model)
        np.testing.assert_array_equal(other[:t], logits[:t])
        assert np.abs(other[t] - logits[t]).max() > 1e-3


def _layer_norm(x, gamma, beta, eps):
    mu = sum(x) / len(x)
    var = sum((v - mu) ** 2 for v in x) / len(x)
    return np.array([(v - mu) / math.sqrt(var + eps) for v in x]) * gamma + beta


def per_position_logits(model, ids):
    """A second computation of the logits: every position on its own, its attention an explicit sum
    over the positions up to it (no mask), head by head, LayerNorms and softmax written out, GELU
    through math.erf (models.feedforward.gelu)."""
    e = {name: np.asarray(v, dtype=np.float64) for name, v in model.embeddings.items()}
    eps, d = model.layer_norm_eps, model.head_dim
    x = [_layer_norm(e["wte"][c] + e["wpe"][t], e["ln_gamma"], e["ln_beta"], eps) for t, c in enumerate(ids)]
    for layer in range(model.n_layers):
        w = {name: np.asarray(v, dtype=np.float64) for name, v in model.layers[layer].items()}
        qkv = [w["w_qkv"] @ xs + w["b_qkv"] for xs in x]
        q = [v[:128] for v in qkv]
        k = [v[128:256] for v in qkv]
        v = [v[256:] for v in qkv]
        out = []
        for s in range(len(ids)):
            context = []
            for h in range(model.n_heads):
                cols = slice(h * d, (h + 1) * d)
                scores = [float(q[s][cols] @ k[j][cols]) / math.sqrt(d) for j in range(s + 1)]
                top = max(scores)
                weights = [math.exp(a - top) for a in scores]
                context.append(sum(wj * v[j][cols] for j, wj in enumerate(weights)) / sum(weights))
            a = w["w_o"] @ np.concatenate(context) + w["b_o"]
            hs = _layer_norm(x[s] + a, w["ln1_gamma"], w["ln1_beta"], eps)
            f = w["w_2"] @ project_gelu(w["w_1"] @ hs + w["b_1"]) + w["b_2"]
            out.append(_layer_norm(hs + f, w["ln2_gamma"], w["ln2_beta"], eps))
        x = out
    head_w, head_b = np.asarray(model.head["w"], dtype=np.float64), np.asarray(model.head["b"], dtype=np.float64)
    return np.array([head_w @ xs + head_b for xs in x])


def test_the_forward_pass_agrees_with_a_per_position_computation(model):
    ids = ids_of(model, "ROMEO:\nWhat light through yonder window breaks?\nJuliet is t")
    assert len(ids) <= model.block_size
    np.testing.assert_allclose(chargpt.forward(ids, model), per_position_logits(model, ids), rtol=0, atol=1e-10)
    # a batch of windows gives each window's own logits
    batch = np.stack([ids[:32], ids[-32:]])
    logits = chargpt.forward(batch, model)
    np.testing.assert_allclose(logits[1], chargpt.forward(ids[-32:], model), rtol=0, atol=1e-12)


def test_the_forward_pass_agrees_with_the_pytorch_model(model):
    torch = pytest.importorskip("torch")
    from transformer.chargpt_train import from_npz

    twin = from_npz(chargpt.WEIGHTS_FILE, len(model.vocab))
    twin.eval()
    ids = ids_of(model, chargpt.split_text()[1][5000:5128]).reshape(2, 64)
    reference = chargpt.forward(ids, model)
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(ids)).numpy(), reference, rtol=0, atol=1e-3)
        np.testing.assert_allclose(twin.double()(torch.from_numpy(ids)).numpy(), reference, rtol=0, atol=1e-10)


def test_gelu_is_the_projects_exact_gelu():
    x = np.concatenate([np.linspace(-12, 12, 48001), [0.0, 0.46875 * math.sqrt(2), 4 * math.sqrt(2), -40, 40]])
    np.testing.assert_allclose(chargpt.gelu(x), project_gelu(x), rtol=0, atol=4e-15)
    y = np.linspace(-9, 9, 30001)
    np.testing.assert_allclose(chargpt.erf(y), [math.erf(v) for v in y], rtol=0, atol=4e-16)


def test_greedy_generation_follows_the_most_likely_character(model):
    text = chargpt.generate("ROMEO:", 40, model=model)
    assert text.startswith("ROMEO:") and len(text) == 46
    assert chargpt.generate("ROMEO:", 40, model=model) == text
    ids = ids_of(model, text)
    logits = chargpt.forward(ids[:-1], model)
    assert np.array_equal(np.argmax(logits[5:], axis=1), ids[6:])
    # past the context: predicted from the last block_size characters
    long = chargpt.generate("ROMEO:", 70, model=model)
    assert long[:46] == text
    last = ids_of(model, long)
    assert int(np.argmax(chargpt.forward(last[-65:-1], model)[-1])) == last[-1]


def test_sampling_is_reproducible_with_a_seed(model):
    a = chargpt.generate("JULIET:", 60, temperature=1.0, seed=3, model=model)
    assert a == chargpt.generate("JULIET:", 60, temperature=1.0, seed=3, model=model)
    assert a != chargpt.generate("JULIET:", 60, temperature=1.0, seed=4, model=model)
    # a very low temperature samples the most likely character
    assert chargpt.generate("JULIET:", 30, temperature=1e-4, seed=5, model=model) == \
        chargpt.generate("JULIET:", 30, model=model)
    with pytest.raises(ValueError):
        chargpt.generate("JULIET:", 5, temperature=-1.0, model=model)


def test_sampling_draws_from_the_tempered_softmax():
    """Draw frequencies against softmax(logits / T), within 5 binomial standard errors."""
    logits = np.log([0.6, 0.3, 0.1])
    n = 20_000
    for temperature in (1.0, 2.0):
        rng = np.random.default_rng(0)
        counts = np.bincount([chargpt.next_character(logits, temperature, rng) for _ in range(n)], minlength=3)
        p = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
        assert np.all(np.abs(counts / n - p) < 5 * np.sqrt(p * (1 - p) / n)), (temperature, counts / n, p)
    assert chargpt.next_character(logits, 0, None) == 0


def test_the_command_prints_a_sample(capsys):
    chargpt.main(["--prompt", "KING", "--tokens", "12", "--temperature", "0.8", "--seed", "1"])
    out = capsys.readouterr().out
    assert out.startswith("KING") and out.rstrip("\n") == chargpt.generate("KING", 12, 0.8, 1).rstrip("\n")
    with pytest.raises(SystemExit):
        chargpt.main(["--prompt", "é", "--tokens", "3"])
