"""Tests of metaleep.analysis.study: one analysis object holding all a study's report shows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from metaleep.analysis.baseline import baseline_tests, verdict
from metaleep.analysis.correlations import compare_metrics, correlations
from metaleep.analysis.study import StudyAnalysis, analyse_study, constant_metrics


def study_table(
    n_episodes: int = 30,
    *,
    backbones: tuple[str, ...] = ("conv4", "resnet12"),
    ways: tuple[int, ...] = (5,),
    shots: tuple[int, ...] = (1, 5),
    seed: int = 0,
) -> pd.DataFrame:
    """A small study table shaped like the runner's: LEEP tracks accuracy, the baseline
    less so, H-score constant on 1-shot episodes."""
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(n_episodes):
        w = ways[episode % len(ways)]
        s = shots[(episode // len(ways)) % len(shots)]
        hardness = rng.normal()
        for i, backbone in enumerate(backbones):
            quality = -hardness + 0.5 * i + 0.3 * rng.normal()
            accuracy = 1.0 / (1.0 + np.exp(-quality))
            leep = -np.log(w) / (1.0 + np.exp(quality + 0.3 * rng.normal()))
            rows.append(
                {
                    "suite": "toy", "episode": episode, "ways": w, "shots": s,
                    "within_alphabet": bool(episode % 2), "backbone": backbone,
                    "dummy": "head", "adaptation": "maml", "leep": leep,
                    "nce": leep + 0.3 * rng.normal(),
                    "h_score": float(w - 1) if s == 1 else 2.0 + quality + rng.normal(),
                    "centroid_loo": accuracy + 0.3 * rng.normal(),
                    "accuracy": accuracy, "support_loss": 0.1, "start_logit_std": 0.5,
                    "seconds_metrics": 0.01,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def analysed() -> tuple[pd.DataFrame, StudyAnalysis]:
    table = study_table(ways=(5, 20))
    return table, analyse_study(table, config={"seed": 1}, n_boot=80, seed=4)


def test_every_frame_is_the_analysis_functions_output(analysed):
    table, a = analysed
    by = ["backbone", "dummy", "adaptation"]
    assert a.by == tuple(by) and a.leep_form == "normalised" and a.mixed_ways
    assert a.metrics == ("leep_norm", "nce", "h_score", "centroid_loo")
    orientation = {"leep_norm": True, "nce": True, "h_score": True, "centroid_loo": True}
    corr = correlations(
        table, metrics=["leep", "nce", "h_score", "centroid_loo"], by=by, n_boot=80, seed=4,
        leep="normalised", higher_is_better=orientation,
    )  # fmt: skip
    pd.testing.assert_frame_equal(a.correlations, corr)
    tests = baseline_tests(a.table, metrics=list(a.metrics), by=by, n_boot=80, seed=4)
    pd.testing.assert_frame_equal(a.baseline_tests, tests)
    pd.testing.assert_frame_equal(a.verdict, verdict(corr, tests))
    comp = compare_metrics(a.table, "leep_norm", ["nce", "h_score", "centroid_loo"], by=by,
                           n_boot=80, seed=4)  # fmt: skip
    pd.testing.assert_frame_equal(a.comparisons, comp)
    assert sorted(a.per_group) == ["shots", "ways", "within_alphabet"]
    assert a.per_group["ways"]["ways"].unique().tolist() == [5, 20]
    assert a.accuracy is not None and a.accuracy["episodes"].tolist() == [30, 30]
    assert a.config == {"seed": 1} and a.n_episodes == 30
    assert a.timings is not None and a.timings["seconds_metrics"].tolist() == [0.01, 0.01]


def test_best_metric_and_baseline_in_the_verdict(analysed):
    _, a = analysed
    pearson = a.correlations[a.correlations["method"] == "pearson"]
    for rec in a.verdict.to_dict("records"):
        rows = pearson[
            (pearson["backbone"] == rec["backbone"]) & (pearson["metric"] != "centroid_loo")
        ]
        best = rows.loc[rows["r"].idxmax()]
        assert rec["best"] == best["metric"] and rec["r"] == best["r"]
        assert rec["baseline"] == "centroid_loo"


def test_selection_findings_and_constant_metrics():
    one = study_table(backbones=("conv4",), shots=(1,))
    a = analyse_study(one, n_boot=30)
    assert a.selection is None and a.selection_note == ""
    assert a.constant_metrics == ("h_score",)
    assert a.findings == (
        "H-score is constant on the 1-shot episodes of 1 of 1 groups: its correlation there is "
        "undefined (reported as n/a).",
        "NCE takes at most 30 distinct values per group on the 1-shot episodes.",
    )
    assert a.leep_form == "raw" and "leep" in a.metrics
    two = analyse_study(study_table(), n_boot=30)
    assert two.selection is not None
    assert set(two.selection["metric"]) == {
        "leep",
        "nce",
        "h_score",
        "centroid_loo",
        "static_prior",
    }


def test_without_a_baseline():
    table = study_table().drop(columns="centroid_loo")
    a = analyse_study(table, n_boot=30)
    assert a.baseline is None and a.baseline_tests is None
    assert a.verdict["baseline"].tolist() == ["", ""]
    assert not a.verdict["beats"].any()


def test_row_order_does_not_change_the_analysis():
    table = study_table(seed=2)
    shuffled = table.sample(frac=1.0, random_state=5).reset_index(drop=True)
    a, b = analyse_study(table, n_boot=40, seed=9), analyse_study(shuffled, n_boot=40, seed=9)
    pd.testing.assert_frame_equal(a.correlations, b.correlations)
    pd.testing.assert_frame_equal(a.verdict, b.verdict)
    pd.testing.assert_frame_equal(a.baseline_tests, b.baseline_tests)


def test_write_stores_every_table(tmp_path, analysed):
    _, a = analysed
    written = a.write(tmp_path)
    assert sorted(p.name for p in written) == [
        "accuracy.csv", "analysis.json", "baseline_tests.csv", "comparisons.csv",
        "correlations.csv", "correlations_by_shots.csv", "correlations_by_ways.csv",
        "correlations_by_within_alphabet.csv", "selection.csv", "verdict.csv",
    ]  # fmt: skip
    meta = json.loads((tmp_path / "analysis.json").read_text())
    assert meta["leep_form"] == "normalised" and meta["baseline"] == "centroid_loo"
    assert meta["baseline_comparisons"] == a.baseline_tests.attrs["n_comparisons"]
    back = pd.read_csv(tmp_path / "verdict.csv")
    assert back["best"].tolist() == a.verdict["best"].tolist()


def test_constant_metrics_by_hand():
    t = pd.DataFrame({"g": [0, 0, 1, 1], "a": [1.0, 1.0, 2.0, 2.0], "b": [1.0, 2.0, 3.0, 3.0]})
    assert constant_metrics(t, ["a", "b"], ["g"]) == ["a"]
    assert constant_metrics(t, ["a", "b"], []) == []


def test_bad_arguments():
    table = study_table(4)
    with pytest.raises(TypeError, match=r"^`config` must be a mapping; got 'list'\.$"):
        analyse_study(table, config=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^`target` must be a column of `table`; got 'acc'\.$"):
        analyse_study(table, target="acc")
    with pytest.raises(TypeError, match=r"^`table` must be a pandas DataFrame; got 'dict'\.$"):
        analyse_study({})  # type: ignore[arg-type]
    # within-cell r needs >= 4 episodes a cell: 16 episodes give 8 per (ways, shots) cell
    assert math.isfinite(analyse_study(study_table(16), n_boot=0).correlations["r"].iloc[0])
