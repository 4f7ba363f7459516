"""Neuron models: exponential escape-noise feature neurons, value (output) neurons and a plain LIF.

Feature ("hidden") neurons implement positive random features (Choromanski et al. 2021,
docs/model.md §3). Encoder spikes reach the neuron through random synaptic weights
W_rj * delta_u, so that its membrane potential settles at

    v = v_rest + delta_u * (w_r^T x - |x|^2 / 2),

the last term being a per-token global offset (``feature_bias``, e.g. shunting inhibition
proportional to the input's energy). With exponential escape noise (Gerstner & Kistler 2002;
Jolivet et al. 2006) the firing rate is

    rho = rho_feature * exp((v - v_rest) / delta_u) = rho_feature * exp(w_r^T x - |x|^2/2),

i.e. ``rho_feature * sqrt(m) * phi_r(x)``: the neuron's rate is its random feature. No reset, so the
rate does not depend on the neuron's own spike history.

Value neurons are linear Poisson neurons with two drives gated by the neuromodulatory phase
signals ``write_phase(t)`` and ``read_phase(t)``:

* write phase: the value encoders depolarise them by ``I_teach`` ~ v_t (one polarity), which is
  the postsynaptic factor of the Hebbian rule;
* read phase: the Hebbian-weighted feature spikes ``I_num`` divided by the astrocyte's
  gliotransmitter signal ``A`` (linked from the astrocyte), i.e. an explicit divisive gain.
  ``A_floor`` only avoids 0/0 before the first spike of a read.

The P neurons of one ON/OFF value population see the same presynaptic spikes and the same teacher,
so their tripartite synapses carry identical weights and their drives are identical. The drives
are therefore integrated once per population (``VALUE_DRIVE_EQS``, the target of the teacher and
tripartite synapses) and each neuron links to its population's (``I_teach``, ``I_num`` linked):
the spike statistics are those of P neurons with synapses of their own, at 1/P of the synaptic
events. The neurons differ only in their escape-noise draws.

Key neurons (exact-kernel circuit, docs/model.md §3) have the same escape noise, but their drive is
the score x_q . x_k through afferent weights written to k_t, so their rate is proportional to
exp(scale q.k_t). While token t is written its key neuron is recruited (``recruit`` = 1) and fires
regularly at ``rho_recruit`` (a phase oscillator, so every key stores the same number of spikes).
In the read phase every key neuron is hyperpolarised by the same ``theta``, the astrocyte's
adenosine feedback (``models.gliotransmission``), which makes the population's rates proportional
to softmax: theta is the log of the attention denominator, and the astrocyte computes it.
``in_use`` is 1 for a key neuron of a real token and 0 for one of an empty window of a padded
circuit (a length bucket, ``circuits.exact_kernel``), which never fires.

The LIF neuron is the standard current-based leaky integrate-and-fire neuron (same units).
"""

from brian2 import Hz, mV, ms

from models.parameters import Parameter

FEATURE_NEURON_EQS = """
dv/dt = (v_rest + v_bias - v + I_syn) / tau_m : volt
dI_syn/dt = -I_syn / tau_syn : volt
v_bias = delta_u * feature_bias(t) : volt
rho = rho_feature * exp((v - v_rest) / delta_u) : Hz
"""
FEATURE_NEURON_THRESHOLD = "rand() < rho*dt"

#: Membrane time constant of the feature and key neurons and of the FFN's drive filter.
TAU_M = Parameter("tau_m", 20 * ms, ms, "membrane time constant", "Stimberg et al. 2019", positive=True)

FEATURE_NEURON_PARAMETERS = (
    Parameter("rho_feature", 30 * Hz, Hz, "feature-neuron rate at rest, i.e. for w^T x - |x|^2/2 = 0",
              positive=True),
    Parameter("delta_u", 4 * mV, mV, "escape-noise softness: potential step that multiplies the rate by e",
              "Jolivet et al. 2006", positive=True),
    Parameter("v_rest", -65 * mV, mV, "resting potential", "Stimberg et al. 2019"),
    TAU_M,
)

#: Synaptic drive shared by the neurons of one value population (see the module docstring).
VALUE_DRIVE_EQS = """
dI_num/dt = -I_num / tau_read : 1
dI_teach/dt = -I_teach / tau_syn : 1
"""

VALUE_NEURON_EQS = """
I_num : 1 (linked)
I_teach : 1 (linked)
A : 1 (linked)
rate = rho_value * (write_phase(t) * I_teach + read_phase(t) * I_num / (A + A_floor)) : Hz
"""
VALUE_NEURON_THRESHOLD = "rand() < rate*dt"

VALUE_NEURON_PARAMETERS = (
    Parameter("rho_value", 250 * Hz, Hz, "value-neuron rate per unit of (one polarity of) the output",
              positive=True),
    Parameter("tau_read", 20 * ms, ms,
              "decay of the read-phase drives I_num and A (sets how fast a read settles)", positive=True),
    Parameter("A_floor", 1e-9, 1, "floor of the astrocyte signal in the divisive gain (avoids 0/0)",
              positive=True),
)

LIF_NEURON_EQS = """
dv/dt = (v_rest - v + I_syn) / tau_m : volt (unless refractory)
dI_syn/dt = -I_syn / tau_syn : volt
"""
LIF_NEURON_THRESHOLD = "v > v_thresh"
LIF_NEURON_RESET = "v = v_reset"

LIF_NEURON_PARAMETERS = (
    Parameter("v_thresh", -50 * mV, mV, "LIF firing threshold", "Stimberg et al. 2019"),
    Parameter("v_reset", -65 * mV, mV, "LIF reset potential", "Stimberg et al. 2019"),
    Parameter("tau_ref", 2 * ms, ms, "LIF absolute refractory period", nonnegative=True),
)

KEY_NEURON_EQS = """
# Membrane and afferent (written-key) synaptic drive
dv/dt = (v_rest - v + I_syn) / tau_m : volt
dI_syn/dt = -I_syn / tau_syn : volt
# Write: regular firing while the neuron's token is recruited
dphase/dt = rho_recruit * recruit : 1
recruit = int(recruited_token(t) == token) : 1
token : integer (constant)
# Read: exponential escape noise, hyperpolarised by the astrocyte's adenosine signal theta
theta : volt (linked)
in_use : 1 (constant)
rho = read_phase(t) * in_use * rho_key * exp((v - v_rest - theta) / delta_u) : Hz
"""
KEY_NEURON_THRESHOLD = "phase >= 1 or rand() < rho*dt"
KEY_NEURON_RESET = "phase -= int(phase >= 1)"

KEY_NEURON_PARAMETERS = (
    Parameter("rho_key", 20 * Hz, Hz, "key-neuron rate for score 0 and no adenosine hyperpolarisation (theta = 0)", positive=True),
    Parameter("rho_recruit", 100 * Hz, Hz, "regular firing of a key neuron while its token is written",
              positive=True),
    Parameter("R_key_target", 2500 * Hz, Hz, "total key-population rate that the astrocyte's adenosine feedback "
              "holds (counting each process by its memory of the write, in units of one token's)", positive=True),
)

# ------------------------------------------------------------------- the latency-coded exact head
# (circuits.exact_latency; docs/model.md §3). Values travel in few spikes: the key/query encoders and
# the value encoders are latency neurons (models.encoders), the key neurons fire regularly at an
# exponential rate, the value neurons fire one latency spike per read.

#: Key neuron of the latency head, one per stored token. Its drive ``I_key`` is an accumulator: the
#: afferents add w_aff * efficacy_pre during the query's latency window, and it is cleared at the
#: start of every read window (KEY_LATENCY_WINDOWS), so after the query's window
#: I_key = delta_u * x_q . x_k as the code delivered them -- no membrane or synaptic filter, hence no
#: ripple and no curvature bias from averaging exp() over a fluctuating potential. A phase
#: integrates the recruitment rate while the token is written and, in the read's counting part
#: (``count_phase``), rho_key * exp((I_key - theta) / delta_u): a regular spike per unit of phase.
#: Departure from physiology: real neurons fire irregularly at such rates; the regular (phase)
#: firing stands for a population whose Poisson noise averages out (one neuron instead of 16).
LATENCY_KEY_NEURON_EQS = """
I_key : volt                              # the score's drive: delta_u x_q . x_k after the query window
dphase/dt = rho_recruit * recruit + count_phase(t) * in_use * rho_key * exp((I_key - theta) / delta_u) : 1
recruit = int(recruited_token(t) == token) : 1
token : integer (constant)
theta : volt (linked)                     # the astrocyte's adenosine hyperpolarisation
in_use : 1 (constant)                     # 0: a key of an empty (padding) window, never fires
phase_offset : 1 (constant)               # start phase of the first read's count
reads_started : 1                         # counting parts begun so far
read_phase0 : 1                           # start phase of the latest read's count
"""
LATENCY_KEY_NEURON_THRESHOLD = "phase >= 1"
#: One spike per step at most, and no backlog: a phase past 2 (a rate above 1/dt, in a transient of
#: the adenosine loop) is capped, as a neuron at its maximal rate does not owe the spikes it could
#: not fire (a backlog would keep it firing after theta has caught up, and the loop would overshoot).
LATENCY_KEY_NEURON_RESET = "phase = clip(phase - 1, 0, 1)"
#: Once per table bin, at the start of the step: the drive is cleared when a read window starts; the
#: phase is set to 1/2 when a learning window starts (every token then gets round(rho_recruit
#: t_learn) write spikes, the same for all) and to a start phase when a read's counting part starts,
#: so that the count errs by floor/ceil (variance f (1 - f) for a uniform phase). The start phase of
#: read r is frac(phase_offset + r * golden), golden = (sqrt(5) - 1) / 2: a random offset per
#: neuron (the build's phase stream) rotated by the golden ratio from read to read, equidistributed
#: like uniform draws but a function of the token and the read's number only -- no random numbers at
#: run time, so a padded head (more neurons, empty reads after the real ones) gives the same spikes.
LATENCY_KEY_NEURON_WINDOWS = """
I_key = (1 - query_start(t)) * I_key
reads_started += count_start(t)
read_phase0 = phase_offset + reads_started * golden - floor(phase_offset + reads_started * golden)
phase = learn_start(t) * 0.5 + count_start(t) * read_phase0 + (1 - learn_start(t) - count_start(t)) * phase
"""

#: Drives of the latency head's ON/OFF value channels: the read's numerator ``I_num`` as in
#: VALUE_DRIVE_EQS (filtered like the astrocyte's A, so their ratio is one of equally weighted
#: counts), and the teacher ``I_teach`` held: the value encoders' single spikes add what they carry
#: at the start of each token window and it stays through the write (cleared at the next token
#: window's start, LATENCY_TEACHER_WINDOWS).
LATENCY_VALUE_DRIVE_EQS = """
dI_num/dt = -I_num / tau_read : 1
I_teach : 1
"""
LATENCY_TEACHER_WINDOWS = "I_teach = (1 - teach_start(t)) * I_teach"

#: Value neuron of the latency head: a latency neuron (models.encoders.LATENCY_ENCODER_EQS) that
#: takes its potential from the read's divisive gain at the end of the counting part,
#: max(output_scale * (I_num - I_num_opposite) / (A + A_floor), 0) -- its own channel's numerator
#: minus that of the opposite polarity of its dimension, so the ON neuron carries max(y, 0) and the
#: OFF neuron max(-y, 0) (output_scale = kappa / eta_hebb: the potential is y in its units) -- and
#: fires once in the output window: its efficacy then carries it within code_base^(+-1/2). Silent
#: otherwise: no teacher-phase spikes (the Hebbian rule reads the teacher's drive, not the value
#: neurons' spikes).
LATENCY_VALUE_NEURON_EQS = """
dv/dt = v / tau_code : 1
defficacy/dt = -efficacy / tau_code : 1
I_num : 1 (linked)
I_num_opposite : 1 (linked)
A : 1 (linked)
"""
LATENCY_VALUE_NEURON_VALUE = "clip(output_scale * (I_num - I_num_opposite) / (A + A_floor), 0, inf)"

# --------------------------------------------------------- the one-spike key code (key_code="latency")
# (circuits.exact_latency; docs/model.md §3, "One spike per key"). Each key neuron fires once per
# read, and the spike's efficacy carries exp((u_t - theta_ref) / delta_u): the log-domain
# (time-to-first-spike) softmax of SpikedAttention (Hwang et al. 2024) and of TTFS networks with
# ramping potentials (Stanojevic et al. 2024, doi:10.1038/s41467-024-51110-5; Park et al. 2020,
# T2FSNN, doi:10.1109/DAC18072.2020.9218689).

#: Key neuron of the one-spike key code, one per stored token, on the clock dt_enc. Write: as
#: LATENCY_KEY_NEURON_EQS, regular firing at rho_recruit while its token is recruited. Read: the
#: query's afferent spikes accumulate the score I_key = delta_u x_q . x_k in the query window; at
#: the key window's start (ONE_SPIKE_KEY_NEURON_WINDOWS) the potential v starts from I_key and then
#: rises by delta_u ln(B_key) per step of dt_enc (a constant input current: a linear ramp), and the
#: neuron fires once, at the first step k at which v >= theta_ref (the head's score top, in volts),
#: k = ceil((theta_ref - I_key) / (delta_u ln B_key)). Its release efficacy starts at sqrt(B_key)
#: and falls by B_key per step (``key_fall`` = (1 - 1/B_key) / dt_enc: the Euler step of dt_enc
#: divides it by B_key exactly), so the spike carries B_key^(1/2 - k), exp((I_key - theta_ref) /
#: delta_u) within B_key^(+-1/2). Keys above theta_ref clip (fire at k = 0); keys more than the
#: window's range, (t_read - t_code) / dt_enc steps of ln B_key, below it never fire.
ONE_SPIKE_KEY_NEURON_EQS = """
# Score: the afferents' accumulated drive, delta_u x_q . x_k after the query window
I_key : volt
# Read: a ramp from the score, delta_u ln(B_key) per step of dt_enc in the key window
dv/dt = key_window(t) * delta_u / tau_key                : volt
# Release efficacy of a read spike: sqrt(B_key) at the key window's start, / B_key per step
defficacy/dt = -key_window(t) * efficacy * key_fall      : 1
fired : 1                                  # read spikes in this key window (0 or 1)
# Write: regular firing while the neuron's token is recruited
dphase/dt = rho_recruit * recruit                        : 1
recruit = int(recruited_token(t) == token)               : 1
token : integer (constant)
in_use : 1 (constant)                      # 0: a key of an empty (padding) window, never fires
"""
ONE_SPIKE_KEY_NEURON_THRESHOLD = "phase >= 1 or (in_use * key_window(t) > 0 and fired < 1 and v >= theta_ref)"
#: A write spike spends a unit of phase; a read spike marks the key as fired until its next key window.
ONE_SPIKE_KEY_NEURON_RESET = """
fired += key_window(t)
phase -= int(phase >= 1)
"""
#: Once per table bin, before the thresholds: the score is cleared when a read window starts (the
#: query's afferent spikes then accumulate it); the ramp starts from the score, the efficacy from
#: sqrt(B_key) and the read's spike is re-armed when a key window starts; the phase is set to 1/2
#: when a learning window starts (round(rho_recruit t_learn) write spikes per token).
ONE_SPIKE_KEY_NEURON_WINDOWS = """
I_key = (1 - query_start(t)) * I_key
v = key_start(t) * I_key + (1 - key_start(t)) * v
efficacy = key_start(t) * sqrt(key_code_base) + (1 - key_start(t)) * efficacy
fired = (1 - key_start(t)) * fired
phase = learn_start(t) * 0.5 + (1 - learn_start(t)) * phase
"""

#: Drives of the one-spike head's value dimensions, one per dimension, signed (the ON and OFF value
#: encoders teach it with +-efficacy, ``models.synapses.ONE_SPIKE_TEACHER_SYNAPSE_ON_PRE``, so its
#: Hebbian weights take the value's sign: half the tripartite synapses of an ON/OFF pair of drives,
#: whose one polarity stays zero): the read's numerator I_num sums w_ti e_t over the key spikes of
#: one key window, without leak (cleared at the key window's start, ONE_SPIKE_VALUE_DRIVE_WINDOWS,
#: like the astrocyte's A); the teacher I_teach held through the write as in LATENCY_VALUE_DRIVE_EQS.
ONE_SPIKE_VALUE_DRIVE_EQS = """
I_num : 1
I_teach : 1
"""
ONE_SPIKE_VALUE_DRIVE_WINDOWS = """
I_teach = (1 - teach_start(t)) * I_teach
I_num = (1 - key_start(t)) * I_num
"""
#: The value neuron's start value under the one-spike key code: as LATENCY_VALUE_NEURON_VALUE, with
#: the floor of A scaled to the weakest key spike the window delivers (``key_efficacy_floor`` =
#: B_key^(1/2 - levels)): a read whose keys all sit near the window's bottom has A ~ that, far
#: below A_floor itself.
ONE_SPIKE_VALUE_NEURON_VALUE = "clip(output_scale * polarity * I_num / (A + A_floor * key_efficacy_floor), 0, inf)"
#: Value neuron of the one-spike head: a latency neuron as LATENCY_VALUE_NEURON_EQS that reads its
#: dimension's signed numerator (one drive per dimension, ONE_SPIKE_VALUE_DRIVE_EQS) with its
#: polarity, +1 for the ON and -1 for the OFF neuron: the ON neuron carries max(y, 0), the OFF
#: neuron max(-y, 0).
ONE_SPIKE_VALUE_NEURON_EQS = """
dv/dt = v / tau_code : 1
defficacy/dt = -efficacy / tau_code : 1
I_num : 1 (linked)                        # its dimension's numerator (signed)
A : 1 (linked)
polarity : 1 (constant)                   # +1: ON neuron, -1: OFF neuron
"""

ONE_SPIKE_KEY_PARAMETERS = (
    Parameter("key_code_base", 1.1, 1, "one-spike key code (key_code='latency'): ratio by which a key spike's "
              "efficacy falls per step of dt_enc while the key's potential ramps by delta_u ln(key_code_base); "
              "each key's weight exp(u - theta_ref) arrives within key_code_base^(+-1/2) (2.75 % rms at 1.1), "
              "over a range of (t_read - t_code) / dt_enc steps of ln(key_code_base)", "docs/model.md §3",
              positive=True),
)
