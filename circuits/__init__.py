"""Circuit builders: wire the models into key-query-value tripartite networks."""

from circuits.protocol import PROTOCOL_PARAMETERS
from models import model_parameters
from models.parameters import ParameterSet

CIRCUITS = ("random", "exact")


def circuit_parameters(circuit="random", astrocyte="minimal", overrides=None) -> ParameterSet:
    """Default parameters of a circuit (models + protocol), with overrides checked by name."""
    return ParameterSet(model_parameters(circuit, astrocyte) + PROTOCOL_PARAMETERS).override(overrides or {})


def builder(circuit):
    """The builder function of ``circuit`` ("random" or "exact"); ValueError for another name."""
    from circuits.exact_kernel import build_exact_kernel_circuit
    from circuits.random_feature import build_random_feature_circuit

    builders = {"random": build_random_feature_circuit, "exact": build_exact_kernel_circuit}
    if circuit not in builders:
        raise ValueError(f"unknown circuit {circuit!r}; choose one of {', '.join(builders)}")
    return builders[circuit]
