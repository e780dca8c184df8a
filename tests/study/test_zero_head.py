"""The zero-head rule in the study: whole-network adaptation starts from
``StudyBackbone.with_head`` (the backbone's head when it fits, else a fresh zero head)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metaleep.adapt.network import finetune_batch
from metaleep.study.config import StudyConfig
from metaleep.study.runner import run_study


def test_the_runner_fine_tunes_a_source_classifier_from_a_zero_head(
    tmp_path: Path, toy_study
) -> None:
    """The study's finetune rows equal fine-tuning the model with an explicit zero head."""
    dataset, suite, backbones = toy_study(2)
    supervised = backbones[1]
    result = run_study(
        StudyConfig(
            suite="toy", backbones=("supervised",), adaptations=("finetune",), metrics=("leep",)
        ),
        out_dir=tmp_path,
        dataset=dataset,
        suite=suite,
        backbones=[supervised],
        progress=False,
        analyse=False,
    )
    rows = result.table.drop_duplicates("episode").sort_values("episode")
    episodes = suite.episodes[:2]
    sx = torch.stack([dataset.batch(ep.support) for ep in episodes]).double()
    qx = torch.stack([dataset.batch(ep.query) for ep in episodes]).double()
    sy = torch.as_tensor(np.stack([ep.support_labels for ep in episodes]))
    qy = torch.as_tensor(np.stack([ep.query_labels for ep in episodes]))
    expected = finetune_batch(supervised.model, sx, sy, qx, qy, ways=5, head="zero")
    np.testing.assert_array_equal(rows["accuracy"].to_numpy(), expected.accuracy)
    np.testing.assert_array_equal(rows["loss"].to_numpy(), expected.loss)
    np.testing.assert_array_equal(rows["support_loss"].to_numpy(), expected.support_loss)
