"""Semantic similarity against human scores (experiments.similarity) and the correlations it reports
(analysis.correlation)."""

import numpy as np
import pytest

from analysis.correlation import average_ranks, pearson, spearman


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
