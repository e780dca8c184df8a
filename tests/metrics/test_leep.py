"""LEEP: reference values, hand-computed cases, the paper's facts and the notes' conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metaleep.metrics import leep_score, leep_score_batch, nce_score
from metaleep.metrics._validation import episodes
from metaleep.metrics.leep import Strategy, leep_core

from .reference import (
    BAD_PROB_ROWS,
    EXPECTED,
    VECTORS,
    entropy_of_labels,
    leep_ref,
    random_episode,
    separate_check_and_deferred,
    softmax,
)


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_public_vectors(vector: str) -> None:
    probs, labels, _ = VECTORS[vector]
    assert leep_score(probs, labels) == pytest.approx(EXPECTED[vector]["leep"], abs=1e-13)


@pytest.mark.parametrize(
    ("n", "n_src", "n_classes"), [(1, 3, 1), (2, 2, 2), (7, 3, 2), (25, 5, 5), (40, 64, 5)]
)
def test_matches_naive_reference(n: int, n_src: int, n_classes: int) -> None:
    rng = np.random.default_rng(n * 1000 + n_src)
    for _ in range(3):
        probs, labels, _ = random_episode(rng, n, n_src, n_classes, 2)
        assert leep_score(probs, labels) == pytest.approx(leep_ref(probs, labels), abs=1e-13)


def test_hand_computed_two_by_two() -> None:
    # Unnormalised joint: class 0 row (0.9, 0.1), class 1 row (0.2, 0.8); marginal (1.1, 0.9).
    # P(y|z): y=0: (0.9/1.1, 0.1/0.9); y=1: (0.2/1.1, 0.8/0.9).
    # Sample 0 (y=0): 0.9*0.9/1.1 + 0.1*0.1/0.9 = 0.736364 + 0.011111 = 0.747475.
    # Sample 1 (y=1): 0.2*0.2/1.1 + 0.8*0.8/0.9 = 0.036364 + 0.711111 = 0.747475.
    expected = math.log(0.81 / 1.1 + 0.01 / 0.9)
    assert leep_score([[0.9, 0.1], [0.2, 0.8]], [0, 1]) == pytest.approx(expected, abs=1e-15)


def test_hand_computed_three_samples() -> None:
    # probs rows a=(1, 0), b=(0.5, 0.5), c=(0, 1); labels (0, 0, 1).
    # Joint: y=0: (1.5, 0.5); y=1: (0, 1). Marginal (1.5, 1.5).
    # P(y=0|z) = (1, 1/3); P(y=1|z) = (0, 2/3).
    # a: 1*1 = 1; b: 0.5*1 + 0.5/3 = 2/3; c: 1 * 2/3 = 2/3.
    expected = (math.log(1.0) + 2 * math.log(2 / 3)) / 3
    got = leep_score([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], [0, 0, 1])
    assert got == pytest.approx(expected, abs=1e-15)


def test_input_independent_source_scores_minus_label_entropy() -> None:
    rng = np.random.default_rng(3)
    row = softmax(rng.normal(size=(1, 7)))[0]
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    probs = np.tile(row, (labels.size, 1))
    assert leep_score(probs, labels) == pytest.approx(-entropy_of_labels(labels), abs=1e-14)


def test_one_hot_source_scores_nce() -> None:
    rng = np.random.default_rng(4)
    probs, labels, _ = random_episode(rng, 60, 6, 4, 2)
    one_hot = np.eye(6)[probs.argmax(1)]
    assert leep_score(one_hot, labels) == pytest.approx(nce_score(one_hot, labels), abs=1e-14)
    assert leep_score(one_hot, labels) == pytest.approx(nce_score(probs, labels), abs=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_property_2_bound(seed: int) -> None:
    # LEEP >= NCE + (1/n) sum_i log theta(x_i)_{z_i}, z_i = argmax (Property 2 of the paper).
    rng = np.random.default_rng(seed)
    probs, labels, _ = random_episode(rng, 30, 8, 4, 2, sharp=0.5 + seed)
    bound = nce_score(probs, labels) + np.log(probs.max(1)).mean()
    assert leep_score(probs, labels) >= bound - 1e-12


def test_zero_mass_source_label_is_finite_and_the_papers_value() -> None:
    probs, labels, _ = VECTORS["V3"]
    assert np.all(probs[:, 0] == 0)
    value = leep_score(probs, labels)
    assert math.isfinite(value)
    # Dropping the dead column changes nothing (its terms are all 0).
    assert value == pytest.approx(leep_score(probs[:, 1:], labels), abs=1e-15)


def test_one_target_class_is_exactly_zero() -> None:
    rng = np.random.default_rng(5)
    probs = softmax(rng.normal(size=(9, 4)))
    assert leep_score(probs, np.full(9, 42)) == 0.0
    assert leep_score_batch(probs[None], np.full((1, 9), 3)).tolist() == [0.0]


def test_label_gaps_and_ids_do_not_matter() -> None:
    rng = np.random.default_rng(6)
    probs, labels, _ = random_episode(rng, 20, 5, 3, 2)
    ids = np.array([-7, 100, 10**12])
    assert leep_score(probs, ids[labels]) == pytest.approx(leep_score(probs, labels), abs=1e-15)
    assert leep_score(probs, 2 * labels) == pytest.approx(leep_score(probs, labels), abs=1e-15)


def test_from_logits_equals_softmax_probs() -> None:
    rng = np.random.default_rng(7)
    logits = 3.0 * rng.normal(size=(15, 6))
    labels = rng.integers(0, 3, 15)
    expected = leep_score(softmax(logits), labels)
    assert leep_score(logits, labels, from_logits=True) == pytest.approx(expected, abs=1e-14)


def test_huge_logits_do_not_underflow_or_overflow() -> None:
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(20, 5))
    labels = rng.integers(0, 3, 20)
    one_hot = np.eye(5)[logits.argmax(1)]
    # At scale 1e6 every softmax is one-hot in float64: LEEP becomes NCE, finite.
    value = leep_score(1e6 * logits, labels, from_logits=True)
    assert value == pytest.approx(nce_score(one_hot, labels), abs=1e-14)
    assert leep_score(1e300 * logits, labels, from_logits=True) == pytest.approx(value, abs=1e-14)


def test_not_invariant_to_temperature() -> None:
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(20, 5))
    labels = rng.integers(0, 3, 20)
    sharp = leep_score(logits, labels, from_logits=True)
    soft = leep_score(logits / 10, labels, from_logits=True)
    assert abs(sharp - soft) > 1e-3


@pytest.mark.parametrize("n_classes", [3, 40])  # dense (C <= min(16, Z)) and sparse by default
def test_kernel_dense_sparse_and_gather_strategies_agree(n_classes: int) -> None:
    rng = np.random.default_rng(10)
    probs = np.stack([random_episode(rng, 50, 20, n_classes, 2)[0] for _ in range(4)])
    labels = np.stack([rng.permutation(np.arange(50) % n_classes) for _ in range(4)])
    mask = rng.random((4, 50)) < 0.8
    probs[~mask] = np.nan  # padding may hold anything
    ep = episodes(probs, labels, mask, name="probs", kind="probs", metric="leep", single=False)
    dense = leep_core(ep, from_logits=False, strategy="dense")
    sparse = leep_core(ep, from_logits=False, strategy="sparse")
    gather = leep_core(ep, from_logits=False, strategy="gather")
    kernel = leep_core(ep, from_logits=False, strategy="kernel")
    torch.testing.assert_close(dense, sparse, rtol=0, atol=1e-13)
    torch.testing.assert_close(gather, sparse, rtol=0, atol=1e-13)
    torch.testing.assert_close(kernel, sparse, rtol=0, atol=1e-13)
    expected = [leep_ref(probs[e][mask[e]], labels[e][mask[e]]) for e in range(4)]
    np.testing.assert_allclose(dense.numpy(), expected, rtol=0, atol=1e-13)


def test_raw_class_ids_in_a_batch_are_reencoded_per_episode() -> None:
    # Label range (0..999) far above n: the per-episode ranking path.
    rng = np.random.default_rng(11)
    probs = np.stack([random_episode(rng, 10, 4, 2, 2)[0] for _ in range(3)])
    labels = rng.choice(1000, size=(3, 10))
    got = leep_score_batch(probs, labels)
    expected = [leep_ref(probs[e], labels[e]) for e in range(3)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


def test_strategies_agree_without_mask() -> None:
    # Without a mask the dense joint is a one-hot matmul instead of index_add_.
    rng = np.random.default_rng(12)
    probs = np.stack([random_episode(rng, 30, 8, 4, 2)[0] for _ in range(3)])
    labels = rng.integers(0, 4, size=(3, 30))
    ep = episodes(probs, labels, name="probs", kind="probs", metric="leep", single=False)
    strategies: tuple[Strategy, ...] = ("dense", "sparse", "gather", "kernel")
    results = [leep_core(ep, from_logits=False, strategy=s) for s in strategies]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=1e-13)
    expected = [leep_ref(probs[e], labels[e]) for e in range(3)]
    np.testing.assert_allclose(results[0].numpy(), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_src", [3, 8])  # dense: row sums apart, or a column of the product
@pytest.mark.parametrize("strategy", ["kernel", "dense", "sparse", "gather"])
@pytest.mark.parametrize(("row", "msg"), BAD_PROB_ROWS)
def test_checks_fused_into_the_passes_raise_like_the_separate_checks(
    n_src: int, strategy: Strategy, row: list[float], msg: str
) -> None:
    # The batched function defers the probability checks to the core, which takes the row sums
    # from its expected-prediction pass; every strategy must raise what episodes() raises.
    rng = np.random.default_rng(13)
    probs = np.stack([random_episode(rng, 6, n_src, 2, 2)[0] for _ in range(3)])
    labels = np.tile(np.arange(6) % 2, (3, 1))
    probs[1, 2] = row + [0.0] * (n_src - 3)
    expected, ep = separate_check_and_deferred(probs, labels, "leep", msg)
    with pytest.raises(ValueError) as fused:
        leep_core(ep, from_logits=False, strategy=strategy)
    assert str(fused.value) == expected


@pytest.mark.parametrize("strategy", ["kernel", "dense", "sparse", "gather"])
def test_fused_checks_ignore_the_padding_and_pass_valid_input(strategy: Strategy) -> None:
    rng = np.random.default_rng(14)
    probs = np.stack([random_episode(rng, 8, 4, 3, 2)[0] for _ in range(3)])
    labels = np.tile(np.arange(8) % 3, (3, 1))
    mask = np.ones((3, 8), dtype=bool)
    mask[1, 5:] = False
    probs[1, 5] = [np.nan, -1.0, 2.0, 0.0]
    probs[1, 6] = [-3.0, 0.0, 0.0, 0.0]
    ep = episodes(
        probs,
        labels,
        mask,
        name="probs",
        kind="probs",
        metric="leep",
        single=False,
        defer_probs_check=True,
    )
    got = leep_core(ep, from_logits=False, strategy=strategy).numpy()
    expected = [leep_ref(probs[e][mask[e]], labels[e][mask[e]]) for e in range(3)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_src", [1, 2, 3, 5, 8, 9, 33])  # the kernel unrolls Z <= 8
def test_kernel_matches_reference_for_every_row_length(n_src: int) -> None:
    # The CPU kernel compiles Z = 2..8 with the row length as a constant; each instance and the
    # generic one must give the reference's value, on a ragged batch with a one-class episode.
    rng = np.random.default_rng(20 + n_src)
    sizes = [7, 1, 12, 5]
    probs = [rng.dirichlet(np.ones(n_src) * 0.7, size=k) for k in sizes]
    labels = [rng.integers(0, 3, size=k) for k in sizes]
    labels[3][:] = 4  # one target class: exactly 0
    got = leep_score_batch(probs, labels)
    expected = [leep_ref(p, y) for p, y in zip(probs, labels, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
    assert got[1] == 0.0 and got[3] == 0.0


def test_kernel_log_of_the_running_product_matches_per_row_logs() -> None:
    # The kernel sums logs as the log of a running product, rescaled before it leaves
    # [1e-200, 1e200]: an episode of 5,000 rows with tiny expected predictions (Z = 1,000
    # near-uniform rows: each about 1/C) crosses that bound many times.
    rng = np.random.default_rng(21)
    probs = rng.dirichlet(np.ones(1000) * 50, size=5000)
    labels = rng.integers(0, 500, size=5000)
    got = leep_score(probs, labels)
    expected = leep_ref(probs, labels)
    assert got == pytest.approx(expected, rel=1e-13)
    assert got < -5.0  # log(1/500) per row: the product passes 1e-200 every ~75 rows


@pytest.mark.parametrize("n_src", [5, 40])  # elementwise softmax (Z <= 16) and torch's kernel
def test_from_logits_batch_matches_reference_on_softmax(n_src: int) -> None:
    rng = np.random.default_rng(15)
    logits = 4.0 * rng.normal(size=(3, 20, n_src))
    logits[0, 0] = 1e300 * np.sign(logits[0, 0])  # huge logits: still finite probabilities
    labels = rng.integers(0, 4, size=(3, 20))
    got = leep_score_batch(logits, labels, from_logits=True)
    expected = [leep_ref(softmax(logits[e]), labels[e]) for e in range(3)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
