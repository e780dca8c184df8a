"""Properties every metric of the registry must have (in the spirit of sklearn's test_common)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from metaleep.metrics import METRICS, MetricSpec

from .reference import softmax

SPECS = list(METRICS.values())
IDS = list(METRICS)
OPTIONS: dict[str, dict[str, Any]] = {"nleep": {"seed": 0, "n_components": 3}}
LABELS_EXPECTED = (
    "integer class ids (bool and float labels are rejected; cast with .astype(int) or .long())"
)


def _episode(spec: MetricSpec, rng: np.random.Generator, n: int, n_classes: int = 3) -> tuple:
    """``(x, labels)`` for the metric's input kind; classes well apart (stable mixtures)."""
    labels = rng.permutation(np.arange(n) % n_classes)
    if spec.input_kind == "probs":
        logits = rng.normal(size=(n, 6)) + 1.5 * rng.normal(size=(n_classes, 6))[labels]
        return softmax(logits), labels
    centres = 6.0 * rng.normal(size=(n_classes, 4))
    return rng.normal(size=(n, 4)) + centres[labels], labels


def _score(spec: MetricSpec, x: Any, labels: Any) -> float:
    return spec.score(x, labels, **OPTIONS.get(spec.name, {}))


def _batch(spec: MetricSpec, x: Any, labels: Any, **kwargs: Any) -> np.ndarray:
    return spec.score_batch(x, labels, **kwargs, **OPTIONS.get(spec.name, {}))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_returns_python_float_and_is_deterministic(spec: MetricSpec) -> None:
    x, labels = _episode(spec, np.random.default_rng(0), 18)
    value = _score(spec, x, labels)
    assert type(value) is float
    assert np.isfinite(value)
    assert _score(spec, x, labels) == value


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_invariant_to_sample_order(spec: MetricSpec) -> None:
    rng = np.random.default_rng(1)
    x, labels = _episode(spec, rng, 18)
    order = rng.permutation(18)
    expected = _score(spec, x, labels)
    assert _score(spec, x[order], labels[order]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_invariant_to_target_ids(spec: MetricSpec) -> None:
    rng = np.random.default_rng(2)
    x, labels = _episode(spec, rng, 18)
    ids = np.array([1000, -3, 17])[rng.permutation(3)]
    assert _score(spec, x, ids[labels]) == pytest.approx(_score(spec, x, labels), abs=1e-12)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.input_kind == "probs"], ids=["leep", "nce"])
def test_invariant_to_source_label_order(spec: MetricSpec) -> None:
    rng = np.random.default_rng(3)
    x, labels = _episode(spec, rng, 18)
    columns = rng.permutation(x.shape[1])
    assert _score(spec, x[:, columns], labels) == pytest.approx(_score(spec, x, labels), abs=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_list_array_and_tensor_inputs_agree(spec: MetricSpec) -> None:
    x, labels = _episode(spec, np.random.default_rng(4), 15)
    expected = _score(spec, x, labels)
    assert _score(spec, x.tolist(), labels.tolist()) == expected
    assert _score(spec, torch.from_numpy(x), torch.from_numpy(labels)) == expected
    assert _score(spec, torch.from_numpy(x), labels.astype(np.int32)) == expected
    # float32 input is computed in float64, after the cast.
    x32 = x.astype(np.float32)
    if spec.input_kind == "probs":
        x32 = (x32 / x32.sum(1, keepdims=True)).astype(np.float32)
    assert _score(spec, x32, labels) == _score(spec, x32.astype(np.float64), labels)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_batch_equals_per_episode(spec: MetricSpec) -> None:
    rng = np.random.default_rng(5)
    eps = [_episode(spec, rng, 12) for _ in range(4)]
    x = np.stack([e[0] for e in eps])
    labels = np.stack([e[1] for e in eps])
    expected = [_score(spec, xe, ye) for xe, ye in eps]
    np.testing.assert_allclose(_batch(spec, x, labels), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        _batch(spec, torch.from_numpy(x), torch.from_numpy(labels)), expected, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_ragged_batches_as_mask_and_as_list(spec: MetricSpec) -> None:
    rng = np.random.default_rng(6)
    sizes = [6, 12, 9, 3]
    eps = [_episode(spec, rng, n) for n in sizes]
    expected = [_score(spec, xe, ye) for xe, ye in eps]
    got_list = _batch(spec, [e[0] for e in eps], [e[1] for e in eps])
    np.testing.assert_allclose(got_list, expected, rtol=0, atol=1e-12)

    width = eps[0][0].shape[1]
    x = np.full((len(sizes), max(sizes), width), np.nan)  # the padding is never read
    labels = np.full((len(sizes), max(sizes)), -1)
    mask = np.zeros((len(sizes), max(sizes)), dtype=bool)
    for e, (xe, ye) in enumerate(eps):
        x[e, : len(ye)], labels[e, : len(ye)], mask[e, : len(ye)] = xe, ye, True
    got_mask = _batch(spec, x, labels, mask=mask)
    np.testing.assert_allclose(got_mask, expected, rtol=0, atol=1e-12)
    # A full mask is the same as no mask.
    full = _batch(spec, np.nan_to_num(x)[:, :3], labels[:, :3], mask=np.ones((4, 3), dtype=bool))
    np.testing.assert_allclose(full, _batch(spec, np.nan_to_num(x)[:, :3], labels[:, :3]))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_bad_inputs_raise_with_full_messages(spec: MetricSpec) -> None:
    x, labels = _episode(spec, np.random.default_rng(7), 6)
    name = spec.input_kind
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=_full(f"`{name}[3, 1]` must be finite; got nan.")):
        _score(spec, bad, labels)
    with pytest.raises(
        TypeError, match=_full(f"`labels` must be {LABELS_EXPECTED}; got dtype('float64').")
    ):
        _score(spec, x, labels.astype(float))
    msg = "`labels` must be 1-D with one label per row (length 6); got (5,)."
    with pytest.raises(ValueError, match=_full(msg)):
        _score(spec, x, labels[:5])
    cols = "Z" if name == "probs" else "d"
    msg = f"`{name}` must be a 2-D array of shape (n, {cols}); got (6, 1, {x.shape[1]})."
    with pytest.raises(ValueError, match=_full(msg)):
        _score(spec, x[:, None, :], labels)
    batch_bad = np.stack([x, bad])
    with pytest.raises(ValueError, match=_full(f"`{name}[1, 3, 1]` must be finite; got nan.")):
        _batch(spec, batch_bad, np.stack([labels, labels]))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.input_kind == "probs"], ids=["leep", "nce"])
def test_logits_passed_as_probabilities_suggest_from_logits(spec: MetricSpec) -> None:
    logits = np.random.default_rng(8).normal(size=(5, 3))
    first_negative = tuple(int(i) for i in np.argwhere(logits < 0)[0])
    with pytest.raises(ValueError, match=re.escape("pass from_logits=True if these are logits")):
        spec.score(logits, [0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=re.escape(f"`probs[{first_negative[0]}, ")):
        spec.score(logits, [0, 1, 2, 0, 1])
    assert np.isfinite(spec.score(logits, [0, 1, 2, 0, 1], from_logits=True))


def _full(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_cuda_matches_cpu(spec: MetricSpec) -> None:
    rng = np.random.default_rng(9)
    sizes = [7, 12, 10]
    eps = [_episode(spec, rng, n) for n in sizes]
    cpu = _batch(spec, [e[0] for e in eps], [e[1] for e in eps])
    cuda_list = _batch(
        spec,
        [torch.from_numpy(e[0]).cuda() for e in eps],
        [torch.from_numpy(e[1]).cuda() for e in eps],
    )
    np.testing.assert_allclose(cuda_list, cpu, rtol=0, atol=1e-12)
    x = np.zeros((3, 12, eps[0][0].shape[1]))
    labels = np.zeros((3, 12), dtype=np.int64)
    mask = np.zeros((3, 12), dtype=bool)
    for e, (xe, ye) in enumerate(eps):
        x[e, : len(ye)], labels[e, : len(ye)], mask[e, : len(ye)] = xe, ye, True
    cuda_mask = _batch(
        spec,
        torch.from_numpy(x).cuda(),
        torch.from_numpy(labels).cuda(),
        mask=torch.from_numpy(mask).cuda(),
    )
    np.testing.assert_allclose(cuda_mask, cpu, rtol=0, atol=1e-12)
    single = spec.score(torch.from_numpy(eps[1][0]).cuda(), eps[1][1], **OPTIONS.get(spec.name, {}))
    assert single == pytest.approx(cpu[1], abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("n_classes", [3, 40])
def test_cuda_leep_strategies(n_classes: int) -> None:
    from metaleep.metrics import leep_score_batch

    rng = np.random.default_rng(10)
    probs = rng.dirichlet(np.ones(20), size=(5, 60))
    labels = rng.integers(0, n_classes, size=(5, 60))
    cpu = leep_score_batch(probs, labels)
    cuda = leep_score_batch(torch.from_numpy(probs).cuda(), torch.from_numpy(labels).cuda())
    np.testing.assert_allclose(cuda, cpu, rtol=0, atol=1e-12)
