"""The object a circuit builder returns: the Brian2 network plus the handles an experiment needs."""

from dataclasses import dataclass, field, replace

import brian2
import numpy as np

from analysis.spikes import decode_on_off, window_counts
from circuits.protocol import Schedule
from circuits.seeds import SeedStreams
from models.parameters import ParameterSet


def memory_weights(params, age):
    """How much of each token the circuit holds at each read, for the numerator (Hebbian weights,
    fading with tau_hebb) and the denominator (the processes' read variable: calcium fading with
    tau_ca for the minimal process; IP3 above rest for gchi and lr1994, produced over the receptor
    time and fading with the IP3 lifetime, ``models.astrocytes.ip3_memory``). Tokens not yet
    written (age <= 0, causal reads) count zero."""
    from models.astrocytes import ip3_memory, process_kind, read_calibration

    astrocyte = process_kind(params)
    written = (age > 0).astype(float)
    numerator = written * np.exp(-np.maximum(age, 0) / float(params["tau_hebb"]))
    if astrocyte == "minimal":
        return numerator, written * np.exp(-np.maximum(age, 0) / float(params["tau_ca"]))
    return numerator, ip3_memory(age, read_calibration(astrocyte, params))


@dataclass(frozen=True)
class SpikeData:
    """What a SpikeMonitor recorded, as plain arrays: spike times ``t_`` (s) and neuron indices ``i``."""

    t_: np.ndarray
    i: np.ndarray

    @property
    def num_spikes(self) -> int:
        return len(self.i)


class StateData:
    """What a StateMonitor recorded, as plain arrays: sample times ``t_`` (s), the recorded indices
    ``record``, and one (n_recorded x n_samples) array per variable in SI units, read as attributes
    like the monitor's (``Ca`` or ``Ca_``); ``dims`` holds each variable's Brian2 dimensions."""

    def __init__(self, t_, record, values: dict, dims: dict):
        self.t_, self.record, self.dims = t_, record, dims
        self._values = values

    @property
    def record_variables(self) -> list:
        return list(self._values)

    def __getattr__(self, name):
        values = self.__dict__.get("_values", {})
        key = name[:-1] if name.endswith("_") and name[:-1] in values else name
        if key not in values:
            raise AttributeError(name)
        return values[key]


@dataclass(frozen=True)
class GroupData:
    """Size and wiring of a Brian2 group or Synapses object of a run circuit, without its state."""

    size: int
    synapses: bool = False
    source: str | None = None       # Synapses: name of the presynaptic group
    n_pathways: int = 0             # Synapses: number of on_pre pathways

    def __len__(self):
        return self.size


def freeze_monitor(monitor):
    """A plain-array copy of a SpikeMonitor's or StateMonitor's data."""
    if isinstance(monitor, brian2.SpikeMonitor):
        return SpikeData(np.array(monitor.t_[:]), np.array(monitor.i[:]))
    return StateData(np.array(monitor.t_[:]), np.array(monitor.record),
                     {name: np.array(getattr(monitor, name + "_")) for name in monitor.record_variables},
                     {name: monitor.variables[name].dim for name in monitor.record_variables})


def freeze_group(group) -> GroupData:
    if isinstance(group, brian2.Synapses):
        return GroupData(len(group), True, group.source.name, len(group._pathways))
    return GroupData(len(group))


@dataclass
class SpikingCircuit:
    """A built circuit, ready to run once: the Brian2 network plus the handles to read it out.

    ``groups`` and ``monitors`` map names to Brian2 objects; ``schedule`` says when each token is
    presented; ``inputs`` holds the arrays that were presented; ``seeds`` the random streams of the
    build and the spikes (``circuits.seeds``).

    After a run, :meth:`freeze` gives a copy that holds plain arrays instead of Brian2 objects
    (monitors as :class:`SpikeData`/:class:`StateData`, groups as :class:`GroupData`): it can be
    pickled, outlives the device, and answers the same read-out methods.
    """

    kind: str
    network: brian2.Network | None
    groups: dict
    monitors: dict
    schedule: Schedule
    params: ParameterSet
    config: dict
    inputs: dict
    seeds: SeedStreams
    has_run: bool = field(default=False)

    def run(self, report=None, report_period=10 * brian2.second):
        """Simulate the whole protocol (once)."""
        if self.has_run:
            raise RuntimeError("this circuit has already run; build a new one")
        brian2.seed(self.seeds.spikes)
        self.network.run(self.schedule.duration * brian2.second, report=report,
                         report_period=report_period, namespace={})
        self.has_run = True

    def freeze(self) -> "SpikingCircuit":
        """A copy of this run circuit with its monitors' data and group sizes as plain arrays."""
        if not self.has_run:
            raise RuntimeError("run the circuit before freezing it")
        return replace(self, network=None, groups={name: freeze_group(g) for name, g in self.groups.items()},
                       monitors={name: freeze_monitor(m) for name, m in self.monitors.items()})

    def window_counts(self, group, windows) -> np.ndarray:
        """(n_windows x n_neurons) spike counts of the monitored group ``group`` in each window."""
        mon = self.monitors[f"{group}_spikes"]
        return window_counts(mon.t_[:], mon.i[:], windows, len(self.groups[group]), float(self.params["dt"]))

    def total_spikes(self) -> int:
        return int(sum(m.num_spikes for name, m in self.monitors.items() if name.endswith("_spikes")))


@dataclass
class AttentionCircuit(SpikingCircuit):
    """A built key-query-value circuit (see :class:`SpikingCircuit`).

    ``groups`` and ``monitors``: ``features``, ``value_neurons``, ``astrocyte``...;
    ``value_neurons_spikes``, ``features_spikes``, ``astrocyte_monitor``... ``inputs`` holds the
    scaled keys/queries (``x_keys``, ``x_queries``) and ``values`` that were presented.
    """

    @property
    def per_value(self) -> int:
        return self.config["neurons_per_value"]

    def output_gain(self) -> float:
        """Expected spike count of one value population per unit of one polarity of y, per read:
        P * t_read * rho_value * eta_hebb / kappa (the Hebbian and calcium gains set the ratio)."""
        p = self.params
        return (self.per_value * self.schedule.t_read * float(p["rho_value"])
                * float(p["eta_hebb"]) / float(p["kappa"]))

    def population_counts(self) -> np.ndarray:
        """Spike counts (n_queries x 2 d_v) of each ON/OFF value population in each read window."""
        counts = self.window_counts("value_neurons", self.schedule.read_windows())
        return counts.reshape(len(counts), -1, self.per_value).sum(axis=2)

    def decode(self) -> np.ndarray:
        """The spiking output ŷ (n_queries x d_v): ON minus OFF counts over the known gain."""
        if not self.has_run:
            raise RuntimeError("run the circuit before decoding it")
        return decode_on_off(self.population_counts(), self.output_gain())

    def raster_data(self, max_features=64) -> dict:
        """Spike times/indices per layer, astrocyte traces and phase windows, for raster figures."""
        def spikes(name, keep=None):
            mon = self.monitors[name]
            t, i = np.asarray(mon.t_[:]), np.asarray(mon.i[:])
            if keep is not None:
                t, i = t[i < keep], i[i < keep]
            return t, i

        astro = self.monitors["astrocyte_monitor"]
        proc = self.monitors["process_monitor"]
        n_features = len(self.groups[self.config["key_layer"]])
        return {
            "key_encoders": spikes("key_encoders_spikes"),
            "value_encoders": spikes("value_encoders_spikes"),
            "features": spikes(f"{self.config['key_layer']}_spikes", max_features),
            "values": spikes("value_neurons_spikes"),
            "n_features_shown": min(max_features, n_features),
            "key_layer": self.config["key_layer"],
            "encoders_per_channel": self.config["encoders_per_dim"],
            "neurons_per_value": self.per_value,
            "astro_t": np.asarray(astro.t_[:]),
            "ca_total": np.asarray(astro.Ca_total[0]),
            "signal": np.asarray(astro.A[0]),
            "process_ca": np.asarray(proc.Ca[:]),
            "learn_windows": self.schedule.learn_windows(),
            "read_windows": self.schedule.read_windows(),
            "write_end": self.schedule.write_end,
        }
