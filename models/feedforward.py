"""Feed-forward (GELU) layer of spiking neurons: a transformer's FFN block, W_out GELU(W_in x + b_in).

A token vector x (e.g. a hidden state of 384 dimensions) is carried by ON/OFF regular encoders
(``models.encoders``). Hidden unit j (one of the 1536 of a MiniLM layer) is an ON population of
P_on and an OFF population of P_off neurons that share one synaptic drive (docs/model.md §9):

* drive: every encoder spike of channel c adds the synaptic weight w_jc = ±W_in[j, c] / (R_in tau_syn)
  (sign: the channel's polarity; R_in: total encoder rate per unit of |x_c|) to a current I_syn,
  which a membrane-like filter smooths into u; once settled, u = W_in x + b_in (the bias b_in is a
  constant current). Two filters (tau_syn, tau_m) keep u's ripple small: GELU bends, so a
  fluctuating drive would bias the rate by GELU''(u) var(u) / 2.
* neurons: the ON neurons fire at ``rho_gelu_on * max(GELU(u), 0)``, the OFF neurons at
  ``rho_gelu_off * max(-GELU(u), 0)``, only in the counting window of each token (``count_phase``).
  GELU's negative part is at most 0.17, so the OFF populations can be smaller at a higher gain for
  the same spike count per unit of activation.
  Their spikes are drawn by time rescaling (Brown et al. 2002, doi:10.1162/08997660252741149): the
  integrated intensity ``hazard`` is compared with an exponential threshold ``threshold_draw``,
  redrawn at each spike. That gives a Poisson process of the given rate with one random number per spike instead of
  one per neuron and time step (the cost of ``rand() < rate*dt``), and it stays exact at rates
  where a Bernoulli draw per step would saturate: a step whose intensity passes two thresholds
  carries the second spike to the next step.

The decoded activation of unit j is n_on / (P_on t_count rho_gelu_on) - n_off / (P_off t_count
rho_gelu_off); the block's output is W_out times it plus b_out (the output projection, applied to
the decoded counts).

**Latency code** (``models.encoders``, docs/model.md §11): one spike per value instead of a rate.
A token's period is two windows of ``t_code``. In the input window the latency encoders fire once
per input value, and each spike adds ``±W_in[j, c]`` times what it carries (its ``efficacy``, x_c
within a factor code_base^(±1/2)) to the unit's drive u, an accumulator with no filter and no leak,
reset to b_in at the start of every period: at the end of the input window u = W_in x̂ + b_in
exactly. In the count window the unit's ON and OFF GELU neurons are latency neurons whose potential
is set to max(±GELU(u), 0) at the window's start: one spike at most each, the sooner the larger
the activation, carrying it within a factor code_base^(±1/2) (top of range ``g_top``) to W_2's
synapses. GELU stays the neurons' transfer function; the code's quantisation is the only noise.
"""

import math

import numpy as np
from brian2 import Function, Hz, check_units, implementation, ms

from models.encoders import LATENCY_CODE_PARAMETERS, STAGE_CLOCK_PARAMETERS, TAU_SYN
from models.neurons import TAU_M
from models.parameters import Parameter


@implementation("cpp", """
double gelu(double x)
{
    return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
}
""")
@implementation("cython", """
from libc.math cimport erf
cdef double gelu(double x):
    return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440))
""")
@check_units(x=1, result=1)
def gelu(x):
    """Exact GELU x Phi(x) (BERT's "gelu", erf form), as a Brian2 function for equations."""
    x = np.asarray(x, dtype=float)
    return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2.0)))


def gelu_derivative(u) -> np.ndarray:
    """GELU'(u) = Phi(u) + u phi(u) (NumPy): how an error of the drive u reaches the activation."""
    u = np.asarray(u, dtype=float)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(u / math.sqrt(2.0)))
    return cdf + u * np.exp(-0.5 * u ** 2) / math.sqrt(2.0 * math.pi)


#: Namespace entry that lets equation strings call ``gelu``.
GELU_FUNCTION: Function = gelu

#: Drive of one hidden unit, shared by its ON and OFF populations (one per unit, like the value drives).
FFN_DRIVE_EQS = """
dI_syn/dt = -I_syn / tau_syn : 1                  # encoder spikes through the W_in synapses
du/dt = (b_in + I_syn - u) / tau_m : 1            # smoothed drive, W_in x + b_in once settled
b_in : 1 (constant)                               # the unit's bias (constant current)
gelu_on : 1                                       # positive part of GELU(u), in counting windows
gelu_off : 1                                      # negative part (GELU >= -0.17), in counting windows
"""
#: Once per step and unit (not per neuron: erf is dear), the activations its neurons read.
FFN_ACTIVATION_UPDATE = """
gelu_on = count_phase(t) * clip(gelu(u), 0, inf)
gelu_off = count_phase(t) * clip(-gelu(u), 0, inf)
"""

#: An ON or OFF GELU neuron, spiking by time rescaling (see the module docstring).
GELU_NEURON_EQS = """
dhazard/dt = rho_gelu * activation : 1   # integrated firing intensity
threshold_draw : 1                                  # exponential threshold of the next spike
activation : 1 (linked)                 # gelu_on or gelu_off of its unit's drive
rho_gelu : Hz (shared, constant)        # rho_gelu_on or rho_gelu_off
"""
GELU_NEURON_THRESHOLD = "hazard > threshold_draw"
GELU_NEURON_RESET = """
hazard -= threshold_draw
threshold_draw = -log(1 - rand())
"""

#: Encoder -> unit drive synapse: the model's weight, scaled so the drive's mean is W_in x.
FFN_SYNAPSE_MODEL = "w_ffn : 1 (constant)"
FFN_SYNAPSE_ON_PRE = "I_syn_post += w_ffn"

#: Latency code (see the module docstring). The drive of one hidden unit: an accumulator, set to
#: its bias at the start of every token period (LATENCY_DRIVE_RESET), before that step's spikes.
LATENCY_DRIVE_EQS = """
u : 1                                             # W_in x̂ + b_in once the input window is over
b_in : 1 (constant)                               # the unit's bias
"""
LATENCY_DRIVE_RESET = "u = b_in"
#: Latency encoder -> unit drive: the model's weight (signed by the channel's polarity) times what
#: the spike carries; no filter, so the drive holds W_in x̂ exactly.
LATENCY_FFN_SYNAPSE_ON_PRE = "u_post += w_ffn * efficacy_pre"
#: An ON or OFF GELU neuron of the latency code: a latency neuron (``models.encoders``) that reads
#: its unit's drive; ``channel`` holds the unit's index.
GELU_LATENCY_NEURON_EQS = """
u : 1 (linked)                                    # its unit's drive
"""
#: At every window start (each ``t_code``): in a count window (``count_phase`` 1) the potential is
#: max(polarity GELU(u), 0), polarity +1 (ON) or -1 (OFF); in an input window or an empty one 0
#: (silent). The efficacy starts at the top of range, as the encoders'.
GELU_LATENCY_START = """
v = count_phase(t) * clip(polarity * gelu(u), 0, inf)
efficacy = x_top * sqrt(code_base)
"""

#: Largest mean number of threshold crossings per time step of a GELU neuron. Crossings beyond one
#: in a step are carried to the next, so counts stay exact while the intensity per step is well
#: below one; at 0.5 a backlog at the end of a window is negligible.
MAX_HAZARD_PER_STEP = 0.5

FFN_PARAMETERS = (
    Parameter("ffn_enc_gain", 500 * Hz, Hz, "rate of the FFN encoder neuron of a channel per unit of |x_c|",
              positive=True),
    Parameter("rho_gelu_on", 40 * Hz, Hz, "ON GELU-neuron rate per unit of GELU(u) > 0", positive=True),
    Parameter("rho_gelu_off", 320 * Hz, Hz, "OFF GELU-neuron rate per unit of -GELU(u) > 0 (at most 0.17)",
              positive=True),
    TAU_SYN,
    TAU_M,
    Parameter("t_settle", 100 * ms, ms, "settling time at the start of each token (5 tau_m)", positive=True),
    *STAGE_CLOCK_PARAMETERS,
    *LATENCY_CODE_PARAMETERS,
)
