"""The metrics after LEEP and the baseline together: few-shot shapes, ragged and masked
batches equal per-episode calls to 1e-12, label permutations, bad input."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from metaleep.metrics import get_metric

from .reference import random_episode

NEW = ["shrinkage_h_score", "gbc", "transrate", "sfda", "centroid_loo", "cosine_spread"]
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("shrinkage_h_score", {}),
    ("gbc", {}),
    ("gbc", {"gaussian": "diagonal"}),
    ("transrate", {}),
    ("transrate", {"variant": "tllib"}),
    ("sfda", {}),
    ("centroid_loo", {}),
    ("cosine_spread", {}),
]
VARIANT_IDS = [
    f"{name}-{'-'.join(map(str, opts.values())) or 'default'}" for name, opts in VARIANTS
]


def _episodes(sizes: list[int], dim: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        _, labels, features = random_episode(rng, n, 2, min(5, n // 2), dim)
        out.append((0.5 * features, np.array([7, -2, 40, 3, 11])[labels]))
    return out


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dim", [4, 32])
def test_ragged_and_masked_batches_equal_per_episode(
    name: str, options: dict[str, Any], dim: int
) -> None:
    spec = get_metric(name)
    eps = _episodes([25, 10, 17, 25, 6], dim, seed=dim)
    expected = [spec.score(x, y, **options) for x, y in eps]
    got = spec.score_batch([x for x, _ in eps], [y for _, y in eps], **options)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    n_max = 25
    x = np.full((len(eps), n_max, dim), np.nan)
    labels = np.zeros((len(eps), n_max), dtype=np.int64)
    mask = np.zeros((len(eps), n_max), dtype=bool)
    for e, (xe, ye) in enumerate(eps):
        x[e, : len(ye)], labels[e, : len(ye)], mask[e, : len(ye)] = xe, ye, True
    got = spec.score_batch(x, labels, mask=mask, **options)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_label_permutation_and_sample_order(name: str, options: dict[str, Any]) -> None:
    spec = get_metric(name)
    rng = np.random.default_rng(4)
    for x, y in _episodes([25, 12], 32, seed=5):
        expected = spec.score(x, y, **options)
        ids = np.unique(y)
        relabel = dict(zip(ids, rng.permutation(ids) * 3 - 1, strict=True))
        y2 = np.array([relabel[v] for v in y])
        assert spec.score(x, y2, **options) == pytest.approx(expected, rel=1e-10, abs=1e-12)
        order = rng.permutation(len(y))
        assert spec.score(x[order], y[order], **options) == pytest.approx(
            expected, rel=1e-10, abs=1e-12
        )


@pytest.mark.parametrize("name", NEW)
def test_degenerate_inputs_are_finite(name: str) -> None:
    spec = get_metric(name)
    rng = np.random.default_rng(6)
    cases = [
        (rng.normal(size=(6, 3)), np.zeros(6, dtype=int)),  # one class
        (rng.normal(size=(7, 3)), np.array([0, 0, 0, 1, 1, 1, 2])),  # a class of one sample
        (np.full((6, 3), 2.5), np.array([0, 1, 2] * 2)),  # constant features
        (rng.normal(size=(6, 50)), np.array([0, 1, 2] * 2)),  # n < d
        (rng.normal(size=(5, 4)), np.arange(5)),  # one sample per class
    ]
    for x, y in cases:
        assert np.isfinite(spec.score(x, y))


@pytest.mark.parametrize("name", NEW)
def test_bad_input_same_errors(name: str) -> None:
    spec = get_metric(name)
    x = np.random.default_rng(7).normal(size=(6, 3))
    bad = x.copy()
    bad[2, 1] = np.inf
    with pytest.raises(
        ValueError, match="^" + re.escape("`features[2, 1]` must be finite; got inf.")
    ):
        spec.score(bad, [0, 1] * 3)
    with pytest.raises(TypeError, match=re.escape("`validate` must be a bool; got 1.")):
        spec.score(x, [0, 1] * 3, validate=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'seeds'"):
        spec.score(x, [0, 1] * 3, seeds=1)


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_rounding_level_inputs_do_not_depend_on_the_batch(
    name: str, options: dict[str, Any]
) -> None:
    # Identical rows (within-class scatter at rounding level) and large features (rounding
    # noise around the zero eigenvalues that centring leaves): the value must not be noise
    # that changes with the episodes scored beside it.
    spec = get_metric(name)
    rng = np.random.default_rng(8)
    labels = np.array([0, 1, 2, 3] * 5 + [0, 1])
    cases = [
        np.repeat(rng.normal(size=(1, 14)), 22, axis=0),
        1e40 * rng.normal(size=(22, 29)),
        np.repeat(rng.normal(size=(4, 6)), [6, 6, 5, 5], axis=0)[np.argsort(labels, kind="stable")],
    ]
    for x in cases:
        single = spec.score(x, labels, **options)
        assert np.isfinite(single)
        batch = spec.score_batch([x, x[:9]], [labels, labels[:9]], **options)
        assert batch[0] == pytest.approx(single, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_identical_rows_found_by_fuzzing(name: str, options: dict[str, Any]) -> None:
    # 29 identical rows in 4 classes with label gaps: class means differ from the rows by
    # rounding only (SFDA once amplified that noise through a near-zero within-class scatter).
    row = [0.5604435503391193, -0.13046760995618983, 1.178047922624705, 0.27525227137008373]
    row += [-0.6382562578243661, 1.3532951114454046, 0.7125892795167095, 1.2429251672645283]
    row += [-0.7761684108941213, -0.6592967128842657, -0.04788824437979396]
    row += [-0.5246266288151065, -0.6788658952742713, 0.4883415323581302]
    x = np.repeat(np.array([row]), 29, axis=0)
    labels = np.array(
        [1, 3, 1, 1, 0, 0, 3, 3, 3, 1, 1, 0, 0, 3, 1, 0, 1, 3, 1, 2, 2, 2, 1, 3, 2, 2, 3, 2, 2]
    )
    labels = 7 * labels - 3  # label gaps: unused codes change the shapes of the core's tensors
    spec = get_metric(name)
    threads = torch.get_num_threads()
    values = []
    try:
        for n_threads in (1, 2):  # the rounding noise also moved with torch's thread count
            torch.set_num_threads(n_threads)
            values.append(spec.score(x, labels, **options))
            batch = spec.score_batch([x, x[:14]], [labels, labels[:14]], **options)
            values.append(float(batch[0]))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(values, values[0], rtol=1e-9, atol=1e-12)
