"""Building blocks shared by the attention circuits: encoders, value layer, astrocyte.

Each function creates Brian2 objects with an explicit namespace (parameters and TimedArrays), so
several circuits can coexist in one Python process.
"""

import numpy as np
from brian2 import Hz, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, linked_var

from models.astrocytes import ASTROCYTE_MODELS, ASTROCYTE_EQS, PROCESS_READ_ON_PRE, PROCESS_SUMMED, process_model
from circuits.protocol import TABLE_BIN
from models.encoders import ENCODER_KINDS, encoder_model, signed_rates
from models.neurons import VALUE_NEURON_EQS, VALUE_NEURON_THRESHOLD
from models.synapses import TEACHER_SYNAPSE_MODEL, TEACHER_SYNAPSE_ON_PRE


def input_namespace(params, schedule, key_input, values):
    """Namespaces of the key layer and of the value encoders: parameters plus TimedArrays.

    key_input: (n_bins x d) vector presented to the key/query encoders in each bin; values: the
    (L x d_v) values, presented to the value encoders while their token is written.
    """
    namespace = params.namespace()
    namespace.update(
        rate_table=TimedArray(signed_rates(key_input, float(params["key_enc_gain"])) * Hz, dt=TABLE_BIN),
        write_phase=TimedArray(schedule.write_phase(), dt=TABLE_BIN),
        read_phase=TimedArray(schedule.read_phase(), dt=TABLE_BIN),
    )
    rows = schedule.value_rows()
    v_padded = np.concatenate([values, np.zeros((1, values.shape[1]))])      # row -1: no value shown
    value_namespace = dict(namespace, rate_table=TimedArray(
        signed_rates(v_padded[rows], float(params["value_enc_gain"])) * Hz, dt=TABLE_BIN))
    return namespace, value_namespace


def spike_monitors(groups, key_layer):
    """SpikeMonitors of the encoders, the key layer (feature or key neurons) and the value neurons,
    keyed ``<layer>_spikes``."""
    return {f"{name}_spikes": SpikeMonitor(groups[name], name=f"{name}_spikes") for name in
            ("key_encoders", "value_encoders", key_layer, "value_neurons")}


def check_options(astrocyte, encoder, **sizes):
    """Validate model choices and integer sizes (each >= 1); ValueError with one line otherwise."""
    if astrocyte not in ASTROCYTE_MODELS:
        raise ValueError(f"unknown astrocyte model {astrocyte!r}; choose one of {', '.join(ASTROCYTE_MODELS)}")
    if encoder not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODER_KINDS)}")
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def encoder_population(n_channels, per_channel, kind, namespace, dt, rng, name):
    """``per_channel`` encoder neurons for each rate-table channel (ON/OFF of each dimension)."""
    group = NeuronGroup(n_channels * per_channel, dt=dt, namespace=namespace, name=name,
                        method="euler", **encoder_model(kind))
    group.channel = np.arange(n_channels * per_channel) // per_channel
    if kind == "regular":
        group.phase = rng.uniform(0, 1, size=len(group))
    return group


def value_layer(value_dim, per_value, value_encoders, encoders_per_channel, namespace, dt,
                blocked_signal=None):
    """ON/OFF value populations of ``per_value`` neurons per dimension, taught by the value encoders.

    Neuron ``(2*i + pol) * per_value + p`` is neuron p of polarity pol (0: ON, 1: OFF) of value
    dimension i. With ``blocked_signal`` the astrocyte is blocked: the divisive gain uses that
    constant instead of the astrocyte's signal.
    """
    n_channels = 2 * value_dim
    eqs = VALUE_NEURON_EQS
    if blocked_signal is not None:
        eqs = eqs.replace("A : 1 (linked)", "A : 1 (constant)")
    values = NeuronGroup(n_channels * per_value, eqs, threshold=VALUE_NEURON_THRESHOLD, dt=dt,
                         namespace=namespace, name="value_neurons", method="exact")
    if blocked_signal is not None:
        values.A = blocked_signal
    pre_channel = np.arange(len(value_encoders)) // encoders_per_channel
    post_channel = np.arange(len(values)) // per_value
    ii, jj = np.nonzero(pre_channel[:, None] == post_channel[None, :])
    teacher = Synapses(value_encoders, values, TEACHER_SYNAPSE_MODEL, on_pre=TEACHER_SYNAPSE_ON_PRE,
                       dt=dt, namespace=namespace, name="teacher_synapses")
    teacher.connect(i=ii, j=jj)
    teacher.w_teach = 1.0 / (encoders_per_channel * namespace["value_enc_gain"] * namespace["tau_syn"])
    return values, teacher


def astrocyte(presynaptic, kind, namespace, dt, record_dt, n_recorded_processes=8):
    """One astrocyte with one process per presynaptic neuron, and monitors of its calcium.

    Returns (astrocyte group, processes, [monitors]).
    """
    spec = process_model(kind)
    cell = NeuronGroup(1, ASTROCYTE_EQS, dt=dt, namespace=namespace, name="astrocyte", method="exact")
    processes = Synapses(presynaptic, cell, spec["model"] + PROCESS_SUMMED,
                         on_pre={"write": spec["on_write"], "read": PROCESS_READ_ON_PRE},
                         dt=dt, namespace=namespace, name="astro_processes",
                         method="exact" if kind == "minimal" else "rk2")
    processes.connect(i=np.arange(len(presynaptic)), j=0)
    for var, value in spec["initial"].items():
        setattr(processes, var, value)
    monitors = [
        StateMonitor(cell, ["Ca_total", "A"], record=True, dt=record_dt, name="astrocyte_monitor"),
        StateMonitor(processes, "Ca", record=np.arange(min(n_recorded_processes, len(presynaptic))),
                     dt=record_dt, name="process_monitor"),
    ]
    return cell, processes, monitors


def link_astrocyte(values, cell):
    """Let the value neurons read the astrocyte's gliotransmitter signal (divisive gain)."""
    values.A = linked_var(cell, "A", index=np.zeros(len(values), dtype=int))
