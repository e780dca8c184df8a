"""Figures of the meta-transfer study: metric-vs-accuracy scatters, correlation and selection bars.

matplotlib is imported inside the functions, and figures are built with
:class:`matplotlib.figure.Figure` directly (no pyplot state, works on any backend, Agg
included). Functions return the figure; saving it (``fig.savefig(path)``) is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from metaleep.analysis.selection import SELECTION_COLUMNS
from metaleep.analysis.tables import check_table, is_constant, metric_columns

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "METHOD_NAMES",
    "MIN_FONT",
    "PAGE_WIDTH",
    "best_metric_scatter",
    "correlation_bars",
    "forest_plot",
    "metric_label",
    "new_figure",
    "scatter_grid",
    "scatter_metrics",
    "selection_plot",
]

_LABELS = {
    "leep": "LEEP",
    "nce": "NCE",
    "h_score": "H-score",
    "logme": "LogME",
    "nleep": "N-LEEP",
    "shrinkage_h_score": "shrinkage H-score",
    "gbc": "GBC",
    "transrate": "TransRate",
    "sfda": "SFDA",
    "centroid_loo": "centroid LOO (baseline)",
    "cosine_spread": "cosine spread (baseline)",
    "static_prior": "static prior (baseline)",
    "leep_norm": "LEEP (normalised)",
    "nleep_norm": "N-LEEP (normalised)",
    "accuracy": "query accuracy",
    "loss": "query log-loss",
}

METHOD_NAMES: dict[str, str] = {
    "pearson": "Pearson r",
    "spearman": "Spearman ρ",
    "kendall": "Kendall τ-b",
    "weightedtau": "weighted τ",
}
"""Display names of the correlation methods (the report's tables and the figures')."""

MIN_FONT = 9.0
"""Smallest font size (points) of any text in a figure the report shows: at 100 dpi and the
figure's own pixel size (at most :data:`PAGE_WIDTH` inches) it stays legible at page width."""

PAGE_WIDTH = 11.5
"""Widest figure (inches at 100 dpi) the report shows at its own size (the page is 1180 px)."""

_CORR_KEYS = ("metric", "method", "n", "n_episodes", "r", "ci_low", "ci_high", "p_value", "note")


def metric_label(name: str) -> str:
    """Display name of a metric or target column (``"h_score"`` -> ``"H-score"``).

    Examples
    --------
    >>> metric_label("nleep"), metric_label("leep_norm"), metric_label("custom")
    ('N-LEEP', 'LEEP (normalised)', 'custom')
    """
    return _LABELS.get(name, name)


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches at 100 dpi, constrained layout (no pyplot)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _group_columns(frame: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    by = frame.attrs.get("by")
    if isinstance(by, list) and all(c in frame.columns for c in by):
        return list(by)
    return [c for c in frame.columns if c not in keys]


def _group_labels(frame: pd.DataFrame, group_cols: Sequence[str]) -> list[str]:
    if not group_cols:
        return ["all episodes"] * len(frame)
    parts = frame[list(group_cols)].astype(str).to_numpy()
    return [" / ".join(row) for row in parts]


def _pearson_annotation(
    metric: str,
    x: np.ndarray,
    y: np.ndarray,
    correlations: pd.DataFrame | Mapping[str, Sequence[float]] | None,
) -> str:
    """``r = 0.59 [0.52, 0.65]`` for the panel title, from ``correlations`` or scipy."""
    r = low = high = math.nan
    note = ""
    if isinstance(correlations, pd.DataFrame):
        rows = correlations[
            (correlations["metric"] == metric) & (correlations["method"] == "pearson")
        ]
        if len(rows) > 1:
            raise ValueError(
                "`correlations` must hold one Pearson row per metric (filter it to the plotted "
                f"group); got {len(rows)} rows for {metric!r}."
            )
        if len(rows) == 1:
            row = rows.iloc[0]
            r, low, high = float(row["r"]), float(row["ci_low"]), float(row["ci_high"])
            note = str(row.get("note", "") or "")
    elif correlations is not None and metric in correlations:
        values = [*correlations[metric], math.nan, math.nan]
        r, low, high = float(values[0]), float(values[1]), float(values[2])
    elif len(x) >= 3 and not is_constant(x) and not is_constant(y):
        r = float(stats.pearsonr(x, y).statistic)
    if math.isnan(r):
        reason = note.split(";")[0] if note else ("constant" if is_constant(x) else "undefined")
        return f"r undefined ({reason})"
    if math.isnan(low):
        return f"r = {r:.2f}"
    return f"r = {r:.2f} [{low:.2f}, {high:.2f}]"


def scatter_metrics(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    target: str = "accuracy",
    hue: str | None = None,
    correlations: pd.DataFrame | Mapping[str, Sequence[float]] | None = None,
    title: str | None = None,
    ncols: int = 3,
) -> Figure:
    """One scatter panel per metric against ``target``, with the least-squares line and Pearson r.

    The figure of the LEEP paper (Nguyen et al., 2020, Fig. 2): each point an episode, the
    metric on x, post-adaptation accuracy on y.

    Parameters
    ----------
    table:
        Rows to plot (typically one (backbone, dummy, adaptation) group of the study table).
    metrics:
        Metric columns; default those of :data:`~metaleep.metrics.registry.DEFAULT_METRICS`
        present.
    target:
        Column on the y axis.
    hue:
        Column whose values colour the points (e.g. ``"ways"``), with a legend.
    correlations:
        Where the title's r and CI come from: the output of
        :func:`~metaleep.analysis.correlations.correlations` restricted to this group (its Pearson
        rows are used), or a mapping ``metric -> (r, ci_low, ci_high)``. Default: Pearson r
        from scipy, no CI.
    title:
        Figure title.
    ncols:
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"leep": rng.normal(size=40), "nce": rng.normal(size=40)})
    >>> t["accuracy"] = 0.5 + 0.1 * t.leep
    >>> fig = scatter_metrics(t, metrics=["leep", "nce"])
    >>> [ax.get_title().split("\\n")[0] for ax in fig.axes]
    ['LEEP', 'NCE']
    """
    check_table(table)
    chosen = metric_columns(table, metrics)
    if target not in table.columns:
        raise ValueError(f"`target` must be a column of `table`; got {target!r}.")
    if hue is not None and hue not in table.columns:
        raise ValueError(f"`hue` must be a column of `table`; got {hue!r}.")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"`ncols` must be a positive int; got {ncols!r}.")
    cols = min(ncols, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig = new_figure(3.3 * cols, 2.9 * rows + (0.4 if title else 0.0))
    axes = fig.subplots(rows, cols, squeeze=False)
    y_all = table[target].to_numpy(dtype=np.float64)
    hue_values = table[hue] if hue is not None else None
    levels = sorted(hue_values.dropna().unique().tolist()) if hue_values is not None else [None]
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    alpha = float(np.clip(12.0 / math.sqrt(max(len(table), 1)), 0.25, 0.9))
    for i, metric in enumerate(chosen):
        ax: Axes = axes[i // cols][i % cols]
        x_all = table[metric].to_numpy(dtype=np.float64)
        ok = np.isfinite(x_all) & np.isfinite(y_all)
        for j, level in enumerate(levels):
            sel = ok if level is None else ok & (hue_values == level).to_numpy()
            ax.scatter(
                x_all[sel],
                y_all[sel],
                s=12,
                alpha=alpha,
                color=palette(j % 10),
                edgecolors="none",
                label=None if level is None else f"{hue} = {level}",
            )
        x, y = x_all[ok], y_all[ok]
        if len(x) >= 2 and not is_constant(x):
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, slope * grid + intercept, color="black", linewidth=1.2)
        annotation = _pearson_annotation(metric, x, y, correlations)
        ax.set_title(f"{metric_label(metric)}\n{annotation}", fontsize=10)
        ax.set_xlabel(metric_label(metric), fontsize=9)
        if i % cols == 0:
            ax.set_ylabel(metric_label(target), fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3, linewidth=0.5)
        if hue is not None and i == 0 and len(levels) > 1:
            ax.legend(fontsize=9, markerscale=1.5, frameon=False)
    for k in range(len(chosen), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def scatter_grid(
    table: pd.DataFrame,
    *,
    rows: Sequence[str],
    metrics: Sequence[str] | None = None,
    target: str = "accuracy",
    correlations: pd.DataFrame | None = None,
    title: str | None = None,
    panel: tuple[float, float] = (2.8, 2.3),
) -> Figure:
    """Compact scatter grid: one row per configuration, one small panel per metric.

    Each configuration is a distinct combination of the ``rows`` columns (e.g. ``dummy`` and
    ``adaptation`` for one backbone); each panel plots one metric (x) against ``target`` (y)
    for its episodes, with the least-squares line and Pearson r in the panel title. A panel
    whose metric is constant in its configuration says so instead of plotting a vertical
    line. Panels are small (``panel`` inches, 100 dpi), so a study's configurations fit in a
    few figures rather than one tall figure each.

    Parameters
    ----------
    table:
        Rows to plot.
    rows:
        Columns whose distinct value combinations are the rows of the grid (sorted).
    metrics:
        Metric columns (the grid's columns); default those of
        :data:`~metaleep.metrics.registry.DEFAULT_METRICS` present.
    target:
        Column on the y axes.
    correlations:
        :func:`~metaleep.analysis.correlations.correlations` output holding the ``rows``
        columns; each panel's r and CI come from its configuration's Pearson row (default:
        scipy, no CI).
    title:
        Figure title.
    panel:
        Width and height of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"adaptation": np.repeat(["anil", "maml"], 20),
    ...                   "leep": rng.normal(size=40), "h_score": 4.0})
    >>> t["accuracy"] = 0.5 + 0.1 * t.leep
    >>> fig = scatter_grid(t, rows=["adaptation"], metrics=["leep", "h_score"])
    >>> len(fig.axes), fig.axes[1].get_title()
    (4, 'H-score\\nconstant')
    """
    check_table(table)
    chosen = metric_columns(table, metrics)
    if target not in table.columns:
        raise ValueError(f"`target` must be a column of `table`; got {target!r}.")
    missing = [c for c in rows if c not in table.columns]
    if missing:
        raise ValueError(f"`rows` must be columns of `table`; got {missing!r} missing.")
    from matplotlib.ticker import MaxNLocator

    keys = list(rows)
    groups = list(table.groupby(keys, sort=True, dropna=False)) if keys else [((), table)]
    n_rows, n_cols = max(len(groups), 1), max(len(chosen), 1)
    width, height = panel
    fig = new_figure(width * n_cols + 0.4, height * n_rows + (0.35 if title else 0.0))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, (key, frame) in enumerate(groups):
        values = key if isinstance(key, tuple) else (key,)
        label = " / ".join(str(v) for v in values) if keys else "all episodes"
        subset = None
        if correlations is not None and all(c in correlations.columns for c in keys):
            mask = np.ones(len(correlations), dtype=bool)
            for col, value in zip(keys, values, strict=True):
                mask &= (correlations[col] == value).to_numpy()
            subset = correlations[mask]
        y_all = frame[target].to_numpy(dtype=np.float64)
        alpha = float(np.clip(8.0 / math.sqrt(max(len(frame), 1)), 0.2, 0.9))
        for j, metric in enumerate(chosen):
            ax: Axes = axes[i][j]
            x_all = frame[metric].to_numpy(dtype=np.float64)
            ok = np.isfinite(x_all) & np.isfinite(y_all)
            x, y = x_all[ok], y_all[ok]
            ax.tick_params(labelsize=MIN_FONT, length=2, pad=1)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.grid(alpha=0.3, linewidth=0.4)
            if j == 0:
                ax.set_ylabel(f"{label}\n{metric_label(target)}", fontsize=MIN_FONT)
            if len(x) == 0 or is_constant(x):
                ax.set_title(f"{metric_label(metric)}\nconstant", fontsize=MIN_FONT, color="0.4")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            ax.scatter(x, y, s=5, alpha=alpha, color="tab:blue", edgecolors="none")
            if len(x) >= 2:
                slope, intercept = np.polyfit(x, y, 1)
                grid = np.linspace(x.min(), x.max(), 20)
                ax.plot(grid, slope * grid + intercept, color="black", linewidth=0.9)
            annotation = _pearson_annotation(metric, x, y, subset)
            ax.set_title(f"{metric_label(metric)}\n{annotation}", fontsize=MIN_FONT)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _horizontal_bars(
    ax: Axes,
    labels: Sequence[str],
    series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    xlabel: str,
) -> None:
    """Grouped horizontal bars: one block per label, one bar (with CI whiskers) per series."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    n_series = len(series)
    height = 0.8 / max(n_series, 1)
    centers = np.arange(len(labels))[::-1].astype(float)
    for k, (name, value, low, high) in enumerate(series):
        pos = centers + 0.4 - height * (k + 0.5)
        err = np.vstack([value - low, high - value])
        err = np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)
        ax.barh(
            pos,
            np.nan_to_num(value),
            height=height * 0.9,
            color=palette(k % 10),
            label=name,
            xerr=err,
            error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "0.25"},
        )
        for p, v in zip(pos, value, strict=True):
            if not np.isfinite(v):
                ax.text(0.0, p, " undefined", va="center", fontsize=MIN_FONT, color="0.4")
    ax.set_yticks(centers, labels, fontsize=MIN_FONT)
    ax.set_ylim(-0.55, len(labels) - 0.45)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=MIN_FONT)
    ax.grid(axis="x", alpha=0.3, linewidth=0.5)


def correlation_bars(
    corr: pd.DataFrame,
    *,
    method: str = "pearson",
    title: str | None = None,
) -> Figure:
    """Correlation of each metric with accuracy per group, with bootstrap CI whiskers.

    Parameters
    ----------
    corr:
        Output of :func:`~metaleep.analysis.correlations.correlations`.
    method:
        Which method's rows to draw.
    title:
        Axes title (default names the method).

    Returns
    -------
    matplotlib.figure.Figure
        Horizontal bars, one block per group (the ``by`` columns), one bar per metric;
        undefined correlations (constant metric) are marked "undefined".

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"metric": ["leep", "nce"], "method": "pearson", "r": [0.6, 0.2],
    ...                   "ci_low": [0.5, 0.0], "ci_high": [0.7, 0.4]})
    >>> fig = correlation_bars(c)
    >>> len(fig.axes[0].patches)
    2
    """
    if not isinstance(corr, pd.DataFrame):
        raise TypeError(f"`corr` must be a pandas DataFrame; got {type(corr).__name__!r}.")
    rows = corr[corr["method"] == method]
    if rows.empty:
        raise ValueError(
            f"`method` must be one of {sorted(corr['method'].unique().tolist())!r}; got {method!r}."
        )
    group_cols = _group_columns(rows, _CORR_KEYS)
    labels = list(dict.fromkeys(_group_labels(rows, group_cols)))
    metrics = list(dict.fromkeys(rows["metric"]))
    keyed = rows.assign(_label=_group_labels(rows, group_cols)).set_index(["_label", "metric"])
    series = []
    for metric in metrics:
        sub = keyed.xs(metric, level="metric").reindex(labels)
        series.append(
            (
                metric_label(metric),
                sub["r"].to_numpy(dtype=np.float64),
                sub["ci_low"].to_numpy(dtype=np.float64),
                sub["ci_high"].to_numpy(dtype=np.float64),
            )
        )
    height = 0.9 + 0.17 * len(labels) * len(metrics) + 0.15 * len(labels)
    fig = new_figure(7.5, min(max(height, 2.5), 40.0))
    ax = fig.subplots()
    _horizontal_bars(ax, labels, series, f"{METHOD_NAMES.get(method, method)} with accuracy")
    ax.set_xlim(-1.0, 1.0)
    ax.legend(fontsize=MIN_FONT, frameon=False, loc="lower left", bbox_to_anchor=(1.0, 0.0))
    ax.set_title(
        title or f"{METHOD_NAMES.get(method, method)} with bootstrap confidence interval",
        fontsize=10,
    )
    return fig


def selection_plot(selection: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Source-model selection per metric: top-1 hit rate and regret, with chance baselines.

    Parameters
    ----------
    selection:
        Output of :func:`~metaleep.analysis.selection.source_selection`.
    title:
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels of horizontal bars with CI whiskers (hit rate, regret); a dashed tick marks
        the chance level of each group.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"metric": ["leep", "nce"], "hit_rate": [0.8, 0.4],
    ...                   "hit_ci_low": [0.7, 0.3], "hit_ci_high": [0.9, 0.5],
    ...                   "chance_hit_rate": [0.34, 0.34], "regret": [0.01, 0.05],
    ...                   "regret_ci_low": [0.0, 0.03], "regret_ci_high": [0.02, 0.07],
    ...                   "chance_regret": [0.06, 0.06]})
    >>> fig = selection_plot(s)
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['top-1 hit rate', 'regret (best − chosen accuracy)']
    """
    if not isinstance(selection, pd.DataFrame):
        raise TypeError(
            f"`selection` must be a pandas DataFrame; got {type(selection).__name__!r}."
        )
    keys = SELECTION_COLUMNS
    group_cols = _group_columns(selection, keys)
    labels = list(dict.fromkeys(_group_labels(selection, group_cols)))
    metrics = list(dict.fromkeys(selection["metric"]))
    keyed = selection.assign(_label=_group_labels(selection, group_cols)).set_index(
        ["_label", "metric"]
    )
    height = 1.2 + 0.17 * len(labels) * len(metrics) + 0.15 * len(labels)
    fig = new_figure(10.0, min(max(height, 2.5), 40.0))
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        ("hit", "hit_rate", "chance_hit_rate", "top-1 hit rate"),
        ("regret", "regret", "chance_regret", "regret (best − chosen accuracy)"),
    )
    centers = np.arange(len(labels))[::-1].astype(float)
    for ax, (prefix, col, chance_col, xlabel) in zip(axes, panels, strict=True):
        series = []
        for metric in metrics:
            sub = keyed.xs(metric, level="metric").reindex(labels)
            series.append(
                (
                    metric_label(metric),
                    sub[col].to_numpy(dtype=np.float64),
                    sub[f"{prefix}_ci_low"].to_numpy(dtype=np.float64),
                    sub[f"{prefix}_ci_high"].to_numpy(dtype=np.float64),
                )
            )
        _horizontal_bars(ax, labels, series, xlabel)
        chance = keyed.groupby(level="_label")[chance_col].mean().reindex(labels).to_numpy()
        for c, level in zip(centers, chance, strict=True):
            ax.vlines(
                level,
                c - 0.45,
                c + 0.45,
                colors="black",
                linestyles="dashed",
                linewidth=1.0,
                label=None,
            )
        if prefix == "hit":
            ax.set_xlim(0.0, 1.0)
    axes[0].plot([], [], color="black", linestyle="dashed", linewidth=1.0, label="chance")
    axes[1].legend(
        *axes[0].get_legend_handles_labels(),
        fontsize=MIN_FONT,
        frameon=False,
        loc="lower left",
        bbox_to_anchor=(1.0, 0.0),
    )
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _series_layout(
    rows: pd.DataFrame, group_cols: Sequence[str]
) -> tuple[str | None, list[str], list[object], list[tuple[object, ...]]]:
    """How a per-group table is laid out in panels: the last grouping column (when there are
    several) makes the panels, the others the series (colours) within a panel."""
    facet = group_cols[-1] if len(group_cols) >= 2 else None
    series_cols = list(group_cols[:-1]) if facet else list(group_cols)
    facets: list[object] = list(dict.fromkeys(rows[facet])) if facet else [None]
    series: list[tuple[object, ...]] = [()]
    if series_cols:
        series = list(dict.fromkeys(rows[series_cols].itertuples(index=False, name=None)))
    return facet, series_cols, facets, series


def forest_plot(
    corr: pd.DataFrame,
    best: pd.DataFrame | None = None,
    *,
    method: str = "pearson",
    metrics: Sequence[str] | None = None,
    width: float = PAGE_WIDTH,
) -> Figure:
    """Every metric's correlation with accuracy and its CI, per group: a dot-and-whisker plot.

    One row per metric (top to bottom in the table's order), one panel per value of the last
    grouping column (the adaptation, in a study), one colour per combination of the other
    grouping columns (backbone and dummy labels). The best metric of each group is a star; free
    baselines (:data:`~metaleep.analysis.baseline.BASELINES`) sit on a grey band with hollow
    markers, so a metric is read against them.

    Parameters
    ----------
    corr:
        :func:`~metaleep.analysis.correlations.correlations` output.
    best:
        :func:`~metaleep.analysis.baseline.verdict` output (its ``best`` column is starred).
    method:
        Which method's rows to draw.
    metrics:
        The rows, in order (default: every metric of ``corr``).
    width:
        Figure width in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"adaptation": ["a", "a", "b", "b"],
    ...                   "metric": ["leep", "centroid_loo"] * 2, "method": "pearson",
    ...                   "r": [0.6, 0.5, 0.2, 0.4], "ci_low": [0.5, 0.4, 0.1, 0.3],
    ...                   "ci_high": [0.7, 0.6, 0.3, 0.5]})
    >>> c.attrs["by"] = ["adaptation"]
    >>> fig = forest_plot(c)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['LEEP', 'centroid LOO (baseline)']
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    from metaleep.analysis.baseline import BASELINES

    if not isinstance(corr, pd.DataFrame):
        raise TypeError(f"`corr` must be a pandas DataFrame; got {type(corr).__name__!r}.")
    rows = corr[corr["method"] == method]
    if rows.empty:
        raise ValueError(
            f"`method` must be one of {sorted(corr['method'].unique().tolist())!r}; got {method!r}."
        )
    group_cols = _group_columns(rows, _CORR_KEYS)
    shown = list(metrics) if metrics is not None else list(dict.fromkeys(rows["metric"]))
    facet, series_cols, facets, series = _series_layout(rows, group_cols)
    palette = colormaps["tab10" if len(series) <= 10 else "tab20"]
    n_series = len(series)
    step = min(0.22, 0.8 / max(n_series, 1))
    row_height = max(0.3, step * n_series * 0.55)
    fig = new_figure(width, 0.95 + row_height * len(shown))
    axes = fig.subplots(1, len(facets), sharey=True, squeeze=False)[0]
    cells = {
        (*(rec[c] for c in group_cols), rec["metric"]): (
            float(rec["r"]),
            float(rec["ci_low"]),
            float(rec["ci_high"]),
        )
        for rec in rows.to_dict("records")
    }
    best_of: dict[tuple[object, ...], str] = {}
    if best is not None and "best" in best.columns and all(c in best for c in group_cols):
        for rec in best.to_dict("records"):
            best_of[tuple(rec[c] for c in group_cols)] = str(rec["best"])
    lows = rows["ci_low"].to_numpy(dtype=np.float64)
    highs = rows["ci_high"].to_numpy(dtype=np.float64)
    values = rows["r"].to_numpy(dtype=np.float64)
    spread = np.concatenate([lows, highs, values, [0.0]])
    spread = spread[np.isfinite(spread)]
    x_low, x_high = max(-1.0, spread.min() - 0.05), min(1.0, spread.max() + 0.05)
    y = np.arange(len(shown), dtype=np.float64)
    for ax, facet_value in zip(axes, facets, strict=True):
        for i, metric in enumerate(shown):
            if metric in BASELINES:
                ax.axhspan(i - 0.45, i + 0.45, color="0.9", zorder=0, linewidth=0)
        for k, key in enumerate(series):
            full = (*key, facet_value) if facet else key
            offset = (k - (n_series - 1) / 2) * step
            colour = palette(k % palette.N)
            for i, metric in enumerate(shown):
                r, lo, hi = cells.get((*full, metric), (math.nan, math.nan, math.nan))
                if not math.isfinite(r):
                    continue
                err = [[max(r - lo, 0.0)], [max(hi - r, 0.0)]] if math.isfinite(lo) else None
                is_best = best_of.get(tuple(full)) == metric
                baseline = metric in BASELINES
                ax.errorbar(
                    [r],
                    [i + offset],
                    xerr=err,
                    fmt="*" if is_best else "o",
                    markersize=11 if is_best else 5,
                    color=colour,
                    markerfacecolor="white" if baseline else colour,
                    markeredgecolor="black" if is_best else colour,
                    elinewidth=1.2,
                    capsize=0,
                    zorder=3 if is_best else 2,
                )
        ax.axvline(0.0, color="0.3", linewidth=0.8, zorder=1)
        ax.set_xlim(x_low, x_high)
        ax.grid(axis="x", alpha=0.3, linewidth=0.5)
        ax.tick_params(labelsize=MIN_FONT)
        ax.set_xlabel(METHOD_NAMES.get(method, method), fontsize=MIN_FONT + 1)
        if facet is not None:
            ax.set_title(f"{facet}: {facet_value}", fontsize=MIN_FONT + 1)
    first = axes[0]
    first.set_yticks(y, [metric_label(m) for m in shown])
    for label, metric in zip(first.get_yticklabels(), shown, strict=True):
        if metric in BASELINES:
            label.set_color("0.35")
            label.set_fontstyle("italic")
    first.set_ylim(len(shown) - 0.5, -0.5)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=palette(k % palette.N),
               label=" / ".join(str(v) for v in key) or "all episodes")
        for k, key in enumerate(series)
    ]  # fmt: skip
    handles.append(
        Line2D([], [], marker="*", linestyle="", markersize=11, color="0.6",
               markeredgecolor="black", label="best metric of its group")
    )  # fmt: skip
    if any(m in BASELINES for m in shown):
        handles.append(
            Line2D([], [], marker="o", linestyle="", color="0.4", markerfacecolor="white",
                   label="free baseline (grey band)")
        )  # fmt: skip
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=min(len(handles), 4),
        fontsize=MIN_FONT,
        frameon=False,
        title=" / ".join(series_cols) if series_cols else None,
        title_fontsize=MIN_FONT,
    )
    return fig


def best_metric_scatter(
    table: pd.DataFrame,
    best: pd.DataFrame,
    *,
    target: str = "accuracy",
    correlations: pd.DataFrame | None = None,
    ncols: int = 4,
    width: float = PAGE_WIDTH,
) -> Figure:
    """Each group's best metric against ``target``, one small panel per group.

    Parameters
    ----------
    table:
        The study table (the rows of every group).
    best:
        :func:`~metaleep.analysis.baseline.verdict` output: its grouping columns pick the rows,
        its ``best`` column the metric; groups without a best metric are left out.
    target:
        Column on the y axes.
    correlations:
        Where each panel's r and CI come from (default: scipy's r, no CI).
    ncols:
        Panels per row.
    width:
        Figure width in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"backbone": np.repeat(["a", "b"], 20), "leep": rng.normal(size=40),
    ...                   "nce": rng.normal(size=40)})
    >>> t["accuracy"] = 0.5 + 0.1 * t.leep
    >>> best = pd.DataFrame({"backbone": ["a", "b"], "best": ["leep", "nce"]})
    >>> best.attrs["by"] = ["backbone"]
    >>> [ax.get_xlabel() for ax in best_metric_scatter(t, best).axes]
    ['LEEP', 'NCE']
    """
    from matplotlib.ticker import MaxNLocator

    check_table(table)
    group_cols = [c for c in best.attrs.get("by", []) if c in best.columns]
    chosen = best[best["best"].astype(str) != ""]
    n = max(len(chosen), 1)
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    panel = width / cols
    fig = new_figure(width, rows * panel * 0.78)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, rec in enumerate(chosen.to_dict("records")):
        ax: Axes = axes[i // cols][i % cols]
        mask = np.ones(len(table), dtype=bool)
        for col in group_cols:
            mask &= np.array(table[col] == rec[col], dtype=bool)
        frame = table[mask]
        metric = str(rec["best"])
        x_all = frame[metric].to_numpy(dtype=np.float64)
        y_all = frame[target].to_numpy(dtype=np.float64)
        ok = np.isfinite(x_all) & np.isfinite(y_all)
        x, y = x_all[ok], y_all[ok]
        alpha = float(np.clip(8.0 / math.sqrt(max(len(x), 1)), 0.15, 0.9))
        ax.scatter(x, y, s=7, alpha=alpha, color="tab:blue", edgecolors="none")
        if len(x) >= 2 and not is_constant(x):
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 20)
            ax.plot(grid, slope * grid + intercept, color="black", linewidth=1.0)
        subset = None
        if correlations is not None:
            keep = np.ones(len(correlations), dtype=bool)
            for col in group_cols:
                keep &= np.array(correlations[col] == rec[col], dtype=bool)
            subset = correlations[keep]
        label = " / ".join(str(rec[c]) for c in group_cols) or "all episodes"
        annotation = _pearson_annotation(metric, x, y, subset)
        ax.set_title(f"{label}\n{annotation}", fontsize=MIN_FONT)
        ax.set_xlabel(metric_label(metric), fontsize=MIN_FONT)
        if i % cols == 0:
            ax.set_ylabel(metric_label(target), fontsize=MIN_FONT)
        ax.tick_params(labelsize=MIN_FONT)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.grid(alpha=0.3, linewidth=0.5)
    for k in range(len(chosen), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    return fig
