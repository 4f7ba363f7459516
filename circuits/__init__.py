"""Circuit builders: wire the models into key-query-value tripartite networks.

Circuit kinds are registered once, in :data:`CIRCUITS`: each names its builder and rate ideal, its
key layer and that layer's model parameters. Everything else (parameter sets, the head API,
the standalone device, the experiments' ``--circuit`` choices) reads this registry.
"""

import importlib
from dataclasses import dataclass, replace

import numpy as np

from brian2 import second

from circuits.protocol import PROTOCOL_PARAMETERS, TABLE_BIN, check_resolution
from models import process_model
from models.astrocytes import read_calibration
from models.encoders import ENCODER_PARAMETERS
from models.gliotransmission import ADENOSINE_FEEDBACK_PARAMETERS
from models.neurons import FEATURE_NEURON_PARAMETERS, KEY_NEURON_PARAMETERS, VALUE_NEURON_PARAMETERS
from models.parameters import ParameterSet
from models.synapses import TRIPARTITE_SYNAPSE_PARAMETERS


@dataclass(frozen=True)
class CircuitKind:
    """One kind of attention circuit.

    ``module`` holds ``builder_name`` (q, k, v, **options -> AttentionCircuit), ``rate_model``
    (the circuit's ideal without spike noise) and ``write_spikes_per_process`` (the expected write
    spikes of each astrocyte process); ``key_layer`` names the group that carries the
    kernel (feature or key neurons) and ``key_layer_parameters`` its model parameters;
    ``size_option`` is the builder option that sets the key layer's size (``size_format`` says it
in words from the circuit's config); ``population_rates``
    maps parameters that are total rates of a population to the option giving the number of
    neurons one score drives.
    """

    name: str
    module: str
    builder_name: str
    key_layer: str
    key_layer_parameters: tuple
    size_option: str
    size_format: str
    description: str
    population_rates: tuple = ()

    def _module(self):
        return importlib.import_module(self.module)

    @property
    def builder(self):
        return getattr(self._module(), self.builder_name)

    @property
    def rate_model(self):
        return self._module().rate_model

    @property
    def write_spikes_per_process(self):
        """(k, scale, params, seeds, options) -> expected write spikes of each astrocyte process."""
        return self._module().write_spikes_per_process

    def size_label(self, config) -> str:
        """The key layer's size in words, e.g. ``m = 256 feature neurons``."""
        return self.size_format.format(**config)


CIRCUITS = {
    "random": CircuitKind(
        "random", "circuits.random_feature", "build_random_feature_circuit", "features",
        FEATURE_NEURON_PARAMETERS, "n_features", "m = {n_features} feature neurons",
        "the paper's random-feature circuit: m feature neurons carry positive random features"),
    "exact": CircuitKind(
        "exact", "circuits.exact_kernel", "build_exact_kernel_circuit", "key_neurons",
        tuple(p for p in FEATURE_NEURON_PARAMETERS if p.name != "rho_feature") + KEY_NEURON_PARAMETERS
        + ADENOSINE_FEEDBACK_PARAMETERS,
        "neurons_per_key", "{neurons_per_key} key neurons per token", "one key population per stored token (exact softmax kernel)",
        population_rates=(("R_key_target", "neurons_per_key"),)),
}


def circuit_kind(name) -> CircuitKind:
    """The registered kind ``name``; ValueError with one line for another name."""
    if name not in CIRCUITS:
        raise ValueError(f"unknown circuit {name!r}; choose one of {', '.join(CIRCUITS)}")
    return CIRCUITS[name]


def circuit_parameters(circuit="random", astrocyte="minimal", overrides=None) -> ParameterSet:
    """Default parameters of a circuit (models + protocol), with overrides checked by name, unit,
    sign and against the time step (``circuits.protocol.check_resolution``)."""
    kind = circuit_kind(circuit)
    declared = (ENCODER_PARAMETERS + kind.key_layer_parameters + VALUE_NEURON_PARAMETERS
                + TRIPARTITE_SYNAPSE_PARAMETERS + process_model(astrocyte)["parameters"] + PROTOCOL_PARAMETERS)
    params = ParameterSet(declared).override(overrides or {})
    if astrocyte != "minimal" and "tau_hebb" not in (overrides or {}):
        params = _hebbian_decay_follows_ip3(declared, params, astrocyte)
    if astrocyte != "minimal" and "t_consolidate" not in (overrides or {}):
        params = _reads_wait_for_receptors(params, astrocyte)
    check_resolution(params, exclude=[name for name, _ in kind.population_rates])
    return params


def _hebbian_decay_follows_ip3(declared, params, astrocyte) -> ParameterSet:
    """``params`` with tau_hebb set to the process's IP3 lifetime (``read_calibration``'s
    tau_IP3_eff): the Hebbian weights (numerator) then fade like the astrocyte's read variable
    (denominator), so the fading common to all tokens of a read cancels in the ratio and what is
    left is recency weighting across the write span (docs/model.md §5)."""
    lifetime = read_calibration(astrocyte, params)["tau_IP3_eff"] * second
    coupled = replace(params.spec("tau_hebb"), default=lifetime, source=f"the {astrocyte} process's tau_IP3_eff",
                      doc="decay of the Hebbian efficacy: the astrocyte's IP3 lifetime (numerator and "
                          "denominator fade alike)")
    specs = [coupled if p.name == "tau_hebb" else p for p in declared]
    return ParameterSet(specs, {name: params[name] for name in params if name != "tau_hebb"})


#: How many receptor times the reads wait after the last write (1 - exp(-5) = 99.3 % of the IP3
#: that the write's last spikes will make has been made).
RECEPTOR_TIMES = 5


def _reads_wait_for_receptors(params, astrocyte) -> ParameterSet:
    """``params`` with t_consolidate = RECEPTOR_TIMES x the process's receptor time (``read_calibration``'s
    tau_receptor; whole table bins, rounded up): G-ChI's receptors keep making IP3 for ~0.9 s after a
    spike, so reads right after the writes would weigh the latest tokens less than softmax does
    (docs/model.md §5). 0 for lr1994, whose IP3 steps at the spike."""
    receptor = read_calibration(astrocyte, params)["tau_receptor"]
    bins = int(np.ceil(RECEPTOR_TIMES * receptor / float(TABLE_BIN) - 1e-9))
    return params.override({"t_consolidate": bins * TABLE_BIN})


def builder(circuit):
    """The builder function of ``circuit`` ("random" or "exact"); ValueError for another name."""
    return circuit_kind(circuit).builder
