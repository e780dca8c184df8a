"""N-LEEP: agreement with a scikit-learn PCA reference, seeding, tiny episodes, edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from metaleep.metrics import leep_score, nleep_score, nleep_score_batch

from .reference import entropy_of_labels, nleep_ref, random_episode


def _overlapping(rng: np.random.Generator, n: int, n_classes: int, dim: int) -> tuple:
    """Classes with overlapping clusters, so that N-LEEP is strictly between -H(Y) and 0."""
    labels = rng.permutation(np.arange(n) % n_classes)
    centres = 0.8 * rng.normal(size=(n_classes, dim))
    return rng.normal(size=(n, dim)) + centres[labels], labels


@pytest.mark.parametrize(("n", "dim", "n_components"), [(24, 5, 3), (16, 10, None), (9, 4, 3)])
def test_matches_sklearn_pca_reference(n: int, dim: int, n_components: int | None) -> None:
    rng = np.random.default_rng(n)
    features, labels = _overlapping(rng, n, 3, dim)
    got = nleep_score(features, labels, n_components=n_components, seed=3)
    expected = nleep_ref(features, labels, n_components=n_components, seed=3)
    assert got == pytest.approx(expected, abs=1e-9)
    assert -entropy_of_labels(labels) - 1e-12 <= got <= 0.0


def test_reproducible_for_a_seed_and_seed_dependent() -> None:
    rng = np.random.default_rng(1)
    features, labels = _overlapping(rng, 24, 3, 3)
    first = nleep_score(features, labels, n_components=5, seed=0)
    assert nleep_score(features, labels, n_components=5, seed=0) == first
    others = {nleep_score(features, labels, n_components=5, seed=s) for s in range(1, 4)}
    assert others != {first}  # the k-means initialisation depends on the seed


@pytest.mark.parametrize(("ways", "shots"), [(5, 1), (2, 1), (5, 2)])
def test_tiny_supports_are_finite(ways: int, shots: int) -> None:
    rng = np.random.default_rng(ways * 10 + shots)
    features = rng.normal(size=(ways * shots, 64))
    labels = np.repeat(np.arange(ways), shots)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn may warn about tiny data
        value = nleep_score(features, labels, seed=0)
    assert math.isfinite(value)
    assert -entropy_of_labels(labels) - 1e-12 <= value <= 0.0


def test_components_are_clipped_to_half_the_samples() -> None:
    # n = 6: at most 3 components, whatever is asked; 3 equals the reference's explicit 3.
    rng = np.random.default_rng(2)
    features, labels = _overlapping(rng, 6, 2, 3)
    clipped = nleep_score(features, labels, n_components=50, seed=1)
    assert clipped == nleep_score(features, labels, n_components=3, seed=1)
    assert clipped == pytest.approx(nleep_ref(features, labels, n_components=3, seed=1), abs=1e-9)


def test_constant_features_score_minus_label_entropy() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    value = nleep_score(np.full((6, 4), 3.0), labels)
    assert value == pytest.approx(-entropy_of_labels(labels), abs=1e-14)


def test_scale_of_the_features_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    features, labels = _overlapping(rng, 20, 3, 4)
    base = nleep_score(features, labels, n_components=4, seed=0)
    for scale in (1e-150, 1e150):
        scaled = nleep_score(features * scale, labels, n_components=4, seed=0)
        assert scaled == pytest.approx(base, abs=1e-9)


def test_equals_leep_of_the_mixture_posteriors_for_two_clusters() -> None:
    # Two far-apart clusters, two components: the posteriors are the cluster indicators, and
    # N-LEEP is LEEP of that one-hot source.
    rng = np.random.default_rng(4)
    cluster = np.repeat([0, 1], 10)
    features = rng.normal(size=(20, 2)) * 0.01 + 100.0 * cluster[:, None]
    labels = np.array([0] * 7 + [1] * 3 + [1] * 8 + [0] * 2)
    expected = leep_score(np.eye(2)[cluster], labels)
    assert nleep_score(features, labels, n_components=2) == pytest.approx(expected, abs=1e-9)


def test_batch_equals_per_episode_with_mask_and_list() -> None:
    rng = np.random.default_rng(5)
    eps = [_overlapping(rng, n, 3, 4) for n in (9, 14, 20)]
    expected = [nleep_score(f, y, n_components=4, seed=2) for f, y in eps]
    got_list = nleep_score_batch([f for f, _ in eps], [y for _, y in eps], n_components=4, seed=2)
    np.testing.assert_allclose(got_list, expected, rtol=0, atol=1e-12)
    padded = np.full((3, 20, 4), np.nan)
    labels = np.zeros((3, 20), dtype=np.int64)
    mask = np.zeros((3, 20), dtype=bool)
    for e, (f, y) in enumerate(eps):
        padded[e, : len(y)], labels[e, : len(y)], mask[e, : len(y)] = f, y, True
    got_mask = nleep_score_batch(padded, labels, mask=mask, n_components=4, seed=2)
    np.testing.assert_allclose(got_mask, expected, rtol=0, atol=1e-12)


def test_random_episode_helper_is_separable_so_nleep_is_zero() -> None:
    # Well-separated classes with 2 samples per component: every component is pure.
    rng = np.random.default_rng(6)
    _, labels, features = random_episode(rng, 24, 2, 3, 8)
    assert nleep_score(features * 10, labels, seed=0) == pytest.approx(0.0, abs=1e-9)
