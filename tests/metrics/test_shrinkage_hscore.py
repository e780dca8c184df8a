"""Shrinkage H-score: public vectors, the naive reference, hand-checked limits."""

from __future__ import annotations

import numpy as np
import pytest

from metaleep.metrics import h_score, shrinkage_h_score

from .reference import EXPECTED_AFTER_LEEP, VECTORS, random_episode, shrinkage_h_score_ref

SHAPES = [(12, 3, 3), (40, 8, 4), (25, 32, 5), (10, 64, 5), (200, 16, 5)]
IDS = np.array([0, 3, 9, 11, 20])  # label gaps


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_public_vectors(vector: str) -> None:
    _, labels, features = VECTORS[vector]
    expected = EXPECTED_AFTER_LEEP[vector]["shrinkage_h_score"]
    assert shrinkage_h_score(features, labels) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "dim", "n_classes"), SHAPES)
def test_matches_naive_reference(n: int, dim: int, n_classes: int) -> None:
    rng = np.random.default_rng(n * dim)
    for _ in range(3):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        labels = IDS[labels]
        expected = shrinkage_h_score_ref(features, labels)
        assert shrinkage_h_score(features, labels) == pytest.approx(expected, rel=1e-9)


def test_not_constant_in_the_few_shot_regime() -> None:
    # 5-way 5-shot, d = 32: the plain H-score is C - 1 = 4 on every episode, the shrinkage one
    # is not.
    rng = np.random.default_rng(1)
    plain, shrunk = [], []
    for _ in range(5):
        _, labels, features = random_episode(rng, 25, 2, 5, 32)
        plain.append(h_score(features, labels))
        shrunk.append(shrinkage_h_score(features, labels))
    np.testing.assert_allclose(plain, 4.0, atol=1e-9)
    assert np.ptp(shrunk) > 0.01
    assert all(0.0 < v < 4.0 for v in shrunk)


def test_degenerate_inputs() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(8, 3))
    assert shrinkage_h_score(features, np.full(8, 4)) == pytest.approx(0.0, abs=1e-14)
    assert shrinkage_h_score(np.ones((6, 3)), [0, 1, 2, 0, 1, 2]) == 0.0
    # A class with one sample is its own mean; n < d is fine.
    _, labels, features = random_episode(rng, 7, 2, 3, 20)
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    value = shrinkage_h_score(features, labels)
    assert value == pytest.approx(shrinkage_h_score_ref(features, labels), rel=1e-9)


def test_scale_and_translation_invariant() -> None:
    rng = np.random.default_rng(3)
    _, labels, features = random_episode(rng, 30, 2, 3, 6)
    expected = shrinkage_h_score(features, labels)
    assert shrinkage_h_score(1e-120 * features + 5e-120, labels) == pytest.approx(expected)
    assert shrinkage_h_score(1e120 * features, labels) == pytest.approx(expected)
