"""The grid report: one HTML page (and its Markdown twin) a reader takes in from the top.

Order: the wins table and a settings x metrics heatmap of r first, then the stability of the
wins, then source selection per target, then the settings table in full and links to each
target study's own report. It only draws a :class:`~metaleep.analysis.grid.GridAnalysis`;
matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from metaleep.report.document import Document


__all__ = [
    "added_section",
    "cells_section",
    "heatmap_figure",
    "regime_section",
    "robustness_section",
    "setting_label",
    "stability_figure",
    "write_grid_report",
]


def setting_label(row: Mapping[str, object]) -> str:
    """``target / regime / source / dummy / transfer`` of a setting row.

    Examples
    --------
    >>> setting_label({"target": "glyphs-5w1s", "regime": "1-shot", "backbone": "maml",
    ...                "dummy": "head", "adaptation": "anil"})
    'glyphs-5w1s / 1-shot / maml / head / anil'
    """
    return " / ".join(str(row[c]) for c in SETTING)


def heatmap_figure(analysis: GridAnalysis) -> Figure:
    """Settings (rows) x metrics (columns) of Pearson r; the winner of each row framed, a ``*``
    where its win is significant; blank where a metric has no r."""
    from metaleep.report.plots import metric_label, new_figure

    settings = analysis.settings
    metrics = analysis.metrics
    r = settings[[f"r_{m}" for m in metrics]].to_numpy(dtype=np.float64)
    n = len(settings)
    fig = new_figure(2.2 + 1.1 * len(metrics), 1.2 + 0.24 * n)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(r), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(metrics)), [metric_label(m) for m in metrics])
    ax.xaxis.tick_top()
    labels = [" / ".join(str(v) for v in row) for row in settings[list(SETTING)].to_numpy()]
    ax.set_yticks(range(n), labels, fontsize=7)
    for i, row in enumerate(settings.itertuples(index=False)):
        winner = row.winner
        for j, m in enumerate(metrics):
            value = r[i, j]
            if not np.isfinite(value):
                continue
            star = "*" if m == winner and bool(row.significant) else ""
            ax.text(
                j,
                i,
                f"{value:.2f}{star}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if abs(value) > 0.6 else "black",
            )
            if m == winner:
                ax.add_patch(_frame(j, i))
    fig.colorbar(image, ax=ax, shrink=0.3, label="Pearson r with accuracy")
    return fig


def _frame(x: float, y: float) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.2)


def stability_figure(analysis: GridAnalysis) -> Figure:
    """Left: each metric's win count (point estimate, significant wins, and the 95 % interval
    over episode resamples). Right: wins with one grid value left out at a time."""
    from metaleep.report.plots import metric_label, new_figure

    metrics = analysis.metrics
    wins = analysis.wins.set_index("metric").loc[metrics]
    leave = analysis.leave_out
    fig = new_figure(11, max(3.0, 0.28 * len(leave) + 1.5))
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.4))
    y = np.arange(len(metrics))
    left.hlines(
        y,
        wins["boot_low"],
        wins["boot_high"],
        color="#888",
        linewidth=4,
        label="95 % over resamples",
    )
    left.plot(wins["wins"], y, "o", color="#1f4e79", label="wins (point r)")
    left.plot(wins["significant_wins"], y, "s", color="#c55a11", label="significant wins")
    left.set_yticks(y, [metric_label(m) for m in metrics])
    left.invert_yaxis()
    n_settings = int(wins["n_settings"].to_numpy().max()) if len(wins) else 0
    left.set_xlim(-0.5, n_settings + 0.5)
    left.set_xlabel(f"settings won (of {n_settings})")
    left.legend(fontsize=7, loc="lower right")
    left.set_title("Wins and their spread under episode resampling", fontsize=9)
    if len(leave):
        share = leave[metrics].to_numpy(dtype=np.float64) / np.maximum(
            leave["n_settings"].to_numpy(dtype=np.float64)[:, None], 1
        )
        right.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for i in range(share.shape[0]):
            for j in range(share.shape[1]):
                right.text(
                    j,
                    i,
                    str(int(leave[metrics[j]].iloc[i])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        right.set_xticks(range(len(metrics)), [metric_label(m) for m in metrics])
        labels = [
            f"{d}: {v}" + ("  (top changes)" if c else "")
            for d, v, c in zip(leave["dimension"], leave["left_out"], leave["changed"], strict=True)
        ]
        right.set_yticks(range(len(leave)), labels, fontsize=7)
        right.set_title("Wins with one grid value left out (share of the rest)", fontsize=9)
    else:
        right.set_axis_off()
    return fig


def _settings_frame(analysis: GridAnalysis) -> pd.DataFrame:
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


def _findings(analysis: GridAnalysis) -> list[str]:
    """Plain sentences about the grid: the ordering of LEEP, NCE and H-score, the top metric,
    constant metrics, ceilings."""
    items = []
    wins = analysis.wins.set_index("metric")
    n = int(wins["n_settings"].to_numpy().max()) if len(wins) else 0
    if analysis.top:
        items.append(
            f"Most wins: {', '.join(analysis.top)} ({wins['wins'].to_numpy().max()} of "
            f"{n} settings by point estimate)."
        )
    s = analysis.settings
    trio = [m for m in ("leep", "nce", "h_score") if m in analysis.metrics]
    if len(trio) >= 2:
        r = s[[f"r_{m}" for m in trio]].to_numpy(dtype=np.float64)
        defined = np.isfinite(r).all(axis=1)
        low = np.where(np.isfinite(r), r, -2.0)  # an undefined r ranks below any r
        ordered = np.all(np.diff(low, axis=1) < 0, axis=1)
        means = [
            f"{m} {np.mean(v[np.isfinite(v)]):.2f}" if np.isfinite(v).any() else f"{m} n/a"
            for m, v in zip(trio, r.T, strict=True)
        ]
        items.append(
            f"The paper's ordering {' > '.join(trio)} holds in {int(ordered.sum())} of {len(s)} "
            f"settings counting an undefined r as lowest, in {int((ordered & defined).sum())} "
            f"of the {int(defined.sum())} where all have an r; mean r: {', '.join(means)}."
        )
    for m in analysis.metrics:
        undefined = int((~np.isfinite(s[f"r_{m}"].to_numpy(dtype=np.float64))).sum())
        if undefined:
            items.append(f"{m}: no r in {undefined} of {len(s)} settings (constant metric).")
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


def write_grid_report(
    analysis: GridAnalysis,
    out_dir: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    target_reports: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    seconds: float | None = None,
) -> Path:
    """Write ``report.html`` and ``report.md`` (figures beside it) into ``out_dir``.

    ``config`` is the grid's :meth:`~metaleep.study.grid_config.GridConfig.to_dict` (its
    ``name`` titles the page; every key is listed under "Configuration").

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
    >>> "Wins" in path.read_text()
    True
    """
    from metaleep._io import atomic_write_bytes
    from metaleep.report.document import Document

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"metaleep grid: {config['name']}" if config is not None else "metaleep grid"
    doc = Document(title)
    n = len(analysis.settings)
    targets = sorted(analysis.settings["target"].astype(str).unique())
    sources = sorted(analysis.settings["backbone"].astype(str).unique())
    doc.paragraph(
        f"{n} transfer settings (source x dummy labels x transfer type x target) over "
        f"{len(targets)} targets and {len(sources)} sources ({', '.join(sources)}). In each "
        "setting, each metric's Pearson r with post-adaptation query accuracy over episodes "
        "(within each (ways, shots) cell and training seed, combined by Fisher z); the metric "
        "with the highest r wins the setting (the LEEP paper's count), significantly when the "
        "selection-aware two-sided bootstrap test against its strongest challenger "
        f"({analysis.n_boot} hierarchical resamples of seeds and episodes) survives "
        f"Benjamini-Hochberg at q <= {analysis.alpha} over the grid's distinct tests."
        + (f" Wall time of this run: {seconds:.0f} s." if seconds is not None else "")
    )
    regime_section(doc, analysis)
    doc.heading("Wins")
    doc.table(wins_table(analysis), "Best in k of N settings, per metric.")
    doc.bullets(_findings(analysis))
    doc.figure(
        "grid_heatmap.png",
        heatmap_figure(analysis),
        "Pearson r of each metric with accuracy per setting; the winner framed, * where "
        "its win is significant; blank: no r (constant metric).",
    )

    doc.heading("Stability")
    doc.paragraph(
        "In the spirit of Agostinelli et al. (2022): how often the winner changes when the "
        "episodes are resampled, and when one value of one grid dimension is left out."
    )
    doc.figure("grid_stability.png", stability_figure(analysis), "Stability of the wins.")
    if len(analysis.leave_out):
        doc.details("Wins with one grid value left out", analysis.leave_out)

    doc.heading("Source selection per target")
    doc.paragraph(
        "On each episode the sources are ranked by the metric and by post-adaptation accuracy: "
        "weighted Kendall tau between the two rankings, top-1 hit rate (the metric's pick "
        "adapts best; chance_hit_rate: a uniformly random pick) and regret (best accuracy "
        "minus the pick's), per (dummy labels, transfer type) shared by at least two sources; "
        "'native': each source with its own dummy labels. A metric that ties every source on "
        "an episode (H-score when n - 1 <= d) has no tau there: its mean tau is over the other "
        "episodes only (each group's note says how many)."
    )
    summary = selection_summary(analysis.selection, analysis.metrics)
    if len(summary):
        doc.table(summary.round(3), "Means over every (target, dummy, transfer) group.")
        sel = analysis.selection
        cols = [
            "target",
            "dummy",
            "adaptation",
            "metric",
            "n_episodes",
            "n_models",
            "tau",
            "hit_rate",
            "chance_hit_rate",
            "regret",
        ]
        doc.details("Every selection group", sel[[c for c in cols if c in sel]].round(3))
    else:
        doc.paragraph("No (dummy, transfer) group has two sources.")

    robustness_section(doc, analysis)
    cells_section(doc, analysis)
    added_section(doc, analysis)

    doc.heading("Settings")
    doc.details(f"All {n} settings: accuracy and r [95 % CI]", _settings_frame(analysis))
    if notes:
        doc.bullets(list(notes))

    if target_reports:
        doc.heading("Target studies")
        links = "".join(
            f'<li><a href="{path}">{name}</a></li>' for name, path in target_reports.items()
        )
        doc.html.append(f"<ul>{links}</ul>")
        doc.md.append("\n".join(f"- [{k}]({v})" for k, v in target_reports.items()) + "\n")
    if config is not None:
        doc.heading("Configuration")
        doc.details(
            "The grid (grid.json)",
            pd.DataFrame(
                {
                    "key": list(config),
                    "value": [str(v) for v in config.values()],
                }
            ),
        )

    atomic_write_bytes(out / "report.html", doc.render_html().encode("utf-8"))
    atomic_write_bytes(out / "report.md", doc.render_md().encode("utf-8"))
    for name, data in doc.figures.items():
        atomic_write_bytes(out / name, data)
    return out / "report.html"


# --------------------------------------------------------------------------------------------
# Sections of issue 22 (regimes, robustness, what a metric adds); each draws analysis data only
# --------------------------------------------------------------------------------------------


def regime_section(doc: Document, analysis: GridAnalysis) -> None:
    """The headline by regime: 1-shot and >=2-shot settings apart, in words and as tables."""
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


def robustness_section(doc: Document, analysis: GridAnalysis) -> None:
    """Wins under Pearson, Spearman and Kendall side by side, and where the winner changes."""
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


def added_section(doc: Document, analysis: GridAnalysis) -> None:
    """The R^2 each metric adds over the design's controls and over the free baselines."""
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


def cells_section(doc: Document, analysis: GridAnalysis) -> None:
    """Every setting's Pearson r per (ways, shots) cell: what the combined r is made of."""
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
