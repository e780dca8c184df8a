"""Source-model selection: does a metric pick the backbone that adapts best to each episode?

The LEEP paper's second use of a transferability score (Nguyen et al., ICML 2020, Sec. 5): given
several source models and one target task, rank the models by the score and take the top one.
Here the target tasks are the study's episodes: on each episode every backbone is scored and
adapted, and the metric's ranking of the backbones is compared with their ranking by
post-adaptation accuracy.

Per episode and metric (:func:`per_episode_selection`):

- **hit**: whether the metric's top model is a best model by accuracy. Ties in accuracy count
  every tied model as best; ties in the metric's top score are broken uniformly at random, and
  the *expected* hit is recorded (the fraction of the metric's tied top models that are best);
- **regret**: best accuracy minus the (expected) accuracy of the metric's pick;
- **tau**: :func:`scipy.stats.weightedtau` between the metric's scores and the accuracies
  (hyperbolic weights, so agreement at the top counts most); undefined (NaN, excluded from the
  mean) when the metric or the accuracy is constant over the episode's models;
- **chance**: the same hit and regret for a pick uniformly at random among the models -- the
  expected hit rate is ``#best / #models`` exactly, ties included;
- **static prior** (``static_prior=True``): a row ``metric = "static_prior"`` that reads no
  metric at all: on each episode it picks the model with the best mean accuracy on the *other*
  episodes of its group (leave-one-out), the "always take the model that is best on average"
  baseline that recent work finds hard to beat. Its hit, regret and weighted tau (of the
  leave-one-out mean accuracies against the episode's accuracies) are computed like a metric's.

:func:`source_selection` averages these over episodes, with percentile bootstrap intervals over
episodes, and says how often the metric picks its most frequent choice: a metric whose pick
never varies (``constant_choice``, e.g. LEEP always choosing the backbone with the most source
classes) is a static prior in disguise, however high its hit rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from metaleep.analysis.resample import (
    UNIT_COLUMNS,
    generator,
    percentile_ci,
    resample_counts,
    weighted_tau,
)
from metaleep.analysis.tables import (
    check_boot,
    check_columns,
    check_table,
    iter_groups,
    metric_columns,
    metric_sign,
)

__all__ = [
    "SELECTION_COLUMNS",
    "STATIC_PRIOR",
    "per_episode_selection",
    "source_selection",
]

_ACC_TOL = 1e-12  # accuracies closer than this are ties

STATIC_PRIOR = "static_prior"
"""The ``metric`` value of the static-prior baseline's rows."""


SELECTION_COLUMNS: tuple[str, ...] = (
    "metric",
    "n_episodes",
    "n_models",
    "hit_rate",
    "hit_ci_low",
    "hit_ci_high",
    "chance_hit_rate",
    "tau",
    "tau_ci_low",
    "tau_ci_high",
    "regret",
    "regret_ci_low",
    "regret_ci_high",
    "chance_regret",
    "note",
    "top_choice",
    "top_choice_share",
    "constant_choice",
)
"""Columns of :func:`source_selection`'s result after the grouping columns."""


def _snap(score: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Scores rounded to 10 significant digits, so that values equal up to rounding tie.

    A metric that is constant in exact arithmetic (H-score is C - 1 whenever n - 1 <= d)
    differs between models only by ~1e-15 of floating-point noise; ranking models by that
    noise would report a hit rate that means nothing.

    Scores below 1e-290 in magnitude (GBC's exp(-distance) underflowing) snap to 0 rather than
    dividing by an underflowed scale.

    >>> _snap(np.array([4.0 + 3e-15, 4.0 - 2e-15, 0.0, np.nan, -1e-310])).tolist()
    [4.0, 4.0, 0.0, nan, -0.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(score)))
    exponent = np.where(np.isfinite(magnitude), np.maximum(magnitude - 9, -300.0), 0.0)
    scale = 10.0**exponent
    return np.round(score / scale) * scale


def _episode_columns(table: pd.DataFrame) -> list[str]:
    cols = [c for c in UNIT_COLUMNS if c in table.columns]
    if "episode" not in cols:
        raise ValueError(
            f"`table` must have an 'episode' column; got columns {list(table.columns)!r}."
        )
    return cols


def _check_models(frame: pd.DataFrame, model_col: str, key: tuple[object, ...]) -> None:
    n_models = frame[model_col].nunique()
    if n_models < 2:
        where = f" in group {key!r}" if key else ""
        raise ValueError(
            f"`table` must hold at least 2 models in column {model_col!r}{where} for source "
            f"selection; got {n_models}."
        )


def _check_selection_args(
    table: pd.DataFrame,
    metrics: Sequence[str] | None,
    by: Sequence[str],
    target: str,
    model_col: str,
) -> tuple[list[str], list[str], list[str]]:
    """Check a selection's inputs; return its metric, grouping and episode columns."""
    check_table(table)
    chosen_metrics = metric_columns(table, metrics)
    by_cols = check_columns(table, "by", by)
    check_columns(table, "target", [target])
    check_columns(table, "model_col", [model_col])
    unit_cols = _episode_columns(table)
    if model_col in by_cols:
        raise ValueError(f"`by` must not contain `model_col`; got {model_col!r} in {by_cols!r}.")
    return chosen_metrics, by_cols, unit_cols


def per_episode_selection(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    model_col: str = "backbone",
    target: str = "accuracy",
    by: Sequence[str] = ("dummy", "adaptation"),
    higher_is_better: Mapping[str, bool] | None = None,
    static_prior: bool = False,
) -> pd.DataFrame:
    """Hit, regret and weighted tau of each metric's model ranking on every episode.

    Parameters
    ----------
    table:
        The study table; within a group of ``by`` there must be one row per (episode, model).
    metrics:
        Metric columns; default those of :data:`~metaleep.metrics.registry.DEFAULT_METRICS`
        present.
    model_col:
        Column naming the candidate source model.
    target:
        Column whose maximum defines the best model (post-adaptation accuracy).
    by:
        Columns fixed within a comparison (dummy-label mode and adaptation by default).
    higher_is_better:
        Orientation of each metric (default all higher-is-better).
    static_prior:
        Add the rows of the static-prior baseline (``metric = "static_prior"``): the model
        with the best mean accuracy on the group's other episodes.

    Returns
    -------
    DataFrame
        One row per (group, episode, metric) with at least 2 models having finite metric and
        target: the ``by`` columns, the episode columns, ``metric``, ``n_models``, ``chosen``
        (the metric's top model(s), ";"-joined when tied), ``hit``, ``regret``, ``tau``,
        ``chance_hit``, ``chance_regret``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"episode": [0, 0, 0], "backbone": ["a", "b", "c"],
    ...                   "leep": [-1.0, -0.5, -2.0], "accuracy": [0.5, 0.9, 0.9]})
    >>> r = per_episode_selection(t, by=())
    >>> r[["chosen", "hit", "regret", "chance_hit"]].round(3)
      chosen  hit  regret  chance_hit
    0      b  1.0     0.0       0.667
    """
    chosen_metrics, by_cols, unit_cols = _check_selection_args(
        table, metrics, by, target, model_col
    )

    pieces = [
        _episode_rows(
            frame,
            key,
            by_cols,
            unit_cols,
            chosen_metrics,
            model_col,
            target,
            higher_is_better,
            static_prior=static_prior,
        )
        for key, frame in iter_groups(table, by_cols)
    ]
    columns = [*by_cols, *unit_cols, *_EPISODE_COLUMNS]
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pd.concat(pieces, ignore_index=True)[columns]


_EPISODE_COLUMNS = (
    "metric",
    "n_models",
    "chosen",
    "hit",
    "regret",
    "tau",
    "chance_hit",
    "chance_regret",
)


def _episode_rows(
    frame: pd.DataFrame,
    key: tuple[object, ...],
    by_cols: list[str],
    unit_cols: list[str],
    metrics: list[str],
    model_col: str,
    target: str,
    higher_is_better: Mapping[str, bool] | None,
    *,
    static_prior: bool = False,
) -> pd.DataFrame:
    """:func:`per_episode_selection` for the rows of one group."""
    _check_models(frame, model_col, key)
    dup = frame.duplicated([*unit_cols, model_col])
    if dup.any():
        first = frame.loc[dup, [*unit_cols, model_col]].iloc[0].to_dict()
        raise ValueError(
            "`table` must have one row per (episode, model) within each `by` group; got "
            f"several rows for {first!r} (add the column that tells them apart to `by`)."
        )
    acc_wide = frame.pivot(index=unit_cols, columns=model_col, values=target)
    models = np.asarray(acc_wide.columns)
    acc_all = acc_wide.to_numpy(dtype=np.float64)
    pieces: list[pd.DataFrame] = []
    for metric in [*metrics, *([STATIC_PRIOR] if static_prior else [])]:
        if metric == STATIC_PRIOR:
            score_all = _leave_one_out_means(acc_all)
        else:
            sign = metric_sign(metric, higher_is_better)
            score_wide = frame.pivot(index=unit_cols, columns=model_col, values=metric)
            score_all = sign * score_wide.reindex(
                index=acc_wide.index, columns=acc_wide.columns
            ).to_numpy(dtype=np.float64)
        valid_all = np.isfinite(acc_all) & np.isfinite(score_all)
        keep = valid_all.sum(axis=1) >= 2
        if not keep.any():
            continue
        valid = valid_all[keep]
        acc = np.where(valid, acc_all[keep], np.nan)
        score = _snap(np.where(valid, score_all[keep], np.nan))
        best = np.nanmax(acc, axis=1)
        is_best = valid & (np.abs(acc - best[:, None]) <= _ACC_TOL)
        top = valid & (score == np.nanmax(score, axis=1)[:, None])
        n_top = top.sum(axis=1)
        n_valid = valid.sum(axis=1)
        piece = acc_wide.index[keep].to_frame(index=False)
        for col, value in zip(by_cols, key, strict=True):
            piece[col] = value
        piece["metric"] = metric
        piece["n_models"] = n_valid
        piece["chosen"] = [";".join(str(m) for m in models[row]) for row in top]
        piece["hit"] = (top & is_best).sum(axis=1) / n_top
        piece["regret"] = best - np.where(top, acc, 0.0).sum(axis=1) / n_top
        piece["tau"] = weighted_tau(score, acc)
        piece["chance_hit"] = is_best.sum(axis=1) / n_valid
        piece["chance_regret"] = best - np.nanmean(acc, axis=1)
        pieces.append(piece)
    if not pieces:
        return pd.DataFrame()
    return pd.concat(pieces, ignore_index=True)


def _leave_one_out_means(acc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each model's mean accuracy over the *other* episodes (rows); NaN where none.

    >>> _leave_one_out_means(np.array([[1.0, 0.0], [0.5, 0.5], [0.0, np.nan]])).tolist()
    [[0.25, 0.5], [0.5, 0.0], [0.75, 0.25]]
    """
    finite = np.isfinite(acc)
    values = np.where(finite, acc, 0.0)
    others = finite.sum(axis=0)[None, :] - finite
    total = values.sum(axis=0)[None, :] - values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(others > 0, total / others, np.nan)


def source_selection(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    model_col: str = "backbone",
    target: str = "accuracy",
    by: Sequence[str] = ("dummy", "adaptation"),
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: Mapping[str, bool] | None = None,
    static_prior: bool = False,
) -> pd.DataFrame:
    """How well each metric selects the source model, averaged over episodes, with CIs.

    See the module docstring for the per-episode quantities. Means are over the episodes where
    at least 2 models have a finite metric and target; the weighted tau's mean is over the
    episodes where it is defined. Intervals are percentile bootstrap intervals from ``n_boot``
    resamples of those episodes (a generator seeded from ``seed`` alone, shared by the metrics
    of a group).

    Parameters
    ----------
    table, metrics, model_col, target, by, higher_is_better, static_prior
        As in :func:`per_episode_selection`; the static prior's row follows the metrics' in
        each group.
    n_boot:
        Bootstrap replicates (0: no intervals).
    confidence:
        Coverage of the percentile intervals.
    seed:
        Seed of the resampling.

    Returns
    -------
    DataFrame
        One row per (group, metric): the ``by`` columns, ``metric``, ``n_episodes``,
        ``n_models``, ``hit_rate`` (+ ``hit_ci_low``/``hit_ci_high``), ``chance_hit_rate``
        (expected hit rate of a uniformly random pick, ties included), ``tau`` (mean weighted
        tau, + CI), ``regret`` (mean best-minus-chosen accuracy, + CI), ``chance_regret``,
        ``note``, ``top_choice`` (the pick made most often; ";"-joined models for a tie),
        ``top_choice_share`` (on what share of the episodes) and ``constant_choice`` (the pick
        is the same single model on every episode, of two or more).

    Raises
    ------
    ValueError
        If a group has fewer than 2 models, or several rows for one (episode, model).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.uniform(size=(30, 3))
    >>> t = pd.DataFrame({"episode": np.repeat(np.arange(30), 3),
    ...                   "backbone": np.tile(["a", "b", "c"], 30),
    ...                   "leep": acc.ravel() - 1.0, "nce": -acc.ravel(),
    ...                   "accuracy": acc.ravel()})
    >>> s = source_selection(t, by=(), n_boot=200)
    >>> s[["metric", "hit_rate", "tau", "regret"]].round(2)
      metric  hit_rate  tau  regret
    0   leep       1.0  1.0    0.00
    1    nce       0.0 -1.0    0.55
    >>> round(float(s.chance_hit_rate[0]), 3)
    0.333
    """
    chosen_metrics, by_cols, unit_cols = _check_selection_args(
        table, metrics, by, target, model_col
    )
    check_boot(n_boot, confidence)
    rows: list[dict[str, object]] = []
    for key, frame in iter_groups(table, by_cols):
        per_episode = _episode_rows(
            frame,
            key,
            by_cols,
            unit_cols,
            chosen_metrics,
            model_col,
            target,
            higher_is_better,
            static_prior=static_prior,
        )
        n_episodes_total = frame.groupby(unit_cols).ngroups
        for metric in [*chosen_metrics, *([STATIC_PRIOR] if static_prior else [])]:
            ep = per_episode[per_episode["metric"] == metric] if len(per_episode) else per_episode
            rows.append(
                _summarise(
                    ep,
                    key,
                    by_cols,
                    metric,
                    int(frame[model_col].nunique()),
                    n_episodes_total,
                    n_boot,
                    confidence,
                    seed,
                )
            )
    columns = [*by_cols, *SELECTION_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["by"] = list(by_cols)
    out.attrs["model_col"] = model_col
    return out


def _summarise(
    ep: pd.DataFrame,
    key: tuple[object, ...],
    by_cols: list[str],
    metric: str,
    n_models: int,
    n_episodes_total: int,
    n_boot: int,
    confidence: float,
    seed: int,
) -> dict[str, object]:
    """Means over episodes of one (group, metric), with percentile bootstrap intervals."""
    notes: list[str] = []
    if len(ep) < n_episodes_total:
        notes.append(
            f"{n_episodes_total - len(ep)} episodes with fewer than 2 scored models skipped"
        )
    row: dict[str, object] = {
        **dict(zip(by_cols, key, strict=True)),
        "metric": metric,
        "n_episodes": len(ep),
        "n_models": n_models,
    }
    counts = (
        resample_counts(generator(seed), len(ep), n_boot).astype(np.float64)
        if len(ep) and n_boot > 0
        else None
    )
    for name, prefix in (("hit", "hit"), ("tau", "tau"), ("regret", "regret")):
        v = ep[name].to_numpy(dtype=np.float64) if len(ep) else np.empty(0)
        ok = np.isfinite(v)
        if name == "tau" and (~ok).any():
            notes.append(f"weighted tau undefined (constant values) on {int((~ok).sum())} episodes")
        low = high = math.nan
        if counts is not None and ok.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                boot = (counts @ np.where(ok, v, 0.0)) / (counts @ ok.astype(np.float64))
            low, high = percentile_ci(boot, confidence)
        row["hit_rate" if name == "hit" else name] = float(v[ok].mean()) if ok.any() else math.nan
        row[f"{prefix}_ci_low"] = low
        row[f"{prefix}_ci_high"] = high
    row["chance_hit_rate"] = float(ep["chance_hit"].mean()) if len(ep) else math.nan
    row["chance_regret"] = float(ep["chance_regret"].mean()) if len(ep) else math.nan
    if n_boot == 0:
        notes.append("n_boot=0: no confidence interval")
    if len(ep) == 0:
        notes.insert(0, "no episode with 2 scored models")
    row["note"] = "; ".join(notes)
    picks = ep["chosen"].value_counts(sort=True) if len(ep) else pd.Series(dtype=np.int64)
    top = str(picks.index[0]) if len(picks) else ""
    row["top_choice"] = top
    row["top_choice_share"] = float(picks.iloc[0] / len(ep)) if len(picks) else math.nan
    # a pick that ties every model on every episode is no choice (the metric is undefined)
    row["constant_choice"] = bool(len(picks) == 1 and len(ep) > 1 and ";" not in top)
    return row
