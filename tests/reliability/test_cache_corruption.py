"""Random bit flips over every kind of file metaleep caches or stores (issue 16).

Each file kind gets seeded single-bit flips at random offsets. What is asserted: a flip never
crashes a read and never yields wrong data. A cache (glyph images, default backbones) is
rebuilt with a warning that names the file; a study file (result chunk, ``study.json``) is
refused with its path and what to do, since it cannot be recomputed silently. The caches live in
a temporary ``METALEEP_CACHE_DIR``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metaleep.backbones.config import TrainConfig
from metaleep.backbones.default import (
    DEFAULT_CONFIGS,
    DefaultBackboneCacheWarning,
    default_backbone,
)
from metaleep.backbones.testing import toy_dataset, toy_split
from metaleep.data import glyphs
from metaleep.study.store import ResultStore, StoreError

FLIPS = 40


def _flips(data: bytes, seed: int, count: int = FLIPS) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        i, bit = int(rng.integers(len(data))), 1 << int(rng.integers(8))
        yield data[:i] + bytes([data[i] ^ bit]) + data[i + 1 :]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_bit_flips_in_the_glyph_image_cache_regenerate_it(cache, monkeypatch, capsys):
    """The issue's crash (a flip in the compressed pixels raised zlib.error, 68 lines that never
    named the file): every flip now gives the right images, with a warning naming the file
    when the flip made it unusable."""
    images = glyphs.glyph_images(seed=0, instances_per_class=1)
    path = glyphs.cache_path(0, 1)
    original = path.read_bytes()
    generated = {"n": 0}

    def generate(**kwargs: Any) -> np.ndarray:  # the real generator takes a second a call
        generated["n"] += 1
        return images.copy()

    monkeypatch.setattr(glyphs, "generate_glyphs", generate)
    caught, kinds = 0, set()
    for flipped in _flips(original, seed=1):
        path.write_bytes(flipped)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            again = glyphs.glyph_images(seed=0, instances_per_class=1)
        assert np.array_equal(again, images)
        notes = [w for w in seen if issubclass(w.category, glyphs.GlyphCacheWarning)]
        if notes:
            caught += 1
            text = str(notes[0].message)
            assert text.startswith(f"glyph cache {path} is unusable (") and "regenerating" in text
            kinds.add(text.split("(", 1)[1].split(":")[0])
            assert np.array_equal(glyphs.glyph_images(seed=0, instances_per_class=1), images)
    assert generated["n"] == caught > FLIPS // 2
    with capsys.disabled():
        print(f"\nglyph cache: {caught} of {FLIPS} bit flips caught and regenerated ({kinds})")


def test_a_flip_that_breaks_the_deflate_stream_regenerates(cache, monkeypatch):
    """The issue's exact case: a flip that makes zlib fail (``zlib.error``, not a CRC
    mismatch) in the compressed pixels."""
    import zlib

    images = glyphs.glyph_images(seed=0, instances_per_class=1)
    path = glyphs.cache_path(0, 1)
    original = path.read_bytes()
    start = original.index(b"images.npy") + len(b"images.npy")
    for i in range(start, start + 4000):  # the first such flip, a few bytes into the stream
        flipped = original[:i] + bytes([original[i] ^ 0x10]) + original[i + 1 :]
        path.write_bytes(flipped)
        try:
            with np.load(path) as z:
                z["images"]
        except zlib.error:
            break
        except Exception:
            continue
    else:
        pytest.fail("no flip gave zlib.error")
    monkeypatch.setattr(glyphs, "generate_glyphs", lambda **kwargs: images.copy())
    with pytest.warns(glyphs.GlyphCacheWarning, match=f"^glyph cache {path} is unusable \\(error"):
        again = glyphs.glyph_images(seed=0, instances_per_class=1)
    assert np.array_equal(again, images)
    assert np.array_equal(glyphs.glyph_images(seed=0, instances_per_class=1), images)


@pytest.fixture
def tiny_default(cache, monkeypatch) -> tuple[Any, Any, TrainConfig]:
    """The default 'protonet' and 'supervised' slots set to tiny configs on a toy data set."""
    toy = toy_dataset(classes=24, per_class=8)
    split = toy_split(toy)
    tiny: dict[str, Any] = {
        "arch": "conv2-8",
        "ways": 3,
        "shots": 1,
        "queries": 2,
        "meta_batch": 2,
        "batch_size": 16,
        "iterations": 2,
        "eval_every": 2,
        "eval_episodes": 2,
    }
    protonet = TrainConfig(algorithm="protonet", **tiny)
    monkeypatch.setitem(DEFAULT_CONFIGS, "protonet", protonet)
    monkeypatch.setitem(DEFAULT_CONFIGS, "supervised", TrainConfig(algorithm="supervised", **tiny))
    return toy, split, protonet


def _weights(backbone: Any) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in backbone.model.state_dict().items()}


def test_bit_flips_in_a_cached_default_backbone_rebuild_it(tiny_default, capsys):
    toy, split, config = tiny_default
    first = default_backbone("protonet", progress=False, dataset=toy, split=split)
    path = first.path
    assert path is not None
    original, reference = path.read_bytes(), _weights(first)
    caught = 0
    for flipped in _flips(original, seed=2, count=30):
        path.write_bytes(flipped)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            again = default_backbone("protonet", progress=False, dataset=toy, split=split)
        assert again.config == config
        notes = [w for w in seen if issubclass(w.category, DefaultBackboneCacheWarning)]
        if notes:
            caught += 1
            assert f"retraining the default 'protonet' backbone: {path}" in str(notes[0].message)
        # retrained or loaded, the weights are the slot's (training is seeded)
        weights = _weights(again)
        assert all(np.array_equal(weights[k], reference[k]) for k in reference)
    assert caught > 0
    with capsys.disabled():
        print(f"\ndefault backbone cache: {caught} of 30 bit flips caught and rebuilt")


def test_bit_flips_in_a_cached_training_state_restart_the_training(tiny_default, capsys):
    """``training.pt`` (what an interrupted default training resumes from), damaged while its
    backbone is missing: training starts over with a warning, or resumes from an intact
    state; the weights are the slot's either way."""
    from metaleep.backbones.checkpoint import TRAINING_FILE

    toy, split, config = tiny_default
    first = default_backbone("protonet", progress=False, dataset=toy, split=split)
    assert first.path is not None
    state = first.path.parent / TRAINING_FILE
    original, reference = state.read_bytes(), _weights(first)
    caught = 0
    for flipped in _flips(original, seed=4, count=10):
        first.path.unlink()
        state.write_bytes(flipped)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            again = default_backbone("protonet", progress=False, dataset=toy, split=split)
        caught += any(issubclass(w.category, DefaultBackboneCacheWarning) for w in seen)
        weights = _weights(again)
        assert again.config == config
        assert all(np.array_equal(weights[k], reference[k]) for k in reference)
    assert caught > 0
    with capsys.disabled():
        print(f"\ndefault training state: {caught} of 10 bit flips caught, training restarted")


def test_a_backbone_of_another_kind_in_a_slot_is_refused_and_rebuilt(tiny_default):
    """The issue's supervised weights in another slot: used silently before."""
    toy, split, config = tiny_default
    supervised = default_backbone("supervised", progress=False, dataset=toy, split=split)
    slot = default_backbone("protonet", progress=False, dataset=toy, split=split)
    assert supervised.path is not None and slot.path is not None
    slot.path.write_bytes(supervised.path.read_bytes())
    with pytest.warns(DefaultBackboneCacheWarning) as seen:
        again = default_backbone("protonet", progress=False, dataset=toy, split=split)
    assert str(seen[0].message).startswith(
        f"retraining the default 'protonet' backbone: {slot.path} holds a 'supervised' "
        "backbone made with another configuration than the default 'protonet' one"
    )
    assert again.config == config and again.algorithm == "protonet"


def test_a_directory_in_place_of_a_cached_backbone_is_rebuilt(tiny_default):
    toy, split, config = tiny_default
    path = default_backbone("protonet", progress=False, dataset=toy, split=split).path
    assert path is not None
    path.unlink()
    path.mkdir()
    with pytest.warns(DefaultBackboneCacheWarning, match="retraining the default 'protonet'"):
        again = default_backbone("protonet", progress=False, dataset=toy, split=split)
    assert again.config == config and path.is_file()


def test_bit_flips_in_a_result_chunk_are_never_read(tmp_path, capsys):
    rows = pd.DataFrame({"episode": [0, 0, 1, 1], "adaptation": ["a", "b"] * 2, "leep": 0.25})
    with ResultStore(tmp_path / "study", {"suite": "t"}) as store:
        store.write_chunk(0, rows)
    path = store.chunk_path(0)
    original = path.read_bytes()
    for flipped in _flips(original, seed=3):
        path.write_bytes(flipped)
        with pytest.raises(StoreError, match=f"^result chunk {path} is damaged"):
            ResultStore(tmp_path / "study", {"suite": "t"})
    with capsys.disabled():
        print(f"\nresult chunks: {FLIPS} of {FLIPS} bit flips refused")


def test_the_cache_lock_refuses_a_link_and_truncates_nothing(tiny_default, tmp_path):
    """#20: the cache's ``.lock`` as a symbolic link truncated the file it pointed to; it is
    refused now, like the study lock, and the file is left whole."""
    from metaleep.backbones.default import default_directory

    toy, split, _ = tiny_default
    victim = tmp_path / "thesis.tex"
    victim.write_text("years of work")
    directory = default_directory("protonet", toy, split)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".lock").symlink_to(victim)
    with pytest.raises(ValueError, match=r"must hold a regular lock file at .*; got a symbolic"):
        default_backbone("protonet", progress=False, dataset=toy, split=split)
    assert victim.read_text() == "years of work"
