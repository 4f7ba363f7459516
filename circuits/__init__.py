"""Circuit builders: wire the models into key-query-value tripartite networks.

Circuit kinds are registered once, in :data:`CIRCUITS`: each builder module describes its kind
beside its builder (``circuits.kinds.CircuitKind``: builder and rate ideal, key layer and that
layer's model parameters) and this registry collects those descriptions by reference. Everything
else (parameter sets, the head API, the standalone device, the experiments' ``--circuit`` choices)
reads this registry.
"""

from circuits.exact_kernel import EXACT
from circuits.kinds import RECEPTOR_TIMES, CircuitKind, kind_parameters
from circuits.random_feature import RANDOM
from models.parameters import ParameterSet

__all__ = ["CIRCUITS", "RECEPTOR_TIMES", "CircuitKind", "builder", "circuit_kind", "circuit_parameters"]

CIRCUITS = {kind.name: kind for kind in (RANDOM, EXACT)}


def circuit_kind(name) -> CircuitKind:
    """The registered kind ``name``; ValueError with one line for another name."""
    if name not in CIRCUITS:
        raise ValueError(f"unknown circuit {name!r}; choose one of {', '.join(CIRCUITS)}")
    return CIRCUITS[name]


def circuit_parameters(circuit="random", astrocyte="minimal", overrides=None) -> ParameterSet:
    """Default parameters of a circuit (models + protocol), with overrides checked by name, unit,
    sign and against the time step (``circuits.kinds.kind_parameters``)."""
    return kind_parameters(circuit_kind(circuit), astrocyte, overrides)


def builder(circuit):
    """The builder function of ``circuit`` ("random" or "exact"); ValueError for another name."""
    return circuit_kind(circuit).builder
