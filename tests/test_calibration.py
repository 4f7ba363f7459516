"""The latency code's shipped ranges (transformer.calibration) against a recomputation."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from transformer import calibration, minilm

CORPUS = Path(__file__).parents[1] / "benchmarks" / "data" / "corpus.txt"


def test_shipped_ranges_are_the_calibration_of_the_recorded_corpus(model):
    """The table is 2x the largest |input| of every stage over the NumPy model's pass of the corpus
    it names (same SHA-256), recomputed here; every range is positive and finite."""
    table = json.loads(minilm.RANGES_FILE.read_text())
    assert table["corpus_sha256"] == hashlib.sha256(CORPUS.read_bytes()).hexdigest()
    texts = [line.strip() for line in CORPUS.read_text().splitlines() if line.strip()]
    again = calibration.calibrate(texts, table["headroom"])
    assert again.keys() == table["ranges"].keys()
    for layer, ranges in again.items():
        for stage, top in ranges.items():
            assert table["ranges"][layer][stage] == pytest.approx(top, rel=1e-9)
            assert np.all(np.isfinite(top)) and np.all(np.asarray(top) > 0)
    assert minilm.code_range(3, "ffn") == table["ranges"]["3"]["ffn"]
    # The heads' score tops, one per head (the one-spike key code's theta_ref / delta_u).
    assert len(table["ranges"]["0"]["attention_score"]) == 12
    assert minilm.code_range(0, "attention_score", 2) == table["ranges"]["0"]["attention_score"][2]


def test_a_range_covers_a_held_out_sentence(model):
    """The curated sentences (not in the calibration corpus) stay inside every range: the headroom
    is not used up (measured: the largest input of the held-out set is 1.0003x the corpus's)."""
    texts = [line.strip() for line in (Path(__file__).parents[1] / "experiments" / "data" / "sentences.txt")
             .read_text().splitlines() if line.strip()]
    held_out = calibration.calibrate(texts, 1.0)
    table = json.loads(minilm.RANGES_FILE.read_text())["ranges"]
    for layer, ranges in held_out.items():
        for stage, top in ranges.items():
            assert np.all(np.asarray(top) < np.asarray(table[layer][stage])), (layer, stage)
