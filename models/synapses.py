"""Synapses: encoder input, value teacher and the tripartite Hebbian synapse.

The tripartite synapse (feature neuron j -> value population i, wrapped by an astrocyte process) has
a Hebbian efficacy ``w``. In the write phase each presynaptic spike adds ``eta_hebb`` times the
postsynaptic depolarisation ``I_teach`` (a voltage-based Hebbian rule, cf. Clopath et al. 2010),
so after a sequence of tokens

    w_ij = eta_hebb * sum_t n_j(t) * v_t,i      (n_j(t): spikes of feature j during token t)

which is proportional to S = sum_t phi(k_t) v_t^T of linear attention (docs/model.md §1-2). The
efficacy fades with ``tau_hebb`` (default: far longer than any sequence). In the read phase each
presynaptic spike delivers ``w`` to the value population's numerator drive ``I_num``; the
astrocyte's divisive gain acts on that drive (see ``models.neurons``: one synapse per feature and
population stands for the identical synapses of the population's neurons).
"""

from brian2 import second

from models.parameters import Parameter

#: Encoder -> feature neuron (and encoder -> value neuron) current-based synapse.
INPUT_SYNAPSE_MODEL = "w_in : volt (constant)"
INPUT_SYNAPSE_ON_PRE = "I_syn_post += w_in"

TEACHER_SYNAPSE_MODEL = "w_teach : 1 (constant)"
TEACHER_SYNAPSE_ON_PRE = "I_teach_post += w_teach"

TRIPARTITE_SYNAPSE_MODEL = """
dw/dt = -w / tau_hebb : 1 (event-driven)
"""
TRIPARTITE_SYNAPSE_ON_PRE = """
w += eta_hebb * write_phase(t) * I_teach_post
I_num_post += w * read_phase(t)
"""

TRIPARTITE_SYNAPSE_PARAMETERS = (
    Parameter("eta_hebb", 1e-3, 1, "Hebbian increment per presynaptic spike and unit of depolarisation",
              positive=True),
    Parameter("tau_hebb", 1e4 * second, second, "decay of the Hebbian efficacy (forgetting; with a gchi or "
              "lr1994 astrocyte the default is the process's IP3 lifetime, circuits.circuit_parameters)",
              positive=True),
)

#: Encoder -> key neuron afferent synapse of the exact-kernel circuit. While its key neuron is
#: recruited, each presynaptic spike changes the weight by +eta_key in the first half of the
#: learning window (token k_t presented) and by -eta_key in the second half (its mirror -k_t), a
#: two-phase contrastive Hebbian rule (cf. Movellan 1991). ON channel j then ends with weight
#: proportional to +k_j and OFF channel j to -k_j, so the read drive is proportional to q . k.
AFFERENT_SYNAPSE_MODEL = "w_aff : volt"
AFFERENT_SYNAPSE_ON_PRE = """
w_aff += eta_key * write_phase(t) * recruit_post * contrast(t)
I_syn_post += w_aff * read_phase(t)
"""

#: Key/query latency encoder -> key neuron of the latency head (circuits.exact_latency). Write: the
#: encoder's single spike in each half of the learning window (k_t, then its mirror -k_t) writes
#: +-delta_u times what it carries, one shot (the weight is final after the token's two windows; no
#: rate-dependent learning rate): ON channel j ends with delta_u k_j, OFF with -delta_u k_j, as the
#: code delivered k_j. Read: the query's spike adds w_aff * efficacy to the key neuron's accumulated
#: drive, so after the query window I_key = delta_u x_q . x_k. Departure from physiology: a
#: synapse written in one event, exactly in proportion to the presynaptic efficacy.
LATENCY_AFFERENT_SYNAPSE_MODEL = "w_aff : volt"
LATENCY_AFFERENT_SYNAPSE_ON_PRE = """
w_aff += eta_key * write_phase(t) * recruit_post * contrast(t) * efficacy_pre
I_key_post += w_aff * efficacy_pre * read_phase(t)
"""
#: Value latency encoder -> value drive: the teacher's drive is what the spike carries.
LATENCY_TEACHER_SYNAPSE_ON_PRE = "I_teach_post += efficacy_pre"

#: Tripartite synapse under the one-spike key code (circuits.exact_latency, ``key_code="latency"``):
#: written as TRIPARTITE_SYNAPSE_ON_PRE; a read spike delivers the weight times the key spike's
#: efficacy, w_ti exp((u_t - theta_ref) / delta_u), into the value channel's leak-free numerator.
ONE_SPIKE_TRIPARTITE_SYNAPSE_ON_PRE = """
w += eta_hebb * write_phase(t) * I_teach_post
I_num_post += w * efficacy_pre * read_phase(t)
"""

#: Key/query encoder -> key neuron under the one-spike key code: one signed encoder per dimension
#: (``models.encoders.SIGNED_LATENCY_POLARITY``), so the write needs no mirror phase: the encoder's
#: single spike at the learning window's start writes delta_u times what it carries with its sign,
#: w_aff = delta_u k_j, and a query's spike adds w_aff * polarity * efficacy, so after the query
#: window I_key = delta_u x_q . x_k as with ON/OFF pairs, at half the write's events.
ONE_SPIKE_AFFERENT_SYNAPSE_ON_PRE = """
w_aff += eta_key * write_phase(t) * recruit_post * polarity_pre * efficacy_pre
I_key_post += w_aff * polarity_pre * efficacy_pre * read_phase(t)
"""
#: ON/OFF value latency encoder -> its dimension's signed drive: +-efficacy (``w_teach`` = +1 ON, -1 OFF).
ONE_SPIKE_TEACHER_SYNAPSE_ON_PRE = "I_teach_post += w_teach * efficacy_pre"
