"""LogME: the public vectors, an explicit-matrix reference and degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metaleep.metrics import logme_score, logme_score_batch

from .reference import EXPECTED, VECTORS, logme_ref, random_episode


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_public_vectors(vector: str) -> None:
    _, labels, features = VECTORS[vector]
    expected = EXPECTED[vector]["logme"]
    assert logme_score(features, labels) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("n", "dim", "n_classes"),
    [(1, 3, 1), (5, 8, 5), (12, 20, 3), (25, 64, 5), (40, 6, 4), (60, 16, 2)],
)
def test_matches_explicit_matrix_reference(n: int, dim: int, n_classes: int) -> None:
    # Includes n < D (few-shot), where log|A| counts the D - n zero eigenvalues of F'F.
    rng = np.random.default_rng(n * 100 + dim)
    for _ in range(2):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        expected = logme_ref(features, labels)
        assert logme_score(features, labels) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_absent_classes_are_not_counted() -> None:
    rng = np.random.default_rng(1)
    _, labels, features = random_episode(rng, 30, 2, 3, 5)
    # Ids {0, 1, 2} -> {0, 5, 9}: the gap classes would pull a C = max+1 average down.
    ids = np.array([0, 5, 9])[labels]
    assert logme_score(features, ids) == pytest.approx(logme_score(features, labels), rel=1e-13)


def test_informative_features_score_higher() -> None:
    rng = np.random.default_rng(2)
    labels = np.arange(60) % 3
    informative = rng.normal(size=(60, 4)) + 4.0 * np.eye(4)[labels]
    noise = rng.normal(size=(60, 4))
    assert logme_score(informative, labels) > logme_score(noise, labels) + 0.1


@pytest.mark.parametrize(
    "features",
    [np.zeros((6, 3)), np.ones((6, 3)), np.full((6, 3), 1e-200), np.full((6, 3), 1e150)],
    ids=["zeros", "ones", "tiny", "huge"],
)
def test_degenerate_features_are_finite(features: np.ndarray) -> None:
    value = logme_score(features, [0, 1, 2, 0, 1, 2])
    assert math.isfinite(value)


def test_zero_features_have_the_closed_form() -> None:
    # F = 0: L = n/2 log beta - beta/2 |y|^2 - n/2 log 2 pi with beta = n / (|y|^2 + 1e-5)
    # after the first update (alpha drops out: rank 0).
    n, n_c = 6, 2
    beta = n / (n_c + 1e-5)
    per_class = (n / 2 * math.log(beta) - beta / 2 * n_c - n / 2 * math.log(2 * math.pi)) / n
    assert logme_score(np.zeros((n, 4)), [0, 0, 1, 1, 2, 2]) == pytest.approx(per_class, rel=1e-12)


def test_batch_with_ragged_episodes_matches_reference() -> None:
    rng = np.random.default_rng(3)
    eps = [random_episode(rng, n, 2, 3, 10) for n in (6, 15, 30)]
    got = logme_score_batch([f for _, _, f in eps], [y for _, y, _ in eps])
    expected = [logme_ref(f, y) for _, y, f in eps]
    np.testing.assert_allclose(got, expected, rtol=1e-9)
