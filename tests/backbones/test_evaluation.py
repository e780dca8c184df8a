"""Tests of metaleep/backbones/evaluation.py."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch

from metaleep.backbones.checkpoint import Backbone
from metaleep.backbones.config import TrainConfig
from metaleep.backbones.evaluation import episode_logits, evaluate, mean_ci
from metaleep.backbones.models import build_backbone
from metaleep.backbones.testing import ToySplit
from metaleep.data.base import ImageDataset
from metaleep.episodes import EpisodeSpec


def _backbone(algorithm: str, ways: int = 3) -> Backbone:
    config = TrainConfig(algorithm=algorithm, arch="conv2-8", ways=ways)  # type: ignore[arg-type]
    model = build_backbone("conv2-8", out_features=ways).eval()
    return Backbone(
        model, config, np.arange(12), "toy@x", {"name": "toy", "hash": "0"}, algorithm, 0, 0
    )


def test_mean_ci_against_the_formula() -> None:
    values = np.array([0.2, 0.6, 0.9, 1.0])
    mean = sum(values) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    assert mean_ci(values) == pytest.approx((mean, 1.96 * sd / 2))
    assert mean_ci(np.array([0.5])) == (0.5, 0.0)


def test_identical_instances_are_classified_perfectly(toy: ImageDataset) -> None:
    # every image of a class is the class's first image: nearest prototype cannot miss
    first = np.searchsorted(toy.labels, toy.labels)
    clean = ImageDataset(toy.images[first], toy.labels, toy.classes, "clean", "1")
    split = ToySplit("all", np.arange(12), np.arange(12, 18), np.arange(18, 24))
    backbone = _backbone("protonet")
    mean, half = evaluate(backbone, clean, split, EpisodeSpec(3, 2, 3), episodes=5)
    assert (mean, half) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("method", "batch_norm"),
    [
        ("maml", "transductive"),
        ("maml", "running"),
        ("anil", "transductive"),
        ("prototype", "transductive"),
        ("prototype", "running"),
    ],
)
def test_evaluation_leaves_the_model_alone(
    method: str, batch_norm: str, toy: ImageDataset, split: ToySplit
) -> None:
    backbone = _backbone("maml")
    backbone.model.eval()
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    mean, _ = evaluate(
        backbone,
        toy,
        split,
        EpisodeSpec(3, 1, 2),
        episodes=3,
        method=method,
        batch_norm=batch_norm,
        inner_steps=2,
    )
    assert 0.0 <= mean <= 1.0
    after = backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not backbone.model.training


def test_tiny_inner_step_gives_the_unadapted_logits(toy: ImageDataset) -> None:
    model = build_backbone("conv2-8", out_features=3)
    xs, xq = toy.batch(np.arange(3) * 8), toy.batch(np.arange(3) * 8 + 1)
    ys = torch.arange(3)
    for method in ("maml", "anil"):
        logits = episode_logits(
            model, xs, ys, xq, ways=3, method=method, batch_norm="transductive", inner_lr=1e-12
        )
        model.train()
        with torch.no_grad():
            torch.testing.assert_close(logits, model(xq))


def test_adaptation_fits_the_support_set(toy: ImageDataset) -> None:
    model = build_backbone("conv2-8", out_features=3)
    xs = toy.batch(np.arange(3) * 8)
    ys = torch.arange(3)
    logits = episode_logits(
        model,
        xs,
        ys,
        xs,
        ways=3,
        method="maml",
        batch_norm="transductive",
        inner_steps=30,
        inner_lr=0.5,
    )
    assert torch.equal(logits.argmax(1), ys)


def test_errors(toy: ImageDataset, split: ToySplit) -> None:
    backbone = _backbone("maml")
    message = "`ways` must equal the 3 outputs of the backbone's head for method 'maml'; got 5."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        evaluate(backbone, toy, split, EpisodeSpec(5, 1, 2), episodes=1)
    with pytest.raises(ValueError, match=r"^`method` must be one of maml, anil, prototype; "):
        evaluate(backbone, toy, split, EpisodeSpec(3, 1, 2), episodes=1, method="knn")
    with pytest.raises(ValueError, match=r"^`batch_norm` must be one of transductive, running"):
        evaluate(backbone, toy, split, EpisodeSpec(3, 1, 2), episodes=1, batch_norm="frozen")
    with pytest.raises(ValueError, match=r"^`classes` must be one of train, validation, test"):
        evaluate(backbone, toy, split, EpisodeSpec(3, 1, 2), classes="all")  # type: ignore
    with pytest.raises(ValueError, match=r"^`episodes` must be a positive integer; got 0\.$"):
        evaluate(backbone, toy, split, EpisodeSpec(3, 1, 2), episodes=0)


@pytest.mark.parametrize("batch_norm", ["transductive", "running"])
def test_episode_logits_equal_learn2learns_bit_for_bit(batch_norm: str, toy: ImageDataset) -> None:
    """maml and anil: learn2learn's MAML clone/adapt (the former implementation)."""
    l2l = pytest.importorskip("learn2learn")
    model = build_backbone("conv2-8", out_features=3, seed=4)
    with torch.no_grad():  # non-trivial running statistics
        model.train()(toy.batch(np.arange(24)))
    model.eval()
    xs, xq = toy.batch(np.arange(6) * 8), toy.batch(np.arange(6) * 8 + 1)
    ys = torch.arange(6) % 3
    reference = copy.deepcopy(model).train(batch_norm == "transductive")
    with torch.no_grad():
        fs, fq = reference.features(xs), reference.features(xq)
    expected = {}
    for method, network, support, query in (
        ("maml", reference, xs, xq),
        ("anil", reference.classifier, fs, fq),
    ):
        learner = l2l.algorithms.MAML(copy.deepcopy(network), lr=0.3, first_order=True).clone()
        for _ in range(3):
            learner.adapt(torch.nn.functional.cross_entropy(learner(support), ys))
        with torch.no_grad():
            expected[method] = learner(query)
    for method in ("maml", "anil"):
        logits = episode_logits(
            model, xs, ys, xq, ways=3, method=method, batch_norm=batch_norm,
            inner_steps=3, inner_lr=0.3,
        )  # fmt: skip
        assert torch.equal(logits, expected[method]), method
