"""What the astrocyte sends back to neurons in the read phase: the signals that normalise attention.

The astrocyte cell (``models.astrocytes.ASTROCYTE_EQS``) integrates, over its processes, each
presynaptic read spike weighted by its process's memory of the write phase (``release``):

    A ~ tau_read * sum_j release_j * rho_j(q),

the denominator of attention (z^T phi(q) for feature neurons; sum_t z_t exp(beta q.k_t) for the key
populations of the exact circuit). Two signals carry it back (docs/model.md §2):

* **Divisive gain on the value synapses** (both circuits): the value neurons fire at
  rho_value * I_num / A (``models.neurons``), gliotransmitter-mediated scaling of transmission at
  the astrocyte's synapses.
* **Adenosine feedback onto the key neurons** (exact-kernel circuit): the astrocyte releases ATP
  in proportion to A; extracellular ATP is hydrolysed to adenosine, which acts on A1 receptors of
  every neuron in the astrocyte's domain (heterosynaptic, domain-wide depression: Pascual et al.
  2005, doi:10.1126/science.1116916; Serrano et al. 2006, doi:10.1523/JNEUROSCI.5255-05.2006).
  Postsynaptic A1 receptors open G-protein-gated inwardly rectifying K+ (GIRK) channels and
  hyperpolarise the neuron (Lüscher et al. 1997, doi:10.1016/S0896-6273(00)80381-5): a shift
  ``theta`` of the key neurons' potential, which their exponential escape noise turns into a common
  factor exp(-theta / delta_u) of every key rate. The hyperpolarisation integrates the fold change
  of the astrocyte's signal from a set point, d theta/dt = delta_u ln(A / A_target) / tau_theta
  (a modelling choice: integral control, which holds A at its set point whatever the scores, in the
  log domain, which recovers from a silent or a saturated key layer at a speed that grows with the
  mismatch, unlike a constant-rate clearance), so in each read

      exp(theta / delta_u) = rho_key * n_key / R_key_target * sum_t (release_t / release_ref) exp(beta q.k_t),

  i.e. the astrocyte's adenosine signal *is* the attention denominator sum_t z_t exp(beta q.k_t)
  (up to a constant), and the division it drives makes the key populations fire in proportion to
  softmax. Without it (blocked) the key rates are exp(beta q.k_t) times one fixed factor and the
  read is an unnormalised sum.

The kinetics are this model's choice: the loop settles within one read (tau_theta = 50 ms with
tau_read = 20 ms: linearised damping ratio sqrt(tau_theta / tau_read) / 2 = 0.8); measured
astrocytic adenosine signalling acts over seconds. What the model takes from the physiology is the sign, the
domain-wide reach and the subtractive (hyperpolarising) action, not the time scale.

**Blocked astrocyte** (the negative control): the signals are held at constants, their mean over
the read phase (``BLOCKED_ASTROCYTE_EQS``).
"""

from brian2 import ms

from models.parameters import Parameter

#: Adenosine feedback (exact circuit): the astrocyte's ATP/adenosine in its domain, read from its
#: signal A (linked), and the hyperpolarisation theta it causes in every key neuron.
ADENOSINE_FEEDBACK_EQS = """
# The astrocyte's read-phase signal (linked from the astrocyte)
A : 1 (linked)
# Adenosine (A1 receptors, GIRK) hyperpolarisation of the key neurons: integral control of the
# fold change of A from its set point
dtheta/dt = read_phase(t) * delta_u * log(A / A_target + epsilon_A) / tau_theta : volt
"""

#: A blocked astrocyte: its read-phase signals held at constants (the value neurons' divisor A and,
#: in the exact circuit, the key neurons' hyperpolarisation theta).
BLOCKED_ASTROCYTE_EQS = """
A : 1 (constant)
theta : volt (constant)
"""

ADENOSINE_FEEDBACK_PARAMETERS = (
    Parameter("tau_theta", 50 * ms, ms, "time constant of the astrocyte's adenosine feedback onto the key "
              "neurons (integral control of its signal A; the model's choice, fast enough to settle within one "
              "read)", "docs/model.md §3", positive=True),
    Parameter("epsilon_A", 1e-3, 1, "floor of the fold change A/A_target that the adenosine feedback reads: "
              "caps its fastest fall at ln(1/epsilon_A) delta_u per tau_theta when the key neurons are silent",
              "docs/model.md §3", positive=True),
)


def adenosine_set_point(params, release_ref) -> float:
    """A_target: the astrocyte signal A at which the adenosine feedback rests, that of a total key
    rate R_key_target whose processes each hold ``release_ref`` (release after one token's write):
    tau_read * R_key_target * release_ref."""
    return float(params["tau_read"]) * float(params["R_key_target"]) * float(release_ref)
