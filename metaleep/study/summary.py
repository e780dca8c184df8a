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
    corr = explain_missing(corr, config.get("no_dummy") or {})
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


def explain_missing(corr: pd.DataFrame, reasons: Mapping[str, str]) -> pd.DataFrame:
    """The correlation table with the reason in the ``note`` of each metric of a label
    distribution (LEEP, NCE) in rows of dummy ``none``, which have no value by design.

    Examples
    --------
    >>> corr = pd.DataFrame({"backbone": "p", "dummy": "none", "metric": ["leep", "logme"],
    ...                      "note": ["fewer than 3 episodes", ""]})
    >>> explain_missing(corr, {"p": "no label distribution: no head"}).note.tolist()
    ['no label distribution: no head', '']
    """
    from metaleep.metrics.registry import METRICS
    from metaleep.study.outputs import NO_DUMMY

    if "dummy" not in corr.columns or not (corr["dummy"] == NO_DUMMY).any():
        return corr
    needs_labels = {name for name, spec in METRICS.items() if spec.input_kind == "probs"} | {
        f"{name}_norm" for name, spec in METRICS.items() if spec.input_kind == "probs"
    }
    rows = (corr["dummy"] == NO_DUMMY) & corr["metric"].isin(needs_labels)
    out = corr.copy()
    default = "no label distribution (dummy none)"
    if "backbone" in out.columns:
        out.loc[rows, "note"] = [reasons.get(str(b), default) for b in out.loc[rows, "backbone"]]
    else:
        out.loc[rows, "note"] = default
    return out
