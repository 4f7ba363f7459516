"""A spiking_minilm run's configuration (transformer.configuration.RunConfig): what params.json
records, what --resume and benchmarks.frontier read back, and the values it refuses."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from transformer.configuration import RunConfig
from transformer.executors import ALL_STAGES

CURATED = Path(__file__).resolve().parents[1] / "results" / "curated" / "spiking_minilm"

#: Every field set away from its default, so that a field the record loses shows.
CONFIG = RunConfig(texts=("A man plays a guitar.", "Stocks fell."), stages=("qkv", "attention"), layers=(0, 3),
                   map_layer=3, seed=2, spike_seed=5, batch=3, device="cpp_standalone", threads=2,
                   codes={**{s: "rate" for s in ALL_STAGES}, "attention": "latency"},
                   overrides={"ffn.tau_m": "5*ms"}, buckets=(16, 32), astrocyte="gchi", block_astrocyte=True,
                   options={"head": {"encoders_per_dim": 4}, "ffn": {"neurons_per_unit": 16}}, heads=(0, 1),
                   ffn_units=64)

#: The configuration a run recorded before the latency code (results/curated, 2026-11-30 to 12-05):
#: no ``codes`` and no ``buckets``.
BEFORE_CODES = {"texts": ["A man plays a guitar."], "spiking": ["attention", "ffn"], "layers": [0, 1, 2, 3, 4, 5],
                "map_layer": 0, "seed": 0, "spike_seed": None, "overrides": {}, "batch": 4, "device": "cpp_standalone",
                "threads": 0, "options": {"head": {"encoders_per_dim": 8, "astrocyte": "minimal",
                                                   "block_astrocyte": False}}}


def test_the_record_reads_back_as_the_configuration():
    """from_record(to_record(c)) == c, through JSON as params.json holds it."""
    assert RunConfig.from_record(json.loads(json.dumps(CONFIG.to_record()))) == CONFIG


def test_a_record_without_codes_runs_the_rate_code_everywhere():
    config = RunConfig.from_record(BEFORE_CODES)
    assert config.codes == {s: "rate" for s in ALL_STAGES} and config.buckets is None
    assert config.astrocyte == "minimal" and config.options == {"head": {"encoders_per_dim": 8}}
    # Recorded before the one network: NumPy joined its stages.
    assert config.to_record() == {**BEFORE_CODES, "codes": config.codes, "buckets": None, "boundaries": "numpy",
                                  "block_layernorm": False}


def test_the_curated_latency_run_resumes_with_its_configuration():
    """Recorded before the one-spike keys: its heads ran, and resume, with the regular keys."""
    record = json.loads((CURATED / "20261206-042234-8sent" / "params.json").read_text())["configuration"]
    config = RunConfig.from_record(record)
    head = {**record["options"]["head"], "key_code": "regular"}
    assert config.to_record() == {**record, "options": {**record["options"], "head": head}, "boundaries": "numpy",
                                  "block_layernorm": False}
    assert set(config.codes.values()) == {"latency"} and len(config.texts) == 8 and config.key_code == "regular"
    assert float(config.params["ffn"]["t_code"]) == pytest.approx(10e-3)
    assert float(config.params["head"]["t_read"]) == pytest.approx(0.11)


def test_the_latency_heads_record_their_key_code():
    """A new run on the latency heads records the one-spike keys, a rate-head run no key code, and a
    key code with the rate heads is refused in one line."""
    config = replace(CONFIG, codes={s: "latency" for s in ALL_STAGES}, options={"head": {}})
    assert config.key_code == "latency" and config.to_record()["options"]["head"]["key_code"] == "latency"
    assert RunConfig.from_record(config.to_record()) == config
    assert float(config.params["head"]["t_read"]) == pytest.approx(0.05)
    rate = replace(CONFIG, codes={s: "rate" for s in ALL_STAGES}, options={"head": {}})
    assert "key_code" not in rate.to_record()["options"]["head"]
    with pytest.raises(ValueError, match=r"^key_code \(--key-code\) must be"):
        replace(rate, options={"head": {"key_code": "latency"}})


def test_block_parameters_are_computed_once_per_run():
    config = replace(CONFIG, astrocyte="minimal")
    assert config.params is config.params
    assert float(config.params["ffn"]["tau_m"]) == pytest.approx(5e-3)
    assert config.circuit_options["head"] == {"encoders_per_dim": 4, "key_code": "latency", "astrocyte": "minimal",
                                              "block_astrocyte": True}


@pytest.mark.parametrize("change, message", [
    ({"batch": 0}, "batch (--batch) must be an integer >= 1, got 0"),
    ({"stages": ("mlp",)}, "spiking (--spiking) must be stages among"),
    ({"codes": {"qkv": "phase"}}, "codes (--code) must be a code"),
    ({"texts": ()}, "texts (--text/--texts) must be sentences"),
    ({"buckets": (0, 16)}, "buckets (--buckets) must be lengths in 1-"),
    ({"astrocyte": "glia"}, "astrocyte (--astrocyte) must be one of"),
    ({"options": {"head": {"astrocyte": "gchi"}}}, "options (options) must be"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
])
def test_a_bad_value_is_one_line(change, message):
    with pytest.raises(ValueError) as error:
        replace(CONFIG, **change)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("record, message", [
    ({"spiking": []}, "no whole configuration of a spiking_minilm run (no texts, layers,"),
    ([], "no whole configuration"),
    ({**BEFORE_CODES, "options": {"head": {}}}, "options must hold the heads' astrocyte and block_astrocyte"),
    ({**BEFORE_CODES, "seed": "zero"}, "seed (--seed) must be an integer >= 0, got 'zero'"),
])
def test_a_damaged_record_is_one_line(record, message):
    with pytest.raises(ValueError) as error:
        RunConfig.from_record(record)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_protocol_the_heads_cannot_run_is_refused_before_a_run_folder_is_made(tmp_path, capsys):
    """A head protocol wrong for its code (one-spike keys' write window shorter than the code's
    window; the regular keys' two-phase write on an odd number of table bins) stops the experiment
    with one line and no run folder, before any sentence is simulated."""
    from experiments import spiking_minilm as experiment

    for argv in (["--set", "head.t_learn=5*ms"], ["--key-code", "regular", "--set", "head.t_learn=25*ms"]):
        with pytest.raises(SystemExit):
            experiment.main(["--text", "Stocks fell.", "--out", str(tmp_path), "--quiet", *argv])
        assert "error: t_learn must" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
