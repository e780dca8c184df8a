"""SFDA: public vectors, the naive (published) reference, its conventions."""

from __future__ import annotations

import numpy as np
import pytest

from metaleep.metrics import sfda_score, sfda_score_batch

from .reference import EXPECTED_AFTER_LEEP, VECTORS, random_episode, sfda_ref

SHAPES = [(12, 3, 3), (40, 8, 4), (60, 8, 4), (25, 32, 5), (10, 64, 5)]
IDS = np.array([0, 3, 9, 11, 20])


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_public_vectors(vector: str) -> None:
    _, labels, features = VECTORS[vector]
    expected = EXPECTED_AFTER_LEEP[vector]["sfda"]
    assert sfda_score(features, labels) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "dim", "n_classes"), SHAPES)
def test_matches_naive_reference(n: int, dim: int, n_classes: int) -> None:
    rng = np.random.default_rng(n + 5 * dim)
    for scale in (0.3, 1.0):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        features = scale * features
        labels = IDS[labels]
        assert sfda_score(features, labels) == pytest.approx(sfda_ref(features, labels), rel=1e-9)


def test_does_not_modify_its_input() -> None:
    _, labels, features = VECTORS["V1"]
    before = features.copy()
    sfda_score(features, labels)
    sfda_score_batch(features[None], labels[None])
    np.testing.assert_array_equal(features, before)


def test_saturates_when_classes_are_separable() -> None:
    # n - C < d: the within-class scatter is singular and SFDA is 1 up to rounding.
    rng = np.random.default_rng(1)
    _, labels, features = random_episode(rng, 25, 2, 5, 32)
    assert sfda_score(features, labels) == pytest.approx(1.0, abs=1e-9)


def test_degenerate_inputs() -> None:
    rng = np.random.default_rng(2)
    assert sfda_score(rng.normal(size=(6, 3)), np.zeros(6, dtype=int)) == 1.0
    # One sample per class: zero within-class scatter, the limit gives 1 when means differ.
    assert sfda_score(rng.normal(size=(5, 4)), [0, 1, 2, 3, 4]) == 1.0
    # Constant features: every class mean is the same; the posteriors are the priors.
    assert sfda_score(np.ones((6, 2)), [0, 0, 0, 0, 1, 1]) == pytest.approx(
        (4 * 4 / 6 + 2 * 2 / 6) / 6
    )
    # Huge and tiny features: the shrinkage limits (1e-10 and 1), never NaN.
    _, labels, features = random_episode(rng, 30, 2, 3, 4)
    for scale in (1e-300, 1e300):
        assert 0.0 < sfda_score(scale * features, labels) <= 1.0
