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

ENCODER_PARAMETERS = (
    Parameter("key_enc_gain", 200 * Hz, Hz, "rate of one key/query encoder neuron per unit of |x_j|",
              positive=True),
    Parameter("value_enc_gain", 100 * Hz, Hz, "rate of one value encoder neuron per unit of |v_i|",
              positive=True),
    Parameter("tau_syn", 10 * ms, ms, "decay of the synaptic current that encoder spikes evoke",
              "Stimberg et al. 2019 (neuron-glia examples)", positive=True),
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
