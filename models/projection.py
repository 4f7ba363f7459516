"""Synaptic projection onto accumulating output units: a weight matrix carried by synaptic events.

A transformer's weight matrices (W_Q, W_K, W_V, W_O, W_2; docs/model.md §10) are applied to
spikes: every presynaptic spike adds its synapse's weight to each output unit it reaches,

    y_j(window) = sum over spikes s of presynaptic neurons i in the window of w_ji  (+ b_j),

so a window's accumulated value is the weight matrix times the presynaptic spike counts, exactly:
one synaptic event is one accumulate (Merolla et al. 2014, doi:10.1126/science.1254642, count a
synaptic operation the same way). The presynaptic spikes come from regular ON/OFF encoders of a
hidden state (``y = W x + b`` of encoded ``x``; ``circuits.linear``) or straight from a spiking
stage whose counts decode linearly (GELU neurons into W_2, value neurons into W_O), in which case
the accumulated value is the weight matrix applied to that stage's decoded output with no new
noise. The bias is a constant current that flows during the counting windows only and adds b_j
per window. Events count only in the counting windows (``count_phase``): a value neuron also fires
while its token is written, and those spikes carry the teacher, not the output.

The output units carry no leak and no threshold: they are read, not propagated (the next block
re-encodes what it reads, docs/model.md §10). A unit's value is sampled once per counting window,
at the window's last time step after that step's synaptic events (event ``sample``).
"""

from brian2 import Hz

from models.encoders import LATENCY_CODE_PARAMETERS, STAGE_CLOCK_PARAMETERS
from models.parameters import Parameter

#: An accumulating output unit: integrates synaptic weights; the bias flows as a current.
ACCUMULATOR_EQS = """
dy/dt = counting * b_out / t_window : 1          # bias current, b_out per counting window
counting : 1                                     # 1 in counting windows (COUNTING_UPDATE)
b_out : 1 (constant)                             # the unit's bias
"""
#: Once per step and unit (not per synaptic event: a table lookup per event costs more than the event).
COUNTING_UPDATE = "counting = count_phase(t)"
#: Sampled once per counting window (its last step), after that step's synaptic events.
ACCUMULATOR_EVENTS = {"sample": "sample_step(t) > 0.5"}

#: An accumulating unit whose counting windows' values travel on as spikes (docs/model.md §12): at
#: each window's sample it hands the window's value to its latency emitters (``y_window``).
HANDOFF_EQS = """
y_window : 1                                     # the last counting window's value, read by the emitters
y_last : 1                                       # the accumulated value at the previous sample
"""
HANDOFF_ON_SAMPLE = """
y_window = y - y_last
y_last = y
"""
#: The emitters of a unit (one ON, polarity +1, and one OFF, -1; ``models.encoders`` latency
#: neurons): at every window's start each takes the previous window's value of its unit and fires
#: once, the sooner the larger max(+-y, 0). What crosses to the next stage is that spike.
EMITTER_EQS = """
y_window : 1 (linked)                            # its unit's last window value
polarity : 1 (constant)                          # +1 ON, -1 OFF
"""
EMITTER_START = """
v = clip(polarity * y_window, 0, inf)
efficacy = x_top * sqrt(code_base)
"""

#: Presynaptic neuron -> output unit: one event adds the weight (one accumulate).
PROJECTION_SYNAPSE_MODEL = "w_proj : 1 (constant)"
PROJECTION_SYNAPSE_ON_PRE = "y_post += w_proj * counting_post"   # counted in counting windows only
#: The same from latency encoders (models.encoders): a spike delivers the weight times what it carries.
LATENCY_PROJECTION_ON_PRE = "y_post += w_proj * efficacy_pre * counting_post"

LINEAR_PARAMETERS = (
    Parameter("lin_enc_gain", 500 * Hz, Hz, "rate of the encoder neuron of an input channel per unit of |x_c| "
              "(as the FFN's encoders)", positive=True),
    *STAGE_CLOCK_PARAMETERS,
    *LATENCY_CODE_PARAMETERS,
)
