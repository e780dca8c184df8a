"""Tests of metaleep/backbones/checkpoint.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import metaleep
from metaleep.backbones.checkpoint import (
    BACKBONE_FILE,
    MAGIC,
    TRAINING_FILE,
    Backbone,
    CheckpointError,
    load_backbone,
    read_checkpoint,
    split_fingerprint,
)
from metaleep.backbones.config import TrainConfig
from metaleep.backbones.testing import ToySplit, toy_dataset
from metaleep.backbones.training import train
from metaleep.data.base import ImageDataset

Tiny = Callable[..., TrainConfig]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, toy: ImageDataset, split: ToySplit):
    directory = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        algorithm="supervised",
        arch="conv4-8",
        ways=3,
        queries=2,
        batch_size=16,
        iterations=4,
        eval_every=2,
        eval_episodes=4,
    )
    return train(config, toy, split, checkpoint_dir=directory), directory


def _corrupt(source: Path, target: Path, edit: Callable[[bytes], bytes]) -> Path:
    target.write_bytes(edit(source.read_bytes()))
    return target


def test_round_trip_gives_identical_outputs(trained: tuple[Backbone, Path], toy: ImageDataset):
    backbone, directory = trained
    loaded = load_backbone(directory / BACKBONE_FILE, dataset=toy, arch="conv4-8")
    assert backbone.path == directory / BACKBONE_FILE == loaded.path
    assert not loaded.model.training
    x = toy.batch(np.arange(10))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), backbone.model(x), rtol=0, atol=0)
        torch.testing.assert_close(
            loaded.model.features(x), backbone.model.features(x), rtol=0, atol=0
        )
    assert loaded.config == backbone.config
    np.testing.assert_array_equal(loaded.source_classes, backbone.source_classes)
    assert loaded.history == backbone.history
    assert (loaded.name, loaded.step, loaded.best_step) == (
        backbone.name,
        backbone.step,
        backbone.best_step,
    )
    assert loaded.dataset_fingerprint == toy.fingerprint
    # the directory works as well
    again = load_backbone(directory)
    assert again.path == directory / BACKBONE_FILE


def test_header_says_what_the_file_is(trained: tuple[Backbone, Path], split: ToySplit):
    backbone, directory = trained
    header, payload = read_checkpoint(directory / BACKBONE_FILE)
    assert header["kind"] == "backbone"
    assert header["arch"] == "conv4-8" and header["algorithm"] == "supervised"
    assert header["dataset"] == backbone.dataset_fingerprint
    assert header["split"] == split_fingerprint(split) == payload["split"]
    assert header["metaleep"] == metaleep.__version__ and header["torch"] == torch.__version__
    assert header["config"] == backbone.config.to_dict()
    training_header, training = read_checkpoint(directory / TRAINING_FILE)
    assert training_header["kind"] == "training" and training["step"] == 4
    assert {"optimizer", "best_model", "rng", "history"} <= set(training)


def test_wrong_architecture(trained: tuple[Backbone, Path]) -> None:
    path = trained[1] / BACKBONE_FILE
    message = (
        f"{path} holds a 'conv4-8' backbone, not 'omniglot-cnn'; load it with arch='conv4-8' "
        "or train a 'omniglot-cnn' one with `metaleep train --arch omniglot-cnn`."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_backbone(path, arch="omniglot-cnn")


def test_wrong_dataset(trained: tuple[Backbone, Path]) -> None:
    path = trained[1] / BACKBONE_FILE
    other = toy_dataset(classes=5, per_class=2)
    message = (
        f"{path} was trained on data set 'toy@c24-n8-s28-seed0', not 'toy@c5-n2-s28-seed0'; its "
        "source classes and dummy labels refer to that data set: use it, or train a backbone "
        "on this one with `metaleep train`."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_backbone(path, dataset=other)


def test_truncated(trained: tuple[Backbone, Path], tmp_path: Path) -> None:
    source = trained[1] / BACKBONE_FILE
    path = _corrupt(source, tmp_path / "cut.pt", lambda b: b[: len(b) - 100])
    size = json.loads(source.read_bytes()[len(MAGIC) :].split(b"\n", 1)[0])["payload_bytes"]
    message = (
        f"{path} is truncated or corrupted: its payload has {size - 100} bytes, the header says "
        f"{size}; delete it and train again (`metaleep train ... --resume` continues from an "
        "intact training.pt)."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_backbone(path)


def test_flipped_byte(trained: tuple[Backbone, Path], tmp_path: Path) -> None:
    def flip(data: bytes) -> bytes:
        middle = len(data) - 500
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]

    path = _corrupt(trained[1] / BACKBONE_FILE, tmp_path / "flip.pt", flip)
    message = (
        f"{path} is corrupted: the SHA-256 of its payload does not match its header; delete it "
        "and train again (`metaleep train ... --resume` continues from an intact training.pt)."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_backbone(path)


def test_not_a_checkpoint_and_bad_header(trained: tuple[Backbone, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"a": 1}, plain)
    message = (
        f"{plain} is not a metaleep checkpoint (it does not start with "
        "b'METALEEP-CHECKPOINT 1'); pass a file written by `metaleep train`."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_backbone(plain)
    garbled = _corrupt(
        trained[1] / BACKBONE_FILE,
        tmp_path / "header.pt",
        lambda b: MAGIC + b"{not json\n" + b[len(MAGIC) :],
    )
    with pytest.raises(CheckpointError, match=r"is corrupted \(unreadable header: "):
        load_backbone(garbled)
    with pytest.raises(CheckpointError, match=r"no such checkpoint file\.$"):
        load_backbone(tmp_path / "missing.pt")


def test_unfinished_run_and_training_file(
    tiny: Tiny, toy: ImageDataset, split: ToySplit, tmp_path: Path
) -> None:
    def stop(step: int, info: dict[str, float]) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny("protonet", iterations=4), toy, split, checkpoint_dir=tmp_path, callback=stop)
    message = (
        f"{tmp_path} holds an unfinished training run (training.pt at step 2 of 4); finish it "
        f"with `metaleep train ... --out {tmp_path} --resume`."
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_backbone(tmp_path)
    with pytest.raises(CheckpointError, match="is a 'training' checkpoint, not a trained"):
        load_backbone(tmp_path / TRAINING_FILE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"holds no backbone\.pt; train one with"):
        load_backbone(tmp_path / "empty")


def test_split_fingerprint_depends_on_the_classes(split: ToySplit) -> None:
    moved = ToySplit(
        split.name, split.train[1:], np.append(split.validation, split.train[0]), split.test
    )
    assert split_fingerprint(moved)["hash"] != split_fingerprint(split)["hash"]
    shuffled = ToySplit(split.name, split.train[::-1], split.validation, split.test)
    assert split_fingerprint(shuffled) == split_fingerprint(split)
