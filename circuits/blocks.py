"""Building blocks shared by the attention circuits: encoders, value layer, astrocyte.

Every Brian2 object is made by :func:`neuron_group` or :func:`synapses`, which declare each model
parameter its code uses as a ``(shared, constant)`` variable of the object and set its value. The
generated code then does not depend on parameter values: a new value needs no recompilation
(runtime) and can be passed to an already built standalone network. The explicit namespaces hold
only the TimedArrays (inputs and phase signals), so several circuits coexist in one process.
"""

import numpy as np
from brian2 import Hz, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, linked_var, volt
from brian2.units.fundamentalunits import DIMENSIONLESS
from brian2.utils.stringtools import get_identifiers

from models.astrocytes import (ASTROCYTE_MODELS, ASTROCYTE_EQS, PROCESS_READ_ON_PRE, PROCESS_SUMMED, process_model,
                               read_calibration, rest_state)
from circuits.protocol import TABLE_BIN
from models.encoders import ENCODER_KINDS, encoder_model, signed_rates
from models.gliotransmission import ADENOSINE_FEEDBACK_EQS, BLOCKED_ASTROCYTE_EQS
from models.neurons import VALUE_DRIVE_EQS, VALUE_NEURON_EQS, VALUE_NEURON_THRESHOLD
from models.synapses import (TEACHER_SYNAPSE_MODEL, TEACHER_SYNAPSE_ON_PRE, TRIPARTITE_SYNAPSE_MODEL,
                             TRIPARTITE_SYNAPSE_ON_PRE)


#: Parameters that are not read by model code (they set the protocol or the recording).
NOT_IN_CODE = {"dt", "dt_enc", "t_settle", "t_learn", "t_read", "t_count", "t_code", "record_dt"}


_BASE_UNITS = ("metre", "kilogram", "second", "amp", "kelvin", "mole", "candle")


def _unit_string(value) -> str:
    """The unit of ``value`` as an equation-unit string in base units, e.g. ``metre**-3 * mole``."""
    dim = getattr(value, "dim", DIMENSIONLESS)
    if dim is DIMENSIONLESS:
        return "1"
    return " * ".join(f"{base}**{exp:g}" for base, exp in zip(_BASE_UNITS, dim._dims) if exp)


def _with_parameters(model, params, code, extra):
    """``model`` plus (shared, constant) declarations of the parameters (and ``extra`` derived
    constants) that ``code`` uses; and the values to set."""
    used = set().union(*(get_identifiers(c) for c in code if isinstance(c, str)))
    values = {n: params[n] for n in params if n in used and n not in NOT_IN_CODE}
    values.update({n: v for n, v in (extra or {}).items() if n in used})
    declarations = "\n".join(f"{n} : {_unit_string(v)} (shared, constant)" for n, v in sorted(values.items()))
    return (model or "") + "\n" + declarations, values


def neuron_group(n, model, params, namespace, name, threshold=None, reset=None, extra=None, uses=(), **kwargs):
    """A NeuronGroup whose parameters are shared constants (see the module docstring). ``uses``: more
    code the group will run (``run_regularly``) whose parameters it must declare."""
    code = (model, threshold, reset, kwargs.get("refractory"), *uses)
    model, values = _with_parameters(model, params, code, extra)
    kwargs.setdefault("dt", params["dt"])
    group = NeuronGroup(n, model, threshold=threshold, reset=reset, namespace=namespace, name=name, **kwargs)
    for var, value in values.items():
        setattr(group, var, value)
    return group


def synapses(source, target, model, params, namespace, name, connect, on_pre=None, extra=None, **kwargs):
    """A connected Synapses object whose parameters are shared constants (see the module docstring).

    ``connect``: keyword arguments of ``Synapses.connect`` (``{}``: all to all).
    """
    pathways = on_pre.values() if isinstance(on_pre, dict) else (on_pre,)
    model, values = _with_parameters(model, params, (model, *pathways), extra)
    kwargs.setdefault("dt", params["dt"])
    syn = Synapses(source, target, model, on_pre=on_pre, namespace=namespace, name=name, **kwargs)
    syn.connect(**connect)
    for var, value in values.items():
        setattr(syn, var, value)
    return syn


def table(values, name) -> TimedArray:
    """A TimedArray of one row per protocol bin (TABLE_BIN), with a fixed name.

    The name appears in the generated code: a fixed one lets every build of the same structure
    reuse Brian2's compiled code (an automatic ``_timedarray_N`` differs from build to build and
    forces a new compilation each time). Names must differ within one circuit."""
    return TimedArray(values, dt=TABLE_BIN, name=name)


def input_namespace(params, schedule, key_input, values):
    """Namespaces (TimedArrays) of the key layer and of the value encoders.

    key_input: (n_bins x d) vector presented to the key/query encoders in each bin; values: the
    (L x d_v) values, presented to the value encoders while their token is written.
    """
    namespace = dict(
        rate_table=table(signed_rates(key_input, float(params["key_enc_gain"])) * Hz, "key_rate_table"),
        write_phase=table(schedule.write_phase(), "write_phase_table"),
        read_phase=table(schedule.read_phase(), "read_phase_table"),
    )
    rows = schedule.value_rows()
    v_padded = np.concatenate([values, np.zeros((1, values.shape[1]))])      # row -1: no value shown
    value_namespace = dict(namespace, rate_table=table(
        signed_rates(v_padded[rows], float(params["value_enc_gain"])) * Hz, "value_rate_table"))
    return namespace, value_namespace


def monitors_of(groups, names):
    """SpikeMonitors of the groups ``names``, keyed ``<name>_spikes``."""
    return {f"{name}_spikes": SpikeMonitor(groups[name], name=f"{name}_spikes") for name in names}


def spike_monitors(groups, key_layer):
    """SpikeMonitors of a head's encoders, key layer (feature or key neurons) and value neurons."""
    return monitors_of(groups, ("key_encoders", "value_encoders", key_layer, "value_neurons"))


def check_options(astrocyte, encoder, **sizes):
    """Validate model choices and integer sizes (each >= 1); ValueError with one line otherwise."""
    if astrocyte not in ASTROCYTE_MODELS:
        raise ValueError(f"unknown astrocyte model {astrocyte!r}; choose one of {', '.join(ASTROCYTE_MODELS)}")
    if encoder not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODER_KINDS)}")
    check_sizes(**sizes)


def check_sizes(**sizes):
    """Validate integer sizes (each >= 1); ValueError with one line otherwise."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def encoder_population(n_channels, per_channel, kind, params, namespace, rng, name):
    """``per_channel`` encoder neurons for each rate-table channel (ON/OFF of each dimension)."""
    group = neuron_group(n_channels * per_channel, params=params, namespace=namespace, name=name,
                         method="euler", **encoder_model(kind))
    group.channel = np.arange(n_channels * per_channel) // per_channel
    if kind == "regular":
        group.phase = rng.uniform(0, 1, size=len(group))
    return group


def value_layer(value_dim, per_value, value_encoders, encoders_per_channel, params, namespace):
    """ON/OFF value populations of ``per_value`` neurons per dimension, taught by the value encoders.

    Returns (drive, neurons, teacher synapses). ``drive`` holds the synaptic drives of the
    ``2 * value_dim`` populations (index ``2*i + pol``, pol 0: ON, 1: OFF, of value dimension i): it
    is the postsynaptic target of the teacher and tripartite synapses, and neuron
    ``(2*i + pol) * per_value + p`` reads the drives of population ``2*i + pol`` (see
    ``models.neurons``). Their divisor ``A`` is linked by :func:`link_astrocyte`.
    """
    n_channels = 2 * value_dim
    drive = neuron_group(n_channels, VALUE_DRIVE_EQS, params, namespace, "value_drive", method="exact")
    values = neuron_group(n_channels * per_value, VALUE_NEURON_EQS, params, namespace, "value_neurons",
                          threshold=VALUE_NEURON_THRESHOLD)
    population = np.arange(len(values)) // per_value
    values.I_num = linked_var(drive, "I_num", index=population)
    values.I_teach = linked_var(drive, "I_teach", index=population)
    channel = np.arange(len(value_encoders)) // encoders_per_channel
    teacher = synapses(value_encoders, drive, TEACHER_SYNAPSE_MODEL, params, namespace, "teacher_synapses",
                       {"i": np.arange(len(value_encoders)), "j": channel}, on_pre=TEACHER_SYNAPSE_ON_PRE)
    teacher.w_teach = 1.0 / (encoders_per_channel * params["value_enc_gain"] * params["tau_syn"])
    return drive, values, teacher


def astrocyte(presynaptic, kind, params, namespace, n_recorded_processes=8, preset=None, cell_model=ASTROCYTE_EQS,
              read_on_pre=PROCESS_READ_ON_PRE, dt=None):
    """One astrocyte with one process per presynaptic neuron (``kind``, ``preset``: see
    ``models.astrocytes.process_model``), started at its rest state, and monitors of its calcium.
    ``cell_model`` and ``read_on_pre``: the cell's equations and the processes' read pathway (the
    one-spike key code's: ``models.astrocytes.ONE_SPIKE_ASTROCYTE_EQS``, ``ONE_SPIKE_READ_ON_PRE``);
    ``dt``: the processes' clock (default ``params["dt"]``; the presynaptic group's, if faster).

    Returns (astrocyte group, processes, [monitors]).
    """
    spec = process_model(kind, preset)
    calibration = read_calibration(kind, params, preset)
    extra = {n: calibration[n] for n in ("IP3_rest", "IP3_per_spike") if n in calibration}
    record_dt = params["record_dt"]
    cell = neuron_group(1, cell_model, params, namespace, "astrocyte", method="exact")
    processes = synapses(presynaptic, cell, spec["model"] + PROCESS_SUMMED, params, namespace, "astro_processes",
                         {"i": np.arange(len(presynaptic)), "j": 0},
                         on_pre={"write": spec["on_write"], "read": read_on_pre},
                         method=spec["method"], extra=extra, dt=params["dt"] if dt is None else dt)
    for var, value in rest_state(kind, params, preset).items():
        setattr(processes, var, value)
    if "x_S" in processes.variables:
        processes.x_S = 1.0
    monitors = [
        StateMonitor(cell, ["Ca_total", "A"], record=True, dt=record_dt, name="astrocyte_monitor"),
        StateMonitor(processes, "Ca", record=np.arange(min(n_recorded_processes, len(presynaptic))),
                     dt=record_dt, name="process_monitor"),
    ]
    return cell, processes, monitors


def tripartite_circuit(key_encoders, value_encoders, key_layer, afferents, value_dim, neurons_per_value,
                       encoders_per_dim, astrocyte_kind, params, namespace):
    """What both attention circuits build on their key layer, and their groups and monitors.

    ``key_layer`` and ``afferents``: (name, object) of the key layer (feature or key neurons) and
    of the synapses from the key encoders onto it. Adds the ON/OFF value populations taught by the
    value encoders (:func:`value_layer`), Hebbian tripartite synapses from every key-layer neuron
    to every value population's drive, and an astrocyte with one process per key-layer neuron
    (:func:`astrocyte`). Returns (groups, monitors): the circuit's groups by name (encoders, key
    layer and afferents included) and its monitors (:func:`spike_monitors`, the astrocyte's and
    its processes' traces). The astrocyte's signals are not yet linked: the circuit links them
    (:func:`link_astrocyte`), or those of a blocked stand-in.
    """
    (key_name, keys), (afferent_name, afferent_synapses) = key_layer, afferents
    drive, values, teacher = value_layer(value_dim, neurons_per_value, value_encoders, encoders_per_dim, params,
                                         namespace)
    tripartite = synapses(keys, drive, TRIPARTITE_SYNAPSE_MODEL, params, namespace, "tripartite_synapses", {},
                          on_pre=TRIPARTITE_SYNAPSE_ON_PRE, method="exact")
    cell, processes, (astrocyte_monitor, process_monitor) = astrocyte(keys, astrocyte_kind, params, namespace)
    groups = {"key_encoders": key_encoders, "value_encoders": value_encoders, key_name: keys,
              "value_drive": drive, "value_neurons": values, "astrocyte": cell, afferent_name: afferent_synapses,
              "teacher_synapses": teacher, "tripartite_synapses": tripartite, "astro_processes": processes}
    monitors = {**spike_monitors(groups, key_name), "astrocyte_monitor": astrocyte_monitor,
                "process_monitor": process_monitor}
    return groups, monitors


def adenosine_feedback(cell, params, namespace, set_point):
    """The astrocyte's adenosine in its domain, driven by its signal A towards ``set_point``
    (A_target; ``models.gliotransmission``), and a monitor of the key neurons' hyperpolarisation
    theta. A group of its own: theta's integral control needs Euler steps, while A must stay
    exactly integrated like the value neurons' numerator it divides. Returns (group, monitor)."""
    group = neuron_group(1, ADENOSINE_FEEDBACK_EQS, params, namespace, "adenosine", method="euler",
                         extra={"A_target": set_point})
    group.A = linked_var(cell, "A")
    return group, StateMonitor(group, "theta", record=True, dt=params["record_dt"], name="adenosine_monitor")


def blocked_astrocyte(params, namespace, signal, theta=None):
    """The negative control's stand-in for the astrocyte's read-phase signals: a group holding the
    divisor A at ``signal`` and the key neurons' hyperpolarisation at ``theta`` (default 0 V),
    constants (their mean over the read phase; see the circuits' ``blocked_signals``). Linked by
    :func:`link_astrocyte` like the astrocyte itself."""
    group = neuron_group(1, BLOCKED_ASTROCYTE_EQS, params, namespace, "astrocyte_block")
    group.A = signal
    group.theta = 0 * volt if theta is None else theta
    return group


def key_normaliser(cell, values, keys, params, namespace, set_point, blocked=None) -> tuple:
    """What normalises the exact circuits' read: the astrocyte's adenosine feedback onto the key
    neurons (:func:`adenosine_feedback`, towards ``set_point``) and its divisive gain on the value
    neurons, linked; or with ``blocked`` = (A, theta) the negative control's constants
    (:func:`blocked_astrocyte`). Returns the (groups, monitors) to add to the circuit's."""
    if blocked is not None:
        block = blocked_astrocyte(params, namespace, *blocked)
        link_astrocyte(block, values, keys)
        return {"astrocyte_block": block}, {}
    group, monitor = adenosine_feedback(cell, params, namespace, set_point)
    link_astrocyte(cell, values, keys, theta_source=group)
    return {"adenosine": group}, {"adenosine_monitor": monitor}


def link_astrocyte(source, values, keys=None, theta_source=None):
    """Let the value neurons read ``source``'s gliotransmitter signal A (divisive gain) and, in the
    exact circuit, the key neurons the adenosine hyperpolarisation theta of ``theta_source``
    (default ``source``). ``source``: the astrocyte or its blocked stand-in."""
    values.A = linked_var(source, "A", index=np.zeros(len(values), dtype=int))
    if keys is not None:
        theta_source = source if theta_source is None else theta_source
        keys.theta = linked_var(theta_source, "theta", index=np.zeros(len(keys), dtype=int))
