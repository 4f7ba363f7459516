"""Astrocyte processes alone: presynaptic spike trains drive the processes of one astrocyte.

The processes are the circuit's own (``circuits.blocks.astrocyte``, models/astrocytes.py), started at
their rest state, with the write phase on and the read phase off for the whole run: every input
spike is a write-phase spike (glutamate release for gchi, an IP3 increment for lr1994). Used to
check a model or a parameter change before a circuit (``experiments.astrocyte_response``), to
simulate a circuit's processes without its neurons (``experiments.astrocyte_models``) and against
NEST's reference model (tests/test_nest_crosscheck.py). Simulation only: no figures, no files.
"""

import numpy as np
from brian2 import Network, SpikeGeneratorGroup, StateMonitor, TimedArray, second

from circuits import blocks
from circuits.protocol import PROTOCOL_PARAMETERS
from models.astrocytes import process_model
from models.neurons import VALUE_NEURON_PARAMETERS
from models.parameters import ParameterSet

#: The circuit parameters a lone process needs beside its model's own.
SHARED_PARAMETERS = ("tau_read", "dt", "record_dt")


def process_parameters(kind, preset=None, overrides=None, dt="1*ms") -> ParameterSet:
    """The parameters a lone process needs: its model's (preset) values, the read-signal decay
    tau_read, the time step and the recording interval; overrides checked by name and unit."""
    shared = tuple(p for p in VALUE_NEURON_PARAMETERS + PROTOCOL_PARAMETERS if p.name in SHARED_PARAMETERS)
    return ParameterSet(process_model(kind, preset)["parameters"] + shared).override(
        {"dt": dt, "record_dt": dt, **(overrides or {})})


def simulate_process(kind, params, spike_times, duration, preset=None, record=("C", "IP3", "h")) -> tuple:
    """Drive one process with presynaptic spikes (a list of arrays of times in s, one process
    each) for ``duration`` seconds from rest. Returns (t, {var: array processes x samples})."""
    times = [np.sort(np.asarray(s, dtype=float)) for s in spike_times]
    index = np.concatenate([np.full(len(s), i) for i, s in enumerate(times)]).astype(int)
    pre = SpikeGeneratorGroup(len(times), index, np.concatenate(times) * second, dt=params["dt"], name="input")
    phases = {"write_phase": TimedArray([1.0], dt=duration * second),
              "read_phase": TimedArray([0.0], dt=duration * second)}
    cell, processes, _ = blocks.astrocyte(pre, kind, params, phases, preset=preset)
    trace = StateMonitor(processes, list(record), record=True, dt=params["record_dt"], name="process_trace")
    Network(pre, cell, processes, trace).run(duration * second)
    return np.asarray(trace.t_[:]), {v: np.asarray(getattr(trace, f"{v}_")[:]) for v in record}
