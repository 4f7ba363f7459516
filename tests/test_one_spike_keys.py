"""The latency head's one-spike key code (``key_code="latency"``, circuits.exact_latency; docs/model.md §3).

Each key neuron fires once per read; its spike's efficacy carries exp((u_t - theta_ref) / delta_u)
within B_key^(+-1/2), the tripartite synapses and the astrocyte's processes weight it, and the value
neurons divide I_num by A. The coarse clock of tests/test_latency_head.py (dt 0.5 ms, encoders 0.1 ms,
4 ms windows of B = 1.2) and a 20 ms key window of B_key = 1.2 (200 steps, 36 nats) keep each run to
about a second on numpy; the budget (``circuits.exact_latency.one_spike_rate_model``) follows them.
"""

import numpy as np
import pytest

from analysis import codes
from analysis.attention import synthetic_head
from circuits import circuit_parameters, exact_kernel, exact_latency
from circuits.head import head_spec
from tests.test_latency_head import assert_padding_changes_nothing, assert_pool_gives_the_sequential_run

ONE_SPIKE = {"dt": "0.5*ms", "dt_enc": "0.1*ms", "t_code": "4*ms", "code_base": 1.2, "t_settle": "4*ms",
             "t_learn": "8*ms", "t_read": "24*ms", "key_code_base": 1.2}
PEAKY = dict(n_tokens=6, dim=4, value_dim=4, norm=2.5)


def head(seed=0, n_tokens=6, dim=8, value_dim=4, norm=1.5):
    return synthetic_head(n_tokens, dim, value_dim, norm, np.random.default_rng(seed))


def run(q, k, v, params=None, **options):
    return head_spec(q, k, v, "exact", code="latency", key_code="latency", params={**ONE_SPIKE, **(params or {})},
                     **options).simulate()


def build(q, k, v, params=None, **options):
    params = circuit_parameters("exact", "minimal", {**ONE_SPIKE, **(params or {})})
    return exact_kernel.build_exact_kernel_circuit(q, k, v, code="latency", key_code="latency", params=params,
                                                   **options)


def test_output_is_softmax_within_the_one_spike_budget_and_the_budget_is_tight():
    """Over heads with |q|/d^(1/4) = 1.5: the error against softmax (the ideal; the memory's fading
    is 1e-5 here) within the budget's chi-square tolerance, and the budget not loose (measured /
    expected averages near 1)."""
    ratios = []
    for seed in range(4):
        metrics = run(*head(seed), seed=seed).metrics
        assert metrics["rel_err_rate_vs_softmax"] < 1e-3
        assert metrics["rel_err_spike_vs_rate"] <= metrics["bound_tolerance_ratio"] * metrics["poisson_bound"], metrics
        ratios.append(metrics["spike_vs_rate_over_bound"])
    assert 0.6 <= np.mean(ratios) <= 1.3, ratios


def test_each_key_fires_once_and_the_astrocyte_sums_the_numpy_efficacies():
    """Every written key fires once per read (and its write spikes), at the step NumPy's
    ``analysis.codes.key_efficacy`` gives for its delivered score; at the end of each key window the
    astrocyte holds A = release_ref sum_t z_t e_t and the output is what the value code makes of
    sum_t w_t e_t v_t / sum_t z_t e_t (``one_spike_read``), to rounding."""
    q, k, v = head(1)
    circuit = build(q, k, v)
    circuit.run()
    p, cfg, s = circuit.params, circuit.config, circuit.schedule
    delivered = exact_latency.delivered_inputs(circuit.inputs["x_keys"], circuit.inputs["x_queries"], v, p)
    read = exact_latency.one_spike_read(p, s, delivered["x_keys"], delivered["x_queries"], delivered["values"],
                                        cfg["score_top"])
    keys = circuit.window_counts("key_neurons", exact_latency.counting_windows(s, p))
    np.testing.assert_array_equal(keys, (read["efficacy"] > 0).astype(int))
    monitor = circuit.monitors["key_neurons_spikes"]
    t, i = np.asarray(monitor.t_[:]), np.asarray(monitor.i[:])
    starts = exact_latency.counting_windows(s, p)[:, 0]
    dt_enc, base = float(p["dt_enc"]), float(p["key_code_base"])
    for r, start in enumerate(starts):
        inside = (t >= start - dt_enc / 2) & (t < start + float(p["t_read"] - p["t_code"]) - dt_enc / 2)
        steps = np.rint((t[inside] - start) / dt_enc)
        np.testing.assert_allclose(base ** (0.5 - steps), read["efficacy"][r, i[inside]], rtol=1e-12)
    release_ref = float(p["kappa"]) * cfg["write_spikes"]
    log_signal = exact_latency.astrocyte_log_signal(circuit)
    # NumPy's memory fades each process by its age at the read's middle (tau_ca = 1e4 s: ~1e-6 off).
    np.testing.assert_allclose(log_signal, cfg["score_top"] + np.log(read["signal"]), rtol=0, atol=1e-5)
    expected = codes.latency_decode(read["y"], cfg["y_top"], float(p["code_base"]), cfg["levels"])
    np.testing.assert_allclose(circuit.decode(), expected, rtol=1e-9, atol=1e-12)
    assert release_ref > 0


def test_astrocyte_log_signal_tracks_log_sum_exp_within_the_code():
    """theta_ref / delta_u + ln(A / release_ref) follows log sum_t z_t exp(x_q . x_k_t) (delivered
    scores) over queries whose log-denominators spread by more than a unit: each query within the
    worst case of the code (ln B_key / 2 with no key clipped or missing), and the log rms within
    twice its expectation (each key's position in its step uniform)."""
    q, k, v = head(0, **PEAKY)
    circuit = run(q, k, v).circuit
    log_denominator = exact_latency.delivered_log_denominator(circuit)
    gap = exact_latency.astrocyte_log_signal(circuit) - log_denominator
    limits = exact_latency.log_signal_bound(circuit)
    assert np.std(log_denominator) > 0.5, "design: the denominators must differ between queries"
    assert np.all(np.abs(gap) <= limits["bound"] + 1e-9), (gap, limits)
    assert np.sqrt(np.mean(gap ** 2)) <= 2 * limits["expected_rms"], (gap, limits)


def test_blocking_the_astrocyte_breaks_normalisation():
    """Blocked (A held at its mean over the reads): the read is the unnormalised sum, >= 3x further
    from softmax than the working head, and close to its own (blocked) ideal."""
    q, k, v = head(0, **PEAKY)
    working, blocked = run(q, k, v).metrics, run(q, k, v, block_astrocyte=True).metrics
    assert blocked["rel_err_spike_vs_softmax"] >= 3 * working["rel_err_spike_vs_softmax"], (blocked, working)
    assert blocked["rel_err_spike_vs_rate"] <= blocked["rel_err_spike_vs_softmax"] / 3


def test_events_of_a_12_token_head_with_d_32_stay_below_two_per_mac():
    """A MiniLM-sized head (12 tokens, d = d_v = 32): one read spike per key and query, and the
    attention core's synaptic events and astrocyte updates (as ``transformer.bill`` counts them)
    at most 2 per model MAC (2 L^2 d); the regular key code spends tens."""
    q, k, v = synthetic_head(12, 32, 32, 1.5, np.random.default_rng(0))
    result = run(q, k, v)
    circuit = result.circuit
    spikes = circuit.population_spikes()
    assert spikes["key_neurons"] == 12 * 12 + 12 * circuit.config["write_spikes"]
    events = circuit.synaptic_events()
    assert events["afferent_synapses"] == spikes["key_encoders"] * 12
    assert events["tripartite_synapses"] == spikes["key_neurons"] * 32
    per_mac = sum(events.values()) / (2 * 12 * 12 * 32)
    assert per_mac <= 2, (per_mac, events)
    assert result.metrics["rel_err_spike_vs_rate"] <= (result.metrics["bound_tolerance_ratio"]
                                                       * result.metrics["poisson_bound"])


def test_padded_one_spike_head_gives_the_unpadded_output():
    assert_padding_changes_nothing(run)


def test_one_spike_heads_in_worker_processes_give_the_sequential_spikes():
    """Two one-spike heads over a pool of two worker processes: the sequential run's outputs and
    spike counts exactly (no random numbers at run time)."""
    assert_pool_gives_the_sequential_run([head_spec(*head(seed), "exact", code="latency", key_code="latency",
                                                    params=ONE_SPIKE, seed=seed) for seed in (0, 1)])


def test_causal_one_spike_head_within_its_budget():
    """Causal reads: keys not yet written fire (score 0) but carry no weight and no process memory."""
    metrics = run(*head(0), causal=True).metrics
    assert metrics["rel_err_rate_vs_softmax"] < 1e-3
    assert metrics["rel_err_spike_vs_rate"] <= metrics["bound_tolerance_ratio"] * metrics["poisson_bound"], metrics


def test_key_code_needs_the_latency_head():
    q, k, v = head()
    with pytest.raises(ValueError, match="key_code='latency' needs the latency head"):
        head_spec(q, k, v, "exact", key_code="latency")
    with pytest.raises(ValueError, match="unknown key_code 'ttfs'"):
        head_spec(q, k, v, "exact", code="latency", key_code="ttfs", params=ONE_SPIKE)


@pytest.mark.slow
def test_real_head_within_its_budget_and_blocked_breaks_it(model):
    """all-MiniLM-L6-v2 layer 2 head 5 and layer 0 head 2 (scores up to ~40 nats) on the model's
    latency protocol with a 20 ms key window of B_key = 1.1: within the budget's tolerance, and the
    blocked astrocyte >= 3x further from softmax."""
    from transformer.heads import real_qkv
    from transformer.spiking import HEAD_LATENCY_PROTOCOL

    params = {**HEAD_LATENCY_PROTOCOL, "t_read": "30*ms", "key_code_base": 1.1}
    for layer, index in ((2, 5), (0, 2)):
        h = real_qkv("A man is playing a guitar on the stage.", layer, index)
        runs = [head_spec(h["q"], h["k"], h["v"], "exact", scale=h["scale"], code="latency", key_code="latency",
                          params=params, block_astrocyte=blocked).simulate().metrics for blocked in (False, True)]
        working, blocked = runs
        assert working["rel_err_spike_vs_rate"] <= working["bound_tolerance_ratio"] * working["poisson_bound"]
        assert blocked["rel_err_spike_vs_softmax"] >= 3 * working["rel_err_spike_vs_softmax"]


def test_executor_gives_each_head_its_calibrated_score_top(model):
    """``SpikingExecutor`` with the head option key_code="latency" (latency attention) builds every
    head on the one-spike key code with its own calibrated score top (``transformer.calibration``,
    ``attention_score``) and the one-spike protocol, the default; key_code="regular" keeps the regular
    keys, without a score top."""
    from transformer import minilm
    from transformer.executors import SpikingExecutor
    from transformer.forward import forward
    from transformer.spiking import block_parameters

    step = forward(["A man is playing a guitar on the stage."])[0].layers[0]
    q, k, v = minilm.split_heads(step.attention.parts["qkv"])
    params = block_parameters({}, head_code="latency", head_key_code="latency")
    executor = SpikingExecutor(None, ("attention",), codes={"attention": "latency"}, params=params)
    specs = executor.head_specs(0, 0, q, k, v)
    assert [s.options["score_top"] for s in specs] == [minilm.code_range(0, "attention_score", h) for h in range(12)]
    assert all(s.options["key_code"] == "latency" and float(s.params["t_read"]) == 0.05 for s in specs)
    regular = SpikingExecutor(None, ("attention",), codes={"attention": "latency"},
                              options={"head": {"key_code": "regular"}}).head_specs(0, 0, q, k, v)
    assert all(s.options["key_code"] == "regular" and s.options["score_top"] is None for s in regular)


def test_the_measured_attention_map_is_what_the_key_spikes_carried():
    """``transformer.heads.measured_attention`` of a one-spike head reads each key's spike time:
    NumPy's efficacies times the processes' memory, normalised (``one_spike_read``), to rounding; and
    that map is softmax attention of the delivered scores within the key code's precision (each
    efficacy within B_key^(+-1/2) of exp(u - theta_ref), so each weight within B_key^(+-1)).
    The normaliser's astrocyte follows the denominator across queries (its log error a tenth of
    their spread)."""
    from circuits.head import HeadResult
    from circuits.normaliser import process_memory
    from transformer.heads import attention_map_metrics, measured_attention

    q, k, v = head(0, **PEAKY)
    result = run(q, k, v)
    assert isinstance(result, HeadResult)
    circuit, p = result.circuit, result.circuit.params
    delivered = exact_latency.delivered_inputs(circuit.inputs["x_keys"], circuit.inputs["x_queries"], v, p)
    read = exact_latency.one_spike_read(p, circuit.schedule, delivered["x_keys"], delivered["x_queries"],
                                        delivered["values"], circuit.config["score_top"])
    expected = read["efficacy"] * process_memory(p, circuit.schedule)
    expected /= expected.sum(axis=1, keepdims=True)
    measured = measured_attention(result)
    np.testing.assert_allclose(measured, expected, rtol=1e-9)
    # Softmax of the scores as the code delivered them (the queries' and keys' own quantisation apart).
    kernel = process_memory(p, circuit.schedule) * np.exp(read["scores"] - read["scores"].max(axis=1, keepdims=True))
    softmax = kernel / kernel.sum(axis=1, keepdims=True)
    base, kept = float(p["key_code_base"]), softmax > 1e-3
    ratio = measured[kept] / softmax[kept]
    assert np.all((ratio > 1 / base) & (ratio < base)), ratio
    metrics = attention_map_metrics(result)
    assert metrics["metrics"]["normaliser_log_error"] <= metrics["metrics"]["denominator_log_spread"] / 10


@pytest.mark.parametrize("t_learn, expected", [("8*ms", 1), ("15*ms", 1), ("16*ms", 2), ("25*ms", 2)])
def test_write_spikes_are_what_the_recruited_key_fires(t_learn, expected):
    """``exact_latency.write_spikes`` (the release and Hebbian scale every budget divides by) counts
    the recruited key neuron's spikes in its learning window, also where one would fall on the
    window's end (rho_recruit t_learn = 3/2 and 5/2: the neuron does not fire it)."""
    q, k, v = head(2, n_tokens=3)
    circuit = build(q, k, v, params={"t_learn": t_learn})
    circuit.run()
    s = circuit.schedule
    writes = circuit.window_counts("key_neurons", s.learn_windows()).sum(axis=1)
    assert exact_latency.write_spikes(circuit.params) == expected
    np.testing.assert_array_equal(writes, expected)
