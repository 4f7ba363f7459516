"""A weight matrix on synapses: presynaptic spikes projected onto accumulating output units.

    source neurons ==w_proj==> output units y_j, sampled at the end of every counting window

(models.projection; docs/model.md §10). A block adds a projection to its own network with
:func:`projection` and reads it with :func:`window_values`; the synaptic events a run delivered are
counted by ``circuits.circuit.SpikingCircuit.synaptic_events`` like any other synapses'.
"""

import numpy as np
from brian2 import EventMonitor, TimedArray, linked_var, second

from circuits import blocks
from circuits.codes import latency_neurons
from models.projection import (ACCUMULATOR_EQS, ACCUMULATOR_EVENTS, COUNTING_UPDATE, EMITTER_EQS, EMITTER_START,
                               HANDOFF_EQS, HANDOFF_ON_SAMPLE, PROJECTION_SYNAPSE_MODEL, PROJECTION_SYNAPSE_ON_PRE)


def sample_table(windows, duration, dt):
    """0/1 values, one per step of ``dt``: 1 at the last step of every window."""
    out = np.zeros(int(round(duration / dt)))
    out[np.rint(np.asarray(windows)[:, 1] / dt).astype(int) - 1] = 1.0
    return out


def output_weights(w_out, b_out=None) -> tuple:
    """An output projection's weights (out x in) and bias (out; default zero) as float arrays."""
    w_out = np.asarray(w_out, dtype=float)
    return w_out, np.zeros(len(w_out)) if b_out is None else np.asarray(b_out, dtype=float)


def connections(weights, sparse=False) -> tuple:
    """Explicit wiring of a (presynaptic x postsynaptic) weight matrix, source-major: (pre, post,
    weight) of every pair, or with ``sparse`` of the non-zero weights only (a diagonal matrix, e.g. a
    residual path, then costs one synapse per row and no events for its zeros). A sparse pattern
    depends on the weights' values: a circuit whose compiled structure must not change with them
    (``circuits.standalone``) puts the pattern in its configuration."""
    weights = np.asarray(weights, dtype=float)
    if sparse:
        pre, post = np.nonzero(weights)
    else:
        pre, post = np.divmod(np.arange(weights.size), weights.shape[1])
    return pre, post, weights[pre, post]


def projection(sources, bias, params, namespace, name, windows, duration, dt, on_pre=None, sparse=False,
               handoff=False):
    """Output units (one per entry of ``bias``) fed by ``sources``: pairs of a Brian2 group and its
    weights (neurons of the group x output units), every pair all to all. The units count in the
    ``count_phase`` windows of ``namespace`` and are sampled at the last step of each of
    ``windows`` (their clock ``dt`` must be the synapses' and every source's finest step, so no
    event of a window falls after its sample). ``on_pre``: what a spike does (from latency
    encoders: ``LATENCY_PROJECTION_ON_PRE``; default ``PROJECTION_SYNAPSE_ON_PRE``). ``sparse``: build
    synapses only where a weight is non-zero (:func:`connections`). Returns the Brian2 objects by name:
    ``<name>_units``, ``<name>_synapses<k>`` and the monitor ``<name>_samples``. ``handoff``: each
    sample also keeps the window's value in ``y_window`` for the units' emitters (:func:`emitters`)."""
    on_pre = PROJECTION_SYNAPSE_ON_PRE if on_pre is None else on_pre
    window_length = float(windows[0][1] - windows[0][0])
    namespace = dict(namespace, sample_step=TimedArray(sample_table(windows, duration, dt), dt=dt * second,
                                                       name=f"{name}_sample_table"))
    units = blocks.neuron_group(len(bias), ACCUMULATOR_EQS + (HANDOFF_EQS if handoff else ""), params, namespace,
                                f"{name}_units", events=ACCUMULATOR_EVENTS, method="euler", dt=dt * second,
                                extra={"t_window": window_length * second})
    if handoff:
        units.run_on_event("sample", HANDOFF_ON_SAMPLE, when="end", order=-1)
    units.b_out = np.asarray(bias, dtype=float)
    units.run_regularly(COUNTING_UPDATE, when="start", name=f"{name}_counting")
    objects = {f"{name}_units": units}
    for k, (source, weights) in enumerate(sources):
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (len(source), len(bias)):
            raise ValueError(f"{name}: weights of {source.name} must be {len(source)} x {len(bias)}, got {weights.shape}")
        # Explicit indices (source-major), so the weights can be set on any device before a run.
        pre, post, values = connections(weights, sparse)
        synapses = blocks.synapses(source, units, PROJECTION_SYNAPSE_MODEL, params, namespace, f"{name}_synapses{k}",
                                   {"i": pre, "j": post}, on_pre=on_pre, dt=dt * second)
        synapses.w_proj = values
        objects[f"{name}_synapses{k}"] = synapses
    objects[f"{name}_samples"] = EventMonitor(units, "sample", variables=["y"], when="end", name=f"{name}_samples")
    return objects


def window_values(monitor, n_windows, n_units) -> np.ndarray:
    """(n_windows x n_units) value each output unit accumulated in each counting window, from the
    samples at the windows' ends (the units do not reset: a window's value is the difference of
    two samples)."""
    order = np.lexsort((np.asarray(monitor.i[:]), np.asarray(monitor.t_[:])))
    samples = np.asarray(monitor.y[:])[order].reshape(n_windows, n_units)
    return np.diff(samples, axis=0, prepend=0.0)


def emitters(units, params, name, x_top, period):
    """One ON and one OFF latency emitter per unit of a handing-off projection (``projection(...,
    handoff=True)``; ``models.projection.EMITTER_EQS``), channel 2j carrying +y_j and 2j+1 carrying
    -y_j with top of range ``x_top``: at each start of a window of ``period`` seconds they fire the
    previous window's value, one spike per unit and window (the layout of ``circuits.codes.SpikeTrain``)."""
    n = 2 * len(units)
    channel = np.arange(n)
    group = latency_neurons(n, EMITTER_START, params, {}, name, x_top, period, model=EMITTER_EQS)
    group.channel = channel
    group.polarity = np.where(channel % 2 == 0, 1.0, -1.0)
    group.y_window = linked_var(units, "y_window", index=channel // 2)
    return group
