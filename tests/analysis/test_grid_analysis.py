"""The grid's aggregates on small fabricated tables: wins, significance, stability, selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.grid import (
    SETTING,
    analyse_grid,
    count_wins,
    leave_one_out,
    prepare_table,
    resample_stability,
    setting_correlations,
    winners,
)

METRICS = ["leep", "nce", "h_score"]


def _table(episodes: int = 40, seed: int = 0) -> pd.DataFrame:
    """2 targets x 2 sources x 2 transfers, one dummy mode: LEEP tracks accuracy closely and
    NCE loosely, except in (b, y, p) where NCE is the close one; H-score is constant."""
    rng = np.random.default_rng(seed)
    frames = []
    for target in ("a", "b"):
        for backbone in ("x", "y"):
            for adaptation in ("p", "q"):
                acc = rng.uniform(0.3, 0.9, size=episodes)
                close = acc + 0.02 * rng.normal(size=episodes)
                loose = acc + 0.5 * rng.normal(size=episodes)
                swap = (target, backbone, adaptation) == ("b", "y", "p")
                frames.append(
                    pd.DataFrame(
                        {
                            "target": target,
                            "suite": f"suite-{target}",
                            "episode": np.arange(episodes),
                            "ways": 5,
                            "backbone": backbone,
                            "dummy": "d",
                            "adaptation": adaptation,
                            "accuracy": acc,
                            "leep": loose if swap else close,
                            "nce": close if swap else loose,
                            "h_score": 4.0,
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def analysis():
    return analyse_grid(_table(), metrics=METRICS, n_boot=300, seed=0)


def test_correlations_are_scipys_pearson_per_setting():
    table = _table()
    corr = setting_correlations(table, METRICS, n_boot=0)
    for key, frame in table.groupby(list(SETTING)):
        for metric in ("leep", "nce"):
            row = corr[(corr[list(SETTING)] == pd.Series(key, index=list(SETTING))).all(axis=1)]
            r = row[row.metric == metric].r.item()
            assert r == pytest.approx(stats.pearsonr(frame[metric], frame.accuracy)[0], abs=1e-12)
    assert corr[corr.metric == "h_score"].r.isna().all()


def test_wins_counted_by_point_estimate_and_significance(analysis):
    s = analysis.settings.set_index(list(SETTING))
    assert s.loc[("b", "y", "d", "p"), "winner"] == "nce"
    assert (s.drop(("b", "y", "d", "p"))["winner"] == "leep").all()
    # close (noise 0.02) vs loose (noise 0.5) on 40 episodes: every win is significant
    assert s["significant"].all()
    assert (s["p_max"] < 0.05).all()
    wins = analysis.wins.set_index("metric")
    assert wins.loc["leep", ["wins", "significant_wins", "n_settings"]].tolist() == [7, 7, 8]
    assert wins.loc["nce", ["wins", "significant_wins"]].tolist() == [1, 1]
    # a constant metric never competes
    assert wins.loc["h_score", ["wins", "boot_mean", "top_share"]].tolist() == [0, 0.0, 0.0]
    assert analysis.top == ["leep"]


def test_a_tie_wins_for_the_first_metric_and_is_not_significant():
    table = _table()
    table["nce"] = table["leep"]  # identical metrics: equal r in every resample
    a = analyse_grid(table, metrics=METRICS, n_boot=100, seed=0)
    assert (a.settings["winner"] == "leep").all()
    assert not a.settings["significant"].any()
    assert (a.settings["p_max"] == 1.0).all()  # (1 + #{d <= 0}) / (1 + B) with every d = 0


def test_accuracy_summary_per_setting(analysis):
    table = _table()
    table.loc[table.index[:3], "accuracy"] = 1.0  # three episodes of (a, x, p) at 100 %
    a = analyse_grid(table, metrics=["leep"], n_boot=0, seed=0)
    first = a.settings.iloc[0]
    frame = table.groupby(list(SETTING)).get_group(("a", "x", "d", "p"))
    assert first["n_episodes"] == 40
    assert first["acc_mean"] == pytest.approx(frame.accuracy.mean())
    assert first["acc_std"] == pytest.approx(frame.accuracy.std())
    assert first["acc_perfect"] == pytest.approx(3 / 40)


def test_resample_stability_equals_a_naive_loop_over_explicit_resamples():
    from metaleep.analysis.resample import row_weights, unit_codes

    table = _table(episodes=25, seed=3)
    table["nce"] = table["accuracy"] + 0.05 * np.random.default_rng(9).normal(size=len(table))
    corr = setting_correlations(table, METRICS, n_boot=0)
    wide = winners(corr, METRICS)
    wide["significant"] = False
    out, per_metric = resample_stability(table, wide, METRICS, n_boot=60, seed=5)
    # naive: materialise each resample, scipy's pearsonr per metric, argmax
    boot_winners = {}
    for key, frame in table.groupby(list(SETTING)):
        weights = row_weights(unit_codes(frame), 60, 5)
        picks = []
        for w in weights:
            rows = np.repeat(np.arange(len(frame)), w)
            y = frame.accuracy.to_numpy()[rows]
            r = [stats.pearsonr(frame[m].to_numpy()[rows], y)[0] for m in ("leep", "nce")]
            picks.append(("leep", "nce")[int(np.argmax(r))])
        boot_winners[key] = picks
    for row in out.itertuples(index=False):
        key = tuple(getattr(row, c) for c in SETTING)
        expected = np.mean([p == row.winner for p in boot_winners[key]])
        assert row.winner_share == pytest.approx(expected)
    counts = {
        m: [sum(p[b] == m for p in boot_winners.values()) for b in range(60)] for m in METRICS
    }
    for row in per_metric.itertuples(index=False):
        assert row.boot_mean == pytest.approx(np.mean(counts[row.metric]))
        assert row.boot_low == pytest.approx(np.quantile(counts[row.metric], 0.025))


def test_leave_one_out_recounts_without_each_value(analysis):
    lo = analysis.leave_out.set_index(["dimension", "left_out"])
    # without target b: the 4 settings of a, all LEEP's
    assert lo.loc[("target", "b"), ["n_settings", "leep", "nce"]].tolist() == [4, 4, 0]
    assert lo.loc[("target", "a"), ["n_settings", "leep", "nce"]].tolist() == [4, 3, 1]
    assert lo.loc[("source", "x"), ["leep", "nce"]].tolist() == [3, 1]
    assert lo.loc[("transfer", "q"), ["leep", "nce"]].tolist() == [3, 1]
    assert not lo["changed"].any()
    assert "dummy labels" not in lo.index.get_level_values(0)  # one value: nothing to leave out


def test_leave_one_out_flags_a_changed_top():
    s = pd.DataFrame(
        {
            "target": ["a", "a", "b", "c"],
            "backbone": "m",
            "dummy": "d",
            "adaptation": "x",
            "winner": ["leep", "leep", "nce", "nce"],
            "significant": False,
        }
    )
    out = leave_one_out(s, ["leep", "nce"]).set_index("left_out")
    assert out.loc["a", "top"] == "nce" and out.loc["a", "changed"]
    assert out.loc["b", "top"] == "leep" and out.loc["b", "changed"]
    assert count_wins(s, ["leep", "nce"]).wins.tolist() == [2, 2]


def test_selection_per_target_with_native_dummies():
    rng = np.random.default_rng(1)
    rows = []
    for target in ("a", "b"):
        for episode in range(30):
            accs = rng.uniform(size=3)
            for b, acc, dummy in zip(
                ("m", "s", "p"), accs, ("head", "source", "prototypes"), strict=True
            ):
                for d in (dummy, "prototypes") if dummy != "prototypes" else (dummy,):
                    rows.append(
                        {
                            "target": target,
                            "suite": target,
                            "episode": episode,
                            "ways": 5,
                            "backbone": b,
                            "dummy": d,
                            "adaptation": "r",
                            "accuracy": acc,
                            "leep": acc - 1.0,  # ranks the sources exactly
                            "nce": -acc,  # ranks them backwards
                        }
                    )
    a = analyse_grid(pd.DataFrame(rows), metrics=["leep", "nce"], n_boot=50, seed=0)
    sel = a.selection.set_index(["target", "dummy", "metric"])
    assert set(sel.index.get_level_values("dummy")) == {"native", "prototypes"}
    for target in ("a", "b"):
        for dummy in ("native", "prototypes"):
            leep = sel.loc[(target, dummy, "leep")]
            nce = sel.loc[(target, dummy, "nce")]
            assert (leep.hit_rate, leep.tau, leep.regret) == (1.0, 1.0, 0.0)
            assert nce.hit_rate == 0.0 and nce.tau == pytest.approx(-1.0)
            assert leep.n_models == 3


def test_mixed_ways_targets_use_normalised_leep():
    table = _table()
    table.loc[(table.target == "b") & (table.episode % 2 == 0), "ways"] = 20
    out, forms = prepare_table(table)
    assert forms == {"a": "raw", "b": "normalised"}
    b = table.target == "b"
    expected = 1 + table.loc[b, "leep"] / np.log(table.loc[b, "ways"])
    np.testing.assert_allclose(out.loc[b, "leep"], expected)
    np.testing.assert_array_equal(out.loc[~b, "leep"], table.loc[~b, "leep"])


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"got no accuracy, nce\.$"):
        analyse_grid(_table().drop(columns=["accuracy", "nce"]), metrics=["leep", "nce"])
