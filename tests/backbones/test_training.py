"""Tests of metaleep/backbones/training.py."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from metaleep.backbones.checkpoint import (
    BACKBONE_FILE,
    TRAINING_FILE,
    Backbone,
    CheckpointError,
    read_checkpoint,
)
from metaleep.backbones.config import TrainConfig
from metaleep.backbones.models import build_backbone
from metaleep.backbones.testing import ToySplit
from metaleep.backbones.training import _Trainer, calibrate_batch_norm, train
from metaleep.data.base import ImageDataset

Tiny = Callable[..., TrainConfig]

# Settings under which each algorithm learns the toy classes within a few steps.
LEARNS: dict[str, dict[str, Any]] = {
    "maml": {},
    "fomaml": {},
    "anil": {"inner_lr": 2.0},
    "protonet": {},
    "supervised": {"iterations": 40},
}


def _meta_loss(trainer: _Trainer, state: dict[str, torch.Tensor] | None = None) -> float:
    """Mean training loss of fixed steps 100..103 (tasks or minibatches), no update."""
    if state is not None:
        trainer.model.load_state_dict(state)
    trainer.model.train()
    step = trainer._episodic_step if trainer.config.episodic else trainer._supervised_step
    loss = float(np.mean([step(s) for s in range(100, 104)]))
    trainer.optimizer.zero_grad()
    return loss


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.mark.parametrize("algorithm", list(LEARNS))
def test_training_loss_decreases(
    algorithm: str, tiny: Tiny, toy: ImageDataset, split: ToySplit
) -> None:
    losses: list[float] = []
    settings = {"iterations": 20, "meta_batch": 4, "meta_lr": 2e-2, "eval_every": 100}
    config = tiny(algorithm, **{**settings, **LEARNS[algorithm]})
    trainer = _Trainer(config, toy, split, np.asarray(split.train), np.asarray(split.validation))
    before = _meta_loss(trainer)
    backbone = train(config, toy, split, callback=lambda step, info: losses.append(info["loss"]))
    after = _meta_loss(trainer, backbone.model.state_dict())
    assert len(losses) == config.iterations
    assert after < 0.85 * before, (before, after, losses)
    assert backbone.step == config.iterations and not backbone.model.training


def test_history_and_heads(tiny: Tiny, toy: ImageDataset, split: ToySplit) -> None:
    maml = train(tiny("maml"), toy, split)
    assert [h["step"] for h in maml.history] == [2, 4, 6]
    assert set(maml.history[0]) == {"step", "train_loss", "val_acc", "val_ci", "seconds"}
    best = max(maml.history, key=lambda h: h["val_acc"])  # first maximum wins ties
    assert maml.best_step == best["step"]
    assert (maml.head, maml.batch_norm, maml.model.out_features) == ("ways", "transductive", 3)

    supervised = train(tiny("supervised"), toy, split)
    assert supervised.head == "source" and supervised.batch_norm == "running"
    np.testing.assert_array_equal(supervised.source_classes, np.sort(split.train))
    assert supervised.model.out_features == len(split.train)

    protonet = train(tiny("protonet"), toy, split)
    assert protonet.head == "none"
    assert not protonet.model.classifier.weight.any() and not protonet.model.classifier.bias.any()


def test_same_seed_same_weights(tiny: Tiny, toy: ImageDataset, split: ToySplit) -> None:
    a = train(tiny("maml", iterations=3, eval_every=3), toy, split)
    b = train(tiny("maml", iterations=3, eval_every=3), toy, split)
    c = train(tiny("maml", iterations=3, eval_every=3, seed=1), toy, split)
    assert _same_weights(a.model, b.model)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert not _same_weights(a.model, c.model)


class _Stop(Exception):
    pass


def _raise_at(step: int, error: BaseException) -> Callable[[int, dict[str, float]], None]:
    def callback(done: int, info: dict[str, float]) -> None:
        if done == step:
            raise error

    return callback


@pytest.mark.parametrize(
    ("algorithm", "error", "saved_step"),
    [
        ("maml", KeyboardInterrupt(), 3),  # Ctrl-C between steps: saved where it stopped
        ("supervised", KeyboardInterrupt(), 3),
        ("anil", _Stop(), 2),  # a crash: resume from the last validation's checkpoint
    ],
)
def test_resume_matches_uninterrupted_run(
    algorithm: str,
    error: BaseException,
    saved_step: int,
    tiny: Tiny,
    toy: ImageDataset,
    split: ToySplit,
    tmp_path: Path,
) -> None:
    config = tiny(algorithm, iterations=6, eval_every=2, patience=5)
    straight = train(config, toy, split, checkpoint_dir=tmp_path / "straight")

    directory = tmp_path / "interrupted"
    with pytest.raises(type(error)):
        train(config, toy, split, checkpoint_dir=directory, callback=_raise_at(3, error))
    header, payload = read_checkpoint(directory / TRAINING_FILE)
    assert header["kind"] == "training" and header["step"] == payload["step"] == saved_step
    assert not (directory / BACKBONE_FILE).exists()

    steps: list[int] = []
    resumed = train(
        config,
        toy,
        split,
        checkpoint_dir=directory,
        resume=True,
        callback=lambda step, info: steps.append(step),
    )
    assert steps == list(range(saved_step + 1, 7))  # continued from the saved step
    assert _same_weights(resumed.model, straight.model)
    assert _without_seconds(resumed.history) == _without_seconds(straight.history)
    assert resumed.best_step == straight.best_step


def test_resume_rejects_another_configuration(
    tiny: Tiny, toy: ImageDataset, split: ToySplit, tmp_path: Path
) -> None:
    train(tiny("fomaml", iterations=2), toy, split, checkpoint_dir=tmp_path)
    path = tmp_path / TRAINING_FILE
    message = (
        f"{path} was written by a run with another configuration (arch: 'conv4-8' there, "
        "'conv3-8' here); resume with the same settings, use another --out directory, or drop "
        "--resume to start over."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        train(
            tiny("fomaml", iterations=2, arch="conv3-8"),
            toy,
            split,
            checkpoint_dir=tmp_path,
            resume=True,
        )
    # A longer run may resume (iterations is resumable), and without --resume it starts over.
    longer = train(tiny("fomaml", iterations=4), toy, split, checkpoint_dir=tmp_path, resume=True)
    assert [h["step"] for h in longer.history] == [2, 4]
    fresh = train(tiny("fomaml", iterations=2, arch="conv3-8"), toy, split, checkpoint_dir=tmp_path)
    assert fresh.config.arch == "conv3-8"


def test_resume_rejects_another_dataset(
    tiny: Tiny, toy: ImageDataset, split: ToySplit, tmp_path: Path
) -> None:
    from metaleep.backbones.testing import toy_dataset

    train(tiny("protonet", iterations=2), toy, split, checkpoint_dir=tmp_path)
    other = toy_dataset(classes=24, per_class=8, seed=1)
    message = (
        f"{tmp_path / TRAINING_FILE} was trained on data set 'toy@c24-n8-s28-seed0', not "
        "'toy@c24-n8-s28-seed1'; resume with the data set it was started on, use another --out "
        "directory, or drop --resume to start over."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        train(tiny("protonet", iterations=2), other, split, checkpoint_dir=tmp_path, resume=True)


def test_early_stopping_keeps_the_best_weights(
    tiny: Tiny, toy: ImageDataset, split: ToySplit
) -> None:
    # meta_lr so large that validation accuracy cannot keep improving
    backbone = train(
        tiny("protonet", iterations=40, eval_every=1, patience=2, meta_lr=5.0), toy, split
    )
    accs = [h["val_acc"] for h in backbone.history]
    best = int(np.argmax(accs))
    assert backbone.step < 40 and len(accs) == best + 1 + 2
    assert backbone.best_step == backbone.history[best]["step"]


def test_maml_step_leaves_the_originals_buffers_alone(
    tiny: Tiny, toy: ImageDataset, split: ToySplit
) -> None:
    trainer = _Trainer(
        tiny("maml"), toy, split, np.asarray(split.train), np.asarray(split.validation)
    )
    buffers = {k: v.clone() for k, v in trainer.model.named_buffers()}
    assert any(k.endswith("running_mean") for k in buffers)
    trainer.model.train()
    trainer._episodic_step(0)
    for key, value in trainer.model.named_buffers():
        assert torch.equal(value, buffers[key]), key
    assert all(p.grad is not None for p in trainer.model.parameters())


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil"])
def test_meta_gradients_equal_learn2learns_bit_for_bit(
    algorithm: str, tiny: Tiny, toy: ImageDataset, split: ToySplit
) -> None:
    """One training step's gradients = learn2learn's MAML clone/adapt (the former trainer)."""
    l2l = pytest.importorskip("learn2learn")
    config = tiny(algorithm, inner_steps=2, meta_batch=2)
    trainer = _Trainer(config, toy, split, np.asarray(split.train), np.asarray(split.validation))
    reference = copy.deepcopy(trainer.model).train()
    trainer.model.train()
    trainer._episodic_step(0)

    wrapped = reference.classifier if algorithm == "anil" else reference
    maml = l2l.algorithms.MAML(wrapped, lr=config.inner_lr, first_order=algorithm == "fomaml")
    for j in range(config.meta_batch):
        xs, ys, xq, yq = trainer._task(j)
        if algorithm == "anil":
            xs, xq = reference.features(xs), reference.features(xq)
        learner = maml.clone()
        for sub in learner.modules():  # private BatchNorm buffers
            sub._buffers = {k: None if b is None else b.clone() for k, b in sub._buffers.items()}
        for _ in range(config.inner_steps):
            learner.adapt(torch.nn.functional.cross_entropy(learner(xs), ys))
        (torch.nn.functional.cross_entropy(learner(xq), yq) / config.meta_batch).backward()
    for (name, ours), theirs in zip(
        trainer.model.named_parameters(), reference.parameters(), strict=True
    ):
        assert ours.grad is not None and torch.equal(ours.grad, theirs.grad), name
    assert _same_weights(trainer.model, reference)  # buffers too (ANIL's features update both)


def test_calibration_is_the_batch_statistics(toy: ImageDataset) -> None:
    net = build_backbone("conv2-8", out_features=3)
    classes = np.array([0, 1, 2])
    images = toy.batch(np.flatnonzero(np.isin(toy.labels, classes)))
    calibrate_batch_norm(net, toy, classes, seed=0, images=1000, batch_size=1000)
    assert not net.training
    block = net.features[0][0]
    with torch.no_grad():
        first = block.conv(images)  # input of the first BatchNorm
    bn = block.normalize
    torch.testing.assert_close(bn.running_mean, first.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, first.transpose(0, 1).flatten(1).var(dim=1))


def test_no_validation_classes(tiny: Tiny, toy: ImageDataset, split: ToySplit) -> None:
    no_val = ToySplit("noval", split.train, np.array([], dtype=np.int64), split.test)
    with pytest.warns(UserWarning, match="has no validation classes"):
        backbone = train(tiny("protonet", iterations=4, patience=1), toy, no_val)
    assert backbone.step == 4 and backbone.best_step == 0
    assert all(math.isnan(h["val_acc"]) for h in backbone.history)


def test_bad_inputs(tiny: Tiny, toy: ImageDataset, split: ToySplit) -> None:
    with pytest.raises(TypeError, match=r"^`dataset` must be an ImageDataset; got 'list'\.$"):
        train(tiny(), [], split)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`split` must have name, train, validation and test"):
        train(tiny(), toy, object())  # type: ignore[arg-type]
    isinstance(Backbone, type)
