"""Tests of metaleep.analysis.baseline: each metric against the free baseline, familywise."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.baseline import baseline_tests, max_t_p_values, verdict
from metaleep.analysis.correlations import compare_metrics, correlations
from metaleep.analysis.resample import generator, resample_counts


def make_table(n: int = 40, *, seed: int = 0, groups: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    """Two groups on the same episodes: ``good`` tracks accuracy better than the baseline,
    ``poor`` worse, ``flat`` is constant in group b."""
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(n):
        for g in groups:
            acc = rng.normal()
            rows.append(
                {
                    "episode": episode,
                    "group": g,
                    "accuracy": acc,
                    "good": acc + 0.3 * rng.normal(),
                    "poor": acc + 3.0 * rng.normal(),
                    "flat": 1.0 if g == "b" else rng.normal(),
                    "centroid_loo": acc + 1.0 * rng.normal(),
                }
            )
    return pd.DataFrame(rows)


def naive_replicates(
    x: np.ndarray, b: np.ndarray, y: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """r(x*, y*) - r(b*, y*) on explicitly resampled arrays, one episode per row, drawn as
    the engine draws (the same generator and counts)."""
    counts = resample_counts(generator(seed), len(y), n_boot)
    out = np.empty(n_boot)
    for k in range(n_boot):
        idx = np.repeat(np.arange(len(y)), counts[k])
        out[k] = stats.pearsonr(x[idx], y[idx]).statistic - stats.pearsonr(b[idx], y[idx]).statistic
    return out


def naive_max_t(d: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """The single-step studentized max-T adjusted p-value from its definition, by loops."""
    se = [np.std(row, ddof=1) for row in reps]
    out = []
    for i in range(len(d)):
        exceed = 0
        for b in range(reps.shape[1]):
            largest = max((reps[j, b] - d[j]) / se[j] for j in range(len(d)))
            exceed += largest >= d[i] / se[i]
        out.append((1 + exceed) / (1 + reps.shape[1]))
    return np.array(out)


def test_against_a_naive_bootstrap_and_max_t():
    table = make_table()
    out = baseline_tests(table, metrics=["good", "poor"], by=["group"], n_boot=200, seed=3)
    assert out[["group", "metric"]].values.tolist() == [
        ["a", "good"],
        ["a", "poor"],
        ["b", "good"],
        ["b", "poor"],
    ]
    reps, diffs = [], []
    for rec in out.to_dict("records"):
        rows = table[table["group"] == rec["group"]]
        x, b, y = (rows[c].to_numpy() for c in (rec["metric"], "centroid_loo", "accuracy"))
        d = stats.pearsonr(x, y).statistic - stats.pearsonr(b, y).statistic
        boot = naive_replicates(x, b, y, 200, 3)
        low, high = np.quantile(boot, [0.025, 0.975])
        np.testing.assert_allclose(
            [rec["difference"], rec["ci_low"], rec["ci_high"]], [d, low, high], atol=1e-9
        )
        assert rec["p_value"] == pytest.approx((1 + (boot <= 0).sum()) / 201)
        reps.append(boot)
        diffs.append(d)
    expected = naive_max_t(np.array(diffs), np.array(reps))
    np.testing.assert_allclose(out["p_adjusted"], expected)
    assert out["beats"].tolist() == list(expected < 0.05)
    assert out["beats"].tolist() == [True, False, True, False]


def test_equals_compare_metrics_on_each_row():
    table = make_table(seed=1)
    out = baseline_tests(table, metrics=["good", "poor"], by=["group"], n_boot=150, seed=7)
    for metric in ("good", "poor"):
        comp = compare_metrics(table, metric, "centroid_loo", by=["group"], n_boot=150, seed=7)
        mine = out[out["metric"] == metric].reset_index(drop=True)
        for col in ("difference", "ci_low", "ci_high", "p_value"):
            np.testing.assert_allclose(mine[col], comp[col], err_msg=col)


def test_max_t_by_hand():
    # one row: p = (1 + #{(d* - d)/se >= d/se}) / (1 + B) = (1 + #{d* >= 2 d}) / (1 + B)
    reps = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    assert max_t_p_values([1.5], reps)[0] == pytest.approx((1 + 2) / 6)  # 3.0 and 4.0
    # a row whose replicates do not vary carries no evidence: p = 1; a NaN estimate: no test
    p = max_t_p_values([0.2, math.nan], np.array([[0.2] * 5, [1.0] * 5]))
    assert p[0] == 1.0 and math.isnan(p[1])
    # no replicates: no test
    assert math.isnan(max_t_p_values([0.2], np.empty((1, 0)))[0])


def test_max_t_more_rows_never_lower_a_p_value():
    rng = np.random.default_rng(0)
    d = rng.normal(size=6)
    reps = d[:, None] + rng.normal(size=(6, 300))
    few = max_t_p_values(d[:3], reps[:3])
    many = max_t_p_values(d, reps)
    assert np.all(many[:3] >= few - 1e-12)
    # an identical copy of a row leaves every p-value as it was (one distinct comparison)
    doubled = max_t_p_values(np.r_[d, d[:1]], np.vstack([reps, reps[:1]]))
    np.testing.assert_allclose(doubled[:6], many)


def test_max_t_holds_the_familywise_error_rate():
    """Ten true nulls with bootstrap-like replicates: the chance of any rejection at 5 % stays
    near 5 % (one-at-a-time tests would reject somewhere about 40 % of the time)."""
    rng = np.random.default_rng(11)
    any_adjusted = any_raw = 0
    sims = 300
    for _ in range(sims):
        d = rng.normal(size=10)  # estimates of ten parameters that are all 0
        reps = d[:, None] + rng.normal(size=(10, 399))
        any_adjusted += bool((max_t_p_values(d, reps) < 0.05).any())
        any_raw += bool((((reps <= 0).sum(axis=1) + 1) / 400 < 0.05).any())
    assert any_adjusted / sims < 0.09
    assert any_raw / sims > 0.25


def test_undefined_rows_are_said_and_left_out():
    table = make_table()
    out = baseline_tests(table, metrics=["good", "flat"], by=["group"], n_boot=50)
    flat_b = out[(out["group"] == "b") & (out["metric"] == "flat")].iloc[0]
    assert math.isnan(flat_b["difference"]) and math.isnan(flat_b["p_adjusted"])
    assert flat_b["note"] == "flat: constant metric" and not flat_b["beats"]
    # the same data analysed twice counts once
    assert out.attrs["n_comparisons"] == 3
    twice = pd.concat([table, table.assign(group=table["group"] + "2")])
    assert (
        baseline_tests(twice, metrics=["good"], by=["group"], n_boot=50).attrs["n_comparisons"] == 2
    )


def test_bad_arguments():
    table = make_table(8)
    with pytest.raises(ValueError, match=r"^`alpha` must be in \(0, 1\); got 1\.5\.$"):
        baseline_tests(table, metrics=["good"], by=["group"], alpha=1.5)
    with pytest.raises(ValueError, match=r"^`metrics` must be columns of `table`; got \['x'\]"):
        baseline_tests(table, metrics=["good"], baseline="x", by=["group"])


def test_verdict_picks_the_highest_r_and_reads_the_test():
    table = make_table()
    corr = correlations(
        table, metrics=["poor", "good", "centroid_loo"], by=["group"], methods=["pearson"]
    )
    tests = baseline_tests(table, metrics=["poor", "good"], by=["group"], n_boot=200)
    out = verdict(corr, tests)
    assert out["group"].tolist() == ["a", "b"]
    assert out["best"].tolist() == ["good", "good"]
    good = corr[(corr["metric"] == "good") & (corr["group"] == "a")].iloc[0]
    assert out.loc[0, "r"] == good["r"] and out.loc[0, "ci_low"] == good["ci_low"]
    base = corr[(corr["metric"] == "centroid_loo") & (corr["group"] == "a")].iloc[0]
    assert out.loc[0, "baseline_r"] == base["r"]
    row = tests[(tests["group"] == "a") & (tests["metric"] == "good")].iloc[0]
    assert out.loc[0, "difference"] == row["difference"]
    assert out.loc[0, "p_adjusted"] == row["p_adjusted"] and out.loc[0, "beats"]


def test_verdict_when_no_metric_or_no_baseline_has_an_r():
    corr = pd.DataFrame(
        {
            "group": ["a", "a", "b", "b"],
            "metric": ["flat", "centroid_loo"] * 2,
            "method": "pearson",
            "n_episodes": 10,
            "r": [math.nan, 0.3, 0.5, math.nan],
            "ci_low": [math.nan, 0.1, 0.4, math.nan],
            "ci_high": [math.nan, 0.5, 0.6, math.nan],
            "note": ["constant metric", "", "", "constant metric"],
        }
    )
    corr.attrs["by"] = ["group"]
    out = verdict(corr, None).set_index("group")
    assert out.loc["a", "best"] == "" and out.loc["a", "note"] == (
        "no metric has a correlation here (constant metric)"
    )
    assert out.loc["b", "best"] == "flat" and out.loc["b", "note"] == (
        "centroid_loo: constant metric"
    )
    assert not out["beats"].any()
    # without a baseline column the baseline fields stay empty
    alone = verdict(corr[corr["metric"] == "flat"], None, baseline="centroid_loo")
    assert alone["baseline"].tolist() == ["", ""] and alone["baseline_r"].isna().all()
