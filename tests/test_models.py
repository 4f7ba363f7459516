"""Single mechanisms against their analytic expectations (numpy target: nothing to compile)."""

import numpy as np
import pytest
from brian2 import (Hz, Network, NeuronGroup, SpikeGeneratorGroup, SpikeMonitor, TimedArray,
                    ms, mV, second)
from brian2.core.base import BrianObjectException
from brian2.units.fundamentalunits import DimensionMismatchError

from circuits import blocks
from circuits import circuit_parameters
from circuits.random_feature import build_random_feature_circuit
from models.neurons import (FEATURE_NEURON_EQS, FEATURE_NEURON_THRESHOLD, LIF_NEURON_EQS,
                            LIF_NEURON_PARAMETERS, LIF_NEURON_RESET, LIF_NEURON_THRESHOLD)
from models.encoders import encoder_model
from models.parameters import ParameterSet
from models.synapses import TRIPARTITE_SYNAPSE_MODEL, TRIPARTITE_SYNAPSE_ON_PRE

DT = 0.1 * ms


def _phases(write=1.0, read=0.0):
    """A namespace with constant write/read phase signals."""
    return {"write_phase": TimedArray([write], dt=1 * second), "read_phase": TimedArray([read], dt=1 * second)}


@pytest.mark.parametrize("astrocyte", ["minimal", "gchi", "lr1994"])
@pytest.mark.parametrize("encoder", ["regular", "poisson"])
def test_every_equation_has_consistent_dimensions(astrocyte, encoder):
    """Brian2 checks the units of every equation, reset and pathway before a run."""
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 2))
    params = {"t_settle": "1*ms", "t_learn": "1*ms", "t_read": "1*ms"}
    circuit = build_random_feature_circuit(q, k, v, n_features=4, neurons_per_value=1, encoders_per_dim=1,
                                           astrocyte=astrocyte, encoder=encoder, params=params)
    circuit.run()
    lif_params = ParameterSet(LIF_NEURON_PARAMETERS).namespace()
    lif_params.update(v_rest=-65 * mV, tau_m=20 * ms, tau_syn=5 * ms)
    lif = NeuronGroup(1, LIF_NEURON_EQS, threshold=LIF_NEURON_THRESHOLD, reset=LIF_NEURON_RESET,
                      refractory="tau_ref", namespace=lif_params, method="exact")
    Network(lif).run(1 * ms)


def test_dimension_check_catches_a_wrong_unit():
    """The check above can fail: a current in Hz added to a voltage is refused."""
    group = blocks.neuron_group(1, FEATURE_NEURON_EQS.replace("+ I_syn) / tau_m", "+ I_syn * Hz) / tau_m"),
                                circuit_parameters(), {"feature_bias": TimedArray([0.0], dt=1 * second)},
                                "broken", threshold=FEATURE_NEURON_THRESHOLD)
    with pytest.raises(BrianObjectException) as err:
        Network(group).run(1 * ms)
    cause = err.value.__cause__ or err.value.__context__
    assert isinstance(cause, DimensionMismatchError), repr(cause)


def _process_with_spikes(spike_times, overrides=None, write=1.0, read=0.0):
    params = circuit_parameters("random", "minimal", overrides)
    pre = SpikeGeneratorGroup(1, np.zeros(len(spike_times), dtype=int), spike_times * second, dt=DT)
    cell, processes, monitors = blocks.astrocyte(pre, "minimal", params, _phases(write, read))
    net = Network(pre, cell, processes, *monitors)
    return net, cell, processes, params


def test_minimal_process_integrates_presynaptic_spikes_linearly():
    calcium = []
    for n in (5, 10, 20):
        net, cell, processes, params = _process_with_spikes(0.01 + 0.02 * np.arange(n))
        net.run(0.5 * second)
        calcium.append(float(processes.Ca[0]))
        # summed over processes (one step behind: dt/tau_ca = 1e-8)
        assert float(cell.Ca_total[0]) == pytest.approx(calcium[-1], rel=1e-6)
    kappa = float(params["kappa"])
    # tau_ca (1e4 s) >> 0.5 s: the process is an integrator, Ca = kappa * n up to 5e-5 relative decay.
    np.testing.assert_allclose(calcium, kappa * np.array([5, 10, 20]), rtol=1e-4)


def test_minimal_process_forgets_with_tau_ca():
    times = np.array([0.05, 0.1, 0.3, 0.7])
    net, cell, processes, params = _process_with_spikes(times, {"tau_ca": "0.5*second"})
    net.run(1 * second)
    expected = float(params["kappa"]) * np.sum(np.exp(-(1.0 - times) / 0.5))
    # Ca is integrated exactly between steps; the spike lands within one step (dt/tau_ca = 2e-4).
    assert float(processes.Ca[0]) == pytest.approx(expected, rel=1e-3)


def test_read_signal_is_calcium_times_presynaptic_activity():
    """In the read phase every spike adds the process's Ca to A, which decays with tau_read."""
    times = np.array([0.01, 0.012, 0.03])
    net, cell, processes, params = _process_with_spikes(times, write=0.0, read=1.0)
    processes.Ca = 0.7
    net.run(0.05 * second)
    tau = float(params["tau_read"])
    expected = 0.7 * np.sum(np.exp(-(0.05 - times) / tau))
    assert float(cell.A[0]) == pytest.approx(expected, rel=2 * float(DT) / tau)


def test_hebbian_weight_matches_pre_times_postsynaptic_depolarisation():
    params = circuit_parameters()
    teacher_times = np.array([0.002, 0.010, 0.011, 0.030])           # ON channel of value dim 0
    pre_times = np.array([0.005, 0.0125, 0.020, 0.031, 0.060])
    teacher = SpikeGeneratorGroup(2, np.zeros(len(teacher_times), dtype=int), teacher_times * second, dt=DT)
    pre = SpikeGeneratorGroup(1, np.zeros(len(pre_times), dtype=int), pre_times * second, dt=DT)
    drive, values, teacher_syn = blocks.value_layer(1, 1, teacher, 1, params, _phases())
    clamp = blocks.blocked_astrocyte(params, _phases(), 1.0)
    blocks.link_astrocyte(clamp, values)
    hebb = blocks.synapses(pre, drive, TRIPARTITE_SYNAPSE_MODEL, params, _phases(), "hebb", {},
                           on_pre=TRIPARTITE_SYNAPSE_ON_PRE, method="exact")
    Network(teacher, pre, drive, values, clamp, teacher_syn, hebb).run(0.1 * second)

    w_teach = 1.0 / (float(params["value_enc_gain"]) * float(params["tau_syn"]))
    tau_syn = float(params["tau_syn"])
    depolarisation = [w_teach * np.sum(np.exp(-(t - teacher_times[teacher_times < t]) / tau_syn))
                      for t in pre_times]
    expected_on = float(params["eta_hebb"]) * np.sum(depolarisation)
    w = np.asarray(hebb.w[:])
    # ON neuron learns; OFF neuron (no teacher spikes) stays at zero. Tolerance: one time step of
    # synaptic decay at each pairing (dt / tau_syn = 1 %).
    assert w[0] == pytest.approx(expected_on, rel=float(DT) / tau_syn)
    assert w[1] == 0.0


def test_lif_rate_matches_analytic_f_i_curve():
    params = ParameterSet(LIF_NEURON_PARAMETERS).namespace()
    params.update(v_rest=-65 * mV, tau_m=20 * ms, tau_syn=1e6 * second)      # constant input current
    lif = NeuronGroup(1, LIF_NEURON_EQS, threshold=LIF_NEURON_THRESHOLD, reset=LIF_NEURON_RESET,
                      refractory="tau_ref", namespace=params, method="exact", dt=DT)
    lif.v = -65 * mV
    lif.I_syn = 20 * mV
    mon = SpikeMonitor(lif)
    Network(lif, mon).run(1 * second)
    isi = 2e-3 + 20e-3 * np.log(20 / (20 - 15))                               # t_ref + tau ln(I/(I-theta))
    measured = np.diff(np.asarray(mon.t_[:]))
    np.testing.assert_allclose(measured, isi, atol=float(DT))


def test_regular_encoder_counts_err_by_at_most_one_spike():
    rates = np.array([[3.0, 17.0, 52.5, 0.0]])
    group = NeuronGroup(4, namespace={"rate_table": TimedArray(rates * Hz, dt=1 * second)}, dt=DT,
                        method="euler", **encoder_model("regular"))
    group.channel = np.arange(4)
    group.phase = np.random.default_rng(1).uniform(0, 1, 4)
    mon = SpikeMonitor(group)
    Network(group, mon).run(0.8 * second)
    assert np.all(np.abs(np.asarray(mon.count[:]) - rates[0] * 0.8) <= 1)


def test_feature_neuron_rate_is_exponential_in_its_drive():
    """rho = rho_feature * exp(bias) for a constant global offset (no encoder input)."""
    params = circuit_parameters()
    n, duration, bias = 400, 1.0, 0.8
    group = blocks.neuron_group(n, FEATURE_NEURON_EQS, params, {"feature_bias": TimedArray([bias], dt=10 * second)},
                                "features", threshold=FEATURE_NEURON_THRESHOLD, method="exact")
    group.v = params["v_rest"] + params["delta_u"] * bias                     # start settled
    mon = SpikeMonitor(group)
    Network(group, mon).run(duration * second)
    expected = float(params["rho_feature"]) * np.exp(bias) * duration * n
    assert abs(mon.num_spikes - expected) < 4 * np.sqrt(expected)            # Poisson, 4 sigma
