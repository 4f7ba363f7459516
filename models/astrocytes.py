"""Astrocyte processes and the astrocyte cell.

An astrocyte process wraps the synapses of one presynaptic neuron j (processes at the synapses of
one axon see the same presynaptic release and are lumped into one compartment). It is a
``Synapses`` object from the presynaptic neurons to the astrocyte, so its state is per process
and the astrocyte cell gathers it with ``(summed)`` variables, as in Brian2's neuron-glia
examples (Stimberg, Goodman, Brette & De Pittà 2019, doi:10.1007/978-3-030-00817-8_18).

Write phase: presynaptic release drives the process. Read phase: each presynaptic spike releases
gliotransmitter in proportion to the process's dimensionless ``release`` variable; the astrocyte
integrates it into ``A`` ~ sum_j release_j * (recent spikes of j) = z^T phi(q), the denominator of
attention, and scales transmission at its synapses by 1/A (docs/model.md §2, §5).

Three process models share this interface (``release`` is kappa per write spike where the model
integrates linearly):

* ``minimal``: dCa/dt = -Ca/tau_ca, Ca += kappa per write spike; release = Ca.
* ``gchi``: the G-ChI model (Li-Rinzel CICR with IP3 production and degradation; De Pittà et al.
  2009, doi:10.1007/s10867-009-9155-y), driven by glutamate released at the synapse onto
  metabotropic receptors (Gamma_A), with the IP3 exchange term J_ex of Brian2's
  ``examples/frompapers/Stimberg_et_al_2018/example_4_synrel.py``. Presets: ``integrator`` (the
  circuits' default: ``depitta2009`` with the IP3 turnover, Omega_5P and O_delta, 5x slower, so
  that the IP3 lifetime, ~215 s, is long against the write span and attention is not weighted by
  recency), ``depitta2009`` (De Pittà 2009 amplitude-modulation constants, a fixed weak glutamate
  release per spike; IP3 lifetime ~47 s, that of the process linearised at rest) and
  ``stimberg2018`` (example_4's astrocyte and synapse: short-term plasticity, release
  rho_c Y_T r_S, clearance Omega_c; I_bias = 0; the gliotransmitter feedback onto the synapse is
  left out).
* ``lr1994``: Li-Rinzel Ca2+ dynamics with linear IP3 integration, as NEST's ``astrocyte_lr_1994``
  (Li & Rinzel 1994, doi:10.1006/jtbi.1994.1041; input after Nadkarni & Jung 2003,
  doi:10.1103/PhysRevLett.91.268101): dIP3/dt = (IP3_0 - IP3)/tau_IP3, IP3 += delta_IP3 per spike.

**Read-out of gchi and lr1994 (a modelling choice).** Gliotransmission is proportional to the
process's IP3 above its rest, in units of the IP3 one write spike adds:
release = kappa (IP3 - IP3_rest) / IP3_per_spike. Calcium is not an integrator: below the CICR
threshold it is convex in the input (IP3-receptor opening goes as m_inf^3), above it all-or-none.
IP3 is the integrating stage of both models (Nadkarni & Jung 2003; NEST's model), and perisynaptic
processes largely lack ER stores, so their signalling is the IP3 stage rather than CICR. The limit:
once IP3 reaches the CICR threshold, calcium fires and in the G-ChI model feeds back onto IP3 (PLC
delta, IP3-3K); :func:`read_calibration` gives the spike count per process where that starts.
"""

import functools

import numpy as np
from brian2 import Equations, Hz, mmolar, second, umolar
from brian2.parsing.sympytools import str_to_sympy
import sympy

from models.parameters import Parameter, ParameterError

#: The astrocyte cell: total process calcium and the read-phase gliotransmitter signal A.
ASTROCYTE_EQS = """
Ca_total : 1
dA/dt = -A / tau_read : 1
"""
#: Process -> astrocyte coupling (summed over the astrocyte's processes).
PROCESS_SUMMED = "Ca_total_post = Ca : 1 (summed)"
#: Read pathway: gliotransmitter release in proportion to the process's read variable.
PROCESS_READ_ON_PRE = "A_post += release * read_phase(t)"
#: The astrocyte cell under the one-spike key code (circuits.exact_latency, ``key_code="latency"``):
#: A sums, over the key spikes of one key window, each process's release times the spike's
#: efficacy e_t = exp((u_t - theta_ref) / delta_u) (to B_key^(+-1/2)), so A = sum_t release_t e_t,
#: the attention denominator times exp(-theta_ref / delta_u); no leak within the read, cleared at
#: each key window's start (ONE_SPIKE_ASTROCYTE_WINDOWS).
ONE_SPIKE_ASTROCYTE_EQS = """
Ca_total : 1
A : 1
"""
ONE_SPIKE_READ_ON_PRE = "A_post += release * efficacy_pre * read_phase(t)"
ONE_SPIKE_ASTROCYTE_WINDOWS = "A = (1 - key_start(t)) * A"

# ----------------------------------------------------------------------------------- minimal

MINIMAL_PROCESS_EQS = """
dCa/dt = -Ca / tau_ca : 1 (clock-driven)
release = Ca          : 1
"""
MINIMAL_PROCESS_WRITE_ON_PRE = "Ca += kappa * write_phase(t)"

MINIMAL_PROCESS_PARAMETERS = (
    Parameter("tau_ca", 1e4 * second, second, "decay of process calcium (>> sequence: an integrator)",
              "docs/model.md §5", positive=True),
    Parameter("kappa", 1e-3, 1, "process calcium per presynaptic spike in the write phase", positive=True),
)

# -------------------------------------------------------------------------------------- G-ChI

GCHI_PROCESS_EQS = """
# Fraction of activated astrocyte receptors
dGamma_A/dt = O_N * Y_S * (1 - Gamma_A) -
              Omega_N * (1 + zeta * C / (C + K_KC)) * Gamma_A       : 1 (clock-driven)

# IP_3 dynamics
dIP3/dt = J_beta + J_delta - J_3K - J_5P + J_ex                     : mmolar (clock-driven)
J_beta = O_beta * Gamma_A                                           : mmolar/second
J_delta = O_delta / (1 + IP3 / kappa_delta) * C**2 / (C**2 + K_delta**2) : mmolar/second
J_3K = O_3K * C**4 / (C**4 + K_D**4) * IP3 / (IP3 + K_3K)           : mmolar/second
J_5P = Omega_5P * IP3                                               : mmolar/second
J_ex = -F_ex / 2 * (1 + tanh((abs(IP3) - I_Theta) / omega_I)) * sign(IP3) : mmolar/second

# Ca^2+-induced Ca^2+ release
dC/dt = (Omega_C * m_inf**3 * h**3 + Omega_L) * (C_T - (1 + rho_A) * C) -
        O_P * C**2 / (C**2 + K_P**2)                                : mmolar (clock-driven)
dh/dt = (h_inf - h) / tau_h                                         : 1 (clock-driven)
m_inf = IP3 / (IP3 + d_1) * C / (C + d_5)                           : 1
h_inf = Q_2 / (Q_2 + C)                                             : 1
tau_h = 1 / (O_2 * (Q_2 + C))                                       : second
Q_2 = d_2 * (IP3 + d_1) / (IP3 + d_3)                               : mmolar

# Read-out: gliotransmission in proportion to IP_3 above rest
Ca = C / umolar                                                     : 1
release = kappa * (IP3 - IP3_rest) / IP3_per_spike                  : 1
"""
#: Glutamate at the process, depitta2009: a fixed release per write spike, cleared at Omega_c.
FIXED_RELEASE_EQS = """
# Glutamate in the perisynaptic space
dY_S/dt = -Omega_c * Y_S                                            : mmolar (clock-driven)
"""
FIXED_RELEASE_ON_PRE = "Y_S += Y_0 * write_phase(t)"
#: Glutamate at the process, stimberg2018: example_4's synapse (short-term plasticity, no
#: presynaptic gliotransmitter receptors: U_0 = U_0__star).
STP_RELEASE_EQS = """
# Glutamate in the perisynaptic space
dY_S/dt = -Omega_c * Y_S                                            : mmolar (clock-driven)
# Short-term plasticity: usage and available resources
du_S/dt = -Omega_f * u_S                                            : 1 (event-driven)
dx_S/dt = Omega_d * (1 - x_S)                                       : 1 (event-driven)
r_S                                                                 : 1
"""
STP_RELEASE_ON_PRE = """
u_S += U_0__star * (1 - u_S)
r_S = u_S * x_S
x_S -= r_S
Y_S += rho_c * Y_T * r_S * write_phase(t)
"""

_EX4 = "Stimberg et al. 2019, example_4_synrel.py"
_DP09 = "De Pittà et al. 2009, AM set"
_PROJECT = "this project"


def _p(name, value, unit, doc, source, positive=True):
    return Parameter(name, value, unit, doc, source, positive=positive, nonnegative=not positive)


# Each entry: name, example_4 value, De Pitta 2009 AM value (None: as example_4), unit, meaning.
_GCHI_TABLE = (
    # --- Ca^2+ fluxes
    ("O_P", 0.9 * umolar / second, None, umolar / second, "maximal Ca2+ uptake rate by SERCAs"),
    ("K_P", 0.05 * umolar, 0.1 * umolar, umolar, "Ca2+ affinity of SERCAs"),
    ("C_T", 2 * umolar, None, umolar, "total cell free Ca2+ content"),
    ("rho_A", 0.18, 0.185, 1, "ER-to-cytoplasm volume ratio"),
    ("Omega_C", 6 / second, None, Hz, "maximal rate of Ca2+ release by IP3Rs"),
    ("Omega_L", 0.1 / second, 0.11 / second, Hz, "maximal rate of Ca2+ leak from the ER"),
    # --- IP_3R kinetics
    ("d_1", 0.13 * umolar, None, umolar, "IP3 binding affinity"),
    ("d_2", 1.05 * umolar, 1.049 * umolar, umolar, "Ca2+ inactivation dissociation constant"),
    ("O_2", 0.2 / umolar / second, None, 1 / umolar / second, "IP3R binding rate for Ca2+ inhibition"),
    ("d_3", 0.9434 * umolar, None, umolar, "IP3 dissociation constant"),
    ("d_5", 0.08 * umolar, 0.08234 * umolar, umolar, "Ca2+ activation dissociation constant"),
    # --- Endogenous IP_3 production (PLC delta)
    ("O_delta", 0.6 * umolar / second, 0.02 * umolar / second, umolar / second,
     "maximal rate of IP3 production by PLC delta"),
    ("kappa_delta", 1.5 * umolar, None, umolar, "inhibition constant of PLC delta by IP3"),
    ("K_delta", 0.1 * umolar, None, umolar, "Ca2+ affinity of PLC delta"),
    # --- IP_3 degradation
    ("Omega_5P", 0.05 / second, 0.04 / second, Hz, "maximal rate of IP3 degradation by IP-5P"),
    ("K_D", 0.7 * umolar, None, umolar, "Ca2+ affinity of IP3-3K"),
    ("K_3K", 1.0 * umolar, None, umolar, "IP3 affinity of IP3-3K"),
    ("O_3K", 4.5 * umolar / second, 2 * umolar / second, umolar / second,
     "maximal rate of IP3 degradation by IP3-3K"),
)
_EXCHANGE = (
    # --- IP_3 exchange with the rest of the cell (I_bias = 0)
    _p("F_ex", 2.0 * umolar / second, umolar / second, "maximal exogenous IP3 flow", _EX4, positive=False),
    _p("I_Theta", 0.3 * umolar, umolar, "threshold gradient for IP3 exchange", _EX4),
    _p("omega_I", 0.05 * umolar, umolar, "scaling factor of IP3 exchange", _EX4),
)
_RECEPTORS = (
    # --- Agonist-dependent IP_3 production (PLC beta, metabotropic receptors)
    _p("O_beta", 3.2 * umolar / second, umolar / second, "maximal rate of IP3 production by PLC beta", _EX4),
    _p("O_N", 0.3 / umolar / second, 1 / umolar / second, "agonist binding rate of the receptors", _EX4),
    _p("Omega_N", 0.5 / second, Hz, "maximal receptor inactivation rate", _EX4),
    _p("K_KC", 0.5 * umolar, umolar, "Ca2+ affinity of PKC", _EX4),
    _p("zeta", 10, 1, "maximal reduction of receptor affinity by PKC", _EX4, positive=False),
    _p("Omega_c", 40 / second, Hz, "glutamate clearance rate", _EX4),
)
_STP_SYNAPSE = (
    # --- example_4's synapse
    _p("rho_c", 0.005, 1, "synaptic vesicle-to-extracellular space volume ratio", _EX4),
    _p("Y_T", 500 * mmolar, mmolar, "total vesicular glutamate concentration", _EX4),
    _p("U_0__star", 0.6, 1, "resting synaptic release probability", _EX4),
    _p("Omega_f", 3.33 / second, Hz, "synaptic facilitation rate", _EX4),
    _p("Omega_d", 2.0 / second, Hz, "synaptic depression rate", _EX4),
)
_FIXED_SYNAPSE = (
    _p("Y_0", 0.004 * umolar, umolar,
       "glutamate reaching the process per write spike (weak: receptor occupancy stays low and the CICR "
       "count is ~2400 spikes, so the main experiment's busiest process, ~340, sits at 1/7 of it, within "
       "1 % of the linear IP3 read-out (results/README.md, regime map), and head_spec accepts ~7x that "
       "load; example_4's synapse releases rho_c Y_T U_0* = 1.5 mM)", _PROJECT),
)
#: The decoder's reference (release per write spike where the read-out is linear).
_KAPPA = Parameter("kappa", 1e-3, 1, "gliotransmitter release per write spike (the decoder's gain)",
                   positive=True)


#: The ``integrator`` preset: De Pittà 2009's constants with the IP3 turnover (production by PLC
#: delta and degradation by IP-5P, scaled together: the same IP3 rest) this many times slower, so
#: that the process's IP3 lifetime (~215 s) is ~30x the main experiment's write span (6.4 s) and its
#: read-out integrates over a sequence as the paper's astrocyte does (docs/model.md §5).
INTEGRATOR_SLOWING = 5
_SLOWED = ("Omega_5P", "O_delta")


def _gchi_parameters(preset):
    literature = "stimberg2018" if preset == "stimberg2018" else "depitta2009"
    intracellular = tuple(
        _p(name, ex4 if literature == "stimberg2018" or dp09 is None else dp09, unit, doc,
           _EX4 if literature == "stimberg2018" or dp09 is None else _DP09)
        for name, ex4, dp09, unit, doc in _GCHI_TABLE)
    if preset == "integrator":
        intracellular = tuple(
            _p(p.name, p.default / INTEGRATOR_SLOWING, p.unit, p.doc + f" (/{INTEGRATOR_SLOWING}: IP3 lifetime "
               "long against the write span)", f"{_DP09} / {INTEGRATOR_SLOWING}, this project")
            if p.name in _SLOWED else p for p in intracellular)
    exchange = _EXCHANGE
    if literature == "depitta2009":   # a single isolated process: no IP3 exchange with the cell
        exchange = (_p("F_ex", 0 * umolar / second, umolar / second, "maximal exogenous IP3 flow (none: "
                       "De Pittà 2009 has no IP3 exchange)", _DP09, positive=False),) + _EXCHANGE[1:]
    synapse = _STP_SYNAPSE if preset == "stimberg2018" else _FIXED_SYNAPSE
    return intracellular + exchange + _RECEPTORS + synapse + (_KAPPA,)


# ------------------------------------------------------------------------------------- lr1994

#: NEST 3.10's ``astrocyte_lr_1994`` (models/astrocyte_lr_1994.cpp, ``astrocyte_lr_1994_dynamics``
#: and ``update``), term by term, in SI units (NEST: uM and ms). C_ER is the ER concentration of
#: the Li-Rinzel model, (Ca_tot - C) / ratio_ER_cyt (NEST's form since its first release, 3.6; an
#: earlier draft of NEST's model had Ca_tot + (Ca_tot - C) / ratio_ER_cyt, which raised the rest
#: calcium from 0.0722 to 0.0864 uM). NEST keeps calcium within [0, Ca_tot] twice: the right-hand
#: side uses C clipped to that range, and the state is clamped to it after every step. Brian2
#: cannot clamp a clock-driven variable inside the equations, and a per-step ``run_regularly`` on
#: every process would cost a code object per step, so the process reproduces the first: all
#: fluxes and the h kinetics see ``C_in = clip(C, 0, Ca_tot)``. The second then never binds for
#: the exact flow: [0, Ca_tot] is invariant (at C = 0 only the leak acts, into the cytosol; at
#: C = Ca_tot, C_ER = 0, so channel, leak and pump all move Ca2+ into the ER), so C leaves it only
#: by an integration step overshooting a bound, and the clipped right-hand side brings it back.
#: Synaptic input as in NEST's ``update``: each write spike adds delta_IP3 (NEST: delta_IP3 times
#: the spike's weight) to IP3 after the step's integration. NEST integrates with GSL's adaptive
#: RKF45 (absolute tolerance 1e-3 uM, steps at most the resolution); the process uses rk4 at the
#: circuit's dt. tests/test_nest_crosscheck.py checks the traces against NEST to 1e-6 uM.
LR1994_PROCESS_EQS = """
# IP_3 dynamics: linear integration of synaptic input
dIP3/dt = (IP3_0 - IP3) / tau_IP3                                  : mmolar (clock-driven)

# Ca^2+ dynamics (Li-Rinzel): IP3R channel, ER leak, SERCA pump
dC/dt = J_channel - J_pump + J_leak                                : mmolar (clock-driven)
# Cytosolic Ca^2+ as the fluxes see it: kept within [0, Ca_tot], as in NEST
C_in = clip(C, 0 * Ca_tot, Ca_tot)                                 : mmolar
J_channel = ratio_ER_cyt * rate_IP3R * m_inf**3 * n_inf**3 * h**3 * (C_ER - C_in) : mmolar/second
J_leak = ratio_ER_cyt * rate_L * (C_ER - C_in)                     : mmolar/second
J_pump = rate_SERCA * C_in**2 / (C_in**2 + Km_SERCA**2)            : mmolar/second
# ER Ca^2+: the total not in the cytosol, per ER volume
C_ER = (Ca_tot - C_in) / ratio_ER_cyt                              : mmolar
m_inf = IP3 / (IP3 + Kd_IP3_1)                                     : 1
n_inf = C_in / (C_in + Kd_act)                                     : 1
# Fraction of IP3 receptors not inactivated by Ca^2+
dh/dt = alpha_h * (1 - h) - beta_h * h                             : 1 (clock-driven)
alpha_h = k_IP3R * Kd_inh * (IP3 + Kd_IP3_1) / (IP3 + Kd_IP3_2)    : Hz
beta_h = k_IP3R * C_in                                             : Hz

# Read-out: gliotransmission in proportion to IP_3 above rest
Ca = C / umolar                                                    : 1
release = kappa * (IP3 - IP3_rest) / IP3_per_spike                 : 1
"""
#: NEST: IP3 += delta_IP3 * (summed weight of the step's spikes); here one write spike has weight 1.
LR1994_WRITE_ON_PRE = "IP3 += delta_IP3 * write_phase(t)"

_NEST = "NEST 3.10 astrocyte_lr_1994 default (Nadkarni & Jung 2003)"
LR1994_PARAMETERS = (
    # --- Ca^2+ fluxes
    _p("Ca_tot", 2.0 * umolar, umolar, "total free Ca2+ in terms of cytosolic volume", _NEST),
    _p("ratio_ER_cyt", 0.185, 1, "ER-to-cytosol volume ratio", _NEST),
    _p("rate_IP3R", 6 / second, Hz, "maximal rate of Ca2+ release by IP3Rs", _NEST),
    _p("rate_L", 0.11 / second, Hz, "rate of Ca2+ leak from the ER", _NEST),
    _p("rate_SERCA", 0.9 * umolar / second, umolar / second, "maximal SERCA uptake rate", _NEST),
    _p("Km_SERCA", 0.1 * umolar, umolar, "half-activation constant of SERCA", _NEST),
    # --- IP_3R kinetics
    _p("Kd_IP3_1", 0.13 * umolar, umolar, "first IP3R dissociation constant of IP3", _NEST),
    _p("Kd_IP3_2", 0.9434 * umolar, umolar, "second IP3R dissociation constant of IP3", _NEST),
    _p("Kd_act", 0.08234 * umolar, umolar, "IP3R dissociation constant of Ca2+ (activation)", _NEST),
    _p("Kd_inh", 1.049 * umolar, umolar, "IP3R dissociation constant of Ca2+ (inhibition)", _NEST),
    _p("k_IP3R", 0.2 / umolar / second, 1 / umolar / second, "IP3R binding rate for Ca2+ inhibition", _NEST),
    # --- IP_3 integration
    _p("IP3_0", 0.16 * umolar, umolar, "resting IP3", _NEST, positive=False),
    _p("tau_IP3", 300 * second, second, "IP3 decay time constant (circuit regime: ~50x the main experiment's "
       "write span, so attention is not weighted by recency; NEST's default: 7142 ms)", _PROJECT),
    _p("delta_IP3", 0.25e-3 * umolar, umolar,
       "IP3 added per write spike (weak: sub-threshold for ~780 fast spikes; NEST's default: 0.0002 uM per "
       "unit weight since NEST 3.9, 5 uM in 3.6-3.8)", _PROJECT),
    _KAPPA,
)

# ------------------------------------------------------------------------------ the interface

ASTROCYTE_MODELS = ("minimal", "gchi", "lr1994")
#: Named parameter presets of each process model; the first is the default (used by the circuits).
PRESETS = {"minimal": ("project",), "gchi": ("integrator", "depitta2009", "stimberg2018"), "lr1994": ("nest",)}
#: Integration method of each process model.
_METHODS = {"minimal": "exact", "gchi": "rk4", "lr1994": "rk4"}


def process_model(kind: str, preset: str | None = None) -> dict:
    """Equations, write-phase update, parameters, integration method and initial state of a
    process model. ``initial`` is empty: :func:`rest_state` computes it from the parameters."""
    if kind not in ASTROCYTE_MODELS:
        raise ValueError(f"unknown astrocyte model {kind!r}; choose one of {', '.join(ASTROCYTE_MODELS)}")
    preset = PRESETS[kind][0] if preset is None else preset
    if preset not in PRESETS[kind]:
        raise ValueError(f"unknown preset {preset!r} of the {kind} process; choose one of {', '.join(PRESETS[kind])}")
    spec = {"kind": kind, "preset": preset, "method": _METHODS[kind], "initial": {}}
    if kind == "minimal":
        return dict(spec, model=MINIMAL_PROCESS_EQS, on_write=MINIMAL_PROCESS_WRITE_ON_PRE,
                    parameters=MINIMAL_PROCESS_PARAMETERS)
    if kind == "lr1994":
        return dict(spec, model=LR1994_PROCESS_EQS, on_write=LR1994_WRITE_ON_PRE, parameters=LR1994_PARAMETERS)
    glutamate, on_write = ((STP_RELEASE_EQS, STP_RELEASE_ON_PRE) if preset == "stimberg2018"
                           else (FIXED_RELEASE_EQS, FIXED_RELEASE_ON_PRE))
    return dict(spec, model=glutamate + GCHI_PROCESS_EQS, on_write=on_write, parameters=_gchi_parameters(preset))


def process_kind(params) -> str:
    """The process model (default preset) whose parameters ``params`` (a circuit's ParameterSet) holds."""
    for kind in ASTROCYTE_MODELS:
        if all(p.name in params for p in process_model(kind)["parameters"]):
            return kind
    raise ValueError("these parameters hold no astrocyte process model")


# ------------------------------------------------------------------- rest state and read-out

#: A rest state has calcium below half the gliotransmission threshold C_Theta = 0.5 uM of example_4.
REST_CA_MAX = 0.25 * umolar
#: Variables that are zero at rest (no input) and are not solved for.
_INPUTS = ("Y_S", "u_S", "r_S")
#: Starting point of the rest-state search (low calcium), in each variable's unit.
_GUESS = {"C": 0.05 * umolar, "h": 0.9, "IP3": 0.05 * umolar, "Gamma_A": 0.0}


def _vector_field(kind, preset, params, clamp=()):
    """The right-hand side f(state) of the process's ODEs without input, as a NumPy function of
    the state in SI units; ``clamp``: variables held fixed (their derivative is dropped)."""
    spec = process_model(kind, preset)
    eqs = Equations(spec["model"])
    # Sorted: diff_eq_names is a set, whose order (hence rounding in the solvers) varies run to run.
    names = sorted(n for n in eqs.diff_eq_names if n not in _INPUTS + ("x_S",) + tuple(clamp))
    values = {n: float(v) for n, v in params.items() if n != "dt"}
    values.update({n: 0.0 for n in _INPUTS}, x_S=1.0)
    exprs = dict(eqs.get_substituted_expressions())
    symbols = [sympy.Symbol(n, real=True) for n in names]
    rhs = []
    for n in names:
        expr = str_to_sympy(exprs[n].code)
        rhs.append(expr.subs({sympy.Symbol(k, real=True): v for k, v in values.items()}
                             ).subs({sympy.Symbol(k): v for k, v in values.items()}))
    return names, sympy.lambdify([symbols + [sympy.Symbol(c) for c in clamp]], rhs, modules="numpy")


def _scale(name):
    return float(umolar) if name in ("C", "IP3") else 1.0


def _solve_rest(names, f, start, fixed=(), relax=200.0):
    """A fixed point of f near where the dynamics go from ``start``: ``relax`` seconds of RK4
    (20 ms steps), then Newton's method (finite-difference Jacobian, variables in uM). Returns the
    state, the largest scaled residual and the Jacobian's eigenvalues there."""
    scale = np.array([_scale(n) for n in names])
    x = np.array(start, dtype=float) / scale

    def g(y):
        return np.asarray(f(list(y * scale) + list(fixed)), dtype=float) / scale

    def jacobian(y):
        eps = 1e-7 * np.maximum(np.abs(y), 1e-3)
        return np.stack([(g(y + e) - g(y - e)) / (2 * e[i]) for i, e in enumerate(np.diag(eps))], axis=1)

    dt = 0.02
    for _ in range(int(relax / dt)):
        k1 = g(x)
        k2 = g(x + dt / 2 * k1)
        k3 = g(x + dt / 2 * k2)
        k4 = g(x + dt * k3)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    for _ in range(50):
        try:
            step = np.linalg.solve(jacobian(x), -g(x))
        except np.linalg.LinAlgError:     # stepped where f ignores a variable (lr1994: Ca2+ outside
            break                         # [0, Ca_tot], clipped): no fixed point; the residual says so
        x = x + step
        if np.max(np.abs(step)) < 1e-13:
            break
    return x * scale, float(np.max(np.abs(g(x)))), np.linalg.eigvals(jacobian(x))


def rest_state(kind, params, preset=None) -> dict:
    """The resting state of a process (no input) in Brian2 units: a stable fixed point with low
    calcium. ParameterError (one line) if the parameters give none."""
    if kind == "minimal":
        return {}
    names, state = _rest(kind, preset, _process_items(kind, params, preset))
    return {n: v * mmolar if n in ("C", "IP3") else v for n, v in zip(names, state)}


def _process_items(kind, params, preset) -> tuple:
    """(name, SI value) of the process model's parameters: the key of the cached solvers."""
    return tuple((p.name, float(params[p.name])) for p in process_model(kind, preset)["parameters"])


@functools.lru_cache(maxsize=64)
def _rest(kind, preset, items) -> tuple:
    """(state names, rest state in SI units) of :func:`rest_state`, solved once per parameter values
    (a circuit build, its calibration and its tau_hebb coupling all ask for it)."""
    params = dict(items)
    names, f = _vector_field(kind, preset, params)
    start = [float(_GUESS[n]) for n in names]
    if kind == "lr1994":
        start[names.index("IP3")] = float(params["IP3_0"])
    state, residual, eigenvalues = _solve_rest(names, f, start)
    low = state[names.index("C")] < float(REST_CA_MAX)
    if not np.all(np.isfinite(state)) or residual > 1e-9 or np.max(eigenvalues.real) >= 0 or not low:
        raise ParameterError(f"the {kind} process has no stable low-calcium rest state with these parameters "
                             f"(it oscillates or fires on its own)")
    return tuple(names), tuple(state)


def cicr_threshold_ip3(kind, params, preset=None, rest=None) -> float:
    """The IP3 level (in mol/m^3 = mM) above which calcium leaves its low rest: with IP3 clamped,
    the smallest IP3 at which the (C, h) rest loses stability (bisection)."""
    names, f = _vector_field(kind, preset, params, clamp=("IP3",) + (("Gamma_A",) if kind == "gchi" else ()))
    rest = rest_state(kind, params, preset) if rest is None else rest
    start = [float(rest[n]) for n in names]
    extra = (0.0,) if kind == "gchi" else ()

    def stable(ip3):
        state, residual, eig = _solve_rest(names, f, start, fixed=(ip3,) + extra, relax=0.0)
        return residual < 1e-9 and np.max(eig.real) < 0 and state[names.index("C")] < 0.5 * float(umolar)

    low, high = float(rest["IP3"]), 10 * float(umolar)
    if stable(high):
        return np.inf
    for _ in range(40):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if stable(mid) else (low, mid)
    return high


def read_calibration(kind, params, preset=None) -> dict:
    """Constants of the IP3 read-out at rest: ``IP3_rest`` and ``IP3_per_spike`` (Brian2
    quantities: the read variable's zero and unit), the IP3 lifetime ``tau_IP3_eff`` (s: the time
    integral of the IP3 response to one spike, in units of ``IP3_per_spike``; a single exponential
    exp(-age/tau) integrates to tau), ``tau_receptor`` (s, how long one spike keeps producing
    IP3: the receptors' deactivation time for gchi, 0 for lr1994's instant increment),
    ``ip3_modes`` (the IP3 response to one write spike, in units of ``IP3_per_spike``, as
    ((rate in 1/s, coefficient), ...): IP3 - IP3_rest = sum coefficient exp(rate age), complex pairs
    included), ``IP3_cicr`` (the CICR threshold) and ``cicr_spikes``, the write spikes per process
    (delivered fast against the IP3 lifetime) that take IP3 there.

    G-ChI, linear in the input at low receptor occupancy: each spike adds Y_0 glutamate, cleared at
    Omega_c (fast against the receptors: taken as instant), which activates O_N Y_0 / Omega_c
    receptors, inactivated at Omega_N (1 + zeta C/(C + K_KC)), which make O_beta IP3 per unit
    occupancy and second. The IP3 response is that of the full system linearised at rest: Ca2+ and
    h follow IP3 and feed back through PLC delta and IP3-3K, so IP3 lives longer than its own
    degradation alone (depitta2009: ~47 s against ~23 s with Ca2+ and h held fixed). Cached per
    parameter values.
    """
    if kind == "minimal":
        return {}
    rest, per_spike, modes, receptor, threshold = _calibration(kind, preset, _process_items(kind, params, preset))
    return {"IP3_rest": rest * mmolar, "IP3_per_spike": per_spike * mmolar,
            "tau_IP3_eff": sum(-coefficient / rate for rate, coefficient in modes).real,
            "tau_receptor": receptor, "ip3_modes": modes, "IP3_cicr": threshold * mmolar,
            "cicr_spikes": (threshold - rest) / per_spike}


def ip3_memory(age, calibration) -> np.ndarray:
    """IP3 above rest at ``age`` (s) after one write spike, in units of ``IP3_per_spike``: the
    linearised response ``calibration["ip3_modes"]`` (for lr1994 exp(-age/tau_IP3)); 0 for age <= 0."""
    age = np.asarray(age, dtype=float)
    after = np.maximum(age, 0)[..., None]
    rates, coefficients = (np.array(column) for column in zip(*calibration["ip3_modes"]))
    return np.where(age > 0, (coefficients * np.exp(rates * after)).sum(axis=-1).real, 0.0)


def _ip3_modes(jacobian, ip3, kick, gain):
    """Modes (rate, coefficient) of IP3's response to a unit ``kick`` of state variable index ``kick``
    under the linear system ``jacobian``, times ``gain``."""
    rates, vectors = np.linalg.eig(jacobian)
    coefficients = gain * vectors[ip3] * np.linalg.solve(vectors, np.eye(len(rates))[kick])
    return tuple((complex(r), complex(c)) for r, c in zip(rates, coefficients))


@functools.lru_cache(maxsize=32)
def _calibration(kind, preset, items):
    """(IP3 rest, IP3 per spike, IP3 response modes, receptor time, CICR threshold) in SI units;
    ``items``: (name, SI value)."""
    params = dict(items)
    rest = rest_state(kind, params, preset)
    ip3_rest, c = float(rest["IP3"]), float(rest["C"])
    threshold = cicr_threshold_ip3(kind, params, preset, rest)
    if kind == "lr1994":
        return ip3_rest, params["delta_IP3"], ((-1.0 / params["tau_IP3"], 1.0),), 0.0, threshold
    release = params["Y_0"] if "Y_0" in params else params["rho_c"] * params["Y_T"] * params["U_0__star"]
    occupancy = params["O_N"] * release / params["Omega_c"]
    inactivation = params["Omega_N"] * (1 + params["zeta"] * c / (c + params["K_KC"]))
    per_spike = params["O_beta"] * occupancy / inactivation
    names, f = _vector_field(kind, preset, params)
    x0 = np.array([float(rest[n]) for n in names])
    steps = 1e-7 * np.maximum(np.abs(x0), np.array([_scale(n) * 1e-3 for n in names]))
    jacobian = np.stack([(np.asarray(f(list(x0 + e)), dtype=float) - np.asarray(f(list(x0 - e)), dtype=float))
                         / (2 * e[i]) for i, e in enumerate(np.diag(steps))], axis=1)
    modes = _ip3_modes(jacobian, names.index("IP3"), names.index("Gamma_A"), occupancy / per_spike)
    return ip3_rest, per_spike, modes, 1.0 / inactivation, threshold
