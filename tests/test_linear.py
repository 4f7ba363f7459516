"""Weight matrices on synapses (circuits.linear, circuits.projection) and the synaptic-event counter."""

import numpy as np
import pytest

from analysis.attention import relative_error, synthetic_head
from analysis.spikes import window_counts
from circuits import projection
from circuits.feedforward import feedforward_spec
from circuits.head import head_spec
from analysis.codes import count_variance
from circuits.linear import linear_spec
from models.parameters import ParameterError
from transformer import bill

#: A coarse clock keeps the runtime (numpy) device quick: 0.1 encoder spikes per step per unit |x|.
FAST = {"dt": "1*ms", "dt_enc": "1*ms", "lin_enc_gain": "100*Hz", "t_count": "100*ms"}


def small_stage(seed=0, n_tokens=3, dim=6, n_out=4, **params):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_tokens, dim))
    w = rng.normal(size=(n_out, dim)) / np.sqrt(dim)
    b = rng.normal(size=n_out)
    return linear_spec(x, w, b, params={**FAST, **params}, seed=seed)


def test_output_units_accumulate_the_weights_times_the_encoders_counts():
    """A window's accumulated value is W times the encoders' spike counts in that window (decoded
    by the gain) plus the bias: counted independently from the encoders' spike monitor."""
    result = small_stage().simulate()
    circuit, spec = result.circuit, result.spec
    monitor = circuit.monitors["lin_encoders_spikes"]
    counts = window_counts(monitor.t_, monitor.i, circuit.schedule.learn_windows(), 2 * spec.x.shape[1],
                           float(circuit.params["dt"]))
    x_decoded = (counts[:, 0::2] - counts[:, 1::2]) / (100.0 * 0.1)
    np.testing.assert_allclose(result.y_spike, x_decoded @ spec.w.T + spec.b, rtol=1e-9, atol=1e-9)
    assert not np.allclose(result.y_spike, result.y_rate)           # the counts are quantised


def test_error_against_the_product_is_the_encoders_quantisation():
    """Over seeds, the error against x W^T + b stays within the chi-square tolerance of the
    quantisation bound (f (1 - f) per channel, uniform phase), and the bound is not loose: the
    mean ratio is near one."""
    ratios = []
    for seed in range(4):
        metrics = small_stage(seed, n_tokens=4, dim=16, n_out=12).simulate().metrics
        assert metrics["spike_vs_product_over_bound"] < metrics["bound_tolerance_ratio"]
        ratios.append(metrics["spike_vs_product_over_bound"])
    assert 0.5 < np.mean(ratios) < 1.5


def test_count_variance_of_a_regular_encoder():
    """f (1 - f) / (g T)^2 with f the fractional part of the expected count: zero for whole counts."""
    np.testing.assert_allclose(count_variance([1.0, 0.25, 0.05], 100.0, 0.1), [0.0, 0.25 / 100, 0.25 / 100])


def test_synaptic_events_counted_by_hand():
    """x = (1, -0.5) at 100 Hz per unit for 100 ms: the ON encoder of component 0 fires exactly 10
    times and the OFF encoder of component 1 exactly 5 (whole expected counts: any start phase);
    each spike reaches all 3 output units: 45 events, which is what the counter and the bill say."""
    spec = linear_spec(np.array([[1.0, -0.5]]), np.ones((3, 2)), np.zeros(3), params=FAST, seed=3)
    circuit = spec.simulate().circuit
    assert circuit.population_spikes() == {"lin_encoders": 15}
    assert circuit.synaptic_events() == {"lin_out_synapses0": 45}
    tally = bill.circuit_tally(circuit)
    assert tally["synaptic_events"] == 45 and tally["astrocyte_updates"] == 0
    assert tally["neuron_seconds"] == {"lin_encoders": pytest.approx(4 * 0.1)}
    assert tally["neurons"] == {"lin_encoders": 4}


def test_gelu_neurons_drive_w2_exactly():
    """The FFN's output projection on synapses: the accumulated W_2 g + b_2 equals W_2 times the
    decoded GELU activations (the same spikes), so the stage adds no noise of its own."""
    rng = np.random.default_rng(0)
    x, w1, b1 = rng.normal(size=(2, 5)), rng.normal(size=(6, 5)) / 2, rng.normal(size=6) * 0.3
    w2, b2 = rng.normal(size=(3, 6)), rng.normal(size=3)
    spec = feedforward_spec(x, w1, b1, w_out=w2, b_out=b2, neurons_per_unit=8, off_neurons_per_unit=2,
                            params={"t_settle": "20*ms", "t_count": "50*ms", "dt": "1*ms", "dt_enc": "0.5*ms",
                                    "tau_syn": "10*ms", "tau_m": "20*ms"})
    result = spec.simulate()
    np.testing.assert_allclose(result.y_spike, result.g_spike @ w2.T + b2, rtol=1e-9, atol=1e-12)
    events = result.circuit.synaptic_events()
    spikes = result.circuit.population_spikes()
    assert events["ffn_out_synapses0"] == 3 * spikes["gelu_on"] and events["ffn_out_synapses1"] == 3 * spikes["gelu_off"]


def test_ablation_w_o_without_its_counting_gate_counts_the_teacher(monkeypatch):
    """W_O's synapses add their weight only in the read windows (``counting_post``): a value neuron
    also fires while its token is written (the teacher) and while a read settles. Remove the gate
    and the projection is no longer W_O times the decoded output (which tests/test_padding.py checks
    to 1e-9 with the gate): it misses by more than the whole head's error against softmax."""
    monkeypatch.setattr(projection, "PROJECTION_SYNAPSE_ON_PRE", "y_post += w_proj")
    q, k, v = synthetic_head(3, 4, 4, 1.2, np.random.default_rng(0))
    rng = np.random.default_rng(7)
    w_out, b_out = rng.normal(size=(5, 4)), rng.normal(size=5)
    result = head_spec(q, k, v, "exact", params={"t_settle": "50*ms", "t_learn": "100*ms", "t_read": "200*ms",
                                                 "dt": "0.5*ms"},
                       w_out=w_out, b_out=b_out, neurons_per_value=16).simulate()
    assert relative_error(result.circuit.projected(), result.y_spike @ w_out.T + b_out) > \
        relative_error(result.y_spike, result.y_softmax)


@pytest.mark.parametrize("change, message", [
    ({"t_count": "0.5*ms"}, "whole number"),
    ({"lin_enc_gain": "30000*Hz"}, "fire"),
    ({"tau_x": "1*ms"}, "tau_x"),
])
def test_bad_parameters_fail_with_one_line(change, message):
    with pytest.raises((ParameterError, ValueError), match=message):
        small_stage(**change)


def test_energy_of_a_bill():
    """0.9 pJ per synaptic event or astrocyte update, 4.6 pJ per NumPy MAC; the conventional
    network spends 4.6 pJ on every model MAC."""
    record = {"synaptic_events": 1000, "astrocyte_updates": 100, "numpy_macs": 50, "model_macs": 200,
              "spikes": {"a": 10, "b": 2}, "neuron_seconds": {"a": 2.0, "b": 1.0}, "neurons": {"a": 4, "b": 2}}
    summary = bill.summarise(record)
    assert summary["energy_joules"] == pytest.approx(1100 * 0.9e-12 + 50 * 4.6e-12)
    assert summary["energy_joules_conventional"] == pytest.approx(200 * 4.6e-12)
    assert summary["fraction_on_synapses"] == pytest.approx(0.75)
    assert summary["mean_rate_hz"] == {"a": 5.0, "b": 2.0}
    assert summary["energy_joules_conventional_int8"] == pytest.approx(200 * (0.2e-12 + 0.03e-12))
    assert summary["spikes_per_neuron"] == pytest.approx(12 / 6)


# --- the latency code: one spike per input value (circuits.codes, analysis.codes) ---

#: A coarse encoder clock keeps the runtime device quick: 40 levels of B = 1.2 (range 1.2^39 ~ 1200).
LATENCY = {"dt": "1*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2}


def latency_stage(seed=0, n_tokens=3, dim=16, n_out=8, **params):
    """Inputs spread over three decades (log-normal magnitudes, random signs), as hidden states are."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], size=(n_tokens, dim)) * np.exp(1.5 * rng.normal(size=(n_tokens, dim)))
    w = rng.normal(size=(n_out, dim)) / np.sqrt(dim)
    b = rng.normal(size=n_out)
    return linear_spec(x, w, b, code="latency", params={**LATENCY, **params}, seed=seed)


def test_latency_code_delivers_each_value_in_one_spike_at_its_level():
    """Each nonzero input value fires one encoder spike (none for the other polarity, none for
    zero) at the step where |x| B^k first reaches x_top, and the output is W times the values
    those steps deliver (analysis.codes.latency_decode, an independent NumPy quantiser) plus b."""
    spec = latency_stage()
    x = spec.x.copy()
    x[0, 0] = 0.0                                             # a zero fires nothing
    spec = linear_spec(x, spec.w, spec.b, code="latency", params=LATENCY)
    result = spec.simulate()
    circuit = result.circuit
    assert circuit.population_spikes() == {"lin_encoders": np.count_nonzero(x)}
    monitor = circuit.monitors["lin_encoders_spikes"]
    token, step = np.divmod(np.rint(np.asarray(monitor.t_) / 1e-4).astype(int), 40)
    channel = np.asarray(monitor.i)
    x_top, levels = circuit.config["x_top"], circuit.config["levels"]
    with np.errstate(divide="ignore"):
        expected_k = np.ceil(np.log(x_top / np.abs(x)) / np.log(1.2))
    np.testing.assert_array_equal(step, expected_k[token, channel // 2])
    np.testing.assert_array_equal(channel % 2, (x[token, channel // 2] < 0).astype(int))
    delivered = np.sign(x) * np.where(expected_k < levels, x_top * 1.2 ** (0.5 - expected_k), 0.0)
    np.testing.assert_allclose(result.y_spike, delivered @ spec.w.T + spec.b, rtol=1e-9, atol=1e-12)
    assert circuit.synaptic_events() == {"lin_out_synapses0": np.count_nonzero(x) * len(spec.w)}


def test_latency_code_error_within_its_budget():
    """Against x W^T + b the error stays within the chi-square tolerance of the latency budget
    (relative variance of B^s - 1, s uniform, per value; the dropped values' whole size), and the
    budget is not loose: the mean ratio over seeds is near one."""
    ratios = []
    for seed in range(4):
        metrics = latency_stage(seed, n_tokens=4, dim=24, n_out=12).simulate().metrics
        assert metrics["spike_vs_product_over_bound"] < metrics["bound_tolerance_ratio"]
        ratios.append(metrics["spike_vs_product_over_bound"])
    assert 0.6 < np.mean(ratios) < 1.4


def test_ablation_latency_code_without_the_falling_efficacy():
    """The efficacy that falls by B each step is what turns a spike's time into its value: hold it
    at its start (every spike delivers x_top) and the output misses x W^T + b by far more than
    the code's budget."""
    spec = latency_stage(dim=24, n_out=12)
    from circuits import codes
    import models.encoders as encoders
    broken = encoders.LATENCY_ENCODER_EQS.replace("defficacy/dt = -efficacy / tau_code : 1", "efficacy : 1")
    original = codes.LATENCY_ENCODER_EQS
    codes.LATENCY_ENCODER_EQS = broken
    try:
        metrics = spec.simulate().metrics
    finally:
        codes.LATENCY_ENCODER_EQS = original
    assert metrics["rel_err_spike_vs_product"] > 10 * metrics["quantisation_bound"]


def test_latency_code_levels_and_budget_by_hand():
    """x_top = max |x| sqrt(B) delivers the largest value exactly; a value between levels within
    B^(+-1/2); one below the lowest level delivers nothing; the relative variance is (ln B)^2 / 12
    to first order."""
    from analysis.codes import latency_decode, latency_relative_variance, latency_top
    x = np.array([2.0, -1.0, 1e-6])
    top = latency_top(x, 1.1)
    delivered = latency_decode(x, top, 1.1, 64)
    assert delivered[0] == pytest.approx(2.0) and delivered[2] == 0.0
    assert 1.1 ** -0.5 <= delivered[1] / -1.0 <= 1.1 ** 0.5
    assert latency_relative_variance(1.1) == pytest.approx(np.log(1.1) ** 2 / 12, rel=0.01)


@pytest.mark.parametrize("change, message", [
    ({"code_base": 1.0}, "code_base"),
    ({"t_code": "0.1*ms"}, "whole number"),
])
def test_bad_latency_parameters_fail_with_one_line(change, message):
    with pytest.raises((ParameterError, ValueError), match=message):
        latency_stage(**change)


def test_unknown_code_fails_with_one_line():
    with pytest.raises(ValueError, match="unknown code"):
        linear_spec(np.ones((1, 2)), np.ones((1, 2)), np.zeros(1), code="phase")


def test_linear_stages_share_workers_only_with_their_own_structure():
    """A CircuitPool sends specs to workers by ``workers_key`` and a worker keeps one compiled network:
    specs that share a key must share the generated code's structure
    (``circuits.standalone.structure_key``), else a worker compiles again at every switch (a model's
    pass alternates between W_QKV's two slices and its read-out), and specs of one structure share
    their workers whatever their values and seeds."""
    from circuits.standalone import _mark_values_only, structure_key

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 8))
    specs = [linear_spec(x, rng.normal(size=(n_out, 8)), np.zeros(n_out), code="latency", params=LATENCY,
                         emit_top=emit_top, seed=seed)
             for n_out, emit_top, seed in ((16, 2.0, 0), (16, 3.0, 1), (8, 2.0, 0), (16, None, 0), (8, None, 3))]
    circuits = [s.builder(*s.arrays, **s.builder_arguments()) for s in specs]
    keys = [structure_key(c) for c in circuits]
    for c in circuits:
        _mark_values_only(c)                    # built for their structure only, never run
    for a, key_a in zip(specs, keys):
        for b, key_b in zip(specs, keys):
            assert (a.workers_key == b.workers_key) == (key_a == key_b), (a.workers_key, b.workers_key)
