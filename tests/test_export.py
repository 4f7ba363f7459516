"""Spike data out: the recording of a run, spikes.npz, NWB export and Neo spike trains.

The NWB and Neo tests need the optional extras (``pip install -e '.[nwb,neo]'``, both in ``test``)
and are skipped without them.
"""

import json
import sys

import numpy as np
import pytest

from analysis.attention import synthetic_head
from circuits import builder
from circuits.recording import recording
from runs.spikes import MAX_SPIKES, SPIKES_FILE, default_populations, load_spikes, save_spikes

SMALL = {"t_settle": "20*ms", "t_learn": "40*ms", "t_read": "60*ms"}


def small_circuit(kind):
    q, k, v = synthetic_head(3, 2, 2, 0.7, np.random.default_rng(0))
    sizes = {"n_features": 8} if kind == "random" else {"neurons_per_key": 4}
    circuit = builder(kind)(q, k, v, neurons_per_value=4, encoders_per_dim=2, params=SMALL, seed=0, **sizes)
    circuit.run()
    return circuit


@pytest.fixture(scope="module")
def random_circuit():
    return small_circuit("random")


@pytest.fixture(scope="module")
def exact_circuit():
    return small_circuit("exact")


@pytest.fixture(scope="module")
def rec(random_circuit):
    return recording(random_circuit)


def assert_same_recording(a, b):
    assert list(a.populations) == list(b.populations)
    for name, pop in a.populations.items():
        other = b.populations[name]
        assert pop.size == other.size
        for x, y in ((pop.i, other.i), (pop.t, other.t)):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        assert list(pop.columns) == list(other.columns)
        for col, values in pop.columns.items():
            assert np.array_equal(values, other.columns[col])
    assert list(a.intervals) == list(b.intervals)
    for name, window in a.intervals.items():
        assert np.array_equal(window, b.intervals[name])
    assert list(a.traces) == list(b.traces)
    for name, trace in a.traces.items():
        other = b.traces[name]
        assert np.array_equal(trace.t, other.t) and np.array_equal(trace.data, other.data)
        assert np.array_equal(trace.channels, other.channels)
        assert (trace.unit, trace.description) == (other.unit, other.description)
    assert (a.dt, a.duration, a.seed, a.config, a.dropped) == (b.dt, b.duration, b.seed, b.config, b.dropped)


# --- the recording ------------------------------------------------------------------------------

def test_recording_holds_every_spike_of_the_raster(random_circuit, rec):
    assert list(rec.populations) == ["key_encoders", "value_encoders", "features", "value_neurons"]
    assert rec.total_spikes() == random_circuit.total_spikes() > 0
    raster = random_circuit.raster_data(max_features=10 ** 6)
    for name, key in (("key_encoders", "key_encoders"), ("features", "features"), ("value_neurons", "values")):
        t, i = raster[key]
        pop = rec.populations[name]
        assert pop.i.dtype == np.uint32 and pop.t.dtype == np.float64
        assert np.array_equal(pop.t, t) and np.array_equal(pop.i, i)
        assert pop.size == len(random_circuit.groups[name])
    assert np.all(np.concatenate([p.t for p in rec.populations.values()]) < rec.duration)
    assert len(rec.intervals["write"]) == 3 and len(rec.intervals["read"]) == 3
    assert rec.dt == pytest.approx(1e-4) and rec.seed == 0


def test_recording_columns_follow_the_channel_layout(random_circuit, rec):
    channel = np.asarray(random_circuit.groups["key_encoders"].channel[:])     # the model's own channel
    cols = rec.populations["key_encoders"].columns
    assert np.array_equal(cols["input_dim"], channel // 2)
    assert np.array_equal(cols["polarity"], np.where(channel % 2 == 0, "ON", "OFF"))
    # Value neurons: spike counts grouped by (value_dim, polarity) are the circuit's ON/OFF
    # population counts in each read window.
    values = rec.populations["value_neurons"]
    grouped = np.zeros_like(random_circuit.population_counts())
    for q, (t0, t1) in enumerate(rec.intervals["read"]):
        in_window = (values.t >= t0) & (values.t < t1)
        for n in values.i[in_window]:
            grouped[q, 2 * values.columns["value_dim"][n] + (values.columns["polarity"][n] == "OFF")] += 1
    assert np.array_equal(grouped, random_circuit.population_counts())
    assert rec.populations["features"].columns == {}


def test_recording_of_the_exact_circuit(exact_circuit):
    r = recording(exact_circuit)
    assert list(r.populations) == ["key_encoders", "value_encoders", "key_neurons", "value_neurons"]
    assert r.total_spikes() == exact_circuit.total_spikes()
    assert np.array_equal(r.populations["key_neurons"].columns["token"], exact_circuit.groups["key_neurons"].token[:])


def test_recording_keeps_astrocyte_traces(random_circuit, rec):
    assert {"astrocyte_Ca_total", "astrocyte_A", "process_Ca"} <= set(rec.traces)
    ca = rec.traces["process_Ca"]
    assert ca.data.shape == (len(ca.t), 8) and ca.unit == "dimensionless"
    assert np.array_equal(ca.data, np.asarray(random_circuit.monitors["process_monitor"].Ca[:]).T)


# --- spikes.npz ---------------------------------------------------------------------------------

def test_spikes_npz_round_trip_is_exact(tmp_path, random_circuit, rec):
    path = save_spikes(tmp_path, rec)
    assert path == tmp_path / SPIKES_FILE
    back = load_spikes(tmp_path)
    assert_same_recording(rec, back)
    assert back.total_spikes() == random_circuit.total_spikes()
    assert_same_recording(back, load_spikes(path))


def test_spikes_over_the_limit_keep_the_default_populations(tmp_path, rec):
    assert rec.total_spikes() <= MAX_SPIKES
    assert default_populations(rec) == ["features", "value_neurons"]
    save_spikes(tmp_path, rec, max_spikes=rec.total_spikes() - 1)
    back = load_spikes(tmp_path)
    assert list(back.populations) == ["features", "value_neurons"]
    assert back.dropped == {name: len(rec.populations[name].t) for name in ("key_encoders", "value_encoders")}
    assert back.total_spikes() + sum(back.dropped.values()) == rec.total_spikes()
    # keep_all overrides the limit; an explicit choice keeps exactly those populations
    save_spikes(tmp_path, rec, keep_all=True, max_spikes=0)
    assert list(load_spikes(tmp_path).populations) == list(rec.populations)
    save_spikes(tmp_path, rec, populations=["value_neurons"])
    assert list(load_spikes(tmp_path).populations) == ["value_neurons"]
    with pytest.raises(ValueError, match="no population"):
        save_spikes(tmp_path, rec, populations=["dendrites"])
    with pytest.raises(ValueError, match="not both"):
        save_spikes(tmp_path, rec, populations=["features"], keep_all=True)


# --- NWB ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory, rec):
    pytest.importorskip("pynwb")
    from runs.nwb import write_nwb

    path = tmp_path_factory.mktemp("nwb") / "run.nwb"
    return write_nwb(path, rec, {"tau_ca": {"value": 1e4, "unit": "second"}}, experiment="attention",
                     description="test run")


def test_nwb_spikes_read_back_exactly(nwb_file, random_circuit, rec):
    from runs.nwb import read_nwb_spikes

    trains = read_nwb_spikes(nwb_file)
    assert set(trains) == set(rec.populations)
    for name, pop in rec.populations.items():
        expected = pop.spike_trains()
        assert len(trains[name]) == pop.size
        for got, want in zip(trains[name], expected):
            assert np.array_equal(got, want)
    assert sum(len(t) for ts in trains.values() for t in ts) == random_circuit.total_spikes()


def test_nwb_units_intervals_traces_and_metadata(nwb_file, rec):
    import pynwb

    with pynwb.NWBHDF5IO(str(nwb_file), "r") as io:
        nwb = io.read()
        units = nwb.units
        assert {"population", "neuron_index", "polarity", "input_dim", "value_dim"} <= set(units.colnames)
        assert len(units) == sum(p.size for p in rec.populations.values())
        assert units.resolution == rec.dt
        value_rows = units["population"].data[:] == "value_neurons"
        assert np.array_equal(units["value_dim"].data[:][value_rows], rec.populations["value_neurons"].columns["value_dim"])
        assert set(units["polarity"].data[:][value_rows]) == {"ON", "OFF"}
        write, read = nwb.intervals["write_phases"], nwb.intervals["read_phases"]
        assert len(write) == rec.config["n_tokens"] and len(read) == rec.config["n_queries"]
        assert np.array_equal(np.stack([write["start_time"].data[:], write["stop_time"].data[:]], 1), rec.intervals["write"])
        assert np.array_equal(read["query"].data[:], np.arange(rec.config["n_queries"]))
        ca = nwb.acquisition["process_Ca"]
        assert np.array_equal(ca.data[:], rec.traces["process_Ca"].data)
        assert ca.rate == pytest.approx(1 / 5e-3) and ca.starting_time == 0.0
        assert nwb.session_start_time.tzinfo is not None
        assert units.spike_times.data.compression == "gzip"
        notes = json.loads(nwb.notes)
        assert notes["seed"] == rec.seed and notes["parameters"]["tau_ca"]["value"] == 1e4
        assert notes["circuit_config"] == rec.config


def dandi_messages(path):
    """nwbinspector's messages on a file with its DANDI configuration, as ``dandi validate`` runs
    it (which refuses CRITICAL, ERROR and PYNWB_VALIDATION and warns of BEST_PRACTICE_VIOLATION),
    here also with the suggestions and the PyNWB validation: {importance name: ["check: message"]}."""
    nwbinspector = pytest.importorskip("nwbinspector")

    found = {}
    for m in nwbinspector.inspect_nwbfile(path, config=nwbinspector.load_config("dandi"),
                                          importance_threshold=nwbinspector.Importance.BEST_PRACTICE_SUGGESTION):
        found.setdefault(m.importance.name, []).append(f"{m.check_function_name}: {m.message}")
    return found


#: What nwbinspector still suggests on an exported run: who ran it and where, which the simulator
#: cannot know (``write_nwb``'s ``experimenter`` and ``institution``).
WHO_AND_WHERE = ["check_experimenter_exists: Experimenter is missing.",
                 "check_institution: Metadata /general/institution is missing."]


def test_nwb_passes_nwbinspector_with_the_dandi_config(nwb_file):
    """Nothing DANDI would refuse or warn of (no ERROR, PYNWB_VALIDATION, CRITICAL or
    BEST_PRACTICE_VIOLATION), and no suggestion but who ran it and where."""
    assert dandi_messages(nwb_file) == {"BEST_PRACTICE_SUGGESTION": WHO_AND_WHERE}


def test_nwb_subject_says_the_data_are_simulated(nwb_file, rec, tmp_path):
    import pynwb
    from runs.nwb import SYNTHETIC_CONSTRUCT, simulated_subject, write_nwb

    with pynwb.NWBHDF5IO(str(nwb_file), "r") as io:
        subject = io.read().subject
        assert subject.subject_id == f"simulated-random-minimal-seed{rec.seed}"
        assert subject.description.startswith("in silico subject, not an animal: the simulated random")
        assert (subject.species, subject.sex, subject.age) == (SYNTHETIC_CONSTRUCT, "O", "P0D")
    assert SYNTHETIC_CONSTRUCT == "http://purl.obolibrary.org/obo/NCBITaxon_32630"
    # the caller names the subject, the seed, the people and the place: then nothing is left to suggest
    path = write_nwb(tmp_path / "run.nwb", rec, {}, seed=7, experimenter="Doe, Jane", institution="Nowhere",
                     subject=simulated_subject(rec, seed=7, subject_id="network-A"))
    assert dandi_messages(path) == {}
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        subject = io.read().subject
        assert subject.subject_id == "network-A" and "seed 7" in subject.description
    assert simulated_subject(rec, seed=3).subject_id == "simulated-random-minimal-seed3"
    with pytest.raises(ValueError, match="must not contain '/'"):
        simulated_subject(rec, subject_id="a/b")


def test_nwb_needs_its_extra(monkeypatch, rec, tmp_path):
    from runs.nwb import require_pynwb, write_nwb

    monkeypatch.setitem(sys.modules, "pynwb", None)
    for call in (require_pynwb, lambda: write_nwb(tmp_path / "run.nwb", rec, {})):
        with pytest.raises(ImportError, match=r"^NWB export needs pynwb: pip install -e '\.\[nwb\]'$"):
            call()


# --- Neo ----------------------------------------------------------------------------------------

def test_neo_spike_trains(rec):
    pytest.importorskip("neo")
    from runs.neo import to_neo

    trains = to_neo(rec)
    assert len(trains) == sum(p.size for p in rec.populations.values())
    assert sum(len(t) for t in trains) == rec.total_spikes()
    values = to_neo(rec, "value_neurons")
    pop = rec.populations["value_neurons"]
    assert [len(t) for t in values] == np.bincount(pop.i, minlength=pop.size).tolist()
    for train, times in zip(values, pop.spike_trains()):
        assert np.array_equal(train.rescale("s").magnitude, times)
        assert float(train.t_stop.rescale("s")) == rec.duration and float(train.t_start) == 0.0
    assert values[-1].annotations == {"population": "value_neurons", "neuron": pop.size - 1, "polarity": "OFF",
                                      "value_dim": 1}
    with pytest.raises(KeyError, match="dendrites"):
        to_neo(rec, "dendrites")


def test_readme_example_runs(tmp_path, rec, capsys):
    """The README's Elephant example, on a saved run folder."""
    pytest.importorskip("elephant")
    from runs.folders import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    example = readme.split("## Spike data out", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    folder = '"results/attention/20260101-120000-random-seed0"'
    assert folder in example
    save_spikes(tmp_path, rec)
    exec(compile(example.replace(folder, repr(str(tmp_path))), "README.md", "exec"), {})
    assert capsys.readouterr().out.startswith(f"{rec.populations['value_neurons'].size} value neurons: ")


def test_recording_reads_whatever_the_process_monitor_records(tmp_path):
    """G-ChI processes have IP3: once the process monitor records it, the recording, spikes.npz
    and the NWB file carry it, in its own unit."""
    from brian2 import StateMonitor

    q, k, v = synthetic_head(2, 2, 2, 0.7, np.random.default_rng(0))
    circuit = builder("random")(q, k, v, n_features=4, neurons_per_value=2, encoders_per_dim=1, astrocyte="gchi",
                                params=SMALL, seed=0)
    old = circuit.monitors["process_monitor"]
    new = StateMonitor(circuit.groups["astro_processes"], ["Ca", "IP3"], record=np.arange(4), dt=old.clock.dt,
                       name="process_monitor_ip3")
    circuit.network.remove(old)
    circuit.network.add(new)
    circuit.monitors["process_monitor"] = new
    circuit.run()
    r = recording(circuit)
    ip3 = r.traces["process_IP3"]
    assert ip3.unit == "mM" and ip3.data.shape == (len(ip3.t), 4)
    assert np.array_equal(ip3.data, np.asarray(new.IP3_[:]).T)
    from models.astrocytes import rest_state
    # starts at the process's rest state, in mM (the SI unit of concentration)
    assert ip3.data[0] == pytest.approx(float(rest_state("gchi", circuit.params)["IP3"]))
    save_spikes(tmp_path, r)
    assert_same_recording(r, load_spikes(tmp_path))
    pytest.importorskip("pynwb")
    import pynwb
    from runs.nwb import write_nwb

    write_nwb(tmp_path / "run.nwb", r, {})
    with pynwb.NWBHDF5IO(str(tmp_path / "run.nwb"), "r") as io:
        series = io.read().acquisition["process_IP3"]
        assert series.unit == "mM" and np.array_equal(series.data[:], ip3.data)


def test_neo_needs_its_extra(monkeypatch, rec):
    from runs.neo import to_neo

    monkeypatch.setitem(sys.modules, "neo", None)
    with pytest.raises(ImportError, match=r"^Neo spike trains need neo: pip install -e '\.\[neo\]'$"):
        to_neo(rec)


def test_experiment_run_folder_keeps_spikes_and_exports_nwb(tmp_path):
    """The attention experiment's run folder holds spikes.npz and, with --export nwb, run.nwb: both
    carry exactly the spikes the run counted."""
    from experiments import attention
    from runs.nwb import read_nwb_spikes

    pytest.importorskip("pynwb")
    run = attention.main(["--tokens", "2", "--dim", "2", "--value-dim", "2", "--features", "4",
                          "--neurons-per-value", "2", "--encoders-per-dim", "1", "--set", "t_settle=20*ms",
                          "--set", "t_learn=30*ms", "--set", "t_read=30*ms", "--quiet", "--no-figures",
                          "--export", "nwb", "--out", str(tmp_path)])
    total = json.loads((run / "metrics.json").read_text())["total_spikes"]
    assert load_spikes(run).total_spikes() == total > 0
    read_back = read_nwb_spikes(run / "run.nwb")
    assert sum(len(t) for trains in read_back.values() for t in trains) == total
    # nothing DANDI would refuse or warn of (suggestions vary with the size: two tokens make the
    # token column look binary)
    assert set(dandi_messages(run / "run.nwb")) <= {"BEST_PRACTICE_SUGGESTION"}
