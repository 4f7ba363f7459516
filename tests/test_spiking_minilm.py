"""all-MiniLM-L6-v2 with stages on spikes (transformer.spiking, experiments.spiking_minilm) against the NumPy model."""

import json
from dataclasses import replace

import numpy as np
import pytest

from analysis.attention import relative_error, softmax_attention
from circuits.runners import CircuitPool
from experiments import spiking_minilm as experiment
from models.feedforward import gelu
from transformer import forward, minilm
from transformer.bill import stage_macs
from transformer.configuration import RunConfig
from transformer.executors import ALL_STAGES, SpikingExecutor, parse_codes, parse_stages
from transformer.spiking import attention_maps, block_parameters, run_metrics, sentence_records, spiking_minilm

TEXT = "A man plays a guitar."
#: One layer, two heads and the first 64 FFN units on spikes, with small populations and coarse
#: clocks (runtime device); every stage on spikes.
OPTIONS = {"head": {"neurons_per_key": 8, "neurons_per_value": 8},
           "ffn": {"neurons_per_unit": 16, "off_neurons_per_unit": 2}}
PARAMS = {"linear.dt": "1*ms", "linear.dt_enc": "0.5*ms", "linear.lin_enc_gain": "100*Hz"}


def metrics_of(run):
    return run_metrics(sentence_records(run), run.stages, run.wall_seconds)


def test_without_spiking_stages_the_pass_is_the_numpy_model(model):
    with CircuitPool() as pool:
        run = spiking_minilm([TEXT, "Stocks fell."], (), pool=pool)
    for spiking, text in zip(run.spiking, (TEXT, "Stocks fell.")):
        np.testing.assert_allclose(spiking.embedding, forward.sentence_embedding(text), atol=1e-12)
    metrics = metrics_of(run)
    assert metrics["bill"]["synaptic_events"] == 0 and metrics["bill"]["fraction_on_synapses"] == 0
    assert metrics["bill"]["numpy_macs"] == metrics["bill"]["model_macs"]


@pytest.fixture(scope="module")
def small_run(model):
    with CircuitPool() as pool:
        return spiking_minilm([TEXT], ALL_STAGES, [0], pool=pool, heads=(0, 1), ffn_units=64,
                              params=block_parameters(PARAMS, head_code="rate"), options=OPTIONS, map_layer=0,
                              codes=parse_codes("rate"))


def test_every_stage_of_one_layer_against_the_numpy_model(small_run):
    """Each spiking stage within its noise budget against NumPy on the same inputs: the linear
    stage's error is its encoders' quantisation, the heads' and the GELU layer's their Poisson
    bounds; W_O and W_2 on synapses driven by the value and GELU neurons are exactly the weight
    matrices applied to those neurons' decoded outputs (no noise of their own)."""
    sentence, reference = small_run.spiking[0], small_run.reference[0]
    layer, ref = sentence.layers[0], reference.layers[0]
    stages = {**layer.attention.stages, **layer.ffn.stages}
    assert all(stages[s]["on"] == "spikes" for s in ALL_STAGES)
    qkv = stages["qkv"]
    assert qkv["rel_err_spike_vs_product"] / qkv["quantisation_bound"] < qkv["bound_tolerance_ratio"]
    np.testing.assert_allclose(layer.attention.parts["qkv"], ref.attention.parts["qkv"],
                               atol=20 * np.sqrt(qkv["quantisation_bound"] ** 2 * np.mean(ref.attention.parts["qkv"] ** 2)))
    for head in stages["attention"]["heads"]:
        assert head["spike_vs_rate_over_bound"] < head["bound_tolerance_ratio"]
    ffn = stages["ffn"]
    assert ffn["units"] == 64 and ffn["rel_err_spike_vs_gelu"] / ffn["poisson_bound"] < ffn["bound_tolerance_ratio"]

    w = minilm.layer_weights(0)
    context = minilm.concat_heads(layer.attention.parts["context"])
    np.testing.assert_allclose(layer.attention.output, context @ w["w_o"].T + w["b_o"], rtol=1e-9, atol=1e-9)
    activations = layer.ffn.parts["activations"]
    np.testing.assert_allclose(layer.ffn.output, activations @ w["w_2"].T + w["b_2"], rtol=1e-9, atol=1e-9)
    # The NumPy heads and units see the spiking q, k, v and h: exactly the model's arithmetic on them.
    q, k, v = minilm.split_heads(layer.attention.parts["qkv"])
    np.testing.assert_allclose(layer.attention.parts["context"][2:], minilm.attention_context(q, k, v)[2:], atol=1e-12)
    np.testing.assert_allclose(activations[:, 64:], gelu(layer.h @ w["w_1"].T + w["b_1"])[:, 64:], atol=1e-12)
    assert all(not any(r["on"] == "spikes" for r in {**step.attention.stages, **step.ffn.stages}.values())
               for step in sentence.layers[1:])


def test_the_bill_counts_what_ran(small_run, model):
    """Layer 0: every NumPy MAC accounted (ten NumPy heads' cores and W_O columns, the other 1472
    FFN units' W_1 and W_2 parts), events only in spiking stages, energy by the field's constants."""
    metrics = metrics_of(small_run)
    n = len(small_run.spiking[0].tokens)
    layer0 = metrics["bill"]["layers"]["0"]
    numpy_macs = (stage_macs("attention", n, model) * 10 // 12 + n * 10 * 32 * 384 + 2 * n * 384 * (1536 - 64))
    assert layer0["numpy_macs"] == numpy_macs
    assert layer0["model_macs"] == sum(stage_macs(s, n, model) for s in ALL_STAGES)
    for key in ("synaptic_events", "numpy_macs", "fraction_on_synapses", "energy_joules", "energy_joules_conventional"):
        assert key in metrics["bill"] and key in layer0
    assert layer0["synaptic_events"] > 0 and layer0["astrocyte_updates"] > 0
    assert all(metrics["bill"]["layers"][str(k)]["synaptic_events"] == 0 for k in range(1, 6))
    assert metrics["bill"]["energy_joules"] == pytest.approx(
        0.9e-12 * (metrics["bill"]["synaptic_events"] + metrics["bill"]["astrocyte_updates"])
        + 4.6e-12 * metrics["bill"]["numpy_macs"])


def test_the_heads_see_the_model_projections_of_the_hidden_state(small_run):
    (first, second) = attention_maps(small_run)
    q, k, _ = minilm.split_heads(small_run.spiking[0].layers[0].attention.parts["qkv"])
    n = len(small_run.spiking[0].tokens)
    true_map = softmax_attention(q[0], k[0], np.eye(n), minilm.head_scale())
    np.testing.assert_allclose(first["true"], true_map)
    assert first["spike"].shape == true_map.shape
    np.testing.assert_allclose(first["spike"].sum(axis=1), 1.0)


#: The latency code's coarse clock for the runtime device: 40 levels of B = 1.2.
LATENCY_PARAMS = {f"{block}.{name}": value for block in ("linear", "ffn")
                  for name, value in (("dt", "1*ms"), ("dt_enc", "0.1*ms"), ("t_code", "4*ms"), ("code_base", 1.2))}


@pytest.fixture(scope="module")
def latency_run(model):
    """Layer 0 on the latency code but for its two spiking heads (rate-coded): W_QKV, W_O (on
    encoders of the heads' decoded context), and the first 64 FFN units with W_2 on their GELU
    neurons."""
    with CircuitPool() as pool:
        return spiking_minilm([TEXT], ALL_STAGES, [0], pool=pool, heads=(0, 1), ffn_units=64,
                              params=block_parameters(LATENCY_PARAMS, head_code="rate"), options=OPTIONS,
                              codes=parse_codes("attention=rate"))


#: The latency heads' coarse protocol for the runtime device (tests/test_latency_head.py's).
LATENCY_HEAD_PARAMS = {f"head.{name}": value for name, value in (
    ("dt", "0.5*ms"), ("dt_enc", "0.1*ms"), ("t_code", "4*ms"), ("code_base", 1.2), ("t_settle", "4*ms"),
    ("t_learn", "8*ms"), ("t_read", "54*ms"), ("tau_read", "10*ms"), ("R_key_target", "1000*Hz"))}


@pytest.fixture(scope="module")
def latency_heads_run(model):
    """Layer 0's first two heads on the latency code, W_O on their value neurons."""
    with CircuitPool() as pool:
        return spiking_minilm([TEXT], ("attention", "attn_out"), [0], pool=pool, heads=(0, 1),
                              params=block_parameters(LATENCY_HEAD_PARAMS, head_code="latency"),
                              codes=parse_codes("latency"), map_layer=0)


def test_latency_heads_drive_w_o_with_one_spike_per_output_value(latency_heads_run):
    """W_O on the latency heads' value neurons is W_O times the decoded context exactly (the NumPy
    heads' columns in NumPy), one event per value-neuron spike and output unit, and at most one
    value-neuron spike per output value; the heads' ranges are the calibrated ones
    (transformer.calibration), not read off the sentence. (Their accuracy against their budget:
    tests/test_latency_head.py.)"""
    layer = latency_heads_run.spiking[0].layers[0]
    heads, out = layer.attention.stages["attention"], layer.attention.stages["attn_out"]
    w = minilm.layer_weights(0)
    context = minilm.concat_heads(layer.attention.parts["context"])
    np.testing.assert_allclose(layer.attention.output, context @ w["w_o"].T + w["b_o"], rtol=1e-9, atol=1e-9)
    value_spikes = heads["spikes"]["value_neurons"]
    assert value_spikes <= 2 * 32 * len(context) and out["synaptic_events"] == value_spikes * 384
    circuit = latency_heads_run.maps[0][0].circuit
    assert circuit.config["y_top"] == minilm.code_range(0, "attn_out")
    assert circuit.config["x_top"] == minilm.code_range(0, "attention_qk")


def test_latency_code_stages_one_event_per_mac_within_their_budget(latency_run, model):
    """On the latency code W_QKV delivers one synaptic event per nonzero input value and output
    (events = inputs above the code's lowest level x 1152, at most the stage's MACs), within its
    budget; W_O, in a code other than the heads', is a linear stage of its own on encoders of the
    heads' decoded context (one event per coded context value and output), and the output is W_O
    times what the code delivers of that context; the ranges are the calibrated ones
    (transformer.calibration), not read off the sentence."""
    from analysis.codes import latency_decode, latency_level

    def coded(x, stage):                # values at one of the 40 levels of B = 1.2: one spike each
        return int(np.sum(latency_level(x, minilm.code_range(0, stage), 1.2) < 40))

    layer, ref = latency_run.spiking[0].layers[0], latency_run.reference[0].layers[0]
    stages = layer.attention.stages
    n = len(latency_run.spiking[0].tokens)
    qkv, out = stages["qkv"], stages["attn_out"]
    assert qkv["synaptic_events"] == coded(ref.input, "qkv") * 3 * 384 <= stage_macs("qkv", n, model)
    assert qkv["rel_err_spike_vs_product"] / qkv["quantisation_bound"] < qkv["bound_tolerance_ratio"]
    context = minilm.concat_heads(layer.attention.parts["context"])
    assert out["on"] == "spikes" and out["synaptic_events"] == coded(context, "attn_out") * 384
    delivered = latency_decode(context, minilm.code_range(0, "attn_out"), 1.2, 40)
    w = minilm.layer_weights(0)
    np.testing.assert_allclose(layer.attention.output, delivered @ w["w_o"].T + w["b_o"], rtol=1e-9, atol=1e-9)
    # The heads' value neurons drive nothing: their events are the heads' own (no W_O synapses there).
    assert not any(name.startswith("out_synapses") for r in latency_run.maps.values() for h in r.values()
                   for name in h.circuit.synaptic_events())


def test_latency_code_ffn_drives_w2_with_one_spike_per_activation(latency_run):
    """The FFN's 64 spiking units on the latency code: their decoded activations within the block's
    budget, W_2 on their GELU neurons is W_2 times those activations exactly (the other units
    NumPy), and each coded input value and activation costs one event per target."""
    from analysis.codes import latency_level

    layer = latency_run.spiking[0].layers[0]
    ffn, out = layer.ffn.stages["ffn"], layer.ffn.stages["ffn_out"]
    assert ffn["on"] == "spikes" and out["on"] == "spikes"
    assert ffn["rel_err_spike_vs_gelu"] / ffn["poisson_bound"] < ffn["bound_tolerance_ratio"]
    w = minilm.layer_weights(0)
    activations = layer.ffn.parts["activations"]
    np.testing.assert_allclose(layer.ffn.output, activations @ w["w_2"].T + w["b_2"], rtol=1e-9, atol=1e-9)
    coded_inputs = int(np.sum(latency_level(layer.h, minilm.code_range(0, "ffn"), 1.2) < 40))
    gelu_spikes = sum(n for pop, n in ffn["spikes"].items() if pop.startswith("gelu"))
    assert gelu_spikes <= 2 * 64 * len(layer.h)             # at most one per unit, token and polarity
    assert ffn["synaptic_events"] == coded_inputs * 64 and out["synaptic_events"] == gelu_spikes * 384


@pytest.mark.parametrize("text, expected", [
    ("rate", {s: "rate" for s in ALL_STAGES}),
    ("latency", {s: "latency" for s in ALL_STAGES}),
    ("attention=rate,ffn=rate", {**{s: "latency" for s in ALL_STAGES}, "attention": "rate", "ffn": "rate"}),
    ("qkv=rate", {**{s: "latency" for s in ALL_STAGES}, "qkv": "rate"}),
])
def test_parse_codes(text, expected):
    assert parse_codes(text) == expected


@pytest.mark.parametrize("text, message", [("phase", "--code takes"), ("qkv=latency,bogus=rate", "--code takes"),
                                           ("qkv=", "--code takes")])
def test_bad_codes_fail_with_one_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_codes(text)


CORPUS = [TEXT, "Stocks fell.", "The cat sat."]
#: A corpus run's configuration small enough for the runtime device (one rate-coded head of layer 0).
SMALL_CONFIG = RunConfig(texts=CORPUS, stages=("attention",), layers=(0,), map_layer=0, seed=0, spike_seed=None,
                         batch=1, device="runtime", threads=0, codes={s: "rate" for s in ALL_STAGES},
                         options={"head": OPTIONS["head"]}, heads=(0,))


def test_corpus_run_folder_and_metrics(model, tmp_path):
    """Each sentence is written as it finishes; the summary is assembled from those files."""
    config = replace(SMALL_CONFIG, texts=CORPUS[:2], stages=("qkv", "attention", "attn_out"), overrides=PARAMS)
    lines = []
    with CircuitPool() as pool:
        experiment.run_corpus(tmp_path, config, pool, lines.append)
    assert experiment.finished(tmp_path, 2) == {0, 1}
    assert any(line.startswith("1/2 sentences done") and "heads per second" in line for line in lines)
    metrics = experiment.write_summary(tmp_path, config)
    assert {"embeddings.npz", "metrics.json", "layers.png", "attention_maps.png", "bill.png", "similarity.png"} <= \
        {p.name for p in tmp_path.iterdir()}
    with np.load(tmp_path / "embeddings.npz") as data:
        assert data["spiking"].shape == data["reference"].shape == (2, 384)
        np.testing.assert_allclose(data["reference"][1], forward.sentence_embedding(CORPUS[1]), atol=1e-12)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["summary"]["n_spiking_heads"] == 2 and saved["summary"]["n_spiking_ffn_blocks"] == 0
    assert saved["bill"]["synaptic_events"] == metrics["bill"]["synaptic_events"] > 0
    assert [len(s["layers"]) for s in saved["sentences"]] == [6, 6]
    assert saved["bill"]["layers"]["0"]["stages"]["qkv"]["synaptic_events"] > 0


def without_times(record):
    """A record without its wall times (which differ between any two runs)."""
    if isinstance(record, dict):
        return {k: without_times(v) for k, v in record.items() if k != "wall_seconds"}
    if isinstance(record, list):
        return [without_times(v) for v in record]
    return record


def test_a_killed_run_resumes_to_the_same_embeddings(model, tmp_path):
    """Kill a run after its first sentence; --resume keeps that sentence's file untouched, computes
    only the others, and gives the embeddings of an uninterrupted run, bit for bit."""
    config = SMALL_CONFIG
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    with CircuitPool() as pool:
        experiment.run_corpus(whole, config, pool)

        def kill(line):
            if line.startswith("1/3 sentences done"):
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            experiment.run_corpus(killed, config, pool, kill)
        assert len(experiment.finished(killed, 3)) == 1
        (first,) = experiment.finished(killed, 3)
        kept = experiment.sentence_path(killed, first).stat().st_mtime_ns
        lines = []
        experiment.run_corpus(killed, config, pool, lines.append)
    assert experiment.sentence_path(killed, first).stat().st_mtime_ns == kept
    assert [line for line in lines if "sentences done" in line][0].startswith("2/3 sentences done")
    for n in range(3):
        a, b = (json.loads(experiment.sentence_path(d, n).read_text()) for d in (whole, killed))
        assert a["embedding"] == b["embedding"] and without_times(a["layers"]) == without_times(b["layers"])


def test_peak_memory_does_not_grow_with_the_corpus(model, tmp_path):
    """Sentences are dropped once written: the traced peak of a 12-sentence run (NumPy stages, so
    the pass itself is what is measured; the model's caches warmed first) is within 20 % of a
    3-sentence run's."""
    import tracemalloc

    peaks = []
    for n, folder in ((1, tmp_path / "warm-up"), (3, tmp_path / "a"), (12, tmp_path / "b")):   # warm-up: caches
        folder.mkdir()
        config = replace(SMALL_CONFIG, texts=(CORPUS * 4)[:n], stages=())
        with CircuitPool() as pool:
            tracemalloc.start()
            experiment.run_corpus(folder, config, pool)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert peaks[2] < 1.2 * peaks[1]


def test_resume_refuses_a_folder_without_a_run(model, tmp_path, capsys):
    with pytest.raises(SystemExit):
        experiment.main(["--resume", str(tmp_path), "--quiet"])
    assert "no spiking_minilm run there" in capsys.readouterr().err


def test_batches_keep_one_length_together(model):
    texts = ["Hi.", "A man plays a guitar.", "Hello.", "A dog runs in a park."]
    lengths = [len(minilm.tokenize(t)[0]) for t in texts]
    for batch in experiment.batches(texts, range(4), 3):
        assert len({lengths[n] for n in batch}) == 1 and len(batch) <= 3


def test_parameters_reach_every_block(model):
    """``BLOCK.NAME`` overrides land in that block's circuits, unit-checked; params.json keeps them."""
    params = block_parameters({"ffn.tau_m": "5*ms", "head.tau_read": "30*ms", "linear.t_count": "50*ms"},
                              head_code="rate")
    assert float(params["ffn"]["tau_m"]) == pytest.approx(5e-3)
    assert float(params["head"]["tau_read"]) == pytest.approx(30e-3)
    (reference,) = forward.forward([TEXT])
    with CircuitPool() as pool:
        executor = SpikingExecutor(pool, ALL_STAGES, params=params, options=OPTIONS, codes=parse_codes("rate"))
        step = reference.layers[1]
        (ffn,) = executor.ffn_specs(1, 0, step.h)[:1]
        head = executor.head_specs(1, 0, *minilm.split_heads(step.attention.parts["qkv"]))[0]
        (linear,) = executor.linear_specs("qkv", 1, 0, step.input, *[minilm.layer_weights(1)[n] for n in ("w_qkv", "b_qkv")])
    assert float(ffn.params["tau_m"]) == pytest.approx(5e-3)
    assert float(head.params["tau_read"]) == pytest.approx(30e-3) and float(head.params["dt"]) == pytest.approx(0.5e-3)
    assert float(linear.params["t_count"]) == pytest.approx(0.05)


@pytest.mark.parametrize("argv, message", [
    (["--text", "Hi.", "--spiking", "mlp"], "--spiking takes"),
    (["--text", "Hi.", "--layers", "0,9"], "--layers must name layers in 0-5"),
    (["--text", "Hi.", "--layers", "one"], "--layers takes"),
    (["--text", "   "], "no sentence given"),
    (["--texts", "/nonexistent/file.txt"], "--texts /nonexistent/file.txt: cannot read it (No such file"),
    (["--text", "Hi.", "--set", "tau_m=5*ms"], "must name its block"),
    (["--text", "Hi.", "--set", "mlp.tau_m=5*ms"], "must name its block"),
    (["--text", "Hi.", "--set", "ffn.tau_m=5*mV"], "ffn: "),
    (["--text", "Hi.", "--set", "ffn.tau_x=5*ms"], "tau_x"),
    (["--text", "Hi.", "--set", "head.dt=0.1*ms", "--set", "head.R_key_target=1e5*Hz"], "R_key_target"),
    (["--text", "Hi.", "--astrocyte", "gchi", "--set", "head.tau_ca=5*second"], "tau_ca"),
    (["--text", "Hi.", "--astrocyte", "glia"], "--astrocyte"),
    (["--text", "Hi.", "--export", "nwb"], "--export and --keep-all-spikes are not available"),
    (["--text", "Hi.", "--keep-all-spikes"], "--export and --keep-all-spikes are not available"),
])
def test_bad_command_lines_fail_with_one_line_before_simulating(model, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(argv + ["--quiet"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_stage_names():
    assert parse_stages("all") == ALL_STAGES and parse_stages("none") == ()
    assert parse_stages("ffn_out, qkv") == ("qkv", "ffn_out")


@pytest.mark.slow
def test_the_whole_model_on_synapses_keeps_the_sentence_embedding(model, tmp_path):
    """All six layers, every stage on spikes, compiled, over two worker processes: the sentence
    embedding's cosine to the NumPy model's is at least 0.99 and every weight matrix ran on synapses."""
    run_dir = experiment.main(["--text", "A man is playing a guitar on the stage.", "--spiking", "all",
                               "--out", str(tmp_path), "--quiet", "--no-figures"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["summary"]["n_spiking_heads"] == 72 and metrics["summary"]["n_spiking_ffn_blocks"] == 6
    assert metrics["summary"]["cosine_min"] >= 0.99
    assert metrics["bill"]["fraction_on_synapses"] == pytest.approx(1.0)
