"""What a kind of attention circuit is, and the parameter set it runs with.

Each builder module describes its own kind beside its builder (``random_feature.RANDOM``,
``exact_kernel.EXACT``) and takes its default parameters from :func:`kind_parameters`; the registry
(``circuits.CIRCUITS``) imports those descriptions. This module imports no builder, so the builders
and the registry import it without an import cycle.
"""

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from brian2 import second

from circuits.protocol import PROTOCOL_PARAMETERS, TABLE_BIN, check_resolution
from models import process_model
from models.astrocytes import read_calibration
from models.encoders import ENCODER_PARAMETERS
from models.neurons import VALUE_NEURON_PARAMETERS
from models.parameters import ParameterSet
from models.synapses import TRIPARTITE_SYNAPSE_PARAMETERS


@dataclass(frozen=True)
class CircuitKind:
    """One kind of attention circuit.

    ``builder``: (q, k, v, **options) -> AttentionCircuit; ``rate_model``: the run circuit's ideal
    without spike noise; ``write_spikes_per_process``: (k, scale, params, seeds, options) -> the
    expected write spikes of each astrocyte process. ``key_layer`` names the group that carries the
    kernel (feature or key neurons) and ``key_layer_parameters`` its model parameters;
    ``size_option`` is the builder option that sets the key layer's size (``size_format`` says it
    in words from the circuit's config); ``population_rates`` maps parameters that are total rates
    of a population to the option giving the number of neurons one score drives.
    """

    name: str
    builder: Callable
    rate_model: Callable
    write_spikes_per_process: Callable
    key_layer: str
    key_layer_parameters: tuple
    size_option: str
    size_format: str
    description: str
    population_rates: tuple = ()

    def size_label(self, config) -> str:
        """The key layer's size in words, e.g. ``m = 256 feature neurons``."""
        return self.size_format.format(**config)


def kind_parameters(kind: CircuitKind, astrocyte="minimal", overrides=None) -> ParameterSet:
    """Default parameters of a circuit kind (models + protocol), with overrides checked by name,
    unit, sign and against the time step (``circuits.protocol.check_resolution``)."""
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
