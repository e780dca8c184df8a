"""The contract (metaleep.metrics.spec): what derives from one batched core."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from metaleep.metrics import METRICS, get_metric
from metaleep.metrics.spec import VALIDATE, Option, define_metric


def _share_of_largest(ep, **_options):  # type: ignore[no-untyped-def]
    return ep.class_counts.amax(1).to(torch.float64) / ep.sizes


def _toy(**kwargs):  # type: ignore[no-untyped-def]
    return define_metric(
        name="toy",
        title="Toy",
        core=_share_of_largest,
        input_kind="features",
        returns="A share.",
        description="A toy.",
        **kwargs,
    )


def test_a_new_metric_is_one_core_and_one_declaration() -> None:
    spec = _toy(min_samples=2)
    assert spec.score([[0.0], [1.0], [2.0]], [4, 4, 9]) == pytest.approx(2 / 3)
    got = spec.score_batch([np.zeros((3, 1)), np.zeros((2, 1))], [[1, 1, 2], [5, 6]])
    np.testing.assert_allclose(got, [2 / 3, 1 / 2])
    mask = np.array([[True, True, False], [True, True, True]])
    got = spec.score_batch(np.zeros((2, 3, 1)), [[1, 2, 2], [3, 3, 3]], mask=mask)
    np.testing.assert_allclose(got, [1 / 2, 1.0])
    msg = "`features` must be an array with at least 2 rows (samples) for toy; got (1, 1)."
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        spec.score([[0.0]], [0])
    assert spec.score.__name__ == "toy_score"
    assert spec.score_batch.__name__ == "toy_score_batch"


def test_signatures_and_docs_are_derived() -> None:
    for name, spec in METRICS.items():
        single = inspect.signature(spec.score)
        batch = inspect.signature(spec.score_batch)
        x_name = "probs" if spec.input_kind == "probs" else "features"
        assert list(single.parameters)[:2] == [x_name, "labels"]
        assert list(batch.parameters)[:3] == [x_name, "labels", "mask"]
        for doc in (spec.score.__doc__, spec.score_batch.__doc__):
            assert doc is not None
            for section in ("Parameters\n----------", "Returns\n-------", "Examples\n--------"):
                assert section in doc, (name, section)
            for option in spec.options:
                assert f"\n{option}:\n" in doc, (name, option)


def test_options_are_checked_before_any_work() -> None:
    calls = []

    def check(value: object) -> int:
        calls.append(value)
        if not isinstance(value, int):
            raise TypeError(f"`k` must be an int; got {value!r}.")
        return value

    spec = _toy(options=(Option("k", 1, "A number.", check, annotation="int"), VALIDATE))
    with pytest.raises(TypeError, match=re.escape("`k` must be an int; got 'x'.")):
        spec.score("not even an array", [0], k="x")
    assert calls == ["x"]
    with pytest.raises(TypeError, match="missing a required argument: 'labels'"):
        spec.score([[0.0]])


def test_declarations_must_have_the_common_options() -> None:
    with pytest.raises(ValueError, match="must include validate"):
        _toy(options=())
    with pytest.raises(ValueError, match="must include from_logits"):
        define_metric(
            name="p",
            title="P",
            core=_share_of_largest,
            input_kind="probs",
            returns="",
            description="",
        )


def test_public_names_are_the_registry_functions() -> None:
    import metaleep.metrics as m

    for name, spec in METRICS.items():
        base = name if name.endswith("_score") else f"{name}_score"
        assert getattr(m, base) is spec.score
        assert getattr(m, f"{base}_batch") is spec.score_batch
    assert get_metric("gbc").core is not None
