"""Token encoders: neurons that turn a token's vector into spike trains.

A token vector x (a key, a query or a value) is presented for a time window. Each signed component
x_j is carried by an ON/OFF pair of encoder populations: the ON population fires at
``enc_gain * max(x_j, 0)``, the OFF population at ``enc_gain * max(-x_j, 0)``, so that a
downstream synapse can recover x_j as the difference of the two (docs/model.md §4). The rates come
from a 2-D ``TimedArray`` ``rate_table(t, channel)`` so the whole token stream is one array.

Two spike generators share that rate:

* Poisson encoder: ``rand() < rate*dt`` each step; count variance equals its mean.
* Regular (integrate-and-fire) encoder: a phase that advances at ``rate`` and fires on crossing
  one; over a window T its count errs by at most one spike (relative error <= 1/(rT)).
  A random initial phase keeps the neurons of one population from firing in lockstep.

Rate codes pay for precision in spikes (Poisson: ~1/eps^2 spikes for a relative error eps;
regular: ~1/eps). The **latency code** carries a value in one spike (docs/model.md §11): at the
start of each token window the encoder's potential is set to |x| and charges exponentially,
v = |x| B^k after k steps of ``dt_enc`` (B = ``code_base``), and the encoder fires once, when v
first reaches the top of the code's range ``x_top``. The larger |x|, the earlier the spike: the
first-spike latencies of retinal ganglion cells (Gollisch & Meister 2008,
doi:10.1126/science.1149639) and human touch afferents (Johansson & Birznieks 2004,
doi:10.1038/nn1177) carry stimulus strength the same way. What a spike means is carried by the
encoder's release ``efficacy``, which falls by B each step from ``x_top sqrt(B)``: a spike at step
k reaches its targets with x_top B^(1/2 - k), the geometric middle of the values that fire at k
(an exponentially decaying synaptic kernel, as in T2FSNN, Park et al. 2020,
doi:10.1109/DAC18072.2020.9218689, and the few-spikes neurons of Stöckl & Maass 2021,
doi:10.1038/s42256-021-00311-4). So one event per value and target delivers x within a factor
B^(±1/2): a log-uniform grid of ``t_code / dt_enc`` levels. Values below the lowest level stay
silent, also if the encoder's window is longer than ``t_code``.
"""

import numpy as np
from brian2 import Hz, ms

from models.parameters import Parameter

#: Poisson encoder. ``channel``: index into the rate table (dimension x polarity).
POISSON_ENCODER_EQS = """
rate = rate_table(t, channel) : Hz
channel : integer (constant)
"""
POISSON_ENCODER_THRESHOLD = "rand() < rate*dt"

#: Regular encoder: phase integrates the rate, one spike per unit of phase.
REGULAR_ENCODER_EQS = """
dphase/dt = rate : 1
rate = rate_table(t, channel) : Hz
channel : integer (constant)
"""
REGULAR_ENCODER_THRESHOLD = "phase >= 1"
REGULAR_ENCODER_RESET = "phase -= 1"

ENCODER_KINDS = ("regular", "poisson")

#: Latency encoder (see the module docstring); ``tau_code = dt_enc / ln(code_base)``, so that the
#: exact integration multiplies v by B and the efficacy by 1/B each step.
LATENCY_ENCODER_EQS = """
dv/dt = v / tau_code : 1                     # charging: |x| B^k after k steps of the window
defficacy/dt = -efficacy / tau_code : 1      # what a spike now carries: x_top B^(1/2 - k)
channel : integer (constant)                 # column of the value table (dimension x polarity)
"""
#: At the start of every token window (once per window, before the thresholds).
LATENCY_ENCODER_START = """
v = value_table(t, channel)
efficacy = x_top * sqrt(code_base)
"""
#: Fires at most at ``levels`` steps: after the last level the efficacy is below ``efficacy_floor``
#: (x_top B^(1 - levels), between the last level's efficacy and the next), and the encoder stays
#: silent for the rest of its window whatever follows it.
LATENCY_ENCODER_THRESHOLD = "v >= x_top and efficacy > efficacy_floor"
LATENCY_ENCODER_RESET = "v = 0"               # silent until the next window sets v again

#: A replayed latency neuron (docs/model.md §12, "Spikes across stage boundaries"): the terminal, in
#: the receiving circuit, of an emitter recorded in another circuit. It fires at the step of its
#: window at which the emitter fired (``spike_step``, from the recorded train; -1: silent) and its
#: ``efficacy`` falls by B each step as the emitter's did, so the replayed spike carries the emitter's
#: value: x_top B^(1/2 - k). ``step_rate`` = 1/dt_enc.
LATENCY_REPLAY_EQS = """
defficacy/dt = -efficacy / tau_code : 1      # what a spike now carries: x_top B^(1/2 - k)
spike_step : 1                               # the recorded spike's step in this window (-1: none)
window_begin : second                        # when this window began
channel : integer (constant)                 # column of the spike table (dimension x polarity)
"""
#: At the start of every token window: the window's recorded step of the channel.
LATENCY_REPLAY_START = """
spike_step = spike_table(t, channel)
window_begin = t
efficacy = x_top * sqrt(code_base)
"""
LATENCY_REPLAY_THRESHOLD = "abs((t - window_begin) * step_rate - spike_step) < 0.5"
#: The same at irregular window starts (a head's windows: where the 0/1 table ``window_start`` is 1,
#: once per table bin before the thresholds). The spike table holds step + 1 (0: silent), signed by
#: the spike's polarity for the signed terminals of a head's keys and queries (``polarity : 1``,
#: SIGNED_LATENCY_POLARITY's convention); unsigned terminals take its absolute value.
LATENCY_REPLAY_WINDOW_START = """
spike_step = window_start(t) * (abs(spike_table(t, channel)) - 1) + (1 - window_start(t)) * spike_step
window_begin = window_start(t) * t + (1 - window_start(t)) * window_begin
efficacy = window_start(t) * x_top * sqrt(code_base) + (1 - window_start(t)) * efficacy
"""
LATENCY_REPLAY_POLARITY = "polarity = window_start(t) * sign(spike_table(t, channel)) + (1 - window_start(t)) * polarity"
LATENCY_REPLAY_RESET = "spike_step = -1"

#: How a stage's input values become spikes: a rate code (regular encoders, ~1/eps spikes per value)
#: or the latency code (one spike per value).
CODES = ("rate", "latency")

LATENCY_CODE_PARAMETERS = (
    Parameter("code_base", 1.05, 1, "ratio of consecutive levels of the latency code: a value is delivered within "
              "a factor code_base^(+-1/2) (relative rms ln(B)/sqrt(12), 1.4 %)", positive=True),
    Parameter("t_code", 10 * ms, ms, "latency-code window per token: t_code/dt_enc levels (200), a dynamic range of "
              "code_base^(levels - 1) (1.6e4)", positive=True),
)

#: Decay of the synaptic current that encoder spikes evoke (heads and the FFN's rate-coded drive).
TAU_SYN = Parameter("tau_syn", 10 * ms, ms, "decay of the synaptic current that encoder spikes evoke",
                    "Stimberg et al. 2019 (neuron-glia examples)", positive=True)

ENCODER_PARAMETERS = (
    Parameter("key_enc_gain", 200 * Hz, Hz, "rate of one key/query encoder neuron per unit of |x_j|",
              positive=True),
    Parameter("value_enc_gain", 100 * Hz, Hz, "rate of one value encoder neuron per unit of |v_i|",
              positive=True),
    TAU_SYN,
)

#: The clock of encoders and of what their spikes drive: one step for every stage (linear, FFN, the
#: latency head). A regular encoder fires at most once per step and a latency code's levels are
#: steps, so outlier inputs and fine codes need a fine one.
DT_ENC = Parameter("dt_enc", 0.05 * ms, ms, "time step of the encoders, their synapses and the units they drive "
                   "(a regular encoder fires at most once per step; a latency code's levels are steps of it)",
                   positive=True)

#: The clocks and windows of the stages fed by encoders (linear, FFN): the step of their tables and
#: slower groups, the encoders' step, and the rate code's counting window per token.
STAGE_CLOCK_PARAMETERS = (
    Parameter("dt", 0.5 * ms, ms, "time step of the protocol tables and of the stage's slower groups (the FFN's "
              "drives and GELU neurons)", positive=True),
    DT_ENC,
    Parameter("t_count", 100 * ms, ms, "counting window per token of the rate code", positive=True),
)


def signed_rates(x: np.ndarray, gain: float) -> np.ndarray:
    """ON/OFF encoder rates (in Hz) of signed values ``x`` (..., n) -> (..., 2n).

    Channel ``2*j`` is the ON channel of component j, channel ``2*j + 1`` its OFF channel.
    """
    x = np.asarray(x, dtype=float)
    out = np.empty(x.shape[:-1] + (2 * x.shape[-1],))
    out[..., 0::2] = gain * np.maximum(x, 0.0)
    out[..., 1::2] = gain * np.maximum(-x, 0.0)
    return out


def polarity_sign(channel) -> np.ndarray:
    """+1 for ON channels (even), -1 for OFF channels (odd) of the layout of :func:`signed_rates`."""
    return np.where(np.asarray(channel) % 2 == 0, 1.0, -1.0)


def encoder_model(kind: str) -> dict:
    """Keyword arguments for ``NeuronGroup`` of a Poisson or a regular encoder."""
    if kind == "poisson":
        return {"model": POISSON_ENCODER_EQS, "threshold": POISSON_ENCODER_THRESHOLD}
    if kind == "regular":
        return {"model": REGULAR_ENCODER_EQS, "threshold": REGULAR_ENCODER_THRESHOLD,
                "reset": REGULAR_ENCODER_RESET}
    raise ValueError(f"unknown encoder {kind!r}; choose one of {', '.join(ENCODER_KINDS)}")


#: Start of a latency window at irregular times (the windows of an attention head): once per table
#: bin, before the thresholds, where the group's ``window_start`` table is 1 the potential is set to
#: ``{value}`` and the efficacy to x_top sqrt(B); elsewhere both are left as they are. A potential
#: left below the code's lowest level keeps growing until the next start: clipping it at 2 x_top
#: (it can no longer fire: its efficacy is below the floor) keeps it finite (no inf * 0).
LATENCY_WINDOW_START = """
v = window_start(t) * ({value}) + (1 - window_start(t)) * clip(v, 0, 2 * x_top)
efficacy = window_start(t) * x_top * sqrt(code_base) + (1 - window_start(t)) * efficacy
"""
#: What a latency encoder starts from: its channel's value in the value table.
LATENCY_TABLE_VALUE = "value_table(t, channel)"

#: A signed latency neuron (the one-spike head's key/query encoders, one per dimension): the start
#: value is |x| (``abs(value_table(t, channel))``) and, once per table bin before the thresholds, its
#: ``polarity : 1`` is set to sign(x) where its window starts, so its single spike carries the sign
#: with the value (signed spikes, as in SpikeZIP-TF, You et al. 2024, arXiv:2406.03470).
#: Departure from physiology: a neuron whose release can excite or inhibit.
SIGNED_LATENCY_POLARITY = "polarity = window_start(t) * sign(value_table(t, channel)) + (1 - window_start(t)) * polarity"
