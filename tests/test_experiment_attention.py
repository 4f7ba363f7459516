"""The attention experiment's command line: input errors before simulating, and its run folder."""

import json

import numpy as np
import pytest

from circuits.head import HeadSpec
from experiments import attention

TINY = ["--tokens", "3", "--dim", "2", "--value-dim", "2", "--features", "8", "--neurons-per-value", "2",
        "--encoders-per-dim", "1", "--set", "t_settle=20*ms", "--set", "t_learn=30*ms",
        "--set", "t_read=30*ms", "--quiet"]


@pytest.fixture
def no_simulation(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("simulation started despite bad input")
    monkeypatch.setattr(HeadSpec, "simulate", fail)


def _error_of(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        attention.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def _npz(tmp_path, name="head.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("argv, message", [
    (["--set", "tau_cx=1*second"], "unknown parameter 'tau_cx'"),
    (["--set", "tau_ca=3*mV"], "tau_ca: wrong unit"),
    (["--set", "tau_ca=0*second"], "tau_ca: must be > 0"),
    (["--set", "tau_read=-5*ms"], "tau_read: must be > 0"),
    (["--set", "kappa=nan"], "kappa: value must be finite"),
    (["--set", "rho_value=inf*Hz"], "rho_value: value must be finite"),
    (["--set", "tau_ca"], "--set: expected name = value"),
    (["--set", "dt=5*ms"], "dt = 5 ms is too coarse for tau_syn = 10 ms"),
    (["--set", "t_read=0.1*ms"], "t_read must be a whole number of 1 ms"),
    (["--set", "rho_value=1e7*Hz"], "rho_value = 1e+07 Hz fires with probability"),
    (["--circuit", "exact", "--set", "R_key_target=1e5*Hz"], "R_key_target/neurons_per_key"),
    (["--spike-seed", "-2"], "spike_seed must be a non-negative integer"),
    (["--features", "0"], "n_features must be an integer >= 1"),
    (["--norm", "-1"], "--norm must be a positive number"),
    (["--qkv", "does-not-exist.npz"], "--qkv file not found"),
])
def test_bad_input_is_a_one_line_error_before_any_simulation(argv, message, capsys, no_simulation):
    assert message in _error_of(argv, capsys)


def test_bad_parameter_file_and_output_folder(tmp_path, capsys, no_simulation):
    params = tmp_path / "params.txt"
    params.write_text("tau_ca = 5*second\n# a comment\nkappa 3\n")
    assert _error_of(["--params", str(params)], capsys).endswith(f"{params} line 3: expected name = value, got 'kappa 3'")
    params.write_text("tau_ca = 5*secnd\n")
    assert f"{params} line 1: unknown unit or name 'secnd'" in _error_of(["--params", str(params)], capsys)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot create the output folder" in _error_of(["--out", str(blocker / "runs")], capsys)


def test_bad_qkv_files(tmp_path, capsys, no_simulation):
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    cases = {
        "mismatched d": (_npz(tmp_path, "a.npz", q=q, k=rng.normal(size=(4, 5)), v=v), "same dimension"),
        "mismatched L": (_npz(tmp_path, "b.npz", q=q, k=k, v=v[:3]), "same number of tokens"),
        "missing v": (_npz(tmp_path, "c.npz", q=q, k=k), "missing array(s) v"),
        "1-D": (_npz(tmp_path, "d.npz", q=q[0], k=k, v=v), "q must be a 2-D array"),
        "nan": (_npz(tmp_path, "e.npz", q=np.where(q > 1, np.nan, q), k=k, v=v), "q contains NaN or inf"),
        "scale": (_npz(tmp_path, "f.npz", q=q, k=k, v=v, scale=-1.0), "scale must be a positive"),
        "scale shape": (_npz(tmp_path, "g.npz", q=q, k=k, v=v, scale=[1.0, 2.0]), "scale must be a scalar"),
    }
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    cases["malformed"] = (garbage, "not a readable .npz file")
    for name, (path, message) in cases.items():
        line = _error_of(["--qkv", str(path)], capsys)
        assert message in line, (name, line)


def test_run_folder_has_outputs_metrics_params_and_figures(tmp_path):
    run = attention.main(TINY + ["--out", str(tmp_path), "--seed", "3"])
    assert run.parent == tmp_path
    assert {p.name for p in run.iterdir()} >= {"params.json", "metrics.json", "outputs.npz", "raster.png",
                                                "prediction.png"}
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("rel_err_spike_vs_softmax", "rel_err_spike_vs_rate", "rel_err_rate_vs_softmax",
                "rel_err_uniform_vs_softmax", "poisson_bound", "total_spikes", "wall_seconds",
                "simulated_seconds"):
        assert np.isfinite(metrics[key]), key
    assert metrics["simulated_seconds"] == pytest.approx(3 * 0.05 + 3 * 0.05)
    with np.load(run / "outputs.npz") as out:
        for key in ("y_spike", "y_rate", "y_softmax", "y_uniform"):
            assert out[key].shape == (3, 2), key
        from analysis.attention import softmax_attention
        np.testing.assert_allclose(out["y_softmax"], softmax_attention(out["q"], out["k"], out["v"],
                                                                       float(out["scale"])))
    params = json.loads((run / "params.json").read_text())
    assert params["seed"] == 3
    assert params["parameters"]["t_read"] == {"value": 30.0, "unit": "ms",
                                              "doc": params["parameters"]["t_read"]["doc"],
                                              "source": params["parameters"]["t_read"]["source"]}
    assert params["versions"]["brian2"]


def test_runs_never_overwrite_each_other_and_user_heads_work(tmp_path):
    rng = np.random.default_rng(1)
    head = _npz(tmp_path, q=rng.normal(size=(2, 3)), k=rng.normal(size=(3, 3)), v=rng.normal(size=(3, 2)),
                scale=0.5)
    argv = TINY + ["--qkv", str(head), "--out", str(tmp_path / "runs"), "--no-figures"]
    first, second = attention.main(argv), attention.main(argv)
    assert first != second and first.is_dir() and second.is_dir()
    with np.load(first / "outputs.npz") as a, np.load(second / "outputs.npz") as b:
        assert a["y_spike"].shape == (2, 2)                    # 2 queries over 3 keys
        np.testing.assert_array_equal(a["y_spike"], b["y_spike"])   # same seed, same spikes
        assert float(a["scale"]) == 0.5
