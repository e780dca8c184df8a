"""Correlations within cells and seeds, and the hierarchical bootstrap, against naive references:
explicit resampled arrays and scipy, written from the definitions."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.correlations import correlations
from metaleep.analysis.regimes import (
    combined_correlation,
    fisher_z,
    layout,
    regime_of,
)
from metaleep.analysis.resample import (
    constant_replicates,
    generator,
    pearson_replicates,
    resample_counts,
    row_weights,
    stratified_counts,
)


def _draws(counts: np.ndarray) -> list[np.ndarray]:
    """The explicit resample (row indices) of every replicate of ``counts``."""
    return [np.repeat(np.arange(counts.shape[1]), row) for row in counts]


def test_pearson_replicates_equal_scipy_on_explicit_resamples() -> None:
    rng = np.random.default_rng(0)
    n = 40
    y = np.round(rng.normal(size=n), 1)  # ties, like accuracies
    x = np.column_stack([rng.normal(size=n), np.round(rng.normal(size=n), 1), y + 0.1])
    counts = resample_counts(rng, n, 200)
    got = pearson_replicates(x, y, counts)
    for b, rows in enumerate(_draws(counts)):
        for j in range(x.shape[1]):
            expected = stats.pearsonr(x[rows, j], y[rows]).statistic
            assert got[b, j] == pytest.approx(expected, abs=1e-12)


def test_pearson_replicates_nan_exactly_where_a_resample_is_constant() -> None:
    x = np.array([1.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 1.0, 1.0, 2.0])
    counts = np.array([[2, 2, 0, 0], [0, 0, 4, 0], [1, 1, 1, 1], [0, 3, 1, 0]])
    got = pearson_replicates(x, y, counts)[:, 0]
    # x tied in replicate 0 (rows 0 and 1), one row in 1, y tied in 3 (rows 1 and 2)
    assert np.isnan(got[:2]).all() and np.isnan(got[3])
    assert got[2] == pytest.approx(stats.pearsonr(x, y).statistic)


def test_constant_replicates_against_the_drawn_values() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 3, size=6).astype(float)
    counts = resample_counts(rng, 6, 500)
    expected = [len(np.unique(values[rows])) == 1 for rows in _draws(counts)]
    assert constant_replicates(counts, values).tolist() == expected
    assert any(expected)  # the case occurs


def test_stratified_counts_keep_each_stratum() -> None:
    strata = np.array([2, 0, 2, 0, 0, 1])
    counts = stratified_counts(generator(3), strata, 50)
    for s in (0, 1, 2):
        assert (counts[:, strata == s].sum(axis=1) == (strata == s).sum()).all()
    # one stratum: exactly the plain draw (so a one-cell study keeps its old intervals)
    one = stratified_counts(generator(7), np.zeros(5, dtype=int), 20)
    np.testing.assert_array_equal(one, resample_counts(generator(7), 5, 20))


def _table(rng: np.random.Generator, *, seeds: int, cells: list[tuple[int, int]], per: int):
    rows = []
    episode = 0
    for ways, shots in cells:
        for _ in range(per):
            difficulty = rng.normal()
            for seed in range(seeds):
                shift = 0.5 * seed
                acc = difficulty + 0.3 * rng.normal() + shift
                rows.append(
                    {
                        "episode": episode,
                        "ways": ways,
                        "shots": shots,
                        "seed": seed,
                        "accuracy": acc - 0.2 * ways,
                        "leep": acc + rng.normal() + 3.0 * ways,  # level set by the cell
                        "nce": rng.normal() + (0.0 if shots > 1 else 1.0),
                        "h_score": float(ways - 1),  # constant in each cell
                    }
                )
            episode += 1
    return pd.DataFrame(rows)


def _naive_combined(table: pd.DataFrame, metric: str) -> float:
    z_seed = []
    for _, by_seed in table.groupby("seed"):
        z, w = [], []
        for _, cell in by_seed.groupby(["ways", "shots"]):
            if cell[metric].nunique() < 2 or len(cell) < 4:
                continue
            z.append(np.arctanh(stats.pearsonr(cell[metric], cell.accuracy).statistic))
            w.append(len(cell) - 3)
        z_seed.append(np.average(z, weights=w))
    return float(np.tanh(np.mean(z_seed)))


def test_point_estimate_is_fisher_z_over_cells_then_mean_over_seeds() -> None:
    rng = np.random.default_rng(2)
    table = _table(rng, seeds=3, cells=[(5, 1), (20, 1), (5, 5)], per=12)
    x = table[["leep", "nce", "h_score"]].to_numpy()
    res = combined_correlation(x, table.accuracy.to_numpy(), layout(table))
    assert res.r[0] == pytest.approx(_naive_combined(table, "leep"), abs=1e-12)
    assert res.r[1] == pytest.approx(_naive_combined(table, "nce"), abs=1e-12)
    # constant in every cell: undefined, however its level follows the cells
    assert math.isnan(res.r[2]) and res.reason[2] == "constant metric"
    assert res.notes[2] == ["no r in any of its 3 (ways, shots) cells"]
    assert res.n_cells == 3 and res.n_seeds == 3 and res.cells_defined.tolist() == [3, 3, 0]
    pooled = stats.pearsonr(table.h_score, table.accuracy).statistic
    assert pooled < -0.5  # what a pooled r would have reported


def test_hierarchical_bootstrap_equals_explicit_resampling() -> None:
    rng = np.random.default_rng(3)
    table = _table(rng, seeds=3, cells=[(5, 1), (5, 5)], per=10)
    lay = layout(table)
    n_boot = 60
    episode_counts = stratified_counts(generator(11), lay.cell_of_episode, n_boot)
    seed_counts = resample_counts(generator(12), 3, n_boot)
    x = table[["leep", "nce"]].to_numpy()
    y = table.accuracy.to_numpy()
    res = combined_correlation(
        x, y, lay, n_boot=n_boot, episode_counts=episode_counts, seed_counts=seed_counts
    )
    assert res.boot is not None and res.boot_episodes is not None
    for b in range(n_boot):
        per_seed = []
        for s in range(3):
            z, w = [], []
            for c in range(2):
                part = table[(table.seed == s) & (table.ways == 5) & (table.shots == (1, 5)[c])]
                draws = np.repeat(part.episode.to_numpy(), episode_counts[b, part.episode])
                resampled = part.set_index("episode").loc[draws]
                z.append(fisher_z(stats.pearsonr(resampled.leep, resampled.accuracy).statistic))
                w.append(len(part) - 3)  # the cell's weight is its size, kept by the draw
            per_seed.append(np.average(z, weights=w))
        drawn = np.repeat(np.arange(3), seed_counts[b])
        assert res.boot[b, 0] == pytest.approx(np.tanh(np.mean(np.take(per_seed, drawn))))
        assert res.boot_episodes[b, 0] == pytest.approx(np.tanh(np.mean(per_seed)))


def test_seed_share_reflects_how_much_the_seeds_differ() -> None:
    rng = np.random.default_rng(4)
    base = _table(rng, seeds=1, cells=[(5, 5)], per=80)
    same = pd.concat([base.assign(seed=s) for s in range(3)], ignore_index=True)
    x = same[["leep"]].to_numpy()
    res = combined_correlation(x, same.accuracy.to_numpy(), layout(same), n_boot=300)
    assert res.seed_share(0) == pytest.approx(0.0, abs=1e-9)  # identical seeds add nothing
    differ = same.copy()
    noise = np.where(differ.seed == 1, 0.0, 1.0)
    differ["leep"] = differ.leep + noise * 3.0 * rng.normal(size=len(differ))  # seeds unlike
    res = combined_correlation(
        differ[["leep"]].to_numpy(), differ.accuracy.to_numpy(), layout(differ), n_boot=300
    )
    assert res.seed_share(0) > 0.5


def test_one_cell_one_seed_is_the_plain_correlation_and_its_old_draws() -> None:
    rng = np.random.default_rng(5)
    table = _table(rng, seeds=1, cells=[(5, 5)], per=30).drop(columns="seed")
    x, y = table[["leep"]].to_numpy(), table.accuracy.to_numpy()
    res = combined_correlation(x, y, layout(table), n_boot=100, seed=9)
    plain = stats.pearsonr(table.leep, y)
    assert res.r[0] == plain.statistic and res.p[0] == plain.pvalue
    assert res.combination == "one cell" and math.isnan(res.seed_share(0))
    weights = row_weights(np.arange(len(table)), 100, 9)
    expected = pearson_replicates(x, y, weights)[:, 0]
    np.testing.assert_allclose(res.boot[:, 0], expected)  # type: ignore[index]


def test_fisher_p_value_over_cells() -> None:
    rng = np.random.default_rng(6)
    table = _table(rng, seeds=1, cells=[(5, 1), (20, 1)], per=25)
    res = combined_correlation(table[["nce"]].to_numpy(), table.accuracy.to_numpy(), layout(table))
    z, w = [], []
    for _, cell in table.groupby("ways"):
        z.append(np.arctanh(stats.pearsonr(cell.nce, cell.accuracy).statistic))
        w.append(len(cell) - 3)
    statistic = np.average(z, weights=w) * np.sqrt(np.sum(w))
    assert res.p[0] == pytest.approx(2 * stats.norm.sf(abs(statistic)))


def test_a_cell_where_the_metric_is_constant_is_left_out_and_said() -> None:
    rng = np.random.default_rng(7)
    table = _table(rng, seeds=1, cells=[(5, 1), (5, 5)], per=20)
    table.loc[table.shots == 1, "nce"] = 0.0
    out = correlations(table, metrics=["nce"], by=(), methods=["pearson"], n_boot=20)
    five = table[table.shots == 5]
    assert out.r[0] == pytest.approx(stats.pearsonr(five.nce, five.accuracy).statistic)
    assert out.cells_defined[0] == 1 and out.n_cells[0] == 2 and out.n[0] == 20
    assert "constant metric in 1 of 2 (ways, shots) cells (left out)" in out.note[0]


def test_an_episode_in_two_cells_is_refused() -> None:
    table = pd.DataFrame({"episode": [0, 0, 1], "ways": [5, 20, 5], "shots": 1})
    message = "`table` must give each episode one (ways, shots) cell; got an episode in several."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        layout(table)


def test_regimes() -> None:
    assert regime_of(np.array([1, 2, 5])).tolist() == ["1-shot", ">=2-shot", ">=2-shot"]
