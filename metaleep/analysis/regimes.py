"""Correlations within (ways, shots) cells, combined over cells and training seeds.

A correlation over episodes with different numbers of ways or shots is confounded: H-score is
C - 1 in every cell where n - 1 <= d, so across cells it follows the number of ways, and so
does accuracy; a pooled r measures the design, not the metric (on ``glyphs-mixed`` the cell
explained all of H-score's variance and 63 % of accuracy's). metaleep never reports a bare
pooled r over cells. Within a group of rows (one backbone, dummy mode and adaptation):

1. each (training seed, cell) gets its own correlation -- Pearson r, Spearman, Kendall's tau-b
   or the weighted tau -- over its episodes;
2. the cells of one seed are combined on Fisher's z scale, each weighted by ``n - 3`` (the
   inverse of the variance of ``atanh r``): ``z_s = sum_c (n_c - 3) atanh r_c / sum_c (n_c - 3)``;
3. the seeds are averaged on the same scale (each seed a replicate of the whole experiment:
   train the backbone, run the episodes): ``r = tanh(mean_s z_s)``.

With one cell and one seed this is the plain correlation (scipy's point estimate and p-value,
the same numbers as before). A cell where the metric or the target is constant, or that has
fewer than 4 episodes (3 for a lone cell), has no correlation and is left out of the
combination; the result says in how many cells the metric was defined.

The bootstrap is hierarchical (:func:`combined_correlation`): each replicate draws the seeds
with replacement, then the episodes with replacement within their cell -- one episode draw
shared by every seed, because every seed saw the same episodes (a crossed design; drawing the
episodes anew per seed would treat one episode's difficulty as independent across seeds and
understate the interval). The statistic is recomputed on the replicate exactly as above. The
same episode draw with the seeds held fixed gives the episodes-only interval; the share of the
bootstrap variance that the seed draw adds is :attr:`Combined.seed_share`. With S seeds the
seed part of the variance is biased low by (S - 1) / S (the usual bootstrap bias with few
top-level units), so 3 seeds give a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from metaleep.analysis.resample import (
    generator,
    pearson_replicates,
    percentile_ci,
    replicate_statistics,
    resample_counts,
    stratified_counts,
    unit_codes,
)
from metaleep.analysis.tables import is_constant

__all__ = [
    "CELL",
    "REGIMES",
    "REPLICATE",
    "Combined",
    "Layout",
    "combined_correlation",
    "fisher_z",
    "layout",
    "point_correlation",
    "regime_of",
]

CELL: tuple[str, ...] = ("ways", "shots")
"""Columns whose values define a cell: correlations are computed within cells."""

REPLICATE = "seed"
"""Column of the training seed: rows of one seed are one replicate of the experiment."""

REGIMES: tuple[str, ...] = ("1-shot", ">=2-shot")
"""The two regimes the headline reports apart: 1-shot episodes and episodes of 2 or more shots
(1-shot support sets have one image per class, and the label-using baselines are constant)."""

R_MAX = 1.0 - 1e-12
"""|r| is clipped to this before Fisher's z (atanh(1) is infinite)."""


def regime_of(shots: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """``"1-shot"`` or ``">=2-shot"`` for each number of shots.

    Examples
    --------
    >>> regime_of([1, 5, 2]).tolist()
    ['1-shot', '>=2-shot', '>=2-shot']
    """
    values = np.asarray(shots)
    return np.where(values == 1, REGIMES[0], REGIMES[1])


def fisher_z(r: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Fisher's z = atanh(r), |r| clipped to :data:`R_MAX` (NaN stays NaN).

    Examples
    --------
    >>> fisher_z([0.0, 0.5, 1.0]).round(4).tolist()
    [0.0, 0.5493, 14.1621]
    """
    values = np.asarray(r, dtype=np.float64)
    return np.asarray(np.arctanh(np.clip(values, -R_MAX, R_MAX)), dtype=np.float64)


@dataclass(frozen=True)
class Layout:
    """Where each row of a group sits: its seed, its cell and its episode.

    Attributes
    ----------
    seeds:
        The seed values (``(None,)`` without a seed column).
    cells:
        The (ways, shots) values of each cell, sorted (``((),)`` without cell columns).
    seed_of_row, cell_of_row, episode_of_row:
        Codes per row into :attr:`seeds`, :attr:`cells` and the episodes.
    cell_of_episode:
        The cell code of each episode (an episode lies in one cell).
    """

    seeds: tuple[object, ...]
    cells: tuple[tuple[object, ...], ...]
    seed_of_row: npt.NDArray[np.intp]
    cell_of_row: npt.NDArray[np.intp]
    episode_of_row: npt.NDArray[np.intp]
    cell_of_episode: npt.NDArray[np.intp]

    @property
    def n_episodes(self) -> int:
        """Distinct episodes."""
        return len(self.cell_of_episode)

    def rows(self, seed: int, cell: int) -> npt.NDArray[np.intp]:
        """Row positions of one (seed, cell), in table order."""
        return np.flatnonzero((self.seed_of_row == seed) & (self.cell_of_row == cell))

    def subset(self, rows: npt.ArrayLike) -> Layout:
        """The layout of some of the rows, with the same seeds, cells and episode codes (so
        draws made for the whole layout apply to the subset).

        Examples
        --------
        >>> t = pd.DataFrame({"episode": [0, 1, 2, 3], "ways": 5, "shots": [1, 1, 5, 5]})
        >>> sub = layout(t).subset([1, 3])
        >>> sub.episode_of_row.tolist(), sub.cell_of_row.tolist(), sub.n_episodes
        ([1, 3], [0, 1], 4)
        """
        picked = np.asarray(rows, dtype=np.intp)
        return Layout(
            seeds=self.seeds,
            cells=self.cells,
            seed_of_row=self.seed_of_row[picked],
            cell_of_row=self.cell_of_row[picked],
            episode_of_row=self.episode_of_row[picked],
            cell_of_episode=self.cell_of_episode,
        )


def _codes(
    frame: pd.DataFrame, columns: Sequence[str]
) -> tuple[npt.NDArray[np.intp], list[tuple[object, ...]]]:
    """Group code of each row (groups in sorted order) and each group's key."""
    if not columns:
        return np.zeros(len(frame), dtype=np.intp), [()]
    grouped = frame.groupby(list(columns), sort=True, dropna=False).ngroup()
    codes = np.asarray(grouped.to_numpy(), dtype=np.intp)
    first = np.unique(codes, return_index=True)[1]
    keys: list[tuple[object, ...]] = [tuple(frame[list(columns)].iloc[i].tolist()) for i in first]
    return codes, keys


def layout(
    frame: pd.DataFrame, *, cells: Sequence[str] = CELL, replicate: str | None = REPLICATE
) -> Layout:
    """The :class:`Layout` of ``frame``: cell columns and the seed column, those present.

    Examples
    --------
    >>> t = pd.DataFrame({"episode": [0, 1, 2, 0, 1, 2], "ways": [5, 5, 20, 5, 5, 20],
    ...                   "shots": 1, "seed": [0, 0, 0, 1, 1, 1]})
    >>> lay = layout(t)
    >>> lay.seeds, lay.cells, lay.cell_of_episode.tolist()
    ((0, 1), ((5, 1), (20, 1)), [0, 0, 1])
    """
    cell_cols = [c for c in cells if c in frame.columns]
    cell_of_row, cell_keys = _codes(frame, cell_cols)
    if replicate is not None and replicate in frame.columns:
        seed_of_row, seed_keys = _codes(frame, [replicate])
        seeds = tuple(k[0] for k in seed_keys)
    else:
        seed_of_row, seeds = np.zeros(len(frame), dtype=np.intp), (None,)
    episode_of_row = unit_codes(frame)
    n_episodes = int(episode_of_row.max()) + 1 if len(frame) else 0
    cell_of_episode = np.zeros(n_episodes, dtype=np.intp)
    cell_of_episode[episode_of_row] = cell_of_row
    if len(frame):
        clash = cell_of_episode[episode_of_row] != cell_of_row
        if clash.any():
            raise ValueError(
                f"`table` must give each episode one ({', '.join(cell_cols)}) cell; got an "
                "episode in several."
            )
    return Layout(
        seeds=seeds,
        cells=tuple(cell_keys),
        seed_of_row=seed_of_row,
        cell_of_row=cell_of_row,
        episode_of_row=episode_of_row,
        cell_of_episode=cell_of_episode,
    )


def point_correlation(
    method: str, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """scipy's statistic and two-sided p-value (NaN p for the weighted tau, which has none).

    Examples
    --------
    >>> r, p = point_correlation("pearson", np.array([1.0, 2.0, 3.0, 5.0]),
    ...                          np.array([1.0, 2.0, 2.5, 4.0]))
    >>> round(r, 3)
    0.995
    """
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


@dataclass(eq=False)
class Combined:
    """Each metric's correlation with the target, combined over cells and seeds.

    Attributes
    ----------
    r, p:
        (M,) combined statistic and p-value (NaN where undefined; p is scipy's with one cell
        and one seed, Fisher's z test over cells with one seed for Pearson, NaN otherwise).
    n, n_episodes:
        (M,) rows and distinct episodes used.
    n_cells, n_seeds:
        Cells and seeds of the group.
    cells_defined:
        (M,) cells in which the metric has a correlation (in every seed).
    seeds_defined:
        (M,) seeds in which the metric has a correlation (in some cell).
    reason:
        Why a metric has no r ("" where it has one).
    notes:
        Per metric, what else a reader should know (cells or seeds left out).
    boot, boot_episodes:
        (B, M) replicates of the statistic: seeds and episodes resampled, and episodes only
        (seeds fixed); None without a bootstrap.
    cell_r, cell_n:
        (C, M) each cell's own statistic (mean Fisher z over the seeds where it is defined;
        NaN where it is defined in none) and its rows with finite values: the breakdown by
        (ways, shots) cell.
    """

    r: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]
    n: npt.NDArray[np.int64]
    n_episodes: npt.NDArray[np.int64]
    n_cells: int
    n_seeds: int
    cells_defined: npt.NDArray[np.int64]
    seeds_defined: npt.NDArray[np.int64]
    reason: list[str]
    notes: list[list[str]]
    boot: npt.NDArray[np.float64] | None = None
    boot_episodes: npt.NDArray[np.float64] | None = None
    cell_r: npt.NDArray[np.float64] | None = None
    cell_n: npt.NDArray[np.int64] | None = None

    @property
    def combination(self) -> str:
        """How the statistic was formed, in words."""
        if self.n_cells == 1 and self.n_seeds == 1:
            return "one cell"
        parts = []
        if self.n_cells > 1:
            parts.append(f"within {self.n_cells} (ways, shots) cells, Fisher z weighted by n - 3")
        if self.n_seeds > 1:
            parts.append(f"mean Fisher z over {self.n_seeds} training seeds")
        return "; ".join(parts)

    def interval(self, j: int, confidence: float) -> tuple[float, float]:
        """Percentile interval of metric ``j`` (seeds and episodes resampled)."""
        if self.boot is None:
            return math.nan, math.nan
        return percentile_ci(self.boot[:, j], confidence)

    def episodes_interval(self, j: int, confidence: float) -> tuple[float, float]:
        """Percentile interval of metric ``j`` with the seeds held fixed."""
        if self.boot_episodes is None:
            return math.nan, math.nan
        return percentile_ci(self.boot_episodes[:, j], confidence)

    def seed_share(self, j: int) -> float:
        """Share of metric ``j``'s bootstrap variance that the seed draw adds:
        ``1 - var(episodes only) / var(seeds and episodes)``, clipped to [0, 1]; NaN with one
        seed or no bootstrap."""
        if self.boot is None or self.boot_episodes is None or self.n_seeds < 2:
            return math.nan
        full = self.boot[:, j][np.isfinite(self.boot[:, j])]
        part = self.boot_episodes[:, j][np.isfinite(self.boot_episodes[:, j])]
        if full.size < 2 or part.size < 2 or np.var(full) <= 0:
            return math.nan
        return float(np.clip(1.0 - np.var(part) / np.var(full), 0.0, 1.0))

    def undefined_replicates(self, j: int) -> int:
        """Replicates in which metric ``j`` had no statistic."""
        if self.boot is None:
            return 0
        return int(np.isnan(self.boot[:, j]).sum()) if np.isfinite(self.r[j]) else 0


def _cell_replicates(
    method: str,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    counts: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """(B, M): the statistic of each column of ``x`` with ``y`` on every replicate."""
    if method == "pearson":
        return pearson_replicates(x, y, counts)
    return np.column_stack(
        [replicate_statistics(x[:, j], y, counts, [method])[method] for j in range(x.shape[1])]
    )


def combined_correlation(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    lay: Layout,
    *,
    method: str = "pearson",
    n_boot: int = 0,
    seed: int | np.random.SeedSequence = 0,
    seed_counts: npt.NDArray[np.int64] | None = None,
    episode_counts: npt.NDArray[np.int64] | None = None,
) -> Combined:
    """The combined correlation of every column of ``x`` with ``y`` (see the module docstring).

    Parameters
    ----------
    x:
        Oriented metric values, shape (rows, M) (higher = predicts higher ``y``); non-finite
        rows are left out per metric.
    y:
        The target (accuracy), shape (rows,).
    lay:
        Seeds, cells and episodes of the rows (:func:`layout`).
    method:
        ``pearson``, ``spearman``, ``kendall`` or ``weightedtau``.
    n_boot:
        Bootstrap replicates (0: none).
    seed:
        Seed of the resampling: episodes from ``generator(seed)`` (stratified by cell), seeds
        from the child sequence with spawn key ``(..., 1)``. With one cell the episode draw
        is :func:`~metaleep.analysis.resample.row_weights`'s.
    seed_counts, episode_counts:
        Draws to use instead: (B, S) counts of the seeds and (B, episodes) of the episodes
        (several groups that must share a draw, e.g. the settings of a grid).

    Returns
    -------
    Combined

    Examples
    --------
    Two cells where the metric agrees with accuracy within each, but a pooled r would see the
    cells' different levels:

    >>> t = pd.DataFrame({"episode": range(8), "ways": [5] * 4 + [20] * 4, "shots": 1})
    >>> x = np.array([[1.0], [2.0], [3.0], [4.0], [11.0], [12.0], [13.0], [14.0]])
    >>> y = np.array([0.9, 0.95, 0.97, 0.99, 0.1, 0.2, 0.25, 0.3])
    >>> res = combined_correlation(x, y, layout(t))
    >>> round(float(res.r[0]), 3), res.combination
    (0.977, 'within 2 (ways, shots) cells, Fisher z weighted by n - 3')
    >>> round(float(stats.pearsonr(x[:, 0], y).statistic), 2)    # the pooled r
    -0.93
    """
    n_rows, n_metrics = x.shape
    n_seeds = len(lay.seeds)
    # the cells this group has rows in (a layout shared by several groups may hold more)
    present = np.isin(np.arange(len(lay.cells)), lay.cell_of_row)
    n_cells = int(present.sum())
    single = n_cells == 1 and n_seeds == 1
    smallest = 3 if n_cells == 1 else 4
    finite_y = np.isfinite(y)
    all_cells = len(lay.cells)
    r_cell = np.full((n_seeds, all_cells, n_metrics), np.nan)
    p_cell = np.full((n_seeds, all_cells, n_metrics), np.nan)
    n_cell = np.zeros((all_cells, n_metrics), dtype=np.int64)
    weight = np.zeros((n_seeds, all_cells, n_metrics))
    used = np.zeros((n_seeds, all_cells, n_metrics), dtype=bool)
    why: dict[tuple[int, int, int], str] = {}
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    if episode_counts is None and n_boot > 0:
        episode_counts = stratified_counts(generator(root), lay.cell_of_episode, n_boot)
    n_b = 0 if episode_counts is None else len(episode_counts)
    if n_b and seed_counts is None:
        child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 1))
        seed_counts = resample_counts(generator(child), n_seeds, n_b)
    boot_cell = np.full((n_b, n_seeds, all_cells, n_metrics), np.nan) if n_b else None
    rows_used = np.zeros((n_metrics, n_rows), dtype=bool)

    for s in range(n_seeds):
        for c in np.flatnonzero(present).tolist():
            rows = lay.rows(s, c)
            keep = np.isfinite(x[rows]) & finite_y[rows, None]
            patterns: dict[bytes, list[int]] = {}
            for j in range(n_metrics):
                sel = rows[keep[:, j]]
                xj, yj = x[sel, j], y[sel]
                n_cell[c, j] += len(sel)
                if len(sel) < smallest:
                    why[s, c, j] = f"fewer than {smallest} episodes"
                elif is_constant(xj):
                    why[s, c, j] = "constant metric"
                elif is_constant(yj):
                    why[s, c, j] = "constant target"
                else:
                    r_cell[s, c, j], p_cell[s, c, j] = point_correlation(method, xj, yj)
                    weight[s, c, j] = len(sel) - 3
                    used[s, c, j] = True
                    rows_used[j, sel] = True
                    patterns.setdefault(keep[:, j].tobytes(), []).append(j)
            if boot_cell is None or episode_counts is None:
                continue
            for mask_bytes, js in patterns.items():
                mask = np.frombuffer(mask_bytes, dtype=bool)
                sel = rows[mask]
                counts = episode_counts[:, lay.episode_of_row[sel]]
                values = x[np.ix_(sel, js)]
                boot_cell[:, s, c, js] = _cell_replicates(method, values, y[sel], counts)

    cells_defined = used.all(axis=0).sum(axis=0).astype(np.int64)
    r = np.full(n_metrics, np.nan)
    p = np.full(n_metrics, np.nan)
    reason = [""] * n_metrics
    notes: list[list[str]] = [[] for _ in range(n_metrics)]
    seed_ok = np.asarray(used.any(axis=1), dtype=bool)  # (S, M): the seed has a defined cell
    for j in range(n_metrics):
        if not seed_ok[:, j].any():
            found = {why.get((s, c, j), "") for s in range(n_seeds) for c in range(all_cells)}
            found.discard("")
            reason[j] = "; ".join(sorted(found)) or "no rows"
            if n_cells > 1:
                notes[j].append(f"no r in any of its {n_cells} (ways, shots) cells")
            continue
        left = int(n_cells - cells_defined[j])
        if left and n_cells > 1:
            kinds = sorted({why[s, c, j] for (s, c, jj) in why if jj == j and why[s, c, j]})
            notes[j].append(
                f"{', '.join(kinds)} in {left} of {n_cells} (ways, shots) cells (left out)"
            )
        missing_seeds = int((~seed_ok[:, j]).sum())
        if missing_seeds:
            notes[j].append(f"no r for {missing_seeds} of {n_seeds} training seeds (left out)")
    only = int(np.argmax(present)) if n_cells else 0
    if single:
        r = r_cell[0, only].copy()
        p = p_cell[0, only].copy()
    else:
        z_seed = _combine_cells(fisher_z(r_cell), weight)  # (S, M)
        r = np.tanh(_nanmean(np.where(seed_ok, z_seed, np.nan), axis=0))
        if n_seeds == 1 and method == "pearson":
            total = weight[0].sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                statistic = z_seed[0] * np.sqrt(total)
            p = np.where(total > 0, 2.0 * stats.norm.sf(np.abs(statistic)), np.nan)
    r = np.where(seed_ok.any(axis=0), r, np.nan)

    boot = boot_episodes = None
    if boot_cell is not None:
        if single:
            boot = boot_episodes = boot_cell[:, 0, only, :]
        else:
            z_rep = _combine_cells(fisher_z(boot_cell), weight[None])  # (B, S, M)
            z_rep = np.where(seed_ok[None], z_rep, np.nan)
            ok = np.isfinite(z_rep) | ~seed_ok[None]
            valid = ok.all(axis=1)  # a replicate counts only when every defined seed has a z
            k = np.ones((n_b, n_seeds, 1)) if seed_counts is None else seed_counts[:, :, None]
            k = k * seed_ok[None]
            episodes_only = _nanmean(z_rep, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                drawn = (k * np.nan_to_num(z_rep)).sum(axis=1) / k.sum(axis=1)
            boot = np.where(valid, np.tanh(drawn), np.nan)
            boot_episodes = np.where(valid, np.tanh(episodes_only), np.nan)
        boot = np.where(np.isfinite(r)[None], boot, np.nan)
        boot_episodes = np.where(np.isfinite(r)[None], boot_episodes, np.nan)
    n_episodes = np.array(
        [len(np.unique(lay.episode_of_row[rows_used[j]])) for j in range(n_metrics)],
        dtype=np.int64,
    )
    return Combined(
        r=r,
        p=p,
        n=rows_used.sum(axis=1).astype(np.int64),
        n_episodes=n_episodes,
        n_cells=n_cells,
        n_seeds=n_seeds,
        cells_defined=cells_defined,
        seeds_defined=seed_ok.sum(axis=0).astype(np.int64),
        reason=reason,
        notes=notes,
        boot=boot,
        boot_episodes=boot_episodes,
        cell_r=np.tanh(_nanmean(fisher_z(r_cell), axis=0)),
        cell_n=n_cell,
    )


def _nanmean(values: npt.NDArray[np.float64], axis: int) -> npt.NDArray[np.float64]:
    """Mean of the finite entries along ``axis``; NaN where there are none (no warning)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(count > 0, total / count, np.nan), dtype=np.float64)


def _combine_cells(
    z: npt.NDArray[np.float64], weight: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Weighted mean over the cell axis (-2) of ``z`` (cells with weight 0 left out); NaN
    where a weighted cell's z is NaN or no cell has weight."""
    w = np.broadcast_to(weight, z.shape)
    terms = np.where(w > 0, z * w, 0.0)
    terms = np.where((w > 0) & np.isnan(z), np.nan, terms)
    total = w.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(total > 0, terms.sum(axis=-2) / total, np.nan))
