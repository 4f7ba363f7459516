"""What a run recorded, gathered from a run circuit for export (no file input or output here).

:func:`recording` reads the spike monitors, the astrocyte's state monitors and the protocol of an
:class:`~circuits.circuit.AttentionCircuit` that has run, and returns a :class:`Recording`: per
population (named as in the raster: ``key_encoders``, ``value_encoders``, ``features`` or
``key_neurons``, ``value_neurons``) the spiking neurons' indices and spike times, the population's
size and descriptive columns of its neurons; the write and read phases; the recorded astrocyte
traces; ``dt``, duration, seed and circuit configuration. All times are in seconds.
``runs.spikes`` saves and loads it (``spikes.npz``), ``runs.nwb`` writes it as an NWB file and
``runs.neo`` turns it into Neo spike trains.

Neuron columns (ON/OFF channel layout of ``circuits.blocks``):

* ``key_encoders``: ``polarity`` ('ON'/'OFF') and ``input_dim`` (dimension of the key/query
  vector); encoder n belongs to channel n // encoders_per_dim, dimension channel // 2,
  polarity channel % 2 (0: ON, 1: OFF).
* ``value_encoders``: ``polarity`` and ``value_dim``, with the same layout.
* ``value_neurons``: ``polarity`` and ``value_dim``; neuron n belongs to ON/OFF population
  n // neurons_per_value = 2 * value_dim + polarity.
* ``key_neurons`` (exact-kernel circuit): ``token``, the stored token whose population neuron n
  belongs to (n // neurons_per_key).
* ``features``: none (feature neuron r is random feature r).
"""

from dataclasses import dataclass, field

import numpy as np
from brian2 import get_unit
from brian2.units.fundamentalunits import DIMENSIONLESS

from models.encoders import polarity_sign

#: What each population is, for exported files.
POPULATION_DESCRIPTIONS = {
    "key_encoders": "ON/OFF encoders of the keys (write phase) and queries (read phase)",
    "value_encoders": "ON/OFF encoders of the values, active while their token is written",
    "features": "random-feature neurons: rate proportional to the positive random feature phi(x) of the key or query",
    "key_neurons": "key neurons of the exact-kernel circuit, one population per stored token",
    "value_neurons": "ON/OFF value neurons, neurons_per_value per population, divisive gain 1/A from the astrocyte",
}

#: What each neuron column means.
COLUMN_DESCRIPTIONS = {
    "polarity": "ON (positive part) or OFF (negative part) of the signed component the neuron encodes",
    "input_dim": "dimension of the key/query vector the encoder represents",
    "value_dim": "dimension of the value vector the neuron represents",
    "token": "index of the stored token whose key population the neuron belongs to",
}

#: What each phase interval is.
INTERVAL_DESCRIPTIONS = {
    "write": "write phase of each token: plasticity and calcium integration on (t_learn)",
    "read": "read phase of each query: the counting window of the value neurons (t_read)",
    "token_input": "presentation of each token (t_settle + t_learn); its write phase is the last t_learn",
    "query_input": "presentation of each query (t_settle + t_read); its read phase is the last t_read",
}


@dataclass
class Population:
    """Spikes of one neuron population.

    Attributes
    ----------
    size : int
        Number of neurons in the population (neurons that never fired included).
    i : numpy.ndarray of uint32
        Index (within the population) of the neuron that fired each spike.
    t : numpy.ndarray of float64
        Time of each spike, in seconds, in the order Brian2 recorded them (non-decreasing).
    columns : dict of str to numpy.ndarray
        Descriptive columns, one value per neuron (see the module docstring).
    """

    size: int
    i: np.ndarray
    t: np.ndarray
    columns: dict = field(default_factory=dict)

    def spike_trains(self) -> list:
        """Spike times (float64, seconds, sorted) of each neuron, in neuron order.

        Returns
        -------
        list of numpy.ndarray
            ``size`` arrays; neuron n's is empty if it never fired.
        """
        order = np.argsort(self.i, kind="stable")
        bounds = np.cumsum(np.bincount(self.i, minlength=self.size))[:-1]
        return np.split(self.t[order], bounds)


@dataclass
class Trace:
    """A recorded state variable, sampled at regular times.

    Attributes
    ----------
    t : numpy.ndarray of float64
        Sample times in seconds.
    data : numpy.ndarray of float64
        Values (n_samples x n_channels) in SI units of ``unit``.
    unit : str
        Unit of ``data`` ("dimensionless" for a ratio such as the normalised calcium ``Ca``).
    channels : numpy.ndarray of int
        Which element of the monitored object each column is (the astrocyte's index, or the
        process index = index of its presynaptic neuron).
    description : str
        What the variable is.
    """

    t: np.ndarray
    data: np.ndarray
    unit: str
    channels: np.ndarray
    description: str


@dataclass
class Recording:
    """Everything a run recorded that an export needs.

    Attributes
    ----------
    populations : dict of str to Population
        Spikes per population, in raster order.
    intervals : dict of str to numpy.ndarray
        Phase windows (n x 2, start and stop in seconds): ``write`` (one per token), ``read``
        (one per query), ``token_input`` and ``query_input`` (the whole presentations).
    traces : dict of str to Trace
        Astrocyte traces keyed ``<source>_<variable>``: ``astrocyte_Ca_total``, ``astrocyte_A``,
        ``process_Ca`` and whatever else the astrocyte and process monitors record (e.g.
        ``process_IP3``).
    dt : float
        Integration time step in seconds (the spike-time resolution).
    duration : float
        Simulated time in seconds; every spike time is in [0, duration).
    seed : int
        Seed of the run.
    config : dict
        The circuit's configuration (``AttentionCircuit.config``: sizes, models, options).
    dropped : dict of str to int
        Populations whose spikes were not kept (see ``runs.spikes.save_spikes``), with their
        spike counts; empty for a recording taken from a circuit.
    """

    populations: dict
    intervals: dict
    traces: dict
    dt: float
    duration: float
    seed: int
    config: dict
    dropped: dict = field(default_factory=dict)

    def total_spikes(self) -> int:
        """Number of spikes kept, over all populations (dropped populations not counted)."""
        return int(sum(len(p.t) for p in self.populations.values()))


#: What the astrocyte variables are (models/astrocytes.py); other recorded variables get a generic line.
VARIABLE_DESCRIPTIONS = {
    "Ca_total": "total calcium of the astrocyte's processes (sum of their Ca)",
    "A": "gliotransmitter signal, the divisor of the value neurons' gain in the read phase",
    "Ca": "process calcium (minimal model: kappa per presynaptic spike in the write phase; G-ChI: C / 1 uM)",
    "IP3": "inositol trisphosphate concentration of the process",
    "theta": "hyperpolarisation of every key neuron by the astrocyte's adenosine (exact circuit): "
             "exp(theta / delta_u) is proportional to the attention denominator",
}

#: Suffix of the circuits' spike monitors: ``<population>_spikes``.
SPIKE_MONITOR_SUFFIX = "_spikes"
#: State monitors of the astrocyte and its processes, with the trace-name prefix of each.
STATE_MONITORS = {"astrocyte_monitor": "astrocyte", "process_monitor": "process", "adenosine_monitor": "adenosine"}


def recording(circuit) -> Recording:
    """Gather the spikes, phases and astrocyte traces of a circuit that has run.

    Parameters
    ----------
    circuit : circuits.circuit.AttentionCircuit
        A built circuit after ``run()`` (runtime or standalone device).

    Returns
    -------
    Recording
        Every spike monitor's spikes as one population (so ``total_spikes()`` equals
        ``circuit.total_spikes()``), the phase windows, and every variable the astrocyte and
        process monitors record.

    Raises
    ------
    RuntimeError
        If the circuit has not run.
    """
    if not circuit.has_run:
        raise RuntimeError("run the circuit before taking its recording")
    if circuit.network is not None:
        circuit = circuit.freeze()
    populations = {}
    for name, mon in circuit.monitors.items():
        if not name.endswith(SPIKE_MONITOR_SUFFIX):
            continue
        pop = name[:-len(SPIKE_MONITOR_SUFFIX)]
        size = len(circuit.groups[pop])
        populations[pop] = Population(size, np.asarray(mon.i[:], dtype=np.uint32),
                                      np.asarray(mon.t_[:], dtype=np.float64),
                                      neuron_columns(pop, size, circuit.config))
    s = circuit.schedule
    intervals = {"write": s.learn_windows(), "read": s.read_windows(), "token_input": s.token_windows(),
                 "query_input": s.query_windows()}
    traces = {}
    for mon_name, prefix in STATE_MONITORS.items():
        mon = circuit.monitors.get(mon_name)
        if mon is None:
            continue
        for var in mon.record_variables:
            traces[f"{prefix}_{var}"] = _trace(mon, var, prefix)
    return Recording(populations, intervals, traces, float(circuit.params["dt"]), float(s.duration),
                     int(circuit.seeds.seed), dict(circuit.config))


def neuron_columns(population, size, config) -> dict:
    """Descriptive columns of the neurons of ``population`` (see the module docstring).

    Parameters
    ----------
    population : str
        Population name as in the raster.
    size : int
        Number of neurons.
    config : dict
        The circuit's configuration (``encoders_per_dim``, ``neurons_per_value``,
        ``neurons_per_key``).

    Returns
    -------
    dict of str to numpy.ndarray
        ``polarity`` (str 'ON'/'OFF'), ``input_dim``, ``value_dim`` or ``token`` (int64), as
        they apply; empty for feature neurons and unknown populations.
    """
    n = np.arange(size)
    per_channel = {"key_encoders": config.get("encoders_per_dim"), "value_encoders": config.get("encoders_per_dim"),
                   "value_neurons": config.get("neurons_per_value")}.get(population)
    if per_channel:
        channel = n // per_channel
        dim_column = "input_dim" if population == "key_encoders" else "value_dim"
        return {"polarity": np.where(polarity_sign(channel) > 0, "ON", "OFF"), dim_column: channel // 2}
    if population == "key_neurons":
        return {"token": n // config["neurons_per_key"]}
    return {}


def _trace(mon, var, prefix) -> Trace:
    """Trace of variable ``var`` of a StateMonitor (data transposed to time x channel)."""
    dim = mon.dims[var]
    unit = "dimensionless" if dim is DIMENSIONLESS else str(get_unit(dim))
    what = {"astrocyte": "the astrocyte", "adenosine": "the astrocyte's adenosine feedback"}.get(
        prefix, "astrocyte processes (one per presynaptic neuron)")
    meaning = VARIABLE_DESCRIPTIONS.get(var, "state variable of the Brian2 model (models/astrocytes.py)")
    return Trace(np.asarray(mon.t_[:], dtype=np.float64), np.asarray(getattr(mon, var + "_")[:], dtype=np.float64).T,
                 unit, np.asarray(mon.record, dtype=np.int64), f"{var} of {what}: {meaning}")
