"""Tests of metaleep.report.page: the report renders a StudyAnalysis, answer first."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaleep.analysis.correlations import compare_metrics, correlations
from metaleep.analysis.selection import source_selection
from metaleep.analysis.study import StudyAnalysis, analyse_study
from metaleep.report.page import (
    format_comparison_table,
    format_correlation_table,
    format_selection_table,
    headline,
    settings_table,
    verdict_sentences,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_study_table(
    n_episodes: int = 24,
    *,
    backbones: tuple[str, ...] = ("conv4", "resnet12"),
    ways: tuple[int, ...] = (5,),
    shots: tuple[int, ...] = (1, 5),
    seed: int = 0,
) -> pd.DataFrame:
    """A small study table shaped like the runner's, with LEEP tracking accuracy."""
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(n_episodes):
        w = ways[episode % len(ways)]
        s = shots[(episode // len(ways)) % len(shots)]
        hardness = rng.normal()
        for i, backbone in enumerate(backbones):
            quality = -hardness + 0.5 * i + 0.3 * rng.normal()
            accuracy = 1.0 / (1.0 + np.exp(-quality))
            leep = -np.log(w) / (1.0 + np.exp(quality + 0.3 * rng.normal()))
            rows.append(
                {
                    "suite": "omniglot",
                    "episode": episode,
                    "ways": w,
                    "shots": s,
                    "queries": 5,
                    "alphabets": "Latin;Greek",
                    "within_alphabet": bool(episode % 2),
                    "backbone": backbone,
                    "dummy": "head",
                    "adaptation": "maml",
                    "leep": leep,
                    "nce": leep + 0.3 * rng.normal(),
                    "h_score": float(w - 1) if s == 1 else 2.0 + quality + rng.normal(),
                    "logme": 0.1 * rng.normal(),
                    "centroid_loo": accuracy + 0.2 * rng.normal(),
                    "accuracy": round(accuracy * 5 * w) / (5 * w),
                    "loss": float(-np.log(accuracy)),
                    "seconds_metrics": 0.01,
                    "seconds_adaptation": 0.2,
                }
            )
    return pd.DataFrame(rows)


CONFIG = {
    "suite": "omniglot",
    "episodes": 24,
    "seed": 1234,
    "backbones": ["conv4", "r12"],
    "adaptation_settings": {"conv4": {"maml": {"steps": 1, "lr": 0.4, "first_order": False}}},
    "backbone_info": {
        "conv4": {"algorithm": "maml", "origin": "default", "head": 5, "source_data": "g",
                  "target_data": "g", "inner": {"steps": 1, "lr": 0.4}, "transform": "none",
                  "fingerprint": "abc"},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def analysis() -> StudyAnalysis:
    return analyse_study(make_study_table(ways=(5, 20)), config=CONFIG, n_boot=60, seed=0)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, analysis: StudyAnalysis) -> Path:
    out = tmp_path_factory.mktemp("report")
    path = write_report(analysis, out)
    assert path == out / "report.html"
    return out


def test_the_page_reads_answer_figure_accuracy_details_configuration(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    body = page[page.index("<body>") :]
    marks = [
        "Best metric per group:",  # the headline
        'class="verdict"',  # one sentence per group
        "<figure>",  # the r-with-CI figure
        "Accuracy of each adaptation",
        "<h2>Details</h2>",
        "How to read these numbers",
        "<h2>Configuration</h2>",
    ]
    positions = [body.index(m) for m in marks]
    assert positions == sorted(positions), dict(zip(marks, positions, strict=True))
    # the details are folded; every figure but the first is inside a fold
    details = body[body.index("<h2>Details</h2>") : body.index("<h2>Configuration</h2>")]
    assert details.count("<details>") >= 5 and details.count("<details>") == details.count(
        "</details>"
    )
    outside = re.sub(r"<details>.*?</details>", "", details, flags=re.S)
    assert "<table" not in outside and "<figure" not in outside


def test_verdict_says_best_metric_r_ci_and_baseline(analysis: StudyAnalysis) -> None:
    sentences = verdict_sentences(analysis)
    assert len(sentences) == 2  # conv4 and resnet12: different answers
    for sentence, rec in zip(sentences, analysis.verdict.to_dict("records"), strict=True):
        assert sentence.startswith(f"{rec['backbone']} / head / maml: **")
        assert f"r = {rec['r']:.2f} [{rec['ci_low']:.2f}, {rec['ci_high']:.2f}]" in sentence
        if rec["beats"]:
            word = "and beats centroid LOO"
        elif rec["difference"] > 0:
            word = "above centroid LOO"
        else:
            word = "but does not beat centroid LOO"
        assert word in sentence
        assert sentence.endswith(" but not significantly.") == (
            not rec["beats"] and rec["difference"] > 0
        )
    plain = verdict_sentences(analysis, markup=False)
    assert "**" not in "".join(plain) and len(plain) == 2
    text = headline(analysis, markup=False)
    n = analysis.baseline_tests.attrs["n_comparisons"]
    assert text.startswith("Best metric per group: ")
    assert f"familywise 5 % over {n} distinct comparisons" in text


def test_groups_with_one_answer_share_a_sentence() -> None:
    table = make_study_table(backbones=("conv4",), shots=(5,))
    doubled = pd.concat([table, table.assign(dummy="prototypes")])  # the same numbers twice
    a = analyse_study(doubled, metrics=["logme", "centroid_loo"], n_boot=30)
    (sentence,) = verdict_sentences(a, markup=False)
    assert sentence.startswith("conv4 / head, prototypes / maml: LogME is best, r = ")


def test_html_is_self_contained_small_and_figures_unscaled(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "href=" not in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for width, src in zip(
        re.findall(r'<img src="[^"]+" width="(\d+)"', page), sources, strict=True
    ):
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == PNG_MAGIC
        assert int(width) <= 1180  # shown at its own size: fonts keep their size
    assert len(page) < 400_000


def test_markdown_figures_and_files(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    linked = re.findall(r"!?\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert {"forest.png", "selection.png", "best_scatter.png"} <= set(linked)
    assert any(name.startswith("scatter_") for name in linked)
    for name in linked:
        assert (report_dir / name).read_bytes()[:8] == PNG_MAGIC
    assert "| seed | 1234 |" in md


def test_configuration_is_a_table_of_settings_not_json(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    config = md[md.index("## Configuration") :]
    assert "| backbones | conv4, r12 |" in config
    assert "| adaptations of conv4 | maml (steps=1, lr=0.4, second order) |" in config
    assert "| conv4 | maml | default | 5 | steps=1; lr=0.4 | in-domain | none | abc |" in config
    assert "{" not in config and "[" not in config.replace("[CI]", "")


def test_settings_table_by_hand() -> None:
    table = settings_table(
        {"suite": "s", "metrics": ["leep", "nce"], "episodes": None, "extra": {},
         "backbone_info": {"x": {}}, "temperature": 2.0, "device": "cpu"}
    )  # fmt: skip
    assert table.values.tolist() == [
        ["suite", "s"],
        ["metrics", "leep, nce"],
        ["episodes", "all"],
        ["temperature", "2.0"],
        ["device", "cpu"],
    ]


def test_the_report_computes_nothing(tmp_path: Path, analysis: StudyAnalysis) -> None:
    """Every statistic the page shows comes from the analysis: with the analysis functions
    broken, the report still renders, and what it says is the analysis's numbers."""
    import metaleep.analysis.baseline as baseline
    import metaleep.analysis.correlations as corr
    import metaleep.analysis.selection as selection

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report computed a statistic")

    with pytest.MonkeyPatch.context() as patch:
        for module, name in [(corr, "correlations"), (corr, "compare_metrics"),
                             (selection, "source_selection"), (baseline, "baseline_tests"),
                             (baseline, "verdict"), (pd.DataFrame, "corr")]:  # fmt: skip
            patch.setattr(module, name, broken)
        write_report(analysis, tmp_path)
    md = (tmp_path / "report.md").read_text()
    rec = analysis.verdict.iloc[0]
    assert f"r = {rec['r']:.2f} [{rec['ci_low']:.2f}, {rec['ci_high']:.2f}]" in md


def test_normalised_leep_and_one_shot_notes(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    assert "This report uses normalised LEEP" in md and "1 + LEEP / log N" in md
    assert "1-shot caveat" in md
    assert "H-score is constant on the 1-shot episodes of 4 of 4 groups" in md
    assert "Results per number of ways, per number of shots" in md
    assert "LEEP (normalised) vs NCE" in md
    # H-score is C - 1 in each 1-shot (ways, shots) cell: no r there, though its level follows
    # the ways (a pooled r would correlate the design); the 5-shot cells give the groups an r
    assert "n/a (constant metric)" in md


def test_raw_leep_single_backbone_no_selection(tmp_path: Path) -> None:
    table = make_study_table(backbones=("conv4",), shots=(1,))
    write_report(analyse_study(table, n_boot=30), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "This report uses raw LEEP" in md
    assert "Source-model selection" not in md
    assert "n/a (constant metric)" in md
    assert "Left out: H-score (constant in every group: no r)." in md


def test_sections_are_pluggable(tmp_path: Path, analysis: StudyAnalysis) -> None:
    from metaleep.report.page import SECTIONS

    def extra(doc, a):  # a new analysis's section, as another module would add it
        doc.heading("Seed variance")
        doc.paragraph(f"{len(a.verdict)} groups")

    write_report(analysis, tmp_path, sections=(*SECTIONS[:3], extra, *SECTIONS[3:]))
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Accuracy of each adaptation") < md.index("## Seed variance")
    assert md.index("## Seed variance") < md.index("## Details")


def test_format_correlation_table() -> None:
    table = make_study_table(backbones=("a", "b"), shots=(5,))
    corr = correlations(
        table, metrics=["leep", "nce"], by=("backbone",), methods=["pearson", "kendall"], n_boot=50
    )
    out = format_correlation_table(corr)
    assert list(out.columns) == ["backbone", "method", "LEEP", "NCE"]
    assert out[["backbone", "method"]].values.tolist() == [
        ["a", "Pearson r"],
        ["a", "Kendall τ-b"],
        ["b", "Pearson r"],
        ["b", "Kendall τ-b"],
    ]
    rec = corr[(corr.backbone == "a") & (corr.metric == "leep") & (corr.method == "pearson")]
    rec = rec.iloc[0]
    assert out.loc[0, "LEEP"] == f"{rec.r:.2f} [{rec.ci_low:.2f}, {rec.ci_high:.2f}]"
    only = format_correlation_table(corr, methods=["kendall"], digits=3)
    assert only.method.tolist() == ["Kendall τ-b", "Kendall τ-b"]
    assert re.fullmatch(r"-?\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\]", only.loc[0, "NCE"])


def test_format_correlation_table_marks_undefined_and_missing_ci() -> None:
    corr = pd.DataFrame(
        {
            "metric": ["leep", "h_score"],
            "method": "pearson",
            "r": [0.5, math.nan],
            "ci_low": [math.nan, math.nan],
            "ci_high": [math.nan, math.nan],
            "note": ["", "constant metric"],
        }
    )
    out = format_correlation_table(corr)
    assert out.iloc[0].tolist() == ["Pearson r", "0.50", "n/a (constant metric)"]


def test_format_comparison_and_selection_tables() -> None:
    table = make_study_table(backbones=("a", "b", "c"), shots=(5,))
    comp = compare_metrics(table, "leep", ["nce"], by=("backbone",), n_boot=50)
    out = format_comparison_table(comp)
    assert out.comparison.tolist() == ["LEEP vs NCE"] * 3
    assert out.columns.tolist() == [
        "backbone",
        "comparison",
        "r_a",
        "r_b",
        "difference [CI]",
        "p (one-sided)",
        "note",
    ]
    sel = source_selection(table, metrics=["leep"], by=("dummy",), n_boot=50)
    s = format_selection_table(sel)
    assert s.loc[0, "metric"] == "LEEP" and s.loc[0, "models"] == 3
    assert s.loc[0, "top-1 hit rate [CI]"].startswith(f"{sel.hit_rate[0]:.2f} [")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError, match=r"^`analysis` must be a StudyAnalysis .*; got 'DataFrame'\.$"
    ):
        write_report(make_study_table(4), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^`corr` must be a pandas DataFrame; got 'dict'\.$"):
        format_correlation_table({})  # type: ignore[arg-type]


def test_scatter_grids_are_files_beside_the_page(tmp_path: Path) -> None:
    """One compact grid per backbone (rows = its configurations) as files, linked from the
    Markdown and named on the page, not embedded; the cap on plotted configurations says what
    it left out."""
    from PIL import Image

    from metaleep.report.page import SECTIONS, scatter_section

    table = make_study_table(backbones=("a", "b", "c"))
    table = pd.concat([table, table.assign(adaptation="anil")])
    a = analyse_study(table, n_boot=20)
    write_report(a, tmp_path)
    scatters = sorted(p.name for p in tmp_path.glob("scatter_*.png"))
    assert scatters == ["scatter_00_a.png", "scatter_01_b.png", "scatter_02_c.png"]
    sizes = [Image.open(tmp_path / p).size for p in scatters]
    assert all(h == sizes[0][1] for _, h in sizes)  # two configurations each
    page = (tmp_path / "report.html").read_text()
    assert "scatter_00_a.png" in page and page.count("<img") == 3  # forest, selection, best
    capped = tmp_path / "capped"

    def capped_scatter(doc, an):
        scatter_section(doc, an, max_rows=3)

    sections = [capped_scatter if s is scatter_section else s for s in SECTIONS]
    write_report(a, capped, sections=sections)
    assert sorted(p.name for p in capped.glob("scatter_*.png")) == [
        "scatter_00_a.png",
        "scatter_01_b.png",
    ]
    assert (
        "Not plotted (max_scatter_groups): b: 1 configurations; c: 2 configurations."
        in (capped / "report.md").read_text()
    )


def test_scatter_grid_marks_constant_panels() -> None:
    from metaleep.report.plots import scatter_grid

    table = make_study_table(12, shots=(5,))
    table = pd.concat([table, table.assign(adaptation="anil", logme=0.5)])
    part = table[table["backbone"] == "conv4"]
    fig = scatter_grid(part, rows=["adaptation"], metrics=["leep", "logme"])
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4
    assert titles.count("LogME\nconstant") == 1  # anil
    assert all(t.startswith("LEEP\nr = ") for t in titles[::2])
    with pytest.raises(ValueError, match=re.escape("`rows` must be columns of `table`")):
        scatter_grid(part, rows=["nosuch"])


def test_each_kind_of_verdict_in_words() -> None:
    from metaleep.report.page import _sentence

    base = {"best": "leep", "r": 0.6, "ci_low": 0.5, "ci_high": 0.7, "baseline": "centroid_loo",
            "baseline_r": 0.3, "baseline_ci_low": 0.2, "baseline_ci_high": 0.4,
            "difference": 0.3, "difference_ci_low": 0.1, "difference_ci_high": 0.5,
            "beats": True, "note": ""}  # fmt: skip
    say = lambda **changes: _sentence({**base, **changes}, markup=False)  # noqa: E731
    assert say() == (
        "LEEP is best, r = 0.60 [0.50, 0.70], and beats centroid LOO (r = 0.30) by "
        "0.30 [0.10, 0.50]."
    )
    assert say(beats=False, difference_ci_low=-0.1) == (
        "LEEP is best, r = 0.60 [0.50, 0.70], above centroid LOO (r = 0.30 [0.20, 0.40]) but "
        "not significantly."
    )
    assert say(beats=False, baseline_r=0.65, difference=-0.05) == (
        "LEEP is best, r = 0.60 [0.50, 0.70], but does not beat centroid LOO "
        "(r = 0.65 [0.20, 0.40])."
    )
    assert say(beats=False, baseline_r=math.nan, note="centroid_loo: constant metric") == (
        "LEEP is best, r = 0.60 [0.50, 0.70]; centroid LOO has no r here (constant metric)."
    )
    assert say(baseline="") == "LEEP is best, r = 0.60 [0.50, 0.70]."
    assert say(best="", note="no metric has a correlation here (constant metric)") == (
        "no metric has a correlation here (constant metric)."
    )
