"""The metric registry: one :class:`MetricSpec` per transferability metric, by name.

Everything that iterates over metrics (the study runner, the CLI, the tests) goes through
:data:`METRICS` or :func:`get_metric`, never through a chain of ``if name == ...``.

A runner holding a batch calls::

    spec = get_metric("nleep")
    scores = spec.score_batch(x, labels, mask=mask, **spec.select_options(options))

where ``x`` is the batch's source-model probabilities when ``spec.input_kind == "probs"`` and
its features when it is ``"features"``, and ``options`` may hold options meant for other
metrics (``seed``, ``n_components``, ``from_logits`` ...): :meth:`MetricSpec.select_options`
keeps those this metric accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from metaleep.metrics._validation import message
from metaleep.metrics.hscore import h_score, h_score_batch
from metaleep.metrics.leep import leep_score, leep_score_batch
from metaleep.metrics.logme import logme_score, logme_score_batch
from metaleep.metrics.nce import nce_score, nce_score_batch
from metaleep.metrics.nleep import nleep_score, nleep_score_batch

__all__ = ["METRICS", "InputKind", "MetricSpec", "get_metric"]

InputKind = Literal["probs", "features"]


@dataclass(frozen=True)
class MetricSpec:
    """How to call one metric, and how to read its scores.

    Attributes
    ----------
    name:
        Registry key (``"leep"``, ``"nce"``, ``"h_score"``, ``"logme"``, ``"nleep"``).
    score:
        Per-episode function ``score(x, labels, **options) -> float``.
    score_batch:
        Batched function ``score_batch(x, labels, *, mask=None, **options) -> ndarray (E,)``.
    input_kind:
        ``"probs"``: x holds the source model's probabilities (or logits with
        ``from_logits=True``) over its Z labels; ``"features"``: x holds features.
    higher_is_better:
        Whether a larger score predicts better transfer (True for every metric here).
    description:
        One line for tables and ``--help`` texts.
    options:
        Keyword options accepted by ``score`` and ``score_batch`` besides ``mask``.

    Examples
    --------
    >>> spec = get_metric("leep")
    >>> spec.input_kind, spec.higher_is_better, spec.options
    ('probs', True, ('from_logits', 'validate', 'kernel'))
    >>> spec.score([[0.5, 0.5]] * 2, [0, 1])
    -0.6931...
    """

    name: str
    score: Callable[..., float]
    score_batch: Callable[..., np.ndarray]
    input_kind: InputKind
    higher_is_better: bool
    description: str
    options: tuple[str, ...] = ("validate",)

    def select_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``options`` that this metric accepts (others are dropped).

        Examples
        --------
        >>> get_metric("nleep").select_options({"seed": 3, "from_logits": False})
        {'seed': 3}
        >>> get_metric("leep").select_options({"seed": 3, "from_logits": False})
        {'from_logits': False}
        """
        return {key: value for key, value in options.items() if key in self.options}


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            name="leep",
            score=leep_score,
            score_batch=leep_score_batch,
            input_kind="probs",
            higher_is_better=True,
            description="Log expected empirical prediction (Nguyen et al., ICML 2020).",
            options=("from_logits", "validate", "kernel"),
        ),
        MetricSpec(
            name="nce",
            score=nce_score,
            score_batch=nce_score_batch,
            input_kind="probs",
            higher_is_better=True,
            description="Negative conditional entropy of labels given hard source predictions "
            "(Tran et al., ICCV 2019).",
            options=("from_logits", "validate", "kernel"),
        ),
        MetricSpec(
            name="h_score",
            score=h_score,
            score_batch=h_score_batch,
            input_kind="features",
            higher_is_better=True,
            description="tr(cov(f)^+ cov(g)) of features and class means (Bao et al., ICIP 2019).",
        ),
        MetricSpec(
            name="logme",
            score=logme_score,
            score_batch=logme_score_batch,
            input_kind="features",
            higher_is_better=True,
            description="Log maximum evidence of a Bayesian linear model (You et al., ICML 2021).",
        ),
        MetricSpec(
            name="nleep",
            score=nleep_score,
            score_batch=nleep_score_batch,
            input_kind="features",
            higher_is_better=True,
            description="LEEP on Gaussian-mixture posteriors of PCA features (Li et al., "
            "CVPR 2021).",
            options=("n_components", "seed", "validate"),
        ),
    )
}
"""Every metric by name, in a fixed order: leep, nce, h_score, logme, nleep."""


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` registered under ``name``.

    Raises
    ------
    TypeError
        ``name`` is not a string.
    ValueError
        No metric has that name; the message lists the valid names.

    Examples
    --------
    >>> get_metric("logme").input_kind
    'features'
    >>> get_metric("leap")
    Traceback (most recent call last):
    ...
    ValueError: `name` must be one of 'leep', 'nce', 'h_score', 'logme', 'nleep'; got 'leap'.
    """
    if not isinstance(name, str):
        raise TypeError(message("name", "a metric name (str)", name))
    try:
        return METRICS[name]
    except KeyError:
        valid = ", ".join(repr(key) for key in METRICS)
        raise ValueError(message("name", f"one of {valid}", name)) from None
