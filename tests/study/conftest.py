"""The toy study shared by the runner and Ray tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from metaleep.backbones.models import build_backbone
from metaleep.backbones.testing import toy_dataset
from metaleep.episodes import EpisodeSampler, EpisodeSpec
from metaleep.episodes.manifest import suite_from_episodes
from metaleep.study.runner import StudyBackbone

TOY_SPEC = EpisodeSpec(ways=5, shots=2, queries=3)


def _toy_study(episodes: int) -> tuple[Any, Any, list[StudyBackbone]]:
    dataset = toy_dataset(classes=20, per_class=8, seed=1)
    pool = np.arange(10, 20)
    drawn = EpisodeSampler(dataset, TOY_SPEC, classes=pool, seed=3).sample_many(episodes)
    suite = suite_from_episodes(
        drawn,
        [TOY_SPEC] * len(drawn),
        name="toy",
        dataset=dataset,
        split="toy",
        part="test",
        pool=pool,
        seed=3,
    )
    torch.manual_seed(0)
    maml = build_backbone("conv2-8", out_features=5).double().eval()
    supervised = build_backbone("conv2-8", out_features=10).double().eval()
    backbones = [
        StudyBackbone(
            "maml",
            maml,
            "fomaml",
            np.arange(10),
            fingerprint="m",
            inner={"lr": 0.3},
            source_data=dataset,
        ),
        StudyBackbone(
            "supervised",
            supervised,
            "supervised",
            np.arange(10),
            fingerprint="s",
            source_data=dataset,
        ),
    ]
    return dataset, suite, backbones


@pytest.fixture(scope="session")
def toy_study() -> Callable[[int], tuple[Any, Any, list[StudyBackbone]]]:
    """``toy_study(n)``: a 20-class toy data set, a suite of its first n 5-way 2-shot episodes
    (seed 3) on classes 10-19, and untrained float64 ``maml`` and ``supervised`` backbones."""
    return _toy_study
