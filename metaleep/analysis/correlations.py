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
``episode`` columns when present; rows of one episode are kept together). A replicate is stored
as a vector of counts, one per row, and every statistic is computed from the counts without
materialising the resampled arrays: Pearson and Spearman in O(B n), Kendall's tau-b and the
weighted tau as bilinear forms ``c^T M c`` with the pairwise concordance matrix ``M`` in
O(B n^2) (one blocked matrix product, exact in integers). The statistics equal those scipy
computes on the explicitly resampled arrays (the tests check it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

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
    "metric_columns",
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

UNIT_COLUMNS: tuple[str, ...] = ("suite", "episode")
"""Columns that identify an episode (those present are used) for the bootstrap."""

LEEP_FORMS: tuple[str, ...] = ("raw", "normalised", "auto")
"""Values of the ``leep`` option: LEEP-like metrics raw, normalised, or normalised when needed."""

_BLOCK_ELEMENTS = 4_000_000  # entries of one block of the pairwise concordance matrix


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
    _check_table(table)
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
# Validation and table plumbing
# --------------------------------------------------------------------------------------------


def _check_table(table: object) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"`table` must be a pandas DataFrame; got {type(table).__name__!r}.")


def metric_columns(table: pd.DataFrame, metrics: Iterable[str] | None = None) -> list[str]:
    """The metric columns to analyse.

    Parameters
    ----------
    table : DataFrame
    metrics : iterable of str, optional
        Explicit names, each of which must be a column. ``None`` -> those of
        :data:`DEFAULT_METRICS` present in ``table``.

    Examples
    --------
    >>> import pandas as pd
    >>> metric_columns(pd.DataFrame(columns=["logme", "leep", "accuracy"]))
    ['leep', 'logme']
    """
    _check_table(table)
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


def _check_columns(table: pd.DataFrame, name: str, columns: Sequence[str]) -> list[str]:
    if isinstance(columns, str):
        columns = [columns]
    cols = list(columns)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(
            f"`{name}` must be columns of `table`; got {missing!r} not in {list(table.columns)!r}."
        )
    return cols


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    out = list(methods)
    bad = [m for m in out if m not in METHODS]
    if bad or not out:
        raise ValueError(f"`methods` must be a non-empty subset of {list(METHODS)!r}; got {out!r}.")
    return out


def _check_boot(n_boot: int, confidence: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer):
        raise TypeError(f"`n_boot` must be an int; got {n_boot!r}.")
    if n_boot < 0:
        raise ValueError(f"`n_boot` must be >= 0; got {n_boot!r}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1); got {confidence!r}.")


def _sign_of(metric: str, higher_is_better: Mapping[str, bool] | None) -> float:
    """+1 if higher scores mean better transfer, -1 otherwise (``leep_norm`` follows ``leep``)."""
    if not higher_is_better:
        return 1.0
    if metric in higher_is_better:
        return 1.0 if higher_is_better[metric] else -1.0
    base = metric.removesuffix("_norm")
    return 1.0 if higher_is_better.get(base, True) else -1.0


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


def _groups(
    table: pd.DataFrame, by: Sequence[str]
) -> Iterator[tuple[tuple[object, ...], pd.DataFrame]]:
    if not by:
        yield (), table
        return
    for key, frame in table.groupby(list(by), sort=True, dropna=False, observed=True):
        yield (key if isinstance(key, tuple) else (key,)), frame


def _unit_codes(frame: pd.DataFrame) -> npt.NDArray[np.intp]:
    """Integer code of each row's episode (rows without episode columns are their own unit)."""
    cols = [c for c in UNIT_COLUMNS if c in frame.columns]
    if not cols:
        return np.arange(len(frame), dtype=np.intp)
    # groupby().ngroup() sorts the keys, so the codes do not depend on row order.
    return frame.groupby(cols, sort=True, dropna=False).ngroup().to_numpy().astype(np.intp)


# --------------------------------------------------------------------------------------------
# The bootstrap engine: statistics from resampling counts
# --------------------------------------------------------------------------------------------


def _rng(seed: int | np.random.SeedSequence) -> np.random.Generator:
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.default_rng(seq)


def _resample_counts(rng: np.random.Generator, n_units: int, n_boot: int) -> npt.NDArray[np.int64]:
    """Counts (n_boot, n_units) of each unit in ``n_boot`` draws of ``n_units`` with replacement."""
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    flat = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units)
    return flat.reshape(n_boot, n_units).astype(np.int64)


def _row_weights(
    units: npt.NDArray[np.intp], n_boot: int, seed: int | np.random.SeedSequence
) -> npt.NDArray[np.int64]:
    """Bootstrap weights (n_boot, n_rows): how often each row appears in each replicate."""
    _, codes = np.unique(units, return_inverse=True)
    counts = _resample_counts(_rng(seed), int(codes.max()) + 1, n_boot)
    return counts[:, codes]


class _Ties:
    """Tie structure of a vector: sort order, group starts in sorted order, group of each item."""

    def __init__(self, values: npt.NDArray[np.float64]) -> None:
        self.order = np.argsort(values, kind="stable")
        ordered = values[self.order]
        new = np.ones(len(values), dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        self.starts = np.flatnonzero(new)
        self.group = np.empty(len(values), dtype=np.intp)
        self.group[self.order] = np.cumsum(new) - 1

    def totals(self, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(B, G): total weight of each tie group, groups in increasing order of value."""
        return np.add.reduceat(weights[:, self.order], self.starts, axis=1)


def _weighted_corr(
    w: npt.NDArray[np.float64],
    n: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Row-wise Pearson correlation of ``a`` and ``b`` (each (B, n) or (n,)) under weights ``w``."""
    ma = (w * a).sum(axis=1) / n
    mb = (w * b).sum(axis=1) / n
    ac = a - ma[:, None]
    bc = b - mb[:, None]
    saa = (w * ac * ac).sum(axis=1)
    sbb = (w * bc * bc).sum(axis=1)
    sab = (w * ac * bc).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sab / np.sqrt(saa * sbb)
    return np.clip(r, -1.0, 1.0)


def _pair_products(
    w: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """``Q = W @ M`` with ``M_ij = sign(x_i - x_j) sign(y_i - y_j)``, computed in column blocks.

    Entries of ``W`` and ``M`` are small integers, so the float32 product is exact.
    """
    n_rows, n = w.shape
    w32 = w.astype(np.float32)
    out = np.empty((n_rows, n), dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, block):
        stop = min(n, start + block)
        m = np.sign(x[:, None] - x[None, start:stop]) * np.sign(y[:, None] - y[None, start:stop])
        out[:, start:stop] = w32 @ m.astype(np.float32)
    return out


def _harmonic(n_max: int) -> npt.NDArray[np.float64]:
    """``H[k] = sum_{r<k} 1/(r+1)``, k = 0..n_max (cumulative hyperbolic weights)."""
    h = np.zeros(n_max + 1, dtype=np.float64)
    h[1:] = np.cumsum(1.0 / np.arange(1, n_max + 1))
    return h


def _weighted_tau_one(
    w: npt.NDArray[np.float64],
    n: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    first: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    tie_x: npt.NDArray[np.float64],
    tie_y: npt.NDArray[np.float64],
    h: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """scipy's ``_weightedrankedtau(first, second, rank=None)`` (hyperbolic, additive) from counts.

    Instances are ranked by decreasing (first, second); an instance at rank r weighs
    ``1/(r+1)``; a pair weighs the sum of its two weights. Item i's instances occupy a block of
    ranks, whose total weight is ``S_i = H[start_i + c_i] - H[start_i]``. Pairs of distinct items
    contribute ``S_i c_j + S_j c_i`` times their concordance, so the numerator is ``S^T M c``.
    ``tie_x`` / ``tie_y`` hold, per item, the weight of items tied with it in each coordinate.
    """
    desc = np.lexsort((second, first))[::-1]
    counts = w[:, desc].astype(np.int64)
    start = np.cumsum(counts, axis=1) - counts
    block = np.empty_like(w)
    block[:, desc] = h[start + counts] - h[start]
    num = (block * q).sum(axis=1)
    den_x = (block * (n[:, None] - tie_x)).sum(axis=1)
    den_y = (block * (n[:, None] - tie_y)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = num / np.sqrt(den_x) / np.sqrt(den_y)
    return np.clip(tau, -1.0, 1.0)


def _boot_stats(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.int64],
    methods: Sequence[str],
) -> dict[str, npt.NDArray[np.float64]]:
    """Each statistic of ``methods`` on every replicate; NaN where x or y is constant in it.

    ``weights[b, i]`` is how many times row ``i`` appears in replicate ``b``. With all weights 1
    the results are scipy's point estimates.
    """
    w = weights.astype(np.float64)
    n = w.sum(axis=1)
    tx, ty = _Ties(x), _Ties(y)
    gx, gy = tx.totals(w), ty.totals(w)
    degenerate = (gx.max(axis=1) >= n) | (gy.max(axis=1) >= n)
    out: dict[str, npt.NDArray[np.float64]] = {}

    if "pearson" in methods:
        xs = (x - x.mean()) / (np.abs(x - x.mean()).max() or 1.0)
        ys = (y - y.mean()) / (np.abs(y - y.mean()).max() or 1.0)
        out["pearson"] = _weighted_corr(w, n, xs[None, :], ys[None, :])

    if "spearman" in methods:
        # Average rank of a tie group = weight below it + (its weight + 1) / 2.
        rank_x = ((np.cumsum(gx, axis=1) - gx) + (gx + 1.0) / 2.0)[:, tx.group]
        rank_y = ((np.cumsum(gy, axis=1) - gy) + (gy + 1.0) / 2.0)[:, ty.group]
        out["spearman"] = _weighted_corr(w, n, rank_x, rank_y)

    if "kendall" in methods or "weightedtau" in methods:
        q = _pair_products(w, x, y)
        if "kendall" in methods:
            num = (w * q).sum(axis=1)
            untied_x = n * n - (gx * gx).sum(axis=1)
            untied_y = n * n - (gy * gy).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                out["kendall"] = np.clip(num / np.sqrt(untied_x * untied_y), -1.0, 1.0)
        if "weightedtau" in methods:
            h = _harmonic(int(n.max()))
            tie_x, tie_y = gx[:, tx.group], gy[:, ty.group]
            one = _weighted_tau_one(w, n, q, x, y, tie_x, tie_y, h)
            two = _weighted_tau_one(w, n, q, y, x, tie_x, tie_y, h)
            out["weightedtau"] = (one + two) / 2.0

    for key in out:
        out[key] = np.where(degenerate, np.nan, out[key])
    return out


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


def _percentile_ci(values: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


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
    _check_table(table)
    chosen = metric_columns(table, metrics)
    by_cols = _check_columns(table, "by", by)
    _check_columns(table, "target", [target])
    method_list = _check_methods(methods)
    _check_boot(n_boot, confidence)
    data, chosen = _prepare_leep(table, chosen, leep, by_cols)

    rows: list[dict[str, object]] = []
    for key, frame in _groups(data, by_cols):
        units_all = _unit_codes(frame)
        target_all = frame[target].to_numpy(dtype=np.float64)
        weights_cache: dict[bytes, npt.NDArray[np.int64]] = {}
        for metric in chosen:
            sign = _sign_of(metric, higher_is_better)
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
                        weights_cache[cache_key] = _row_weights(units, n_boot, seed)
                    boot = _boot_stats(x, y, weights_cache[cache_key], method_list)
                else:
                    notes.append("n_boot=0: no confidence interval")
            for method in method_list:
                r, p = results.get(method, (math.nan, math.nan))
                low, high = math.nan, math.nan
                method_notes = list(notes)
                if method in boot:
                    low, high = _percentile_ci(boot[method], confidence)
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
    _check_table(table)
    others = [b] if isinstance(b, str) else list(b)
    metric_columns(table, [a, *others])
    by_cols = _check_columns(table, "by", by)
    _check_columns(table, "target", [target])
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)!r}; got {method!r}.")
    _check_boot(n_boot, confidence)

    rows: list[dict[str, object]] = []
    for key, frame in _groups(table, by_cols):
        units_all = _unit_codes(frame)
        y_all = frame[target].to_numpy(dtype=np.float64)
        xa_all = _sign_of(a, higher_is_better) * frame[a].to_numpy(dtype=np.float64)
        a_cache: dict[bytes, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        for other in others:
            xb_all = _sign_of(other, higher_is_better) * frame[other].to_numpy(dtype=np.float64)
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
                        weights = _row_weights(units, n_boot, seed)
                        a_cache[cache_key] = (
                            weights,
                            _boot_stats(xa, y, weights, [method])[method],
                        )
                    weights, boot_a = a_cache[cache_key]
                    d = boot_a - _boot_stats(xb, y, weights, [method])[method]
                    ok = d[np.isfinite(d)]
                    if ok.size:
                        low, high = _percentile_ci(ok, confidence)
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
