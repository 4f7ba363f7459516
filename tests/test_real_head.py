"""experiments.real_head on a real MiniLM head, and the exact circuit on user heads up to 64 x 64."""

import json

import numpy as np
import pytest

from analysis.attention import relative_error, softmax_attention
from experiments import attention, real_head

FAST = ["--set", "t_settle=40*ms", "--set", "t_learn=40*ms", "--set", "t_read=100*ms",
        "--neurons-per-key", "2", "--neurons-per-value", "4", "--encoders-per-dim", "2", "--quiet"]


def test_real_head_run_folder_and_attention_map(model, tmp_path):
    run = real_head.main(["--text", "Cats chase mice.", "--layer", "1", "--head", "2", "--out", str(tmp_path)]
                         + FAST)
    assert {"params.json", "metrics.json", "outputs.npz", "raster.png", "prediction.png",
            "attention_map.png"} <= {p.name for p in run.iterdir()}
    params = json.loads((run / "params.json").read_text())
    assert params["experiment"] == "real_head"
    assert params["source"]["tokens"][0] == "[CLS]" and params["source"]["tokens"][-1] == "[SEP]"
    metrics = json.loads((run / "metrics.json").read_text())
    # Spike-count statistics: the measured map and output are within 4 sigma-ish of the bound.
    assert metrics["rel_err_spike_vs_softmax"] <= 2 * metrics["poisson_bound"]
    with np.load(run / "outputs.npz") as out:
        np.testing.assert_allclose(out["y_softmax"],
                                   softmax_attention(out["q"], out["k"], out["v"], float(out["scale"])))
        assert out["q"].shape[1] == 32


def test_real_head_rejects_bad_layer_and_long_text(model, capsys):
    for argv, message in ((["--text", "hi", "--layer", "6", "--head", "0"], "layer"),
                          (["--text", "word " * 140, "--layer", "0", "--head", "0"], "at most 128")):
        with pytest.raises(SystemExit) as exc:
            real_head.main(argv + FAST)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_exact_circuit_takes_a_user_head_of_64_tokens_and_64_dims(tmp_path):
    rng = np.random.default_rng(5)
    q, k, v = (rng.normal(size=(64, 64)) for _ in range(3))
    path = tmp_path / "head.npz"
    np.savez(path, q=q, k=k, v=v)
    run = attention.main(["--qkv", str(path), "--circuit", "exact", "--out", str(tmp_path), "--no-figures"]
                         + FAST)
    metrics = json.loads((run / "metrics.json").read_text())
    with np.load(run / "outputs.npz") as out:
        assert out["y_spike"].shape == (64, 64)
        # Short windows: a noisy but unbiased estimate, far closer to softmax than the uniform baseline
        assert relative_error(out["y_spike"], out["y_softmax"]) < 2.5 * metrics["poisson_bound"]
    assert metrics["rel_err_spike_vs_softmax"] < metrics["rel_err_uniform_vs_softmax"]
