"""The cosine_spread baseline: the naive reference, hand cases, label-freeness and limits."""

from __future__ import annotations

import numpy as np
import pytest

from metaleep.metrics import cosine_spread_score, cosine_spread_score_batch

from .reference import cosine_spread_ref


@pytest.mark.parametrize(("n", "dim"), [(2, 3), (5, 32), (25, 32), (40, 8)])
def test_matches_naive_reference(n: int, dim: int) -> None:
    rng = np.random.default_rng(n + dim)
    for _ in range(3):
        features = rng.normal(size=(n, dim)) + rng.normal(size=dim)
        labels = rng.integers(0, 5, size=n)
        assert cosine_spread_score(features, labels) == pytest.approx(
            cosine_spread_ref(features), abs=1e-13
        )


def test_hand_computed() -> None:
    # pairs: (a, b) cos 1, (a, c) cos 0, (b, c) cos 0 -> distances 0, 1, 1
    assert cosine_spread_score([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], [0, 1, 2]) == pytest.approx(
        2 / 3
    )
    # 45 degrees: 1 - 1/sqrt(2)
    assert cosine_spread_score([[1.0, 0.0], [1.0, 1.0]], [0, 1]) == pytest.approx(1 - 2**-0.5)
    assert cosine_spread_score([[1.0, 2.0], [-1.0, -2.0]], [0, 1]) == 2.0


def test_reads_no_labels() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(10, 4))
    value = cosine_spread_score(features, np.arange(10))
    assert cosine_spread_score(features, np.zeros(10, dtype=int)) == value
    assert cosine_spread_score(features, rng.integers(0, 3, size=10)) == value


def test_scale_invariant_and_zero_rows() -> None:
    rng = np.random.default_rng(2)
    features = np.abs(rng.normal(size=(6, 5)))
    value = cosine_spread_score(features, np.arange(6))
    assert 0.0 <= value <= 1.0  # non-negative features (a ReLU embedding): cosines >= 0
    assert cosine_spread_score(1e-200 * features, np.arange(6)) == pytest.approx(value, abs=1e-14)
    assert cosine_spread_score(1e200 * features, np.arange(6)) == pytest.approx(value, abs=1e-14)
    # a zero embedding has no direction: cosine 0 with every other sample (distance 1)
    zero = np.vstack([features, np.zeros(5)])
    assert cosine_spread_score(zero, np.arange(7)) == pytest.approx(cosine_spread_ref(zero))
    assert cosine_spread_score(np.zeros((3, 2)), [0, 1, 2]) == 1.0


def test_identical_embeddings_have_no_spread() -> None:
    rows = np.tile([[0.3, 4.0, 1.0]], (5, 1))
    assert cosine_spread_score(rows, np.arange(5)) == pytest.approx(0.0, abs=1e-15)
    batch = cosine_spread_score_batch(np.stack([rows, 2 * rows]), np.tile(np.arange(5), (2, 1)))
    np.testing.assert_allclose(batch, 0.0, atol=1e-15)


def test_one_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        cosine_spread_score([[1.0, 0.0]], [0])
