"""GBC: public vectors (both Gaussians), the naive reference, hand-computed cases."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from metaleep.metrics import gbc_score, gbc_score_batch

from .reference import EXPECTED_AFTER_LEEP, VECTORS, gbc_ref, random_episode

SHAPES = [(12, 3, 3), (40, 8, 4), (25, 32, 5), (10, 64, 5)]
IDS = np.array([0, 3, 9, 11, 20])


@pytest.mark.parametrize("vector", sorted(VECTORS))
@pytest.mark.parametrize("gaussian", ["spherical", "diagonal"])
def test_public_vectors(vector: str, gaussian: str) -> None:
    _, labels, features = VECTORS[vector]
    key = "gbc" if gaussian == "spherical" else "gbc_diagonal"
    expected = EXPECTED_AFTER_LEEP[vector][key]
    assert gbc_score(features, labels, gaussian=gaussian) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "dim", "n_classes"), SHAPES)
@pytest.mark.parametrize("gaussian", ["spherical", "diagonal"])
def test_matches_naive_reference(n: int, dim: int, n_classes: int, gaussian: str) -> None:
    rng = np.random.default_rng(n + dim)
    for _ in range(3):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        features = 0.3 * features  # classes that overlap: coefficients far from 0
        labels = IDS[labels]
        expected = gbc_ref(features, labels, gaussian)
        got = gbc_score(features, labels, gaussian=gaussian)
        assert got == pytest.approx(expected, rel=1e-11, abs=1e-300)


def test_hand_computed_two_classes() -> None:
    # 1-D classes {0, 2} and {4, 6}: means 1 and 5, variances 1 and 1.
    # BD = (1/8) 16 / 1 + 0 = 2; two ordered pairs: GBC = -2 exp(-2).
    got = gbc_score([[0.0], [2.0], [4.0], [6.0]], [0, 0, 1, 1])
    assert got == pytest.approx(-2 * math.exp(-2.0), rel=1e-14)
    # Spherical counts the log-determinant term once: variances (1, 4) in 2-D average to 2.5
    # for one class; diagonal keeps (1, 4).
    feats = np.array([[0.0, 0.0], [2.0, 4.0], [0.0, 0.0], [2.0, 4.0]])
    labels = [0, 0, 1, 1]  # identical classes: BD = 0 in both cases
    assert gbc_score(feats, labels) == pytest.approx(-2.0)
    assert gbc_score(feats, labels, gaussian="diagonal") == pytest.approx(-2.0)


def test_degenerate_inputs() -> None:
    rng = np.random.default_rng(1)
    assert gbc_score(rng.normal(size=(6, 3)), np.zeros(6, dtype=int)) == 0.0
    assert gbc_score(np.ones((6, 2)), [0, 1, 2, 0, 1, 2]) == pytest.approx(-6.0)
    # One sample per class: variance floored at 1e-4 (the reference's choice).
    feats = np.array([[0.0], [0.01]])
    expected = -2 * math.exp(-(0.01**2) / 1e-4 / 8)
    assert gbc_score(feats, [0, 1]) == pytest.approx(expected, rel=1e-12)


def test_bad_gaussian_option() -> None:
    msg = "`gaussian` must be 'spherical' or 'diagonal'; got 'full'."
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        gbc_score([[0.0], [1.0]], [0, 1], gaussian="full")
    with pytest.raises(TypeError, match=re.escape("`gaussian` must be")):
        gbc_score_batch([[[0.0], [1.0]]], [[0, 1]], gaussian=1)


def test_huge_features_are_an_error_not_nan() -> None:
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(20, 4))
    labels = np.arange(20) % 4
    assert gbc_score(1e-300 * feats, labels) == pytest.approx(-12.0)  # all under the floor
    msg = "`features` must be small enough for the class variances to be finite in gbc"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gbc_score(1e300 * feats, labels)
