"""Fixtures of the backbone tests: a small fabricated data set and tiny configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from metaleep.backbones.config import TrainConfig
from metaleep.backbones.testing import ToySplit, toy_dataset, toy_split
from metaleep.data.base import ImageDataset

TINY: dict[str, Any] = {
    "arch": "conv4-8",
    "ways": 3,
    "shots": 1,
    "queries": 2,
    "meta_batch": 2,
    "batch_size": 16,
    "meta_lr": 1e-2,
    "iterations": 6,
    "eval_every": 2,
    "eval_episodes": 4,
}


@pytest.fixture(scope="session")
def toy() -> ImageDataset:
    return toy_dataset(classes=24, per_class=8)


@pytest.fixture(scope="session")
def split(toy: ImageDataset) -> ToySplit:
    return toy_split(toy)


@pytest.fixture
def tiny() -> Callable[..., TrainConfig]:
    """``tiny(algorithm, **changes)``: a config that trains in well under a second."""

    def make(algorithm: str = "maml", **changes: Any) -> TrainConfig:
        return TrainConfig(algorithm=algorithm, **{**TINY, **changes})  # type: ignore[arg-type]

    return make
