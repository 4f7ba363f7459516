"""A run's spike trains on disk: ``spikes.npz`` in the run folder.

:func:`save_spikes` writes a :class:`circuits.recording.Recording` compactly (NumPy's compressed
``.npz``, no pickled objects); :func:`load_spikes` reads it back exactly. The file holds:

================================  ===============================================================
``populations``                   names of the kept populations, in raster order
``<pop>_i``                       uint32, index within the population of the neuron of each spike
``<pop>_t``                       float64, time of each spike in seconds
``<pop>_n``                       number of neurons in the population
``<pop>_columns``                 names of the population's neuron columns; each is stored as
                                  ``<pop>_column_<name>`` (``polarity``, ``input_dim``,
                                  ``value_dim``, ``token``: see ``circuits.recording``)
``dropped``, ``dropped_spikes``   populations not kept and their spike counts
``intervals``                     phase names; ``interval_<name>``: (n x 2) start, stop in seconds
``traces``                        astrocyte trace names; ``trace_<name>_t`` (s), ``_data``
                                  (samples x channels), ``_unit``, ``_channels``, ``_description``
``dt``, ``duration``              time step and simulated time, seconds
``seed``, ``config``              the run's seed and circuit configuration (JSON)
================================  ===============================================================

Size: every population is kept unless the run has more than :data:`MAX_SPIKES` spikes in all;
then only :func:`default_populations` (the key layer and the value neurons, which carry the
attention computation; the encoders' spikes follow from the inputs in ``outputs.npz``) are kept
and the others are listed in ``dropped``. ``keep_all=True`` keeps every population whatever the
size, ``populations=[...]`` keeps exactly those named.
"""

import json
from pathlib import Path

import numpy as np

from circuits.recording import Population, Recording, Trace
from runs.folders import FileError, atomic_path, read_npz, to_jsonable

#: File name of the spike trains in a run folder.
SPIKES_FILE = "spikes.npz"
#: Above this many spikes in all (about 60 MB before compression), a run keeps only the default
#: populations unless asked otherwise.
MAX_SPIKES = 5_000_000
#: Version of the file layout, stored as ``format_version``.
FORMAT_VERSION = 1


def default_populations(recording: Recording) -> list:
    """Populations kept when a run exceeds :data:`MAX_SPIKES`: the key layer (``features`` or
    ``key_neurons``) and the ``value_neurons``.

    Parameters
    ----------
    recording : Recording
        The run's recording.

    Returns
    -------
    list of str
        Those of the two present in ``recording``, in raster order.
    """
    wanted = {recording.config.get("key_layer"), "value_neurons"}
    return [name for name in recording.populations if name in wanted]


def choose_populations(recording: Recording, populations=None, keep_all=False, max_spikes=MAX_SPIKES) -> list:
    """Which populations :func:`save_spikes` keeps.

    Parameters
    ----------
    recording : Recording
        The run's recording.
    populations : sequence of str, optional
        Keep exactly these (in raster order).
    keep_all : bool
        Keep every population, however many spikes.
    max_spikes : int
        Keep every population if the run has at most this many spikes in all, otherwise only
        :func:`default_populations`.

    Returns
    -------
    list of str
        Names of the populations to keep.

    Raises
    ------
    ValueError
        If ``populations`` names a population the recording does not have, or is given together
        with ``keep_all``.
    """
    if populations is not None:
        if keep_all:
            raise ValueError("give either populations or keep_all, not both")
        unknown = set(populations) - set(recording.populations)
        if unknown:
            raise ValueError(f"no population {', '.join(sorted(unknown))}; "
                             f"the recording has {', '.join(recording.populations)}")
        return [name for name in recording.populations if name in set(populations)]
    if keep_all or recording.total_spikes() <= max_spikes:
        return list(recording.populations)
    return default_populations(recording)


def save_spikes(run_dir, recording: Recording, populations=None, keep_all=False, max_spikes=MAX_SPIKES) -> Path:
    """Write ``spikes.npz`` (see the module docstring) into a run folder, atomically.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        The run folder.
    recording : Recording
        What the run recorded (``circuits.recording.recording(circuit)``).
    populations, keep_all, max_spikes
        Which populations to keep (see :func:`choose_populations`); the others are listed in
        the file's ``dropped`` with their spike counts.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    keep = choose_populations(recording, populations, keep_all, max_spikes)
    dropped = dict(recording.dropped)
    dropped.update({name: len(p.t) for name, p in recording.populations.items() if name not in keep})
    arrays = {"format_version": FORMAT_VERSION, "populations": np.array(keep, dtype=str),
              "dropped": np.array(list(dropped), dtype=str),
              "dropped_spikes": np.array(list(dropped.values()), dtype=np.int64),
              "intervals": np.array(list(recording.intervals), dtype=str),
              "traces": np.array(list(recording.traces), dtype=str),
              "dt": recording.dt, "duration": recording.duration, "seed": recording.seed,
              "config": json.dumps(recording.config, default=to_jsonable)}
    for name in keep:
        pop = recording.populations[name]
        arrays.update({f"{name}_i": pop.i.astype(np.uint32), f"{name}_t": pop.t.astype(np.float64),
                       f"{name}_n": pop.size, f"{name}_columns": np.array(list(pop.columns), dtype=str)})
        arrays.update({f"{name}_column_{col}": values for col, values in pop.columns.items()})
    for name, window in recording.intervals.items():
        arrays[f"interval_{name}"] = window
    for name, trace in recording.traces.items():
        arrays.update({f"trace_{name}_t": trace.t, f"trace_{name}_data": trace.data, f"trace_{name}_unit": trace.unit,
                       f"trace_{name}_channels": trace.channels, f"trace_{name}_description": trace.description})
    path = Path(run_dir) / SPIKES_FILE
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def load_spikes(path) -> Recording:
    """Read a run's ``spikes.npz`` back into the :class:`~circuits.recording.Recording` that was saved.

    Parameters
    ----------
    path : str or pathlib.Path
        A run folder or the ``spikes.npz`` file itself.

    Returns
    -------
    circuits.recording.Recording
        Exactly the saved recording, less the populations that were not kept (listed in
        ``dropped`` with their spike counts).

    Raises
    ------
    runs.folders.FileError
        With one line naming the file, if it is missing, damaged (cut short, not an .npz archive)
        or not a spikes file of this layout.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPIKES_FILE
    todo = "run the experiment again (its command line is in params.json, versions.argv) to write it anew"
    f = read_npz(path, todo)
    try:
        version = int(f["format_version"])
    except (KeyError, TypeError, ValueError):
        version = None
    if version != FORMAT_VERSION:
        raise FileError(f"{path}: not a spikes file of format {FORMAT_VERSION}, which this version reads (format "
                        f"{version}); {todo}")
    try:
        populations = {
            name: Population(int(f[f"{name}_n"]), f[f"{name}_i"], f[f"{name}_t"],
                             {col: f[f"{name}_column_{col}"] for col in f[f"{name}_columns"].tolist()})
            for name in f["populations"].tolist()}
        intervals = {name: f[f"interval_{name}"] for name in f["intervals"].tolist()}
        traces = {name: Trace(f[f"trace_{name}_t"], f[f"trace_{name}_data"], str(f[f"trace_{name}_unit"]),
                              f[f"trace_{name}_channels"], str(f[f"trace_{name}_description"]))
                  for name in f["traces"].tolist()}
        dropped = dict(zip(f["dropped"].tolist(), f["dropped_spikes"].tolist()))
        return Recording(populations, intervals, traces, float(f["dt"]), float(f["duration"]), int(f["seed"]),
                         json.loads(str(f["config"])), dropped)
    except (KeyError, TypeError, ValueError) as exc:  # arrays missing or of another kind: not this layout
        what = f"no array {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise FileError(f"{path}: not a spikes file of this layout ({what}); {todo}") from None


def save_run_spikes(run_dir, circuit, record: dict, experiment: str, keep_all=False, export=()) -> dict:
    """Keep a run circuit's spikes in ``run_dir``: ``spikes.npz`` always (:func:`save_spikes`), and
    ``run.nwb`` if ``"nwb" in export`` (``runs.nwb.write_nwb``, with ``record``, the run's
    ``params.json`` content, as its metadata). Returns the paths written, by kind."""
    from circuits.recording import recording

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    rec = recording(circuit)
    paths = {"spikes": save_spikes(run_dir, rec, keep_all=keep_all)}
    if "nwb" in export:
        from runs.nwb import write_nwb

        paths["nwb"] = write_nwb(Path(run_dir) / "run.nwb", rec, record, seed=record.get("seed"),
                                 experiment=experiment)
    return paths
