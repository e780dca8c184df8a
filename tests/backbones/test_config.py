"""Tests of metaleep/backbones/config.py."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from metaleep.backbones.config import TrainConfig


def test_round_trip_through_json() -> None:
    config = TrainConfig(algorithm="anil", arch="conv3-16", patience=2, threads=1, meta_lr=0.01)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert set(config.to_dict()) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_frozen_and_replace() -> None:
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ways = 3  # type: ignore[misc]
    assert config.replace(ways=3).ways == 3
    assert config.name == "maml-conv4-small-5w1s"
    assert config.episodic and not config.replace(algorithm="supervised").episodic


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"algorithm": "reptile"},
            "`--algorithm` must be one of maml, fomaml, anil, protonet, supervised; got 'reptile'.",
        ),
        (
            {"arch": "vgg"},
            "`--arch` must be one of conv4-small, omniglot-cnn, cnn4, resnet12, or "
            "conv<L>-<H> (L blocks of H channels, e.g. conv3-32); got 'vgg'.",
        ),
        ({"ways": 1}, "`--ways` must be an integer >= 2; got 1."),
        ({"shots": 0}, "`--shots` must be an integer >= 1; got 0."),
        ({"meta_batch": 2.0}, "`--meta-batch` must be an integer >= 1; got 2.0."),
        ({"iterations": True}, "`--iterations` must be an integer >= 1; got True."),
        ({"seed": -1}, "`--seed` must be an integer >= 0; got -1."),
        ({"patience": 0}, "`--patience` must be an integer >= 1 or None; got 0."),
        ({"inner_lr": float("nan")}, "`--inner-lr` must be a finite number > 0; got nan."),
        ({"meta_lr": 0}, "`--meta-lr` must be a finite number > 0; got 0."),
        ({"device": "tpu"}, "`--device` must be cpu, cuda, cuda:N or auto; got 'tpu'."),
    ],
)
def test_errors_name_the_flag(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        TrainConfig(**changes)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"got unknown keys \['lr'\]\.$"):
        TrainConfig.from_dict({"lr": 0.1})


def test_numbers_are_normalised() -> None:
    config = TrainConfig(inner_lr=1, meta_lr=1)
    assert isinstance(config.inner_lr, float) and isinstance(config.meta_lr, float)
    assert config.resolved_device() == "cpu"


def test_inner_loop_says_how_the_inner_loop_was_trained():
    assert TrainConfig(algorithm="maml", inner_steps=2, inner_lr=0.3).inner_loop == {
        "steps": 2,
        "lr": 0.3,
        "first_order": False,
    }
    assert TrainConfig(algorithm="fomaml").inner_loop["first_order"] is True
    assert TrainConfig(algorithm="anil", inner_steps=5).inner_loop["steps"] == 5
    assert TrainConfig(algorithm="supervised").inner_loop == {}
    assert TrainConfig(algorithm="protonet").inner_loop == {}
