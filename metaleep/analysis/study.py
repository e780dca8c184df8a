"""A study's analysis in one object: everything its report shows, computed, nothing drawn.

:func:`analyse_study` takes the study's tidy table (one row per episode, backbone, dummy-label
mode and adaptation) and returns a :class:`StudyAnalysis`:

- the **correlations** of every metric with post-adaptation accuracy per group (Pearson,
  Spearman, Kendall, weighted tau, bootstrap CIs; :mod:`metaleep.analysis.correlations`);
- the **verdict**: per group, the metric with the highest Pearson r and whether it beats the
  free baseline (``centroid_loo``, the support set's leave-one-out nearest-centroid accuracy)
  in a paired bootstrap test that holds the familywise error rate over every comparison of a
  metric with the baseline (:func:`~metaleep.analysis.baseline.baseline_tests`);
- LEEP against every other metric (paired bootstrap), the correlations per number of ways /
  shots / within-alphabet episodes, source-model selection when several backbones ran,
  the accuracy of each adaptation with how far it converged
  (:mod:`metaleep.analysis.accuracy`), the metrics that are constant, findings worth saying in
  words, and timings.

:mod:`metaleep.report.page` renders it; :meth:`StudyAnalysis.write` stores its tables as CSV.
A new analysis is a new field (default ``None``) filled here and a section there that draws it
when present.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from metaleep.analysis.accuracy import accuracy_notes, accuracy_table
from metaleep.analysis.baseline import baseline_tests, verdict
from metaleep.analysis.correlations import (
    LEEP_LIKE,
    METHODS,
    add_normalised_leep,
    compare_metrics,
    correlations,
    use_normalised_leep,
)
from metaleep.analysis.tables import (
    check_boot,
    check_table,
    is_constant,
    iter_groups,
    metric_columns,
)

__all__ = ["StudyAnalysis", "analyse_study", "constant_metrics"]

logger = logging.getLogger(__name__)

_GROUP_EXTRAS: tuple[str, ...] = ("ways", "shots", "within_alphabet")
"""Columns whose values get correlation tables of their own when they vary within a group."""


# --------------------------------------------------------------------------------------------
# The result object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StudyAnalysis:
    """Everything a study's report shows (:func:`analyse_study`), and how it was computed.

    Attributes
    ----------
    table:
        The analysed table (with ``leep_norm`` / ``nleep_norm`` columns when LEEP is
        normalised).
    metrics:
        The metric columns analysed, in order (``leep_norm`` in place of ``leep`` when
        normalised).
    by:
        The grouping columns of the main tables (those of the table among the requested).
    target:
        The accuracy column.
    leep_form:
        ``"raw"`` or ``"normalised"`` (``1 + LEEP / log N``).
    mixed_ways:
        Whether some group mixes episodes with different numbers of ways.
    n_boot, confidence, seed, alpha:
        Bootstrap resamples, CI coverage, resampling seed and the familywise level of the
        baseline tests.
    baseline:
        The free baseline the best metric is tested against (``None`` when absent).
    correlations:
        :func:`~metaleep.analysis.correlations.correlations` of every metric per group.
    verdict:
        One row per group (:func:`~metaleep.analysis.baseline.verdict`): the best metric, its
        r and CI, the baseline's, and whether the best beats the baseline.
    config:
        The study's configuration (``study.json``'s ``config``), for the report's last section.
    baseline_tests:
        Every metric against the baseline per group
        (:func:`~metaleep.analysis.baseline.baseline_tests`); ``None`` without a
        baseline.
    comparisons:
        LEEP against every other metric per group
        (:func:`~metaleep.analysis.correlations.compare_metrics`, Pearson); ``None`` without
        LEEP or with one metric.
    per_group:
        Pearson correlations with one more grouping column (``ways``, ``shots``,
        ``within_alphabet``) where it varies within the groups: ``{column: table}``.
    selection:
        :func:`~metaleep.analysis.selection.source_selection` over the configurations that
        several backbones share (with the static prior); ``None`` with one backbone.
    selection_note:
        Why selection was not computed when it could have been (empty otherwise).
    accuracy:
        :func:`~metaleep.analysis.accuracy.accuracy_table` (``None`` without episode, backbone
        and adaptation columns).
    accuracy_notes:
        Adaptations that did not converge, heads that start nearly flat.
    findings:
        What the table shows about degenerate metrics (NCE and H-score on 1-shot episodes).
    constant_metrics:
        Metrics constant within every group (no correlation to draw).
    timings:
        Mean seconds per episode of each ``seconds_*`` column per group (``None`` without).
    """

    table: pd.DataFrame
    metrics: tuple[str, ...]
    by: tuple[str, ...]
    target: str
    leep_form: str
    mixed_ways: bool
    n_boot: int
    confidence: float
    seed: int
    alpha: float
    baseline: str | None
    correlations: pd.DataFrame
    verdict: pd.DataFrame
    config: Mapping[str, object] = field(default_factory=dict)
    baseline_tests: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    per_group: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    selection: pd.DataFrame | None = None
    selection_note: str = ""
    accuracy: pd.DataFrame | None = None
    accuracy_notes: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    constant_metrics: tuple[str, ...] = ()
    timings: pd.DataFrame | None = None

    @property
    def n_episodes(self) -> int:
        """Distinct episodes in the table (rows when it has no ``episode`` column)."""
        keys = [c for c in ("suite", "episode") if c in self.table.columns]
        return int(self.table.groupby(keys).ngroups) if "episode" in keys else len(self.table)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The CSV files of the analysis, by file name (those computed)."""
        found: dict[str, pd.DataFrame | None] = {
            "correlations.csv": self.correlations,
            "verdict.csv": self.verdict,
            "baseline_tests.csv": self.baseline_tests,
            "comparisons.csv": self.comparisons,
            "selection.csv": self.selection,
            "accuracy.csv": self.accuracy,
            **{f"correlations_by_{k}.csv": v for k, v in self.per_group.items()},
        }
        return {name: frame for name, frame in found.items() if frame is not None}

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write :meth:`tables` and ``analysis.json`` (how they were computed) to ``out_dir``."""
        from metaleep._io import atomic_write_bytes

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in self.tables().items():
            atomic_write_bytes(out / name, frame.to_csv(index=False).encode("utf-8"))
            written.append(out / name)
        tests = self.baseline_tests
        meta = {
            "metrics": list(self.metrics),
            "by": list(self.by),
            "target": self.target,
            "leep_form": self.leep_form,
            "n_boot": self.n_boot,
            "confidence": self.confidence,
            "seed": self.seed,
            "alpha": self.alpha,
            "baseline": self.baseline,
            "baseline_comparisons": None if tests is None else tests.attrs.get("n_comparisons"),
        }
        atomic_write_bytes(out / "analysis.json", json.dumps(meta, indent=2).encode("utf-8"))
        return [*written, out / "analysis.json"]


# --------------------------------------------------------------------------------------------
# Findings and constant metrics
# --------------------------------------------------------------------------------------------


def _one_shot_findings(table: pd.DataFrame, metrics: Sequence[str], by: Sequence[str]) -> list[str]:
    """Sentences about NCE / H-score on 1-shot episodes, from what the table shows."""
    if "shots" not in table.columns or not (table["shots"] == 1).any():
        return []
    one = table[table["shots"] == 1]
    keys = [c for c in (*by, "ways") if c in one.columns]
    found: list[str] = []
    names = {"h_score": "H-score", "nce": "NCE"}
    for metric in ("h_score", "nce"):
        if metric not in metrics:
            continue
        grouped = one.groupby(keys, dropna=False)[metric] if keys else None
        distinct = grouped.nunique() if grouped is not None else pd.Series([one[metric].nunique()])
        n_groups = len(distinct)
        n_constant = int((distinct <= 1).sum())
        if n_constant:
            found.append(
                f"{names[metric]} is constant on the 1-shot episodes of {n_constant} of "
                f"{n_groups} groups: its correlation there is undefined (reported as n/a)."
            )
        else:
            found.append(
                f"{names[metric]} takes at most {int(distinct.max())} distinct values per "
                "group on the 1-shot episodes."
            )
    return found


def constant_metrics(table: pd.DataFrame, metrics: Sequence[str], by: Sequence[str]) -> list[str]:
    """Metrics that are constant (up to rounding) within every group of ``by``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"g": [0, 0, 1, 1], "a": [1.0, 1.0, 2.0, 2.0], "b": [1.0, 2.0, 3, 3]})
    >>> constant_metrics(t, ["a", "b"], ["g"])
    ['a']
    """
    groups = list(iter_groups(table, list(by)))
    return [
        m
        for m in metrics
        if m in table.columns
        and all(is_constant(frame[m].dropna().to_numpy(dtype=np.float64)) for _, frame in groups)
    ]


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------


def _selection(
    data: pd.DataFrame,
    metrics: Sequence[str],
    by: Sequence[str],
    *,
    target: str,
    n_boot: int,
    confidence: float,
    seed: int,
    higher_is_better: Mapping[str, bool],
) -> tuple[pd.DataFrame | None, str]:
    """Source selection over the configurations several backbones share, or why not; with
    several training seeds (a ``seed`` column), among the backbones of one seed."""
    from metaleep.analysis.selection import source_selection

    if "backbone" not in data.columns or data["backbone"].nunique() < 2:
        return None, ""
    by_sel = [c for c in by if c != "backbone"]
    if "seed" in data.columns and data["seed"].nunique() > 1 and "seed" not in by_sel:
        by_sel = ["seed", *by_sel]
    shared = (
        data[data.groupby(by_sel, dropna=False)["backbone"].transform("nunique") > 1]
        if by_sel
        else data
    )
    if "episode" not in data.columns or shared.empty:
        return None, "no configuration is shared by two backbones."
    try:
        selection = source_selection(
            shared,
            metrics=list(metrics),
            model_col="backbone",
            target=target,
            by=by_sel,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            higher_is_better=higher_is_better,
            static_prior=True,
        )
    except ValueError as err:
        logger.warning("source selection skipped: %s", err)
        return None, str(err)
    return selection, ""


def _timings(data: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame | None:
    """Mean seconds per episode of each ``seconds_*`` column, per group."""
    timing = [c for c in data.columns if str(c).startswith("seconds_")]
    if not timing:
        return None
    if not by:
        return data[timing].mean().to_frame().T
    return data.groupby(list(by), dropna=False)[timing].mean().reset_index()


def analyse_study(
    table: pd.DataFrame,
    *,
    config: Mapping[str, object] | None = None,
    metrics: Sequence[str] | None = None,
    target: str = "accuracy",
    by: Sequence[str] = ("backbone", "dummy", "adaptation"),
    leep: str = "auto",
    baseline: str | None = "centroid_loo",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
    higher_is_better: Mapping[str, bool] | None = None,
) -> StudyAnalysis:
    """Every analysis of a study's table that its report shows (see the module docstring).

    Parameters
    ----------
    table:
        The study table (:attr:`~metaleep.study.runner.StudyResult.table`).
    config:
        The study's configuration, carried to the report.
    metrics:
        Metric columns; default those of :data:`~metaleep.metrics.registry.DEFAULT_METRICS`
        present.
    target:
        Accuracy column.
    by:
        Grouping of the main tables; columns absent from ``table`` are ignored.
    leep:
        One of {"raw", "normalised", "auto"}.
        LEEP form (:func:`~metaleep.analysis.correlations.use_normalised_leep`); ``"auto"``
        normalises when some group mixes numbers of ways.
    baseline:
        The free baseline the best metric must beat (ignored when not among the metrics).
    n_boot, confidence, seed
        As in :func:`~metaleep.analysis.correlations.correlations`.
    alpha:
        Familywise level of the baseline tests
        (:func:`~metaleep.analysis.baseline.baseline_tests`).
    higher_is_better:
        Orientation of each metric; default the registry's
        (:func:`~metaleep.metrics.registry.higher_is_better`).

    Returns
    -------
    StudyAnalysis

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.uniform(0.3, 0.9, size=40)
    >>> t = pd.DataFrame({"episode": range(40), "backbone": "conv4", "dummy": "head",
    ...                   "adaptation": "maml", "ways": 5, "shots": 5, "accuracy": acc,
    ...                   "leep": np.log(acc) + 0.1 * rng.normal(size=40),
    ...                   "centroid_loo": acc + 0.3 * rng.normal(size=40)})
    >>> a = analyse_study(t, n_boot=100)
    >>> a.verdict[["backbone", "best", "baseline"]].values.tolist()
    [['conv4', 'leep', 'centroid_loo']]
    >>> sorted(a.tables())
    ['accuracy.csv', 'baseline_tests.csv', 'comparisons.csv', 'correlations.csv', 'verdict.csv']
    """
    from metaleep.metrics.registry import higher_is_better as registry_orientation

    check_table(table)
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a mapping; got {type(config).__name__!r}.")
    if target not in table.columns:
        raise ValueError(f"`target` must be a column of `table`; got {target!r}.")
    check_boot(n_boot, confidence)
    base_metrics = metric_columns(table, metrics)
    orientation = dict(higher_is_better or registry_orientation(base_metrics))
    by_cols = [c for c in by if c in table.columns]
    mixed_ways = use_normalised_leep(table, "auto", by=by_cols)
    normalised = use_normalised_leep(table, leep, by=by_cols) and any(
        m in LEEP_LIKE for m in base_metrics
    )
    used = [f"{m}_norm" if normalised and m in LEEP_LIKE else m for m in base_metrics]
    data = add_normalised_leep(table) if normalised else table

    def correlate(by_columns: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
        return correlations(
            data,
            metrics=used,
            target=target,
            by=by_columns,
            methods=methods,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            higher_is_better=orientation,
        )

    corr = correlate(by_cols, METHODS)
    chosen_baseline = baseline if baseline is not None and baseline in used else None
    tests = None
    if chosen_baseline is not None and len(used) > 1:
        tests = baseline_tests(
            data,
            metrics=used,
            baseline=chosen_baseline,
            target=target,
            by=by_cols,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            alpha=alpha,
            higher_is_better=orientation,
        )
    leep_col = next((m for m in used if m in ("leep", "leep_norm")), None)
    comparisons = None
    if leep_col is not None and len(used) > 1:
        comparisons = compare_metrics(
            data,
            leep_col,
            [m for m in used if m != leep_col],
            method="pearson",
            target=target,
            by=by_cols,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            higher_is_better=orientation,
        )
    per_group = {
        col: correlate([*by_cols, col], ("pearson",))
        for col in _GROUP_EXTRAS
        if col in data.columns and col not in by_cols and data[col].nunique() > 1
    }
    selection, selection_note = _selection(
        data,
        used,
        by_cols,
        target=target,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        higher_is_better=orientation,
    )
    accuracy = None
    notes: list[str] = []
    if all(c in data.columns for c in ("episode", "backbone", "adaptation")):
        settings = (config or {}).get("adaptation_settings")
        accuracy = accuracy_table(
            data, target=target, settings=settings if isinstance(settings, Mapping) else None
        )
        notes = accuracy_notes(accuracy, data)
    return StudyAnalysis(
        table=data,
        metrics=tuple(used),
        by=tuple(by_cols),
        target=target,
        leep_form="normalised" if normalised else "raw",
        mixed_ways=mixed_ways,
        n_boot=n_boot,
        confidence=float(confidence),
        seed=seed,
        alpha=float(alpha),
        baseline=chosen_baseline,
        correlations=corr,
        verdict=verdict(corr, tests, baseline=chosen_baseline),
        config=dict(config or {}),
        baseline_tests=tests,
        comparisons=comparisons,
        per_group=per_group,
        selection=selection,
        selection_note=selection_note,
        accuracy=accuracy,
        accuracy_notes=tuple(notes),
        findings=tuple(_one_shot_findings(data, used, by_cols)),
        constant_metrics=tuple(constant_metrics(data, used, by_cols)),
        timings=_timings(data, by_cols),
    )
