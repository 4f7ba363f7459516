"""Brian2 equation strings of the neuron-astrocyte attention models, with their parameters."""

from models.astrocytes import ASTROCYTE_MODELS, process_model
from models.encoders import ENCODER_KINDS, ENCODER_PARAMETERS
from models.neurons import (FEATURE_NEURON_PARAMETERS, KEY_NEURON_PARAMETERS,
                            VALUE_NEURON_PARAMETERS)
from models.parameters import Parameter, ParameterError, ParameterSet
from models.synapses import TRIPARTITE_SYNAPSE_PARAMETERS

__all__ = ["ASTROCYTE_MODELS", "ENCODER_KINDS", "Parameter", "ParameterError", "ParameterSet",
           "model_parameters"]


def model_parameters(circuit: str = "random", astrocyte: str = "minimal") -> tuple[Parameter, ...]:
    """Every model parameter of an attention circuit ("random" or "exact") with the given
    astrocyte process model."""
    if circuit not in ("random", "exact"):
        raise ValueError(f"unknown circuit {circuit!r}; choose random or exact")
    key_layer = (FEATURE_NEURON_PARAMETERS if circuit == "random"
                 else tuple(p for p in FEATURE_NEURON_PARAMETERS if p.name != "rho_feature")
                 + KEY_NEURON_PARAMETERS)
    return (ENCODER_PARAMETERS + key_layer + VALUE_NEURON_PARAMETERS + TRIPARTITE_SYNAPSE_PARAMETERS
            + process_model(astrocyte)["parameters"])
