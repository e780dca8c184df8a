"""The ``kernel`` option of LEEP and NCE: which implementation runs, and its argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaleep.metrics import (
    _kernels,
    leep,
    leep_score,
    leep_score_batch,
    nce_score,
    nce_score_batch,
    nleep_score_batch,
)
from metaleep.metrics.registry import get_metric

BATCH = {"leep": leep_score_batch, "nce": nce_score_batch}
SINGLE = {"leep": leep_score, "nce": nce_score}
KERNELS = {"leep": "leep_log_sums", "nce": "nce_sums"}


def _episodes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(7), size=(6, 10))
    labels = rng.integers(0, 3, size=(6, 10))
    return probs, labels


def _forbid_kernel(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fused kernel ran")

    monkeypatch.setattr(_kernels, KERNELS[name], refuse)


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_kernel_and_torch_agree(name: str) -> None:
    probs, labels = _episodes()
    fused = BATCH[name](probs, labels, kernel=True)
    plain = BATCH[name](probs, labels, kernel=False)
    np.testing.assert_allclose(fused, plain, rtol=0, atol=1e-12)
    assert SINGLE[name](probs[2], labels[2], kernel=True) == pytest.approx(plain[2], abs=1e-12)


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_kernel_false_never_runs_the_kernel(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    probs, labels = _episodes()
    expected = BATCH[name](probs, labels, kernel=False)
    monkeypatch.setattr(leep, "KERNEL_MIN_VALUES", 0)  # auto would pick the kernel
    _forbid_kernel(monkeypatch, name)
    np.testing.assert_array_equal(BATCH[name](probs, labels, kernel=False), expected)
    assert SINGLE[name](probs[0], labels[0], kernel=False) == pytest.approx(expected[0])
    with pytest.raises(AssertionError, match="the fused kernel ran"):
        BATCH[name](probs, labels)  # auto
    with pytest.raises(AssertionError, match="the fused kernel ran"):
        BATCH[name](probs, labels, kernel=True)


def test_nleep_never_runs_the_leep_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """An episode's N-LEEP must not depend on the batch it is in (the kernel agrees to ~1e-16)."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(4, 12, 3))
    labels = np.tile(np.repeat(np.arange(3), 4), (4, 1))
    expected = nleep_score_batch(features, labels, seed=1)
    monkeypatch.setattr(leep, "KERNEL_MIN_VALUES", 0)
    _forbid_kernel(monkeypatch, "leep")
    np.testing.assert_array_equal(nleep_score_batch(features, labels, seed=1), expected)


@pytest.mark.parametrize("name", ["leep", "nce"])
@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_kernel_must_be_none_or_a_bool(name: str, bad: object) -> None:
    probs, labels = _episodes()
    with pytest.raises(TypeError, match=r"`kernel` must be None, True or False; got"):
        BATCH[name](probs, labels, kernel=bad)


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_kernel_true_needs_the_cpu(name: str) -> None:
    probs = torch.full((2, 3, 4), 0.25, device="meta")
    with pytest.raises(ValueError, match=r"`kernel=True` needs the input on the CPU.*meta"):
        BATCH[name](probs, [[0, 1, 0], [1, 0, 1]], kernel=True, validate=False)


def test_registry_passes_the_option() -> None:
    assert get_metric("leep").select_options({"kernel": False, "seed": 1}) == {"kernel": False}
    assert "kernel" not in get_metric("h_score").select_options({"kernel": False})
