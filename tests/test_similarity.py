"""Semantic similarity against human scores (experiments.similarity) and the correlations it reports
(analysis.correlation)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.correlation import average_ranks, pearson, spearman
from experiments import similarity as experiment
from transformer import forward, minilm


# ------------------------------------------------------------------------------------ correlation


def test_average_ranks_share_the_mean_rank_of_a_tie():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(average_ranks([3, 1, 3, 3, 2]), [4, 1, 4, 4, 2])
    np.testing.assert_array_equal(average_ranks([5.0]), [1])


def test_spearman_and_pearson_against_hand_computed_values():
    """x = (1, 2, 2, 3) ranks to (1, 2.5, 2.5, 4), y = (1, 3, 2, 4) to itself; deviations from the
    mean rank 2.5: (-1.5, 0, 0, 1.5) and (-1.5, 0.5, -0.5, 1.5); sum of products 4.5, sums of
    squares 4.5 and 5: rho = 4.5 / sqrt(22.5) = 3 / sqrt(10). Pearson of (1, 2, 3) and (1, 2, 4):
    deviations (-1, 0, 1) and (-4/3, -1/3, 5/3), products 3, squares 2 and 42/9: r = 9 / sqrt(84)."""
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / np.sqrt(10), abs=1e-12)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / np.sqrt(84), abs=1e-12)
    # Ranks make Spearman blind to monotone transformations; Pearson is not.
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    assert spearman(x, np.exp(10 * x)) == pytest.approx(1.0) and pearson(x, np.exp(10 * x)) < 0.95
    assert spearman(x, -x) == pytest.approx(-1.0)


def test_correlations_agree_with_scipy_on_tied_data():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        gold = rng.integers(0, 6, 30) / 5          # many ties, as in human scores
        cosine = gold + rng.normal(0, 0.3, 30)
        assert spearman(gold, cosine) == pytest.approx(stats.spearmanr(gold, cosine).statistic, abs=1e-12)
        assert pearson(gold, cosine) == pytest.approx(stats.pearsonr(gold, cosine).statistic, abs=1e-12)


def test_correlation_of_a_constant_is_nan_and_bad_input_is_refused():
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(pearson([1, 2, 3], [2, 2, 2]))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        spearman([1], [1])
    with pytest.raises(ValueError, match="one length"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN or inf"):
        spearman([1, np.nan, 3], [1, 2, 3])


# ------------------------------------------------------------------------------------ pair files

PAIRS = Path(__file__).resolve().parent.parent / "experiments" / "data" / "similarity_pairs.tsv"
STS_LINES = [  # extra trailing columns (sources) as on some lines of sts-test.csv, here on the first
             "main-news\theadlines\t2016\t1420\t0.4\tStocks fell.\tThe cat sat.\tsource A\tsource B",
             "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man plays a guitar.\tA man is playing a guitar.",
             "main-forums\tanswers-forums\t2015\t0002\t2.5\tA dog \"runs\".\tA dog walks."]
SICK_LINES = ["pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tSemEval_set",
              "1\tA man plays a guitar\tA man is playing a guitar\tENTAILMENT\t4.9\tTRAIN",
              "2\tStocks fell\tThe cat sat\tNEUTRAL\t1.0\tTEST"]


def write(path, lines, end="\n"):
    path.write_text(end.join(lines) + end, encoding="utf-8")
    return path


def test_sts_benchmark_lines_are_read_with_their_extra_columns_ignored(tmp_path):
    """No header; a comment, a blank line and Windows line ends are skipped; quotes are text."""
    path = write(tmp_path / "sts-test.csv", ["# a comment", "", *STS_LINES], end="\r\n")
    fmt, pairs = experiment.read_pairs(path)
    assert fmt == "sts-b" and [p.line for p in pairs] == [3, 4, 5]
    assert [p.gold for p in pairs] == [0.4, 5.0, 2.5]
    assert (pairs[0].a, pairs[0].b, pairs[0].pair_id) == ("Stocks fell.", "The cat sat.", "main-news/headlines/2016/1420")
    assert pairs[2].a == 'A dog "runs".'


def test_sick_is_told_by_its_header_and_read_by_column_name(tmp_path):
    """SICK.txt's column order (entailment_label before relatedness_score), not the SemEval files'."""
    fmt, pairs = experiment.read_pairs(write(tmp_path / "SICK.txt", SICK_LINES))
    assert fmt == "sick" and [(p.line, p.pair_id, p.gold) for p in pairs] == [(2, "1", 4.9), (3, "2", 1.0)]
    assert (pairs[0].a, pairs[0].b) == ("A man plays a guitar", "A man is playing a guitar")
    semeval = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment",
               "4\tA b\tC d\t3.6\tCONTRADICTION", "5\tE f\tG h\t1\tNEUTRAL"]
    assert [p.gold for p in experiment.read_pairs(write(tmp_path / "semeval.txt", semeval))[1]] == [3.6, 1.0]


def test_the_shipped_pair_file_and_its_distinct_sentences():
    fmt, pairs = experiment.read_pairs(PAIRS)
    assert fmt == "sts-b" and len(pairs) == 12
    texts, index = experiment.distinct_sentences(pairs)
    assert len(texts) == 22 and len(set(texts)) == 22            # two sentences appear in two pairs each
    assert all(texts[a] == p.a and texts[b] == p.b for p, (a, b) in zip(pairs, index))
    sample = experiment.sample_pairs(pairs, 5, 0)
    assert sample == experiment.sample_pairs(pairs, 5, 0) != experiment.sample_pairs(pairs, 5, 1)
    assert len(sample) == 5 and [p.line for p in sample] == sorted(p.line for p in sample)


MALFORMED = {   # name: (lines of the file, line number named, what the message says)
    "too few columns": (STS_LINES[:1] + ["main-news\theadlines\t2016\t0003\t3.0\tOnly one sentence."] + STS_LINES[1:],
                        2, "6 tab-separated columns, an STS Benchmark line has 7"),
    "score not a number": (STS_LINES + ["main-news\theadlines\t2016\t0004\tfive\tA b.\tC d."], 4, "not a number"),
    "score out of range": (STS_LINES + ["main-news\theadlines\t2016\t0004\t5.5\tA b.\tC d."], 4, "outside"),
    "empty sentence": (["", *STS_LINES[:2], "main-news\theadlines\t2016\t0004\t1.0\t  \tC d."], 4, "empty sentence"),
    "neither format": (["sentence1,sentence2,score", *STS_LINES], 1, "neither an STS Benchmark line"),
    "SICK line short": (SICK_LINES + ["3\tOnly one sentence"], 4, "2 tab-separated columns, the SICK header names 5"),
    "SICK score below 1": (SICK_LINES + ["3\tA b\tC d\tNEUTRAL\t0.5\tTEST"], 4, "outside SICK's 1-5"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_line_is_refused_naming_file_and_line(tmp_path, case):
    lines, number, message = MALFORMED[case]
    path = write(tmp_path / "pairs.tsv", lines)
    with pytest.raises(ValueError) as info:
        experiment.read_pairs(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{number}: ") and message in text and "\n" not in text


def test_a_malformed_file_stops_the_command_line_in_one_line_before_a_run_folder(model, tmp_path, capsys):
    path = write(tmp_path / "pairs.tsv", MALFORMED["score not a number"][0])
    with pytest.raises(SystemExit) as info:
        experiment.main(["--pairs", str(path), "--spiking", "none", "--out", str(tmp_path / "out"), "--quiet"])
    assert info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m experiments.similarity: error: ") and f"{path}:4: " in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_sentence_longer_than_the_circuits_take_is_refused_naming_its_line(model, tmp_path):
    long = " ".join(["word"] * 140)
    path = write(tmp_path / "pairs.tsv", STS_LINES + [f"main-news\theadlines\t2016\t0004\t1.0\tShort.\t{long}"])
    _, pairs = experiment.read_pairs(path)
    with pytest.raises(ValueError, match=f"^{path}:4: a sentence of 142 word pieces"):
        experiment.check_lengths(path, pairs)


# ------------------------------------------------------------------------------------- the runs

#: A tiny run: 4 pairs of the shipped file (--sample), every stage in NumPy (--spiking none).
TINY = ["--pairs", str(PAIRS), "--sample", "4", "--spiking", "none", "--device", "runtime", "--quiet"]


def test_without_spiking_stages_both_models_give_the_same_correlations(model, tmp_path):
    """--spiking none: the "spiking" model is the NumPy model, so its cosines and correlations are the
    reference's; the correlations are recomputed here from pairs.csv, and each pair's bill is its two
    sentences' model MACs, all in NumPy."""
    from transformer.bill import stage_macs, STAGES

    run_dir = experiment.main([*TINY, "--out", str(tmp_path)])
    assert {"params.json", "metrics.json", "pairs.csv", "embeddings.npz", "scores.png", "sentences"} <= \
        {p.name for p in run_dir.iterdir()}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_pairs"] == 4 and metrics["format"] == "sts-b" and metrics["sample"] == {"n": 4, "seed": 0}
    assert metrics["spearman_spiking"] == metrics["spearman_reference"]
    assert metrics["pearson_spiking"] == metrics["pearson_reference"]
    assert metrics["spearman_difference"] == 0 and metrics["pair_cosine_deviation_max"] == 0
    with open(run_dir / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    gold = [float(r["gold"]) for r in rows]
    cosine = [float(r["cosine_reference"]) for r in rows]
    assert metrics["spearman_reference"] == pytest.approx(spearman(gold, cosine), abs=1e-12)
    assert metrics["pearson_reference"] == pytest.approx(pearson(gold, cosine), abs=1e-12)
    for row in rows:
        a, b = (forward.sentence_embedding(row[k]) for k in ("sentence_a", "sentence_b"))
        assert float(row["cosine_reference"]) == pytest.approx(float(a @ b), abs=1e-12)
        macs = sum(stage_macs(stage, len(minilm.tokenize(row[k])[0]), model) * model.n_layers
                   for k in ("sentence_a", "sentence_b") for stage in STAGES)
        assert int(row["numpy_macs"]) == int(row["model_macs"]) == macs and int(row["synaptic_events"]) == 0
        assert int(row["numpy_ops"]) >= macs
    assert metrics["bill_per_pair"]["model_macs"] == pytest.approx(np.mean([int(r["model_macs"]) for r in rows]))


def test_a_killed_run_resumes_without_recomputing_a_finished_sentence(model, tmp_path, monkeypatch):
    """Kill a run after its second sentence; --resume computes only the others (every sentence is
    simulated once in all), keeps the finished sentences' files untouched and ends with the
    metrics of an uninterrupted run."""
    from runs import corpus

    computed = []
    real = corpus.spiking_minilm

    def counting(texts, *args, sentence_ids, **kwargs):
        computed.extend(sentence_ids)
        return real(texts, *args, sentence_ids=sentence_ids, **kwargs)

    monkeypatch.setattr(corpus, "spiking_minilm", counting)
    argv = [*TINY[:-1], "--batch", "1", "--no-figures"]

    def kill(name, args, line):
        if line.startswith("2/"):
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(experiment.cli, "say", kill)
        with pytest.raises(KeyboardInterrupt):
            experiment.main([*argv, "--out", str(tmp_path / "killed")])
    (run_dir,) = (tmp_path / "killed").iterdir()
    n_sentences = len(json.loads((run_dir / "params.json").read_text())["configuration"]["texts"])
    assert computed == [0, 1] and corpus.finished(run_dir, n_sentences) == {0, 1}
    assert not (run_dir / "metrics.json").exists()
    kept = [corpus.sentence_path(run_dir, n).stat().st_mtime_ns for n in (0, 1)]

    assert experiment.main(["--resume", str(run_dir), "--quiet", "--no-figures"]) == run_dir
    assert computed == list(range(n_sentences))                    # each sentence once, over both calls
    assert [corpus.sentence_path(run_dir, n).stat().st_mtime_ns for n in (0, 1)] == kept
    whole = experiment.main([*argv, "--quiet", "--out", str(tmp_path / "whole")])
    resumed, uninterrupted = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, whole))
    for key in ("n_pairs", "spearman_reference", "spearman_spiking", "pearson_reference", "pearson_spiking"):
        assert resumed[key] == uninterrupted[key]
    assert (run_dir / "pairs.csv").read_text() == (whole / "pairs.csv").read_text()


def test_resume_refuses_another_experiments_folder_and_a_run_without_its_pairs(model, tmp_path, capsys):
    from runs.folders import run_record, write_json

    write_json(tmp_path / "params.json", run_record("spiking_minilm", 0, configuration={}))
    with pytest.raises(SystemExit):
        experiment.main(["--resume", str(tmp_path), "--quiet"])
    assert "no similarity run there (params.json is of 'spiking_minilm')" in capsys.readouterr().err
    run_dir = experiment.main([*TINY, "--out", str(tmp_path / "out")])
    params = json.loads((run_dir / "params.json").read_text())
    del params["pairs"]["items"]
    write_json(run_dir / "params.json", params)
    with pytest.raises(SystemExit):
        experiment.main(["--resume", str(run_dir), "--quiet"])
    assert "no whole record of the run's pairs" in capsys.readouterr().err.strip().splitlines()[-1]
