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

from collections.abc import Sequence

from metaleep.metrics import (
    centroid,
    gbc,
    hscore,
    leep,
    logme,
    nce,
    nleep,
    sfda,
    shrinkage_hscore,
    spread,
    transrate,
)
from metaleep.metrics._validation import message
from metaleep.metrics.spec import InputKind, MetricSpec

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "InputKind",
    "MetricSpec",
    "get_metric",
    "higher_is_better",
]

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        leep.SPEC,
        nce.SPEC,
        hscore.SPEC,
        logme.SPEC,
        nleep.SPEC,
        shrinkage_hscore.SPEC,
        gbc.SPEC,
        transrate.SPEC,
        sfda.SPEC,
        centroid.SPEC,
        spread.SPEC,
    )
}
"""Every metric by name, in a fixed order: leep, nce, h_score, logme, nleep, shrinkage_h_score,
gbc, transrate, sfda and the free baselines centroid_loo and cosine_spread. A new metric is one
line here (its module declares it with :func:`metaleep.metrics.spec.define_metric`)."""

DEFAULT_METRICS: tuple[str, ...] = (
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
)
"""The metrics a study computes by default (``metaleep run``; the table's metric columns when
none are named), in this order: LEEP, the paper's baselines, the metrics after LEEP and the
free baselines ``centroid_loo`` (label-using, 0 at 1 shot) and ``cosine_spread`` (label-free,
defined at 1 shot)."""


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
    ValueError: `name` must be one of 'leep', 'nce', 'h_score', 'logme', 'nleep',
    'shrinkage_h_score', 'gbc', 'transrate', 'sfda', 'centroid_loo', 'cosine_spread'; got 'leap'.
    """
    if not isinstance(name, str):
        raise TypeError(message("name", "a metric name (str)", name))
    try:
        return METRICS[name]
    except KeyError:
        valid = ", ".join(repr(key) for key in METRICS)
        raise ValueError(message("name", f"one of {valid}", name)) from None


def higher_is_better(metrics: Sequence[str]) -> dict[str, bool]:
    """Orientation of each metric from the registry (unknown names: higher is better).

    Examples
    --------
    >>> higher_is_better(["leep", "my_column"])
    {'leep': True, 'my_column': True}
    """
    return {m: METRICS[m].higher_is_better if m in METRICS else True for m in metrics}
