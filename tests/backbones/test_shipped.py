"""The shipped default backbones: the same files everywhere, checked, never trained by a test."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from metaleep.backbones import default as default_module
from metaleep.backbones import training
from metaleep.backbones.checkpoint import CheckpointError
from metaleep.backbones.config import TrainConfig
from metaleep.backbones.default import (
    DEFAULT_ALGORITHMS,
    DEFAULT_CONFIGS,
    SHIPPED_SEEDS,
    WEIGHTS_DIR,
    default_backbone,
    default_config,
    ship,
    shipped_fingerprints,
    shipped_manifest,
)
from metaleep.backbones.protocol import weights_fingerprint
from metaleep.backbones.testing import ToySplit
from metaleep.data.base import ImageDataset

Tiny = Callable[..., TrainConfig]


def _no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("a default backbone was trained")


def test_every_default_and_seed_is_shipped_small_and_intact() -> None:
    entries = shipped_manifest()["backbones"]
    assert set(entries) == {f"{a}-seed{s}" for a in DEFAULT_ALGORITHMS for s in SHIPPED_SEEDS}
    for entry in entries.values():
        data = (WEIGHTS_DIR / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"] < 1 << 20
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["dataset"].startswith("glyphs@")
    # the fingerprints figures stamp: seed 0 is what `metaleep run` records in study.json
    prints = shipped_fingerprints()
    assert set(prints) == {"seed0", "seed1", "seed2"}
    assert prints["seed0"]["maml"] == entries["maml-seed0"]["weights"]


@pytest.fixture(scope="module")
def glyph_data() -> tuple[ImageDataset, object]:
    from metaleep.data.glyphs import load_glyphs
    from metaleep.data.splits import get_split

    dataset = load_glyphs()
    return dataset, get_split(dataset, "omniglot")


@pytest.mark.parametrize("seed", SHIPPED_SEEDS)
def test_shipped_backbones_load_without_training(glyph_data, seed, monkeypatch) -> None:
    monkeypatch.setattr(training, "train", _no_training)
    dataset, split = glyph_data
    for algorithm in DEFAULT_ALGORITHMS:
        backbone = default_backbone(algorithm, seed=seed, dataset=dataset, split=split)
        entry = shipped_manifest()["backbones"][f"{algorithm}-seed{seed}"]
        assert backbone.name == algorithm and backbone.config == default_config(algorithm, seed)
        assert backbone.path == WEIGHTS_DIR / entry["file"]
        assert weights_fingerprint(backbone.model) == entry["weights"]


def test_a_damaged_shipped_file_is_named_and_refused(glyph_data, tmp_path, monkeypatch) -> None:
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    monkeypatch.setattr(default_module, "WEIGHTS_DIR", copy)
    monkeypatch.setattr(training, "train", _no_training)
    dataset, split = glyph_data
    path = copy / "protonet-seed1.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 4
    path.write_bytes(bytes(data))
    expected = (
        f"{path}: the shipped default 'protonet' backbone (seed 1) is damaged: its SHA-256 is "
    )
    with pytest.raises(CheckpointError, match="^" + re.escape(expected)) as info:
        default_backbone("protonet", seed=1, dataset=dataset, split=split)
    assert "reinstall metaleep" in str(info.value)
    path.unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: the shipped default")):
        default_backbone("protonet", seed=1, dataset=dataset, split=split)
    assert path.exists() is False  # nothing was written in its place


def test_ship_writes_the_layout_default_backbone_reads(
    tiny: Tiny, toy: ImageDataset, split: ToySplit, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(DEFAULT_CONFIGS, "protonet", tiny("protonet", iterations=2))
    trained = default_backbone("protonet", seed=3, dataset=toy, split=split, progress=False)
    assert trained.config.seed == 3
    target = ship(trained, tmp_path / "weights", seed=3)
    assert target.read_bytes() == trained.path.read_bytes()  # type: ignore[union-attr]
    entry = shipped_manifest(tmp_path / "weights")["backbones"]["protonet-seed3"]
    assert entry["dataset"] == toy.fingerprint and entry["seed"] == 3
    monkeypatch.setattr(default_module, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(training, "train", _no_training)
    loaded = default_backbone("protonet", seed=3, dataset=toy, split=split)
    assert loaded.path == target
    with pytest.raises(ValueError, match="`backbone` must be the default 'protonet' backbone"):
        ship(trained, tmp_path / "other", seed=4)


def test_seed_is_checked() -> None:
    with pytest.raises(ValueError, match=r"^`seed` must be a non-negative integer; got -1\.$"):
        default_config("maml", -1)


def test_train_default_rebuilds_and_writes_the_shipped_layout(
    tiny: Tiny, toy: ImageDataset, split: ToySplit, tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from metaleep.backbones import cli as backbones_cli
    from metaleep.cli import app

    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(DEFAULT_CONFIGS, "protonet", tiny("protonet", iterations=2))
    calls: list[dict[str, object]] = []

    def rebuild(**kwargs: object) -> dict[str, object]:
        calls.append(kwargs)
        return {
            "protonet": default_backbone(
                "protonet", seed=1, dataset=toy, split=split, shipped=False, progress=False
            )
        }

    monkeypatch.setattr(default_module, "default_backbones", rebuild)
    monkeypatch.setattr(backbones_cli, "load_data", lambda data, name: (toy, split))
    out = tmp_path / "weights"
    result = CliRunner().invoke(
        app, ["train", "--default", "--seed", "1", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert calls[0]["seed"] == 1 and calls[0]["shipped"] is False  # rebuilt, not loaded
    assert f"protonet: shipped layout {out / 'protonet-seed1.pt'}" in result.output
    assert "metaleep run and metaleep grid use the backbones shipped with metaleep" in " ".join(
        result.output.split()
    )
    assert "protonet-seed1" in shipped_manifest(out)["backbones"]
