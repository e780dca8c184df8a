"""The selection-aware winner test holds its level (simulation), and Benjamini-Hochberg."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from metaleep.analysis.resample import generator, pearson_replicates, resample_counts
from metaleep.analysis.significance import benjamini_hochberg, one_sided_p, winner_test

ALPHA = 0.05


def _simulate(rho: list[float], *, runs: int, n: int, n_boot: int, seed: int) -> np.ndarray:
    """Per run: (is a winner declared significant, is the declared winner truly best).

    Each run draws n episodes: accuracy y ~ N(0, 1) and metric m = rho_m y + noise, so metric
    m's population Pearson r with accuracy is rho_m. The engine computes every metric's r and
    its bootstrap replicates (the same resamples for all metrics), the rule picks the winner.
    """
    rng = np.random.default_rng(seed)
    counts = resample_counts(generator(seed), n, n_boot)  # resampling shared across runs
    rho_arr = np.array(rho)
    best = rho_arr == rho_arr.max()
    out = np.zeros((runs, 3), dtype=bool)
    for i in range(runs):
        y = rng.normal(size=n)
        x = rho_arr * y[:, None] + np.sqrt(1 - rho_arr**2) * rng.normal(size=(n, len(rho)))
        point = pearson_replicates(x, y, np.ones((1, n), dtype=np.int64))[0]
        boot = pearson_replicates(x, y, counts)
        winner, p = winner_test(point, boot)
        others = np.arange(len(rho)) != winner
        old_p = one_sided_p((boot[:, winner][:, None] - boot[:, others]).T).max()
        out[i] = (p < ALPHA, bool(best[winner]) and best.sum() == 1, old_p < ALPHA)
    return out


def _mc_error(runs: int) -> float:
    return 3.0 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_two_tied_metrics_give_a_false_winner_at_the_nominal_level() -> None:
    runs = 1500
    out = _simulate([0.4, 0.4], runs=runs, n=120, n_boot=999, seed=0)
    rate = out[:, 0].mean()
    assert abs(rate - ALPHA) <= _mc_error(runs), rate
    # the one-sided test of the chosen winner, which this rule replaces, runs at about 2 alpha
    assert out[:, 2].mean() > ALPHA + _mc_error(runs)


def test_tied_metrics_among_weaker_ones_stay_within_the_level() -> None:
    runs = 1000
    out = _simulate([0.4, 0.4, 0.2, 0.1, 0.0, 0.2, 0.1, 0.3], runs=runs, n=120, n_boot=999, seed=1)
    assert out[:, 0].mean() <= ALPHA + _mc_error(runs)
    everyone = _simulate([0.3, 0.3, 0.3, 0.3], runs=runs, n=120, n_boot=999, seed=2)
    assert everyone[:, 0].mean() <= ALPHA + _mc_error(runs)


def test_a_truly_better_metric_is_found() -> None:
    out = _simulate([0.7, 0.3, 0.2], runs=100, n=200, n_boot=999, seed=3)
    assert out[:, 0].mean() > 0.95 and out[:, 1].all()


def test_winner_test_against_explicit_loops() -> None:
    rng = np.random.default_rng(4)
    point = np.array([0.3, np.nan, 0.5, 0.45])
    boot = point + 0.05 * rng.normal(size=(400, 4))
    boot[7, 3] = np.nan  # an undefined replicate of one metric
    winner, p = winner_test(point, boot)
    assert winner == 2
    worst = 0.0
    for m in (0, 3):
        d = boot[:, 2] - boot[:, m]
        d = d[np.isfinite(d)]
        worst = max(worst, (1 + (d <= 0).sum()) / (1 + d.size))
    assert p == pytest.approx(min(1.0, 2 * worst))
    # batched over settings: the same per setting
    w2, p2 = winner_test(np.stack([point, point[::-1]]), np.stack([boot, boot[:, ::-1]]))
    assert w2.tolist() == [2, 1] and p2 == pytest.approx([float(p), float(p)])
    assert winner_test([np.nan, np.nan], boot[:, :2])[0] == -1


def test_benjamini_hochberg_against_the_step_up_rule() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(size=30) ** 3
    q = benjamini_hochberg(p)
    order = np.argsort(p)
    m = len(p)
    naive = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        naive[i] = running
    np.testing.assert_allclose(q, naive)
    # a test is rejected at level alpha exactly when the step-up rule rejects it
    k = max([r for r in range(1, m + 1) if np.sort(p)[r - 1] <= ALPHA * r / m], default=0)
    assert (q <= ALPHA).sum() == k
    with_nan = benjamini_hochberg(np.r_[p, np.nan])
    assert np.isnan(with_nan[-1]) and np.allclose(with_nan[:-1], q)
    assert np.allclose(q, stats.false_discovery_control(p))
