"""Tests of metaleep.analysis.resample: the bootstrap engine and the one weighted tau, against
scipy on explicitly resampled arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from metaleep.analysis.correlations import METHODS
from metaleep.analysis.resample import (
    generator,
    replicate_statistics,
    resample_counts,
    row_weights,
    weighted_tau,
)

SCIPY = {
    "pearson": lambda x, y: stats.pearsonr(x, y).statistic,
    "spearman": lambda x, y: stats.spearmanr(x, y).statistic,
    "kendall": lambda x, y: stats.kendalltau(x, y).statistic,
    "weightedtau": lambda x, y: stats.weightedtau(x, y).statistic,
}


@pytest.mark.parametrize("clustered", [False, True])
def test_bootstrap_statistics_equal_scipy_on_explicit_resamples(clustered: bool) -> None:
    rng = np.random.default_rng(7)
    n_units = 25
    units = np.repeat(np.arange(n_units), 3) if clustered else np.arange(n_units)
    x = np.round(rng.normal(size=len(units)), 1)  # many ties
    y = np.round(x + rng.normal(size=len(units)))
    weights = row_weights(units, 40, seed=3)
    boot = replicate_statistics(x, y, weights, METHODS)
    counts = resample_counts(generator(3), n_units, 40)
    for b in range(40):
        # The replicate built explicitly: every row of each drawn unit, as often as it is drawn.
        idx = np.concatenate(
            [np.flatnonzero(units == u) for u in np.repeat(np.arange(n_units), counts[b])]
        )
        for method in METHODS:
            ref = SCIPY[method](x[idx], y[idx])
            np.testing.assert_allclose(boot[method][b], ref, atol=1e-10, err_msg=method)


def test_bootstrap_engine_with_unit_weights_gives_point_estimates() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=40), rng.normal(size=40)
    ones = np.ones((1, 40), dtype=np.int64)
    boot = replicate_statistics(x, y, ones, METHODS)
    for method in METHODS:
        assert boot[method][0] == pytest.approx(SCIPY[method](x, y), abs=1e-12)


def test_weighted_tau_matches_scipy_with_ties_and_missing() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, size=(300, 6)).astype(float)
    y = rng.integers(0, 4, size=(300, 6)).astype(float)
    x[rng.random(x.shape) < 0.15] = np.nan
    got = weighted_tau(x, y)
    for i in range(300):
        ok = np.isfinite(x[i])
        ref = stats.weightedtau(x[i, ok], y[i, ok]).statistic if ok.sum() >= 2 else np.nan
        np.testing.assert_allclose(got[i], ref, atol=1e-12, err_msg=str(i))


def test_weighted_tau_of_rows_equals_the_replicate_form_with_unit_counts() -> None:
    # One statistic, two entry points: many problems at once, or one problem's replicates.
    rng = np.random.default_rng(8)
    x = np.round(rng.normal(size=(50, 7)), 1)
    y = np.round(x + rng.normal(size=(50, 7)), 1)
    rows = weighted_tau(x, y)
    ones = np.ones((1, 7), dtype=np.int64)
    for i in range(50):
        one = replicate_statistics(x[i], y[i], ones, ["weightedtau"])["weightedtau"][0]
        assert rows[i] == pytest.approx(one, abs=1e-13)


def test_weighted_tau_is_nan_where_undefined() -> None:
    x = np.array([[1.0, 1.0, 1.0], [1.0, np.nan, np.nan], [1.0, 2.0, 3.0]])
    y = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    got = weighted_tau(x, y)
    assert math.isnan(got[0]) and math.isnan(got[1]) and got[2] == pytest.approx(-1.0)
