"""Tests of metaleep.analysis.accuracy: the accuracy of each adaptation and its convergence."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from metaleep.analysis.accuracy import accuracy_notes, accuracy_table, settings_text


def make_adapted_table(n_episodes: int = 30, seed: int = 3) -> pd.DataFrame:
    """Three backbones, two dummy modes, several adaptations (the runner's columns): anil
    converged, maml stuck near log 5 on every third episode, h_score constant."""
    rng = np.random.default_rng(seed)
    plan = {
        "maml": (("head", "prototypes"), ("anil", "maml", "retrain_head", "prototype")),
        "protonet": (("prototypes",), ("retrain_head", "prototype")),
        "supervised": (("source", "prototypes"), ("retrain_head", "prototype")),
    }
    rows = []
    for episode in range(n_episodes):
        hardness = rng.normal()
        for backbone, (dummies, adaptations) in plan.items():
            for adaptation in adaptations:
                accuracy = round(float(np.clip(0.9 - 0.05 * hardness, 0, 1)) * 75) / 75
                stuck = adaptation == "maml" and episode % 3 == 0
                support_loss = 1.55 if stuck else 0.05 * (1 + rng.random())
                start = {"anil": 0.45, "maml": 0.4, "retrain_head": 0.0}.get(adaptation, np.nan)
                for dummy in dummies:
                    leep = -1.0 - 0.1 * hardness + 0.05 * rng.normal()
                    rows.append(
                        {
                            "suite": "toy", "episode": episode, "ways": 5, "shots": 5,
                            "backbone": backbone, "dummy": dummy, "adaptation": adaptation,
                            "leep": leep, "nce": leep + 0.1 * rng.normal(), "h_score": 4.0,
                            "logme": rng.normal(), "accuracy": accuracy if episode else 1.0,
                            "loss": 0.3, "support_loss": support_loss, "start_logit_std": start,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_accuracy_table_by_hand() -> None:
    table = pd.DataFrame(
        {
            "episode": [0, 1, 2, 0, 1, 2, 0, 1, 2],
            "backbone": "b",
            "dummy": "head",
            "adaptation": ["anil"] * 3 + ["maml"] * 3 + ["prototype"] * 3,
            "ways": 5,
            "accuracy": [1.0, 0.6, 0.8, 0.2, 0.4, 0.6, 1.0, 1.0, 0.7],
            "support_loss": [0.1, 0.2, 0.3, 1.0, 0.5, 0.9, 2.0, 2.0, 2.0],
            "start_logit_std": [0.5, 0.5, 0.5, 0.4, 0.4, 0.4, np.nan, np.nan, np.nan],
        }
    )
    # a second dummy mode repeats the rows: counted once
    doubled = pd.concat([table, table.assign(dummy="prototypes")])
    settings = {"b": {"maml": {"steps": 1, "lr": 0.4, "first_order": False,
                               "batch_norm": "transductive", "from_training": True}}}  # fmt: skip
    out = accuracy_table(doubled, settings=settings).set_index("adaptation")
    assert out["episodes"].tolist() == [3, 3, 3]
    np.testing.assert_allclose(out["mean"], [0.8, 0.4, 0.9])
    np.testing.assert_allclose(out["std"], [0.2, 0.2, np.std([1.0, 1.0, 0.7], ddof=1)])
    np.testing.assert_allclose(out["share_100"], [1 / 3, 0.0, 2 / 3])
    np.testing.assert_allclose(out["support_loss"], [0.2, 0.8, 2.0])
    # above 0.5 log 5 = 0.805: two maml episodes; prototypes do not iterate: no verdict
    assert out.loc["anil", "unconverged"] == 0.0
    assert out.loc["maml", "unconverged"] == pytest.approx(2 / 3)
    assert math.isnan(out.loc["prototype", "unconverged"])
    assert out.loc["maml", "settings"] == "steps=1, lr=0.4, second order (as meta-trained)"
    assert out.loc["anil", "settings"] == ""
    with pytest.raises(ValueError, match=re.escape("got ['adaptation'] missing")):
        accuracy_table(table.drop(columns="adaptation"))


def test_notes_on_convergence_and_flat_heads():
    table = make_adapted_table()
    summary = accuracy_table(table)
    notes = accuracy_notes(summary, table)
    assert notes[0].startswith("maml / maml did not converge on 33 % of the episodes (mean support")
    assert not any("maml / anil did not converge" in n for n in notes)
    assert "maml's meta-learned head starts from logits of spread 0.45" in notes[1]
    assert "nearly flat (a 5-way head that gives the true class 0.9 has 1.43)" in notes[1]
    # a head that gives the true class 0.9, the others equal logits, by hand: gap log(0.9*4/0.1)
    gap = math.log(0.9 * 4 / 0.1)
    logits = np.array([gap, 0, 0, 0, 0])
    assert np.std(logits) == pytest.approx(1.43, abs=0.005)


def test_settings_in_words():
    assert settings_text({"steps": 1, "lr": 0.4, "first_order": False,
                          "batch_norm": "transductive", "from_training": True}) == (
        "steps=1, lr=0.4, second order (as meta-trained)"
    )  # fmt: skip
    assert settings_text({"accelerated": False, "weight_decay": 0.01}) == (
        "plain GD, weight_decay=0.01"
    )
    assert settings_text(None) == ""
