"""Damaged files and full disks (issue 28): every reader of a run folder or an input file names a
damaged file in one line and says what to do (no traceback), a corpus run recomputes a damaged
finished sentence, derived tables are written anew on resume, and a write that fails stops the run
with one line, leaving every earlier file whole and the folder resumable.

Nothing here simulates a circuit: the corpus runs have no stage on spikes (the NumPy model, seconds),
the sweeps run tests/sweep_fake_experiment.py, spike files are fabricated.
"""

import errno
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from circuits.recording import Population, Recording, Trace
from circuits.runners import CircuitPool
from experiments import attention, cli
from experiments import spiking_minilm as experiment
from experiments import sweep
from runs import folders
from runs.folders import FileError, WriteError, read_json, run_record, write_json
from runs.spikes import load_spikes, save_spikes
from runs.sweep import SweepError, collect_outcome
from tests.test_experiment_attention import TINY, _error_of, no_simulation  # noqa: F401  (a fixture)
from tests.test_spiking_minilm import CORPUS, SMALL_CONFIG, without_times
from tests.test_sweep import FAKE, ROOT, importable_fake, log_lines, read_table  # noqa: F401  (a fixture)

#: Ways a file is damaged: a partial copy or a full disk cuts it short (the issue's first 100 bytes,
#: or half of a smaller file), an interrupted writer leaves it empty, another program's bytes (not
#: UTF-8, not JSON, not a zip: starts with 0xff), valid JSON of the wrong type.
CUT = {"truncated": lambda data: data[:min(100, len(data) // 2)],
       "empty": lambda data: b"",
       "binary junk": lambda data: bytes(range(255, -1, -1)) * 4}
JSON_DAMAGES = {**CUT, "a JSON list": lambda data: b"[1, 2, 3]\n"}


def damage(path: Path, how) -> None:
    path.write_bytes(how(path.read_bytes()))


def error_line(capsys) -> str:
    """The last line on stderr, after checking that no traceback came before it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def leftovers(folder: Path) -> list:
    """Temporary files of atomic writes (none may stay behind)."""
    return [p.name for p in Path(folder).rglob(".tmp-*")]


# ------------------------------------------------------------------------------- corpus runs


@pytest.fixture(scope="module")
def corpus_run(model, tmp_path_factory):
    """A finished 3-sentence run of experiments.spiking_minilm, no stage on spikes, as --resume finds it."""
    run_dir = tmp_path_factory.mktemp("corpus")
    config = replace(SMALL_CONFIG, texts=CORPUS, stages=())
    write_json(run_dir / "params.json", run_record(experiment.NAME, 0, configuration=config.to_record()))
    with CircuitPool() as pool:
        experiment.run_corpus(run_dir, config, pool)
    experiment.write_summary(run_dir, config, figures=False)
    return run_dir


@pytest.fixture
def corpus(corpus_run, tmp_path):
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(corpus_run, tmp_path / "run"))


def resume(run_dir, *options):
    return experiment.main(["--resume", str(run_dir), "--quiet", "--no-figures", *options])


SENTENCE_DAMAGES = {**JSON_DAMAGES,
                    "fields missing": lambda data: b'{"id": 1, "text": "Stocks fell."}',
                    "another sentence's record": None}       # sentence 0's file copied over sentence 1's


@pytest.mark.parametrize("how", SENTENCE_DAMAGES)
def test_a_damaged_sentence_is_reported_in_one_line_and_recomputed(corpus, how, capsys):
    path, first = experiment.sentence_path(corpus, 1), experiment.sentence_path(corpus, 0)
    whole, kept = json.loads(path.read_text()), first.stat().st_mtime_ns
    if SENTENCE_DAMAGES[how] is None:
        shutil.copy(first, path)
    else:
        damage(path, SENTENCE_DAMAGES[how])
    lines = []
    assert experiment.finished(corpus, 3, lines.append) == {0, 2}
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and lines[0].endswith("; recomputing sentence 1")

    resume(corpus)
    assert capsys.readouterr().err.splitlines() == [f"[spiking_minilm] {lines[0]}"]
    assert without_times(json.loads(path.read_text())) == without_times(whole)
    assert first.stat().st_mtime_ns == kept                       # the whole sentences are not recomputed


PARAMS_DAMAGES = {**JSON_DAMAGES,
                  "no configuration": lambda data: b'{"experiment": "spiking_minilm"}',
                  "configuration without texts": lambda data: json.dumps(
                      {"experiment": "spiking_minilm", "configuration": {"spiking": []}}).encode()}


@pytest.mark.parametrize("how", PARAMS_DAMAGES)
def test_resume_of_a_damaged_params_json_is_one_line(corpus, how, capsys):
    damage(corpus / "params.json", PARAMS_DAMAGES[how])
    with pytest.raises(SystemExit) as exit_info:
        resume(corpus)
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert f"error: {corpus / 'params.json'}: " in line and line.endswith("restore params.json from a copy, or start "
                                                                          "a new run")


@pytest.mark.parametrize("how", CUT)
def test_resume_writes_a_damaged_embeddings_npz_anew(corpus, how, capsys):
    """embeddings.npz is derived from the sentences' records: --resume writes it again whole."""
    path = corpus / "embeddings.npz"
    with np.load(path) as data:
        whole = dict(data)
    damage(path, CUT[how])
    resume(corpus)
    assert capsys.readouterr().err == ""
    with np.load(path) as data:
        assert set(data) == set(whole) and all(np.array_equal(data[k], whole[k]) for k in whole)


def test_a_damaged_attention_maps_npz_is_one_line(corpus, capsys):
    (corpus / "attention_maps.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(SystemExit):
        experiment.main(["--resume", str(corpus), "--quiet"])          # with figures: the maps are drawn
    line = error_line(capsys)
    assert f"{corpus / 'attention_maps.npz'}: not a readable .npz file" in line and "--resume" in line


def test_sentence_records_are_read_whole_or_not_at_all(corpus):
    path = experiment.sentence_path(corpus, 2)
    damage(path, CUT["truncated"])
    with pytest.raises(FileError, match=f"^{path}: not valid JSON, damaged or cut short .*; --resume {corpus} "
                                        "recomputes the sentence$"):
        experiment.read_record(corpus, 2)
    with pytest.raises(FileError, match="^[^\n]*$"):
        experiment.write_summary(corpus, replace(SMALL_CONFIG, texts=CORPUS, stages=()), figures=False)


# ------------------------------------------------------------------------------ input files


TEXTS_DAMAGES = {"binary junk": bytes(range(255, -1, -1)),
                 "cut inside a character": "Un café.\nA dog runs.".encode()[:7],
                 "blank lines only": b"\n  \n\n"}


@pytest.mark.parametrize("how", [*TEXTS_DAMAGES, "a folder", "missing"])
def test_a_bad_texts_file_is_one_line_naming_it(model, tmp_path, how, capsys):
    path = tmp_path / "sentences.txt"
    if how == "a folder":
        path.mkdir()
    elif how in TEXTS_DAMAGES:
        path.write_bytes(TEXTS_DAMAGES[how])
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(["--texts", str(path), "--quiet", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert f"error: --texts {path}: " in line and line.endswith("; give a UTF-8 text file of sentences, one a line")
    assert [p.name for p in tmp_path.iterdir()] == ["sentences.txt"] * path.exists()    # no run folder begun


PARAMETER_FILES = {"p.txt": bytes(range(255, -1, -1)), "p.json": bytes(range(255, -1, -1)),
                   "cut.json": b'{"tau_ca": "5*sec', "empty.json": b"", "list.json": b'["tau_ca", "5*second"]'}


@pytest.mark.parametrize("name", PARAMETER_FILES)
def test_a_bad_parameter_file_is_one_line_naming_it(tmp_path, name, capsys, no_simulation):
    path = tmp_path / name
    path.write_bytes(PARAMETER_FILES[name])
    assert str(path) in _error_of(["--params", str(path), "--out", str(tmp_path)], capsys)


def test_an_unreadable_parameter_file_is_one_line_naming_it(tmp_path, monkeypatch):
    """A file that exists but cannot be read (no permission: as root, made to fail)."""
    path = tmp_path / "p.txt"
    path.write_text("tau_ca = 5*second\n")
    real = Path.read_text

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    args = cli.experiment_parser("x", "x").parse_args([])
    args.params, args.overrides = path, []
    with pytest.raises(FileError, match=f"^--params {path}: cannot read it \\(Permission denied\\); "):
        cli.parameter_overrides(args)


QKV_DAMAGES = {**CUT, "an .npy array": None, "strings for q": None}


@pytest.mark.parametrize("how", QKV_DAMAGES)
def test_a_bad_qkv_file_is_one_line_naming_it(tmp_path, how, capsys, no_simulation):
    path = tmp_path / "head.npz"
    q = np.ones((3, 2))
    if how == "an .npy array":
        with open(path, "wb") as fh:
            np.save(fh, q)
    else:
        np.savez(path, q=np.array([["a", "b"]] * 3) if how == "strings for q" else q, k=q, v=q)
        if how in CUT:
            damage(path, CUT[how])
    assert f"error: --qkv {path}: " in _error_of(["--qkv", str(path), "--out", str(tmp_path)], capsys)


# ------------------------------------------------------------------------------ spike files


def small_recording() -> Recording:
    return Recording({"value_neurons": Population(2, np.array([0, 1], np.uint32), np.array([0.1, 0.2]),
                                                  {"polarity": np.array(["on", "off"])})},
                     {"write": np.array([[0.0, 0.1]])},
                     {"astrocyte_A": Trace(np.array([0.0, 0.1]), np.zeros((2, 1)), "dimensionless", np.array([0]),
                                           "A")},
                     1e-4, 0.3, 0, {"circuit": "random"}, {})


SPIKES_DAMAGES = {**CUT, "other arrays": None, "no trace arrays": None}


@pytest.mark.parametrize("how", SPIKES_DAMAGES)
def test_a_damaged_spikes_npz_is_one_line_naming_it(tmp_path, how):
    path = save_spikes(tmp_path, small_recording())
    if how == "other arrays":
        np.savez(path, q=np.ones(3))
    elif how == "no trace arrays":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if not k.startswith("trace_")}
        np.savez(path, **arrays)
    else:
        damage(path, CUT[how])
    with pytest.raises(FileError) as info:
        load_spikes(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and message.endswith(
        "run the experiment again (its command line is in params.json, versions.argv) to write it anew")


def test_a_damaged_nwb_file_is_one_line_naming_it(tmp_path):
    pytest.importorskip("pynwb", reason="the nwb extra is not installed")
    from runs.nwb import read_nwb_spikes

    path = tmp_path / "run.nwb"
    path.write_bytes(b"\x89HDF\r\n\x1a\n cut short")
    with pytest.raises(FileError, match=f"^{path}: not a readable NWB file of this project, [^\n]*write_nwb"):
        read_nwb_spikes(path)


# ------------------------------------------------------------------------------------ sweeps


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """A finished two-point sweep of the fake experiment."""
    out = tmp_path_factory.mktemp("sweeps") / "sweep"
    with pytest.MonkeyPatch.context() as patch:      # as importable_fake, for a module-wide fixture
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        assert sweep.main([FAKE, "--grid", "alpha=1,2", "--workers", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture
def swept(sweep_run, tmp_path, capsys):
    capsys.readouterr()
    return Path(shutil.copytree(sweep_run, tmp_path / "sweep"))


SWEEP_DAMAGES = {**JSON_DAMAGES, "no grid": lambda data: json.dumps(
    {k: v for k, v in json.loads(data).items() if k != "grid"}).encode()}


@pytest.mark.parametrize("how", SWEEP_DAMAGES)
def test_a_damaged_sweep_json_is_one_line_naming_it(swept, how, capsys):
    path = swept / "sweep.json"
    damage(path, SWEEP_DAMAGES[how])
    for argv in (["--resume", str(swept)], [FAKE, "--grid", "alpha=1,2", "--out", str(swept)]):
        with pytest.raises(SystemExit) as exit_info:
            sweep.main(argv)
        assert exit_info.value.code == 2
        line = error_line(capsys)
        assert f"error: {path}: " in line and line.endswith("restore sweep.json from a copy, or run the sweep anew "
                                                             "with another --out")


@pytest.mark.parametrize("name", ["results.csv", "failures.json"])
@pytest.mark.parametrize("how", CUT)
def test_resume_writes_damaged_sweep_tables_anew(swept, name, how):
    """results.csv and failures.json are derived from points/: a resume writes them whole again,
    running no point."""
    table = read_table(swept)
    points = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in (swept / "points").iterdir()}
    damage(swept / name, CUT[how])
    if name == "failures.json":
        with pytest.raises(SweepError, match=f"^{swept / name}: [^\n]*; it is written again when the sweep resumes"):
            sweep.read_failures(swept)
    assert sweep.main(["--resume", str(swept)]) == 0
    assert read_table(swept) == table and sweep.read_failures(swept) == {}
    assert {p.name: (p / "metrics.json").stat().st_mtime_ns for p in (swept / "points").iterdir()} == points


@pytest.mark.parametrize("how", JSON_DAMAGES)
def test_a_damaged_point_metrics_json_is_one_line_naming_it(swept, how, capsys):
    point = sorted((swept / "points").iterdir())[0]
    damage(point / "metrics.json", JSON_DAMAGES[how])
    with pytest.raises(SystemExit):
        sweep.main(["--resume", str(swept)])
    line = error_line(capsys)
    assert f"error: {point / 'metrics.json'}: " in line and line.endswith(f"delete {point} to rerun the point")


@pytest.mark.parametrize("how", JSON_DAMAGES)
def test_a_damaged_outcome_json_fails_the_point_in_one_line(tmp_path, how):
    (tmp_path / "outcome.json").write_text('{"run_dir": "out/x"}')
    damage(tmp_path / "outcome.json", JSON_DAMAGES[how])
    outcome = collect_outcome(tmp_path, 0)
    assert outcome.run_dir is None and "\n" not in outcome.error
    assert outcome.error.startswith(f"point process died (exit status 0): {tmp_path / 'outcome.json'}: ")


# ----------------------------------------------------------------------------- failed writes


def full_disk(monkeypatch, fails):
    """From now on, atomic writes of the files for which ``fails(path)`` is true run out of space
    halfway, as on a full disk: part of the file is written, then ENOSPC."""
    real = folders.write_atomic

    def write_atomic(path, write, binary=False):
        def half(fh):
            fh.write(b'{"cut' if binary else '{"cut')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return real(path, half if fails(Path(path)) else write, binary)

    monkeypatch.setattr(folders, "write_atomic", write_atomic)


def test_a_failed_write_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"score": 1})
    with monkeypatch.context() as patch:
        full_disk(patch, lambda p: True)
        with pytest.raises(WriteError, match=f"^{path}: cannot write it \\(No space left on device\\); free space"):
            write_json(path, {"score": 2})
    assert read_json(path, "") == {"score": 1} and leftovers(tmp_path) == []

    def denied(src, dst):                          # a read-only folder refuses the rename (root would not)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", denied)
        with pytest.raises(WriteError, match=f"^{path}: cannot write it \\(Permission denied\\)"):
            write_json(path, {"score": 3})
    assert read_json(path, "") == {"score": 1} and leftovers(tmp_path) == []


def test_a_full_disk_stops_a_corpus_run_in_one_line_and_it_resumes(model, tmp_path, monkeypatch, capsys):
    texts = tmp_path / "sentences.txt"
    texts.write_text("\n".join(CORPUS) + "\n")
    argv = ["--texts", str(texts), "--spiking", "none", "--batch", "1", "--device", "runtime", "--out",
            str(tmp_path / "out"), "--quiet", "--no-figures"]
    written = []

    def second_sentence(path):
        if path.parent.name == "sentences":
            written.append(path)
        return len(written) == 2 and path == written[-1]

    with monkeypatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        full_disk(patch, second_sentence)
        experiment.main(argv)
    assert exit_info.value.code == 1
    (run_dir,) = (tmp_path / "out").iterdir()
    line = error_line(capsys)
    assert line.endswith(f"error: {written[1]}: cannot write it (No space left on device); finished sentences are "
                         f"kept: free space or make the folder writable, then --resume {run_dir}")
    assert experiment.finished(run_dir, 3) == {int(written[0].stem)} and not written[1].exists()
    assert leftovers(run_dir) == []
    kept = written[0].stat().st_mtime_ns

    assert experiment.main(["--resume", str(run_dir), "--quiet", "--no-figures"]) == run_dir
    assert experiment.finished(run_dir, 3) == {0, 1, 2} and written[0].stat().st_mtime_ns == kept
    assert (run_dir / "embeddings.npz").is_file()


def test_a_full_disk_stops_a_sweep_in_one_line_and_it_resumes(tmp_path, monkeypatch, capsys):
    out, log = tmp_path / "sweep", tmp_path / "calls.log"
    argv = [FAKE, "--grid", "alpha=1,2,3", "--workers", "1", "--out", str(out), "--", "--log", str(log)]
    tables = []

    def after_the_first_point(path):
        tables.append(path.name)
        return tables.count("failures.json") >= 2               # the first one is written before any point runs

    with monkeypatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        full_disk(patch, after_the_first_point)
        sweep.main(argv)
    assert exit_info.value.code == 1
    line = error_line(capsys)
    assert line.endswith(f"error: {out / 'failures.json'}: cannot write it (No space left on device); completed "
                         f"points are kept: free space or make the folder writable, then resume (--resume {out})")
    (done,) = (out / "points").iterdir()
    assert read_json(done / "metrics.json", "")["score"] == 1.0 and leftovers(out) == []

    assert sweep.main(["--resume", str(out)]) == 0
    assert [row["status"] for row in read_table(out)] == ["ok"] * 3
    assert sorted(log_lines(log)) == ["alpha=1.0 seed=0", "alpha=2.0 seed=0", "alpha=3.0 seed=0"]


def test_a_full_disk_stops_an_experiment_in_one_line(tmp_path, monkeypatch, capsys):
    """A one-run experiment (here attention, tiny): one line instead of a traceback, earlier files whole."""
    with monkeypatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        full_disk(patch, lambda path: path.name == "metrics.json")
        attention.main(TINY + ["--out", str(tmp_path), "--no-figures"])
    assert exit_info.value.code == 1
    (run_dir,) = tmp_path.iterdir()
    assert error_line(capsys) == (f"python -m experiments.attention: error: {run_dir / 'metrics.json'}: cannot write "
                                  "it (No space left on device); free space or make the folder writable, then run again")
    assert read_json(run_dir / "params.json", "")["experiment"] == "attention"
    assert not (run_dir / "metrics.json").exists() and leftovers(run_dir) == []
