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

Cells and seeds
---------------
A group whose episodes have several numbers of ways or shots is never correlated pooled: each
(ways, shots) cell is correlated on its own and the cells are combined on Fisher's z scale,
weighted by n - 3; a table with a ``seed`` column (the training seed of the backbones) is
correlated per seed and the seeds averaged on the same scale (:mod:`metaleep.analysis.regimes`).
With one cell and one seed the result is the plain correlation.

The bootstrap
-------------
Episodes are resampled with replacement within their cell (a row's episode is identified by the
``suite`` and ``episode`` columns when present; rows of one episode are kept together), and
seeds with replacement when there are several (a hierarchical bootstrap), by the engines of
:mod:`metaleep.analysis.resample`: every statistic from resampling counts, equal to scipy's on
the explicitly resampled arrays (the tests check it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from metaleep.analysis.regimes import (
    CELL,
    REPLICATE,
    Combined,
    combined_correlation,
    layout,
)
from metaleep.analysis.resample import generator, percentile_ci, stratified_counts
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
    "n_cells",
    "cells_defined",
    "n_seeds",
    "combination",
    "ci_low_episodes",
    "ci_high_episodes",
    "seed_share",
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
    "p_two_sided",
    "n_cells",
    "n_seeds",
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
    leep:
        LEEP scores (or N-LEEP scores, which have the same floor), shape (n,).
    ways:
        Number of classes N of each episode, shape (n,) or a scalar; every value must be at
        least 2.

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
    table:
        The study table; must have the ``ways`` column.
    columns:
        Candidate columns (default ``leep`` and ``nleep``, which share LEEP's floor); those
        absent from ``table`` are skipped.
    ways:
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
# Public analyses
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


def _undefined_note(n_bad: int, n_boot: int) -> str:
    return f"{n_bad} of {n_boot} bootstrap replicates undefined (constant resample), excluded"


def _group_design(
    frame: pd.DataFrame, by_cols: Sequence[str], cells: Sequence[str], replicate: str | None
) -> tuple[list[str], str | None]:
    """The layout of one group: cell columns and the seed column that are not grouping ones."""
    return (
        [c for c in cells if c not in by_cols],
        replicate if replicate is not None and replicate not in by_cols else None,
    )


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
    cells: Sequence[str] = CELL,
    replicate: str | None = REPLICATE,
) -> pd.DataFrame:
    """Correlation of each metric with ``target`` per group, with bootstrap confidence intervals.

    For every group of rows sharing the ``by`` columns and every metric, the rows where both the
    metric and the target are finite are correlated with each method. Point estimates and
    p-values are scipy's (:func:`scipy.stats.pearsonr`, :func:`~scipy.stats.spearmanr`,
    :func:`~scipy.stats.kendalltau` (tau-b), :func:`~scipy.stats.weightedtau` (hyperbolic
    weigher, ``rank=True``)); the weighted tau has no p-value (NaN). A group whose episodes lie
    in several (ways, shots) cells, or that holds several training seeds, is correlated within
    each cell and seed and combined (:mod:`metaleep.analysis.regimes`; the ``combination``
    column says how); its p-value is Fisher's z test over cells for Pearson with one seed and
    NaN otherwise (read the interval). The interval is the percentile bootstrap interval of
    ``n_boot`` resamples (episodes within their cell; seeds too when there are several);
    replicates in which the metric or the target happens to be constant have no correlation and
    are excluded (the ``note`` says how many).

    Parameters
    ----------
    table:
        The study table: metric columns, ``target``, the ``by`` columns and, ideally, ``episode``
        (and ``suite``) identifying each episode.
    metrics:
        Metric columns; default those of :data:`DEFAULT_METRICS` present.
    target:
        Column correlated with the metrics (post-adaptation accuracy by default).
    by:
        Grouping columns (e.g. add ``"ways"``, ``"shots"`` or ``"within_alphabet"``); ``()`` for
        one group.
    methods:
        Subset of :data:`METHODS`.
    n_boot:
        Bootstrap replicates; 0 gives no intervals (NaN, with a note).
    confidence:
        Coverage of the percentile interval.
    seed:
        Seed of the resampling. Every (group, metric) pair is resampled by a generator seeded
        from ``seed`` alone, so a result does not depend on which other groups or metrics were
        analysed, and metrics of one group share their resamples.
    higher_is_better:
        Orientation of each metric (default: all higher-is-better). A lower-is-better metric is
        negated before correlating, so a positive r always means "agrees with accuracy".
    leep:
        One of {"raw", "normalised", "auto"}.
        Whether LEEP and N-LEEP are used raw (default) or as :func:`normalised_leep` (reported
        as ``leep_norm`` / ``nleep_norm``); ``"auto"`` normalises when some group mixes episodes
        with different ``ways`` (see :func:`use_normalised_leep`). Within one cell the two forms
        have the same correlations.
    cells:
        Columns whose values make a cell (default ``ways`` and ``shots``; those absent or in
        ``by`` are ignored); ``()`` pools the episodes (only for a table of one cell).
    replicate:
        Column of the training seed (default ``seed``, when present and not in ``by``).

    Returns
    -------
    DataFrame
        One row per (group, metric, method): the ``by`` columns, ``metric``, ``method``, ``n``
        (rows used), ``n_episodes``, ``r``, ``ci_low``, ``ci_high``, ``p_value``, ``note``,
        ``n_cells``, ``cells_defined`` (cells in which the metric has an r), ``n_seeds``,
        ``combination``, ``ci_low_episodes``/``ci_high_episodes`` (the interval with the seeds
        held fixed) and ``seed_share`` (share of the bootstrap variance the seed draw adds; NaN
        with one seed). ``r`` is NaN only when the correlation is undefined -- a constant
        metric (e.g. H-score on 1-shot episodes) or target, or fewer than 3 episodes -- and the
        ``note`` says which; ``note`` is ``""`` otherwise.

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
    cell_cols, seed_col = _group_design(data, by_cols, cells, replicate)
    signs = np.array([metric_sign(m, higher_is_better) for m in chosen])

    rows: list[dict[str, object]] = []
    for key, frame in iter_groups(data, by_cols):
        lay = layout(frame, cells=cell_cols, replicate=seed_col)
        y = frame[target].to_numpy(dtype=np.float64)
        x = frame[chosen].to_numpy(dtype=np.float64) * signs
        root = np.random.SeedSequence(seed)
        counts = stratified_counts(generator(root), lay.cell_of_episode, n_boot) if n_boot else None
        finite = np.isfinite(x) & np.isfinite(y)[:, None]
        for method in method_list:
            comb = combined_correlation(x, y, lay, method=method, seed=root, episode_counts=counts)
            for j, metric in enumerate(chosen):
                rows.append(
                    {
                        **dict(zip(by_cols, key, strict=True)),
                        "metric": metric,
                        "method": method,
                        **_metric_row(comb, j, finite[:, j], lay.episode_of_row, n_boot),
                        **_interval_columns(comb, j, confidence),
                        "note": "; ".join(
                            _notes(comb, j, signs[j] < 0, int((~finite[:, j]).sum()), n_boot)
                        ),
                    }
                )
    columns = [*by_cols, *CORRELATION_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["by"] = list(by_cols)
    out.attrs["target"] = target
    out.attrs["confidence"] = float(confidence)
    out.attrs["n_boot"] = int(n_boot)
    return out


def _metric_row(
    comb: Combined,
    j: int,
    finite: npt.NDArray[np.bool_],
    episodes: npt.NDArray[np.intp],
    n_boot: int,
) -> dict[str, object]:
    defined = bool(np.isfinite(comb.r[j]))
    return {
        "n": int(comb.n[j]) if defined else int(finite.sum()),
        "n_episodes": int(comb.n_episodes[j]) if defined else len(np.unique(episodes[finite])),
        "r": float(comb.r[j]),
        "p_value": float(comb.p[j]),
        "n_cells": comb.n_cells,
        "cells_defined": int(comb.cells_defined[j]),
        "n_seeds": comb.n_seeds,
        "combination": comb.combination,
        "seed_share": comb.seed_share(j),
    }


def _interval_columns(comb: Combined, j: int, confidence: float) -> dict[str, float]:
    low, high = comb.interval(j, confidence)
    low_e, high_e = comb.episodes_interval(j, confidence)
    return {"ci_low": low, "ci_high": high, "ci_low_episodes": low_e, "ci_high_episodes": high_e}


def _notes(comb: Combined, j: int, negated: bool, dropped: int, n_boot: int) -> list[str]:
    notes: list[str] = []
    if comb.reason[j]:
        notes.append(comb.reason[j])
    if negated:
        notes.append("metric negated (lower is better)")
    if dropped:
        notes.append(f"{dropped} rows with non-finite values dropped")
    notes.extend(comb.notes[j])
    if not comb.reason[j]:
        if n_boot == 0:
            notes.append("n_boot=0: no confidence interval")
        elif comb.undefined_replicates(j):
            notes.append(_undefined_note(comb.undefined_replicates(j), n_boot))
    return notes


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
    cells: Sequence[str] = CELL,
    replicate: str | None = REPLICATE,
) -> pd.DataFrame:
    """Paired bootstrap test of "metric ``a`` correlates with ``target`` better than ``b``".

    The compared quantity is the **signed** correlation of each metric, oriented by
    ``higher_is_better`` (a lower-is-better metric is negated first): ``d = r_a - r_b``. Signed,
    not ``|r|``, because a metric's direction is fixed in advance -- a metric that ranks episodes
    backwards is worse, not equally good. Both metrics are evaluated on the same episodes (rows
    where a, b and the target are all finite) and, in every replicate, on the same resampled
    episodes (and seeds), so the interval of ``d`` accounts for their correlation. Each r is
    combined over (ways, shots) cells and training seeds as in :func:`correlations`.

    The one-sided p-value for ``H1: r_a > r_b`` is ``(1 + #{d* <= 0}) / (1 + B)`` over the B
    replicates ``d*``: the smallest level at which the percentile interval's lower bound would
    still exceed 0. It is about 0.5 for two equally good metrics and ``1/(B+1)`` when every
    replicate favours ``a``. ``p_two_sided`` is twice the smaller tail (at most 1): the test to
    read when the direction was not fixed before looking.

    Parameters
    ----------
    table:
        The study table.
    a:
        Metric column claimed to be better.
    b:
        Metric column(s) it is compared with (one result row per group and metric).
    method:
        One of :data:`METHODS`.
    target, by, n_boot, confidence, seed, higher_is_better, cells, replicate
        As in :func:`correlations`.

    Returns
    -------
    DataFrame
        The ``by`` columns, ``metric_a``, ``metric_b``, ``method``, ``n``, ``r_a``, ``r_b``,
        ``difference`` (= r_a - r_b), ``ci_low``, ``ci_high`` (percentile interval of ``d*``),
        ``p_value`` (one-sided, above), ``note`` (why a row is NaN), ``p_two_sided``,
        ``n_cells`` and ``n_seeds``.

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
    cell_cols, seed_col = _group_design(table, by_cols, cells, replicate)

    rows: list[dict[str, object]] = []
    for key, frame in iter_groups(table, by_cols):
        y_all = frame[target].to_numpy(dtype=np.float64)
        xa_all = metric_sign(a, higher_is_better) * frame[a].to_numpy(dtype=np.float64)
        for other in others:
            xb_all = metric_sign(other, higher_is_better) * frame[other].to_numpy(dtype=np.float64)
            keep = np.isfinite(xa_all) & np.isfinite(xb_all) & np.isfinite(y_all)
            part = frame[keep]
            lay = layout(part, cells=cell_cols, replicate=seed_col)
            x = np.column_stack([xa_all[keep], xb_all[keep]])
            comb = combined_correlation(
                x, y_all[keep], lay, method=method, n_boot=n_boot, seed=seed
            )
            notes: list[str] = []
            if not keep.all():
                notes.append(f"{int((~keep).sum())} rows with non-finite values dropped")
            r_a = r_b = diff = low = high = p = p_two = math.nan
            if comb.reason[0] or comb.reason[1]:
                which = f"{a}: {comb.reason[0]}" if comb.reason[0] else f"{other}: {comb.reason[1]}"
                notes.insert(0, which)
            else:
                r_a, r_b = float(comb.r[0]), float(comb.r[1])
                diff = r_a - r_b
                if comb.boot is not None:
                    d = comb.boot[:, 0] - comb.boot[:, 1]
                    ok = d[np.isfinite(d)]
                    if ok.size:
                        low, high = percentile_ci(ok, confidence)
                        p = (1.0 + float((ok <= 0).sum())) / (1.0 + ok.size)
                        p_other = (1.0 + float((ok >= 0).sum())) / (1.0 + ok.size)
                        p_two = min(1.0, 2.0 * min(p, p_other))
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
                    "n": int(keep.sum()),
                    "r_a": r_a,
                    "r_b": r_b,
                    "difference": diff,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": p,
                    "note": "; ".join(notes),
                    "p_two_sided": p_two,
                    "n_cells": comb.n_cells,
                    "n_seeds": comb.n_seeds,
                }
            )
    columns = [*by_cols, *COMPARISON_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["by"] = list(by_cols)
    out.attrs["n_boot"] = int(n_boot)
    return out
