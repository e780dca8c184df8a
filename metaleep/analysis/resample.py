"""The bootstrap engine and the weighted tau: statistics from resampling counts.

Every interval and paired test in :mod:`metaleep.analysis` resamples *episodes* with
replacement. A replicate is stored as a vector of counts, one per row (how often the row's
episode was drawn), and every statistic is computed from the counts without materialising the
resampled arrays: Pearson and Spearman in O(B n), Kendall's tau-b and the weighted tau as
bilinear forms ``c^T M c`` with the pairwise concordance matrix ``M`` in O(B n^2) (one blocked
matrix product, exact in integers). With all counts 1 each statistic is scipy's point estimate
(the tests check it, and check the replicates against scipy on explicitly resampled arrays).

- :func:`generator`, :func:`resample_counts`, :func:`stratified_counts`, :func:`unit_codes`,
  :func:`row_weights`: who is drawn how often;
- :func:`pearson_replicates`: Pearson r of many metrics with one target on every replicate at
  once (one matrix product; what the grid's 10,000-replicate tests run on);
- :func:`replicate_statistics`: Pearson, Spearman, Kendall and the weighted tau of one (x, y)
  pair on every replicate;
- :func:`weighted_tau`: Vigna's weighted tau of many small problems at once (source selection:
  one problem per episode, its models the items), the same statistic from the same core;
- :func:`percentile_ci`: the percentile interval of replicates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "UNIT_COLUMNS",
    "constant_replicates",
    "generator",
    "pearson_replicates",
    "percentile_ci",
    "replicate_statistics",
    "resample_counts",
    "row_weights",
    "stratified_counts",
    "unit_codes",
    "weighted_tau",
]

UNIT_COLUMNS: tuple[str, ...] = ("suite", "episode")
"""Columns that identify an episode (those present are used) for the bootstrap."""

_BLOCK_ELEMENTS = 4_000_000  # entries of one block of the pairwise concordance matrix


def generator(seed: int | np.random.SeedSequence) -> np.random.Generator:
    """The numpy generator of ``seed`` (a seed or a :class:`~numpy.random.SeedSequence`)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.default_rng(seq)


def resample_counts(rng: np.random.Generator, n_units: int, n_boot: int) -> npt.NDArray[np.int64]:
    """Counts (n_boot, n_units) of each unit in ``n_boot`` draws of ``n_units`` with replacement.

    Examples
    --------
    >>> counts = resample_counts(generator(0), 5, 3)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    flat = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units)
    return flat.reshape(n_boot, n_units).astype(np.int64)


def stratified_counts(
    rng: np.random.Generator, strata: npt.ArrayLike, n_boot: int
) -> npt.NDArray[np.int64]:
    """Counts (n_boot, n_units): each stratum's units drawn with replacement within the stratum.

    Unit i belongs to stratum ``strata[i]``; a replicate keeps every stratum's size (the
    (ways, shots) cells of a mixed suite stay the sizes they are). Strata are drawn in sorted
    order, each with :func:`resample_counts`, so one stratum gives exactly its counts.

    Examples
    --------
    >>> counts = stratified_counts(generator(0), [0, 0, 1, 1, 1], 4)
    >>> counts[:, :2].sum(axis=1).tolist(), counts[:, 2:].sum(axis=1).tolist()
    ([2, 2, 2, 2], [3, 3, 3, 3])
    """
    codes = np.asarray(strata)
    out = np.zeros((n_boot, codes.size), dtype=np.int64)
    for value in np.unique(codes):
        members = np.flatnonzero(codes == value)
        out[:, members] = resample_counts(rng, members.size, n_boot)
    return out


def unit_codes(frame: pd.DataFrame) -> npt.NDArray[np.intp]:
    """Integer code of each row's episode (rows without episode columns are their own unit).

    Examples
    --------
    >>> unit_codes(pd.DataFrame({"episode": [7, 3, 7]})).tolist()
    [1, 0, 1]
    """
    cols = [c for c in UNIT_COLUMNS if c in frame.columns]
    if not cols:
        return np.arange(len(frame), dtype=np.intp)
    # groupby().ngroup() sorts the keys, so the codes do not depend on row order.
    return frame.groupby(cols, sort=True, dropna=False).ngroup().to_numpy().astype(np.intp)


def row_weights(
    units: npt.NDArray[np.intp], n_boot: int, seed: int | np.random.SeedSequence
) -> npt.NDArray[np.int64]:
    """Bootstrap weights (n_boot, n_rows): how often each row appears in each replicate.

    Rows of one unit (episode) move together: they share their unit's count.
    """
    _, codes = np.unique(units, return_inverse=True)
    counts = resample_counts(generator(seed), int(codes.max()) + 1, n_boot)
    return counts[:, codes]


def percentile_ci(values: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    """The percentile interval of the finite ``values`` (NaN, NaN when there are none).

    Examples
    --------
    >>> percentile_ci(np.arange(101.0), 0.9)
    (5.0, 95.0)
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


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


def _one_sided_tau(
    w: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    first: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    untied_x: npt.NDArray[np.float64],
    untied_y: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """scipy's ``_weightedrankedtau(first, second, rank=None)`` (hyperbolic, additive) from counts.

    Instances are ranked by decreasing (first, second); an instance at rank r weighs
    ``1/(r+1)``; a pair weighs the sum of its two weights. Item i's instances occupy a block of
    ranks, whose total weight is ``S_i = H[start_i + c_i] - H[start_i]``. Pairs of distinct
    items contribute ``S_i c_j + S_j c_i`` times their concordance, so the numerator is
    ``S^T M c = S . q``. ``untied_x`` / ``untied_y`` hold, per item, the weight of the items
    *not* tied with it in each coordinate.

    ``first`` and ``second`` are one vector shared by every row of ``w`` (a bootstrap: one
    ranking, many count vectors) or one vector per row (many problems).
    """
    counts = w.astype(np.int64)
    h = _harmonic(int(counts.sum(axis=1).max(initial=0)))
    if first.ndim == 1:
        desc = np.lexsort((second, first))[::-1]
        sorted_counts = counts[:, desc]
        start = np.cumsum(sorted_counts, axis=1) - sorted_counts
        block = np.empty_like(w)
        block[:, desc] = h[start + sorted_counts] - h[start]
    else:
        desc = np.lexsort((second, first), axis=-1)[:, ::-1]
        sorted_counts = np.take_along_axis(counts, desc, axis=1)
        start = np.cumsum(sorted_counts, axis=1) - sorted_counts
        block = np.empty_like(w)
        np.put_along_axis(block, desc, h[start + sorted_counts] - h[start], axis=1)
    num = (block * q).sum(axis=1)
    den_x = (block * untied_x).sum(axis=1)
    den_y = (block * untied_y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # sqrt(d * d) is d exactly in IEEE arithmetic, so a perfect ranking gives exactly 1.
        tau = num / np.sqrt(den_x * den_y)
    return np.clip(tau, -1.0, 1.0)


def constant_replicates(
    counts: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """(B,): whether ``values`` are constant in each replicate (every draw in one tie group).

    Exact, from the counts: a replicate is constant when one row holds all of its draws, or
    when a group of tied rows does.

    Examples
    --------
    >>> counts = np.array([[3, 0, 0], [0, 2, 1], [1, 1, 1]])
    >>> constant_replicates(counts, np.array([1.0, 2.0, 2.0])).tolist()
    [True, True, False]
    """
    total = counts.sum(axis=1)
    return _one_row(counts, total) | _one_tie_group(counts, total, values)


def _one_row(counts: npt.NDArray[np.int64], total: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    return np.asarray(counts.max(axis=1, initial=0) >= total, dtype=bool)


def _one_tie_group(
    counts: npt.NDArray[np.int64], total: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Replicates whose draws all fall in one group of two or more tied rows."""
    _, groups, sizes = np.unique(values, return_inverse=True, return_counts=True)
    tied = np.flatnonzero(sizes[groups] > 1)
    if not tied.size:
        return np.zeros(len(counts), dtype=bool)
    order = tied[np.argsort(groups[tied], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
    sums = np.add.reduceat(counts[:, order], starts, axis=1)
    return np.asarray((sums >= total[:, None]).any(axis=1), dtype=bool)


def _scaled(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns centred and divided by their largest absolute value (Pearson r is unchanged)."""
    centred = values - values.mean(axis=0)
    scale = np.abs(centred).max(axis=0, initial=0.0)
    return np.asarray(centred / np.where(scale > 0, scale, 1.0), dtype=np.float64)


def _pearson_from_sums(
    weights: npt.NDArray[np.float64], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(B, M) weighted Pearson r of the columns of ``x`` (n, M) with ``y`` (n,), no checks.

    The weighted sums of x, x², y, y² and xy of every replicate and column come from one
    matrix product of the weights with the (scaled) data.
    """
    n_metrics = x.shape[1]
    xs, ys = _scaled(x), _scaled(y[:, None])[:, 0]
    design = np.column_stack([ys, ys * ys, xs, xs * xs, xs * ys[:, None]])
    sums = weights @ design
    n = weights.sum(axis=1)[:, None]
    sy, syy = sums[:, :1], sums[:, 1:2]
    sx = sums[:, 2 : 2 + n_metrics]
    sxx = sums[:, 2 + n_metrics : 2 + 2 * n_metrics]
    sxy = sums[:, 2 + 2 * n_metrics :]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (sxy - sx * sy / n) / np.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))
    return np.asarray(np.clip(r, -1.0, 1.0), dtype=np.float64)


def pearson_replicates(
    x: npt.ArrayLike, y: npt.ArrayLike, counts: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Pearson r of every column of ``x`` with ``y`` on every replicate: (B, M).

    ``counts[b, i]`` is how often row ``i`` is drawn in replicate ``b``. One matrix product
    serves every replicate and column; r is NaN where a column or ``y`` is constant in a
    replicate (:func:`constant_replicates`). With all counts 1 each column's r is
    :func:`scipy.stats.pearsonr`'s to rounding.

    Parameters
    ----------
    x:
        Metric values (finite), shape (n,) or (n, M).
    y:
        Target values (finite), shape (n,).
    counts:
        How often each row is drawn in each replicate, shape (B, n).

    Returns
    -------
    ndarray, shape (B, M)

    Examples
    --------
    >>> from scipy import stats
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    >>> r = pearson_replicates(x, y, np.ones((1, 30), dtype=np.int64))
    >>> bool(np.isclose(r[0, 1], stats.pearsonr(x[:, 1], y).statistic))
    True
    """
    xs = np.asarray(x, dtype=np.float64)
    xs = xs[:, None] if xs.ndim == 1 else xs
    ys = np.asarray(y, dtype=np.float64)
    r = _pearson_from_sums(counts.astype(np.float64), xs, ys)
    total = counts.sum(axis=1)
    bad = _one_row(counts, total) | _one_tie_group(counts, total, ys)
    columns = [_one_tie_group(counts, total, xs[:, j]) for j in range(xs.shape[1])]
    bad = bad[:, None] | np.column_stack(columns)
    return np.asarray(np.where(bad, np.nan, r), dtype=np.float64)


def replicate_statistics(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.int64],
    methods: Sequence[str],
) -> dict[str, npt.NDArray[np.float64]]:
    """Each statistic of ``methods`` on every replicate; NaN where x or y is constant in it.

    ``weights[b, i]`` is how many times row ``i`` appears in replicate ``b``; ``methods`` are
    among ``pearson``, ``spearman``, ``kendall`` (tau-b) and ``weightedtau`` (scipy's
    ``weightedtau`` defaults). With all weights 1 the results are scipy's point estimates.

    Examples
    --------
    >>> from scipy import stats
    >>> x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    >>> out = replicate_statistics(x, y, np.ones((1, 4), dtype=np.int64), ["kendall"])
    >>> bool(np.isclose(out["kendall"][0], stats.kendalltau(x, y).statistic))
    True
    """
    w = weights.astype(np.float64)
    n = w.sum(axis=1)
    tx, ty = _Ties(x), _Ties(y)
    gx, gy = tx.totals(w), ty.totals(w)
    degenerate = (gx.max(axis=1) >= n) | (gy.max(axis=1) >= n)
    out: dict[str, npt.NDArray[np.float64]] = {}

    if "pearson" in methods:
        out["pearson"] = _pearson_from_sums(w, x[:, None], y)[:, 0]

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
            free_x = n[:, None] - gx[:, tx.group]
            free_y = n[:, None] - gy[:, ty.group]
            one = _one_sided_tau(w, q, x, y, free_x, free_y)
            two = _one_sided_tau(w, q, y, x, free_x, free_y)
            out["weightedtau"] = (one + two) / 2.0

    for key in out:
        out[key] = np.where(degenerate, np.nan, out[key])
    return out


def weighted_tau(x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """:func:`scipy.stats.weightedtau` (defaults) of every row pair, NaN entries left out.

    Vigna's weighted tau with hyperbolic weigher ``1/(r+1)``, additive pair weights, averaged
    over the rankings by decreasing (x, y) and by decreasing (y, x) -- scipy's ``rank=True``.
    The same core as :func:`replicate_statistics`'s ``weightedtau``: an item left out counts 0.

    Parameters
    ----------
    x, y:
        Shape (E, M): E independent problems of M items each; an item that is NaN in x or y
        is left out of its row.

    Returns
    -------
    ndarray, shape (E,)
        One tau per row; NaN where a row has x or y constant over its valid items (or fewer
        than 2 valid items).

    Examples
    --------
    >>> from scipy.stats import weightedtau
    >>> x = np.array([[12, 2, 1, 12, 2], [1, 2, 3, np.nan, 5]])
    >>> y = np.array([[1, 4, 7, 1, 0], [1, 2, 3, 4, 5]])
    >>> weighted_tau(x, y).round(6)
    array([-0.56695,  1.     ])
    >>> round(float(weightedtau(x[0], y[0]).statistic), 6)
    -0.56695
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.ndim != 2 or xs.shape != ys.shape:
        raise ValueError(
            f"`x` and `y` must be 2-D arrays of one shape; got {xs.shape!r} and {ys.shape!r}."
        )
    valid = np.isfinite(xs) & np.isfinite(ys)
    w = valid.astype(np.float64)
    n = w.sum(axis=1)
    # Left-out items weigh 0 and sit where they do not move anyone's rank (their count is 0).
    xs = np.where(valid, xs, -np.inf)
    ys = np.where(valid, ys, -np.inf)
    with np.errstate(invalid="ignore"):  # -inf - -inf between two left-out items: masked next
        sx = np.sign(xs[:, :, None] - xs[:, None, :])
        sy = np.sign(ys[:, :, None] - ys[:, None, :])
    sx = np.where(valid[:, :, None] & valid[:, None, :], sx, 0.0)
    sy = np.where(valid[:, :, None] & valid[:, None, :], sy, 0.0)
    q = np.einsum("eij,eij,ej->ei", sx, sy, w)
    free_x = np.einsum("eij,ej->ei", np.abs(sx), w)
    free_y = np.einsum("eij,ej->ei", np.abs(sy), w)
    one = _one_sided_tau(w, q, xs, ys, free_x, free_y)
    two = _one_sided_tau(w, q, ys, xs, free_x, free_y)
    tau = (one + two) / 2.0
    with np.errstate(invalid="ignore"):
        degenerate = (free_x * w).sum(axis=1) == 0
        degenerate |= (free_y * w).sum(axis=1) == 0
    return np.asarray(np.where(degenerate | (n < 2), np.nan, tau), dtype=np.float64)
