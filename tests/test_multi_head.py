"""experiments.multi_head: every head within its spike-count tolerance; heads are concatenated."""

import json

import numpy as np

from experiments import multi_head


def test_each_head_within_its_bound_and_outputs_concatenate(tmp_path):
    run = multi_head.main(["--quick", "--heads", "2", "--tokens", "6", "--out", str(tmp_path), "--quiet",
                           "--no-figures"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["heads"]) == 2
    for head in metrics["heads"]:
        assert head["rel_err_spike_vs_rate"] <= head["bound_tolerance_ratio"] * head["poisson_bound"]
    with np.load(run / "outputs.npz") as out:
        y_spike, y_soft = out["y_spike"], out["y_softmax"]
        assert y_spike.shape == (6, 2 * 4)
        # head h's block of the concatenated output is computed from head h's own Q/K/V
        from analysis.attention import softmax_attention
        for h in range(2):
            block = y_soft[:, 4 * h:4 * (h + 1)]
            np.testing.assert_allclose(block, softmax_attention(out[f"head{h}_q"], out[f"head{h}_k"],
                                                                out[f"head{h}_v"], 1 / np.sqrt(8)))
        assert not np.allclose(y_soft[:, :4], y_soft[:, 4:])
