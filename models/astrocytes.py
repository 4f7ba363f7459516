"""Astrocyte processes and the astrocyte cell.

An astrocyte process wraps the synapses of one presynaptic feature neuron j (processes at the
synapses of one axon see the same presynaptic release and are lumped into one compartment).
It is a ``Synapses`` object from the feature neurons to the astrocyte, so its state is per
process and the astrocyte cell gathers it with ``(summed)`` variables (Stimberg et al. 2019).

Write phase: presynaptic release raises the process's calcium ``Ca``. Read phase: each
presynaptic spike releases gliotransmitter in proportion to the process's ``Ca``; the astrocyte
integrates it into ``A`` ~ sum_j Ca_j * (recent spikes of j) = z^T phi(q), the denominator of
attention, and scales transmission at all its synapses by 1/A (explicit divisive gain, SCIENCE.md
§2; the value neurons read ``A`` as a linked variable).

Two process models share this interface (a dimensionless ``Ca`` read by the read pathway):

* ``minimal``: dCa/dt = -Ca/tau_ca, Ca += kappa per presynaptic spike in the write phase. With
  tau_ca much longer than the sequence it integrates presynaptic activity: Ca_j = kappa * sum_t n_j(t),
  proportional to z_j. Finite tau_ca weights recent tokens more (forgetting).
* ``gchi``: the G-ChI model (Li-Rinzel CICR with IP3 production and degradation, De Pittà et
  al. 2009; Stimberg et al. 2019, SCIENCE.md §5), driven by glutamate Y_S released at the synapse.
  Ca = C / (1 uM). It saturates and has a resting level, so it bends the ideal ratio.
"""

from brian2 import Hz, ms, second, umolar

from models.parameters import Parameter

#: The astrocyte cell: total process calcium and the read-phase gliotransmitter signal A.
ASTROCYTE_EQS = """
Ca_total : 1
dA/dt = -A / tau_read : 1
"""
#: Process -> astrocyte coupling (summed over the astrocyte's processes).
PROCESS_SUMMED = "Ca_total_post = Ca : 1 (summed)"
#: Read pathway: gliotransmitter release in proportion to the process's calcium.
PROCESS_READ_ON_PRE = "A_post += Ca * read_phase(t)"

MINIMAL_PROCESS_EQS = """
dCa/dt = -Ca / tau_ca : 1 (clock-driven)
"""
MINIMAL_PROCESS_WRITE_ON_PRE = "Ca += kappa * write_phase(t)"

MINIMAL_PROCESS_PARAMETERS = (
    Parameter("tau_ca", 1e4 * second, second, "decay of process calcium (>> sequence: an integrator)",
              "SCIENCE.md §5", positive=True),
    Parameter("kappa", 1e-3, 1, "process calcium per presynaptic spike in the write phase", positive=True),
)

GCHI_PROCESS_EQS = """
dC/dt = J_r + J_l - J_p : mmolar (clock-driven)
dh/dt = (h_inf - h) / tau_h : 1 (clock-driven)
dIP3/dt = J_beta + J_delta - J_3K - J_5P : mmolar (clock-driven)
dGamma_A/dt = O_N * Y_S * (1 - Gamma_A) - Omega_N * (1 + zeta * C / (C + K_KC)) * Gamma_A : 1 (clock-driven)
dY_S/dt = -Y_S / tau_glu : mmolar (clock-driven)
J_r = (Omega_C * m_inf**3 * h**3) * (C_T - (1 + rho_A) * C) : mmolar/second
J_l = Omega_L * (C_T - (1 + rho_A) * C) : mmolar/second
J_p = O_P * C**2 / (C**2 + K_P**2) : mmolar/second
m_inf = IP3 / (IP3 + d_1) * C / (C + d_5) : 1
h_inf = Q_2 / (Q_2 + C) : 1
tau_h = 1 / (O_2 * (Q_2 + C)) : second
Q_2 = d_2 * (IP3 + d_1) / (IP3 + d_3) : mmolar
J_beta = O_beta * Gamma_A : mmolar/second
J_delta = O_delta / (1 + IP3 / kappa_delta) * C**2 / (C**2 + K_delta**2) : mmolar/second
J_3K = O_3K * C**4 / (C**4 + K_D**4) * IP3 / (IP3 + K_3K) : mmolar/second
J_5P = Omega_5P * IP3 : mmolar/second
Ca = C / umolar : 1
"""
GCHI_PROCESS_WRITE_ON_PRE = "Y_S += glu_release * write_phase(t)"
#: A resting state of the G-ChI process (no glutamate).
GCHI_INITIAL = {"C": 0.05 * umolar, "h": 0.9, "IP3": 0.05 * umolar, "Gamma_A": 0.0, "Y_S": 0 * umolar}

_S = "De Pitta et al. 2009; Stimberg et al. 2019"
GCHI_PROCESS_PARAMETERS = (
    Parameter("O_P", 0.9 * umolar / second, umolar / second, "max SERCA uptake rate", _S, positive=True),
    Parameter("K_P", 0.05 * umolar, umolar, "SERCA affinity", _S, positive=True),
    Parameter("C_T", 2 * umolar, umolar, "total free cell Ca2+", _S, positive=True),
    Parameter("rho_A", 0.18, 1, "ER-to-cytoplasm volume ratio", _S, positive=True),
    Parameter("Omega_C", 6 / second, Hz, "max CICR rate", _S, positive=True),
    Parameter("Omega_L", 0.1 / second, Hz, "max Ca2+ leak rate from the ER", _S, positive=True),
    Parameter("d_1", 0.13 * umolar, umolar, "IP3 binding affinity", _S, positive=True),
    Parameter("d_2", 1.05 * umolar, umolar, "Ca2+ inactivation dissociation constant", _S, positive=True),
    Parameter("d_3", 0.9434 * umolar, umolar, "IP3 dissociation constant", _S, positive=True),
    Parameter("d_5", 0.08 * umolar, umolar, "Ca2+ activation dissociation constant", _S, positive=True),
    Parameter("O_2", 0.2 / umolar / second, 1 / umolar / second, "IP3R binding rate for Ca2+ inhibition",
              _S, positive=True),
    Parameter("O_beta", 3.2 * umolar / second, umolar / second, "max IP3 production by glutamate (0.5-5)",
              _S, positive=True),
    Parameter("O_delta", 0.6 * umolar / second, umolar / second, "max IP3 production by PLC-delta", _S,
              positive=True),
    Parameter("kappa_delta", 1.5 * umolar, umolar, "IP3 inhibition of PLC-delta", _S, positive=True),
    Parameter("K_delta", 0.1 * umolar, umolar, "Ca2+ affinity of PLC-delta", _S, positive=True),
    Parameter("Omega_5P", 0.05 / second, Hz, "IP3 degradation by IP-5P", _S, positive=True),
    Parameter("K_D", 0.7 * umolar, umolar, "Ca2+ affinity of IP3-3K", _S, positive=True),
    Parameter("K_3K", 1 * umolar, umolar, "IP3 affinity of IP3-3K", _S, positive=True),
    Parameter("O_3K", 4.5 * umolar / second, umolar / second, "max IP3 degradation by IP3-3K", _S,
              positive=True),
    Parameter("O_N", 0.3 / umolar / second, 1 / umolar / second, "glutamate binding rate of receptors",
              _S, positive=True),
    Parameter("Omega_N", 0.5 / second, Hz, "receptor unbinding rate", _S, positive=True),
    Parameter("K_KC", 0.5 * umolar, umolar, "Ca2+ affinity of PKC", _S, positive=True),
    Parameter("zeta", 10, 1, "max reduction of receptor affinity by PKC", _S, nonnegative=True),
    Parameter("glu_release", 5 * umolar, umolar, "glutamate reaching the process per presynaptic spike",
              positive=True),
    Parameter("tau_glu", 5 * ms, ms, "glutamate clearance time constant", _S, positive=True),
    # G-ChI has no calcium-per-spike constant; the decoder still needs one to turn counts into
    # outputs (see experiments.astrocyte_models for a calibration and how far G-ChI bends the ratio).
    Parameter("kappa", 0.01, 1, "decoder's reference: process Ca (in uM) per presynaptic write spike",
              positive=True),
)

ASTROCYTE_MODELS = ("minimal", "gchi")


def process_model(kind: str) -> dict:
    """Equations, write-phase update and parameters of an astrocyte process model."""
    if kind == "minimal":
        return {"model": MINIMAL_PROCESS_EQS, "on_write": MINIMAL_PROCESS_WRITE_ON_PRE,
                "parameters": MINIMAL_PROCESS_PARAMETERS, "initial": {}}
    if kind == "gchi":
        return {"model": GCHI_PROCESS_EQS, "on_write": GCHI_PROCESS_WRITE_ON_PRE,
                "parameters": GCHI_PROCESS_PARAMETERS, "initial": GCHI_INITIAL}
    raise ValueError(f"unknown astrocyte model {kind!r}; choose one of {', '.join(ASTROCYTE_MODELS)}")
