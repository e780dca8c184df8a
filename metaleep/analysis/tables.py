"""The tidy table's plumbing shared by every analysis: checks, groups, metric columns.

One wording for bad input (what was expected, what was got), one way to split a table into
groups, one orientation rule (:func:`metric_sign`) and one notion of a constant metric
(:func:`is_constant`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from metaleep.metrics.registry import DEFAULT_METRICS

__all__ = [
    "check_boot",
    "check_columns",
    "check_table",
    "is_constant",
    "iter_groups",
    "metric_columns",
    "metric_sign",
]


def check_table(table: object) -> None:
    """Refuse anything but a pandas DataFrame, naming what was got."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"`table` must be a pandas DataFrame; got {type(table).__name__!r}.")


def check_columns(table: pd.DataFrame, name: str, columns: Sequence[str]) -> list[str]:
    """``columns`` as a list, each a column of ``table`` (the error names option ``name``)."""
    if isinstance(columns, str):
        columns = [columns]
    cols = list(columns)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(
            f"`{name}` must be columns of `table`; got {missing!r} not in {list(table.columns)!r}."
        )
    return cols


def check_boot(n_boot: int, confidence: float) -> None:
    """``n_boot`` an int >= 0 and ``confidence`` in (0, 1)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer):
        raise TypeError(f"`n_boot` must be an int; got {n_boot!r}.")
    if n_boot < 0:
        raise ValueError(f"`n_boot` must be >= 0; got {n_boot!r}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1); got {confidence!r}.")


def metric_sign(metric: str, higher_is_better: Mapping[str, bool] | None) -> float:
    """+1 if higher scores mean better transfer, -1 otherwise (``leep_norm`` follows ``leep``)."""
    if not higher_is_better:
        return 1.0
    if metric in higher_is_better:
        return 1.0 if higher_is_better[metric] else -1.0
    base = metric.removesuffix("_norm")
    return 1.0 if higher_is_better.get(base, True) else -1.0


def iter_groups(
    table: pd.DataFrame, by: Sequence[str]
) -> Iterator[tuple[tuple[object, ...], pd.DataFrame]]:
    """``(key, rows)`` per group of ``by`` (sorted; one group ``()`` when ``by`` is empty)."""
    if not by:
        yield (), table
        return
    for key, frame in table.groupby(list(by), sort=True, dropna=False, observed=True):
        yield (key if isinstance(key, tuple) else (key,)), frame


def metric_columns(table: pd.DataFrame, metrics: Iterable[str] | None = None) -> list[str]:
    """The metric columns to analyse.

    Parameters
    ----------
    table:
        The study table.
    metrics:
        Explicit names, each of which must be a column. ``None`` -> those of
        :data:`DEFAULT_METRICS` present in ``table``.

    Examples
    --------
    >>> import pandas as pd
    >>> metric_columns(pd.DataFrame(columns=["logme", "leep", "accuracy"]))
    ['leep', 'logme']
    """
    check_table(table)
    if metrics is None:
        found = [m for m in DEFAULT_METRICS if m in table.columns]
        if not found:
            raise ValueError(
                f"`table` must have at least one metric column of {list(DEFAULT_METRICS)!r}; "
                f"got columns {list(table.columns)!r}."
            )
        return found
    if isinstance(metrics, str):
        raise TypeError(f"`metrics` must be a sequence of column names; got {metrics!r}.")
    chosen = list(metrics)
    if not chosen:
        raise ValueError(f"`metrics` must name at least one column; got {chosen!r}.")
    missing = [m for m in chosen if m not in table.columns]
    if missing:
        raise ValueError(
            f"`metrics` must be columns of `table`; got {missing!r} not in {list(table.columns)!r}."
        )
    return chosen


def is_constant(values: npt.ArrayLike, *, rtol: float = 1e-9) -> bool:
    """Whether ``values`` are equal up to rounding: spread <= ``rtol`` * max(1, max |value|).

    A metric that is constant in exact arithmetic (H-score is C - 1 whenever n - 1 <= d) comes
    out of floating point with a spread of ~1e-15; correlating that noise with accuracy would
    report a meaningless r.

    Examples
    --------
    >>> is_constant([4.0, 4.0 + 3e-15, 4.0 - 1e-15]), is_constant([4.0, 4.001])
    (True, False)
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return True
    return bool(np.ptp(array) <= rtol * max(1.0, float(np.abs(array).max())))
