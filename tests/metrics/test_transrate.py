"""TransRate: public vectors (both variants), the naive reference, limits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from metaleep.metrics import transrate_score

from .reference import EXPECTED_AFTER_LEEP, VECTORS, random_episode, transrate_ref

SHAPES = [(12, 3, 3), (40, 8, 4), (25, 32, 5), (10, 64, 5)]
IDS = np.array([0, 3, 9, 11, 20])


@pytest.mark.parametrize("vector", sorted(VECTORS))
@pytest.mark.parametrize("variant", ["authors", "tllib"])
def test_public_vectors(vector: str, variant: str) -> None:
    _, labels, features = VECTORS[vector]
    key = "transrate" if variant == "authors" else "transrate_tllib"
    expected = EXPECTED_AFTER_LEEP[vector][key]
    assert transrate_score(features, labels, variant=variant) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "dim", "n_classes"), SHAPES)
@pytest.mark.parametrize("variant", ["authors", "tllib"])
def test_matches_naive_reference(n: int, dim: int, n_classes: int, variant: str) -> None:
    rng = np.random.default_rng(n + 3 * dim)
    for _ in range(3):
        _, labels, features = random_episode(rng, n, 2, n_classes, dim)
        labels = IDS[labels]
        expected = transrate_ref(features, labels, variant)
        got = transrate_score(features, labels, variant=variant)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_variants_disagree_as_the_notes_say() -> None:
    for vector in VECTORS.values():
        _, labels, features = vector
        ratio = transrate_score(features, labels, variant="tllib") / transrate_score(
            features, labels
        )
        assert 4 < ratio < 150


def test_degenerate_inputs() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(8, 3))
    for variant in ("authors", "tllib"):
        assert transrate_score(features, np.full(8, 2), variant=variant) == 0.0
        assert transrate_score(np.ones((6, 3)), [0, 1, 2] * 2, variant=variant) == 0.0
    # A zero row and a row equal to the mean stay zero (the reference divides 0 by 0).
    features[0] = 0.0
    value = transrate_score(features, [0, 1] * 4)
    assert np.isfinite(value)
    # One sample per class: each block has one eigenvalue; finite.
    assert np.isfinite(transrate_score(rng.normal(size=(5, 8)), [0, 1, 2, 3, 4]))


def test_bad_variant() -> None:
    msg = "`variant` must be 'authors' or 'tllib'; got 'paper'."
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        transrate_score([[0.0], [1.0]], [0, 1], variant="paper")


def test_scale_invariance_of_the_authors_variant_and_overflow() -> None:
    rng = np.random.default_rng(3)
    _, labels, features = random_episode(rng, 20, 2, 4, 6)
    expected = transrate_score(features, labels)
    for scale in (1e-300, 1e300):
        assert transrate_score(scale * features, labels) == pytest.approx(expected, rel=1e-12)
    msg = "`features` must be small enough for ZᵀZ to be finite in transrate"
    with pytest.raises(ValueError, match=re.escape(msg)):
        transrate_score(1e300 * features, labels, variant="tllib")
