"""Tests of metaleep/backbones/default.py (tiny configs; the real defaults are measured, not
tested, as they take minutes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from metaleep.backbones import default as default_module
from metaleep.backbones import training
from metaleep.backbones.checkpoint import BACKBONE_FILE
from metaleep.backbones.config import TrainConfig
from metaleep.backbones.default import (
    DEFAULT_CONFIGS,
    default_backbone,
    default_backbones,
    default_directory,
)
from metaleep.backbones.testing import ToySplit
from metaleep.data.base import ImageDataset

Tiny = Callable[..., TrainConfig]


def test_default_configs() -> None:
    assert set(DEFAULT_CONFIGS) == {"maml", "supervised", "protonet"}
    assert DEFAULT_CONFIGS["maml"].algorithm in ("maml", "fomaml")
    for name, config in DEFAULT_CONFIGS.items():
        assert config.device == "cpu" and config.arch == "conv4-small", name
        assert (config.ways, config.shots) == (5, 1)


def test_trained_once_then_loaded(
    tiny: Tiny,
    toy: ImageDataset,
    split: ToySplit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(DEFAULT_CONFIGS, "maml", tiny("maml", iterations=2))
    monkeypatch.setitem(DEFAULT_CONFIGS, "protonet", tiny("protonet", iterations=2))
    first = default_backbones(("maml", "protonet"), progress=False, dataset=toy, split=split)
    assert [b.name for b in first.values()] == ["maml", "protonet"]
    directory = default_directory("maml", toy, split)
    assert directory.parent == tmp_path / "backbones"
    assert first["maml"].path == directory / BACKBONE_FILE

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(training, "train", no_training)
    again = default_backbone("maml", progress=False, dataset=toy, split=split)
    assert again.path == first["maml"].path and again.step == first["maml"].step


def test_corrupted_cache_is_retrained(
    tiny: Tiny,
    toy: ImageDataset,
    split: ToySplit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(DEFAULT_CONFIGS, "protonet", tiny("protonet", iterations=2))
    path = default_backbone("protonet", progress=False, dataset=toy, split=split).path
    assert path is not None
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.warns(
        UserWarning, match="retraining the default 'protonet' backbone: .* is truncated"
    ):
        again = default_backbone("protonet", progress=False, dataset=toy, split=split)
    assert again.path == path and again.step == 2


def test_cache_key_follows_the_config(tiny: Tiny, toy: ImageDataset, split: ToySplit) -> None:
    a = default_module.cache_key(tiny("maml"), toy, split)
    assert a == default_module.cache_key(tiny("maml"), toy, split)
    assert a != default_module.cache_key(tiny("maml", iterations=7), toy, split)


def test_unknown_default() -> None:
    message = "`algorithm` must be one of maml, supervised, protonet; got 'anil'."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        default_backbone("anil")


def test_concurrent_callers_train_once(
    tiny: Tiny,
    toy: ImageDataset,
    split: ToySplit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(DEFAULT_CONFIGS, "protonet", tiny("protonet", iterations=2))
    real_train, calls = training.train, []

    def counting_train(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_train(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "train", counting_train)
    found: list[object] = []

    def ask() -> None:
        found.append(default_backbone("protonet", progress=False, dataset=toy, split=split).path)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(found) == 2 and found[0] == found[1]
