"""metaleep/backbones/protocol.py: the embedding width and the zero-head rule
(``StudyBackbone.with_head``) that the runner and the settings grid fine-tune through."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from metaleep.backbones import from_module
from metaleep.backbones.models import build_backbone
from metaleep.backbones.protocol import StudyBackbone
from metaleep.backbones.testing import toy_dataset
from metaleep.data.base import ImageDataset
from metaleep.data.transform import InputSpec


@pytest.fixture(scope="module")
def data() -> ImageDataset:
    return toy_dataset(classes=6, per_class=4, seed=2)


def _backbone(algorithm: str, out: int, name: str = "b") -> StudyBackbone:
    torch.manual_seed(0)
    model = build_backbone("conv2-8", out_features=out).double().eval()
    return StudyBackbone(name, model, algorithm, fingerprint="fp", origin="test")


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_fitting_meta_learned_head_is_kept() -> None:
    maml = _backbone("maml", 5)
    assert maml.with_head(5) is maml


@pytest.mark.parametrize(
    ("algorithm", "out", "ways"),
    [
        ("supervised", 10, 5),  # a source classifier over Z = 10 labels
        ("supervised", 5, 5),  # Z equals the episode's N: still not a head for its classes
        ("maml", 5, 3),  # a meta-learned head of another N
        ("protonet", 5, 5),  # an embedding network's unused head
    ],
)
def test_other_heads_become_a_fresh_zero_head(algorithm: str, out: int, ways: int) -> None:
    backbone = _backbone(algorithm, out)
    before = _weights(backbone.model)
    tuned = backbone.with_head(ways)
    head = tuned.model.classifier
    assert isinstance(head, nn.Linear)
    assert (head.in_features, head.out_features) == (backbone.embedding_dim(), ways)
    assert head.weight.dtype == torch.float64
    assert not head.weight.any() and not head.bias.any()
    assert tuned.fingerprint == f"fp+zero-head-{ways}"
    assert tuned.origin == f"test; fine-tuned from a fresh zero {ways}-way head"
    # the embedding is the backbone's, the backbone itself is untouched
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    assert torch.equal(tuned.model.features(x), backbone.model.features(x))
    after = _weights(backbone.model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert backbone.model.classifier.out_features == out


def test_embedding_dim_of_a_network_without_head(data: ImageDataset) -> None:
    features = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 7), nn.BatchNorm1d(7))
    emb = from_module(features=features, name="emb")
    assert emb.head is None
    features.train()
    features[2].eval()  # mixed modes survive the measuring pass
    assert emb.embedding_dim(data) == 7
    assert [m.training for m in features] == [True, True, False]
    with pytest.raises(
        ValueError,
        match="^"
        + re.escape(
            "`dataset` must be given to measure the embedding of backbone 'emb' (it has no "
            "linear head and no declared input shape); got None."
        )
        + "$",
    ):
        emb.embedding_dim()
    declared = StudyBackbone(
        "d", emb.model, "protonet", input=InputSpec((1, 28, 28))
    )  # a zero image of the declared shape
    assert declared.embedding_dim() == 7
    tuned = emb.with_head(4, data)
    assert tuple(tuned.model.classifier.weight.shape) == (4, 7)
