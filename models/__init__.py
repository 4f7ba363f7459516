"""Brian2 equation strings of the neuron-astrocyte attention models, with their parameters."""

from models.astrocytes import ASTROCYTE_MODELS, process_model
from models.encoders import ENCODER_KINDS, ENCODER_PARAMETERS
from models.neurons import (FEATURE_NEURON_PARAMETERS, KEY_NEURON_PARAMETERS,
                            VALUE_NEURON_PARAMETERS)
from models.parameters import Parameter, ParameterError, ParameterSet
from models.synapses import TRIPARTITE_SYNAPSE_PARAMETERS

__all__ = ["ASTROCYTE_MODELS", "ENCODER_KINDS", "ENCODER_PARAMETERS", "FEATURE_NEURON_PARAMETERS",
           "KEY_NEURON_PARAMETERS", "Parameter", "ParameterError", "ParameterSet", "TRIPARTITE_SYNAPSE_PARAMETERS",
           "VALUE_NEURON_PARAMETERS", "process_model"]
