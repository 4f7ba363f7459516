"""The object a circuit builder returns: the Brian2 network plus the handles an experiment needs."""

from dataclasses import dataclass, field, replace

import brian2
import numpy as np

from analysis.spikes import decode_on_off, window_counts
from circuits.projection import window_values
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


def output_gain(params, schedule, per_value) -> float:
    """Expected spike count of one value population of ``per_value`` neurons per unit of one
    polarity of y, per read: P * t_read * rho_value * eta_hebb / kappa (the Hebbian and calcium
    gains set the ratio)."""
    return per_value * schedule.t_read * float(params["rho_value"]) * float(params["eta_hebb"]) / float(params["kappa"])


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
class EventData(SpikeData):
    """What an EventMonitor recorded: event times ``t_`` (s), indices ``i`` and the recorded
    variables at each event, read as attributes (``y``)."""

    values: dict = field(default_factory=dict)

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name not in values:
            raise AttributeError(name)
        return values[name]


@dataclass(frozen=True)
class SpikeCounts:
    """What a slim circuit keeps of a SpikeMonitor (:meth:`SpikingCircuit.slim`): the number of
    spikes of each neuron over the whole run, no spike times."""

    counts: np.ndarray

    @property
    def num_spikes(self) -> int:
        return int(self.counts.sum())


def neuron_counts(monitor, n_neurons) -> np.ndarray:
    """Spikes of each of (at least) ``n_neurons`` neurons over the run, from a spike monitor's data
    (SpikeMonitor, SpikeData or SpikeCounts), as int64."""
    if isinstance(monitor, SpikeCounts):
        counts = monitor.counts.astype(np.int64)
        return np.pad(counts, (0, max(0, n_neurons - len(counts))))
    return np.bincount(np.asarray(monitor.i[:]), minlength=n_neurons)


@dataclass(frozen=True)
class GroupData:
    """Size and wiring of a Brian2 group or Synapses object of a run circuit, without its state."""

    size: int
    synapses: bool = False
    source: str | None = None       # Synapses: name of the presynaptic group
    n_pathways: int = 0             # Synapses: number of on_pre pathways
    fanout: np.ndarray | None = None  # Synapses: number of synapses of each presynaptic neuron

    def __len__(self):
        return self.size


def freeze_monitor(monitor):
    """A plain-array copy of a SpikeMonitor's, EventMonitor's or StateMonitor's data."""
    if isinstance(monitor, brian2.SpikeMonitor):
        return SpikeData(np.array(monitor.t_[:]), np.array(monitor.i[:]))
    if isinstance(monitor, brian2.EventMonitor):
        return EventData(np.array(monitor.t_[:]), np.array(monitor.i[:]),
                         {name: np.array(getattr(monitor, name + "_")[:]) for name in monitor.record_variables
                          if name not in ("t", "i")})
    return StateData(np.array(monitor.t_[:]), np.array(monitor.record),
                     {name: np.array(getattr(monitor, name + "_")) for name in monitor.record_variables},
                     {name: monitor.variables[name].dim for name in monitor.record_variables})


def freeze_group(group) -> GroupData:
    if isinstance(group, brian2.Synapses):
        fanout = np.bincount(np.asarray(group.i[:]), minlength=len(group.source))
        return GroupData(len(group), True, group.source.name, len(group._pathways), fanout)
    return GroupData(len(group))


@dataclass
class SpikingCircuit:
    """A built circuit, ready to run once: the Brian2 network plus the handles to read it out.

    ``groups`` and ``monitors`` map names to Brian2 objects; ``schedule`` says when each token is
    presented; ``inputs`` holds the arrays that were presented; ``seeds`` the random streams of the
    build and the spikes (``circuits.seeds``).

    After a run, :meth:`freeze` gives a copy that holds plain arrays instead of Brian2 objects
    (monitors as :class:`SpikeData`/:class:`StateData`, groups as :class:`GroupData`): it can be
    pickled, outlives the device, and answers the same read-out methods; :meth:`slim` a smaller
    copy without spike trains for callers that read only a run's totals and decoded outputs.
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

    def slim(self, keep=()) -> "SpikingCircuit":
        """A frozen copy of this run circuit without its spike trains and traces, holding what the
        read-outs of a run's totals need: each spike monitor as per-neuron counts
        (:class:`SpikeCounts`: :meth:`population_spikes`, :meth:`total_spikes` and
        :meth:`synaptic_events` give the numbers of the full circuit), the event monitors (the output
        projections' samples) in full, no state monitors; groups, schedule, parameters, config,
        inputs and seeds as they are. ``keep``: populations (``"key_neurons"``) or monitors
        (``"adenosine_monitor"``) kept in full; names this circuit lacks are ignored. Spike times,
        window counts, decoding and rasters need the kept (or full) monitors."""
        frozen = self.freeze() if self.network is not None else self
        keep = set(keep)
        monitors = {}
        for name, monitor in frozen.monitors.items():
            population = name[:-len("_spikes")] if name.endswith("_spikes") else None
            if name in keep or population in keep or isinstance(monitor, EventData):
                monitors[name] = monitor
            elif isinstance(monitor, (SpikeData, SpikeCounts)):
                group = frozen.groups.get(population)
                counts = neuron_counts(monitor, len(group) if group is not None else 0)
                dtype = np.int32 if counts.size == 0 or counts.max() < 2 ** 31 else np.int64
                monitors[name] = SpikeCounts(counts.astype(dtype))
        return replace(frozen, monitors=monitors)

    def window_counts(self, group, windows) -> np.ndarray:
        """(n_windows x n_neurons) spike counts of the monitored group ``group`` in each window."""
        mon = self.monitors[f"{group}_spikes"]
        if isinstance(mon, SpikeCounts):
            raise ValueError(f"this slim circuit holds no spike times of {group}; keep them: slim(keep=[{group!r}])")
        return window_counts(mon.t_[:], mon.i[:], windows, len(self.groups[group]), float(self.params["dt"]))

    def total_spikes(self) -> int:
        return int(sum(m.num_spikes for name, m in self.monitors.items() if name.endswith("_spikes")))

    def population_spikes(self) -> dict:
        """Spikes of every monitored population over the whole run, by group name."""
        return {name[:-len("_spikes")]: int(m.num_spikes) for name, m in self.monitors.items()
                if name.endswith("_spikes")}

    def synaptic_events(self) -> dict:
        """Synaptic events the run delivered, per Synapses object: for every presynaptic spike, one
        event per synapse of that neuron and on_pre pathway (what the simulation executed, counted
        from the source's spike monitor and the synapses' wiring). A run circuit only (frozen or not)."""
        events = {}
        for name, group in self.groups.items():
            data = group if isinstance(group, GroupData) else freeze_group(group)
            if not data.synapses:
                continue
            monitor = self.monitors.get(f"{data.source}_spikes")
            if monitor is None:
                raise KeyError(f"{name}: its source {data.source} has no spike monitor to count events from")
            spikes = neuron_counts(monitor, len(data.fanout))
            events[name] = int(spikes @ data.fanout) * data.n_pathways
        return events


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
        """Expected spike count of one value population per unit of one polarity of y, per read
        (:func:`output_gain`)."""
        return output_gain(self.params, self.schedule, self.per_value)

    def projected(self) -> np.ndarray | None:
        """The output projection's accumulated values W_O ŷ + b_O (queries x out), or None if the
        circuit was built without ``w_out`` (``circuits.projection``)."""
        if "out_samples" not in self.monitors:
            return None
        # Sampled in every read window, empty ones of a padded circuit included: the real queries' rows.
        values = window_values(self.monitors["out_samples"], self.schedule.n_query_windows, self.config["n_out"])
        return values[self.schedule.query_slots()]

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
