"""The lr1994 astrocyte process against NEST's ``astrocyte_lr_1994`` (NEST 3.10; skipped without NEST).

One process built by the project (``circuits.process_response.simulate_process``: the
circuit's ``blocks.astrocyte`` on a spike generator, started at ``rest_state``) and one NEST
astrocyte with the same parameters and initial state are fed the same spike train (NEST: a
spike_generator, weight 1); IP3 and Ca2+ must agree to 1e-6 uM over the whole trace. Brian2
integrates with rk4, NEST with GSL's adaptive RKF45 (steps of at most its resolution), both at
5 ms: against rk4 at 0.1 ms with the same increment times, rk4 at 5 ms is off by 2e-11 uM and
NEST by 5e-14 uM, so the two differ by ~2e-11 uM (with the pre-release C_ER of NEST's model,
Ca_tot + (Ca_tot - C) / ratio_ER_cyt, by 0.33 uM).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("PYNEST_QUIET", "1")
nest = pytest.importorskip("nest")

from brian2 import ms, umolar  # noqa: E402

from circuits.process_response import process_parameters, simulate_process  # noqa: E402
from models.astrocytes import read_calibration, rest_state  # noqa: E402

#: Time step of both simulators (s) and the tolerance on IP3 and Ca2+ (uM).
DT = 5e-3
TOLERANCE = 1e-6
#: The process's parameters in NEST's units (uM, ms): NEST name -> Brian2 unit.
NEST_UNITS = {"Ca_tot": umolar, "ratio_ER_cyt": 1, "rate_IP3R": 1 / ms, "rate_L": 1 / ms,
              "rate_SERCA": umolar / ms, "Km_SERCA": umolar, "Kd_IP3_1": umolar, "Kd_IP3_2": umolar,
              "Kd_act": umolar, "Kd_inh": umolar, "k_IP3R": 1 / (umolar * ms), "IP3_0": umolar,
              "tau_IP3": ms, "delta_IP3": umolar}


def _nest_parameters(params) -> dict:
    return {name: float(params[name] / unit) for name, unit in NEST_UNITS.items()}


def _fresh_kernel(resolution_ms):
    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.resolution = resolution_ms


def _nest_astrocyte(params, initial, spike_times, duration):
    """NEST's astrocyte_lr_1994 from ``initial`` (uM; h) fed ``spike_times`` (s) with weight 1 for
    ``duration`` s at resolution DT. Returns (t in s, IP3 in uM, Ca in uM), sampled every step
    from DT on (NEST's multimeter has no sample at 0)."""
    _fresh_kernel(DT * 1e3)
    astrocyte = nest.Create("astrocyte_lr_1994", params={**_nest_parameters(params), **initial})
    meter = nest.Create("multimeter", params={"interval": nest.resolution, "record_from": ["IP3", "Ca_astro"]})
    nest.Connect(meter, astrocyte)
    if len(spike_times):
        # NEST delivers a spike emitted at T after its delay d (here one step): IP3 += delta_IP3 after
        # the step that ends at T + d, and the multimeter sample at T + d includes it. Brian2 applies
        # a spike at t_s (on_pre, 'synapses' slot) after the step from t_s to t_s + dt, seen first in
        # the sample at t_s + dt. So the same times (on the DT grid) give the same increments, as
        # NEST's own test_astrocyte.py compensates the delay by spiking one step early.
        # (A one-step misalignment shows as |IP3 - IP3_NEST| = delta_IP3.)
        steps = np.rint(np.asarray(spike_times) / DT).astype(int)
        generator = nest.Create("spike_generator", params={"spike_times": steps * DT * 1e3,
                                                           "spike_weights": np.ones(len(steps))})
        nest.Connect(generator, astrocyte, syn_spec={"weight": 1.0, "delay": nest.resolution})
    nest.Simulate(duration * 1e3)
    events = meter.events
    order = np.argsort(events["times"])
    return events["times"][order] * 1e-3, events["IP3"][order], events["Ca_astro"][order]


def _spike_train():
    """40 irregular spikes over 20 s and a burst of 30 spikes (10 ms apart) at 8 s, on a 10 ms grid
    (a multiple of DT: no rounding of spike times in either simulator)."""
    rng = np.random.default_rng(7)
    irregular = rng.choice(np.arange(1, 2000), size=40, replace=False)
    burst = 800 + np.arange(30)
    return np.unique(np.concatenate([irregular, burst])) * 0.01


def test_lr1994_traces_match_nest():
    """IP3 and Ca2+ of the project's lr1994 process and NEST's astrocyte_lr_1994 on the same spike
    train, with a drive (delta_IP3 = 0.01 uM per spike) whose burst crosses the CICR threshold so
    that a Ca2+ spike (peak ~0.82 uM) is part of the comparison: equal to 1e-6 uM at every sample
    (5 ms) of 25 s."""
    duration = 25.0
    params = process_parameters("lr1994", overrides={"delta_IP3": "0.01*umolar"}, dt=f"{DT}*second")
    rest = rest_state("lr1994", params)
    spikes = _spike_train()
    t, traces = simulate_process("lr1994", params, [spikes], duration, record=("IP3", "C"))
    ip3, ca = traces["IP3"][0] / float(umolar), traces["C"][0] / float(umolar)
    initial = {"IP3": float(rest["IP3"] / umolar), "Ca_astro": float(rest["C"] / umolar), "h_IP3R": float(rest["h"])}
    t_nest, ip3_nest, ca_nest = _nest_astrocyte(params, initial, spikes, duration)

    # Brian2 samples at 0, dt, ..., NEST at dt, 2 dt, ...: compare the common samples.
    np.testing.assert_allclose(t[1:], t_nest[:len(t) - 1], atol=1e-9)
    n = len(t) - 1
    d_ip3 = np.max(np.abs(ip3[1:] - ip3_nest[:n]))
    d_ca = np.max(np.abs(ca[1:] - ca_nest[:n]))
    assert ca_nest.max() > 0.5 and ca.max() > 0.5, "the burst must evoke a Ca2+ spike (CICR)"
    assert ip3_nest.max() > float(read_calibration("lr1994", params)["IP3_cicr"] / umolar)
    assert d_ip3 <= TOLERANCE, f"max |IP3 - IP3_NEST| = {d_ip3:.3g} uM"
    assert d_ca <= TOLERANCE, f"max |Ca - Ca_NEST| = {d_ca:.3g} uM"


def test_lr1994_rest_state_is_nests_steady_state():
    """The rest state the project computes (``rest_state``) is where NEST's astrocyte_lr_1994,
    started from its own default initial state and left without input for 600 s, settles: IP3 and
    Ca2+ within 1e-6 uM, h within 1e-6."""
    params = process_parameters("lr1994")
    rest = rest_state("lr1994", params)
    _fresh_kernel(100.0)     # 0.1 s: the fixed point of the integrator is the ODE's own
    astrocyte = nest.Create("astrocyte_lr_1994", params=_nest_parameters(params))
    nest.Simulate(600e3)
    state = astrocyte.get(["IP3", "Ca_astro", "h_IP3R"])
    assert abs(state["IP3"] - float(rest["IP3"] / umolar)) <= TOLERANCE
    assert abs(state["Ca_astro"] - float(rest["C"] / umolar)) <= TOLERANCE
    assert abs(state["h_IP3R"] - float(rest["h"])) <= TOLERANCE
