"""The batched Gaussian mixture behind N-LEEP against scikit-learn's ``GaussianMixture``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.cluster._kmeans import _kmeans_plusplus
from sklearn.mixture import GaussianMixture

from metaleep.metrics import nleep_score, nleep_score_batch
from metaleep.metrics._mixture import _kmeans, mixture_posteriors
from metaleep.metrics._mixture import _kmeans_plusplus as seeding


def _sklearn(points: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """scikit-learn's posteriors, or None where it warns or fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            mixture = GaussianMixture(k, covariance_type="full", random_state=seed)
            return mixture.fit(points).predict_proba(points)
        except (ValueError, Warning):
            return None


@pytest.mark.parametrize(
    ("episodes", "n", "dim", "k"),
    [(60, 5, 1, 2), (60, 5, 4, 2), (40, 6, 2, 3), (30, 10, 2, 5), (30, 25, 3, 12), (10, 50, 5, 10)],
)
def test_posteriors_equal_scikit_learn(episodes: int, n: int, dim: int, k: int) -> None:
    rng = np.random.default_rng(n * 100 + dim)
    points = rng.normal(size=(episodes, n, dim)) * rng.uniform(0.1, 10, size=(episodes, 1, dim))
    seeds = rng.integers(0, 2**32 - 1, size=episodes)
    post, ok = mixture_posteriors(points, k, seeds)
    assert ok.all()
    for e in range(episodes):
        expected = _sklearn(points[e], k, int(seeds[e]))
        assert expected is not None
        np.testing.assert_allclose(post[e], expected, rtol=0, atol=1e-10)


def test_seeding_and_labels_follow_scikit_learn_draw_for_draw() -> None:
    """k-means++ picks the same points (ties included) and Lloyd ends on the same labels."""
    rng = np.random.default_rng(7)
    points = rng.normal(size=(40, 25, 3))
    seeds = rng.integers(0, 2**32 - 1, size=40)
    centred = points - points.mean(axis=1, keepdims=True)
    chosen = seeding(centred, np.einsum("end,end->en", centred, centred), 12, seeds)
    labels, ok = _kmeans(points, 12, seeds)
    assert ok.all()
    for e in range(40):
        x = centred[e]
        _, expected = _kmeans_plusplus(
            x, 12, np.einsum("ij,ij->i", x, x), np.ones(25), np.random.RandomState(int(seeds[e]))
        )
        np.testing.assert_array_equal(chosen[e], expected)
        km = KMeans(12, n_init=1, random_state=np.random.RandomState(int(seeds[e])))
        np.testing.assert_array_equal(labels[e], km.fit(points[e]).labels_)


def test_episodes_scikit_learn_would_warn_on_are_flagged() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=(3, 6, 2))
    points[1] = points[1, 0]  # one distinct sample, two components
    points[2, 1:] = points[2, 0]  # likewise, but for the first row
    post, ok = mixture_posteriors(points, 2, np.array([0, 1, 2]))
    assert ok.tolist() == [True, False, False]
    np.testing.assert_allclose(post[0], _sklearn(points[0], 2, 0), rtol=0, atol=1e-10)


def test_nleep_batch_takes_one_seed_per_episode() -> None:
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(4, 10, 6))
    labels = np.tile(np.arange(10) % 5, (4, 1))
    seeds = [3, 11, 2**32 - 2, 0]
    batch = nleep_score_batch(feats, labels, seed=seeds)
    single = [nleep_score(feats[e], labels[e], seed=s) for e, s in enumerate(seeds)]
    np.testing.assert_array_equal(batch, single)
    assert nleep_score_batch(feats, labels, seed=np.array(seeds)).tolist() == batch.tolist()
    with pytest.raises(ValueError, match=r"^`seed` must be one seed or 4 seeds; got 3\.$"):
        nleep_score_batch(feats, labels, seed=[1, 2, 3])
    with pytest.raises(ValueError, match=r"^`seed` must be a non-negative integer; got -1\.$"):
        nleep_score_batch(feats, labels, seed=[1, 2, -1, 4])


def test_nleep_falls_back_to_scikit_learn_on_flagged_episodes() -> None:
    """Features with fewer distinct rows than components: scikit-learn's own result."""
    rng = np.random.default_rng(9)
    feats = rng.normal(size=(2, 8, 3))
    feats[1, 4:] = feats[1, 0]  # 5 distinct rows, 4 components
    labels = np.tile(np.arange(8) % 2, (2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = nleep_score_batch(feats, labels, n_components=4, seed=1)
    assert np.isfinite(got).all()
    assert got[0] == nleep_score(feats[0], labels[0], n_components=4, seed=1)
