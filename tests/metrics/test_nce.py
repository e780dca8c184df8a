"""NCE: reference values, hand-computed cases and conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metaleep.metrics import nce_score, nce_score_batch
from metaleep.metrics._validation import episodes
from metaleep.metrics.nce import _nce_core

from .reference import (
    BAD_PROB_ROWS,
    EXPECTED,
    VECTORS,
    nce_ref,
    random_episode,
    separate_check_and_deferred,
)


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_public_vectors(vector: str) -> None:
    probs, labels, _ = VECTORS[vector]
    assert nce_score(probs, labels) == pytest.approx(EXPECTED[vector]["nce"], abs=1e-13)


@pytest.mark.parametrize(
    ("n", "n_src", "n_classes"), [(1, 2, 1), (6, 2, 3), (25, 5, 5), (50, 64, 5)]
)
def test_matches_naive_reference(n: int, n_src: int, n_classes: int) -> None:
    rng = np.random.default_rng(n + 7 * n_src)
    for _ in range(3):
        probs, labels, _ = random_episode(rng, n, n_src, n_classes, 2)
        assert nce_score(probs, labels) == pytest.approx(nce_ref(probs, labels), abs=1e-13)


def test_hand_computed() -> None:
    # Hard predictions z = (0, 0, 0, 1, 1, 2) for y = (0, 0, 1, 1, 1, 0):
    # z=0: y counts (2, 1) of 3 -> (2/6) log(2/3) + (1/6) log(1/3)
    # z=1: (0, 2) of 2 -> (2/6) log 1 = 0;  z=2: (1, 0) of 1 -> 0.
    probs = np.eye(3)[[0, 0, 0, 1, 1, 2]]
    expected = 2 / 6 * math.log(2 / 3) + 1 / 6 * math.log(1 / 3)
    assert nce_score(probs, [0, 0, 1, 1, 1, 0]) == pytest.approx(expected, abs=1e-15)


def test_ties_go_to_the_lowest_source_index() -> None:
    # Rows tied between z=0 and z=1 count as z=0: all four samples share z=0 -> -H(Y) = -log 2.
    probs = [[0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.7, 0.3]]
    assert nce_score(probs, [0, 1, 0, 1]) == pytest.approx(-math.log(2), abs=1e-15)
    # Tie rows of class 1 would otherwise go to z=1 and make the score 0.
    assert nce_score([[0.5, 0.5], [0.9, 0.1]], [1, 0]) == pytest.approx(-math.log(2), abs=1e-15)


@pytest.mark.parametrize("n_src", [4, 40])  # the kernel's own argmax, and numpy's from Z = 32
def test_ties_go_to_the_lowest_index_for_long_rows_too(n_src: int) -> None:
    # Rows tied between labels 1 and 3: all go to 1, so labels 0/1 split them evenly.
    row = np.zeros(n_src)
    row[[1, 3]] = 0.5
    probs = np.stack([row] * 4 + [np.eye(n_src)[2]] * 2)
    labels = [0, 1, 0, 1, 2, 2]
    assert nce_score(probs, labels) == pytest.approx(-4 / 6 * math.log(2), abs=1e-15)
    assert nce_score(probs, labels) == pytest.approx(nce_ref(probs, labels), abs=1e-15)


def test_one_class_and_perfect_mapping_are_zero() -> None:
    rng = np.random.default_rng(1)
    probs, _, _ = random_episode(rng, 12, 4, 2, 2)
    assert nce_score(probs, np.full(12, 5)) == 0.0
    assert nce_score(np.eye(4)[[0, 1, 2, 3, 0]], [9, 8, 7, 6, 9]) == 0.0


def test_from_logits_uses_the_argmax_of_the_logits() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(30, 6))
    labels = rng.integers(0, 4, 30)
    expected = nce_ref(np.eye(6)[logits.argmax(1)], labels)
    assert nce_score(logits, labels, from_logits=True) == pytest.approx(expected, abs=1e-14)


def test_upper_bounded_by_zero_lower_bounded_by_minus_label_entropy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        probs, labels, _ = random_episode(rng, 40, 7, 4, 2)
        value = nce_score(probs, labels)
        assert -math.log(4) - 1e-12 <= value <= 0.0


def test_batch_with_raw_ids() -> None:
    rng = np.random.default_rng(4)
    probs = np.stack([random_episode(rng, 8, 3, 2, 2)[0] for _ in range(3)])
    labels = rng.choice(10**6, size=(3, 8))
    expected = [nce_ref(probs[e], labels[e]) for e in range(3)]
    np.testing.assert_allclose(nce_score_batch(probs, labels), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kernel", [True, False])
def test_cpu_kernel_and_torch_ops_agree_on_a_masked_batch(kernel: bool) -> None:
    # The CPU kernel counts cells as it goes and resets the ones it touched; the torch ops
    # (used on CUDA) bincount the whole table. Both must give the reference's values, with
    # padding that holds NaN and episodes that share nothing.
    rng = np.random.default_rng(5)
    probs = np.stack([random_episode(rng, 30, 6, 4, 2)[0] for _ in range(5)])
    labels = rng.integers(0, 4, size=(5, 30))
    mask = rng.random((5, 30)) < 0.7
    mask[2, 1:] = False  # one row: 0
    probs[~mask] = np.nan
    ep = episodes(
        probs,
        labels,
        mask,
        name="probs",
        kind="probs",
        metric="nce",
        single=False,
        defer_probs_check=True,
    )
    got = _nce_core(ep, kernel=kernel).numpy()
    expected = [nce_ref(probs[e][mask[e]], labels[e][mask[e]]) for e in range(5)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize(("row", "msg"), BAD_PROB_ROWS)
def test_deferred_checks_raise_like_the_separate_checks(
    kernel: bool, row: list[float], msg: str
) -> None:
    rng = np.random.default_rng(6)
    probs = np.stack([random_episode(rng, 6, 3, 2, 2)[0] for _ in range(3)])
    labels = np.tile(np.arange(6) % 2, (3, 1))
    probs[1, 2] = row
    expected, ep = separate_check_and_deferred(probs, labels, "nce", msg)
    with pytest.raises(ValueError) as deferred:
        _nce_core(ep, kernel=kernel)
    assert str(deferred.value) == expected
