"""The grid's aggregates: per-setting correlations, wins by regime, their tests and stability.

Input: the grid table (:func:`metaleep.study.grid.run_grid`'s ``table.csv``): the study table
of every target with a ``target`` column and the training ``seed`` of the backbones. A
**setting** is a group of rows sharing :data:`SETTING`: (target, regime, source backbone,
dummy-label mode, transfer type). The **regime** splits a target by shots (``1-shot`` or
``>=2-shot``, :data:`~metaleep.analysis.regimes.REGIMES`): the label-using baselines are
constant at 1 shot, so the two regimes are different contests and are reported apart.

- **Correlations** (:func:`~metaleep.analysis.regimes.combined_correlation`): Pearson r of each
  metric with post-adaptation accuracy per setting, within each (ways, shots) cell and training
  seed, combined by Fisher z (cells weighted by n - 3, seeds averaged); never a pooled r over
  cells. The interval is a hierarchical bootstrap (B = ``n_boot``; seeds, then episodes within
  cells, one episode draw shared by the seeds); ``seed_share_<m>`` says how much of its
  variance the seed draw adds. Every setting of one (target, regime) shares the episode draw,
  and every setting the seed draw (the same trained networks serve every target), so the win
  counts are resampled coherently; a setting on fewer episodes (fine-tuning) takes the draw of
  its episodes. Spearman and Kendall are computed the same way (point estimates) for the
  robustness table.
- **Who competes**: a metric competes in a setting when it has an r in every cell and seed; one
  constant in a setting (H-score when n - 1 <= d, the label-using baselines at 1 shot) is
  *undefined there* -- listed in ``undefined`` and counted in the wins table, not silently
  absent. ``n_competing`` says how many competed.
- **Wins and their tests**: the metric with the highest r wins the setting (the LEEP paper's
  count); its p-value is the selection-aware two-sided test of
  :func:`~metaleep.analysis.significance.winner_test`; Benjamini-Hochberg across the grid's
  distinct tests gives q, and a win is **significant** when ``q <= alpha``.
- **Honest counting**: two settings whose accuracy vector is the same (dummy modes change the
  metrics that read them, not the adapted accuracy) and whose metric values are the same are
  one comparison: wins are also counted over distinct comparisons, each regime says how many
  distinct accuracy vectors and target samples lie under its "k of N", and identical tests
  count once in Benjamini-Hochberg.
- **Robustness**: winners under Spearman and Kendall beside Pearson's.
- **Stability** (in the spirit of Agostinelli et al., ECCV 2022): the share of bootstrap
  replicates in which each setting's winner keeps winning, the spread of each metric's win
  count, and win counts with one grid value left out.
- **What a metric adds** (:func:`~metaleep.analysis.added.added_r2`) and **source selection**
  (:func:`~metaleep.analysis.selection.source_selection`, with the static prior and the flag of
  a metric whose pick never varies), per target and regime, on each source's own dummy labels.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from metaleep.analysis.regimes import (
    CELL,
    REGIMES,
    REPLICATE,
    Combined,
    Layout,
    combined_correlation,
    layout,
    regime_of,
)
from metaleep.analysis.resample import generator, resample_counts, stratified_counts
from metaleep.analysis.significance import benjamini_hochberg, winner_test

__all__ = [
    "DIMENSIONS",
    "SETTING",
    "GridAnalysis",
    "analyse_grid",
    "count_wins",
    "leave_one_out",
    "prepare_table",
    "regime_findings",
    "regime_table",
    "selection_summary",
    "target_selection",
    "wins_table",
    "wins_words",
]

SETTING: tuple[str, ...] = ("target", "regime", "backbone", "dummy", "adaptation")
"""Columns that identify a setting (source = ``backbone``, transfer type = ``adaptation``)."""

DIMENSIONS: dict[str, str] = {
    "target": "target",
    "backbone": "source",
    "dummy": "dummy labels",
    "adaptation": "transfer",
}
"""Grid dimensions (setting columns) and their names in the report."""

PERFECT = 1.0 - 1e-9
"""Accuracy counted as 100 %."""

METHODS: tuple[str, ...] = ("pearson", "spearman", "kendall")
"""Coefficients side by side: Pearson (the paper's, with intervals and tests) and the two rank
correlations (point estimates)."""

ALL = "all"
"""The ``regime`` value of rows that count every setting."""


@dataclass(eq=False)
class GridAnalysis:
    """The aggregates of a grid (:func:`analyse_grid`); :meth:`write` stores them as CSV.

    Attributes
    ----------
    metrics:
        The metrics compared.
    settings:
        One row per setting: the :data:`SETTING` columns, ``n_episodes``, ``n_seeds``,
        ``n_cells``, accuracy summary (``acc_mean``, ``acc_std``, ``acc_perfect``: share at
        100 %), ``r_<m>``, ``ci_low_<m>``, ``ci_high_<m>``, ``seed_share_<m>`` per metric,
        ``n_competing``, ``undefined`` (metrics without an r there), ``winner``, ``p_winner``
        (selection-aware, two-sided), ``q_winner`` (Benjamini-Hochberg), ``significant``,
        ``winner_share`` (share of bootstrap replicates the winner keeps winning),
        ``winner_spearman``, ``winner_kendall``, and the comparison identities
        ``accuracy_id``, ``winner_comparison`` and ``test_id``.
    correlations:
        The long table: one row per setting, metric and coefficient.
    wins:
        One row per metric over every setting: ``wins``, ``distinct_wins``,
        ``significant_wins``, ``distinct_significant_wins``, ``undefined``, ``n_settings``
        (settings with a winner), ``mean_r``, ``median_seed_share``, ``boot_mean``,
        ``boot_low``, ``boot_high`` (95 % interval of the win count over the hierarchical
        bootstrap), ``top_share`` (share of replicates it wins most settings, ties split),
        ``wins_spearman`` and ``wins_kendall``.
    wins_by_regime:
        The same per regime (column ``regime``): the headline.
    counts:
        Per regime and ``all``: settings, settings with a winner, distinct accuracy vectors,
        target samples, tests and distinct tests, significant wins, seeds, and the settings
        whose winner changes under Spearman or Kendall.
    robustness:
        Per regime and metric: wins under each coefficient.
    leave_out:
        One row per left-out (dimension, value): ``n_settings``, the win count per metric,
        ``top`` and ``changed``.
    selection:
        Source selection per target, regime, seed and (dummy, transfer) group, static prior
        included.
    added:
        R^2 each metric adds over the controls and the baselines, per target and regime.
    seeds:
        The training seeds.
    cells:
        The breakdown by (ways, shots) cell: each setting's Pearson r per cell and metric
        (mean Fisher z over the seeds) and its rows (NaN: no r there, e.g. constant).
    leep_forms:
        ``raw`` or ``normalised`` per target (normalised LEEP on mixed-ways targets: the
        regressions need one scale; the within-cell correlations are the same in both forms).
    """

    metrics: list[str]
    settings: pd.DataFrame
    correlations: pd.DataFrame
    wins: pd.DataFrame
    leave_out: pd.DataFrame
    selection: pd.DataFrame
    leep_forms: dict[str, str] = field(default_factory=dict)
    alpha: float = 0.05
    n_boot: int = 10_000
    wins_by_regime: pd.DataFrame = field(default_factory=pd.DataFrame)
    counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    robustness: pd.DataFrame = field(default_factory=pd.DataFrame)
    added: pd.DataFrame = field(default_factory=pd.DataFrame)
    seeds: list[int] = field(default_factory=list)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def top(self) -> list[str]:
        """The metrics with most wins over every setting (point estimate)."""
        return _top(self.wins.set_index("metric")["wins"])

    def write(self, out_dir: str | Path) -> None:
        """Write ``settings.csv``, ``correlations.csv``, ``wins.csv``, ``wins_by_regime.csv``,
        ``counts.csv``, ``robustness.csv``, ``leave_out.csv``, ``selection.csv``,
        ``added.csv``, ``cells.csv`` and ``analysis.json`` into ``out_dir``."""
        from metaleep._io import atomic_write_bytes

        out = Path(out_dir)
        for name, frame in (
            ("settings", self.settings),
            ("correlations", self.correlations),
            ("wins", self.wins),
            ("wins_by_regime", self.wins_by_regime),
            ("counts", self.counts),
            ("robustness", self.robustness),
            ("leave_out", self.leave_out),
            ("selection", self.selection),
            ("added", self.added),
            ("cells", self.cells),
        ):
            atomic_write_bytes(out / f"{name}.csv", frame.to_csv(index=False).encode("utf-8"))
        meta = {
            "metrics": self.metrics,
            "leep_forms": self.leep_forms,
            "alpha": self.alpha,
            "n_boot": self.n_boot,
            "seeds": self.seeds,
            "top": self.top,
            "significance": "selection-aware two-sided bootstrap test of the winner against "
            "its strongest challenger, Benjamini-Hochberg over the distinct tests of the grid",
            "combination": "Pearson r within (ways, shots) cells, Fisher z weighted by n - 3; "
            "mean Fisher z over training seeds",
        }
        atomic_write_bytes(out / "analysis.json", json.dumps(meta, indent=2).encode("utf-8"))


def _top(counts: pd.Series) -> list[str]:
    if counts.empty or counts.max() <= 0:
        return []
    return [str(m) for m, k in counts.items() if k == counts.max()]


def _orientation(metrics: Sequence[str]) -> dict[str, bool]:
    from metaleep.metrics.registry import higher_is_better

    return higher_is_better(metrics)


def prepare_table(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """``table`` with a ``regime`` column (from ``shots``), a ``seed`` column (0 when absent)
    and LEEP and N-LEEP normalised on targets whose settings mix numbers of ways.

    Returns the new table and ``{target: "raw" | "normalised"}``.

    Examples
    --------
    >>> t = pd.DataFrame({"target": ["a", "a", "b", "b"], "backbone": "m", "dummy": "head",
    ...                   "adaptation": "maml", "ways": [5, 5, 5, 20], "shots": [1, 1, 1, 5],
    ...                   "leep": [-1.0] * 4})
    >>> out, forms = prepare_table(t)
    >>> forms, out.leep.round(3).tolist(), out.regime.tolist()
    ({'a': 'raw', 'b': 'normalised'}, [-1.0, -1.0, 0.379, 0.666], ['1-shot', '1-shot', \
'1-shot', '>=2-shot'])
    """
    from metaleep.analysis.correlations import LEEP_LIKE, add_normalised_leep, use_normalised_leep

    forms: dict[str, str] = {}
    parts = []
    for target, frame in table.groupby("target", sort=False):
        mixed = use_normalised_leep(frame, "auto", by=("backbone", "dummy", "adaptation"))
        forms[str(target)] = "normalised" if mixed else "raw"
        if mixed:
            present = [c for c in LEEP_LIKE if c in frame.columns]
            frame = add_normalised_leep(frame, columns=present)
            for c in present:
                frame[c] = frame.pop(f"{c}_norm")
        parts.append(frame)
    out = pd.concat(parts).loc[table.index] if parts else table.copy()
    shots = out["shots"] if "shots" in out.columns else pd.Series(2, index=out.index)
    out["regime"] = regime_of(shots.to_numpy())
    if REPLICATE not in out.columns:
        out[REPLICATE] = 0
    return out, forms


def _fingerprint(*arrays: npt.NDArray[np.generic]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _block_seed(seed: int, target: str, regime: str) -> np.random.SeedSequence:
    """The episode draws of one (target, regime) block: from ``seed`` and the block's name, so
    they do not depend on which other targets the grid has."""
    tag = zlib.crc32(f"{target}\0{regime}".encode())
    return np.random.SeedSequence(seed, spawn_key=(1, tag))


@dataclass
class _Unit:
    """What one setting yields (before Benjamini-Hochberg)."""

    row: dict[str, object]
    corr_rows: list[dict[str, object]]
    boot_winner: npt.NDArray[np.int16] | None
    cell_rows: list[dict[str, object]] = field(default_factory=list)


def _setting(
    key: tuple[object, ...],
    frame: pd.DataFrame,
    lay: Layout,
    metrics: Sequence[str],
    signs: npt.NDArray[np.float64],
    episode_counts: npt.NDArray[np.int64] | None,
    seed_counts: npt.NDArray[np.int64] | None,
) -> _Unit:
    """Correlations, competitors, winner and its p-value of one setting."""
    x = frame[list(metrics)].to_numpy(dtype=np.float64) * signs
    y = frame["accuracy"].to_numpy(dtype=np.float64)
    results: dict[str, Combined] = {
        "pearson": combined_correlation(
            x, y, lay, episode_counts=episode_counts, seed_counts=seed_counts
        ),
        "spearman": combined_correlation(x, y, lay, method="spearman"),
        "kendall": combined_correlation(x, y, lay, method="kendall"),
    }
    pear = results["pearson"]
    competing = (
        np.isfinite(pear.r)
        & (pear.cells_defined == pear.n_cells)
        & (pear.seeds_defined == pear.n_seeds)
    )
    r = np.where(competing, pear.r, np.nan)
    order = np.lexsort((lay.episode_of_row, lay.seed_of_row))
    ids = np.column_stack([lay.seed_of_row, lay.episode_of_row])[order]
    accuracy_id = _fingerprint(ids, y[order])
    comparison = [_fingerprint(ids, y[order], x[order, j]) for j in range(len(metrics))]
    boot_winner = None
    if pear.boot is not None:
        winner_idx, p = winner_test(r, pear.boot)
        w, p_value = int(winner_idx), float(p)
        picks = np.where(competing[None], pear.boot, -np.inf)
        ok = np.isfinite(picks).any(axis=1)
        boot_winner = np.where(ok, picks.argmax(axis=1), -1).astype(np.int16)
    else:
        w = int(np.nanargmax(r)) if competing.any() else -1
        p_value = math.nan
    winner = metrics[w] if w >= 0 else ""

    def rank_winner(method: str) -> str:
        values = np.where(competing, results[method].r, -np.inf)
        return metrics[int(values.argmax())] if competing.any() else ""

    row: dict[str, object] = dict(zip(SETTING, key, strict=True))
    row.update(
        {
            "n_episodes": len(np.unique(lay.episode_of_row)),
            "n_seeds": len(np.unique(lay.seed_of_row)),
            "n_cells": len(np.unique(lay.cell_of_row)),
            "acc_mean": float(y.mean()),
            "acc_std": float(y.std(ddof=1)) if len(y) > 1 else math.nan,
            "acc_perfect": float((y >= PERFECT).mean()),
        }
    )
    for j, m in enumerate(metrics):
        low, high = pear.interval(j, 0.95)
        row[f"r_{m}"] = float(r[j])
        row[f"ci_low_{m}"] = low if competing[j] else math.nan
        row[f"ci_high_{m}"] = high if competing[j] else math.nan
        row[f"seed_share_{m}"] = pear.seed_share(j) if competing[j] else math.nan
    tested = [m for j, m in enumerate(metrics) if competing[j]]
    row.update(
        {
            "n_competing": int(competing.sum()),
            "undefined": ", ".join(m for j, m in enumerate(metrics) if not competing[j]),
            "winner": winner,
            "p_winner": p_value,
            "winner_share": float((boot_winner == w).mean())
            if boot_winner is not None and w >= 0
            else math.nan,
            "winner_spearman": rank_winner("spearman"),
            "winner_kendall": rank_winner("kendall"),
            "accuracy_id": accuracy_id,
            "winner_comparison": comparison[w] if w >= 0 else "",
            "test_id": _fingerprint(
                np.array([m for m in tested], dtype="U32"),
                np.array([comparison[metrics.index(m)] for m in tested], dtype="U16"),
            ),
        }
    )
    corr_rows = []
    for method, res in results.items():
        for j, m in enumerate(metrics):
            low, high = res.interval(j, 0.95)
            low_e, high_e = res.episodes_interval(j, 0.95)
            notes = [res.reason[j], *res.notes[j]]
            if np.isfinite(res.r[j]) and not competing[j]:
                notes.append("does not compete (no r in every cell and seed)")
            corr_rows.append(
                {
                    **dict(zip(SETTING, key, strict=True)),
                    "metric": m,
                    "method": method,
                    "n": int(res.n[j]),
                    "n_episodes": int(res.n_episodes[j]),
                    "r": float(res.r[j]),
                    "ci_low": low,
                    "ci_high": high,
                    "ci_low_episodes": low_e,
                    "ci_high_episodes": high_e,
                    "seed_share": res.seed_share(j),
                    "n_cells": res.n_cells,
                    "cells_defined": int(res.cells_defined[j]),
                    "n_seeds": res.n_seeds,
                    "combination": res.combination,
                    "competes": bool(competing[j]),
                    "comparison_id": comparison[j],
                    "note": "; ".join(n for n in notes if n),
                }
            )
    cell_rows = []
    cell_cols = [c for c in CELL if c in frame.columns]
    if pear.cell_r is not None and pear.cell_n is not None:
        for c, values in enumerate(lay.cells):
            for j, m in enumerate(metrics):
                if pear.cell_n[c, j] == 0:
                    continue
                cell_rows.append(
                    {
                        **dict(zip(SETTING, key, strict=True)),
                        **dict(zip(cell_cols, values, strict=True)),
                        "metric": m,
                        "n": int(pear.cell_n[c, j]),
                        "r": float(pear.cell_r[c, j]),
                    }
                )
    return _Unit(row, corr_rows, boot_winner, cell_rows)


def count_wins(settings: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric: ``wins`` (point estimate), ``significant_wins`` and ``n_settings`` (settings
    with a winner).

    Examples
    --------
    >>> s = pd.DataFrame({"winner": ["leep", "leep", "nce", ""],
    ...                   "significant": [True, False, False, False]})
    >>> count_wins(s, ["leep", "nce", "logme"]).values.tolist()
    [['leep', 2, 1, 3], ['nce', 1, 0, 3], ['logme', 0, 0, 3]]
    """
    decided = settings[settings["winner"] != ""]
    rows = [
        {
            "metric": m,
            "wins": int((decided["winner"] == m).sum()),
            "significant_wins": int(((decided["winner"] == m) & decided["significant"]).sum()),
            "n_settings": len(decided),
        }
        for m in metrics
    ]
    return pd.DataFrame(rows, columns=["metric", "wins", "significant_wins", "n_settings"])


def _regime_wins(
    settings: pd.DataFrame,
    metrics: Sequence[str],
    boot_winners: npt.NDArray[np.int16] | None,
) -> pd.DataFrame:
    """Per metric over ``settings``: the wins columns of :class:`GridAnalysis`."""
    counts = count_wins(settings, metrics)
    decided = settings[settings["winner"] != ""]
    rows = []
    boot_counts = None
    if boot_winners is not None and len(boot_winners):
        boot_counts = np.stack([(boot_winners == j).sum(axis=0) for j in range(len(metrics))], 1)
    for m in metrics:
        won = decided[decided["winner"] == m]
        sig = won[won["significant"].astype(bool)]
        competed = settings[
            ~settings["undefined"].fillna("").str.split(", ").apply(lambda names, m=m: m in names)
        ]
        shares = settings.loc[competed.index, f"seed_share_{m}"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "metric": m,
                "distinct_wins": int(won["winner_comparison"].nunique()),
                "distinct_significant_wins": int(sig["winner_comparison"].nunique()),
                "undefined": len(settings) - len(competed),
                "mean_r": float(competed[f"r_{m}"].mean()) if len(competed) else math.nan,
                "median_seed_share": float(np.nanmedian(shares))
                if np.isfinite(shares).any()
                else math.nan,
                "wins_spearman": int((settings["winner_spearman"] == m).sum()),
                "wins_kendall": int((settings["winner_kendall"] == m).sum()),
            }
        )
    extra = pd.DataFrame(rows)
    if boot_counts is not None:
        top = boot_counts == boot_counts.max(axis=1, keepdims=True)
        extra["boot_mean"] = boot_counts.mean(axis=0)
        extra["boot_low"] = np.quantile(boot_counts, 0.025, axis=0)
        extra["boot_high"] = np.quantile(boot_counts, 0.975, axis=0)
        extra["top_share"] = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
    else:
        for col in ("boot_mean", "boot_low", "boot_high", "top_share"):
            extra[col] = math.nan
    return counts.merge(extra, on="metric")


def leave_one_out(settings: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Win counts with one value of one grid dimension left out at a time.

    Examples
    --------
    >>> s = pd.DataFrame({"target": ["a", "a", "b"], "backbone": "m", "dummy": "d",
    ...                   "adaptation": "x", "winner": ["leep", "leep", "nce"],
    ...                   "significant": False})
    >>> out = leave_one_out(s, ["leep", "nce"])
    >>> cols = ["dimension", "left_out", "n_settings", "leep", "nce", "top", "changed"]
    >>> out[cols].values.tolist()
    [['target', 'a', 1, 0, 1, 'nce', True], ['target', 'b', 2, 2, 0, 'leep', False]]
    """
    whole = _top(count_wins(settings, metrics).set_index("metric")["wins"])
    rows: list[dict[str, object]] = []
    for column, dimension in DIMENSIONS.items():
        values = sorted(settings[column].astype(str).unique())
        if len(values) < 2:
            continue
        for value in values:
            rest = settings[settings[column].astype(str) != value]
            counts = count_wins(rest, metrics)
            wins = dict(zip(counts["metric"], counts["wins"].astype(int), strict=True))
            top = _top(counts.set_index("metric")["wins"])
            rows.append(
                {
                    "dimension": dimension,
                    "left_out": value,
                    "n_settings": int(counts["n_settings"].to_numpy()[0]) if len(counts) else 0,
                    **{m: int(wins[m]) for m in metrics},
                    "top": ", ".join(top),
                    "changed": top != whole,
                }
            )
    columns = ["dimension", "left_out", "n_settings", *metrics, "top", "changed"]
    return pd.DataFrame(rows, columns=columns)


def _native_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each source's rows with its own dummy labels (the first of head, source, prototypes it
    has), relabelled ``native``."""
    order = ("head", "source", "prototypes")
    own = {}
    for backbone, rows in frame.groupby("backbone", sort=True):
        present = set(rows["dummy"])
        mode = next((m for m in order if m in present), None)
        if mode is not None:
            own[backbone] = mode
    mask = frame["dummy"] == frame["backbone"].map(own)
    native = frame[mask].copy()
    native["dummy"] = "native"
    return native


def target_selection(
    table: pd.DataFrame,
    metrics: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Source selection (:func:`metaleep.analysis.selection.source_selection`, static prior
    included) per target, per (regime, seed, dummy, transfer) group that at least two sources
    share, ``native`` dummies included.

    Groups are kept only for the episodes every one of their sources has (fine-tuning runs on
    fewer episodes than the rest).
    """
    from metaleep.analysis.selection import SELECTION_COLUMNS, source_selection

    by = [c for c in ("regime", REPLICATE, "dummy", "adaptation") if c in table.columns]
    pieces = []
    for target, frame in table.groupby("target", sort=True):
        candidates = pd.concat([frame, _native_rows(frame)], ignore_index=True)
        keep = [
            group
            for _, group in candidates.groupby(by, sort=True)
            if group["backbone"].nunique() >= 2
        ]
        if not keep:
            continue
        result = source_selection(
            pd.concat(keep, ignore_index=True),
            metrics=list(metrics),
            by=by,
            n_boot=n_boot,
            seed=seed,
            higher_is_better=_orientation(metrics),
            static_prior=True,
        )
        result.insert(0, "target", target)
        pieces.append(result)
    if not pieces:
        return pd.DataFrame(columns=["target", *by, *SELECTION_COLUMNS])
    return pd.concat(pieces, ignore_index=True)


def _counts(settings: pd.DataFrame, name: str) -> dict[str, object]:
    decided = settings[settings["winner"] != ""]
    tested = settings[np.isfinite(settings["p_winner"].to_numpy(dtype=np.float64))]
    return {
        "regime": name,
        "n_settings": len(settings),
        "n_decided": len(decided),
        "n_distinct_accuracy": int(settings["accuracy_id"].nunique()),
        "n_targets": int(settings["target"].nunique()),
        "n_tests": len(tested),
        "n_distinct_tests": int(tested["test_id"].nunique()),
        "n_significant": int(settings["significant"].astype(bool).sum()),
        "n_seeds": int(settings["n_seeds"].max()) if len(settings) else 0,
        "mean_competing": float(settings["n_competing"].mean()) if len(settings) else math.nan,
        "spearman_changes": int((decided["winner_spearman"] != decided["winner"]).sum()),
        "kendall_changes": int((decided["winner_kendall"] != decided["winner"]).sum()),
    }


def analyse_grid(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str],
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> GridAnalysis:
    """Every aggregate of a grid table (see the module docstring)."""
    needed = ("target", "backbone", "dummy", "adaptation", "episode", "accuracy")
    missing = [c for c in (*needed, *metrics) if c not in table.columns]
    if missing:
        raise ValueError(
            f"`table` must have the columns {', '.join(needed)} "
            f"and one per metric; got no {', '.join(missing)}."
        )
    metrics = list(metrics)
    data, forms = prepare_table(table)
    data = data.reset_index(drop=True)
    signs = np.array([1.0 if _orientation(metrics)[m] else -1.0 for m in metrics])
    seeds = sorted(int(s) for s in data[REPLICATE].unique())
    global_seed_counts = (
        resample_counts(generator(np.random.SeedSequence(seed, spawn_key=(0,))), len(seeds), n_boot)
        if n_boot
        else None
    )
    units: list[_Unit] = []
    for (target, regime), block in data.groupby(["target", "regime"], sort=True):
        block = block.reset_index(drop=True)
        lay = layout(block, cells=CELL, replicate=REPLICATE)
        episode_counts = seed_counts = None
        if n_boot:
            root = _block_seed(seed, str(target), str(regime))
            episode_counts = stratified_counts(generator(root), lay.cell_of_episode, n_boot)
            seed_counts = global_seed_counts
            if list(lay.seeds) != seeds:  # a block without every seed: its own seed draw
                seed_counts = resample_counts(generator(root.spawn(1)[0]), len(lay.seeds), n_boot)
        for key, frame in block.groupby(["backbone", "dummy", "adaptation"], sort=True):
            units.append(
                _setting(
                    (target, regime, *key),
                    frame,
                    lay.subset(frame.index.to_numpy()),
                    metrics,
                    signs,
                    episode_counts,
                    seed_counts,
                )
            )
    settings = pd.DataFrame([u.row for u in units])
    correlations = pd.DataFrame([r for u in units for r in u.corr_rows])
    cells = pd.DataFrame([r for u in units for r in u.cell_rows])
    # Benjamini-Hochberg over the distinct tests: identical competitions count once
    p = settings["p_winner"].to_numpy(dtype=np.float64)
    first = ~settings["test_id"].duplicated() & np.isfinite(p)
    q_distinct = pd.Series(benjamini_hochberg(p[first]), index=settings["test_id"][first])
    settings["q_winner"] = settings["test_id"].map(q_distinct).where(np.isfinite(p))
    settings["significant"] = (settings["q_winner"] <= alpha).fillna(False).astype(bool)
    boot_winners = (
        np.stack([u.boot_winner for u in units if u.boot_winner is not None])
        if n_boot and units
        else None
    )
    columns_order = [
        *SETTING,
        *[c for c in settings.columns if c not in SETTING and c != "q_winner"],
    ]
    columns_order.insert(columns_order.index("p_winner") + 1, "q_winner")
    columns_order.insert(columns_order.index("q_winner") + 1, "significant")
    settings = settings[list(dict.fromkeys(columns_order))]

    by_regime, counts, robustness = [], [], []
    for name in (*REGIMES, ALL):
        mask = (
            (settings["regime"] == name).to_numpy() if name != ALL else np.ones(len(settings), bool)
        )
        if not mask.any():
            continue
        part = settings[mask]
        wins = _regime_wins(part, metrics, None if boot_winners is None else boot_winners[mask])
        wins.insert(0, "regime", name)
        by_regime.append(wins)
        counts.append(_counts(part, name))
        robustness.append(
            pd.DataFrame(
                {
                    "regime": name,
                    "metric": metrics,
                    "pearson": wins["wins"].to_numpy(),
                    "spearman": wins["wins_spearman"].to_numpy(),
                    "kendall": wins["wins_kendall"].to_numpy(),
                }
            )
        )
    wins_all = pd.concat(by_regime, ignore_index=True)
    overall = wins_all[wins_all["regime"] == ALL].drop(columns="regime").reset_index(drop=True)
    native = _native_rows(data)
    from metaleep.analysis.added import added_r2

    added = added_r2(native, metrics, by=("target", "regime"))
    return GridAnalysis(
        metrics=metrics,
        settings=settings,
        correlations=correlations,
        wins=overall,
        leave_out=leave_one_out(settings, metrics),
        selection=target_selection(data, metrics, n_boot=min(n_boot, 2000), seed=seed),
        leep_forms=forms,
        alpha=alpha,
        n_boot=n_boot,
        wins_by_regime=wins_all[wins_all["regime"] != ALL].reset_index(drop=True),
        counts=pd.DataFrame(counts),
        robustness=pd.concat(robustness, ignore_index=True),
        added=added,
        seeds=seeds,
        cells=cells,
    )


def wins_table(analysis: GridAnalysis) -> pd.DataFrame:
    """The wins over every setting in words: metric, ``wins`` as "k of N", significant wins,
    the bootstrap interval of the count and the share of resamples it tops the grid."""
    return wins_words(analysis.wins)


def regime_table(analysis: GridAnalysis, regime: str) -> pd.DataFrame:
    """The headline of one regime in words: per metric, best in k of N settings (and in how
    many distinct comparisons), significantly best (q <= alpha), in how many settings it had no
    r, the bootstrap interval of its win count, and its wins under Spearman and Kendall."""
    w = analysis.wins_by_regime
    return wins_words(w[w["regime"] == regime].reset_index(drop=True))


def wins_words(w: pd.DataFrame) -> pd.DataFrame:
    """A wins frame (:attr:`GridAnalysis.wins` or one regime of ``wins_by_regime``) in words."""
    n = w["n_settings"]
    return pd.DataFrame(
        {
            "metric": w["metric"],
            "best in (point estimate)": [
                f"{k} of {t} ({d} distinct)"
                for k, t, d in zip(w["wins"], n, w["distinct_wins"], strict=True)
            ],
            "significant": [f"{k} of {t}" for k, t in zip(w["significant_wins"], n, strict=True)],
            "undefined in": w["undefined"],
            "resampled wins [95 %]": [
                f"{a:.1f} [{lo:.0f}, {hi:.0f}]" if math.isfinite(a) else ""
                for a, lo, hi in zip(w["boot_mean"], w["boot_low"], w["boot_high"], strict=True)
            ],
            "tops the grid": [
                f"{100 * s:.0f} %" if math.isfinite(s) else "" for s in w["top_share"]
            ],
            "Spearman / Kendall wins": [
                f"{s} / {k}" for s, k in zip(w["wins_spearman"], w["wins_kendall"], strict=True)
            ],
        }
    )


def selection_summary(selection: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric and the static prior, over every selection group: mean weighted tau, mean
    top-1 hit rate, mean regret, in how many groups it has the highest tau, and in how many
    its pick never varies."""
    from metaleep.analysis.selection import STATIC_PRIOR

    columns = ["metric", "groups", "tau", "hit_rate", "chance_hit_rate", "regret", "best_tau"]
    if selection.empty:
        return pd.DataFrame(columns=[*columns, "constant_choice"])
    keys = [
        c for c in selection.columns if c in ("target", "regime", REPLICATE, "dummy", "adaptation")
    ]
    tau = selection.pivot_table(index=keys, columns="metric", values="tau")
    best = tau.idxmax(axis=1, skipna=True).dropna() if not tau.empty else pd.Series(dtype=str)
    rows = []
    for m in [*metrics, STATIC_PRIOR]:
        part = selection[selection["metric"] == m]
        if part.empty:
            continue
        rows.append(
            {
                "metric": m,
                "groups": len(part),
                "tau": float(part["tau"].mean()),
                "hit_rate": float(part["hit_rate"].mean()),
                "chance_hit_rate": float(part["chance_hit_rate"].mean()),
                "regret": float(part["regret"].mean()),
                "best_tau": int((best == m).sum()),
                "constant_choice": int(part["constant_choice"].astype(bool).sum())
                if "constant_choice" in part
                else 0,
            }
        )
    return pd.DataFrame(rows)


def _win_words(rec: Any, n: int, label: Callable[[str], str]) -> str:
    text = f"{label(str(rec.metric))} in {rec.wins} of {n} ({rec.distinct_wins} distinct"
    if rec.significant_wins:
        text += f"; significant in {rec.significant_wins}, {rec.distinct_significant_wins} distinct"
    return text + ")"


def regime_findings(
    wins_by_regime: pd.DataFrame,
    counts: pd.DataFrame,
    *,
    alpha: float = 0.05,
    label: Callable[[str], str] = str,
) -> dict[str, list[str]]:
    """The headline of each regime in sentences, from the ``wins_by_regime`` and ``counts``
    frames (or their CSVs): how many settings and distinct comparisons, who wins, significantly
    or not, who has no r, how the rank coefficients change the winners, and the training seed's
    share of the intervals. ``label`` names the metrics.

    Examples
    --------
    >>> w = pd.DataFrame({"regime": "1-shot", "metric": ["leep", "nce", "sfda"],
    ...                   "wins": [3, 1, 0], "distinct_wins": [2, 1, 0],
    ...                   "significant_wins": [1, 0, 0], "distinct_significant_wins": [1, 0, 0],
    ...                   "undefined": [0, 1, 4], "n_settings": 4,
    ...                   "median_seed_share": [0.4, 0.1, float("nan")]})
    >>> c = pd.DataFrame({"regime": ["1-shot"], "n_settings": [4], "n_decided": [4],
    ...                   "n_distinct_accuracy": [2], "n_targets": [1], "n_seeds": [3],
    ...                   "mean_competing": [1.5], "spearman_changes": [1],
    ...                   "kendall_changes": [0], "n_distinct_tests": [2],
    ...                   "n_significant": [1]})
    >>> for line in regime_findings(w, c)["1-shot"]:
    ...     print(line)
    4 settings (2 distinct accuracy vectors on 1 target sample, 3 training seeds); 1.5 metrics competed on average.
    Highest r: leep in 3 of 4 (2 distinct; significant in 1, 1 distinct); nce in 1 of 4 (1 distinct).
    Significant wins: 1 (selection-aware two-sided test of each winner against its strongest challenger, Benjamini-Hochberg q <= 0.05 over the grid's 2 distinct tests).
    No r in any setting (constant): sfda. No r in some: nce 1 of 4.
    Under Spearman the winner changes in 1 of 4 settings, under Kendall in 0.
    The training seed adds a median 40 % of the bootstrap variance of leep's r.
    """  # noqa: E501
    out: dict[str, list[str]] = {}
    for regime, part in wins_by_regime.groupby("regime", sort=False):
        c: dict[Any, Any] = counts[counts["regime"] == regime].iloc[0].to_dict()
        n = int(c["n_settings"])
        targets, seeds = int(c["n_targets"]), int(c["n_seeds"])
        lines = [
            f"{n} settings ({int(c['n_distinct_accuracy'])} distinct accuracy vectors on "
            f"{targets} target sample{'s' if targets != 1 else ''}, "
            f"{seeds} training seed{'s' if seeds != 1 else ''}); "
            f"{float(c['mean_competing']):.1f} metrics competed on average."
        ]
        ranked = part[part["wins"] > 0].sort_values("wins", ascending=False, kind="stable")
        said = [_win_words(rec, n, label) for rec in ranked.head(4).itertuples(index=False)]
        if len(ranked) > 4:
            said.append(
                "then "
                + ", ".join(
                    f"{label(str(m))} {k}"
                    for m, k in zip(ranked["metric"][4:], ranked["wins"][4:], strict=True)
                )
            )
        if said:
            lines.append("Highest r: " + "; ".join(said) + ".")
        lines.append(
            f"Significant wins: {int(c.get('n_significant', 0))} (selection-aware two-sided "
            "test of each winner against its strongest challenger, Benjamini-Hochberg "
            f"q <= {alpha:g} over the grid's {int(c['n_distinct_tests'])} distinct tests)."
        )
        undefined = []
        never = part[part["undefined"] >= n]["metric"].tolist()
        if never:
            undefined.append(
                "No r in any setting (constant): " + ", ".join(label(m) for m in never) + "."
            )
        some = part[(part["undefined"] > 0) & (part["undefined"] < n)]
        if len(some):
            undefined.append(
                "No r in some: "
                + ", ".join(
                    f"{label(m)} {k} of {n}"
                    for m, k in zip(some["metric"], some["undefined"], strict=True)
                )
                + "."
            )
        if undefined:
            lines.append(" ".join(undefined))
        lines.append(
            f"Under Spearman the winner changes in {int(c['spearman_changes'])} of "
            f"{int(c['n_decided'])} settings, under Kendall in {int(c['kendall_changes'])}."
        )
        if len(ranked) and "median_seed_share" in part:
            top = ranked.iloc[0]
            share = float(top["median_seed_share"])
            if math.isfinite(share):
                lines.append(
                    f"The training seed adds a median {100 * share:.0f} % of the bootstrap "
                    f"variance of {label(str(top['metric']))}'s r."
                )
        out[str(regime)] = lines
    return out
