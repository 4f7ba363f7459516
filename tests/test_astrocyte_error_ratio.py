"""experiments.astrocyte_error_ratio at its --quick sizes (L = 2, m = 32, two seeds, both circuits,
the three astrocyte models; ~40 s on numpy): the run folder's files, the runs it holds and ratios
that are what their records say (finite, positive, 1 for minimal)."""

import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from experiments import astrocyte_error_ratio as experiment


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run_dir = experiment.main(["--quick", "--quiet", "--seed", "3", "--out", str(tmp_path_factory.mktemp("ratio"))])
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_quick_run_folder_and_ratios(quick_run):
    run_dir, metrics = quick_run
    params = json.loads((run_dir / "params.json").read_text())
    assert params["seeds"] == [3, 4] and params["quick"] is True
    assert imread(run_dir / f"{experiment.NAME}.png").ndim == 3, "figure is not an image"
    seeds, circuits = metrics["seeds"], metrics["circuits"]
    assert seeds == [3, 4] and circuits == ["random", "exact"]

    # One run per seed, circuit and model; the three models of a seed and circuit ran the same head.
    runs = {(r["seed"], r["circuit"], r["model"]): r for r in metrics["runs"]}
    assert len(runs) == len(metrics["runs"]) == len(seeds) * len(circuits) * len(experiment.MODELS)
    for r in metrics["runs"]:
        assert r["ran"] == {"circuit": r["circuit"], "astrocyte": r["model"], "seed": r["seed"]}, r
        for key in ("rel_err_spike_vs_softmax", "poisson_bound", "expected_error"):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r)
        # hypot(|y_rate - y_soft|, bound |y_rate|) / |y_soft|, and |y_rate| / |y_soft| is within 1 -+ a
        a, b = r["rel_err_rate_vs_softmax"], r["poisson_bound"]
        assert math.isfinite(a) and a >= 0, r
        low, high = math.hypot(a, b * (1 - a)), math.hypot(a, b * (1 + a))
        assert low * (1 - 1e-9) <= r["expected_error"] <= high * (1 + 1e-9), r
        if r["model"] == "minimal":
            assert r["rel_err_rate_vs_minimal_rate"] == 0.0, r
        else:
            # gchi and lr1994 read out a fading IP3: a rate ideal other than the minimal model's
            assert r["rel_err_rate_vs_minimal_rate"] > 0, r

    # The ratios are the records' ratios, per seed and circuit, and every one is finite and positive.
    for circuit in circuits:
        for model in experiment.MODELS:
            entry = metrics["summary"][circuit][model]
            for kind, key in (("measured", "rel_err_spike_vs_softmax"), ("expected", "expected_error")):
                ratios = entry[f"ratio_{kind}"]
                assert len(ratios) == len(seeds)
                assert all(math.isfinite(x) and x > 0 for x in ratios), (circuit, model, ratios)
                want = [runs[s, circuit, model][key] / runs[s, circuit, "minimal"][key] for s in seeds]
                np.testing.assert_allclose(ratios, want, rtol=1e-12)
                assert entry[f"ratio_{kind}_mean"] == pytest.approx(np.mean(want))
                assert entry[f"ratio_{kind}_max"] == pytest.approx(np.max(want))
            if model == "minimal":
                assert entry["ratio_measured"] == [1.0] * len(seeds)

    # The table has a row per circuit and model with the per-seed ratios.
    table = (run_dir / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| circuit")]
    assert len(rows) == len(circuits) * len(experiment.MODELS)
    for row, (circuit, model) in zip(rows, [(c, m) for c in circuits for m in experiment.MODELS]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:2] == [circuit, model]
        assert cells[3] == " ".join(f"{x:.2f}" for x in metrics["summary"][circuit][model]["ratio_measured"])


@pytest.mark.parametrize("argv, message", [(["--seeds", "0"], "--seeds"), (["--circuits", "randm"], "randm"),
                                            (["--workers", "0"], "--workers")])
def test_bad_arguments_stop_with_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(["--quick", "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "a run folder was made before the error"
