"""LayerNorm by an astrocyte: per token, n_j = (z_j - mu) / sigma over the H units of a layer, on spikes.

A transformer's LayerNorm (docs/model.md §13) centres each token's H values on their mean and
divides them by their spread, sigma^2 = mean_j (z_j - mu)^2 + eps; its learned gain and bias
(gamma, beta) are left to the next stages' synapses and currents. Here one token takes four windows
of ``t_code`` (the latency code of ``models.encoders``, docs/model.md §11), each the work of one
kind of cell:

1. *Input.* The residual stream's latency spikes (``sum_k W_k u_k + b``: the residual with
   diag(gamma) of the previous LayerNorm, a block's output through W_O or W_2...) reach H leak-free
   units ``z_j`` through synapses that add their weight times what the spike carries (as
   ``models.projection.LATENCY_PROJECTION_ON_PRE``), and one inhibitory **interneuron** that reads
   the same afferents through the column means of the weights, so that it holds the population's
   mean mu: the feedforward inhibition of cortex and hippocampus, where the same afferents that
   excite the principal cells drive interneurons that inhibit them a moment later (Pouille &
   Scanziani 2001, doi:10.1126/science.1060342), here subtractive normalisation (Carandini & Heeger
   2012, doi:10.1038/nrn3136).
2. *Centring.* The interneuron fires one latency spike for mu (an ON or an OFF neuron: a signed
   value), which reaches every unit: H events, after which z_j holds d_j = z_j - mu.
3. *Squares.* One ON/OFF pair of latency neurons per unit starts from |d_j| and fires once. The
   astrocyte's process reads each spike with *squared* efficacy: IP3 production cooperative in the
   released signal, Hill coefficient 2 in its low range, so the astrocyte integrates
   S = eps + mean_j d_j^2 = sigma^2 without leak (reset at each token).
4. *Output.* One ON/OFF pair of latency neurons per unit starts from max(+-d_j, 0) times the
   astrocyte's divisive gain S^(-1/2) and fires once: the spike carries n_j within
   code_base^(+-1/2). The top of range sqrt(H) sqrt(B) never clips: |d_j| / sigma <= sqrt(H).

The division is gliotransmission acting on synaptic strength, as the heads' value neurons divide
by the astrocyte's signal A (docs/model.md §2-§3): astrocytes scale the efficacy of the synapses in
their domain through gliotransmitters (Perea & Araque 2007, doi:10.1126/science.1144640) and take
part in homeostatic scaling of neuronal activity (Stellwagen & Malenka 2006, TNF-alpha released by
glia, doi:10.1038/nature04671). The correspondence between the normalisations of deep networks and
homeostatic plasticity is argued by Shen, Wang & Navlakha 2021 (doi:10.1162/neco_a_01439). Spiking
transformers have replaced LayerNorm rather than computed it: Sorbet (Tang, Yan & Wong, ICML 2025,
arXiv:2409.15298) by a bit-shifting power norm (BSPN), SpikedAttention (Hwang et al., NeurIPS 2024)
by converting MA-BERT, whose normalisation layers are fused with their linear layers at inference
(Neo et al., ICLR 2023), and SpikeZIP-TF (You et al. 2024, arXiv:2406.03470) by applying the float
LayerNorm to accumulated inputs.

Departures from physiology (besides the latency code's, docs/model.md §11): the squaring is the
process's, on the released signal itself; in the G-ChI model the glutamate pathway (receptor
activation Gamma_A, PLCbeta) is first order in glutamate, and the Hill coefficient of 2 is PLCdelta's
activation by Ca2+ (``models.astrocytes``, De Pittà et al. 2009), so an exact square over the code's
whole range is a modelling choice; S integrates without leak within a token and is reset at the
next, over one 10 ms window, where astrocytic IP3 and Ca2+ act over seconds; the gain S^(-1/2) is a
power law of the astrocyte's signal chosen to give 1/sigma; the interneuron's single spike is signed.
"""

from models.encoders import DT_ENC, LATENCY_CODE_PARAMETERS, STAGE_CLOCK_PARAMETERS
from models.parameters import Parameter

# ------------------------------------------------------------------------------ 1. input window

#: A unit of the normalised layer: its summed input z_j = b_j + sum of weight x carried value,
#: leak-free; from the centring spike on, its deviation from the mean d_j = z_j - mu.
UNIT_EQS = """
z : 1                        # summed input, then its deviation from the token's mean
b_unit : 1 (constant)        # the unit's bias b_j, where z starts each token
"""
#: At every token's start (``start`` slot, before that step's spikes).
UNIT_RESET = "z = b_unit"

#: The feedforward interneuron: the same afferents with the weights averaged over the units, so it
#: holds mu = mean_j z_j.
INTERNEURON_EQS = """
m : 1                        # the token's mean input mu
b_mean : 1 (constant)        # mean_j b_j
"""
INTERNEURON_RESET = "m = b_mean"

#: An afferent synapse onto a unit or the interneuron (and the centring synapse): its weight times
#: what the presynaptic latency spike carries (``efficacy``), one accumulate per event.
SYNAPSE_MODEL = "w_ln : 1 (constant)"
UNIT_ON_PRE = "z_post += w_ln * efficacy_pre"
INTERNEURON_ON_PRE = "m_post += w_ln * efficacy_pre"

# ---------------------------------------------------------------------------- 2. centring window

#: The interneuron's output: an ON (``polarity`` +1) and an OFF (-1) latency neuron (a latency
#: neuron of ``models.encoders`` with these lines) that read its mean; their synapses onto every unit
#: have weight -polarity (UNIT_ON_PRE), so the spike subtracts mu.
CENTRE_NEURON_EQS = """
m : 1 (linked)               # the interneuron's mean
polarity : 1 (constant)      # +1: carries max(mu, 0); -1: max(-mu, 0)
"""
#: At every window start; ``centre_window`` is 1 in the centring windows of real tokens, 0 elsewhere.
CENTRE_START = """
v = centre_window(t) * clip(polarity * m, 0, inf)
efficacy = x_top * sqrt(code_base)
"""

# ------------------------------------------------------------------------------ 3. square window

#: The squares' neurons: one ON/OFF pair per unit, reading its deviation d_j.
SQUARE_NEURON_EQS = """
z : 1 (linked)               # the unit's deviation d_j
polarity : 1 (constant)
"""
SQUARE_START = """
v = square_window(t) * clip(polarity * z, 0, inf)
efficacy = x_top * sqrt(code_base)
"""
#: The astrocyte: S integrates its processes' squared reads without leak, from eps at each token's
#: start; at the output window S = eps + mean_j d_j^2 (as the code delivers each |d_j|).
ASTROCYTE_EQS = """
S : 1                        # eps + mean over units of the squared deviations
"""
ASTROCYTE_RESET = "S = ln_eps"
#: A process reads a square neuron's spike with squared efficacy (IP3 production of Hill coefficient
#: 2 in the released signal's low range): one astrocyte update per spike.
PROCESS_ON_PRE = "S_post += efficacy_pre ** 2 / n_units"

# ------------------------------------------------------------------------------ 4. output window

#: The output neurons: one ON/OFF pair per unit, its deviation under the astrocyte's divisive gain.
OUTPUT_NEURON_EQS = """
z : 1 (linked)               # the unit's deviation d_j
S : 1 (linked)               # the astrocyte's signal (or its blocked stand-in's)
polarity : 1 (constant)
"""
OUTPUT_START = """
v = output_window(t) * clip(polarity * z, 0, inf) / sqrt(S)
efficacy = x_top * sqrt(code_base)
"""
#: The negative control: a stand-in holding S at a constant (its mean over the sentence's real
#: tokens), linked by the output neurons in place of the astrocyte: no per-token normalisation.
BLOCKED_ASTROCYTE_EQS = """
S : 1 (constant)
"""

LN_EPS = Parameter("ln_eps", 1e-12, 1, "LayerNorm's eps, added to the mean squared deviation (where the astrocyte's "
                   "S starts each token)", "all-MiniLM-L6-v2 configuration (layer_norm_eps)", positive=True)

LAYERNORM_PARAMETERS = (
    STAGE_CLOCK_PARAMETERS[0],          # dt: the protocol tables' step
    DT_ENC,
    *LATENCY_CODE_PARAMETERS,
    LN_EPS,
)
