"""The grid's aggregates on small fabricated tables: wins, significance, stability, selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.grid import (
    analyse_grid,
    count_wins,
    leave_one_out,
    prepare_table,
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
    corr = analyse_grid(table, metrics=METRICS, n_boot=0).correlations
    corr = corr[corr.method == "pearson"]
    for (target, backbone, adaptation), frame in table.groupby(
        ["target", "backbone", "adaptation"]
    ):
        rows = corr[(corr.target == target) & (corr.backbone == backbone)]
        rows = rows[rows.adaptation == adaptation].set_index("metric")
        for metric in ("leep", "nce"):
            expected = stats.pearsonr(frame[metric], frame.accuracy)[0]
            assert rows.loc[metric, "r"] == pytest.approx(expected, abs=1e-12)
    assert corr[corr.metric == "h_score"].r.isna().all()
    assert (corr[corr.metric == "h_score"].note == "constant metric").all()


def test_wins_counted_by_point_estimate_and_significance(analysis):
    s = analysis.settings.set_index(["target", "backbone", "adaptation"])
    assert s.loc[("b", "y", "p"), "winner"] == "nce"
    assert (s.drop(("b", "y", "p"))["winner"] == "leep").all()
    # close (noise 0.02) vs loose (noise 0.5) on 40 episodes: every win is significant
    assert s["significant"].all()
    assert (s["p_winner"] < 0.05).all() and (s["q_winner"] <= 0.05).all()
    # H-score is constant: undefined in every setting, and said so
    assert (s["undefined"] == "h_score").all() and (s["n_competing"] == 2).all()
    wins = analysis.wins.set_index("metric")
    assert wins.loc["leep", ["wins", "significant_wins", "n_settings"]].tolist() == [7, 7, 8]
    assert wins.loc["nce", ["wins", "significant_wins"]].tolist() == [1, 1]
    assert wins.loc["h_score", ["wins", "undefined", "boot_mean", "top_share"]].tolist() == [
        0,
        8,
        0.0,
        0.0,
    ]
    assert analysis.top == ["leep"]


def test_a_tie_wins_for_the_first_metric_and_is_not_significant():
    table = _table()
    table["nce"] = table["leep"]  # identical metrics: equal r in every resample
    a = analyse_grid(table, metrics=METRICS, n_boot=100, seed=0)
    assert (a.settings["winner"] == "leep").all()
    assert not a.settings["significant"].any()
    assert (a.settings["p_winner"] == 1.0).all()  # two-sided: 2 (1 + B) / (1 + B), capped at 1


def test_accuracy_summary_per_setting(analysis):
    table = _table()
    table.loc[table.index[:3], "accuracy"] = 1.0  # three episodes of (a, x, p) at 100 %
    a = analyse_grid(table, metrics=["leep"], n_boot=0, seed=0)
    first = a.settings.iloc[0]
    frame = table.groupby(["target", "backbone", "adaptation"]).get_group(("a", "x", "p"))
    assert first["n_episodes"] == 40 and first["n_seeds"] == 1
    assert first["acc_mean"] == pytest.approx(frame.accuracy.mean())
    assert first["acc_std"] == pytest.approx(frame.accuracy.std())
    assert first["acc_perfect"] == pytest.approx(3 / 40)


def test_winner_share_and_win_counts_equal_explicit_resamples():
    from metaleep.analysis.grid import _block_seed
    from metaleep.analysis.resample import generator, resample_counts

    table = _table(episodes=25, seed=3)
    table["nce"] = table["accuracy"] + 0.05 * np.random.default_rng(9).normal(size=len(table))
    a = analyse_grid(table, metrics=METRICS, n_boot=60, seed=5)
    boot_winners = {}
    for (target, backbone, adaptation), frame in table.groupby(
        ["target", "backbone", "adaptation"]
    ):
        counts = resample_counts(generator(_block_seed(5, target, ">=2-shot")), 25, 60)
        picks = []
        for c in counts:
            rows = np.repeat(frame.episode.to_numpy(), c[frame.episode.to_numpy()])
            part = frame.set_index("episode").loc[rows]
            r = [stats.pearsonr(part[m], part.accuracy)[0] for m in ("leep", "nce")]
            picks.append(("leep", "nce")[int(np.argmax(r))])
        boot_winners[target, backbone, adaptation] = picks
    for row in a.settings.itertuples(index=False):
        picks = boot_winners[row.target, row.backbone, row.adaptation]
        assert row.winner_share == pytest.approx(np.mean([p == row.winner for p in picks]))
    counts = {
        m: [sum(p[b] == m for p in boot_winners.values()) for b in range(60)] for m in METRICS
    }
    for row in a.wins.itertuples(index=False):
        assert row.boot_mean == pytest.approx(np.mean(counts[row.metric]))
        assert row.boot_low == pytest.approx(np.quantile(counts[row.metric], 0.025))


def test_identical_comparisons_count_once():
    """Two dummy modes that change only LEEP: NCE's comparisons repeat exactly."""
    table = _table()
    other = table.copy()
    other["dummy"] = "e"
    other["leep"] = other["leep"] + 0.001 * np.random.default_rng(2).normal(size=len(other))
    both = pd.concat([table, other], ignore_index=True)
    a = analyse_grid(both, metrics=METRICS, n_boot=200, seed=0)
    wins = a.wins.set_index("metric")
    nce_wins = int((a.settings.winner == "nce").sum())
    assert nce_wins == 2 and wins.loc["nce", "distinct_wins"] == 1
    assert wins.loc["leep", "distinct_wins"] == wins.loc["leep", "wins"]  # LEEP differs
    counts = a.counts.set_index("regime").loc["all"]
    assert counts.n_settings == 16 and counts.n_distinct_accuracy == 8 and counts.n_targets == 2
    # the same accuracy under both dummy modes, a different competition (LEEP moved)
    s = a.settings
    assert s.groupby("accuracy_id").size().eq(2).all()
    assert counts.n_distinct_tests == 16


def test_duplicated_tests_count_once_in_benjamini_hochberg():
    table = _table()
    copy = table.assign(dummy="e")  # every metric the same: the very same tests
    a = analyse_grid(pd.concat([table, copy], ignore_index=True), metrics=METRICS, n_boot=300)
    counts = a.counts.set_index("regime").loc["all"]
    assert counts.n_tests == 16 and counts.n_distinct_tests == 8
    single = analyse_grid(table, metrics=METRICS, n_boot=300)
    np.testing.assert_allclose(
        a.settings[a.settings.dummy == "d"].q_winner.to_numpy(), single.settings.q_winner
    )


def test_regimes_split_a_mixed_target_and_each_counts_apart():
    table = _table()
    table["shots"] = np.where(table.episode < 20, 1, 5)
    table.loc[table.shots == 1, "nce"] = 0.0  # a label-using baseline: constant at 1 shot
    a = analyse_grid(table, metrics=METRICS, n_boot=100, seed=0)
    assert set(a.settings.regime) == {"1-shot", ">=2-shot"}
    assert len(a.settings) == 16
    one = a.wins_by_regime[a.wins_by_regime.regime == "1-shot"].set_index("metric")
    assert one.loc["nce", "undefined"] == 8 and one.loc["leep", "wins"] == 8
    assert a.counts.set_index("regime").loc["1-shot", "mean_competing"] == 1.0
    # one competitor: a winner, but nothing to test
    assert a.settings[a.settings.regime == "1-shot"].p_winner.isna().all()


def test_seeds_are_replicates_with_their_share_of_the_interval():
    table = _table(episodes=30)
    rng = np.random.default_rng(4)
    seeds = []
    for s in range(3):
        part = table.copy()
        part["seed"] = s
        part["leep"] = part["leep"] + 0.05 * s * rng.normal(size=len(part))
        seeds.append(part)
    a = analyse_grid(pd.concat(seeds, ignore_index=True), metrics=METRICS, n_boot=300, seed=0)
    assert (a.settings.n_seeds == 3).all() and a.seeds == [0, 1, 2]
    assert a.settings["seed_share_leep"].between(0, 1).all()
    pearson = a.correlations[a.correlations.method == "pearson"]
    assert (pearson[pearson.metric == "leep"].combination.str.contains("3 training seeds")).all()


def test_rank_coefficients_side_by_side(analysis):
    rob = analysis.robustness.set_index(["regime", "metric"])
    assert rob.loc[("all", "leep")].tolist() == [7, 7, 7]
    assert set(analysis.correlations.method) == {"pearson", "spearman", "kendall"}


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
    assert "static_prior" in set(sel.index.get_level_values("metric"))
    # LEEP follows accuracy, which is drawn anew per episode: its pick varies
    assert not sel.loc[("a", "native", "leep")].constant_choice
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


def test_the_breakdown_by_cell():
    table = _table()
    table["ways"] = np.where(table.episode % 2 == 0, 5, 20)
    table["shots"] = 5
    a = analyse_grid(table, metrics=METRICS, n_boot=0, seed=0)
    cells = a.cells.set_index(["target", "backbone", "adaptation", "ways", "metric"])
    for (target, backbone, adaptation, ways), part in table.groupby(
        ["target", "backbone", "adaptation", "ways"]
    ):
        row = cells.loc[(target, backbone, adaptation, ways, "leep")]
        assert row.n == len(part) == 20
        assert row.r == pytest.approx(stats.pearsonr(part.leep, part.accuracy)[0])
        assert np.isnan(cells.loc[(target, backbone, adaptation, ways, "h_score")].r)
    # the setting's r combines the two cells, never pools them
    s = a.settings.set_index(["target", "backbone", "adaptation"]).loc[("a", "x", "p")]
    z = [np.arctanh(cells.loc[("a", "x", "p", w, "leep")].r) for w in (5, 20)]
    assert s.r_leep == pytest.approx(np.tanh(np.mean(z)))


def test_a_setting_is_judged_on_the_cells_it_has():
    """MAML's 5-way head on a mixed-ways target: its settings cover the 5-way cells only."""
    table = _table()
    table["ways"] = np.where(table.episode % 2 == 0, 5, 20)
    table["shots"] = 5
    head = (table.backbone == "x") & (table.ways == 20)
    a = analyse_grid(table[~head], metrics=METRICS, n_boot=50, seed=0)
    s = a.settings.set_index(["target", "backbone", "adaptation"])
    assert (s.loc[("a", "x")].n_cells == 1).all() and (s.loc[("a", "y")].n_cells == 2).all()
    assert (s["winner"] != "").all() and (s["n_competing"] == 2).all()
