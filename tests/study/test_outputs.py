"""Backbone outputs: the source prototypes and their temperature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaleep.backbones.models import build_backbone
from metaleep.backbones.testing import toy_dataset
from metaleep.study import outputs
from metaleep.study.outputs import source_prototypes


@pytest.mark.parametrize("rows", [1, 7, 10_000])
def test_source_prototypes_and_scale_match_a_direct_computation(rows, monkeypatch):
    """Class means, and the median squared distance to the nearest one, whatever the block."""
    monkeypatch.setattr(outputs, "_DISTANCE_ROWS", rows)
    dataset = toy_dataset(classes=6, per_class=5, seed=2)
    torch.manual_seed(0)
    model = build_backbone("conv2-8", out_features=3).double().eval()
    classes = np.array([4, 1, 3])
    prototypes, scale = source_prototypes(model, dataset, classes)
    with torch.no_grad():
        feats = [
            model.features(dataset.batch(dataset.labels_to_indices[c]).double()) for c in classes
        ]
    expected = torch.stack([f.mean(0) for f in feats])
    torch.testing.assert_close(prototypes, expected, rtol=1e-12, atol=1e-12)
    every = torch.cat(feats)
    squared = ((every[:, None, :] - expected[None]) ** 2).sum(-1)
    assert scale == pytest.approx(float(squared.min(1).values.median()), rel=1e-10)
