"""Bad input, generated: every public entry point either returns a correct finite value or raises
a clear library error, never a NaN, a hang or an exception from deep inside a dependency.

Covered: the metrics (per episode and batched) on random arrays of any shape and dtype, and on
valid episodes with one thing broken (NaN/inf, huge or tiny values, logits passed as
probabilities, odd dtypes, negative/huge/float/bool labels, empty and single-sample episodes,
ragged and masked batches); :class:`EpisodeSpec` and :class:`EpisodeSampler` asked for more
ways, shots or queries than exist; manifests checked against the wrong data set;
:class:`StudyConfig` with bad values.

A clear error is a ``ValueError``/``TypeError`` whose message has the library's wording
(``"`name` must be ...; got ...."``), or one of the library's own exception types (whose
messages name the file and what to do). ``numpy.linalg.LinAlgError`` is a ``ValueError``: the
wording check is what rules it out. Each property runs at most 100-200 examples with a
deadline, derandomised (the same examples on every run); ``METALEEP_FUZZ_FACTOR=k`` multiplies
every count by k (``make fuzz`` runs k = 5: over 10,000 cases of the metric API, counted and
printed at the end of the module).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metaleep.backbones.checkpoint import CheckpointError
from metaleep.episodes import EpisodeSampler, EpisodeSpec
from metaleep.episodes.manifest import ManifestError
from metaleep.metrics import METRICS, get_metric
from metaleep.study.config import StudyConfig
from metaleep.study.store import StoreError

LIBRARY_ERRORS = (ManifestError, StoreError, CheckpointError)
WORDING = re.compile(r"^`[^`]+` must .+; got .+\.$", re.DOTALL)

FACTOR = max(1, int(os.environ.get("METALEEP_FUZZ_FACTOR", "1")))
"""Multiplies every example count (``make fuzz``: 5)."""
CASES = {"metric": 0}
"""Cases of the metric API run by this module (printed at its end)."""


def examples(n: int) -> int:
    """``n`` examples, times :data:`FACTOR`."""
    return n * FACTOR


FUZZ = settings(
    max_examples=examples(150),
    deadline=3000,  # ms per example (a hang fails the property)
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(call: Callable[[], Any]) -> Any:
    """``call()``'s value, or None when it raised a clear library error; anything else fails."""
    try:
        return call()
    except LIBRARY_ERRORS:
        return None
    except (ValueError, TypeError) as error:
        text = str(error)
        if type(error) not in (ValueError, TypeError) or not WORDING.match(text):
            raise AssertionError(
                f"unclear error {type(error).__module__}.{type(error).__qualname__}: {text}"
            ) from error
        return None


def _finite(value: Any) -> None:
    array = np.asarray(value, dtype=np.float64)
    assert np.isfinite(array).all(), f"non-finite result {value!r}"


@pytest.fixture(scope="module", autouse=True)
def count_cases(request: pytest.FixtureRequest) -> Any:
    """Print how many metric-API cases ran (the figure ``make fuzz`` reports)."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None and CASES["metric"]:
        with capture.global_and_fixture_disabled():
            print(f"\nfuzz: {CASES['metric']} cases of the metric API (factor {FACTOR})")


@pytest.fixture(scope="module", autouse=True)
def warm_up() -> None:
    """First calls import torch/scikit-learn paths and compile the numba kernels; keep that
    out of the deadlines."""
    rng = np.random.default_rng(0)
    probs, features, labels = _softmax(rng.normal(size=(6, 3))), rng.normal(size=(6, 4)), [0, 1] * 3
    for spec in METRICS.values():
        x = probs if spec.input_kind == "probs" else features
        spec.score(x, labels)
        spec.score_batch([x], [labels])
        if "kernel" in spec.options:
            # The fused kernels compile on first use (about 7 s with a cold numba cache,
            # NUMBA_CACHE_DIR empty): here, not inside a property's deadline.
            spec.score(x, labels, kernel=True)
            spec.score_batch([x], [labels], kernel=True)


# ----------------------------------------------------------------------------- references


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _leep_naive(probs: np.ndarray, labels: np.ndarray) -> float:
    n = len(labels)
    classes = sorted(set(labels.tolist()))
    joint = np.array([probs[labels == y].sum(0) / n for y in classes])  # (C, Z)
    marginal = joint.sum(0)
    total = 0.0
    for i in range(n):
        y = classes.index(labels[i])
        expected = sum(
            joint[y, z] / marginal[z] * probs[i, z] for z in range(probs.shape[1]) if marginal[z]
        )
        total += math.log(expected)
    return total / n


def _nce_naive(probs: np.ndarray, labels: np.ndarray, order: np.ndarray | None = None) -> float:
    """NCE; hard labels are the argmax of ``order`` (default ``probs``): pass the logits, whose
    order softmax keeps exactly, where rounding may tie the probabilities."""
    n = len(labels)
    hard = [int(np.argmax(row)) for row in (probs if order is None else order)]
    pairs: dict[tuple[int, int], int] = {}
    for y, z in zip(labels.tolist(), hard, strict=True):
        pairs[(y, z)] = pairs.get((y, z), 0) + 1
    per_z = {z: sum(c for (_, zz), c in pairs.items() if zz == z) for z in set(hard)}
    return sum(c / n * math.log(c / per_z[z]) for (_, z), c in pairs.items())


def _h_score_naive(features: np.ndarray, labels: np.ndarray) -> float:
    f = features - features.mean(0)
    g = np.stack([features[labels == y].mean(0) for y in labels])
    g = g - g.mean(0)
    n = len(labels)
    cov_f, cov_g = f.T @ f / (n - 1), g.T @ g / (n - 1)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


# ----------------------------------------------------------------------------- strategies

DTYPES: list[Any] = [
    np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.uint64,
    np.bool_, np.complex128, object, np.dtype("U2"),
]  # fmt: skip


@st.composite
def junk(draw: st.DrawFn, max_dims: int = 3) -> Any:
    """An array of any dtype and shape (NaN/inf included), as an array, list or tensor, or a
    value of another type altogether."""
    kind = draw(st.sampled_from(["array", "array", "array", "list", "tensor", "other"]))
    if kind == "other":
        return draw(st.sampled_from([None, "abc", 3.5, {"a": 1}, b"\x00", object(), (1, "x")]))
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=5))
    if dtype is object:
        elements = st.one_of(st.none(), st.integers(-3, 3), st.floats(), st.text(max_size=2))
        array = draw(hnp.arrays(object, shape, elements=elements))
    else:
        array = draw(hnp.arrays(dtype, shape))
    if kind == "list":
        return array.tolist()
    if kind == "tensor":
        try:
            return torch.from_numpy(np.ascontiguousarray(array))
        except TypeError:  # a dtype torch has no tensor for
            return array
    return array


MUTATIONS = [
    "none", "none", "none",
    "nan", "inf", "-inf", "huge", "tiny", "logits-as-probs", "constant", "duplicate-rows",
    "float16", "float32", "int64", "bool", "object", "list", "tensor32", "3d",
    "labels-negative", "labels-huge", "labels-uint64", "labels-float", "labels-bool",
    "labels-2d", "labels-short", "labels-list", "labels-tensor", "labels-one-class",
    "labels-distinct", "one-sample", "empty", "no-columns",
    "pandas", "labels-series", "tensor16", "bfloat16",
]  # fmt: skip


@st.composite
def episode(draw: st.DrawFn, kind: str) -> tuple[Any, Any, str, bool]:
    """``(x, labels, mutation, from_logits)``: a valid episode of ``kind`` ("probs" or
    "features") with at most one thing broken."""
    n = draw(st.integers(1, 9))
    width = draw(st.integers(1, 5))
    n_classes = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(0, n_classes, n)
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 300.0]))
    from_logits = kind == "probs" and draw(st.booleans())
    raw = rng.normal(size=(n, width)) * scale
    if kind == "probs" and not from_logits:
        x: Any = _softmax(raw)
    else:
        x = raw + draw(st.sampled_from([0.0, 1e3]))
    mutation = draw(st.sampled_from(MUTATIONS))
    i, k = int(rng.integers(n)), int(rng.integers(width))
    if mutation in ("nan", "inf", "-inf"):
        x[i, k] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[mutation]
    elif mutation == "huge":
        x = x * 1e300 if kind == "features" or from_logits else x
    elif mutation == "tiny":
        x = x * 1e-300 if kind == "features" or from_logits else x
    elif mutation == "logits-as-probs" and kind == "probs":
        x, from_logits = raw, False
    elif mutation == "constant":
        x = np.full_like(x, x[0, 0])
    elif mutation == "duplicate-rows":
        x = np.repeat(x[:1], n, axis=0)
    elif mutation in ("float16", "float32", "int64", "bool", "object"):
        x = x.astype({"float16": np.float16, "float32": np.float32, "int64": np.int64}.get(
            mutation, np.bool_ if mutation == "bool" else object
        ))  # fmt: skip
    elif mutation == "list":
        x = x.tolist()
    elif mutation == "tensor32":
        x = torch.from_numpy(x.astype(np.float32))
    elif mutation == "3d":
        x = x[None]
    elif mutation == "labels-negative":
        labels = labels - 10**6
    elif mutation == "labels-huge":
        labels = labels * (2**60) - 2**62
    elif mutation == "labels-uint64":
        labels = labels.astype(np.uint64) + np.uint64(2**63)
    elif mutation == "labels-float":
        labels = labels.astype(np.float64)
    elif mutation == "labels-bool":
        labels = labels % 2 == 0
    elif mutation == "labels-2d":
        labels = labels[:, None]
    elif mutation == "labels-short":
        labels = labels[:-1]
    elif mutation == "labels-list":
        labels = labels.tolist()
    elif mutation == "labels-tensor":
        labels = torch.from_numpy(labels)
    elif mutation == "labels-one-class":
        labels = np.zeros_like(labels)
    elif mutation == "labels-distinct":
        labels = np.arange(n) * 7 - 3
    elif mutation == "one-sample":
        x, labels = x[:1], labels[:1]
    elif mutation == "empty":
        x, labels = x[:0], labels[:0]
    elif mutation == "no-columns":
        x = x[:, :0]
    elif mutation == "pandas":
        import pandas as pd

        x, labels = pd.DataFrame(x), pd.Series(labels)
    elif mutation == "labels-series":
        import pandas as pd

        labels = pd.Series(labels)
    elif mutation in ("tensor16", "bfloat16"):
        x = torch.from_numpy(x).to(torch.float16 if mutation == "tensor16" else torch.bfloat16)
    return x, labels, mutation, from_logits


def _call(name: str, x: Any, labels: Any, from_logits: bool, batch: bool = False, **kw: Any) -> Any:
    CASES["metric"] += 1
    spec = get_metric(name)
    options = {"from_logits": from_logits} if spec.input_kind == "probs" else {}
    if name == "nleep":
        options["seed"] = 0
    function = spec.score_batch if batch else spec.score
    return function(x, labels, **options, **kw)


def _valid_values(x: Any, kind: str, from_logits: bool) -> bool:
    """Whether ``x`` holds values the metric accepts (what ``validate=False`` assumes)."""
    try:
        values = _as_float64(x)
    except (TypeError, ValueError):
        return True  # not an array: refused whatever validate says
    if not np.isfinite(values).all():
        return False
    if kind == "probs" and not from_logits and values.size:
        return bool((values >= 0).all() and np.allclose(values.sum(-1), 1.0, rtol=0, atol=1e-3))
    return True


def _as_float64(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.double().numpy()
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- metric properties

NAMES = list(METRICS)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_metric_on_random_arrays(name: str, data: st.DataObject) -> None:
    x, labels = data.draw(junk(), label="x"), data.draw(junk(max_dims=2), label="labels")
    from_logits = data.draw(st.booleans(), label="from_logits")
    value = outcome(lambda: _call(name, x, labels, from_logits))
    if value is not None:
        assert isinstance(value, float)
        _finite(value)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_metric_on_broken_episodes(name: str, data: st.DataObject) -> None:
    kind = get_metric(name).input_kind
    x, labels, mutation, from_logits = data.draw(episode(kind), label="episode")
    value = outcome(lambda: _call(name, x, labels, from_logits))
    refused = ["nan", "inf", "-inf", "labels-float", "labels-bool", "labels-2d", "labels-short"]
    if kind == "probs":
        refused.append("logits-as-probs")
    if mutation in refused:
        assert value is None, f"{mutation} was accepted"
    if value is None:
        return
    assert isinstance(value, float)
    _finite(value)
    # the value is the right one: compare with naive references on float64 inputs
    x64 = _as_float64(x)
    y = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels)
    y = y.astype(np.int64)
    if kind == "probs":
        probs = x64 if not from_logits else _softmax(x64)
        if name == "leep":
            reference = _leep_naive(probs, y)
        else:
            reference = _nce_naive(probs, y, x64 if from_logits else None)
        # rows of low-precision probabilities sum to 1 only within their tolerance, and the
        # one-class convention (LEEP = 0) ignores that deviation where the naive log keeps it
        off = float(np.abs(probs.sum(1) - 1).max()) if probs.size else 0.0
        assert value == pytest.approx(reference, rel=1e-6, abs=max(1e-9, 2 * off))
    elif name == "h_score" and 1e-100 < np.abs(x64).max() < 1e100:
        centred = x64 - x64.mean(0)
        singular = np.linalg.svd(centred, compute_uv=False)
        # well-conditioned, and centred values above the rounding noise of the mean (the
        # naive pseudo-inverse inverts noise, where the metric sees constant features)
        if singular[-1] > 1e-6 * singular[0] > 1e-14 * np.abs(x64).max():
            assert value == pytest.approx(_h_score_naive(x64, y), rel=1e-5, abs=1e-6)


OPTION_VALUES = st.one_of(
    st.booleans(),
    st.integers(-3, 2**70),
    st.floats(allow_nan=True),
    st.sampled_from([None, "yes", np.bool_(True), np.int64(2), [1], torch.tensor(1)]),
)


@pytest.mark.parametrize("name", NAMES)
@settings(FUZZ, max_examples=examples(100))
@given(data=st.data())
def test_metric_options_with_bad_values(name: str, data: st.DataObject) -> None:
    spec = get_metric(name)
    x, labels, mutation, logits = data.draw(episode(spec.input_kind), label="episode")
    chosen = data.draw(st.sets(st.sampled_from(spec.options), min_size=1), label="options")
    options = {key: data.draw(OPTION_VALUES, label=key) for key in chosen}
    if options.get("validate") is False and (
        mutation in ("nan", "inf", "-inf", "huge", "logits-as-probs")
        or (logits and options.get("from_logits") is not True)  # logits read as probabilities
        or not _valid_values(x, spec.input_kind, options.get("from_logits") is True)
    ):
        return  # values unchecked by request: undefined results (shapes are still checked)
    batched = data.draw(st.booleans(), label="batched")
    if batched:
        x, labels = [x], [labels]
        if data.draw(st.booleans(), label="with mask"):
            options["mask"] = data.draw(junk(max_dims=2), label="mask")
    function = spec.score_batch if batched else spec.score
    CASES["metric"] += 1
    value = outcome(lambda: function(x, labels, **options))
    if value is not None:
        _finite(value)


def test_h_score_of_identical_features_is_zero() -> None:
    from metaleep.metrics import h_score

    features = np.repeat([[-0.00060715, -0.00159396, 0.02248243]], 6, axis=0)
    assert h_score(features, [1, 2, 2, 1, 1, 1]) == pytest.approx(0.0, abs=1e-9)


@st.composite
def batch(draw: st.DrawFn, kind: str) -> tuple[Any, Any, Any, str, bool]:
    """``(x, labels, mask, form, from_logits)``: E episodes as a grid, a masked grid or a
    ragged list, one of them possibly broken."""
    n_episodes = draw(st.integers(1, 4))
    from_logits = kind == "probs" and draw(st.booleans())
    width = draw(st.integers(1, 4))
    parts, labels = [], []
    broken = draw(st.sampled_from(["none", "none", "nan", "empty", "one-sample", "width"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    form = draw(st.sampled_from(["grid", "mask", "list"]))
    n_grid = draw(st.integers(1, 7))
    for e in range(n_episodes):
        n = n_grid if form != "list" else draw(st.integers(1, 7))
        raw = rng.normal(size=(n, width))
        x = _softmax(raw) if kind == "probs" and not from_logits else raw
        y = rng.integers(0, 3, n)
        if e == n_episodes - 1:
            if broken == "nan":
                x[0, 0] = np.nan
            elif broken == "empty" and form == "list":
                x, y = x[:0], y[:0]
            elif broken == "one-sample" and form == "list":
                x, y = x[:1], y[:1]
            elif broken == "width" and form == "list":
                x = x[:, :0]
        parts.append(x)
        labels.append(y)
    if form == "list":
        return parts, labels, None, form, from_logits
    mask = None
    if form == "mask":
        mask = rng.random((n_episodes, n_grid)) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    return np.stack(parts), np.stack(labels), mask, form, from_logits


@pytest.mark.parametrize("name", NAMES)
@settings(FUZZ, max_examples=examples(100))
@given(data=st.data())
def test_batched_metric_equals_per_episode_or_refuses(name: str, data: st.DataObject) -> None:
    kind = get_metric(name).input_kind
    x, labels, mask, _form, from_logits = data.draw(batch(kind), label="batch")
    kw = {"mask": mask} if mask is not None else {}
    values = outcome(lambda: _call(name, x, labels, from_logits, batch=True, **kw))
    if values is None:
        return
    assert isinstance(values, np.ndarray) and values.dtype == np.float64
    assert values.shape == (len(x),)
    _finite(values)
    for e in range(len(x)):
        rows = np.ones(len(labels[e]), bool) if mask is None else mask[e]
        single = _call(name, x[e][rows], labels[e][rows], from_logits)
        assert values[e] == pytest.approx(single, rel=1e-6, abs=1e-9)


# ----------------------------------------------------------------------------- episodes

ODD_COUNTS = st.one_of(
    st.integers(-3, 40),
    st.just(10**12),
    st.booleans(),
    st.floats(allow_nan=True),
    st.sampled_from(["5", None, np.int64(3), np.float64(2.0)]),
)


@FUZZ
@given(
    ways=ODD_COUNTS,
    shots=ODD_COUNTS,
    queries=ODD_COUNTS,
    rule=st.sampled_from(["any", "same", "mixed", "bogus", 3]),
    sizes=st.lists(st.integers(0, 12), min_size=0, max_size=8),
    alphabet_of=st.lists(st.sampled_from(["a", "b"]), min_size=8, max_size=8),
    pool=st.one_of(st.none(), st.lists(st.integers(-2, 9), max_size=8)),
    seed=st.one_of(st.integers(-1, 2**40), st.just(True), st.just(1.5)),
    index=st.one_of(st.integers(-2, 2**40), st.just(False), st.just(2.5)),
)
def test_episode_sampler_asked_for_too_much(
    ways, shots, queries, rule, sizes, alphabet_of, pool, seed, index
) -> None:
    spec = outcome(lambda: EpisodeSpec(ways=ways, shots=shots, queries=queries, alphabets=rule))
    if spec is None:
        return
    assert spec.ways >= 2 and spec.shots >= 1 and spec.queries >= 1
    starts = np.cumsum([0, *sizes])
    source = {c: np.arange(starts[c], starts[c + 1]) for c in range(len(sizes))}
    alphabets = {c: alphabet_of[c] for c in range(len(sizes))}
    sampler = outcome(
        lambda: EpisodeSampler(source, spec, classes=pool, alphabets=alphabets, seed=seed)
    )
    if sampler is None:
        return
    episode = outcome(lambda: sampler.sample(index))
    if episode is None:
        return
    # a valid episode of the pool: N distinct pool classes, K + Q distinct images of each
    assert episode.ways == spec.ways and len(set(episode.classes.tolist())) == spec.ways
    assert set(episode.classes.tolist()) <= set(sampler.classes.tolist())
    for images, labels, per in (
        (episode.support, episode.support_labels, spec.shots),
        (episode.query, episode.query_labels, spec.queries),
    ):
        assert len(images) == spec.ways * per
        for target, c in enumerate(episode.classes):
            assert set(images[labels == target].tolist()) <= set(source[int(c)].tolist())
    assert not set(episode.support.tolist()) & set(episode.query.tolist())
    if spec.alphabets == "same":
        assert len({alphabets[int(c)] for c in episode.classes}) == 1
    if spec.alphabets == "mixed":
        assert len({alphabets[int(c)] for c in episode.classes}) > 1


@pytest.fixture(scope="module")
def manifest_home(tmp_path_factory) -> Any:
    return tmp_path_factory.mktemp("manifests")


@settings(FUZZ, max_examples=examples(60))
@given(
    made_for=st.tuples(st.integers(4, 8), st.integers(4, 6), st.integers(0, 3)),
    used_with=st.tuples(st.integers(2, 8), st.integers(1, 6), st.integers(0, 3)),
    same_name=st.booleans(),
    episodes=st.integers(1, 4),
)
def test_manifest_checked_against_the_wrong_data_set(
    made_for, used_with, same_name, episodes, manifest_home
) -> None:
    """A suite made on one data set, checked against another (with the same id and version,
    as a regenerated cache would claim, or its own): refused, or its episodes really are valid
    episodes of the other data set."""
    from metaleep.backbones.testing import toy_dataset
    from metaleep.episodes.manifest import (
        read_manifest,
        suite_from_episodes,
        validate_against,
        write_manifest,
    )

    (ca, pa, sa), (cb, pb, sb) = made_for, used_with
    a = toy_dataset(classes=ca, per_class=pa, size=7, seed=sa)
    b = toy_dataset(classes=cb, per_class=pb, size=7, seed=sb)
    if same_name:
        b = dataclasses.replace(b, dataset_id=a.dataset_id, version=a.version)
    spec = EpisodeSpec(ways=2, shots=1, queries=2)
    drawn = EpisodeSampler(a, spec, seed=sa).sample_many(episodes)
    suite = suite_from_episodes(
        drawn, [spec] * episodes, name="fuzz", dataset=a, split="all", part="all",
        pool=np.arange(ca), seed=sa,
    )  # fmt: skip
    path = write_manifest(suite, manifest_home / "fuzz.csv")
    checked = outcome(lambda: validate_against(suite, b, path=path) or "valid")
    read = outcome(lambda: read_manifest(path, dataset=b))
    assert (checked is None) == (read is None)  # same verdict either way
    if read is None:
        return
    assert b.fingerprint == a.fingerprint
    for ep in read.episodes:  # valid in b: every image exists and has its target's class
        for images, targets in ((ep.support, ep.support_labels), (ep.query, ep.query_labels)):
            assert (images < len(b)).all()
            assert (b.labels[images] == ep.classes[targets]).all()


# ----------------------------------------------------------------------------- StudyConfig

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.text(max_size=6), max_size=3),
    st.tuples(st.sampled_from(["leep", "head", "maml", "cpu"]), st.integers()),
    st.sampled_from(
        ["leep", "nce", "head", "source", "prototypes", "maml", "anil", "prototype", "cpu",
         "cuda:0", "auto", "glyphs-5w1s", ("leep", "leep"), ("head",), np.int64(3),
         np.float64(2.0), float("inf"), b"cpu", 0, 1]
    ),
)  # fmt: skip
FIELDS = [f.name for f in dataclasses.fields(StudyConfig) if f.name != "extra"]


@settings(FUZZ, max_examples=examples(200))
@given(values=st.dictionaries(st.sampled_from(FIELDS), ANYTHING, max_size=4))
def test_study_config_with_bad_values(values: dict[str, Any]) -> None:
    config = outcome(lambda: StudyConfig(**values))
    if config is None:
        return
    # what was accepted is usable: JSON-ready, counts positive, names known, temperature finite
    json.dumps(config.to_dict())
    assert config.chunk_size >= 1 and (config.episodes is None or config.episodes >= 1)
    assert config.temperature is None or (
        not isinstance(config.temperature, bool) and 0 < config.temperature < math.inf
    )
    assert isinstance(config.seed, int) and config.seed >= 0
    assert set(config.metrics) <= set(METRICS)
    assert isinstance(config.device, str)
    assert all(isinstance(name, str) and name for name in config.backbones)
