"""Brian2 equation strings of the neuron-astrocyte attention models, with their parameters."""

from models.astrocytes import ASTROCYTE_MODELS, process_model
from models.encoders import ENCODER_KINDS, ENCODER_PARAMETERS
from models.neurons import FEATURE_NEURON_PARAMETERS, LIF_NEURON_PARAMETERS, VALUE_NEURON_PARAMETERS
from models.parameters import Parameter, ParameterError, ParameterSet
from models.synapses import TRIPARTITE_SYNAPSE_PARAMETERS

__all__ = ["ASTROCYTE_MODELS", "ENCODER_KINDS", "Parameter", "ParameterError", "ParameterSet",
           "model_parameters"]


def model_parameters(astrocyte: str = "minimal") -> tuple[Parameter, ...]:
    """Every model parameter of the attention circuits with the given astrocyte process model."""
    return (ENCODER_PARAMETERS + FEATURE_NEURON_PARAMETERS + VALUE_NEURON_PARAMETERS
            + TRIPARTITE_SYNAPSE_PARAMETERS + process_model(astrocyte)["parameters"])
