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
    (``leep`` or ``leep_norm``), and so does the report. Correlations are within each
    (ways, shots) cell and training seed (a ``seed`` column: :mod:`metaleep.study.seeds`),
    combined; with several seeds, source selection compares the backbones of one seed.
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
    selection = None
    if "seed" in table.columns and table["seed"].nunique() > 1:
        selection = _seeded_selection(table, metrics, by, n_boot, seed)
    report = write_report(
        table,
        out_dir,
        config=config,
        metrics=list(metrics),
        correlations=corr,
        selection=selection,
        by=by,
        leep=leep,
        n_boot=n_boot,
        seed=seed,
        higher_is_better=orientation,
    )
    return corr, report


def _seeded_selection(
    table: pd.DataFrame, metrics: Sequence[str], by: Sequence[str], n_boot: int, seed: int
) -> pd.DataFrame | None:
    """Source selection among the backbones of one training seed, per seed."""
    from metaleep.analysis.selection import source_selection
    from metaleep.metrics.registry import higher_is_better

    groups = ["seed", *[c for c in by if c != "backbone"]]
    shared = table[table.groupby(groups)["backbone"].transform("nunique") > 1]
    if shared.empty:
        return None
    return source_selection(
        shared,
        metrics=list(metrics),
        by=groups,
        n_boot=n_boot,
        seed=seed,
        higher_is_better=higher_is_better(metrics),
        static_prior=True,
    )
