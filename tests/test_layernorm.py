"""LayerNorm by an astrocyte (circuits.layernorm): against NumPy LayerNorm, its budget and its ablations."""

import numpy as np
import pytest
from brian2 import second

from analysis import layernorm as reference
from analysis.codes import latency_decode, latency_level, latency_relative_variance
from circuits import layernorm as stage
from circuits.codes import SpikeTrain
from circuits.layernorm import build_layernorm_circuit, layernorm_spec
from models.parameters import ParameterError
from transformer import bill

#: A coarse encoder clock keeps the runtime (numpy) device quick: 40 levels of B = 1.2 (range 1.2^39 ~ 1200).
FAST = {"dt": "1*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2}
BASE, LEVELS = 1.2, 40


def synthetic(seed=0, n_tokens=4, n_units=32, dim=12):
    """Sources as a LayerNorm meets them: a residual stream with heavy tails (Student t, 3 degrees of
    freedom: a few outlier units, so the squares' error matters) and a per-token offset (a mean
    comparable to the spread, so the centring's error matters) through diag(gamma), and a block's
    output through a dense W; a bias."""
    rng = np.random.default_rng(seed)
    residual = 1.5 * rng.standard_t(3, size=(n_tokens, n_units)) + 2.0 * rng.normal(size=(n_tokens, 1))
    block = rng.normal(size=(n_tokens, dim))
    gamma = rng.uniform(0.5, 1.5, size=n_units)
    w = rng.normal(size=(n_units, dim)) / np.sqrt(dim)
    bias = 0.3 * rng.normal(size=n_units)
    return [(residual, np.diag(gamma)), (block, w)], bias


def train_of(u, top, base=BASE, levels=LEVELS) -> SpikeTrain:
    """The latency spikes of values ``u`` (tokens x D) at top ``top``, from NumPy's quantiser."""
    k = latency_level(u, top, base)
    token, dim = np.nonzero(k < levels)
    channel = 2 * dim + (u[token, dim] < 0)
    return SpikeTrain(token, channel, k[token, dim].astype(int), len(u), u.shape[1], float(top), base, levels)


@pytest.fixture(scope="module")
def run():
    return layernorm_spec(*synthetic(), params=FAST).simulate()


# ----------------------------------------------------------------------------- what it computes


def test_each_step_delivers_what_its_code_carries(run):
    """The output spikes carry exactly NumPy's chain of latency codes (analysis.layernorm.delivered,
    an independent quantiser): the interneuron's mean, the squares the astrocyte sums and the
    deviations over sqrt(S); the emitted train decodes to the same values."""
    c = run.circuit
    chain = reference.delivered(c.inputs["z"], 1e-12, c.config["mu_top"], c.config["d_top"], c.config["n_top"],
                                BASE, LEVELS)
    np.testing.assert_allclose(c.signal(), chain["signal"], rtol=1e-12)
    np.testing.assert_allclose(run.n_spike, chain["n"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(run.train.values(), run.n_spike)
    assert run.train.x_top == pytest.approx(np.sqrt(32 * BASE))
    # The delivered input: the sources' codes through their weights, plus the bias.
    (residual, diag), (block, w) = synthetic()[0]
    tops = c.config["x_top"]
    z = (latency_decode(residual, tops[0], BASE, LEVELS) @ diag.T + latency_decode(block, tops[1], BASE, LEVELS) @ w.T
         + synthetic()[1])
    np.testing.assert_allclose(c.inputs["z"], z, rtol=1e-12)


def test_error_against_layernorm_within_its_budget():
    """Over seeds, the error against NumPy LayerNorm of the delivered input stays within the
    chi-square tolerance of the budget (centring, squares and output code; the tolerance from the
    covariance's effective degrees of freedom), and the budget is not loose: the mean ratio is near
    one. Each of the budget's three parts carries weight on these tokens."""
    ratios = []
    for seed in range(5):
        result = layernorm_spec(*synthetic(seed), params=FAST).simulate()
        metrics, ref = result.metrics, result.reference
        assert metrics["spike_vs_rate_over_budget"] < metrics["budget_tolerance_ratio"], (seed, metrics)
        np.testing.assert_allclose(result.n_rate, result.n_ideal, rtol=1e-12)   # a working astrocyte: LayerNorm
        ratios.append(metrics["spike_vs_rate_over_budget"])
        parts = [ref[f"var_{p}"].sum() for p in ("centre", "square", "output")]
        assert min(parts) > 0.05 * sum(parts), parts
    assert 0.6 < np.mean(ratios) < 1.4, ratios


def test_budget_parts_match_a_monte_carlo_of_the_codes():
    """The budget's algebra (analysis.layernorm.layernorm_budget), part by part, against a Monte Carlo
    of the model it assumes: every coded value delivered as x B^s with s uniform in [-1/2, 1/2) and
    independent (the interneuron's mean, each squared deviation's |d_j|, each output, each coded
    input), the rest of the chain exact and non-linear. Each part's mean squared error over 3000
    draws, and all parts' together, is its variance summed over the outputs, within four standard
    errors of the draws' mean (1.2 % for the centring and the squares, 0.3-0.5 % for the others)
    plus 3 % for the second order the delta method leaves out (measured over seeds: 0-3 %)."""

    def agrees(squared, expected):
        return abs(squared.mean() - expected) <= 4 * squared.std() / np.sqrt(len(squared)) + 0.03 * expected

    sources, bias = synthetic()
    (residual, diag), (block, w) = sources
    z = residual @ diag.T + block @ w.T + bias
    eps, n_draws, rng = 1e-12, 3000, np.random.default_rng(1)
    budget = reference.layernorm_budget(z, eps, 1e9, 1e9, 1e9, BASE, 10 ** 9,
                                        inputs=[(0.0 * residual, diag), (0.0 * block, w)])
    n_rate = budget["n_rate"]
    mu = z.mean(axis=1, keepdims=True)

    def jitter(shape):
        return BASE ** rng.uniform(-0.5, 0.5, size=(n_draws, *shape))

    d = z - mu * jitter(mu.shape)                                                  # centring
    centre = d / np.sqrt(np.mean(d ** 2, axis=2, keepdims=True) + eps)
    signal = np.mean((z - mu) ** 2 * jitter(z.shape) ** 2, axis=2) + eps           # squares
    square = (z - mu) / np.sqrt(signal)[..., None]
    output = n_rate * jitter(z.shape)                                              # the output code
    d = z - mu * jitter(mu.shape)                                                  # all three at once
    together = d / np.sqrt(np.mean(d ** 2 * jitter(z.shape) ** 2, axis=2, keepdims=True) + eps) * jitter(z.shape)
    for name, draws in (("centre", centre), ("square", square), ("output", output), ("", together)):
        expected = budget[f"var_{name}" if name else "variance"].sum()
        assert agrees(np.sum((draws - n_rate) ** 2, axis=(1, 2)), expected), name
    # Coded inputs through LayerNorm's Jacobian: the same with each input value jittered.
    var_u = latency_relative_variance(BASE)
    budget = reference.layernorm_budget(z, eps, 1e9, 1e9, 1e9, BASE, 10 ** 9,
                                        inputs=[(var_u * residual ** 2, diag), (var_u * block ** 2, w)])
    inputs = (residual * jitter(residual.shape)) @ diag.T + (block * jitter(block.shape)) @ w.T + bias
    assert agrees(np.sum((reference.layernorm(inputs, eps) - n_rate) ** 2, axis=(1, 2)), budget["var_input"].sum())


def test_replayed_train_gives_the_float_inputs_output_bit_for_bit():
    """A source given as a SpikeTrain (spikes another stage emitted) replays the same spikes as the
    float values encoded with the same top: the output train, the astrocyte's signal and the output
    values are equal bit for bit."""
    sources, bias = synthetic(1)
    (residual, diag), block = sources
    top = float(np.abs(residual).max() * 1.3)
    from_values = layernorm_spec(sources, bias, x_top=[top, None], params=FAST).simulate()
    replayed = layernorm_spec([(train_of(residual, top), diag), block], bias, params=FAST).simulate()
    assert replayed.circuit.config["replayed"] == (True, False)
    for name in ("token", "channel", "step"):
        np.testing.assert_array_equal(getattr(replayed.train, name), getattr(from_values.train, name))
    np.testing.assert_array_equal(replayed.n_spike, from_values.n_spike)
    np.testing.assert_array_equal(replayed.circuit.signal(), from_values.circuit.signal())
    # The train's own quantisation belongs to the stage that emitted it: no input term for it.
    assert replayed.reference["var_input"].sum() < from_values.reference["var_input"].sum()


def test_padded_stage_computes_what_the_unpadded_one_does(run):
    """Padded to 6 tokens, the stage gives the unpadded output; nothing fires in the empty tokens."""
    padded = layernorm_spec(*synthetic(), params=FAST, pad_to=6).simulate()
    np.testing.assert_array_equal(padded.n_spike, run.n_spike)
    assert padded.circuit.population_spikes() == run.circuit.population_spikes()
    assert padded.circuit.config["n_tokens"] == 6 and padded.n_spike.shape == (4, 32)


# ------------------------------------------------------------------------ wiring and events


def test_a_diagonal_source_builds_one_synapse_per_channel():
    """The residual's diag(gamma) is wired where it is non-zero: 2H synapses (one per ON/OFF
    channel), not 2H^2; the dense block's W all 2D x H; the interneuron one per channel."""
    sources, bias = synthetic(n_units=32, dim=12)
    circuit = build_layernorm_circuit(sources, bias, params=FAST)
    assert len(circuit.groups["source0_synapses"]) == 2 * 32
    assert len(circuit.groups["source1_synapses"]) == 2 * 12 * 32
    assert len(circuit.groups["source0_interneuron_synapses"]) == 2 * 32
    assert len(circuit.groups["centre_synapses"]) == 2 * 32 and len(circuit.groups["astro_processes"]) == 2 * 32
    # The pattern is structure: another diagonal is the same circuit, a dense residual another.
    again = build_layernorm_circuit([(sources[0][0], 2 * sources[0][1]), sources[1]], bias, params=FAST)
    dense = build_layernorm_circuit([(sources[0][0], sources[0][1] + 0.01), sources[1]], bias, params=FAST)
    assert again.config["wiring"] == circuit.config["wiring"] != dense.config["wiring"]
    for built in (circuit, again, dense):              # built to be counted, not simulated
        built.network.run(0 * second, namespace={})


def test_events_per_token(run):
    """Counted from the run (circuit.synaptic_events): the interneuron's spike reaches the H units
    once per token (H events), the astrocyte takes one update per square spike, every input spike one
    event per non-zero weight of its channel, and each unit's output pair fires once per token."""
    c, n_tokens, n_units = run.circuit, 4, 32
    events, spikes = c.synaptic_events(), c.population_spikes()
    chain = reference.delivered(c.inputs["z"], 1e-12, c.config["mu_top"], c.config["d_top"], c.config["n_top"],
                                BASE, LEVELS)
    assert spikes["centre_neurons"] == n_tokens and events["centre_synapses"] == n_tokens * n_units
    assert events["astro_processes"] == spikes["square_neurons"] == np.count_nonzero(chain["d_hat"])
    assert spikes["output_neurons"] == np.count_nonzero(run.n_spike)
    assert events["source0_synapses"] == spikes["source0"] and events["source1_synapses"] == spikes["source1"] * n_units
    assert events["source0_interneuron_synapses"] + events["source1_interneuron_synapses"] == (
        spikes["source0"] + spikes["source1"])
    assert run.metrics["astrocyte_updates"] == events["astro_processes"]
    tally = bill.circuit_tally(c)                            # the model's bill counts the processes' updates
    assert tally["astrocyte_updates"] == events["astro_processes"]
    assert tally["synaptic_events"] == sum(events.values()) - events["astro_processes"]


# --------------------------------------------------------------------------------- ablations


def ablated(monkeypatch, name, value, seed=0):
    monkeypatch.setattr(stage, name, value)
    return layernorm_spec(*synthetic(seed), params=FAST).simulate().metrics


def test_ablation_without_the_centring_spike(monkeypatch):
    """Without the interneuron's spike the units keep the mean: far outside the budget."""
    metrics = ablated(monkeypatch, "CENTRE_START", stage.CENTRE_START.replace("centre_window(t) *", "0 *"))
    assert metrics["spike_vs_rate_over_budget"] > 3 * metrics["budget_tolerance_ratio"], metrics


def test_ablation_without_the_astrocytes_gain(monkeypatch):
    """Output neurons that do not divide by sqrt(S) emit the deviations, not LayerNorm."""
    metrics = ablated(monkeypatch, "OUTPUT_START", stage.OUTPUT_START.replace(" / sqrt(S)", ""))
    assert metrics["spike_vs_rate_over_budget"] > 3 * metrics["budget_tolerance_ratio"], metrics


def test_ablation_processes_that_read_the_efficacy_once(monkeypatch):
    """Processes that add the efficacy rather than its square integrate mean |d|, not sigma^2."""
    metrics = ablated(monkeypatch, "PROCESS_ON_PRE", stage.PROCESS_ON_PRE.replace("efficacy_pre ** 2", "efficacy_pre"))
    assert metrics["spike_vs_rate_over_budget"] > 3 * metrics["budget_tolerance_ratio"], metrics


# ----------------------------------------------------------------------------- real tokens


@pytest.fixture(scope="module")
def minilm_layer0(model):
    """Layer 0 of all-MiniLM-L6-v2 on a 12-token sentence: z = input + attention output (both
    residual branches through the identity: 2H synapses each), the model's h and its gamma, beta."""
    from transformer import minilm
    from transformer.forward import forward

    (sentence,) = forward(["A man is playing a guitar on the stage."])
    layer, w = sentence.layers[0], minilm.layer_weights(0)
    n_units = layer.input.shape[1]
    sources = [(layer.input, np.eye(n_units)), (layer.attention.output, np.eye(n_units))]
    runs = {block: layernorm_spec(sources, np.zeros(n_units), block_astrocyte=block).simulate()
            for block in (False, True)}
    return {"runs": runs, "h": layer.h, "gamma": w["ln1_gamma"], "beta": w["ln1_beta"],
            "z": layer.input + layer.attention.output}


def test_minilm_layer0_layernorm_within_budget(minilm_layer0):
    """On real hidden states the output spikes reproduce the model's LayerNorm h: against LayerNorm
    of the delivered input within the stage's budget, and against the model's own h (as n = (h -
    beta) / gamma) within the budget with the inputs' code carried through LayerNorm's Jacobian;
    y = gamma n + beta is h up to those errors."""
    result, h, gamma, beta = (minilm_layer0[k] for k in ("runs", "h", "gamma", "beta"))
    result = result[False]
    metrics = result.metrics
    assert metrics["spike_vs_rate_over_budget"] < metrics["budget_tolerance_ratio"], metrics
    model_n = (h - beta) / gamma
    np.testing.assert_allclose(result.reference["n_exact"], model_n, atol=1e-9)
    ref = result.reference
    error = reference.relative_error(result.n_spike, model_n)
    budget = np.sqrt((ref["variance"] + ref["var_input"]).sum()) / np.linalg.norm(model_n)
    assert error < ref["tolerance_with_input"] * budget, (error, budget)
    y = result.y(gamma, beta)
    np.testing.assert_allclose(y - h, gamma * (result.n_spike - model_n), atol=1e-9)


def test_minilm_gain_tracks_inverse_sigma_and_the_blocked_astrocyte_does_not(minilm_layer0):
    """Per token the astrocyte's gain S^(-1/2) is 1/sigma within the squares' code, B^(+-1/2) at worst
    (each squared deviation within B^(+-1)), widened by the interneuron's error (S holds
    sigma^2 + delta_mu^2). Blocked (S held at its mean over the tokens) the gain is one number: the
    tokens' spread of 1/sigma is its log error and the output's error against LayerNorm grows
    several-fold, as NumPy predicts from the held S (the blocked circuit's own rate ideal, within its
    budget)."""
    runs = minilm_layer0["runs"]
    working, blocked = runs[False], runs[True]
    c = working.circuit
    chain = reference.delivered(c.inputs["z"], 1e-12, c.config["mu_top"], c.config["d_top"], c.config["n_top"],
                                1.05, c.config["levels"])
    gap = np.log(working.gain / working.inverse_sigma)
    sigma2 = 1 / working.inverse_sigma ** 2
    bound = 0.5 * np.log(1.05) + 0.5 * np.log1p((chain["mu_hat"] - chain["mu"]) ** 2 / sigma2)
    assert np.all(np.abs(gap) <= bound), (gap, bound)
    spread = np.std(np.log(working.inverse_sigma))
    assert working.metrics["gain_log_rms"] < 0.1 * spread
    assert np.ptp(blocked.gain) == 0
    np.testing.assert_allclose(blocked.gain, blocked.circuit.signal().mean() ** -0.5, rtol=1e-9)
    error, error_blocked = (r.metrics["rel_err_spike_vs_layernorm"] for r in (working, blocked))
    assert error_blocked > 5 * error, (error_blocked, error)
    assert blocked.metrics["spike_vs_rate_over_budget"] < blocked.metrics["budget_tolerance_ratio"]
    predicted = reference.relative_error(blocked.n_rate, blocked.n_ideal)
    assert error_blocked == pytest.approx(predicted, rel=0.1)


# ------------------------------------------------------------------------------- bad input


def _sources():
    return synthetic()


@pytest.mark.parametrize("change, message", [
    (lambda s, b: (s[0][0], b, {}), "non-empty list"),
    (lambda s, b: ([], b, {}), "non-empty list"),
    (lambda s, b: ([s[0][0]], b, {}), "pair"),
    (lambda s, b: ([(s[0][0][:, :5], s[0][1])], b, {}), "weights must be 32 x 5"),
    (lambda s, b: ([s[0], (s[1][0][:2], s[1][1])], b, {}), "tokens"),
    (lambda s, b: ([(np.where(s[0][0] > 1, np.nan, s[0][0]), s[0][1])], b, {}), "non-finite"),
    (lambda s, b: (s, b[:5], {}), "weights must be 5 x"),
    (lambda s, b: (s, np.full_like(b, np.inf), {}), "bias"),
    (lambda s, b: (s, b, {"mu_top": 0.0}), "mu_top must be a positive"),
    (lambda s, b: (s, b, {"n_top": -1.0}), "n_top must be a positive"),
    (lambda s, b: (s, b, {"x_top": [1.0]}), "one per source"),
    (lambda s, b: (s, b, {"pad_to": 2}), "pad_to"),
    (lambda s, b: (s, b, {"layers": 2}), "unknown option"),
    (lambda s, b: ([(train_of(s[0][0], 10.0, 1.1, 40), s[0][1])], b, {}), "cannot be replayed"),
    (lambda s, b: ([(train_of(s[0][0], 10.0), s[0][1]), s[1]], b, {"x_top": [3.0, None]}), "train's"),
])
def test_bad_input_fails_with_one_line(change, message):
    sources, bias, options = change(*_sources())
    with pytest.raises(ValueError, match=message) as info:
        layernorm_spec(sources, bias, params=FAST, **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"code_base": 1.0}, "code_base"),
    ({"t_code": "4.5*ms"}, "whole number"),
    ({"ln_eps": 0.0}, "ln_eps"),
    ({"dt_enc": "2*ms"}, "dt_enc"),
])
def test_bad_parameters_fail_with_one_line(change, message):
    with pytest.raises(ParameterError, match=message):
        layernorm_spec(*_sources(), params={**FAST, **change})


# ------------------------------------------------------------------------------- standalone


@pytest.mark.slow
def test_standalone_reruns_give_a_fresh_builds_numbers(tmp_path):
    """On the C++ standalone device (a CircuitPool) the stage compiles once: a second sentence with
    other inputs and other tops (values, not structure) re-runs the binary and gives what the
    runtime device gives for it (no random numbers: the same spikes), and what NumPy's chain of
    codes predicts."""
    from circuits.runners import CircuitPool

    specs = [layernorm_spec(*synthetic(seed), params=FAST, x_top=[None, 3.0 + seed]) for seed in (0, 1)]
    with CircuitPool("cpp_standalone", cache=tmp_path) as pool:
        results = pool.run(specs)
        assert pool._runner._circuits["layernorm"].builds == 1
    for spec, result in zip(specs, results):
        fresh = spec.simulate()
        for name in ("token", "channel", "step"):
            np.testing.assert_array_equal(getattr(result.train, name), getattr(fresh.train, name))
        np.testing.assert_allclose(result.circuit.signal(), fresh.circuit.signal(), rtol=1e-12)
        np.testing.assert_allclose(result.n_spike, fresh.n_spike, rtol=1e-12, atol=1e-12)
