"""Astrocyte process models against their sources and the read-out's linearity (numpy target)."""

import numpy as np
import pytest
from brian2 import (Network, NeuronGroup, SpikeGeneratorGroup, StateMonitor, Synapses, mmolar, ms, second,
                    umolar)

from circuits.process_response import process_parameters, simulate_process
from models.astrocytes import ip3_memory, read_calibration, rest_state

# Input of the reference test: a Poisson train at 2 Hz for 4 s, starting once both models rest.
REST_BEFORE = 200.0
INPUT = np.sort(np.random.default_rng(3).uniform(0.0, 4.0, 8))


def _example_4_astrocyte(spike_times, relax, duration):
    """Brian2's examples/frompapers/Stimberg_et_al_2018/example_4_synrel.py, one synapse and its
    astrocyte, with the gliotransmitter feedback left out (G_A = 0 at the synapse) and I_bias = 0;
    equations and constants as in the example (rk4, 1 ms). Relaxes ``relax`` s (10 ms steps) from
    the example's initial state, then runs ``duration`` s with input at ``spike_times`` (s after
    the relaxation). Returns (t, C in uM)."""
    ns = dict(rho_c=0.005, Y_T=500 * mmolar, Omega_c=40 / second, U_0__star=0.6, Omega_f=3.33 / second,
              Omega_d=2.0 / second, O_G=1.5 / umolar / second, Omega_G=0.5 / (60 * second), alpha=0.0,
              O_P=0.9 * umolar / second, K_P=0.05 * umolar, C_T=2 * umolar, rho_A=0.18, Omega_C=6 / second,
              Omega_L=0.1 / second, d_1=0.13 * umolar, d_2=1.05 * umolar, O_2=0.2 / umolar / second,
              d_3=0.9434 * umolar, d_5=0.08 * umolar, O_beta=3.2 * umolar / second, O_N=0.3 / umolar / second,
              Omega_N=0.5 / second, K_KC=0.5 * umolar, zeta=10, O_delta=0.6 * umolar / second,
              kappa_delta=1.5 * umolar, K_delta=0.1 * umolar, Omega_5P=0.05 / second, K_D=0.7 * umolar,
              K_3K=1.0 * umolar, O_3K=4.5 * umolar / second, F_ex=2.0 * umolar / second, I_Theta=0.3 * umolar,
              omega_I=0.05 * umolar)
    synapse_eqs = """
    dY_S/dt = -Omega_c * Y_S : mmolar (clock-driven)
    dGamma_S/dt = O_G * G_A * (1 - Gamma_S) - Omega_G * Gamma_S : 1 (clock-driven)
    du_S/dt = -Omega_f * u_S : 1 (event-driven)
    dx_S/dt = Omega_d *(1 - x_S) : 1 (event-driven)
    r_S : 1
    G_A : mmolar
    """
    synapse_action = """
    U_0 = (1 - Gamma_S) * U_0__star + alpha * Gamma_S
    u_S += U_0 * (1 - u_S)
    r_S = u_S * x_S
    x_S -= r_S
    Y_S += rho_c * Y_T * r_S
    """
    astro_eqs = """
    dGamma_A/dt = O_N * Y_S * (1 - Gamma_A) - Omega_N*(1 + zeta * C/(C + K_KC)) * Gamma_A : 1
    dI/dt = J_beta + J_delta - J_3K - J_5P + J_ex             : mmolar
    J_beta = O_beta * Gamma_A                                 : mmolar/second
    J_delta = O_delta/(1 + I/kappa_delta) * C**2/(C**2 + K_delta**2) : mmolar/second
    J_3K = O_3K * C**4/(C**4 + K_D**4) * I/(I + K_3K)         : mmolar/second
    J_5P = Omega_5P*I                                         : mmolar/second
    delta_I_bias = I - I_bias : mmolar
    J_ex = -F_ex/2*(1 + tanh((abs(delta_I_bias) - I_Theta)/omega_I)) * sign(delta_I_bias) : mmolar/second
    I_bias                                                    : mmolar (constant)
    dC/dt = (Omega_C * m_inf**3 * h**3 + Omega_L) * (C_T - (1 + rho_A)*C) - O_P * C**2/(C**2 + K_P**2) : mmolar
    dh/dt = (h_inf - h)/tau_h          : 1
    m_inf = I/(I + d_1) * C/(C + d_5)  : 1
    h_inf = Q_2/(Q_2 + C)              : 1
    tau_h = 1/(O_2 * (Q_2 + C))        : second
    Q_2 = d_2 * (I + d_1)/(I + d_3)    : mmolar
    Y_S                                : mmolar
    """
    source = SpikeGeneratorGroup(1, np.zeros(len(spike_times), dtype=int), (relax + spike_times) * second, dt=1 * ms)
    target = NeuronGroup(1, "", dt=1 * ms)
    synapse = Synapses(source, target, synapse_eqs, on_pre=synapse_action, method="exact", namespace=ns, dt=1 * ms)
    synapse.connect(j="i")
    synapse.x_S = 1.0
    astro = NeuronGroup(1, astro_eqs, method="rk4", namespace=ns, dt=10 * ms)
    astro.h = 0.9
    astro.I_bias = 0 * umolar
    to_astro = Synapses(synapse, astro, "Y_S_post = Y_S_pre : mmolar (summed)", dt=1 * ms)
    to_astro.connect(j="i")
    net = Network(source, target, synapse, astro, to_astro)
    net.run(relax * second)                     # the example's own rest (coarse steps: no input)
    astro.clock.dt = 1 * ms
    mon = StateMonitor(astro, "C", record=0, dt=10 * ms)
    net.add(mon)
    net.run(duration * second)
    return np.asarray(mon.t_[:]) - relax, np.asarray(mon.C_[0]) * 1e3


@pytest.mark.slow
def test_stimberg2018_process_reproduces_brian2_example_4():
    """The project's G-ChI process with the stimberg2018 preset and example_4's astrocyte, fed by
    example_4's synapse, give the same Ca2+ trace on the same spike train once both rest."""
    duration = 30.0
    t_ref, c_ref = _example_4_astrocyte(INPUT, REST_BEFORE, duration)
    params = process_parameters("gchi", "stimberg2018", {"record_dt": "10*ms"})
    t, traces = simulate_process("gchi", params, [INPUT], duration, "stimberg2018", record=("C",))
    c = traces["C"][0] * 1e3
    assert c_ref.max() > 3 * c_ref[0], "the input must evoke a Ca2+ response"
    assert abs(c[0] - c_ref[0]) < 0.01 * c_ref.max(), "the computed rest differs from the example's"
    n = min(len(c), len(c_ref))
    np.testing.assert_allclose(c[:n], c_ref[:n], atol=0.01 * c_ref.max())


@pytest.mark.slow
@pytest.mark.parametrize("kind,preset", [("gchi", "integrator"), ("gchi", "depitta2009"), ("gchi", "stimberg2018"),
                                         ("lr1994", None)])
def test_process_stays_at_rest_without_input(kind, preset):
    """120 s without input: calcium and IP3 stay at the computed rest (tolerance: 1 % of it; the
    rest is solved to 1e-9 relative, so any drift is the dynamics leaving it)."""
    params = process_parameters(kind, preset, {"dt": "10*ms", "record_dt": "1*second"})
    rest = rest_state(kind, params, preset)
    t, traces = simulate_process(kind, params, [[]], 120.0, preset, record=("C", "IP3"))
    for var in ("C", "IP3"):
        np.testing.assert_allclose(traces[var][0], float(rest[var]), rtol=0.01)


def test_ip3_read_out_is_linear_in_the_spike_count():
    """depitta2009 with a drive that puts the CICR threshold at ~150 fast spikes: after 20-100
    spikes in a 2 s write, the read variable (IP3 above rest) is proportional to the count
    (R^2 >= 0.99, affine fit) and its slope is kappa per spike up to the IP3 decay in the write
    and the 4 s after it (the IP3 response kernel ``ip3_memory`` gives the expected factor)."""
    counts = np.array([20, 40, 60, 80, 100])
    preset = "depitta2009"
    base = process_parameters("gchi", preset)
    scale = read_calibration("gchi", base, preset)["cicr_spikes"] / 150
    params = process_parameters("gchi", preset, {"Y_0": base["Y_0"] * scale, "dt": "1*ms", "record_dt": "100*ms"})
    trains = [np.linspace(0.01, 2.0, n, endpoint=False) for n in counts]
    t, traces = simulate_process("gchi", params, trains, 6.0, preset, record=("release",))
    release = traces["release"][:, -1]
    slope, intercept = np.polyfit(counts, release, 1)
    fitted = slope * counts + intercept
    r2 = 1 - np.sum((release - fitted) ** 2) / np.sum((release - release.mean()) ** 2)
    assert r2 >= 0.99
    decay = np.mean(ip3_memory(6.0 - trains[-1], read_calibration("gchi", params, preset)))
    assert slope == pytest.approx(float(params["kappa"]) * decay, rel=0.1)



@pytest.mark.parametrize("kind,overrides", [("gchi", {}), ("gchi", {"Omega_5P": "0.4/second", "O_delta": "0.2*umolar/second"}),
                                            ("lr1994", {})])
def test_ip3_response_to_spikes_follows_the_linearised_kernel(kind, overrides):
    """10 write spikes in 90 ms at rest (far below CICR): the read variable over the next 40 s is
    kappa x the summed one-spike kernel ``ip3_memory`` within 1 % of its peak from 5 s on (G-ChI: Ca2+ and h
    follow IP3 and feed back through PLC delta; with them held fixed the kernel is 20 % low at 19 s).
    Also with a ~5 s lifetime (degradation and basal production x10). rk4 at 5 ms: the fastest mode
    lives 0.25 s, glutamate clearance 25 ms."""
    spikes = 1.0 + 0.01 * np.arange(10)
    params = process_parameters(kind, overrides={**overrides, "dt": "5*ms", "record_dt": "500*ms"})
    t, traces = simulate_process(kind, params, [spikes], 41.0, record=("release",))
    late = t >= spikes[-1] + 5.0
    predicted = float(params["kappa"]) * ip3_memory(t[late, None] - spikes[None, :],
                                                    read_calibration(kind, params)).sum(axis=1)
    np.testing.assert_allclose(traces["release"][0, late], predicted, atol=0.01 * predicted.max())

# ------------------------------------------------------------------- the circuit error ratio

#: The criterion: with gchi or lr1994 the spike-vs-softmax error is at most 1.25x the minimal model's.
RATIO = 1.25
SMALL = dict(n_features=32, neurons_per_value=16, encoders_per_dim=4)


def _head_results(astrocytes, sizes, tokens, dim, norm, protocol):
    from analysis.attention import synthetic_head
    from circuits.head import head_spec
    from circuits.runners import run_heads
    from circuits.seeds import SeedStreams

    q, k, v = synthetic_head(tokens, dim, dim, norm, SeedStreams(0).head)
    specs = [head_spec(q, k, v, "random", astrocyte=a, params={**protocol, **extra}, seed=0, **sizes)
             for a, extra in astrocytes]
    return run_heads(specs)


def _expected_error(result) -> float:
    """Expected spike-vs-softmax error: rate ideal vs softmax and the Poisson bound in quadrature."""
    from analysis.spikes import expected_total_error

    return expected_total_error(result.y_rate, result.y_softmax, result.metrics["poisson_bound"])


def _assert_error_ratio(minimal, other):
    """The expected errors meet the ratio, and the measured error of ``other`` stays below RATIO x the
    minimal model's expected error times the chi-square tolerance of its own Poisson noise."""
    expected_m, expected_o = _expected_error(minimal), _expected_error(other)
    assert expected_o <= RATIO * expected_m, (expected_o, expected_m)
    measured = other.metrics["rel_err_spike_vs_softmax"]
    assert measured <= RATIO * expected_m * other.metrics["bound_tolerance_ratio"], (measured, expected_m)


@pytest.mark.slow
def test_error_ratio_and_rate_ideal_small():
    """Small head (L = 4, d = d_v = 4, m = 32, default protocol; ~2 min on numpy, hence slow; the
    default run keeps the kernel and tau_hebb-coupling tests, which catch the same mutations of the
    read-out), same seed: with
    gchi and lr1994 the spiking output is within its Poisson bound of its rate ideal and the
    spike-vs-softmax error meets the ratio to the minimal model's. Not shorter: gchi's receptors
    keep producing IP3 for ~0.9 s after a spike, so reads that come sooner after the last write
    (fewer tokens, the short protocol) weigh the latest tokens less than softmax does (rate ideal
    at L = 2: 0.80 from softmax; minimal 0.13)."""
    minimal, gchi, lr1994 = _head_results([("minimal", {}), ("gchi", {}), ("lr1994", {})], SMALL, 4, 4, 1.0, {})
    for result in (gchi, lr1994):
        m = result.metrics
        assert m["rel_err_spike_vs_rate"] <= m["bound_tolerance_ratio"] * m["poisson_bound"], m
        _assert_error_ratio(minimal, result)


@pytest.mark.slow
@pytest.mark.parametrize("astrocyte", ["gchi", "lr1994"])
def test_error_ratio_on_the_main_experiment(astrocyte, cython_target):
    """The main experiment (L = 16, d = d_v = 8, |q|/d^(1/4) = 0.7, m = 256, default protocol, seed 0):
    the biophysical process's spike-vs-softmax error is at most 1.25x the minimal model's."""
    from circuits.head import circuit_options

    sizes = {n: circuit_options("random")[n] for n in SMALL}
    minimal, other = _head_results([("minimal", {}), (astrocyte, {})], sizes, 16, 8, 0.7, {})
    _assert_error_ratio(minimal, other)


@pytest.mark.parametrize("astrocyte", ["gchi", "lr1994"])
def test_hebbian_decay_follows_the_ip3_lifetime(astrocyte):
    """With a biophysical process the Hebbian decay tau_hebb defaults to the process's IP3 lifetime
    (also after the lifetime is changed), so the fading common to a read cancels; an explicit
    tau_hebb overrides it."""
    from circuits import circuit_parameters

    shorter = {"Omega_5P": "0.4/second", "O_delta": "0.2*umolar/second"} if astrocyte == "gchi" else {"tau_IP3": "5*second"}
    for overrides in ({}, shorter):
        params = circuit_parameters("random", astrocyte, overrides)
        assert float(params["tau_hebb"]) == pytest.approx(read_calibration(astrocyte, params)["tau_IP3_eff"], rel=1e-12)
    assert float(circuit_parameters("random", astrocyte, {"tau_hebb": "7*second"})["tau_hebb"]) == 7.0


def test_gchi_reads_wait_until_the_receptors_have_made_their_ip3():
    """G-ChI's receptors make IP3 for ~0.9 s after a spike: read right after the writes, the last
    token weighs ~40 % less than softmax gives it. The circuits therefore pause 5 receptor times
    before the first read (t_consolidate; lr1994, whose IP3 steps at the spike, does not), and the
    rate ideal (the processes' linearised read-out) of a head that attends to its last token is
    then within 1 % of softmax; without the pause it is > 5 % off."""
    from analysis.attention import kernel_attention, relative_error, softmax_attention
    from circuits import RECEPTOR_TIMES, circuit_parameters
    from circuits.circuit import memory_weights
    from circuits.protocol import Schedule

    params = circuit_parameters("exact", "gchi")
    receptor = read_calibration("gchi", params)["tau_receptor"]
    assert float(params["t_consolidate"]) == pytest.approx(RECEPTOR_TIMES * receptor, abs=1e-3)
    assert float(circuit_parameters("exact", "lr1994")["t_consolidate"]) == 0.0
    rng = np.random.default_rng(0)
    k, v = rng.normal(size=(8, 4)), rng.normal(size=(8, 4))
    q = np.repeat(2.0 * k[-1:], 4, axis=0)                      # every query attends to the last token
    y_soft = softmax_attention(q, k, v, 1.0)

    def rate_ideal(p):
        numerator, denominator = memory_weights(p, Schedule.from_params(8, 4, p).age_at_reads())
        return kernel_attention(np.exp(q @ k.T), np.eye(8), v, numerator, denominator)

    assert relative_error(rate_ideal(params), y_soft) <= 0.01
    assert relative_error(rate_ideal(params.override({"t_consolidate": "0*ms"})), y_soft) > 0.05
