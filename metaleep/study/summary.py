"""The end of a study: correlations with accuracy, and the report, from the finished table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd


def analyse_and_report(
    table: pd.DataFrame,
    out_dir: str | Path,
    config: Mapping[str, Any],
    *,
    metrics: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, Path]:
    """Correlations of every metric with accuracy (bootstrap CIs) and ``report.html``.

    LEEP is used raw when every group has one number of ways, normalised (``1 + LEEP / log N``)
    when a group mixes several; the correlation table's ``metric`` column says which
    (``leep`` or ``leep_norm``), and so does the report.
    """
    from metaleep.analysis.correlations import correlations, use_normalised_leep
    from metaleep.metrics.registry import higher_is_better
    from metaleep.report.page import write_report

    by = ("backbone", "dummy", "adaptation")
    orientation = higher_is_better(metrics)
    leep = "normalised" if use_normalised_leep(table, "auto", by=by) else "raw"
    corr = correlations(
        table,
        metrics=list(metrics),
        by=by,
        n_boot=n_boot,
        seed=seed,
        higher_is_better=orientation,
        leep=leep,
    )
    corr = explain_missing(corr)
    report = write_report(
        table,
        out_dir,
        config=config,
        metrics=list(metrics),
        correlations=corr,
        by=by,
        leep=leep,
        n_boot=n_boot,
        seed=seed,
        higher_is_better=orientation,
    )
    return corr, report


def explain_missing(corr: pd.DataFrame) -> pd.DataFrame:
    """The correlation table with the reason in the ``note`` of each metric of a label
    distribution (LEEP, NCE) in rows of dummy ``none``, which have no value by design (why each
    backbone has none is in ``study.json``, ``no_dummy``, and the report's Data block).

    Examples
    --------
    >>> corr = pd.DataFrame({"backbone": "p", "dummy": "none", "metric": ["leep", "logme"],
    ...                      "note": ["fewer than 3 episodes", ""]})
    >>> explain_missing(corr).note.tolist()
    ['no label distribution (dummy none)', '']
    """
    from metaleep.study.outputs import NO_DUMMY, needs_labels

    if "dummy" not in corr.columns or not (corr["dummy"] == NO_DUMMY).any():
        return corr
    rows = (corr["dummy"] == NO_DUMMY) & corr["metric"].map(needs_labels).astype(bool)
    out = corr.copy()
    out.loc[rows, "note"] = "no label distribution (dummy none)"
    return out
