"""The grid report: the answer in words first, then the wins figure, then the evidence, folded.

It draws a :class:`~metaleep.analysis.grid.GridAnalysis` in the order of :data:`GRID_SECTIONS`:

1. **headline** -- which metric correlates best in how many settings, how often significantly,
   how stable that is, and what the free baseline does (:func:`grid_headline`);
2. **wins** -- each metric's wins with their spread under episode resampling (a figure) and
   the wins table;
3. folded: the settings x metrics heatmap of r, the stability of the wins when one grid value
   is left out, source selection per target, every setting, the target studies;
4. **configuration** as a table of settings.

Each section is a function ``(Document, GridPage) -> None``; a new analysis of the grid is a
new function in :data:`GRID_SECTIONS`. matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaleep.analysis.grid import (
    DIMENSIONS,
    SETTING,
    GridAnalysis,
    regime_findings,
    regime_table,
    selection_summary,
    wins_table,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from metaleep.report.document import Document

__all__ = [
    "GRID_SECTIONS",
    "GridPage",
    "added_section",
    "cells_section",
    "grid_headline",
    "heatmap_figure",
    "leave_out_figure",
    "regime_section",
    "robustness_section",
    "setting_label",
    "settings_frame",
    "wins_figure",
    "write_grid_report",
]


@dataclass(frozen=True)
class GridPage:
    """What the grid's page draws: the analysis and the run's context.

    Attributes
    ----------
    analysis:
        The grid's aggregates.
    config:
        The grid's :meth:`~metaleep.study.grid_config.GridConfig.to_dict` (``None``: unknown).
    target_reports:
        ``{target: relative path of its study report}``.
    notes:
        What the run skipped and why.
    seconds:
        Wall time of the run.
    """

    analysis: GridAnalysis
    config: Mapping[str, Any] | None = None
    target_reports: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()
    seconds: float | None = None


GridSection = Callable[["Document", GridPage], None]
"""A part of the grid's page."""


def setting_label(row: Mapping[str, object]) -> str:
    """``target / regime / source / dummy / transfer`` of a setting row.

    Examples
    --------
    >>> setting_label({"target": "glyphs-5w1s", "regime": "1-shot", "backbone": "maml",
    ...                "dummy": "head", "adaptation": "anil"})
    'glyphs-5w1s / 1-shot / maml / head / anil'
    """
    return " / ".join(str(row[c]) for c in SETTING)


def _column_label(metric: str) -> str:
    """A metric's name wrapped to fit a narrow heatmap column (``centroid LOO\\n(baseline)``)."""
    from metaleep.report.plots import metric_label

    return textwrap.fill(metric_label(metric), width=10, break_long_words=False)


def _baseline_band(ax: Axes, metrics: Sequence[str], *, axis: str) -> None:
    """Grey the free baselines' rows (``axis="y"``) or columns (``"x"``)."""
    from metaleep.analysis.baseline import BASELINES

    for i, metric in enumerate(metrics):
        if metric in BASELINES:
            span = ax.axhspan if axis == "y" else ax.axvspan
            span(i - 0.5, i + 0.5, color="0.88", zorder=0, linewidth=0)


def wins_figure(analysis: GridAnalysis) -> Figure:
    """Each metric's wins: the settings where it has the highest r (bar), those won
    significantly (dark bar), and the 95 % interval of its win count over episode resamples
    (whisker); metrics sorted by wins, free baselines on grey."""
    from metaleep.report.plots import MIN_FONT, metric_label, new_figure

    wins = analysis.wins.sort_values("wins", ascending=False, kind="stable")
    metrics = wins["metric"].astype(str).tolist()
    n_settings = int(wins["n_settings"].max()) if len(wins) else 0
    fig = new_figure(8.0, 1.3 + 0.32 * len(metrics))
    ax = fig.add_subplot()
    y = np.arange(len(metrics), dtype=np.float64)
    _baseline_band(ax, metrics, axis="y")
    ax.barh(y, wins["wins"], height=0.6, color="#9dc3e6", label="best (point r)")
    ax.barh(y, wins["significant_wins"], height=0.6, color="#1f4e79", label="significantly best")
    low = wins["boot_low"].to_numpy(dtype=np.float64)
    high = wins["boot_high"].to_numpy(dtype=np.float64)
    ax.hlines(y, low, high, color="black", linewidth=1.2, label="95 % over episode resamples")
    ends = np.fmax(wins["wins"].to_numpy(dtype=np.float64), np.nan_to_num(high))
    for yi, k, end in zip(y, wins["wins"], ends, strict=True):
        ax.text(float(end) + 0.4, yi, str(int(k)), va="center", fontsize=MIN_FONT)
    ax.set_yticks(y, [metric_label(m) for m in metrics], fontsize=MIN_FONT)
    ax.set_ylim(len(metrics) - 0.5, -0.5)
    right = max(float(np.nanmax(high)) if len(high) else 0.0, float(wins["wins"].max() or 0))
    ax.set_xlim(0, max(right * 1.12 + 1, 1))
    ax.set_xlabel(f"settings won (of {n_settings})", fontsize=MIN_FONT + 1)
    ax.tick_params(axis="x", labelsize=MIN_FONT)
    ax.grid(axis="x", alpha=0.3, linewidth=0.5)
    fig.legend(loc="outside upper center", ncols=3, fontsize=MIN_FONT, frameon=False)
    return fig


def heatmap_figure(analysis: GridAnalysis) -> Figure:
    """Settings (rows) x metrics (columns) of Pearson r, one panel per target; the winner of
    each row framed, a ``*`` where its win is significant; blank where a metric has no r."""
    from matplotlib.patches import Rectangle

    from metaleep.report.plots import MIN_FONT, new_figure

    settings = analysis.settings
    metrics = analysis.metrics
    targets = list(dict.fromkeys(settings["target"].astype(str)))
    sizes = [int((settings["target"].astype(str) == t).sum()) for t in targets]
    rows_in = 0.24
    header = 0.75
    fig = new_figure(3.0 + 0.8 * len(metrics), sum(header + rows_in * n for n in sizes) + 0.3)
    axes = fig.subplots(
        len(targets), 1, squeeze=False, height_ratios=[header + rows_in * n for n in sizes]
    )[:, 0]
    image = None
    for ax, target in zip(axes, targets, strict=True):
        part = settings[settings["target"].astype(str) == target]
        r = part[[f"r_{m}" for m in metrics]].to_numpy(dtype=np.float64)
        image = ax.imshow(np.ma.masked_invalid(r), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(metrics)), [_column_label(m) for m in metrics], fontsize=MIN_FONT)
        ax.xaxis.tick_top()
        labels = [" / ".join(str(v) for v in row) for row in part[list(SETTING[1:])].to_numpy()]
        ax.set_yticks(range(len(part)), labels, fontsize=MIN_FONT)
        ax.set_ylabel(target, fontsize=MIN_FONT + 1)
        for i, row in enumerate(part.itertuples(index=False)):
            for j, metric in enumerate(metrics):
                value = r[i, j]
                if not np.isfinite(value):
                    continue
                won = metric == row.winner
                ax.text(
                    j,
                    i,
                    f"{value:.2f}" + ("*" if won and bool(row.significant) else ""),
                    ha="center",
                    va="center",
                    fontsize=MIN_FONT,
                    color="white" if abs(value) > 0.6 else "black",
                )
                if won:
                    frame = Rectangle(
                        (j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.2
                    )
                    ax.add_patch(frame)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), shrink=min(0.5, 4.0 / len(settings) + 0.1))
        bar.set_label("Pearson r with accuracy", fontsize=MIN_FONT)
        bar.ax.tick_params(labelsize=MIN_FONT)
    return fig


def leave_out_figure(analysis: GridAnalysis) -> Figure:
    """Wins with one grid value left out: rows the left-out (dimension, value), columns the
    metrics, cells the wins among the remaining settings (shade: their share)."""
    from metaleep.report.plots import MIN_FONT, new_figure

    leave = analysis.leave_out
    metrics = analysis.metrics
    fig = new_figure(3.2 + 0.8 * len(metrics), 1.2 + 0.26 * len(leave))
    ax = fig.add_subplot()
    share = leave[metrics].to_numpy(dtype=np.float64) / np.maximum(
        leave["n_settings"].to_numpy(dtype=np.float64)[:, None], 1
    )
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            ax.text(
                j,
                i,
                str(int(leave[metrics[j]].iloc[i])),
                ha="center",
                va="center",
                fontsize=MIN_FONT,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(metrics)), [_column_label(m) for m in metrics], fontsize=MIN_FONT)
    ax.xaxis.tick_top()
    labels = [
        f"{DIMENSIONS.get(d, d)}: {v}" + ("  (top changes)" if c else "")
        for d, v, c in zip(leave["dimension"], leave["left_out"], leave["changed"], strict=True)
    ]
    ax.set_yticks(range(len(leave)), labels, fontsize=MIN_FONT)
    return fig


def settings_frame(analysis: GridAnalysis) -> pd.DataFrame:
    """Every setting in words: its accuracy, each metric's r [CI], the winner and how often it
    keeps winning under resampling."""
    s = analysis.settings
    out = pd.DataFrame({DIMENSIONS.get(c, c): s[c] for c in SETTING})
    out["episodes"] = s["n_episodes"]
    out["accuracy"] = [
        f"{m:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{m:.3f}"
        for m, sd in zip(s["acc_mean"], s["acc_std"], strict=True)
    ]
    out["at 100 %"] = [f"{100 * p:.0f} %" for p in s["acc_perfect"]]
    for m in analysis.metrics:
        out[m] = [
            "" if not np.isfinite(r) else f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
            for r, lo, hi in zip(s[f"r_{m}"], s[f"ci_low_{m}"], s[f"ci_high_{m}"], strict=True)
        ]
    out["winner"] = s["winner"] + np.where(s["significant"].astype(bool), " *", "")
    out["winner kept"] = [
        "" if not np.isfinite(v) else f"{100 * v:.0f} %" for v in s["winner_share"]
    ]
    return out


def grid_headline(analysis: GridAnalysis, *, markup: bool = True) -> list[str]:
    """The grid in words, one paragraph per regime (1-shot, >= 2-shot): how many settings and
    distinct comparisons, which metric has the highest r how often, how many wins survive the
    selection-aware test, who has no r, how the rank coefficients change the winners and the
    training seed's share of the intervals
    (:func:`~metaleep.analysis.grid.regime_findings`)."""
    from metaleep.analysis.grid import regime_findings
    from metaleep.report.plots import metric_label

    findings = regime_findings(
        analysis.wins_by_regime, analysis.counts, alpha=analysis.alpha, label=metric_label
    )
    if not findings:
        return ["No metric has a correlation with accuracy in any setting."]
    bold = (lambda t: f"**{t}**") if markup else (lambda t: t)
    return [
        f"{bold(f'{regime} episodes.')} " + " ".join(lines) for regime, lines in findings.items()
    ]


def _findings(analysis: GridAnalysis) -> list[str]:
    """Plain sentences about the grid: the ordering of LEEP, NCE and H-score, constant
    metrics, ceilings, the LEEP form."""
    from metaleep.report.plots import metric_label

    items = []
    s = analysis.settings
    trio = [m for m in ("leep", "nce", "h_score") if m in analysis.metrics]
    if len(trio) >= 2:
        r = s[[f"r_{m}" for m in trio]].to_numpy(dtype=np.float64)
        defined = np.isfinite(r).all(axis=1)
        low = np.where(np.isfinite(r), r, -2.0)  # an undefined r ranks below any r
        ordered = np.all(np.diff(low, axis=1) < 0, axis=1)
        means = [
            f"{metric_label(m)} {np.mean(v[np.isfinite(v)]):.2f}"
            if np.isfinite(v).any()
            else f"{metric_label(m)} n/a"
            for m, v in zip(trio, r.T, strict=True)
        ]
        where_defined = (
            f", in {int((ordered & defined).sum())} of the {int(defined.sum())} where all have an r"
            if defined.any()
            else ""
        )
        items.append(
            f"The paper's ordering {' > '.join(metric_label(m) for m in trio)} holds in "
            f"{int(ordered.sum())} of {len(s)} settings counting an undefined r as lowest"
            f"{where_defined}; mean r: {', '.join(means)}."
        )
    undefined = [
        (m, int((~np.isfinite(s[f"r_{m}"].to_numpy(dtype=np.float64))).sum()))
        for m in analysis.metrics
    ]
    if any(k for _, k in undefined):
        items.append(
            f"No r (a constant metric) in some of the {len(s)} settings: "
            + ", ".join(f"{metric_label(m)} {k}" for m, k in undefined if k)
            + "."
        )
    ceiling = s[s["acc_perfect"] >= 0.5]
    if len(ceiling):
        items.append(
            f"{len(ceiling)} settings have half or more of their episodes at 100 % accuracy "
            "(a ceiling that compresses r)."
        )
    forms = {t: f for t, f in analysis.leep_forms.items() if f == "normalised"}
    if forms:
        items.append(
            "LEEP and N-LEEP normalised (1 + LEEP / log N) on "
            + ", ".join(forms)
            + " (episodes of several numbers of ways)."
        )
    return items


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def headline_section(doc: Document, page: GridPage) -> None:
    """The scope in one line, the answer in words."""
    analysis = page.analysis
    settings = analysis.settings
    targets = sorted(settings["target"].astype(str).unique())
    sources = sorted(settings["backbone"].astype(str).unique())
    doc.paragraph(
        f"{len(settings)} transfer settings (source x dummy labels x transfer type x target) "
        f"over {len(targets)} targets ({', '.join(targets)}) and {len(sources)} sources "
        f"({', '.join(sources)}). In each setting, each metric's Pearson r with post-adaptation "
        "query accuracy over episodes; the metric with the highest r wins the setting (the "
        "LEEP paper's count), significantly when a paired bootstrap "
        f"({analysis.n_boot} resamples of episodes) puts it above every other metric at "
        f"one-sided p < {analysis.alpha}."
        + (f" Wall time of this run: {page.seconds:.0f} s." if page.seconds is not None else ""),
        css="caption",
    )
    sentences = grid_headline(analysis)
    doc.paragraph(sentences[0], css="lead")
    doc.bullets(sentences[1:] + _findings(analysis))


def wins_section(doc: Document, page: GridPage) -> None:
    """The wins figure and table."""
    doc.figure(
        "grid_wins.png",
        wins_figure(page.analysis),
        "Settings each metric wins (highest r), those won significantly, and the 95 % interval "
        "of its win count when the episodes are resampled; grey: the free baseline.",
    )
    doc.table(wins_table(page.analysis), "Best in k of N settings, per metric (wins.csv).")


def heatmap_section(doc: Document, page: GridPage) -> None:
    """Every setting's r per metric, folded."""
    with doc.folded("Every setting's r per metric (heatmap)"):
        doc.figure(
            "grid_heatmap.png",
            heatmap_figure(page.analysis),
            "Pearson r of each metric with accuracy per setting (rows: source / dummy labels / "
            "transfer, one panel per target); the winner framed, * where its win is "
            "significant; blank: no r (constant metric).",
        )


def stability_section(doc: Document, page: GridPage) -> None:
    """How the wins change with one grid value left out, folded."""
    leave = page.analysis.leave_out
    if not len(leave):
        return
    with doc.folded("Stability: the wins with one grid value left out"):
        doc.paragraph(
            "In the spirit of Agostinelli et al. (2022): the wins counted again with one value "
            "of one grid dimension left out; '(top changes)' marks a left-out value without "
            "which another metric has most wins (leave_out.csv). The spread under episode "
            "resampling is the whisker of the wins figure."
        )
        doc.figure(
            "grid_leave_out.png",
            leave_out_figure(page.analysis),
            "Wins among the remaining settings, one grid value left out per row.",
        )


def selection_section(doc: Document, page: GridPage) -> None:
    """Source selection per target, folded."""
    analysis = page.analysis
    with doc.folded("Source selection per target"):
        doc.paragraph(
            "On each episode the sources are ranked by the metric and by post-adaptation "
            "accuracy: weighted Kendall tau between the two rankings, top-1 hit rate (the "
            "metric's pick adapts best; chance_hit_rate: a uniformly random pick) and regret "
            "(best accuracy minus the pick's), per (dummy labels, transfer type) shared by at "
            "least two sources; 'native': each source with its own dummy labels. A metric that "
            "ties every source on an episode (H-score when n - 1 <= d) has no tau there: its "
            "mean tau is over the other episodes only (each group's note says how many)."
        )
        summary = selection_summary(analysis.selection, analysis.metrics)
        if not len(summary):
            doc.paragraph("No (dummy, transfer) group has two sources.")
            return
        doc.table(summary.round(3), "Means over every (target, dummy, transfer) group.")
        sel = analysis.selection
        cols = ["target", "dummy", "adaptation", "metric", "n_episodes", "n_models", "tau",
                "hit_rate", "chance_hit_rate", "regret"]  # fmt: skip
        doc.table(sel[[c for c in cols if c in sel]].round(3), "Every group (selection.csv).")


def settings_section(doc: Document, page: GridPage) -> None:
    """Every setting in words, folded, and what the run skipped."""
    n = len(page.analysis.settings)
    with doc.folded(f"All {n} settings: accuracy and r [95 % CI]"):
        doc.table(settings_frame(page.analysis), "settings.csv holds them with more digits.")
    doc.bullets(list(page.notes))


def targets_section(doc: Document, page: GridPage) -> None:
    """Links to each target study's own report."""
    if not page.target_reports:
        return
    doc.heading("Target studies")
    links = "".join(
        f'<li><a href="{path}">{name}</a></li>' for name, path in page.target_reports.items()
    )
    doc.html.append(f"<ul>{links}</ul>")
    doc.md.append("\n".join(f"- [{k}]({v})" for k, v in page.target_reports.items()) + "\n")


def configuration_section(doc: Document, page: GridPage) -> None:
    """The grid's settings as a table (grid.json holds them too)."""
    from metaleep.report.page import settings_table

    if page.config is None:
        return
    doc.heading("Configuration")
    config = dict(page.config)
    targets = config.pop("targets", None)
    doc.table(settings_table(config), "The grid (grid.json).")
    if isinstance(targets, list) and targets and all(isinstance(t, Mapping) for t in targets):
        doc.table(pd.DataFrame([{k: _words(v) for k, v in t.items()} for t in targets]), "Targets.")


def _words(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def regime_section(doc: Document, page: GridPage) -> None:
    """The headline by regime: 1-shot and >=2-shot settings apart, in words and as tables."""
    analysis = page.analysis
    from metaleep.report.plots import metric_label

    if analysis.wins_by_regime.empty:
        return
    doc.heading("Wins by regime")
    doc.paragraph(
        "1-shot episodes and episodes of 2 or more shots are different contests: at 1 shot "
        "the label-using baselines (centroid LOO, H-score, SFDA, GBC) are constant and have no "
        "r, and the label-free cosine spread is LEEP's free competitor. 'distinct' counts "
        "identical comparisons (the same metric values against the same accuracies, e.g. a "
        "feature metric under two dummy-label modes) once."
    )
    findings = regime_findings(
        analysis.wins_by_regime, analysis.counts, alpha=analysis.alpha, label=metric_label
    )
    for regime, lines in findings.items():
        doc.paragraph(f"{regime}:")
        doc.bullets(lines)
        table = regime_table(analysis, regime)
        table["metric"] = [metric_label(m) for m in table["metric"]]
        doc.table(table, f"{regime} settings: best in k of N, per metric.")


def robustness_section(doc: Document, page: GridPage) -> None:
    """Wins under Pearson, Spearman and Kendall side by side, and where the winner changes."""
    analysis = page.analysis
    from metaleep.report.plots import metric_label

    rob = analysis.robustness
    if rob.empty:
        return
    doc.heading("Wins under Pearson, Spearman and Kendall")
    wide = rob.pivot_table(
        index="metric", columns="regime", values=["pearson", "spearman", "kendall"], sort=False
    )
    wide.columns = [f"{column[1]}: {column[0]}" for column in wide.columns]
    wide = wide.reindex(analysis.metrics).reset_index()
    wide["metric"] = [metric_label(m) for m in wide["metric"]]
    doc.table(wide, "Settings won under each coefficient (point estimates), per regime.")
    s = analysis.settings
    changed = s[
        (s["winner"] != "")
        & ((s["winner_spearman"] != s["winner"]) | (s["winner_kendall"] != s["winner"]))
    ]
    if len(changed):
        cols = [*SETTING, "winner", "winner_spearman", "winner_kendall"]
        doc.details(
            f"The {len(changed)} settings whose winner changes with the coefficient",
            changed[cols],
        )


def added_section(doc: Document, page: GridPage) -> None:
    """The R^2 each metric adds over the design's controls and over the free baselines."""
    analysis = page.analysis
    from metaleep.report.plots import metric_label

    added = analysis.added
    if added.empty:
        return
    doc.heading("What a metric adds")
    doc.paragraph(
        "Per target and regime, accuracy regressed on the controls (fixed effects of the "
        "(ways, shots) cell, the source x transfer pair and the source x seed network), each "
        "source with its own dummy labels: the R^2 a metric adds over the controls, and over "
        "the controls plus the free baselines (centroid LOO and cosine spread)."
    )
    mean = (
        added.groupby(["regime", "metric"], sort=False)[
            ["added_over_controls", "added_over_baselines"]
        ]
        .mean()
        .reset_index()
    )
    mean["metric"] = [metric_label(m) for m in mean["metric"]]
    doc.table(mean.round(3), "Mean R^2 added over the targets of each regime.")
    doc.details("Per target", added.round(4))


def cells_section(doc: Document, page: GridPage) -> None:
    """Every setting's Pearson r per (ways, shots) cell: what the combined r is made of."""
    analysis = page.analysis
    cells = analysis.cells
    if cells.empty:
        return
    doc.heading("By (ways, shots) cell")
    doc.paragraph(
        "A setting's r combines its cells by Fisher z weighted by n - 3 (and its seeds); here "
        "is each cell's own r (mean Fisher z over the seeds), blank where the metric has none."
    )
    index = [c for c in cells.columns if c not in ("metric", "n", "r")]
    wide = cells.pivot_table(index=index, columns="metric", values="r", sort=False)
    wide = wide.reindex(columns=[m for m in analysis.metrics if m in wide.columns])
    doc.details(f"{len(wide)} (setting, cell) rows", wide.round(2).reset_index())


GRID_SECTIONS: tuple[GridSection, ...] = (
    headline_section,
    regime_section,
    wins_section,
    heatmap_section,
    stability_section,
    robustness_section,
    cells_section,
    added_section,
    selection_section,
    settings_section,
    targets_section,
    configuration_section,
)
"""The grid's page, top to bottom."""


def write_grid_report(
    analysis: GridAnalysis,
    out_dir: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    target_reports: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    seconds: float | None = None,
    sections: Sequence[GridSection] = GRID_SECTIONS,
) -> Path:
    """Write ``report.html`` and ``report.md`` (figures beside it) into ``out_dir``.

    ``config`` is the grid's :meth:`~metaleep.study.grid_config.GridConfig.to_dict` (its
    ``name`` titles the page; its settings close it).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> from metaleep.analysis.grid import analyse_grid
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.uniform(size=40)
    >>> t = pd.DataFrame({"target": "t", "backbone": np.repeat(["a", "b"], 20), "dummy": "d",
    ...                   "adaptation": "x", "episode": np.tile(np.arange(20), 2),
    ...                   "accuracy": acc, "leep": acc + rng.normal(size=40),
    ...                   "nce": rng.normal(size=40)})
    >>> a = analyse_grid(t, metrics=["leep", "nce"], n_boot=50)
    >>> path = write_grid_report(a, tempfile.mkdtemp())
    >>> "Best in k of N settings" in path.read_text()
    True
    """
    from metaleep._io import atomic_write_bytes
    from metaleep.report.document import Document

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"metaleep grid: {config['name']}" if config is not None else "metaleep grid"
    doc = Document(title)
    page = GridPage(
        analysis=analysis,
        config=config,
        target_reports=dict(target_reports or {}),
        notes=tuple(notes),
        seconds=seconds,
    )
    for section in sections:
        section(doc, page)
    atomic_write_bytes(out / "report.html", doc.render_html().encode("utf-8"))
    atomic_write_bytes(out / "report.md", doc.render_md().encode("utf-8"))
    for name, data in doc.figures.items():
        atomic_write_bytes(out / name, data)
    return out / "report.html"


# --------------------------------------------------------------------------------------------
# Sections of issue 22 (regimes, robustness, what a metric adds); each draws analysis data only
# --------------------------------------------------------------------------------------------
