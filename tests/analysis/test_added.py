"""R^2 added over controls and baselines, against scikit-learn's regression on one-hot designs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from metaleep.analysis.added import added_r2, r_squared


def _table(seed: int = 0, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = pd.DataFrame(
        {
            "target": np.repeat(["a", "b"], n // 2),
            "ways": rng.choice([5, 20], size=n),
            "shots": rng.choice([1, 5], size=n),
            "backbone": rng.choice(["maml", "protonet"], size=n),
            "adaptation": rng.choice(["anil", "prototype"], size=n),
            "seed": rng.integers(0, 3, size=n),
            "centroid_loo": rng.normal(size=n),
            "cosine_spread": rng.normal(size=n),
        }
    )
    design = 0.2 * t.shots - 0.01 * t.ways + 0.3 * (t.backbone == "maml")
    t["accuracy"] = design + 0.5 * t.cosine_spread + rng.normal(size=n)
    t["leep"] = t.accuracy + 2.0 * rng.normal(size=n)
    t["h_score"] = t.ways - 1.0  # constant within each cell
    return t


def _sklearn_r2(frame: pd.DataFrame, columns: list[str]) -> float:
    parts = [
        pd.get_dummies(frame[cols].astype(str).agg("|".join, axis=1), drop_first=True)
        for cols in (["ways", "shots"], ["backbone", "adaptation"], ["backbone", "seed"])
    ]
    x = pd.concat([*parts, frame[columns]], axis=1).to_numpy(dtype=float)
    model = LinearRegression().fit(x, frame.accuracy)
    return float(model.score(x, frame.accuracy))


def test_matches_a_regression_on_one_hot_controls() -> None:
    t = _table()
    out = added_r2(t, ["leep", "cosine_spread", "h_score"]).set_index(["target", "metric"])
    for target, part in t.groupby("target"):
        controls = _sklearn_r2(part, [])
        row = out.loc[(target, "leep")]
        assert row.r2_controls == pytest.approx(controls, abs=1e-10)
        assert row.added_over_controls == pytest.approx(
            _sklearn_r2(part, ["leep"]) - controls, abs=1e-10
        )
        base = _sklearn_r2(part, ["centroid_loo", "cosine_spread"])
        assert row.r2_baselines == pytest.approx(base, abs=1e-10)
        assert row.added_over_baselines == pytest.approx(
            _sklearn_r2(part, ["leep", "centroid_loo", "cosine_spread"]) - base, abs=1e-10
        )
        # a baseline is compared with the other baseline only
        spread = out.loc[(target, "cosine_spread")]
        assert spread.baselines == "centroid_loo"
        # constant within every cell: nothing over the cell's fixed effect
        assert abs(out.loc[(target, "h_score")].added_over_controls) < 1e-10


def test_properties() -> None:
    t = _table(1)
    out = added_r2(t, ["leep"], by=())
    row = out.iloc[0]
    assert 0 <= row.r2_controls <= row.r2_metric <= 1
    assert 0 <= row.r2_baselines <= row.r2_all <= 1
    # the label-free baseline carries part of the signal here, so LEEP adds less over it
    assert row.added_over_baselines < row.added_over_controls
    # invariant to the metric's scale and sign
    flipped = t.assign(leep=-3.0 * t.leep + 7.0)
    assert added_r2(flipped, ["leep"], by=()).added_over_controls[0] == pytest.approx(
        row.added_over_controls
    )


def test_non_finite_rows_and_constant_accuracy() -> None:
    t = _table(2)
    t.loc[:9, "leep"] = np.nan
    out = added_r2(t, ["leep"], by=())
    assert out.n[0] == len(t) - 10 and out.note[0] == "10 rows with non-finite scores left out"
    flat = t.assign(accuracy=1.0)
    res = added_r2(flat, ["leep"], by=())
    assert math.isnan(res.added_over_controls[0]) and res.note[0] == "constant accuracy"


def test_r_squared_hand_case() -> None:
    assert r_squared([1.0, 2.0, 3.0], [[1.0], [2.0], [3.0]]) == pytest.approx(1.0)
    assert r_squared([0.0, 0.0, 1.0, 1.0], [[0.0], [1.0], [0.0], [1.0]]) == pytest.approx(0.0)
    # y = 1, 2, 3, 5 on x = 0..3: slope 1.3, residuals 0.2, -0.1, -0.4, 0.3 -> RSS 0.3, TSS 8.75
    assert r_squared([1.0, 2.0, 3.0, 5.0], [[0.0], [1.0], [2.0], [3.0]]) == pytest.approx(
        1 - 0.3 / 8.75
    )
    assert math.isnan(r_squared([1.0, 1.0, 1.0], [[1.0], [2.0], [3.0]]))
