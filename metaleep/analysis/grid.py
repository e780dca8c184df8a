"""The grid's aggregates: per-setting correlations, wins, their stability, source selection.

Input: the grid table (:func:`metaleep.study.grid.run_grid`'s ``table.csv``): the study table
of every target with a ``target`` column. A **setting** is a group of rows sharing
:data:`SETTING` (target, source backbone, dummy-label mode, transfer type).

- **Correlations** (:func:`metaleep.analysis.correlations.correlations`): Pearson r of each metric
  with post-adaptation accuracy per setting, with a percentile bootstrap CI over episodes.
  LEEP and N-LEEP are normalised (``1 + LEEP / log N``) on a target whose episodes mix
  numbers of ways (glyphs-mixed) and raw elsewhere; ``leep_forms`` says which.
- **Wins**: the metric with the highest r in a setting wins it (the LEEP paper's count, "best
  in k of N settings"); a win is **significant** when the paired bootstrap
  (:func:`metaleep.analysis.correlations.compare_metrics`) puts the winner's r above every other
  metric's with one-sided p < ``alpha``. Metrics with no r (a constant metric, such as H-score
  when n - 1 <= d) do not compete.
- **Stability** (in the spirit of Agostinelli et al., "How stable are transferability metrics
  evaluations?", ECCV 2022): (a) the episodes of each setting are resampled ``n_boot`` times
  (the same resamples for every metric; settings on the same episodes share them) and the
  winners counted again: how often each setting's winner keeps winning, the spread of each
  metric's win count, and how often each metric tops the grid; (b) one value of one grid
  dimension (a target, a source, a dummy mode, a transfer type) is left out at a time and the
  wins counted on the rest.
- **Source selection** per target (:func:`metaleep.analysis.selection.source_selection`): on each
  episode the sources are ranked by a metric and by accuracy (weighted Kendall tau, top-1 hit
  rate, regret), per (dummy, transfer) shared by at least two sources, and for ``native``
  dummies (each source's own output: MAML's head, the supervised classifier's source labels,
  ProtoNet's prototypes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "DIMENSIONS",
    "SETTING",
    "GridAnalysis",
    "accuracy_summary",
    "analyse_grid",
    "count_wins",
    "leave_one_out",
    "prepare_table",
    "resample_stability",
    "selection_summary",
    "setting_correlations",
    "significant_wins",
    "target_selection",
    "winners",
    "wins_table",
]

SETTING: tuple[str, ...] = ("target", "backbone", "dummy", "adaptation")
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


@dataclass(eq=False)
class GridAnalysis:
    """The aggregates of a grid (:func:`analyse_grid`); :meth:`write` stores them as CSV.

    Attributes
    ----------
    metrics:
        The metrics compared.
    settings:
        One row per setting: the :data:`SETTING` columns, ``n_episodes``, accuracy summary
        (``acc_mean``, ``acc_std``, ``acc_perfect``: share of episodes at 100 %), ``r_<m>``,
        ``ci_low_<m>``, ``ci_high_<m>`` per metric, ``winner``, ``significant``, ``p_max``
        (largest one-sided p of the winner against another metric) and ``winner_share``
        (share of bootstrap resamples the winner keeps winning).
    correlations:
        The long correlation table (one row per setting and metric).
    wins:
        One row per metric: ``wins`` (point estimate), ``significant_wins``, ``n_settings``
        (settings with a winner), ``boot_mean``, ``boot_low``, ``boot_high`` (mean and 95 %
        interval of the win count over resamples) and ``top_share`` (share of resamples in
        which the metric wins most settings, ties split).
    leave_out:
        One row per left-out (dimension, value): ``n_settings``, the win count per metric,
        ``top`` (the metrics with most wins) and ``changed`` (whether ``top`` differs from
        the whole grid's).
    selection:
        Source selection per target and (dummy, transfer) group.
    leep_forms:
        ``raw`` or ``normalised`` per target.
    """

    metrics: list[str]
    settings: pd.DataFrame
    correlations: pd.DataFrame
    wins: pd.DataFrame
    leave_out: pd.DataFrame
    selection: pd.DataFrame
    leep_forms: dict[str, str] = field(default_factory=dict)
    alpha: float = 0.05
    n_boot: int = 1000

    @property
    def top(self) -> list[str]:
        """The metrics with most wins (point estimate)."""
        return _top(self.wins.set_index("metric")["wins"])

    def write(self, out_dir: str | Path) -> None:
        """Write ``settings.csv``, ``correlations.csv``, ``wins.csv``, ``leave_out.csv``,
        ``selection.csv`` and ``analysis.json`` into ``out_dir``."""
        from metaleep._io import atomic_write_bytes

        out = Path(out_dir)
        for name, frame in (
            ("settings", self.settings),
            ("correlations", self.correlations),
            ("wins", self.wins),
            ("leave_out", self.leave_out),
            ("selection", self.selection),
        ):
            atomic_write_bytes(out / f"{name}.csv", frame.to_csv(index=False).encode("utf-8"))
        meta = {
            "metrics": self.metrics,
            "leep_forms": self.leep_forms,
            "alpha": self.alpha,
            "n_boot": self.n_boot,
            "top": self.top,
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
    """``table`` with LEEP and N-LEEP normalised on targets whose settings mix numbers of ways.

    Returns the table (a copy when changed) and ``{target: "raw" | "normalised"}``.

    Examples
    --------
    >>> t = pd.DataFrame({"target": ["a", "a", "b", "b"], "backbone": "m", "dummy": "head",
    ...                   "adaptation": "maml", "ways": [5, 5, 5, 20], "leep": [-1.0] * 4})
    >>> out, forms = prepare_table(t)
    >>> forms, out.leep.round(3).tolist()
    ({'a': 'raw', 'b': 'normalised'}, [-1.0, -1.0, 0.379, 0.666])
    """
    from metaleep.analysis.correlations import LEEP_LIKE, add_normalised_leep, use_normalised_leep

    forms: dict[str, str] = {}
    parts = []
    for target, frame in table.groupby("target", sort=False):
        mixed = use_normalised_leep(frame, "auto", by=SETTING[1:])
        forms[str(target)] = "normalised" if mixed else "raw"
        if mixed:
            present = [c for c in LEEP_LIKE if c in frame.columns]
            frame = add_normalised_leep(frame, columns=present)
            for c in present:
                frame[c] = frame.pop(f"{c}_norm")
        parts.append(frame)
    if not any(f == "normalised" for f in forms.values()):
        return table, forms
    return pd.concat(parts).loc[table.index], forms


def setting_correlations(
    table: pd.DataFrame,
    metrics: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Pearson r [bootstrap CI] of each metric with accuracy, per setting (long form)."""
    from metaleep.analysis.correlations import correlations

    return correlations(
        table,
        metrics=list(metrics),
        by=SETTING,
        methods=("pearson",),
        n_boot=n_boot,
        seed=seed,
        higher_is_better=_orientation(metrics),
    )


def accuracy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting: episodes, mean and standard deviation of accuracy, share at 100 %.

    Examples
    --------
    >>> t = pd.DataFrame({"target": "t", "backbone": "b", "dummy": "d", "adaptation": "a",
    ...                   "accuracy": [1.0, 0.5, 1.0, 0.9]})
    >>> accuracy_summary(t)[["n_episodes", "acc_mean", "acc_perfect"]].round(3).values.tolist()
    [[4.0, 0.85, 0.5]]
    """
    grouped = table.groupby(list(SETTING), sort=True, observed=True)["accuracy"]
    out = grouped.agg(
        n_episodes="count",
        acc_mean="mean",
        acc_std="std",
        acc_perfect=lambda a: float((a >= PERFECT).mean()),
    )
    return out.reset_index()


def winners(corr: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The wide table of r per setting (``r_<m>``, ``ci_low_<m>``, ``ci_high_<m>``) and its
    ``winner``: the metric with the highest finite r (ties: the first in ``metrics``); empty
    string when no metric has an r.

    Examples
    --------
    >>> c = pd.DataFrame({"target": "t", "backbone": "b", "dummy": "d", "adaptation": "a",
    ...                   "metric": ["leep", "nce", "h_score"], "r": [0.3, 0.5, float("nan")],
    ...                   "ci_low": 0.0, "ci_high": 1.0})
    >>> winners(c, ["leep", "nce", "h_score"])[["r_leep", "r_nce", "winner"]].values.tolist()
    [[0.3, 0.5, 'nce']]
    """
    keys = list(SETTING)
    wide = corr.pivot_table(
        index=keys, columns="metric", values=["r", "ci_low", "ci_high"], dropna=False, sort=True
    )
    out = pd.DataFrame(index=wide.index)
    for m in metrics:
        for stat in ("r", "ci_low", "ci_high"):
            col = (stat, m)
            out[f"{stat}_{m}"] = wide[col] if col in wide.columns else math.nan
    r = out[[f"r_{m}" for m in metrics]].to_numpy(dtype=np.float64)
    best = np.where(np.isfinite(r), r, -np.inf)
    idx = best.argmax(axis=1)
    has = np.isfinite(r).any(axis=1)
    out["winner"] = [metrics[i] if ok else "" for i, ok in zip(idx, has, strict=True)]
    return out.reset_index()


def significant_wins(
    table: pd.DataFrame,
    wide: pd.DataFrame,
    metrics: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """``wide`` plus ``p_max`` and ``significant``: the winner against every other metric with
    an r, by the paired bootstrap of :func:`metaleep.analysis.correlations.compare_metrics`
    (one-sided p of "the winner's r is higher"); significant when every p < ``alpha`` (and
    there was at least one other metric to beat)."""
    from metaleep.analysis.correlations import compare_metrics

    out = wide.copy()
    out["p_max"] = math.nan
    out["significant"] = False
    keys = list(SETTING)
    index = table.set_index(keys).index
    orientation = _orientation(metrics)
    for metric in metrics:
        won = out[out["winner"] == metric]
        if won.empty:
            continue
        others = [
            m
            for m in metrics
            if m != metric and np.isfinite(won[f"r_{m}"].to_numpy(dtype=np.float64)).any()
        ]
        if not others:
            continue
        mask = index.isin(won.set_index(keys).index)
        comp = compare_metrics(
            table[mask],
            metric,
            others,
            by=keys,
            n_boot=max(n_boot, 1),
            seed=seed,
            higher_is_better=orientation,
        )
        comp = comp[np.isfinite(comp["r_b"].to_numpy(dtype=np.float64))]
        if comp.empty:
            continue
        p_max = comp.groupby(keys)["p_value"].max()
        pos = out.set_index(keys).index.get_indexer(p_max.index)
        out.loc[out.index[pos], "p_max"] = p_max.to_numpy()
        out.loc[out.index[pos], "significant"] = p_max.to_numpy() < alpha
    return out


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


def _boot_r(
    table: pd.DataFrame, metrics: Sequence[str], n_boot: int, seed: int
) -> tuple[list[tuple[object, ...]], npt.NDArray[np.float64]]:
    """Pearson r of every metric on ``n_boot`` episode resamples of every setting:
    (setting keys, array (settings, n_boot, metrics)); NaN where undefined."""
    from metaleep.analysis.resample import replicate_statistics, row_weights, unit_codes
    from metaleep.analysis.tables import is_constant

    orientation = _orientation(metrics)
    keys: list[tuple[object, ...]] = []
    blocks = []
    cache: dict[bytes, npt.NDArray[np.int64]] = {}
    for key, frame in table.groupby(list(SETTING), sort=True, observed=True):
        keys.append(key if isinstance(key, tuple) else (key,))
        units = unit_codes(frame)
        y_all = frame["accuracy"].to_numpy(dtype=np.float64)
        block = np.full((n_boot, len(metrics)), np.nan)
        for j, m in enumerate(metrics):
            x_all = frame[m].to_numpy(dtype=np.float64) * (1.0 if orientation[m] else -1.0)
            keep = np.isfinite(x_all) & np.isfinite(y_all)
            x, y, u = x_all[keep], y_all[keep], units[keep]
            if len(np.unique(u)) < 3 or is_constant(x) or is_constant(y):
                continue
            tag = u.tobytes()
            if tag not in cache:
                cache[tag] = row_weights(u, n_boot, seed)
            block[:, j] = replicate_statistics(x, y, cache[tag], ["pearson"])["pearson"]
        blocks.append(block)
    if not blocks:
        return keys, np.empty((0, n_boot, len(metrics)))
    return keys, np.stack(blocks)


def resample_stability(
    table: pd.DataFrame,
    settings: pd.DataFrame,
    metrics: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Winners under episode resampling.

    Returns ``settings`` plus ``winner_share`` (share of resamples in which each setting's
    point winner has the highest r), and per metric ``boot_mean``, ``boot_low``,
    ``boot_high`` (mean and 95 % interval of its win count over resamples) and ``top_share``
    (share of resamples in which it wins most settings; ties split).
    """
    n_boot = max(int(n_boot), 1)
    keys, boot = _boot_r(table, metrics, n_boot, seed)
    out = settings.copy()
    m = len(metrics)
    if boot.size == 0:
        out["winner_share"] = math.nan
        empty = pd.DataFrame(
            {
                "metric": list(metrics),
                "boot_mean": 0.0,
                "boot_low": 0.0,
                "boot_high": 0.0,
                "top_share": 0.0,
            }
        )
        return out, empty
    defined = np.asarray(np.isfinite(boot).any(axis=2))  # (S, B)
    best = np.where(np.isfinite(boot), boot, -np.inf).argmax(axis=2)  # (S, B)
    position = {k: i for i, k in enumerate(keys)}
    lookup = {name: j for j, name in enumerate(metrics)}
    share = []
    rows = zip(out[list(SETTING)].itertuples(index=False), out["winner"], strict=True)
    for row, winner in rows:
        i = position.get(tuple(row))
        if i is None or winner == "":
            share.append(math.nan)
            continue
        share.append(float((defined[i] & (best[i] == lookup[winner])).mean()))
    out["winner_share"] = share
    counts = np.zeros((n_boot, m))
    for j in range(m):
        counts[:, j] = ((best == j) & defined).sum(axis=0)
    top = counts == counts.max(axis=1, keepdims=True)
    top_share = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
    summary = pd.DataFrame(
        {
            "metric": list(metrics),
            "boot_mean": counts.mean(axis=0),
            "boot_low": np.quantile(counts, 0.025, axis=0),
            "boot_high": np.quantile(counts, 0.975, axis=0),
            "top_share": top_share,
        }
    )
    return out, summary


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
    """Source selection (:func:`metaleep.analysis.selection.source_selection`) per target, per
    (dummy, transfer) group that at least two sources share, ``native`` dummies included.

    Groups are kept only for the episodes every one of their sources has (fine-tuning runs on
    fewer episodes than the rest).
    """
    from metaleep.analysis.selection import SELECTION_COLUMNS, source_selection

    pieces = []
    for target, frame in table.groupby("target", sort=True):
        candidates = pd.concat([frame, _native_rows(frame)], ignore_index=True)
        keep = []
        for _, group in candidates.groupby(["dummy", "adaptation"], sort=True):
            if group["backbone"].nunique() >= 2:
                keep.append(group)
        if not keep:
            continue
        result = source_selection(
            pd.concat(keep, ignore_index=True),
            metrics=list(metrics),
            by=("dummy", "adaptation"),
            n_boot=n_boot,
            seed=seed,
            higher_is_better=_orientation(metrics),
        )
        result.insert(0, "target", target)
        pieces.append(result)
    if not pieces:
        return pd.DataFrame(columns=["target", "dummy", "adaptation", *SELECTION_COLUMNS])
    return pd.concat(pieces, ignore_index=True)


def analyse_grid(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> GridAnalysis:
    """Every aggregate of a grid table (see the module docstring)."""
    missing = [c for c in (*SETTING, "episode", "accuracy", *metrics) if c not in table.columns]
    if missing:
        raise ValueError(
            f"`table` must have the columns {', '.join((*SETTING, 'episode', 'accuracy'))} "
            f"and one per metric; got no {', '.join(missing)}."
        )
    metrics = [m for m in metrics]
    data, forms = prepare_table(table)
    corr = setting_correlations(data, metrics, n_boot=n_boot, seed=seed)
    wide = winners(corr, metrics)
    wide = significant_wins(data, wide, metrics, n_boot=n_boot, seed=seed, alpha=alpha)
    settings = accuracy_summary(data).merge(wide, on=list(SETTING), how="left")
    settings, boot_wins = resample_stability(data, settings, metrics, n_boot=n_boot, seed=seed)
    wins = count_wins(settings, metrics).merge(boot_wins, on="metric", how="left")
    return GridAnalysis(
        metrics=metrics,
        settings=settings,
        correlations=corr,
        wins=wins,
        leave_out=leave_one_out(settings, metrics),
        selection=target_selection(data, metrics, n_boot=n_boot, seed=seed),
        leep_forms=forms,
        alpha=alpha,
        n_boot=n_boot,
    )


def wins_table(analysis: GridAnalysis) -> pd.DataFrame:
    """The headline table in words: metric, ``wins`` as "k of N", significant wins, the
    bootstrap interval of the count and the share of resamples it tops the grid."""
    w = analysis.wins
    return pd.DataFrame(
        {
            "metric": w["metric"],
            "best in (point estimate)": [
                f"{k} of {n}" for k, n in zip(w["wins"], w["n_settings"], strict=True)
            ],
            "significant": [
                f"{k} of {n}" for k, n in zip(w["significant_wins"], w["n_settings"], strict=True)
            ],
            "resampled wins [95 %]": [
                f"{a:.1f} [{lo:.0f}, {hi:.0f}]"
                for a, lo, hi in zip(w["boot_mean"], w["boot_low"], w["boot_high"], strict=True)
            ],
            "tops the grid": [f"{100 * s:.0f} %" for s in w["top_share"]],
        }
    )


def selection_summary(selection: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric, over every (target, dummy, transfer) selection group: mean weighted tau,
    mean top-1 hit rate, mean regret, and in how many groups it has the highest tau."""
    if selection.empty:
        return pd.DataFrame(columns=["metric", "groups", "tau", "hit_rate", "regret", "best_tau"])
    sel = selection.copy()
    keys = ["target", "dummy", "adaptation"]
    tau = sel.pivot_table(index=keys, columns="metric", values="tau")
    best = tau.idxmax(axis=1, skipna=True).dropna() if not tau.empty else pd.Series(dtype=str)
    rows = []
    for m in metrics:
        part = sel[sel["metric"] == m]
        rows.append(
            {
                "metric": m,
                "groups": len(part),
                "tau": float(part["tau"].mean()),
                "hit_rate": float(part["hit_rate"].mean()),
                "chance_hit_rate": float(part["chance_hit_rate"].mean()),
                "regret": float(part["regret"].mean()),
                "best_tau": int((best == m).sum()),
            }
        )
    return pd.DataFrame(rows)
