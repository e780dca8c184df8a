"""What a metric adds: the R^2 of accuracy it adds over the controls and over the free baselines.

A correlation within one setting says whether a metric orders episodes; it does not say whether
the metric knows more than the design of the experiment (how many ways and shots, which source,
which transfer) or more than a free baseline. Per block of rows (a target, or one regime of it)
accuracy is regressed by ordinary least squares on

- the **controls**: fixed effects of the (ways, shots) cell, of the (source, transfer) pair and
  of the (source, training seed) network -- everything the design fixes;
- the **baselines**: the free ``centroid_loo`` and ``cosine_spread`` scores;
- the **metric** (one slope for the whole block: a metric whose scale moves from source to
  source is not rewarded for it),

and :func:`added_r2` reports, for each metric, ``added_over_controls`` = R^2(controls + metric)
- R^2(controls) and ``added_over_baselines`` = R^2(controls + baselines + metric) -
R^2(controls + baselines), both on the same rows (those where every score used is finite). A
baseline is compared with the other baselines. A metric constant within every cell adds
(almost) nothing over the cell's fixed effect, whatever its pooled r.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from metaleep.analysis.tables import check_columns, check_table, iter_groups

__all__ = ["ADDED_COLUMNS", "BASELINES", "CONTROLS", "added_r2", "r_squared"]

BASELINES: tuple[str, ...] = ("centroid_loo", "cosine_spread")
"""The free baselines a metric must add to."""

CONTROLS: tuple[tuple[str, ...], ...] = (
    ("ways", "shots"),
    ("backbone", "adaptation"),
    ("backbone", "seed"),
)
"""Fixed effects of the design (columns absent from a table are skipped)."""

ADDED_COLUMNS: tuple[str, ...] = (
    "metric",
    "n",
    "r2_controls",
    "r2_metric",
    "added_over_controls",
    "baselines",
    "r2_baselines",
    "r2_all",
    "added_over_baselines",
    "note",
)
"""Columns of :func:`added_r2`'s result after the grouping columns."""

_NUMBERS = (
    "r2_controls",
    "r2_metric",
    "added_over_controls",
    "r2_baselines",
    "r2_all",
    "added_over_baselines",
)


def r_squared(y: npt.ArrayLike, design: npt.ArrayLike) -> float:
    """R^2 of the least-squares fit of ``y`` on ``design`` plus an intercept.

    Examples
    --------
    >>> round(r_squared([1.0, 2.0, 3.0, 5.0], [[0.0], [1.0], [2.0], [3.0]]), 4)
    0.9657
    """
    target = np.asarray(y, dtype=np.float64)
    x = np.asarray(design, dtype=np.float64).reshape(len(target), -1)
    centred = target - target.mean()
    total = float(centred @ centred)
    if total == 0.0:
        return math.nan
    x = np.column_stack([np.ones(len(target)), x])
    coef, *_ = np.linalg.lstsq(x, target, rcond=None)
    residual = target - x @ coef
    return float(1.0 - (residual @ residual) / total)


def _fixed_effects(frame: pd.DataFrame, controls: Sequence[tuple[str, ...]]) -> np.ndarray:
    """One-hot columns (first level dropped) of each control's combined levels."""
    blocks = []
    for columns in controls:
        present = [c for c in columns if c in frame.columns]
        if not present:
            continue
        levels = frame[present].astype(str).agg("|".join, axis=1)
        dummies = pd.get_dummies(levels, drop_first=True, dtype=np.float64)
        blocks.append(dummies.to_numpy())
    if not blocks:
        return np.zeros((len(frame), 0))
    return np.column_stack(blocks)


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def added_r2(
    table: pd.DataFrame,
    metrics: Sequence[str],
    *,
    target: str = "accuracy",
    by: Sequence[str] = ("target",),
    baselines: Sequence[str] = BASELINES,
    controls: Sequence[tuple[str, ...]] = CONTROLS,
) -> pd.DataFrame:
    """The R^2 each metric adds over the controls and over the baselines, per group of ``by``.

    Parameters
    ----------
    table:
        One row per (episode, source, transfer, seed): e.g. each source with its own dummy
        labels (the grid's ``native`` rows), so that no episode counts twice.
    metrics:
        Metric columns.
    target:
        Accuracy column.
    by:
        One regression per group.
    baselines:
        Baseline columns (those present); a baseline is compared with the others.
    controls:
        Fixed effects (see :data:`CONTROLS`).

    Returns
    -------
    DataFrame
        The ``by`` columns and :data:`ADDED_COLUMNS`; NaN with a note where a metric has no
        finite value or accuracy does not vary.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"target": "t", "ways": 5, "shots": np.repeat([1, 5], 50),
    ...                   "backbone": "b", "adaptation": "a", "seed": 0,
    ...                   "cosine_spread": rng.normal(size=100)})
    >>> t["accuracy"] = 0.5 * t.shots + t.cosine_spread + rng.normal(size=100)
    >>> t["leep"] = t.accuracy + rng.normal(size=100)
    >>> out = added_r2(t, ["leep"])
    >>> bool(out.added_over_controls[0] > out.added_over_baselines[0] > 0)
    True
    """
    check_table(table)
    by_cols = check_columns(table, "by", by)
    check_columns(table, "metrics", list(metrics))
    check_columns(table, "target", [target])
    rows: list[dict[str, object]] = []
    for key, frame in iter_groups(table, by_cols):
        y_all = frame[target].to_numpy(dtype=np.float64)
        fixed_all = _fixed_effects(frame, controls)
        present = [b for b in baselines if b in frame.columns]
        for metric in metrics:
            others = [b for b in present if b != metric]
            columns = [metric, *others]
            values = frame[columns].to_numpy(dtype=np.float64)
            keep = np.isfinite(values).all(axis=1) & np.isfinite(y_all)
            y, fixed = y_all[keep], fixed_all[keep]
            x = _standardised(values[keep])
            row: dict[str, object] = {
                **dict(zip(by_cols, key, strict=True)),
                "metric": metric,
                "n": int(keep.sum()),
                "baselines": ", ".join(others),
                "note": "",
            }
            if keep.sum() < 3 or np.ptp(y) == 0:
                row.update(dict.fromkeys(_NUMBERS, math.nan))
                row["note"] = "fewer than 3 rows" if keep.sum() < 3 else "constant accuracy"
                rows.append(row)
                continue
            r2_controls = r_squared(y, fixed)
            r2_metric = r_squared(y, np.column_stack([fixed, x[:, :1]]))
            r2_baselines = r_squared(y, np.column_stack([fixed, x[:, 1:]]))
            r2_all = r_squared(y, np.column_stack([fixed, x]))
            dropped = int((~keep).sum())
            row.update(
                {
                    "r2_controls": r2_controls,
                    "r2_metric": r2_metric,
                    "added_over_controls": r2_metric - r2_controls,
                    "r2_baselines": r2_baselines,
                    "r2_all": r2_all,
                    "added_over_baselines": r2_all - r2_baselines,
                    "note": f"{dropped} rows with non-finite scores left out" if dropped else "",
                }
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=[*by_cols, *ADDED_COLUMNS])
