"""A run's spikes as Neo ``SpikeTrain`` objects, for analysis with Elephant (optional extra ``neo``)."""

from circuits.recording import Recording


def to_neo(recording: Recording, population=None) -> list:
    """One Neo ``SpikeTrain`` per neuron of a run.

    Parameters
    ----------
    recording : Recording
        A circuit's ``circuits.recording.recording(circuit)`` or a saved run's
        ``runs.spikes.load_spikes(run_dir)``.
    population : str or sequence of str, optional
        The population(s) to convert (default: every population of the recording).

    Returns
    -------
    list of neo.SpikeTrain
        In population then neuron order, neurons that never fired included (empty trains); times
        in seconds, ``t_start`` 0 s, ``t_stop`` the simulated duration, ``sampling_rate`` 1/dt.
        Annotations: ``population``, ``neuron`` (index within the population) and the neuron's
        columns (``polarity``, ``input_dim``, ``value_dim``, ``token`` as they apply).

    Raises
    ------
    ImportError
        If Neo is not installed.
    KeyError
        If ``population`` names a population the recording does not have.
    """
    try:
        import neo
        import quantities as pq
    except ImportError:
        raise ImportError("Neo spike trains need neo: pip install -e '.[neo]'") from None
    names = list(recording.populations) if population is None else (
        [population] if isinstance(population, str) else list(population))
    trains = []
    for name in names:
        if name not in recording.populations:
            raise KeyError(f"no population {name!r}; the recording has {', '.join(recording.populations)}")
        pop = recording.populations[name]
        for n, times in enumerate(pop.spike_trains()):
            annotations = {"population": name, "neuron": n, **{c: v[n].item() for c, v in pop.columns.items()}}
            trains.append(neo.SpikeTrain(times, units=pq.s, t_start=0.0 * pq.s, t_stop=recording.duration * pq.s,
                                         sampling_rate=1.0 / recording.dt * pq.Hz, name=f"{name}[{n}]",
                                         **annotations))
    return trains
