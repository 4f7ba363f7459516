"""The exact-kernel head on the latency code (``code="latency"``, circuits.exact_latency).

A coarse clock (dt 0.5 ms, encoders 0.1 ms, 4 ms latency windows of base 1.2: 40 levels) and short
reads (tau_read 10 ms, counting 5 tau_read) keep each run to a few seconds on numpy; the budget
(``analysis.codes.latency_attention_error``) follows the parameters, so the tests hold it to them.
"""

import numpy as np
import pytest
from brian2 import StateMonitor

from analysis import codes
from analysis.attention import relative_error, softmax_attention, synthetic_head
from circuits import circuit_parameters, exact_kernel, exact_latency
from circuits.head import head_spec
from circuits.protocol import TABLE_BIN
from models.parameters import ParameterError

LATENCY = {"dt": "0.5*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2, "t_settle": "4*ms",
           "t_learn": "8*ms", "t_read": "54*ms", "tau_read": "10*ms", "R_key_target": "1000*Hz"}


def head(seed=0, n_tokens=6, dim=8, value_dim=4, norm=1.5):
    return synthetic_head(n_tokens, dim, value_dim, norm, np.random.default_rng(seed))


def run(q, k, v, params=None, **options):
    return head_spec(q, k, v, "exact", code="latency", params={**LATENCY, **(params or {})}, **options).simulate()


def build(q, k, v, params=None, **options):
    params = circuit_parameters("exact", options.get("astrocyte", "minimal"), {**LATENCY, **(params or {})})
    return exact_kernel.build_exact_kernel_circuit(q, k, v, code="latency", params=params, **options)


# ----------------------------------------------------------------------- (a) softmax within the budget

def test_output_is_softmax_within_the_latency_budget_and_the_budget_is_tight():
    """Over heads with |q|/d^(1/4) = 1.5: the spikes' error against the ideal (softmax with the
    processes' fading, 1e-5 here) within the budget's chi-square tolerance, and the budget not
    loose: the measured / expected ratio averages near 1."""
    ratios = []
    for seed in range(4):
        q, k, v = head(seed)
        result = run(q, k, v, seed=seed)
        metrics = result.metrics
        assert metrics["rel_err_rate_vs_softmax"] < 1e-3
        assert metrics["rel_err_spike_vs_rate"] <= metrics["bound_tolerance_ratio"] * metrics["poisson_bound"], metrics
        ratios.append(metrics["spike_vs_rate_over_bound"])
    assert 0.6 <= np.mean(ratios) <= 1.3, ratios


# ------------------------------------------------------- (b) the astrocyte carries the denominator

PEAKY = dict(n_tokens=6, dim=4, value_dim=4, norm=2.5)


def test_adenosine_tracks_the_attention_denominator():
    """At the end of each read's counting part, exp(theta / delta_u) follows sum_t z_t exp(x_q . x_k_t)
    over the queries (x as the code delivered them: quantised scores are what the circuit sums): what is left after a common factor is a tenth of the denominators'
    spread or less (log rms), with a slope of 1. A loop faster than the rate head's default
    (tau_theta 20 ms with tau_read 10 ms: damping ratio 0.71) settles within the 100 ms count."""
    q, k, v = head(0, **PEAKY)
    circuit = run(q, k, v, params={"t_read": "204*ms", "tau_theta": "20*ms"}).circuit
    normaliser = exact_kernel.astrocyte_normaliser(circuit)
    p = circuit.params
    log_astrocyte = (exact_latency.settled_adenosine_level(circuit) / float(p["delta_u"])
                     - np.log(float(p["rho_key"]) / float(p["R_key_target"])))
    log_denominator = exact_latency.delivered_log_denominator(circuit)
    gap = log_astrocyte - log_denominator
    log_error = float(np.sqrt(np.mean((gap - gap.mean()) ** 2)))
    assert normaliser["log_spread"] > 0.5, "design: the denominators must differ between queries"
    assert log_error <= normaliser["log_spread"] / 10, (log_error, log_astrocyte, log_denominator)
    assert np.polyfit(log_denominator, log_astrocyte, 1)[0] == pytest.approx(1, abs=0.1)


def test_blocking_the_astrocyte_breaks_normalisation():
    """Blocked (A and theta held at their mean over the reads): the output is the unnormalised sum,
    >= 3x further from softmax than the working head, and close to its own (blocked) ideal."""
    q, k, v = head(0, **PEAKY)
    working, blocked = run(q, k, v).metrics, run(q, k, v, block_astrocyte=True).metrics
    assert blocked["rel_err_spike_vs_softmax"] >= 3 * working["rel_err_spike_vs_softmax"], (blocked, working)
    assert blocked["rel_err_spike_vs_rate"] <= blocked["rel_err_spike_vs_softmax"] / 3


# ------------------------------------------------------------- (c) exact where the code is exact

def test_key_drive_is_delta_u_times_the_delivered_score():
    """After the query's window each key neuron's drive is delta_u x_q . x_k with both as the code
    delivers them (analysis.codes.latency_decode, NumPy), to rounding."""
    q, k, v = head(1)
    circuit = build(q, k, v)
    monitor = StateMonitor(circuit.groups["key_neurons"], "I_key", record=True, dt=TABLE_BIN, when="end")
    circuit.network.add(monitor)
    circuit.run()
    cfg, p = circuit.config, circuit.params
    x_q = codes.latency_decode(circuit.inputs["x_queries"], cfg["x_top"], float(p["code_base"]), cfg["levels"])
    x_k = codes.latency_decode(circuit.inputs["x_keys"], cfg["x_top"], float(p["code_base"]), cfg["levels"])
    expected = float(p["delta_u"]) * x_q @ x_k.T
    starts = exact_latency.counting_windows(circuit.schedule, p)[:, 0]
    rows = np.rint(starts / float(TABLE_BIN)).astype(int)              # sampled at the counting start
    np.testing.assert_allclose(monitor.I_key_[:, rows].T, expected, rtol=1e-9, atol=1e-15)


def test_value_spikes_decode_to_their_drive_over_the_astrocyte_signal():
    """Each value spike carries max(+-(kappa/eta_hebb)(I_num_on - I_num_off)/(A + A_floor), 0) as the
    latency code delivers it (NumPy quantiser of the recorded drives)."""
    q, k, v = head(2)
    circuit = build(q, k, v)
    drive = StateMonitor(circuit.groups["value_drive"], "I_num", record=True, dt=TABLE_BIN, when="before_thresholds")
    cell = StateMonitor(circuit.groups["astrocyte"], "A", record=True, dt=TABLE_BIN, when="before_thresholds")
    circuit.network.add(drive, cell)
    circuit.run()
    p, cfg = circuit.params, circuit.config
    rows = np.rint(circuit.output_windows()[:, 0] / float(TABLE_BIN)).astype(int)
    numerator = drive.I_num[:, rows].T
    y = (float(p["kappa"]) / float(p["eta_hebb"]) * (numerator[:, 0::2] - numerator[:, 1::2])
         / (cell.A[0, rows][:, None] + float(p["A_floor"])))
    expected = codes.latency_decode(y, cfg["y_top"], float(p["code_base"]), cfg["levels"])
    np.testing.assert_allclose(circuit.decode(), expected, rtol=1e-9, atol=1e-12)
    assert relative_error(circuit.decode(), softmax_attention(q, k, v, 1 / np.sqrt(q.shape[1]))) < 0.5


# ------------------------------------------------------------------ (d) few spikes, counted events

def test_one_spike_per_value_and_events_from_the_monitors():
    """Key/query encoders: one spike per nonzero component in each latency window (two per token
    written, one per query); value neurons: at most one per read, only in output windows; the
    synaptic events are the spikes times the fan-outs."""
    q, k, v = head(3)
    result = run(q, k, v)
    circuit = result.circuit
    s, p = circuit.schedule, circuit.params
    t_code = float(p["t_code"])
    learn, reads = s.learn_windows(), s.query_windows()
    windows = np.concatenate([np.stack([learn[:, 0], learn[:, 0] + t_code], 1),
                              np.stack([learn[:, 0] + s.t_learn / 2, learn[:, 0] + s.t_learn / 2 + t_code], 1),
                              np.stack([reads[:, 0], reads[:, 0] + t_code], 1)])
    per_window = circuit.window_counts("key_encoders", windows)
    shown = np.concatenate([k, k, q])
    np.testing.assert_array_equal(per_window.reshape(len(windows), -1, 2).sum(axis=2), (shown != 0).astype(int))
    assert per_window.sum() == circuit.monitors["key_encoders_spikes"].num_spikes
    out = circuit.population_counts()
    assert out.max() <= 1 and out.sum() == circuit.monitors["value_neurons_spikes"].num_spikes
    assert np.all(out.reshape(len(out), -1, 2).sum(axis=2) <= 1)             # ON or OFF, not both
    events = circuit.synaptic_events()
    spikes = circuit.population_spikes()
    n_tokens, value_dim = len(k), v.shape[1]
    assert events["afferent_synapses"] == spikes["key_encoders"] * n_tokens
    assert events["tripartite_synapses"] == spikes["key_neurons"] * 2 * value_dim
    assert events["astro_processes"] == spikes["key_neurons"] * 2                # write and read pathways
    assert events["teacher_synapses"] == spikes["value_encoders"]


def test_events_of_a_12_token_head_with_d_32():
    """A MiniLM-sized head (12 tokens, d = d_v = 32): the latency head's synaptic events, every
    population's spikes counted by its monitor. The rate head's, on the MiniLM protocol, are ~41 M
    (docs/model.md §10); this one's stay far below 1/20 of that."""
    rng = np.random.default_rng(0)
    q, k, v = synthetic_head(12, 32, 32, 1.5, rng)
    result = run(q, k, v)
    total = sum(result.circuit.synaptic_events().values())
    assert total < 41e6 / 100, total
    assert result.metrics["rel_err_spike_vs_rate"] <= result.metrics["bound_tolerance_ratio"] * result.metrics["poisson_bound"]


# ------------------------------------------------------------------------------------ (e) padding

def assert_padding_changes_nothing(run):
    """A 4-token head run by ``run`` (q, k, v, **options -> result) padded to 7 tokens decodes what
    it decodes unpadded, and W_O on its value neurons' spikes is W_O times the decoded output."""
    q, k, v = head(4, n_tokens=4)
    w_out = np.random.default_rng(5).normal(size=(3, 4))
    plain, padded = (run(q, k, v, seed=0, w_out=w_out, pad_to=pad) for pad in (None, 7))
    np.testing.assert_allclose(padded.y_spike, plain.y_spike, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(padded.y_projected, plain.y_projected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(plain.y_projected, plain.y_spike @ w_out.T, rtol=1e-9, atol=1e-12)
    assert padded.circuit.config["n_tokens"] == 7 and padded.y_spike.shape == (4, 4)


def test_padded_head_gives_the_unpadded_output():
    assert_padding_changes_nothing(run)


def test_causal_head_within_its_budget():
    """Causal reads (query s after token s's write) on the same tables: the keys not yet written
    fire but carry no weight and no process memory; the output is causal softmax within the budget."""
    q, k, v = head(0)
    metrics = run(q, k, v, causal=True).metrics
    assert metrics["rel_err_rate_vs_softmax"] < 1e-3
    assert metrics["rel_err_spike_vs_rate"] <= metrics["bound_tolerance_ratio"] * metrics["poisson_bound"], metrics


# ---------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("change, message", [
    ({"t_settle": "2*ms"}, "t_settle must hold"),
    ({"t_learn": "6*ms"}, "t_learn must hold"),
    ({"R_key_target": "2000*Hz"}, "R_key_target"),
    ({"code_base": 1.0}, "code_base must be > 1"),
])
def test_bad_latency_head_parameters_fail_with_one_line(change, message):
    q, k, v = head()
    with pytest.raises(ParameterError, match=message):
        head_spec(q, k, v, "exact", code="latency", params={**LATENCY, **change})


def test_unknown_code_fails_with_one_line():
    with pytest.raises(ValueError, match="unknown code 'spikes'"):
        head_spec(*head(), "exact", code="spikes", params=LATENCY)


def test_heads_in_worker_processes_give_the_sequential_spikes():
    """Two latency heads and a latency linear stage simulated by a pool of two worker processes
    give exactly the outputs and spike counts of the same specs simulated one after another in
    this process (the latency circuits draw no random numbers at run time; their phases come from
    the build's seeded stream)."""
    from circuits.linear import linear_spec

    specs = [head_spec(*head(seed), "exact", code="latency", params=LATENCY, seed=seed) for seed in (0, 1)]
    rng = np.random.default_rng(3)
    specs.append(linear_spec(rng.normal(size=(3, 8)), rng.normal(size=(4, 8)), rng.normal(size=4), code="latency",
                             params={"dt": "1*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2}))
    assert_pool_gives_the_sequential_run(specs)


def assert_pool_gives_the_sequential_run(specs):
    """``specs`` simulated by a pool of two worker processes give exactly the outputs and spike
    counts of the same specs simulated one after another in this process."""
    from circuits.runners import CircuitPool

    sequential = [spec.simulate() for spec in specs]
    with CircuitPool(workers=2) as pool:
        parallel = pool.run(specs)
    for one, other in zip(sequential, parallel):
        np.testing.assert_array_equal(one.y_spike, other.y_spike)
        assert one.circuit.population_spikes() == other.circuit.population_spikes()
