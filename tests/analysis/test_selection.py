"""Tests of metaleep.analysis.selection: source-model selection by transferability metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.selection import (
    per_episode_selection,
    source_selection,
)

MODELS = ("a", "b", "c", "d")


def make_selection_table(n_episodes: int = 30, *, seed: int = 0) -> pd.DataFrame:
    """Episodes x 4 backbones with distinct accuracies; ``leep`` ranks them exactly, ``nce``
    exactly backwards, ``logme`` at random; two dummy modes."""
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(n_episodes):
        acc = rng.permutation(np.linspace(0.4, 0.9, len(MODELS)))
        noise = rng.normal(size=len(MODELS))
        for dummy in ("head", "source"):
            for model, a, u in zip(MODELS, acc, noise, strict=True):
                rows.append(
                    {
                        "suite": "synthetic",
                        "episode": episode,
                        "backbone": model,
                        "dummy": dummy,
                        "adaptation": "maml",
                        "accuracy": a,
                        "leep": np.log(a),
                        "nce": -a,
                        "logme": u,
                    }
                )
    return pd.DataFrame(rows)


def naive_episode(acc: list[float], score: list[float]) -> tuple[float, float, float]:
    """Expected hit, regret and chance hit of one episode, by enumerating tie-breaks."""
    best = max(acc)
    top = [i for i, s in enumerate(score) if s == max(score)]
    hit = sum(acc[i] == best for i in top) / len(top)
    regret = sum(best - acc[i] for i in top) / len(top)
    chance = sum(a == best for a in acc) / len(acc)
    return hit, regret, chance


def test_perfect_and_reversed_metrics() -> None:
    table = make_selection_table()
    res = source_selection(table, by=("dummy",), n_boot=200)
    assert len(res) == 6 and set(res.dummy) == {"head", "source"}
    leep = res[res.metric == "leep"]
    nce = res[res.metric == "nce"]
    assert (leep.hit_rate == 1).all() and (leep.tau == 1).all() and (leep.regret == 0).all()
    assert (nce.hit_rate == 0).all() and (nce.tau == -1).all()
    assert nce.regret.iloc[0] == pytest.approx(0.5)  # picks the worst: 0.9 - 0.4
    assert (res.chance_hit_rate == 0.25).all()
    # chance regret: 0.9 - mean(linspace(0.4, 0.9, 4)) = 0.25
    np.testing.assert_allclose(res.chance_regret, 0.25)
    assert (res.n_episodes == 30).all() and (res.n_models == 4).all()
    # A metric that ranks perfectly has a degenerate bootstrap interval.
    assert leep.hit_ci_low.iloc[0] == 1 and leep.tau_ci_high.iloc[0] == 1


def test_random_metric_is_near_chance_and_intervals_contain_mean() -> None:
    table = make_selection_table(200, seed=1)
    res = source_selection(table[table.dummy == "head"], metrics=["logme"], by=(), n_boot=300)
    row = res.iloc[0]
    assert row.hit_ci_low <= row.hit_rate <= row.hit_ci_high
    assert row.tau_ci_low <= row.tau <= row.tau_ci_high
    assert row.regret_ci_low <= row.regret <= row.regret_ci_high
    assert row.hit_ci_low < 0.25 < row.hit_ci_high
    assert row.tau_ci_low < 0 < row.tau_ci_high


def test_ties_in_accuracy_and_in_the_metric() -> None:
    acc = [0.8, 0.8, 0.5, 0.6]
    score_cases = {
        "tie_top": [1.0, 0.0, 1.0, 0.0],  # metric ties a best model with a bad one
        "picks_tied_best": [0.0, 2.0, 1.0, 0.5],  # picks b, tied best with a
        "constant": [0.3, 0.3, 0.3, 0.3],  # every model tied
    }
    rows = []
    for metric_name, score in score_cases.items():
        for model, a, s in zip(MODELS, acc, score, strict=True):
            rows.append(
                {"episode": 0, "backbone": model, "accuracy": a, "metric": metric_name, "value": s}
            )
    wide = (
        pd.DataFrame(rows)
        .pivot(index=["episode", "backbone", "accuracy"], columns="metric", values="value")
        .reset_index()
    )
    res = per_episode_selection(wide, metrics=list(score_cases), by=())
    for rec in res.itertuples():
        hit, regret, chance = naive_episode(acc, score_cases[rec.metric])
        assert rec.hit == pytest.approx(hit)
        assert rec.regret == pytest.approx(regret)
        assert rec.chance_hit == pytest.approx(chance) == 0.5
    by_metric = res.set_index("metric")
    assert by_metric.loc["tie_top", "hit"] == 0.5
    assert by_metric.loc["tie_top", "chosen"] == "a;c"
    assert by_metric.loc["picks_tied_best", "hit"] == 1.0
    assert np.isnan(by_metric.loc["constant", "tau"])
    summary = source_selection(wide, metrics=["constant"], by=(), n_boot=10)
    assert summary.note[0] == "weighted tau undefined (constant values) on 1 episodes"


def test_weighted_tau_per_episode_equals_scipy() -> None:
    table = make_selection_table(20, seed=3)
    table["logme"] = np.round(table["logme"], 0)  # ties
    res = per_episode_selection(table, metrics=["logme"], by=("dummy",))
    for rec in res.itertuples():
        sub = table[(table.episode == rec.episode) & (table.dummy == rec.dummy)]
        ref = stats.weightedtau(sub.logme, sub.accuracy).statistic
        np.testing.assert_allclose(rec.tau, ref, atol=1e-12)


def test_missing_scores_skip_models_and_episodes() -> None:
    table = make_selection_table(10)
    table = table[table.dummy == "head"].copy()
    table.loc[(table.episode == 0) & (table.backbone != "a"), "leep"] = np.nan  # 1 model left
    table.loc[(table.episode == 1) & (table.backbone == "a"), "leep"] = np.nan  # 3 models left
    res = source_selection(table, metrics=["leep"], by=(), n_boot=20)
    assert res.n_episodes[0] == 9
    assert res.note[0] == "1 episodes with fewer than 2 scored models skipped"
    per = per_episode_selection(table, metrics=["leep"], by=())
    assert per.loc[per.episode == 1, "n_models"].item() == 3


def test_lower_is_better_metric_is_flipped() -> None:
    table = make_selection_table(10)
    res = source_selection(
        table, metrics=["nce"], by=("dummy",), n_boot=20, higher_is_better={"nce": False}
    )
    assert (res.hit_rate == 1).all() and (res.tau == 1).all()


def test_reproducible_for_a_seed() -> None:
    table = make_selection_table(40, seed=5)
    first = source_selection(table, by=("dummy",), n_boot=100, seed=3)
    pd.testing.assert_frame_equal(first, source_selection(table, by=("dummy",), n_boot=100, seed=3))


def test_fewer_than_two_models_raises() -> None:
    table = make_selection_table(5)
    one = table[table.backbone == "a"]
    with pytest.raises(
        ValueError,
        match=r"^`table` must hold at least 2 models in column 'backbone' in group \('head',\) "
        r"for source selection; got 1\.$",
    ):
        source_selection(one, by=("dummy",))


def test_duplicate_rows_per_episode_and_model_raise() -> None:
    table = make_selection_table(5)
    with pytest.raises(ValueError, match=r"^`table` must have one row per \(episode, model\)"):
        source_selection(table, by=())  # both dummy modes in one group


def test_table_without_episode_column_raises() -> None:
    table = make_selection_table(5).drop(columns="episode")
    with pytest.raises(ValueError, match=r"^`table` must have an 'episode' column"):
        source_selection(table, by=("dummy",))


def test_metric_equal_up_to_rounding_ties_between_models():
    """Scores that differ only by floating-point noise tie: the hit rate is the chance rate."""
    import numpy as np
    import pandas as pd

    from metaleep.analysis.selection import source_selection

    rng = np.random.default_rng(5)
    rows = []
    for episode in range(40):
        for model, acc in (("a", 0.9), ("b", 0.5)):
            noise = 4.0 + 3e-15 * rng.standard_normal()
            rows.append({"episode": episode, "backbone": model, "accuracy": acc, "h_score": noise})
    out = source_selection(pd.DataFrame(rows), metrics=["h_score"], by=(), n_boot=20)
    assert out["hit_rate"].iloc[0] == pytest.approx(0.5)
    assert out["chance_hit_rate"].iloc[0] == pytest.approx(0.5)


def test_static_prior_picks_the_best_model_on_the_other_episodes() -> None:
    # Model b wins episodes 0-2, a wins episode 3. Leave-one-out means: on episodes 0-2 b is
    # best on the others (hit), on episode 3 b too (miss, regret 0.6 - 0.2 = 0.4).
    acc = {"a": [0.5, 0.4, 0.3, 0.6], "b": [0.9, 0.8, 0.7, 0.2]}
    rows = [
        {"episode": e, "backbone": m, "accuracy": acc[m][e], "leep": -float(acc[m][e])}
        for e in range(4)
        for m in ("a", "b")
    ]
    table = pd.DataFrame(rows)
    per = per_episode_selection(table, by=(), static_prior=True)
    prior = per[per.metric == "static_prior"].sort_values("episode")
    assert prior["chosen"].tolist() == ["b", "b", "b", "b"]
    np.testing.assert_allclose(prior["hit"], [1, 1, 1, 0])
    np.testing.assert_allclose(prior["regret"], [0, 0, 0, 0.4], atol=1e-12)
    summary = source_selection(table, by=(), n_boot=50, static_prior=True)
    assert summary["metric"].tolist() == ["leep", "static_prior"]
    row = summary.set_index("metric").loc["static_prior"]
    assert row["hit_rate"] == pytest.approx(0.75)
    assert row["regret"] == pytest.approx(0.1)
    # leep is anti-correlated with accuracy here: it always picks the worse model.
    assert summary.set_index("metric").loc["leep", "hit_rate"] == pytest.approx(0.0)
    # Off by default: the tables keep their rows.
    assert "static_prior" not in set(source_selection(table, by=(), n_boot=10)["metric"])


def test_static_prior_ties_are_split() -> None:
    # Equal mean accuracies on the other episodes: the pick is split evenly.
    rows = [
        {"episode": e, "backbone": m, "accuracy": a, "leep": 0.0}
        for e, pair in enumerate([(0.3, 0.7), (0.4, 0.6), (0.6, 0.4)])
        for m, a in zip(("a", "b"), pair, strict=True)
    ]
    per = per_episode_selection(pd.DataFrame(rows), by=(), static_prior=True)
    prior = per[per.metric == "static_prior"].sort_values("episode")
    np.testing.assert_allclose(prior["hit"], [0.5, 1.0, 0.0])


def test_a_pick_that_never_varies_is_flagged_and_a_perpetual_tie_is_not() -> None:
    rng = np.random.default_rng(11)
    acc = rng.uniform(size=(20, 3))
    t = pd.DataFrame(
        {
            "episode": np.repeat(np.arange(20), 3),
            "backbone": np.tile(["a", "b", "c"], 20),
            "accuracy": acc.ravel(),
            "leep": np.tile([5.0, 1.0, 0.0], 20) + 0.1 * acc.ravel(),  # always "a"
            "nce": acc.ravel(),  # follows accuracy: varies
            "h_score": 4.0,  # ties every model: no choice at all
        }
    )
    s = source_selection(t, by=(), n_boot=0, static_prior=True).set_index("metric")
    assert s.loc["leep", "constant_choice"] and s.loc["leep", "top_choice"] == "a"
    assert s.loc["leep", "top_choice_share"] == 1.0
    assert not s.loc["nce", "constant_choice"] and s.loc["nce", "top_choice_share"] < 1.0
    assert not s.loc["h_score", "constant_choice"] and s.loc["h_score", "top_choice"] == "a;b;c"
