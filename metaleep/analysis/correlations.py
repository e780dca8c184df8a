"""Correlations between transferability scores and post-adaptation accuracy, with uncertainty.

The study's tidy table has one row per (episode, backbone, dummy-label mode, adaptation) with one
column per metric (``leep``, ``nce``, ``h_score``, ``logme``, ``nleep``) and the query
``accuracy`` after adaptation. This module answers "how well does each score predict accuracy?"
for every group of rows (by default one group per backbone, dummy-label mode and adaptation):

- :func:`correlations`: Pearson, Spearman, Kendall (tau-b) and weighted Kendall (Vigna 2015)
  correlations, point estimates from :mod:`scipy.stats`, with percentile bootstrap confidence
  intervals over episodes;
- :func:`compare_metrics`: a paired bootstrap test of "metric A correlates with accuracy better
  than metric B" on the same episodes;
- :func:`normalised_leep` / :func:`add_normalised_leep`: LEEP rescaled so that episodes with
  different numbers of ways are comparable.

The bootstrap
-------------
Episodes are resampled with replacement (a row's episode is identified by the ``suite`` and
``episode`` columns when present; rows of one episode are kept together), by the engine of
:mod:`metaleep.analysis.resample`: every statistic from resampling counts, equal to scipy's on
the explicitly resampled arrays (the tests check it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from metaleep.analysis.resample import (
    percentile_ci,
    replicate_statistics,
    row_weights,
    unit_codes,
)
from metaleep.analysis.tables import (
    check_boot,
    check_columns,
    check_table,
    is_constant,
    iter_groups,
    metric_columns,
    metric_sign,
)
from metaleep.metrics.registry import DEFAULT_METRICS

__all__ = [
    "COMPARISON_COLUMNS",
    "CORRELATION_COLUMNS",
    "DEFAULT_METRICS",
    "LEEP_FORMS",
    "METHODS",
    "add_normalised_leep",
    "compare_metrics",
    "correlations",
    "is_constant",
    "normalised_leep",
    "use_normalised_leep",
]

METHODS: tuple[str, ...] = ("pearson", "spearman", "kendall", "weightedtau")
"""Correlation methods :func:`correlations` knows."""

LEEP_LIKE: tuple[str, ...] = ("leep", "nleep")
"""Columns with LEEP's floor ``-H(Y)`` that :func:`add_normalised_leep` rescales."""

CORRELATION_COLUMNS: tuple[str, ...] = (
    "metric",
    "method",
    "n",
    "n_episodes",
    "r",
    "ci_low",
    "ci_high",
    "p_value",
    "note",
)
"""Columns of :func:`correlations`'s table after the grouping columns."""

COMPARISON_COLUMNS: tuple[str, ...] = (
    "metric_a",
    "metric_b",
    "method",
    "n",
    "r_a",
    "r_b",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "note",
)
"""Columns of :func:`compare_metrics`'s table after the grouping columns."""

LEEP_FORMS: tuple[str, ...] = ("raw", "normalised", "auto")
"""Values of the ``leep`` option: LEEP-like metrics raw, normalised, or normalised when needed."""


# --------------------------------------------------------------------------------------------
# Normalised LEEP
# --------------------------------------------------------------------------------------------


def normalised_leep(leep: npt.ArrayLike, ways: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """LEEP rescaled by its floor for a balanced N-way episode: ``1 + LEEP / log N``.

    LEEP lies in ``[-H(Y), 0]``: by Jensen's inequality it is at least the soft conditional
    entropy ``-H(Y | Z) >= -H(Y)``, and it reaches ``-H(Y)`` for a source whose output ignores
    the input. For a balanced N-way episode ``H(Y) = log N``, so raw LEEP values of 5-way and
    20-way episodes live on different scales. The normalised score is 0 at the uninformative
    floor and 1 for a perfect source, whatever N. Within episodes of one N it is an increasing
    affine map of LEEP, so correlations computed within one N are unchanged.

    Parameters
    ----------
    leep : array_like, shape (n,)
        LEEP scores (or N-LEEP scores, which have the same floor).
    ways : array_like of int, shape (n,) or scalar
        Number of classes N of each episode; every value must be at least 2.

    Returns
    -------
    ndarray of float64, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> normalised_leep([-np.log(5), -0.5, 0.0], 5).round(3)
    array([0.   , 0.689, 1.   ])
    """
    scores = np.asarray(leep, dtype=np.float64)
    n_ways = np.asarray(ways)
    if n_ways.dtype.kind not in "iuf":
        raise TypeError(f"`ways` must be integers; got dtype {n_ways.dtype!r}.")
    n_ways_f = n_ways.astype(np.float64)
    if not np.all(np.isfinite(n_ways_f)) or np.any(n_ways_f != np.round(n_ways_f)):
        raise ValueError(f"`ways` must be whole numbers; got {n_ways!r}.")
    if np.any(n_ways_f < 2):
        raise ValueError(f"`ways` must be at least 2; got minimum {float(n_ways_f.min())!r}.")
    return np.asarray(1.0 + scores / np.log(n_ways_f), dtype=np.float64)


def add_normalised_leep(
    table: pd.DataFrame,
    *,
    columns: Sequence[str] = LEEP_LIKE,
    ways: str = "ways",
) -> pd.DataFrame:
    """A copy of ``table`` with ``<column>_norm`` = :func:`normalised_leep` for LEEP-like columns.

    Parameters
    ----------
    table : DataFrame
        The study table; must have the ``ways`` column.
    columns : sequence of str
        Candidate columns (default ``leep`` and ``nleep``, which share LEEP's floor); those
        absent from ``table`` are skipped.
    ways : str
        Name of the column with the number of classes per episode.

    Returns
    -------
    DataFrame
        ``table`` plus one ``<column>_norm`` column per present column.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"leep": [-1.0, -0.2], "ways": [5, 20]})
    >>> add_normalised_leep(t)["leep_norm"].round(3).tolist()
    [0.379, 0.933]
    """
    check_table(table)
    if ways not in table.columns:
        raise ValueError(
            f"`table` must have a {ways!r} column; got columns {list(table.columns)!r}."
        )
    out = table.copy()
    for column in columns:
        if column in out.columns:
            out[f"{column}_norm"] = normalised_leep(out[column].to_numpy(), out[ways].to_numpy())
    return out


def use_normalised_leep(table: pd.DataFrame, leep: str = "auto", *, by: Sequence[str] = ()) -> bool:
    """Whether LEEP-like metrics should be analysed in normalised form.

    ``"raw"`` -> False, ``"normalised"`` -> True, ``"auto"`` -> True exactly when some group of
    ``by`` mixes episodes with different ``ways`` (raw LEEP is then not comparable across its
    rows).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"ways": [5, 5, 20, 20], "backbone": ["a", "b", "a", "b"]})
    >>> use_normalised_leep(t, "auto", by=["backbone"]), use_normalised_leep(t, "auto", by=["ways"])
    (True, False)
    """
    if leep not in LEEP_FORMS:
        raise ValueError(f"`leep` must be one of 'raw', 'normalised', 'auto'; got {leep!r}.")
    if leep == "raw":
        return False
    if leep == "normalised":
        return True
    if "ways" not in table.columns:
        return False
    if not by:
        return bool(table["ways"].nunique() > 1)
    per_group = table.groupby(list(by), dropna=False, observed=True)["ways"].nunique()
    return bool((per_group > 1).any())


# --------------------------------------------------------------------------------------------
# Point estimates
# --------------------------------------------------------------------------------------------


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    out = list(methods)
    bad = [m for m in out if m not in METHODS]
    if bad or not out:
        raise ValueError(f"`methods` must be a non-empty subset of {list(METHODS)!r}; got {out!r}.")
    return out


def _prepare_leep(
    table: pd.DataFrame, metrics: list[str], leep: str, by: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Swap LEEP-like metrics for their normalised columns when ``leep`` asks for it."""
    if not use_normalised_leep(table, leep, by=by) or not any(m in LEEP_LIKE for m in metrics):
        return table, metrics
    if "ways" not in table.columns:
        raise ValueError(
            "`leep` must be 'raw' when `table` has no 'ways' column; got 'normalised'."
        )
    present = [m for m in metrics if m in LEEP_LIKE]
    table = add_normalised_leep(table, columns=present)
    return table, [f"{m}_norm" if m in LEEP_LIKE else m for m in metrics]


def _point_estimate(
    method: str, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """scipy's statistic and p-value (two-sided; NaN for the weighted tau, which has none)."""
    if method == "pearson":
        res = stats.pearsonr(x, y)
        return float(res.statistic), float(res.pvalue)
    if method == "spearman":
        sres = stats.spearmanr(x, y)
        return float(sres.statistic), float(sres.pvalue)
    if method == "kendall":
        kres = stats.kendalltau(x, y)
        return float(kres.statistic), float(kres.pvalue)
    return float(stats.weightedtau(x, y).statistic), math.nan


def _undefined_note(n_bad: int, n_boot: int) -> str:
    return f"{n_bad} of {n_boot} bootstrap replicates undefined (constant resample), excluded"


# --------------------------------------------------------------------------------------------
# Public analyses
# --------------------------------------------------------------------------------------------


def correlations(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    target: str = "accuracy",
    by: Sequence[str] = ("backbone", "dummy", "adaptation"),
    methods: Sequence[str] = METHODS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: Mapping[str, bool] | None = None,
    leep: str = "raw",
) -> pd.DataFrame:
    """Correlation of each metric with ``target`` per group, with bootstrap confidence intervals.

    For every group of rows sharing the ``by`` columns and every metric, the rows where both the
    metric and the target are finite are correlated with each method. Point estimates and
    p-values are scipy's (:func:`scipy.stats.pearsonr`, :func:`~scipy.stats.spearmanr`,
    :func:`~scipy.stats.kendalltau` (tau-b), :func:`~scipy.stats.weightedtau` (hyperbolic
    weigher, ``rank=True``)); the weighted tau has no p-value (NaN). The interval is the
    percentile bootstrap interval of ``n_boot`` resamples of the group's episodes with
    replacement (rows of one episode move together); replicates in which the metric or the
    target happens to be constant have no correlation and are excluded (the ``note`` says how
    many).

    Parameters
    ----------
    table : DataFrame
        The study table: metric columns, ``target``, the ``by`` columns and, ideally, ``episode``
        (and ``suite``) identifying each episode.
    metrics : sequence of str, optional
        Metric columns; default those of :data:`DEFAULT_METRICS` present.
    target : str
        Column correlated with the metrics (post-adaptation accuracy by default).
    by : sequence of str
        Grouping columns (e.g. add ``"ways"``, ``"shots"`` or ``"within_alphabet"``); ``()`` for
        one group.
    methods : sequence of str
        Subset of :data:`METHODS`.
    n_boot : int
        Bootstrap replicates; 0 gives no intervals (NaN, with a note).
    confidence : float
        Coverage of the percentile interval.
    seed : int
        Seed of the resampling. Every (group, metric) pair is resampled by a generator seeded
        from ``seed`` alone, so a result does not depend on which other groups or metrics were
        analysed, and metrics of one group share their resamples.
    higher_is_better : mapping str -> bool, optional
        Orientation of each metric (default: all higher-is-better). A lower-is-better metric is
        negated before correlating, so a positive r always means "agrees with accuracy".
    leep : {"raw", "normalised", "auto"}
        Whether LEEP and N-LEEP are used raw (default) or as :func:`normalised_leep` (reported
        as ``leep_norm`` / ``nleep_norm``); ``"auto"`` normalises when some group mixes episodes
        with different ``ways`` (see :func:`use_normalised_leep`).

    Returns
    -------
    DataFrame
        One row per (group, metric, method): the ``by`` columns, ``metric``, ``method``, ``n``
        (rows used), ``n_episodes``, ``r``, ``ci_low``, ``ci_high``, ``p_value`` and ``note``.
        ``r`` is NaN only when the correlation is undefined -- a constant metric (e.g. H-score
        on 1-shot episodes) or target, or fewer than 3 episodes -- and the ``note`` says which;
        ``note`` is ``""`` otherwise.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> leep = rng.normal(size=60)
    >>> t = pd.DataFrame({"episode": range(60), "leep": leep,
    ...                   "nce": np.zeros(60), "accuracy": leep + rng.normal(size=60)})
    >>> c = correlations(t, by=(), methods=("pearson",), n_boot=200)
    >>> c[["metric", "n", "r"]].round(2)
      metric   n     r
    0   leep  60  0.61
    1    nce  60   NaN
    >>> c.note.tolist()
    ['', 'constant metric']
    >>> bool(c.ci_low[0] < c.r[0] < c.ci_high[0])
    True
    """
    check_table(table)
    chosen = metric_columns(table, metrics)
    by_cols = check_columns(table, "by", by)
    check_columns(table, "target", [target])
    method_list = _check_methods(methods)
    check_boot(n_boot, confidence)
    data, chosen = _prepare_leep(table, chosen, leep, by_cols)

    rows: list[dict[str, object]] = []
    for key, frame in iter_groups(data, by_cols):
        units_all = unit_codes(frame)
        target_all = frame[target].to_numpy(dtype=np.float64)
        weights_cache: dict[bytes, npt.NDArray[np.int64]] = {}
        for metric in chosen:
            sign = metric_sign(metric, higher_is_better)
            x_all = sign * frame[metric].to_numpy(dtype=np.float64)
            keep = np.isfinite(x_all) & np.isfinite(target_all)
            x, y, units = x_all[keep], target_all[keep], units_all[keep]
            n_units = len(np.unique(units))
            notes: list[str] = []
            if sign < 0:
                notes.append("metric negated (lower is better)")
            if not keep.all():
                notes.append(f"{int((~keep).sum())} rows with non-finite values dropped")
            reason = _undefined_reason(x, y, n_units)
            results: dict[str, tuple[float, float]] = {}
            boot: dict[str, npt.NDArray[np.float64]] = {}
            if reason:
                notes.insert(0, reason)
            else:
                results = {m: _point_estimate(m, x, y) for m in method_list}
                if n_boot > 0:
                    cache_key = units.tobytes()
                    if cache_key not in weights_cache:
                        weights_cache[cache_key] = row_weights(units, n_boot, seed)
                    boot = replicate_statistics(x, y, weights_cache[cache_key], method_list)
                else:
                    notes.append("n_boot=0: no confidence interval")
            for method in method_list:
                r, p = results.get(method, (math.nan, math.nan))
                low, high = math.nan, math.nan
                method_notes = list(notes)
                if method in boot:
                    low, high = percentile_ci(boot[method], confidence)
                    n_bad = int(np.isnan(boot[method]).sum())
                    if n_bad:
                        method_notes.append(_undefined_note(n_bad, n_boot))
                rows.append(
                    {
                        **dict(zip(by_cols, key, strict=True)),
                        "metric": metric,
                        "method": method,
                        "n": len(x),
                        "n_episodes": int(n_units),
                        "r": r,
                        "ci_low": low,
                        "ci_high": high,
                        "p_value": p,
                        "note": "; ".join(method_notes),
                    }
                )
    columns = [*by_cols, *CORRELATION_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["by"] = list(by_cols)
    out.attrs["target"] = target
    out.attrs["confidence"] = float(confidence)
    out.attrs["n_boot"] = int(n_boot)
    return out


def _undefined_reason(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], n_units: int) -> str:
    if n_units < 3 or len(x) < 3:
        return "fewer than 3 episodes"
    if is_constant(x):
        return "constant metric"
    if is_constant(y):
        return "constant target"
    return ""


def compare_metrics(
    table: pd.DataFrame,
    a: str,
    b: str | Sequence[str],
    *,
    method: str = "pearson",
    target: str = "accuracy",
    by: Sequence[str] = ("backbone", "dummy", "adaptation"),
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: Mapping[str, bool] | None = None,
) -> pd.DataFrame:
    """Paired bootstrap test of "metric ``a`` correlates with ``target`` better than ``b``".

    The compared quantity is the **signed** correlation of each metric, oriented by
    ``higher_is_better`` (a lower-is-better metric is negated first): ``d = r_a - r_b``. Signed,
    not ``|r|``, because a metric's direction is fixed in advance -- a metric that ranks episodes
    backwards is worse, not equally good. Both metrics are evaluated on the same episodes (rows
    where a, b and the target are all finite) and, in every replicate, on the same resampled
    episodes, so the interval of ``d`` accounts for their correlation.

    The one-sided p-value for ``H1: r_a > r_b`` is ``(1 + #{d* <= 0}) / (1 + B)`` over the B
    replicates ``d*``: the smallest level at which the percentile interval's lower bound would
    still exceed 0. It is about 0.5 for two equally good metrics and ``1/(B+1)`` when every
    replicate favours ``a``.

    Parameters
    ----------
    table : DataFrame
        The study table.
    a : str
        Metric column claimed to be better.
    b : str or sequence of str
        Metric column(s) it is compared with (one result row per group and metric).
    method : str
        One of :data:`METHODS`.
    target, by, n_boot, confidence, seed, higher_is_better
        As in :func:`correlations`.

    Returns
    -------
    DataFrame
        The ``by`` columns, ``metric_a``, ``metric_b``, ``method``, ``n``, ``r_a``, ``r_b``,
        ``difference`` (= r_a - r_b, from scipy's point estimates), ``ci_low``, ``ci_high``
        (percentile interval of ``d*``), ``p_value`` (one-sided, above) and ``note`` (why a row
        is NaN).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> acc = rng.normal(size=80)
    >>> t = pd.DataFrame({"episode": range(80), "accuracy": acc,
    ...                   "leep": acc + 0.3 * rng.normal(size=80),
    ...                   "nce": acc + 3.0 * rng.normal(size=80)})
    >>> res = compare_metrics(t, "leep", "nce", by=(), n_boot=500)
    >>> bool(res.difference[0] > 0), bool(res.p_value[0] < 0.01)
    (True, True)
    """
    check_table(table)
    others = [b] if isinstance(b, str) else list(b)
    metric_columns(table, [a, *others])
    by_cols = check_columns(table, "by", by)
    check_columns(table, "target", [target])
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)!r}; got {method!r}.")
    check_boot(n_boot, confidence)

    rows: list[dict[str, object]] = []
    for key, frame in iter_groups(table, by_cols):
        units_all = unit_codes(frame)
        y_all = frame[target].to_numpy(dtype=np.float64)
        xa_all = metric_sign(a, higher_is_better) * frame[a].to_numpy(dtype=np.float64)
        a_cache: dict[bytes, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        for other in others:
            xb_all = metric_sign(other, higher_is_better) * frame[other].to_numpy(dtype=np.float64)
            keep = np.isfinite(xa_all) & np.isfinite(xb_all) & np.isfinite(y_all)
            xa, xb, y, units = xa_all[keep], xb_all[keep], y_all[keep], units_all[keep]
            n_units = len(np.unique(units))
            notes: list[str] = []
            if not keep.all():
                notes.append(f"{int((~keep).sum())} rows with non-finite values dropped")
            reason_a = _undefined_reason(xa, y, n_units)
            reason_b = _undefined_reason(xb, y, n_units)
            r_a = r_b = diff = low = high = p = math.nan
            if reason_a or reason_b:
                which = f"{a}: {reason_a}" if reason_a else f"{other}: {reason_b}"
                notes.insert(0, which)
            else:
                r_a = _point_estimate(method, xa, y)[0]
                r_b = _point_estimate(method, xb, y)[0]
                diff = r_a - r_b
                if n_boot > 0:
                    cache_key = keep.tobytes()
                    if cache_key not in a_cache:
                        weights = row_weights(units, n_boot, seed)
                        a_cache[cache_key] = (
                            weights,
                            replicate_statistics(xa, y, weights, [method])[method],
                        )
                    weights, boot_a = a_cache[cache_key]
                    d = boot_a - replicate_statistics(xb, y, weights, [method])[method]
                    ok = d[np.isfinite(d)]
                    if ok.size:
                        low, high = percentile_ci(ok, confidence)
                        p = (1.0 + float((ok <= 0).sum())) / (1.0 + ok.size)
                    if ok.size < n_boot:
                        notes.append(_undefined_note(n_boot - ok.size, n_boot))
                else:
                    notes.append("n_boot=0: no confidence interval")
            rows.append(
                {
                    **dict(zip(by_cols, key, strict=True)),
                    "metric_a": a,
                    "metric_b": other,
                    "method": method,
                    "n": len(y),
                    "r_a": r_a,
                    "r_b": r_b,
                    "difference": diff,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": p,
                    "note": "; ".join(notes),
                }
            )
    columns = [*by_cols, *COMPARISON_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["by"] = list(by_cols)
    out.attrs["n_boot"] = int(n_boot)
    return out
