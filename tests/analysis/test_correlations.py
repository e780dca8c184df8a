"""Tests of metaleep.analysis.correlations: correlations, bootstrap intervals, paired comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.correlations import (
    add_normalised_leep,
    compare_metrics,
    correlations,
    normalised_leep,
    use_normalised_leep,
)

SCIPY = {
    "pearson": lambda x, y: (stats.pearsonr(x, y).statistic, stats.pearsonr(x, y).pvalue),
    "spearman": lambda x, y: (stats.spearmanr(x, y).statistic, stats.spearmanr(x, y).pvalue),
    "kendall": lambda x, y: (stats.kendalltau(x, y).statistic, stats.kendalltau(x, y).pvalue),
    "weightedtau": lambda x, y: (stats.weightedtau(x, y).statistic, math.nan),
}


def make_table(
    n: int = 60,
    rho: float = 0.6,
    *,
    seed: int = 0,
    backbones: tuple[str, ...] = ("conv4",),
    shots: tuple[int, ...] = (5,),
    ways: tuple[int, ...] = (5,),
) -> pd.DataFrame:
    """Synthetic study table with known structure.

    Per (episode, backbone): ``accuracy = z``; ``leep = rho z + sqrt(1 - rho^2) e`` (population
    Pearson correlation ``rho``); ``nce`` a noisier copy (population r = rho / 2); ``logme``
    independent noise (r = 0); ``h_score`` constant on 1-shot episodes.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(n):
        s = shots[episode % len(shots)]
        w = ways[(episode // len(shots)) % len(ways)]
        for backbone in backbones:
            z, e1, e2, e3 = rng.normal(size=4)
            leep = rho * z + math.sqrt(1 - rho**2) * e1
            rows.append(
                {
                    "suite": "synthetic",
                    "episode": episode,
                    "ways": w,
                    "shots": s,
                    "within_alphabet": bool(episode % 3 == 0),
                    "backbone": backbone,
                    "dummy": "head",
                    "adaptation": "maml",
                    "leep": leep,
                    "nce": 0.5 * rho * z + math.sqrt(1 - 0.25 * rho**2) * e2,
                    "logme": e3,
                    "h_score": float(w - 1) if s == 1 else 3.0 + e2,
                    "accuracy": z,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Point estimates and the bootstrap engine
# --------------------------------------------------------------------------------------------


def test_point_estimates_and_p_values_equal_scipy() -> None:
    table = make_table(n=50, seed=1)
    table["nce"] = np.round(table["nce"], 1)  # ties
    res = correlations(table, by=(), n_boot=20)
    for rec in res.itertuples():
        x, y = table[rec.metric].to_numpy(), table["accuracy"].to_numpy()
        r, p = SCIPY[rec.method](x, y)
        assert rec.r == pytest.approx(r, abs=1e-12)
        if rec.method == "weightedtau":
            assert math.isnan(rec.p_value)
        else:
            assert rec.p_value == pytest.approx(p, rel=1e-9)
        assert rec.n == 50 and rec.n_episodes == 50 and rec.note == ""


def test_ci_agrees_with_scipy_bootstrap_on_large_n() -> None:
    table = make_table(n=400, rho=0.5, seed=4)
    res = correlations(
        table, metrics=["leep"], by=(), methods=["pearson", "spearman"], n_boot=2000, seed=0
    )
    x, y = table["leep"].to_numpy(), table["accuracy"].to_numpy()

    def pearson(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(stats.pearsonr(a, b, axis=axis).statistic)

    def spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        ranks_a, ranks_b = stats.rankdata(a, axis=axis), stats.rankdata(b, axis=axis)
        return np.asarray(stats.pearsonr(ranks_a, ranks_b, axis=axis).statistic)

    for method, statistic in (("pearson", pearson), ("spearman", spearman)):
        ref = stats.bootstrap(
            (x, y),
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=2000,
            method="percentile",
            rng=np.random.default_rng(123),
        )
        row = res[res.method == method].iloc[0]
        assert row.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.02)
        assert row.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.02)


def test_reproducible_for_a_seed_and_ci_contains_r() -> None:
    table = make_table(n=40, seed=5)
    first = correlations(table, by=(), n_boot=200, seed=11)
    again = correlations(table, by=(), n_boot=200, seed=11)
    other = correlations(table, by=(), n_boot=200, seed=12)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first.ci_low, other.ci_low)
    assert (first.ci_low <= first.r).all() and (first.r <= first.ci_high).all()


def test_result_for_a_metric_does_not_depend_on_other_metrics() -> None:
    table = make_table(n=40, seed=5)
    alone = correlations(table, metrics=["nce"], by=(), n_boot=100)
    together = correlations(table, metrics=["leep", "nce"], by=(), n_boot=100)
    pd.testing.assert_frame_equal(
        alone.reset_index(drop=True),
        together[together.metric == "nce"].reset_index(drop=True),
    )


def test_confidence_intervals_cover_the_population_correlation() -> None:
    rho, covered, trials = 0.5, 0, 40
    for trial in range(trials):
        table = make_table(n=60, rho=rho, seed=100 + trial)
        row = correlations(
            table, metrics=["leep"], by=(), methods=["pearson"], n_boot=400, seed=trial
        ).iloc[0]
        covered += row.ci_low <= rho <= row.ci_high
    # 95 % intervals: expect about 38 of 40; percentile intervals run a little narrow at n=60.
    assert covered >= 33


def test_kendall_interval_narrows_with_more_episodes() -> None:
    small = correlations(
        make_table(n=30, seed=8), metrics=["leep"], by=(), methods=["kendall"], n_boot=300
    ).iloc[0]
    large = correlations(
        make_table(n=300, seed=8), metrics=["leep"], by=(), methods=["kendall"], n_boot=300
    ).iloc[0]
    assert (large.ci_high - large.ci_low) < 0.6 * (small.ci_high - small.ci_low)


# --------------------------------------------------------------------------------------------
# Undefined correlations, groups, orientation
# --------------------------------------------------------------------------------------------


def test_constant_metric_gives_nan_with_note() -> None:
    table = make_table(n=30, shots=(1,))  # h_score constant on 1-shot episodes
    res = correlations(table, by=(), n_boot=50)
    h = res[res.metric == "h_score"]
    assert len(h) == 4
    assert h.r.isna().all() and h.ci_low.isna().all() and h.ci_high.isna().all()
    assert (h.note == "constant metric").all()
    others = res[res.metric != "h_score"]
    assert others.r.notna().all() and (others.note == "").all()


def test_constant_target_and_too_few_episodes_are_explained() -> None:
    table = make_table(n=10)
    flat = table.assign(accuracy=0.5)
    res = correlations(flat, metrics=["leep"], by=(), methods=["pearson"], n_boot=10)
    assert math.isnan(res.r[0]) and res.note[0] == "constant target"
    tiny = correlations(table.head(2), metrics=["leep"], by=(), methods=["pearson"], n_boot=10)
    assert math.isnan(tiny.r[0]) and tiny.note[0] == "fewer than 3 episodes"


def test_non_finite_rows_are_dropped_and_noted() -> None:
    table = make_table(n=30)
    table.loc[[0, 3], "leep"] = np.nan
    table.loc[5, "accuracy"] = np.inf
    res = correlations(table, metrics=["leep"], by=(), methods=["pearson"], n_boot=20)
    keep = np.isfinite(table.leep) & np.isfinite(table.accuracy)
    assert res.n[0] == 27
    assert res.r[0] == pytest.approx(stats.pearsonr(table.leep[keep], table.accuracy[keep])[0])
    assert res.note[0] == "3 rows with non-finite values dropped"


def test_groups_are_split_correctly() -> None:
    table = make_table(n=40, backbones=("a", "b"), shots=(1, 5), seed=9)
    res = correlations(
        table, metrics=["leep"], by=("backbone", "shots"), methods=["spearman"], n_boot=20
    )
    assert list(res.columns[:2]) == ["backbone", "shots"]
    assert sorted(zip(res.backbone, res.shots, strict=True)) == [
        ("a", 1),
        ("a", 5),
        ("b", 1),
        ("b", 5),
    ]
    for rec in res.itertuples():
        sub = table[(table.backbone == rec.backbone) & (table.shots == rec.shots)]
        assert rec.n == len(sub) == 20
        assert rec.r == pytest.approx(stats.spearmanr(sub.leep, sub.accuracy).statistic)


def test_episodes_shared_by_rows_are_resampled_together() -> None:
    table = make_table(n=20, backbones=("a", "b"), seed=3)
    res = correlations(table, metrics=["leep"], by=(), methods=["pearson"], n_boot=50)
    assert res.n[0] == 40 and res.n_episodes[0] == 20


def test_lower_is_better_metric_is_negated_and_noted() -> None:
    table = make_table(n=30, seed=2)
    table["err"] = -table["leep"]
    res = correlations(
        table,
        metrics=["leep", "err"],
        by=(),
        methods=["pearson"],
        n_boot=50,
        higher_is_better={"err": False},
    )
    assert res.r[1] == pytest.approx(res.r[0])
    assert res.ci_low[1] == pytest.approx(res.ci_low[0])
    assert res.note[1] == "metric negated (lower is better)"


def test_n_boot_zero_gives_point_estimates_without_intervals() -> None:
    res = correlations(make_table(n=20), metrics=["leep"], by=(), methods=["pearson"], n_boot=0)
    assert np.isfinite(res.r[0]) and math.isnan(res.ci_low[0])
    assert res.note[0] == "n_boot=0: no confidence interval"


def test_bad_arguments_raise_with_the_uniform_wording() -> None:
    table = make_table(n=10)
    with pytest.raises(TypeError, match=r"^`table` must be a pandas DataFrame; got 'dict'\.$"):
        correlations({"a": [1]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^`metrics` must be columns of `table`; got \['x'\]"):
        correlations(table, metrics=["x"])
    with pytest.raises(ValueError, match=r"^`by` must be columns of `table`; got \['nope'\]"):
        correlations(table, by=("nope",))
    with pytest.raises(ValueError, match=r"^`methods` must be a non-empty subset of"):
        correlations(table, methods=("cosine",))
    with pytest.raises(ValueError, match=r"^`n_boot` must be >= 0; got -1\.$"):
        correlations(table, n_boot=-1)
    with pytest.raises(ValueError, match=r"^`confidence` must be in \(0, 1\); got 1\.5\.$"):
        correlations(table, confidence=1.5)
    with pytest.raises(ValueError, match=r"^`leep` must be one of 'raw', 'normalised', 'auto'"):
        correlations(table, leep="log")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Normalised LEEP
# --------------------------------------------------------------------------------------------


def test_normalised_leep_is_zero_at_the_floor_and_one_at_perfection() -> None:
    ways = np.array([2, 5, 20])
    np.testing.assert_allclose(normalised_leep(-np.log(ways), ways), 0.0, atol=1e-15)
    np.testing.assert_allclose(normalised_leep(np.zeros(3), ways), 1.0)
    # a hand value: 1 + (-0.5) / log 5
    assert normalised_leep([-0.5], [5])[0] == pytest.approx(1 - 0.5 / math.log(5))


def test_normalised_leep_rejects_fewer_than_two_ways() -> None:
    with pytest.raises(ValueError, match=r"^`ways` must be at least 2; got minimum 1\.0\.$"):
        normalised_leep([-0.1], [1])
    with pytest.raises(ValueError, match=r"^`ways` must be whole numbers"):
        normalised_leep([-0.1], [2.5])


def test_add_normalised_leep_adds_columns_for_leep_like_metrics() -> None:
    table = pd.DataFrame(
        {"leep": [-1.0, -2.0], "nleep": [-0.5, -1.0], "nce": [-1.0, -1.0], "ways": [5, 20]}
    )
    out = add_normalised_leep(table)
    assert "leep_norm" in out and "nleep_norm" in out and "nce_norm" not in out
    np.testing.assert_allclose(out.leep_norm, 1 + table.leep / np.log(table.ways))
    assert "leep_norm" not in table  # copy, not in place


def test_leep_form_option() -> None:
    table = make_table(n=40, ways=(5, 20), seed=6)
    assert use_normalised_leep(table, "auto", by=("backbone",))
    assert not use_normalised_leep(table, "auto", by=("ways",))
    auto = correlations(
        table, metrics=["leep", "nce"], by=(), methods=["pearson"], n_boot=10, leep="auto"
    )
    assert auto.metric.tolist() == ["leep_norm", "nce"]
    raw = correlations(table, metrics=["leep"], by=(), methods=["pearson"], n_boot=10)
    assert raw.metric.tolist() == ["leep"]
    # Never pooled over the two numbers of ways: within each, combined by Fisher z (n - 3).
    z, w = [], []
    for _, part in table.groupby("ways"):
        z.append(np.arctanh(stats.pearsonr(part.leep, part.accuracy).statistic))
        w.append(len(part) - 3)
    expected = np.tanh(np.average(z, weights=w))
    assert auto.r[0] == pytest.approx(expected) == raw.r[0]
    assert auto.combination[0] == "within 2 (ways, shots) cells, Fisher z weighted by n - 3"
    pooled = stats.pearsonr(1 + table.leep / np.log(table.ways), table.accuracy).statistic
    assert abs(auto.r[0] - pooled) > 1e-3
    # Within one number of ways the normalised form is affine: same correlation as raw.
    per_ways_norm = correlations(
        table, metrics=["leep"], by=("ways",), methods=["pearson"], n_boot=10, leep="normalised"
    )
    per_ways_raw = correlations(
        table, metrics=["leep"], by=("ways",), methods=["pearson"], n_boot=10
    )
    np.testing.assert_allclose(per_ways_norm.r, per_ways_raw.r)


# --------------------------------------------------------------------------------------------
# Paired comparison
# --------------------------------------------------------------------------------------------


def test_compare_detects_a_clearly_better_metric() -> None:
    table = make_table(n=80, rho=0.8, seed=10)  # leep r = 0.8, nce r = 0.4
    res = compare_metrics(table, "leep", "nce", by=(), n_boot=500)
    row = res.iloc[0]
    assert row.r_a == pytest.approx(stats.pearsonr(table.leep, table.accuracy).statistic)
    assert row.r_b == pytest.approx(stats.pearsonr(table.nce, table.accuracy).statistic)
    assert row.difference == pytest.approx(row.r_a - row.r_b)
    assert row.ci_low > 0 and row.p_value < 0.01
    # The reverse claim is rejected.
    assert compare_metrics(table, "nce", "leep", by=(), n_boot=500).p_value[0] > 0.99


def test_compare_equally_good_metrics_is_not_significant() -> None:
    rng = np.random.default_rng(11)
    z = rng.normal(size=80)
    table = pd.DataFrame(
        {
            "episode": range(80),
            "accuracy": z,
            "leep": z + rng.normal(size=80),
            "nce": z + rng.normal(size=80),
        }
    )
    row = compare_metrics(table, "leep", "nce", by=(), n_boot=500).iloc[0]
    assert row.ci_low < 0 < row.ci_high
    assert 0.05 < row.p_value < 0.95


def test_compare_uses_the_same_resamples_for_both_metrics() -> None:
    table = make_table(n=40, seed=12)
    table["leep_copy"] = table["leep"]
    row = compare_metrics(table, "leep", ["leep_copy"], by=(), method="kendall", n_boot=100).iloc[0]
    # Identical metrics: every replicate difference is exactly 0.
    assert row.difference == 0 and row.ci_low == 0 and row.ci_high == 0
    assert row.p_value == 1.0


def test_compare_several_metrics_per_group_and_undefined_rows() -> None:
    table = make_table(n=30, backbones=("a", "b"), shots=(1,))
    res = compare_metrics(table, "leep", ["nce", "h_score"], n_boot=50)
    assert len(res) == 4 and set(res.backbone) == {"a", "b"}
    h = res[res.metric_b == "h_score"]
    assert h.difference.isna().all() and (h.note == "h_score: constant metric").all()


def test_compare_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match=r"^`method` must be one of \['pearson'"):
        compare_metrics(make_table(n=10), "leep", "nce", method="cosine")


def test_metric_constant_up_to_rounding_has_no_correlation():
    """H-score is exactly C - 1 whenever n - 1 <= d; floating point leaves ~1e-15 of noise,
    which must be reported as a constant metric, not correlated with accuracy."""
    rng = np.random.default_rng(3)
    accuracy = rng.uniform(0.4, 1.0, size=80)
    noise = 4.0 + 4e-15 * rng.standard_normal(80)
    table = pd.DataFrame({"episode": range(80), "h_score": noise, "accuracy": accuracy})
    corr = correlations(table, metrics=["h_score"], by=(), methods=("pearson",), n_boot=20)
    assert np.isnan(corr["r"].iloc[0])
    assert corr["note"].iloc[0] == "constant metric"
