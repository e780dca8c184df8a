"""H-score: reference values, hand-computed cases and limits."""

from __future__ import annotations

import numpy as np
import pytest

from metaleep.metrics import h_score, h_score_batch

from .reference import EXPECTED, VECTORS, h_score_ref, random_episode


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_public_vectors(vector: str) -> None:
    _, labels, features = VECTORS[vector]
    expected = EXPECTED[vector]["h_score"]
    assert h_score(features, labels) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("n", "dim", "n_classes"), [(2, 1, 2), (12, 3, 3), (40, 8, 4), (30, 20, 5)]
)
def test_matches_naive_reference(n: int, dim: int, n_classes: int) -> None:
    rng = np.random.default_rng(n + dim)
    for _ in range(3):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        assert h_score(features, labels) == pytest.approx(h_score_ref(features, labels), rel=1e-10)


def test_hand_computed() -> None:
    # Features x = (0, 0, 2, 2) in dim 0, noise (1, -1, 1, -1) in dim 1; classes (0, 0, 1, 1).
    # cov f = diag(4/3, 4/3); g = class means (0,0), (0,0), (2,0), (2,0): cov g = diag(4/3, 0).
    # H = tr(diag(3/4, 3/4) diag(4/3, 0)) = 1.
    features = [[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]]
    assert h_score(features, [0, 0, 1, 1]) == pytest.approx(1.0, abs=1e-14)
    # Scaling the noise does not matter; scaling the class gap along dim 0 does not either.
    assert h_score([[0, 5], [0, -5], [7, 5], [7, -5]], [0, 0, 1, 1]) == pytest.approx(1.0)


def test_uneven_classes_by_hand() -> None:
    # 1-D features (0, 1, 2) with classes (0, 0, 1): mean 1, var f = 1 (unbiased: 2/2).
    # g = (0.5, 0.5, 2): deviations (-0.5, -0.5, 1), var g = 1.5 / 2 = 0.75. H = 0.75.
    assert h_score([[0.0], [1.0], [2.0]], [0, 0, 1]) == pytest.approx(0.75, abs=1e-14)


def test_few_shot_limit_is_classes_minus_one() -> None:
    # With n - 1 <= d the centred features span the sample space: H = C - 1 for any features
    # in general position (H-score carries no information there).
    rng = np.random.default_rng(1)
    _, labels, features = random_episode(rng, 10, 2, 5, 64)
    assert h_score(features, labels) == pytest.approx(4.0, abs=1e-9)
    assert h_score_ref(features, labels) == pytest.approx(4.0, abs=1e-9)


def test_one_class_and_constant_features_give_zero() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(8, 3))
    assert h_score(features, np.full(8, 4)) == pytest.approx(0.0, abs=1e-14)
    assert h_score(np.ones((6, 3)), [0, 1, 2, 0, 1, 2]) == 0.0


def test_invariant_to_translation_and_invertible_maps() -> None:
    rng = np.random.default_rng(3)
    _, labels, features = random_episode(rng, 50, 2, 4, 6)
    mixing = rng.normal(size=(6, 6))
    expected = h_score(features, labels)
    assert h_score(features + 10.0, labels) == pytest.approx(expected, rel=1e-10)
    assert h_score(features @ mixing, labels) == pytest.approx(expected, rel=1e-8)


def test_batch_matches_reference_including_tall_episodes() -> None:
    rng = np.random.default_rng(4)
    eps = [random_episode(rng, 30, 2, 3, 4) for _ in range(3)]
    features = np.stack([f for _, _, f in eps])
    labels = np.stack([y for _, y, _ in eps])
    expected = [h_score_ref(f, y) for _, y, f in eps]
    np.testing.assert_allclose(h_score_batch(features, labels), expected, rtol=1e-10)
