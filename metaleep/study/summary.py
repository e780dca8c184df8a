"""The end of a study: analyse the finished table, then render it (report and CSVs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from metaleep.analysis.study import StudyAnalysis


def analyse_and_report(
    table: pd.DataFrame,
    out_dir: str | Path,
    config: Mapping[str, Any],
    *,
    metrics: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[StudyAnalysis, Path]:
    """:func:`~metaleep.analysis.study.analyse_study`, its CSVs and ``report.html``.

    LEEP is used raw when every group has one number of ways, normalised (``1 + LEEP / log N``)
    when a group mixes several; the correlation table's ``metric`` column says which
    (``leep`` or ``leep_norm``), and so does the report. Correlations are within each
    (ways, shots) cell and training seed (a ``seed`` column: :mod:`metaleep.study.seeds`),
    combined; with several seeds, source selection compares the backbones of one seed. The
    analysis is written (CSVs, ``analysis.json``) before the report is drawn, so a failing
    figure loses no number.
    """
    from metaleep.analysis.study import analyse_study
    from metaleep.report.page import write_report

    analysis = analyse_study(
        table, config=config, metrics=list(metrics), leep="auto", n_boot=n_boot, seed=seed
    )
    # rows of dummy ``none`` have no LEEP or NCE by design: their notes say so
    analysis = replace(analysis, correlations=explain_missing(analysis.correlations))
    analysis.write(out_dir)
    return analysis, write_report(analysis, out_dir)


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
