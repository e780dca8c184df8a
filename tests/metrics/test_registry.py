"""The metric registry (metaleep.metrics.registry)."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import numpy as np
import pytest

from metaleep.metrics import METRICS, MetricSpec, get_metric


def test_keys_and_order() -> None:
    assert list(METRICS) == [
        "leep",
        "nce",
        "h_score",
        "logme",
        "nleep",
        "shrinkage_h_score",
        "gbc",
        "transrate",
        "sfda",
        "centroid_loo",
        "cosine_spread",
    ]
    for name, spec in METRICS.items():
        assert spec.name == name
        assert spec.higher_is_better is True
        assert spec.input_kind in ("probs", "features")
        assert spec.description


def test_input_kinds() -> None:
    kinds = {name: spec.input_kind for name, spec in METRICS.items()}
    assert kinds == {
        "leep": "probs",
        "nce": "probs",
        "h_score": "features",
        "logme": "features",
        "nleep": "features",
        "shrinkage_h_score": "features",
        "gbc": "features",
        "transrate": "features",
        "sfda": "features",
        "centroid_loo": "features",
        "cosine_spread": "features",
    }


@pytest.mark.parametrize("name", list(METRICS))
def test_declared_options_match_the_signatures(name: str) -> None:
    spec = METRICS[name]
    for fn, extra in ((spec.score, set()), (spec.score_batch, {"mask"})):
        params = inspect.signature(fn).parameters
        keyword_only = {p for p, v in params.items() if v.kind is v.KEYWORD_ONLY}
        assert keyword_only == set(spec.options) | extra


def test_select_options_keeps_only_accepted_ones() -> None:
    options = {"seed": 1, "n_components": 4, "from_logits": True, "validate": False}
    assert get_metric("nleep").select_options(options) == {
        "seed": 1,
        "n_components": 4,
        "validate": False,
    }
    assert get_metric("nce").select_options(options) == {"from_logits": True, "validate": False}
    assert get_metric("h_score").select_options(options) == {"validate": False}


def test_runner_style_call_for_every_metric() -> None:
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(10) % 2, (3, 1))
    inputs = {
        "probs": rng.dirichlet(np.ones(4), size=(3, 10)),
        "features": rng.normal(size=(3, 10, 3)) + labels[..., None],
    }
    mask = np.ones((3, 10), dtype=bool)
    mask[2, 8:] = False
    options = {"seed": 0, "n_components": 2, "from_logits": False}
    for spec in METRICS.values():
        x = inputs[spec.input_kind]
        scores = spec.score_batch(x, labels, mask=mask, **spec.select_options(options))
        assert scores.shape == (3,) and scores.dtype == np.float64
        assert np.all(np.isfinite(scores))
        single = spec.score(x[2, :8], labels[2, :8], **spec.select_options(options))
        assert isinstance(single, float)
        assert single == pytest.approx(scores[2], abs=1e-12)


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        METRICS["leep"].name = "other"  # type: ignore[misc]
    assert isinstance(METRICS["leep"], MetricSpec)


def test_unknown_name_lists_the_valid_ones() -> None:
    names = "'leep', 'nce', 'h_score', 'logme', 'nleep', 'shrinkage_h_score', 'gbc', 'transrate'"
    msg = f"`name` must be one of {names}, 'sfda', 'centroid_loo', 'cosine_spread'; got 'LEEP'."
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        get_metric("LEEP")
    with pytest.raises(TypeError, match=re.escape("`name` must be a metric name (str); got 3.")):
        get_metric(3)  # type: ignore[arg-type]


def test_importing_the_metrics_does_not_import_torch_or_sklearn() -> None:
    code = (
        "import sys, metaleep.metrics, metaleep.metrics.registry; "
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
