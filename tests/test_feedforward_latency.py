"""The feed-forward block on the latency code (circuits.feedforward, code="latency"): one spike per
input value into the drives, one spike at most per GELU unit and polarity into W_2, against an
independent NumPy chain (analysis.codes.latency_decode) and against GELU within the code's budget."""

import numpy as np
import pytest

from analysis.codes import latency_decode, latency_level, latency_top
from analysis.spikes import window_counts
from circuits import feedforward
from circuits.feedforward import build_feedforward_circuit, feedforward_spec
from circuits.projection import window_values
from models.feedforward import gelu
from models.parameters import ParameterError

#: A coarse encoder clock keeps the runtime (numpy) device quick: 40 levels of B = 1.2 per window.
LATENCY = {"dt": "1*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2}
BASE, LEVELS, DT_ENC = 1.2, 40, 1e-4


def block(seed=0, n_tokens=3, dim=16, units=24, n_out=5):
    """Inputs spread over two decades (log-normal magnitudes, random signs), a unit's drive of
    order one with biases, and an output projection W_2 (out x units), b_2."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], size=(n_tokens, dim)) * np.exp(rng.normal(size=(n_tokens, dim)))
    w_in = rng.normal(size=(units, dim)) / np.sqrt(dim)
    b_in = 0.5 * rng.normal(size=units)
    return x, w_in, b_in, rng.normal(size=(n_out, units)), rng.normal(size=n_out)


def numpy_chain(x, w_in, b_in, x_top, g_top):
    """What the circuit must compute, step by step in NumPy: the delivered inputs x̂, the drives
    u = W_in x̂ + b_in and the delivered activations ĝ."""
    x_hat = latency_decode(x, x_top, BASE, LEVELS)
    u = x_hat @ w_in.T + b_in
    return x_hat, u, latency_decode(gelu(u), g_top, BASE, LEVELS)


def test_latency_block_is_the_numpy_chain_exactly():
    """With tops of range below the largest values (so some inputs and activations fire at the
    first step of their window and saturate): every drive holds W_in x̂ + b_in after its input
    window, the decoded activations are ĝ and W_2's units accumulate W_2 ĝ + b_2, to 1e-9. One
    encoder spike per input value above the lowest level (none for a zero), in its input window at
    its level; at most one spike per GELU unit and polarity, in its count window; synaptic events
    = spikes x fan-out."""
    x, w_in, b_in, w_out, b_out = block()
    x[0, 0] = 0.0                                                       # a zero fires nothing
    x_top = 0.6 * np.abs(x).max()
    g_top = 0.6 * np.abs(gelu(x @ w_in.T + b_in)).max()
    circuit = build_feedforward_circuit(x, w_in, b_in, code="latency", x_top=x_top, g_top=g_top, w_out=w_out,
                                        b_out=b_out, params=LATENCY)
    circuit.run()
    x_hat, u, g_hat = numpy_chain(x, w_in, b_in, x_top, g_top)
    assert np.any(latency_level(x, x_top, BASE) == 0) and np.any(latency_level(gelu(u), g_top, BASE) == 0)
    # The last token's drive, read from the group itself.
    np.testing.assert_allclose(circuit.groups["ffn_drive"].u[:], u[-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(circuit.decode(), g_hat, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(circuit.projected(), g_hat @ w_out.T + b_out, rtol=1e-9, atol=1e-12)

    encoders = circuit.monitors["ffn_encoders_spikes"]
    window, step = np.divmod(np.rint(np.asarray(encoders.t_) / DT_ENC).astype(int), 2 * LEVELS)
    channel = np.asarray(encoders.i)
    fired = latency_level(x, x_top, BASE) < LEVELS
    assert len(channel) == fired.sum() and len(set(zip(window, channel))) == len(channel)
    np.testing.assert_array_equal(step, latency_level(x, x_top, BASE)[window, channel // 2])
    np.testing.assert_array_equal(channel % 2, (x[window, channel // 2] < 0).astype(int))
    spikes = circuit.population_spikes()
    for polarity, sign in (("on", 1), ("off", -1)):
        monitor = circuit.monitors[f"gelu_{polarity}_spikes"]
        window, step = np.divmod(np.rint(np.asarray(monitor.t_) / DT_ENC).astype(int), 2 * LEVELS)
        assert np.all((step >= LEVELS) & (step < 2 * LEVELS))          # the count windows only
        pairs = set(zip(window, np.asarray(monitor.i)))
        assert len(pairs) == len(window) == np.count_nonzero(sign * g_hat > 0) == spikes[f"gelu_{polarity}"]
    assert circuit.synaptic_events() == {"ffn_synapses": spikes["ffn_encoders"] * len(w_in),
                                         "ffn_out_synapses0": spikes["gelu_on"] * len(w_out),
                                         "ffn_out_synapses1": spikes["gelu_off"] * len(w_out)}


def test_latency_block_error_within_its_budget():
    """Against GELU(W_in x + b_in) the error stays within the chi-square tolerance of the budget
    (the inputs' quantisation through W_in and GELU', plus the activations' own), and the budget
    is not loose: the mean ratio over seeds is near one."""
    ratios = []
    for seed in range(4):
        x, w_in, b_in, _, _ = block(seed, n_tokens=4, dim=24, units=32)
        result = feedforward_spec(x, w_in, b_in, code="latency", params=LATENCY, seed=seed).simulate()
        metrics = result.metrics
        assert metrics["spike_vs_gelu_over_bound"] < metrics["bound_tolerance_ratio"]
        ratios.append(metrics["spike_vs_gelu_over_bound"])
    assert 0.7 < np.mean(ratios) < 1.3, ratios


def test_padded_latency_block_computes_what_the_unpadded_one_does():
    """A run padded to 5 windows gives the unpadded run's activations and projected outputs
    exactly, and nothing fires or accumulates (not even the bias) in the empty windows."""
    x, w_in, b_in, w_out, b_out = block()
    plain, padded = (feedforward_spec(x, w_in, b_in, code="latency", w_out=w_out, b_out=b_out, pad_to=pad_to,
                                      params=LATENCY).simulate() for pad_to in (None, 5))
    assert padded.g_spike.shape == (3, 24) and padded.y_spike.shape == (3, 5)
    np.testing.assert_array_equal(padded.g_spike, plain.g_spike)
    np.testing.assert_allclose(padded.y_spike, plain.y_spike, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(padded.variance, plain.variance)
    circuit = padded.circuit
    empty = circuit.schedule.token_windows(padded=True)[3:]
    for name in ("ffn_encoders", "gelu_on", "gelu_off"):
        monitor = circuit.monitors[f"{name}_spikes"]
        assert not window_counts(monitor.t_, monitor.i, empty, len(circuit.groups[name]), DT_ENC).any(), name
        assert circuit.population_spikes()[name] == plain.circuit.population_spikes()[name], name
    assert not window_values(circuit.monitors["ffn_out_samples"], 5, 5)[3:].any()


def test_ablation_drive_without_its_reset_carries_the_last_token_over(monkeypatch):
    """The drive's reset to b_in at every period start is what separates the tokens: accumulate
    the bias instead (u carries over from token to token) and the first token is still the NumPy
    chain's, the later ones miss GELU by far more than the code's budget."""
    x, w_in, b_in, _, _ = block(n_tokens=4, dim=24, units=32)
    monkeypatch.setattr(feedforward, "LATENCY_DRIVE_RESET", "u += b_in")
    result = feedforward_spec(x, w_in, b_in, code="latency", params=LATENCY).simulate()
    config = result.circuit.config
    np.testing.assert_allclose(result.g_spike[0], numpy_chain(x, w_in, b_in, config["x_top"], config["g_top"])[2][0],
                               rtol=1e-9, atol=1e-12)
    later = np.linalg.norm(result.g_spike[1:] - result.g_rate[1:]) / np.linalg.norm(result.g_rate[1:])
    budget = np.sqrt(result.variance[1:].sum()) / np.linalg.norm(result.g_rate[1:])
    assert later > 10 * budget


def test_latency_config_and_defaults():
    """The config records the code, the tops of range and the levels; the tops default to
    max |x| sqrt(B) and max |GELU| sqrt(B); the latency block has one GELU neuron per unit and polarity."""
    x, w_in, b_in, _, _ = block()
    circuit = build_feedforward_circuit(x, w_in, b_in, code="latency", params=LATENCY)
    circuit.run()
    assert circuit.config["code"] == "latency" and circuit.config["levels"] == LEVELS
    assert circuit.config["x_top"] == pytest.approx(latency_top(x, BASE))
    assert circuit.config["g_top"] == pytest.approx(latency_top(gelu(x @ w_in.T + b_in), BASE))
    assert len(circuit.groups["gelu_on"]) == len(circuit.groups["gelu_off"]) == len(w_in)
    assert circuit.schedule.token_period == pytest.approx(0.008) and circuit.schedule.t_learn == pytest.approx(0.004)
    assert feedforward_spec(x, w_in, b_in, params=LATENCY).options["code"] == "rate"         # the default


def test_rate_only_checks_do_not_apply_to_the_latency_code():
    """Inputs that would make a regular encoder fire several times per step are one spike each in
    the latency code."""
    x, w_in, b_in, _, _ = block()
    x = 1000 * x
    with pytest.raises(ParameterError, match="fire"):
        feedforward_spec(x, w_in, b_in, params=LATENCY)
    feedforward_spec(x, w_in, b_in, code="latency", params=LATENCY)


@pytest.mark.parametrize("change, options, message", [
    ({"code_base": 1.0}, {}, "code_base"),
    ({"t_code": "4*ms", "dt_enc": "0.3*ms"}, {}, "whole number of steps"),
    ({"t_code": "0.5*ms"}, {}, "whole number"),
    ({}, {"g_top": 0.0}, "g_top"),
    ({}, {"x_top": -1.0}, "x_top"),
    ({}, {"code": "phase"}, "unknown code"),
])
def test_bad_latency_blocks_fail_with_one_line(change, options, message):
    x, w_in, b_in, _, _ = block()
    with pytest.raises((ParameterError, ValueError), match=message):
        feedforward_spec(x, w_in, b_in, params={**LATENCY, **change}, **{"code": "latency", **options})
