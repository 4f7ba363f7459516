"""Circuit builders: wire the models into key-query-value tripartite networks."""

from circuits.protocol import PROTOCOL_PARAMETERS
from models import model_parameters
from models.parameters import ParameterSet

CIRCUITS = ("random", "exact")


def circuit_parameters(circuit="random", astrocyte="minimal", overrides=None) -> ParameterSet:
    """Default parameters of a circuit (models + protocol), with overrides checked by name."""
    return ParameterSet(model_parameters(circuit, astrocyte) + PROTOCOL_PARAMETERS).override(overrides or {})
