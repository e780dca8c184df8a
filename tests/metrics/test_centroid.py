"""The centroid_loo baseline: the naive reference, hand cases, ties and limits."""

from __future__ import annotations

import numpy as np
import pytest

from metaleep.metrics import centroid_loo_score

from .reference import centroid_loo_ref, random_episode

IDS = np.array([0, 3, 9, 11, 20])


@pytest.mark.parametrize(("n", "dim", "n_classes"), [(12, 3, 3), (25, 32, 5), (40, 8, 4)])
def test_matches_naive_reference(n: int, dim: int, n_classes: int) -> None:
    rng = np.random.default_rng(n + dim)
    for _ in range(4):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        features = 0.6 * features  # some mistakes
        labels = IDS[labels]
        assert centroid_loo_score(features, labels) == centroid_loo_ref(features, labels)


def test_hand_computed() -> None:
    feats = [[0.0], [0.1], [1.0], [1.1], [0.45]]
    assert centroid_loo_score(feats, [0, 0, 1, 1, 1]) == pytest.approx(0.8)


def test_one_shot_and_limits() -> None:
    rng = np.random.default_rng(1)
    assert centroid_loo_score(rng.normal(size=(5, 4)), [0, 1, 2, 3, 4]) == 0.0
    assert centroid_loo_score(rng.normal(size=(5, 4)), np.zeros(5, dtype=int)) == 1.0
    # Constant features: every centroid ties, a uniform pick among 3 classes.
    assert centroid_loo_score(np.ones((6, 2)), [0, 1, 2] * 2) == pytest.approx(1 / 3)


def test_scale_and_translation_invariant() -> None:
    rng = np.random.default_rng(2)
    _, labels, features = random_episode(rng, 20, 2, 4, 5)
    features = 0.6 * features
    expected = centroid_loo_score(features, labels)
    assert centroid_loo_score(1e-200 * features + 3e-200, labels) == expected
    assert centroid_loo_score(1e200 * features, labels) == expected
