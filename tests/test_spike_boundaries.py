"""Spikes across stage boundaries (circuits.codes.SpikeTrain; docs/model.md §12).

A stage's latency emitters fire, their spikes are recorded as a train and replayed in the next
stage's circuit, whose terminals fire at the recorded steps with the emitters' efficacy. The
independent reference: the same stage fed the values the train carries (``analysis.codes`` decodes
a level to itself), which must give the same spikes and outputs bit for bit. The clocks are the
coarse ones of tests/test_latency_head.py, so every run takes about a second on numpy.
"""

import numpy as np
import pytest

from analysis import codes
from analysis.attention import synthetic_head
from circuits.codes import SpikeTrain, joined
from circuits.exact_latency import emitted_context
from circuits.feedforward import build_feedforward_circuit
from circuits.head import head_spec
from circuits.linear import build_linear_circuit, linear_spec
from circuits.runners import CircuitPool
from transformer import bill, minilm
from tests.test_one_spike_keys import ONE_SPIKE

COARSE = {"dt": "0.5*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2}
BASE, LEVELS = 1.2, 40


def values(seed, shape):
    return np.random.default_rng(seed).normal(size=shape)


def run_linear(x, w, b, **options):
    circuit = build_linear_circuit(x, w, b, code="latency", params=COARSE, **options)
    circuit.run()
    return circuit


def test_train_records_one_spike_per_value_and_decodes_to_the_latency_code():
    """Encoders of x are emitters: their recorded train carries exactly what the latency code
    delivers for x (``analysis.codes.latency_decode``), one spike per non-zero value."""
    x = values(0, (3, 5))
    x[1, 2] = 0.0
    circuit = run_linear(x, values(1, (4, 5)), np.zeros(4), x_top=4.0)
    monitor = circuit.monitors["lin_encoders_spikes"]
    train = SpikeTrain.recorded(monitor.t_[:], monitor.i[:], circuit.schedule.token_windows()[:, 0], 1e-4, 5, 4.0,
                                BASE, LEVELS)
    assert train.n_spikes == np.count_nonzero(x)
    np.testing.assert_array_equal(train.values(), codes.latency_decode(x, 4.0, BASE, LEVELS))


def test_trains_select_and_join_dimensions():
    """``dims`` takes a population's subset in the order asked, ``joined`` puts populations side by
    side; both keep every spike's value."""
    carried = codes.latency_decode(values(2, (3, 6)), 4.0, BASE, LEVELS)
    steps = codes.latency_level(carried, 4.0, BASE)
    token, dim = np.nonzero(steps < LEVELS)
    channel = 2 * dim + (carried[token, dim] < 0)
    train = SpikeTrain(token, channel, steps[token, dim].astype(int), 3, 6, 4.0, BASE, LEVELS)
    np.testing.assert_array_equal(train.values(), carried)
    np.testing.assert_array_equal(train.dims([4, 1]).values(), carried[:, [4, 1]])
    np.testing.assert_array_equal(joined([train.dims([0, 1]), train.dims([2, 3, 4, 5])]).values(), carried)
    with pytest.raises(ValueError, match="at most once per window"):
        SpikeTrain(np.array([0, 0]), np.array([1, 1]), np.array([2, 3]), 1, 1, 4.0, BASE, LEVELS)


def test_a_replayed_train_drives_a_stage_as_its_values_do():
    """A linear stage's emitters fire each window's accumulated value (W x + b, as the code delivers
    it at ``emit_top``); a second stage fed that train fires the same input spikes and accumulates
    the same outputs, bit for bit, as one fed the values the train carries."""
    x, w, b = values(3, (3, 5)), values(4, (4, 5)), values(5, 4)
    first = run_linear(x, w, b, x_top=4.0, emit_top=8.0, pad_to=4)
    train = first.emitted()
    np.testing.assert_array_equal(train.values(), codes.latency_decode(first.decode(), 8.0, BASE, LEVELS))
    w2 = values(6, (2, 4))
    replayed = run_linear(train, w2, np.zeros(2), pad_to=4)
    encoded = run_linear(train.values(), w2, np.zeros(2), x_top=8.0, pad_to=4)
    for circuit in (replayed, encoded):
        assert circuit.monitors["lin_encoders_spikes"].num_spikes == train.n_spikes
    np.testing.assert_array_equal(replayed.monitors["lin_encoders_spikes"].t_[:],
                                  encoded.monitors["lin_encoders_spikes"].t_[:])
    np.testing.assert_array_equal(replayed.decode(), encoded.decode())
    np.testing.assert_allclose(replayed.decode(), train.values() @ w2.T, atol=1e-12)


def test_a_head_replays_its_queries_keys_and_values():
    """A one-spike head fed trains of its scaled queries and keys and its values gives the output of
    the head fed the values those trains carry, and its value neurons' train carries that output."""
    q, k, v = synthetic_head(5, 4, 4, 1.5, np.random.default_rng(7))
    root = 0.5 ** 0.5
    trains = []
    for n, (x, top) in enumerate(((root * q, 3.0), (root * k, 3.0), (v, 4.0))):
        trains.append(run_linear(x, np.eye(4), np.zeros(4), x_top=top, emit_top=top, pad_to=5).emitted())
    options = dict(code="latency", key_code="latency", params=ONE_SPIKE, y_top=4.0, score_top=6.0)
    replayed = head_spec(*trains, "exact", **options).simulate()
    encoded = head_spec(trains[0].values() / root, trains[1].values() / root, trains[2].values(), "exact", scale=0.5,
                        x_top=3.0, v_top=4.0, **options).simulate()
    np.testing.assert_array_equal(replayed.y_spike, encoded.y_spike)
    assert replayed.metrics["rel_err_spike_vs_softmax"] == pytest.approx(encoded.metrics["rel_err_spike_vs_softmax"], rel=1e-12)
    np.testing.assert_array_equal(emitted_context(replayed.circuit).values(), replayed.y_spike)
    with pytest.raises(ValueError, match="scale must be 1"):
        head_spec(*trains, "exact", scale=0.5, **options)


def test_a_feed_forward_block_replays_its_input_and_emits_its_activations():
    x, w, b = values(8, (3, 5)), values(9, (6, 5)), values(10, 6)
    train = run_linear(x, np.eye(5), np.zeros(5), x_top=4.0, emit_top=4.0, pad_to=3).emitted()
    common = dict(code="latency", g_top=6.0, params=COARSE)
    replayed = build_feedforward_circuit(train, w, b, **common)
    encoded = build_feedforward_circuit(train.values(), w, b, x_top=4.0, **common)
    for circuit in (replayed, encoded):
        circuit.run()
    np.testing.assert_array_equal(replayed.decode(), encoded.decode())
    np.testing.assert_array_equal(replayed.emitted().values(), replayed.decode())


def test_the_bill_counts_replayed_spikes_once():
    """A replayed population's spikes are its emitters': the receiving stage's bill counts the events
    they deliver, not them as spikes or neurons."""
    x, w = values(11, (3, 5)), values(12, (4, 5))
    train = run_linear(x, np.eye(5), np.zeros(5), x_top=4.0, emit_top=4.0).emitted()
    replayed, encoded = run_linear(train, w, np.zeros(4)), run_linear(train.values(), w, np.zeros(4), x_top=4.0)
    tally, encoded_tally = bill.circuit_tally(replayed), bill.circuit_tally(encoded)
    assert "lin_encoders" not in tally["spikes"] and "lin_encoders" not in tally["neurons"]
    assert encoded_tally["spikes"]["lin_encoders"] == train.n_spikes
    assert tally["synaptic_events"] == encoded_tally["synaptic_events"] == train.n_spikes * 4


def test_replay_on_the_standalone_device_gives_the_runtime_spikes():
    """Recorded trains reach compiled re-runs as tables (run_args): a pool's emitting and replaying
    stages give the runtime's trains and outputs."""
    x, w, b = values(13, (3, 5)), values(14, (4, 5)), values(15, 4)
    first = run_linear(x, w, b, x_top=4.0, emit_top=8.0)
    train = first.emitted()
    second = run_linear(train, values(16, (2, 4)), np.zeros(2))
    with CircuitPool("cpp_standalone", workers=1) as pool:
        emitting, replaying = pool.run([linear_spec(x, w, b, code="latency", x_top=4.0, emit_top=8.0, params=COARSE),
                                        linear_spec(train, values(16, (2, 4)), np.zeros(2), code="latency",
                                                    params=COARSE)])
    np.testing.assert_array_equal(emitting.circuit.emitted().step, train.step)
    np.testing.assert_allclose(replaying.y_spike, second.decode(), rtol=1e-12)   # C++ vs numpy summation order


def test_bad_boundaries_fail_with_one_line():
    x = values(17, (3, 5))
    train = run_linear(x, np.eye(5), np.zeros(5), x_top=4.0, emit_top=4.0).emitted()
    with pytest.raises(ValueError, match="cannot be replayed"):
        linear_spec(train, np.eye(5), np.zeros(5), code="latency", params={**COARSE, "code_base": 1.1})
    with pytest.raises(ValueError, match="latency-coded"):
        build_linear_circuit(train, np.eye(5), np.zeros(5), code="rate", params=COARSE)
    with pytest.raises(ValueError, match="emit_top needs code='latency'"):
        linear_spec(x, np.eye(5), np.zeros(5), emit_top=4.0)
    assert minilm.code_range("embedding", "input") > 0
