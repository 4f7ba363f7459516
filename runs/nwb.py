"""Export a run as a Neurodata Without Borders (NWB) file with pynwb (optional extra ``nwb``).

:func:`write_nwb` writes one NWB file from a :class:`circuits.recording.Recording` (a circuit's
``recording(circuit)`` or a saved run's ``runs.spikes.load_spikes(run_dir)``):

* ``units``: one unit per neuron, with columns ``population``, ``neuron_index`` (index within the
  population), and where they apply ``polarity`` ('ON'/'OFF'; '' where not applicable),
  ``input_dim``, ``value_dim`` and ``token`` (-1 where not applicable); ``resolution`` = dt;
  spike times gzip-compressed.
* ``intervals/write_phases`` (one row per token, column ``token``) and ``intervals/read_phases``
  (one row per query, column ``query``): the plasticity and counting windows, with the start of
  the input's presentation (``input_start_time``, t_settle earlier).
* ``acquisition``: the recorded astrocyte traces as TimeSeries (``astrocyte_Ca_total``,
  ``astrocyte_A``, ``process_Ca``, ``process_IP3`` where recorded), sampled at a fixed rate.
* File metadata: the experiment and description, the seed, and (as JSON in ``notes``) the run's
  parameters, seed, circuit configuration and time step.
* ``subject``: the simulated network, described as in silico (:func:`simulated_subject`).

What the DANDI archive requires, and why the Subject reads as it does. ``dandi validate`` and
``dandi upload`` (unless told to skip validation) run ``nwbinspector`` with its DANDI configuration
and refuse a file with a message of importance CRITICAL (or a PyNWB validation error);
BEST_PRACTICE_VIOLATION messages are reported as warnings [1]. That configuration makes CRITICAL a
Subject with ``subject_id``, ``sex`` (one of M, F, O, U), ``species`` (a Latin binomial or an NCBI
Taxonomy IRI) and ``age`` (ISO 8601 duration) or ``date_of_birth`` [2, 3]. At upload, dandi-cli
turns ``species`` into a taxon: a name from its short list of laboratory animals, or any
``http://purl.obolibrary.org/obo/NCBITaxon_<id>`` IRI [4]. The archive's own schema is looser: its
Participant "can be any individual or synthesized Agent", and species, sex and age are optional
there [5]; the requirement comes from the checks above. There is no in-silico convention in the
checks: the one special case skips the subject checks for a ``subject_id`` starting with "protein",
for in vitro work on a purified protein [6], which a simulation is not; the NWB best practices say
only that "if the data is simulated, a simple ID of 'simulated_subject' would be sufficient" [7],
which alone fails the DANDI configuration. So the Subject states in ``subject_id`` and
``description`` that it is a simulation, and fills the three fields the archive forces with values
that claim no animal:

* ``species`` = NCBITaxon_32630, "synthetic construct" (NCBI Taxonomy: other sequences >
  artificial sequences), NCBI's node for entries made by people rather than found in nature.
  NCBI Taxonomy has no node for a computational model; this one is used only because the archive
  requires an NCBI Taxonomy IRI or a binomial, and it is the one that names no organism. It does
  not mean that the model is a DNA construct, nor that it models one species.
* ``sex`` = "O" (other): the model has no sex ("U", unknown, would say it has one).
* ``age`` = "P0D": the network is built for the run; it has no development.

The file then passes ``nwbinspector --config dandi`` with no message of importance ERROR,
PYNWB_VALIDATION, CRITICAL or BEST_PRACTICE_VIOLATION; two suggestions remain, experimenter and
institution, which the simulator cannot know (``write_nwb``'s ``experimenter`` and ``institution``
fill them) (``tests/test_export.py``). ``dandi validate`` (dandi-cli 0.81.0, offline) finds no error
in the file once ``dandi organize`` has put it in a Dandiset.

* [1] https://github.com/dandi/dandi-cli/blob/master/dandi/files/bases.py (``NWBAsset.get_validation_errors``),
  https://github.com/dandi/dandi-cli/blob/master/dandi/upload.py
* [2] https://github.com/NeurodataWithoutBorders/nwbinspector/blob/dev/src/nwbinspector/_internal_configs/dandi.inspector_config.yaml
* [3] https://github.com/NeurodataWithoutBorders/nwbinspector/blob/dev/src/nwbinspector/checks/_nwbfile_metadata.py
* [4] https://github.com/dandi/dandi-cli/blob/master/dandi/metadata/util.py
  (``extract_species``, ``extract_sex``, ``extract_age``)
* [5] https://github.com/dandi/dandi-schema/blob/master/dandischema/models.py (``Participant``)
* [6] https://github.com/NeurodataWithoutBorders/nwbinspector/pull/431 (``_intercept_in_vitro_protein``)
* [7] https://nwbinspector.readthedocs.io/en/dev/best_practices/nwbfile_metadata.html#subject

:func:`read_nwb_spikes` reads the spike trains back per population.
"""

import json
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from circuits.recording import COLUMN_DESCRIPTIONS, INTERVAL_DESCRIPTIONS, POPULATION_DESCRIPTIONS, Recording
from runs.folders import FileError, atomic_path, to_jsonable

#: The paper the circuit implements (NWB ``related_publications``).
PUBLICATION = "doi:10.1073/pnas.2219150120"
KEYWORDS = ["spiking neural network", "astrocyte", "tripartite synapse", "self-attention", "transformer",
            "simulation", "Brian2"]
#: Fill value of the integer columns (``input_dim``, ``value_dim``, ``token``) where they do not apply.
NOT_APPLICABLE = -1
#: Phase tables: name, the recording's interval with the phase window, the one with the whole
#: presentation, and the name of the index column.
PHASE_TABLES = (("write_phases", "write", "token_input", "token"), ("read_phases", "read", "query_input", "query"))
#: The Subject's species: NCBI Taxonomy 32630, "synthetic construct" (see the module docstring for why).
SYNTHETIC_CONSTRUCT = "http://purl.obolibrary.org/obo/NCBITaxon_32630"
#: The Subject's sex: "O", other (a model has no sex).
NO_SEX = "O"
#: The Subject's age: zero (the network is built for the run).
NO_AGE = "P0D"


def require_pynwb():
    """Import and return pynwb.

    Call it before a simulation that will be exported, to stop at once if the extra is missing.

    Raises
    ------
    ImportError
        With one line naming the extra to install, if pynwb is not installed.
    """
    try:
        import pynwb
    except ImportError:
        raise ImportError("NWB export needs pynwb: pip install -e '.[nwb]'") from None
    return pynwb


def simulated_subject(recording: Recording, seed=None, subject_id=None, species=SYNTHETIC_CONSTRUCT):
    """The NWB Subject of a simulated run: the model, stated to be in silico.

    ``sex`` is "O" (other) and ``age`` "P0D"; the module docstring says why, and why ``species`` is
    NCBI Taxonomy's "synthetic construct" by default.

    Parameters
    ----------
    recording : Recording
        What the run recorded; its configuration names the circuit and the astrocyte model.
    seed : int, optional
        The run's seed (default ``recording.seed``).
    subject_id : str, optional
        Default ``simulated-<circuit>-<astrocyte model>-seed<seed>`` (e.g.
        ``simulated-random-minimal-seed0``): hyphens, since DANDI turns ``_`` in file names into ``-``.
    species : str
        Latin binomial or NCBI Taxonomy IRI (e.g. the species a parameter set was fitted to).

    Returns
    -------
    pynwb.file.Subject

    Raises
    ------
    ValueError
        If ``subject_id`` contains '/' (DANDI builds paths from it).
    """
    from pynwb.file import Subject

    seed = recording.seed if seed is None else int(seed)
    circuit = recording.config.get("circuit")
    astrocyte = recording.config.get("astrocyte")
    model = "-".join(str(part) for part in (circuit or "attention", astrocyte) if part)
    subject_id = subject_id or f"simulated-{model}-seed{seed}"
    if "/" in subject_id:
        raise ValueError(f"subject_id must not contain '/': {subject_id!r}")
    astrocyte_text = f" with the {astrocyte} astrocyte model" if astrocyte else ""
    species_text = (" species is NCBI Taxonomy's 'synthetic construct' (man-made, no organism; there is "
                    "no taxon for a computational model);" if species == SYNTHETIC_CONSTRUCT else "")
    circuit_text = f"{circuit} " if circuit else ""
    description = (f"in silico subject, not an animal: the simulated {circuit_text}attention circuit of "
                   f"spiking neurons and an astrocyte{astrocyte_text} (Kozachkov, Kastanenka & Krotov, "
                   f"PNAS 2023), built in Brian2 with seed {seed}. Species, sex and age are required by the DANDI "
                   f"archive:{species_text} sex O (other) because a model has no sex; age P0D because "
                   "the network is built for the run.")
    return Subject(subject_id=subject_id, description=description, species=species, sex=NO_SEX, age=NO_AGE)


def write_nwb(path, recording: Recording, parameters: dict, seed=None, experiment="attention",
              description="", session_start_time=None, subject=None, experimenter=None,
              institution=None) -> Path:
    """Write a run as an NWB file (see the module docstring for its contents).

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write (conventionally ``<run folder>/run.nwb``), atomically; replaced if it
        exists.
    recording : Recording
        What the run recorded.
    parameters : dict
        The run's parameters (JSON-serialisable, e.g. ``params.json``'s content); stored as JSON in
        the file's ``notes``.
    seed : int, optional
        The run's seed (default ``recording.seed``).
    experiment : str
        Name of the experiment (e.g. ``attention``); the file's ``experiment_description`` and
        ``session_id`` start with it.
    description : str
        What the run is (``session_description``; a default line if empty).
    session_start_time : datetime.datetime, optional
        Timezone-aware time of the run (default: now, UTC); all times in the file are seconds
        from it.
    subject : pynwb.file.Subject, optional
        Default :func:`simulated_subject` of the recording and seed.
    experimenter : str or list of str, optional
        Who ran it, as "Last, First" (DANDI's form); left out by default (nwbinspector suggests it).
    institution : str, optional
        Where it was run; left out by default (nwbinspector suggests it).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    pynwb = require_pynwb()
    seed = recording.seed if seed is None else int(seed)
    start = session_start_time or datetime.now(timezone.utc)
    if start.tzinfo is None:
        raise ValueError("session_start_time must be timezone-aware")
    circuit = recording.config.get("circuit", "attention")
    notes = {"experiment": experiment, "seed": seed, "dt_seconds": recording.dt, "parameters": parameters,
             "circuit_config": recording.config, "dropped_populations": recording.dropped}
    nwbfile = pynwb.NWBFile(
        session_description=description or f"simulated {circuit} attention circuit of spiking neurons and an "
                                           f"astrocyte (Brian2), seed {seed}",
        identifier=str(uuid.uuid4()),
        session_start_time=start,
        session_id=f"{experiment}-{circuit}-seed{seed}",
        experiment_description=f"{experiment}: transformer self-attention computed by spiking neurons and "
                               "astrocytes (Kozachkov, Kastanenka & Krotov, PNAS 2023), simulated with Brian2",
        notes=json.dumps(notes, sort_keys=True, default=to_jsonable),
        keywords=KEYWORDS,
        related_publications=PUBLICATION,
        was_generated_by=[[name, _version(name)] for name in ("astro-transformer", "brian2", "pynwb")],
        units=_units(recording),
        subject=subject if subject is not None else simulated_subject(recording, seed),
        experimenter=experimenter,
        institution=institution,
    )
    for table_name, window, presentation, index in PHASE_TABLES:
        if window in recording.intervals:
            nwbfile.add_time_intervals(_phase_table(table_name, recording, window, presentation, index))
    for name, trace in recording.traces.items():
        nwbfile.add_acquisition(_time_series(name, trace))
    with atomic_path(path) as tmp:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)
    return Path(path)


def read_nwb_spikes(path) -> dict:
    """Spike trains of an NWB file written by :func:`write_nwb`, per population.

    Parameters
    ----------
    path : str or pathlib.Path
        The NWB file.

    Returns
    -------
    dict of str to list of numpy.ndarray
        For each population, the spike times (seconds) of each neuron in ``neuron_index`` order.

    Raises
    ------
    runs.folders.FileError
        With one line naming the file, if it is missing, damaged (cut short, not HDF5) or holds no
        units table of :func:`write_nwb`.
    """
    pynwb = require_pynwb()
    todo = "write it again from its run folder: runs.nwb.write_nwb(path, load_spikes(run_dir), parameters)"
    if not Path(path).is_file():
        raise FileError(f"{path}: no such file; {todo}")
    try:
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            units = io.read().units
            population = units["population"].data[:]
            neuron = units["neuron_index"].data[:]
            trains = {}
            for row in np.lexsort((neuron, population)):
                trains.setdefault(str(population[row]), []).append(np.asarray(units.get_unit_spike_times(int(row))))
    except Exception as exc:  # h5py and pynwb raise OSError, KeyError, TypeError... for damaged or foreign files
        raise FileError(f"{path}: not a readable NWB file of this project, damaged or cut short "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); {todo}") from None
    return trains


def _version(package) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _units(recording):
    """The Units table: one row per neuron, populations in raster order, spike times compressed."""
    from pynwb import H5DataIO
    from pynwb.misc import Units

    units = Units(name="units", resolution=recording.dt,
                  description="simulated neurons, one unit per neuron; spike times exact to the time step dt")
    units.add_column("population", "population the neuron belongs to: " + "; ".join(
        f"{name}: {POPULATION_DESCRIPTIONS.get(name, name)}" for name in recording.populations))
    units.add_column("neuron_index", "index of the neuron within its population (Brian2 index)")
    columns = [c for c in COLUMN_DESCRIPTIONS if any(c in p.columns for p in recording.populations.values())]
    for column in columns:
        fill = "''" if column == "polarity" else NOT_APPLICABLE
        units.add_column(column, f"{COLUMN_DESCRIPTIONS[column]} ({fill} where not applicable)")
    for name, pop in recording.populations.items():
        fills = {c: pop.columns.get(c, np.full(pop.size, "" if c == "polarity" else NOT_APPLICABLE))
                 for c in columns}
        for n, train in enumerate(pop.spike_trains()):
            units.add_unit(spike_times=train, population=name, neuron_index=n,
                           **{c: fills[c][n].item() for c in columns})
    units.spike_times.set_data_io(H5DataIO, {"compression": "gzip"})     # the one large dataset: 2.7x smaller
    return units


def _phase_table(table_name, recording, window, presentation, index):
    """A TimeIntervals table of one phase: its windows, the index of the token or query, and the
    start of the input's presentation."""
    from pynwb.epoch import TimeIntervals

    table = TimeIntervals(name=table_name, description=INTERVAL_DESCRIPTIONS[window])
    table.add_column(index, f"index of the {index}")
    has_input = presentation in recording.intervals
    if has_input:
        table.add_column("input_start_time", f"start of the {index}'s presentation (s): "
                                             f"{INTERVAL_DESCRIPTIONS[presentation]}")
    for k, (t0, t1) in enumerate(recording.intervals[window]):
        extra = {"input_start_time": float(recording.intervals[presentation][k, 0])} if has_input else {}
        table.add_interval(start_time=float(t0), stop_time=float(t1), **{index: k}, **extra)
    return table


def _time_series(name, trace):
    """A TimeSeries of a trace: a fixed rate if sampled regularly, else its timestamps."""
    from pynwb import TimeSeries

    data = trace.data[:, 0] if trace.data.shape[1] == 1 else trace.data
    comments = f"columns are elements {trace.channels.tolist()} of the monitored object"
    steps = np.diff(trace.t)
    if len(steps) and np.allclose(steps, steps[0], rtol=1e-9, atol=0):
        timing = {"starting_time": float(trace.t[0]), "rate": float(1.0 / steps[0])}
    else:
        timing = {"timestamps": trace.t}
    return TimeSeries(name=name, data=data, unit=trace.unit, description=trace.description, comments=comments,
                      **timing)
