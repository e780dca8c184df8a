"""Every figure the study report and the grid report make is legible: no two labels overlap,
none is cut off, no text is smaller than 9 pt, and a figure on the page is at most page-wide
(shown at its own size, so 9 pt stays 9 pt at 1400 px).

The figures are caught as the reports draw them (``Document.figure`` and ``Document.attach``),
so a section added later is checked too. Each figure is drawn with the Agg renderer and every
text matplotlib actually draws is recorded with its window extent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaleep.report.document import Document
from metaleep.report.plots import MIN_FONT, PAGE_WIDTH

DEFAULT_METRICS = (
    "leep", "nce", "h_score", "logme", "nleep", "shrinkage_h_score", "gbc", "transrate", "sfda",
    "centroid_loo",
)  # fmt: skip


def drawn_texts(fig) -> list[tuple[object, object]]:
    """(Text, window extent) of every text matplotlib draws on ``fig``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    canvas = FigureCanvasAgg(fig)
    drawn: list[tuple[object, object]] = []
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self, self.get_window_extent(renderer)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Text, "draw", record)
        canvas.draw()
    return drawn


def problems(fig, *, on_page: bool) -> list[str]:
    """What makes ``fig`` hard to read, in words (empty when nothing)."""
    found = []
    texts = drawn_texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    for text, box in texts:
        label = repr(text.get_text())
        if text.get_fontsize() < MIN_FONT:
            found.append(f"{label} is {text.get_fontsize():g} pt")
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            found.append(f"{label} is cut off at the figure's edge")
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1 :]:
            overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if overlap_x > 1 and overlap_y > 1:
                found.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    if on_page and fig.get_figwidth() > PAGE_WIDTH + 1e-9:
        found.append(f"{fig.get_figwidth():.1f} in wide, more than the page")
    return found


@pytest.fixture
def caught() -> Iterator[list[tuple[str, object, bool]]]:
    """(name, figure, shown on the page) of every figure a report draws in the test."""
    figures: list[tuple[str, object, bool]] = []
    embed, attach = Document.figure, Document.attach

    def figure(self, name, fig, caption):
        figures.append((name, fig, True))
        embed(self, name, fig, caption)

    def attached(self, name, fig, caption):
        figures.append((name, fig, False))
        attach(self, name, fig, caption)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Document, "figure", figure)
        patch.setattr(Document, "attach", attached)
        yield figures


def test_the_checker_sees_overlaps_small_text_and_cut_labels():
    from metaleep.report.plots import new_figure

    fig = new_figure(4, 3)
    ax = fig.add_subplot()
    ax.set_xticks([0, 1], ["centroid LOO (baseline)", "shrinkage H-score"], fontsize=12)
    ax.text(0.5, 0.5, "tiny", fontsize=6)
    ax.text(1.3, 0.5, "far out to the right", fontsize=10, transform=ax.transAxes)
    found = problems(fig, on_page=True)
    assert "'centroid LOO (baseline)' overlaps 'shrinkage H-score'" in found
    assert "'tiny' is 6 pt" in found
    assert "'far out to the right' is cut off at the figure's edge" in found


def study_table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Every default metric, three backbones with their own dummies and adaptations (the
    default study's shape), one and five shots."""
    rng = np.random.default_rng(seed)
    plan = {
        "maml": (("head", "prototypes"), ("maml", "anil", "retrain_head", "prototype")),
        "protonet": (("prototypes",), ("retrain_head", "prototype")),
        "supervised": (("source", "prototypes"), ("retrain_head", "prototype")),
    }
    rows = []
    for episode in range(n):
        hard = rng.normal()
        for backbone, (dummies, adaptations) in plan.items():
            for adaptation in adaptations:
                accuracy = float(np.clip(0.8 - 0.1 * hard + 0.05 * rng.normal(), 0, 1))
                for dummy in dummies:
                    shots = 1 + 4 * (episode % 2)
                    row = {"suite": "s", "episode": episode, "ways": 5, "shots": shots,
                           "backbone": backbone, "dummy": dummy, "adaptation": adaptation,
                           "accuracy": accuracy, "support_loss": 0.1, "start_logit_std": 0.4,
                           "seconds_metrics": 0.01}  # fmt: skip
                    for k, metric in enumerate(DEFAULT_METRICS):
                        row[metric] = -hard * (k % 3) + rng.normal()
                    row["h_score"] = 4.0
                    rows.append(row)
    return pd.DataFrame(rows)


def test_every_study_report_figure_is_legible(caught, tmp_path: Path):
    from metaleep.analysis.study import analyse_study
    from metaleep.report.page import write_report

    write_report(analyse_study(study_table(), n_boot=20), tmp_path)
    names = [name for name, _, _ in caught]
    assert {"forest.png", "selection.png", "best_scatter.png"} <= set(names)
    assert sum(name.startswith("scatter_") for name in names) == 3
    found = {name: problems(fig, on_page=on_page) for name, fig, on_page in caught}
    assert found == {name: [] for name in names}


def grid_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for target in ("glyphs-5w1s", "glyphs-5w5s", "digits-5w5s"):
        for source, dummy in (("maml", "head"), ("protonet", "prototypes"),
                              ("supervised", "source"), ("supervised", "prototypes")):  # fmt: skip
            for transfer in ("retrain_head", "prototype", "finetune"):
                for episode in range(12):
                    acc = rng.uniform(0.4, 1.0)
                    row = {"target": target, "backbone": source, "dummy": dummy,
                           "adaptation": transfer, "episode": episode, "ways": 5,
                           "accuracy": acc}  # fmt: skip
                    for k, metric in enumerate(DEFAULT_METRICS):
                        row[metric] = acc * (k % 4) + rng.normal()
                    row["h_score"] = 4.0
                    rows.append(row)
    return pd.DataFrame(rows)


def test_every_grid_report_figure_is_legible(caught, tmp_path: Path):
    from metaleep.analysis.grid import analyse_grid
    from metaleep.report.grid_page import write_grid_report

    analysis = analyse_grid(grid_table(), metrics=list(DEFAULT_METRICS), n_boot=20)
    write_grid_report(analysis, tmp_path, config={"name": "test grid", "seed": 0})
    names = [name for name, _, _ in caught]
    assert names == ["grid_wins.png", "grid_heatmap.png", "grid_leave_out.png"]
    found = {name: problems(fig, on_page=on_page) for name, fig, on_page in caught}
    assert found == {name: [] for name in names}
    page = (tmp_path / "report.html").read_text()
    body = page[page.index("<body>") :]
    assert body.index('class="lead"') < body.index("<figure>")  # the headline, then the wins


def test_figures_for_notebooks_are_legible():
    """The plot functions the notebooks call."""
    from metaleep.analysis.correlations import correlations
    from metaleep.analysis.selection import source_selection
    from metaleep.report.plots import correlation_bars, scatter_metrics, selection_plot

    table = study_table(30)
    part = table[(table.backbone == "supervised") & (table.dummy == "source")]
    part = part[part.adaptation == "retrain_head"]
    corr = correlations(table, metrics=["leep", "nce", "logme"], n_boot=20)
    shared = table[(table.dummy == "prototypes") & table.adaptation.isin(["prototype"])]
    sel = source_selection(shared, metrics=["leep", "nce"], n_boot=20)
    figures = {
        "scatter_metrics": scatter_metrics(part, metrics=["leep", "nce", "logme", "nleep"]),
        "correlation_bars": correlation_bars(corr),
        "selection_plot": selection_plot(sel),
    }
    found = {name: problems(fig, on_page=False) for name, fig in figures.items()}
    assert found == {name: [] for name in figures}
