"""Tests of metaleep.report.page: the HTML/Markdown report and the compact tables."""

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
from metaleep.report.page import (
    accuracy_table,
    format_comparison_table,
    format_correlation_table,
    format_selection_table,
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
                    "accuracy": round(accuracy * 5 * w) / (5 * w),
                    "loss": float(-np.log(accuracy)),
                    "seconds_metrics": 0.01,
                    "seconds_adaptation": 0.2,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    table = make_study_table(ways=(5, 20))
    config = {"suite": "omniglot", "episodes": 24, "seed": 1234, "backbones": ["conv4", "r12"]}
    path = write_report(table, out, config=config, n_boot=60, seed=0)
    assert path == out / "report.html"
    return out


def test_html_is_self_contained_with_config_tables_and_images(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    # the configuration, rendered as a table
    for text in (
        "<td>suite</td>",
        "<td>omniglot</td>",
        "<td>1234</td>",
        '<td>["conv4", "r12"]</td>',
    ):
        assert text in page, text
    # the main table and metric names
    for text in (
        "Pearson r",
        "Spearman",
        "Kendall",
        "NCE",
        "H-score",
        "LogME",
        "LEEP (normalised)",
        "LEEP against the other metrics",
        "Source-model selection",
    ):
        assert text in page, text
    assert re.search(r"\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]", page)
    # every image is embedded, and decodes to a PNG
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for src in sources:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert "href=" not in page  # nothing external


def test_markdown_png_and_csv_files_exist(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert "correlation_bars.png" in linked and "selection.png" in linked
    assert any(name.startswith("scatter_") for name in linked)
    for name in linked:
        assert (report_dir / name).read_bytes()[:8] == PNG_MAGIC
    assert "| setting | value |" in md and "| seed | 1234 |" in md
    corr = pd.read_csv(report_dir / "correlations.csv")
    assert {"metric", "method", "r", "ci_low", "ci_high", "p_value", "note"} <= set(corr.columns)
    assert (report_dir / "comparisons.csv").exists() and (report_dir / "selection.csv").exists()


def test_report_explains_normalised_leep_and_one_shot_degeneracy(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    assert "This report uses normalised LEEP" in md and "1 + LEEP / log N" in md
    assert "1-shot caveat" in md
    assert "H-score is constant on the 1-shot episodes of 4 of 4 groups" in md
    # H-score is C - 1 in each 1-shot (ways, shots) cell: no r there, though its level follows
    # the ways (a pooled r would correlate the design); the 5-shot cells give the groups an r
    assert "n/a (constant metric)" in md
    assert "Results per group" in md and "by number of shots" in md and "by number of ways" in md


def test_raw_leep_single_backbone_no_selection(tmp_path: Path) -> None:
    table = make_study_table(backbones=("conv4",), shots=(1,))
    write_report(table, tmp_path, config={"seed": 0}, n_boot=30)
    md = (tmp_path / "report.md").read_text()
    assert "This report uses raw LEEP" in md
    assert "Source-model selection" not in md and not (tmp_path / "selection.csv").exists()
    # H-score is constant on every (1-shot) episode: reported as undefined, with the reason.
    assert "n/a (constant metric)" in md
    assert "Results per group" in md  # within_alphabet varies


def test_precomputed_tables_are_used(tmp_path: Path) -> None:
    table = make_study_table(backbones=("conv4",), shots=(5,))
    corr = correlations(table, metrics=["leep", "logme"], methods=["pearson"], n_boot=20)
    corr.loc[corr.metric == "leep", "r"] = 0.123456  # a marker value
    write_report(table, tmp_path, config={}, correlations=corr, n_boot=20)
    md = (tmp_path / "report.md").read_text()
    assert "0.12 [" in md
    assert "Rank correlations" not in md  # only the given methods
    assert "LEEP vs LogME" in md


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


def test_bad_arguments() -> None:
    table = make_study_table(4)
    with pytest.raises(TypeError, match=r"^`config` must be a mapping; got 'list'\.$"):
        write_report(table, "/nonexistent", config=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^`corr` must be a pandas DataFrame; got 'dict'\.$"):
        format_correlation_table({})  # type: ignore[arg-type]


def test_precomputed_normalised_correlations_and_raw_caution(tmp_path: Path) -> None:
    table = make_study_table(backbones=("conv4",), ways=(5, 20), shots=(5,))
    corr = correlations(table, metrics=["leep", "nce"], n_boot=20, leep="normalised")
    write_report(table, tmp_path / "norm", config={}, correlations=corr, leep="raw", n_boot=20)
    md = (tmp_path / "norm" / "report.md").read_text()
    assert "This report uses normalised LEEP" in md  # the given table decides
    assert "LEEP (normalised) vs NCE" in md
    write_report(table, tmp_path / "raw", config={}, metrics=["leep"], leep="raw", n_boot=20)
    md = (tmp_path / "raw" / "report.md").read_text()
    assert "Caution: this report uses raw LEEP" in md


# --------------------------------------------------------------------------------------------
# Accuracy table, convergence, flat heads, compact scatter grids
# --------------------------------------------------------------------------------------------


def make_adapted_table(n_episodes: int = 30, seed: int = 3) -> pd.DataFrame:
    """Three backbones, two dummy modes, several adaptations (the runner's columns): anil
    converged, maml stuck near log 5 on every third episode, h_score constant."""
    rng = np.random.default_rng(seed)
    plan = {
        "maml": (("head", "prototypes"), ("anil", "maml", "retrain_head", "prototype")),
        "protonet": (("prototypes",), ("retrain_head", "prototype")),
        "supervised": (("source", "prototypes"), ("retrain_head", "prototype")),
    }
    rows = []
    for episode in range(n_episodes):
        hardness = rng.normal()
        for backbone, (dummies, adaptations) in plan.items():
            for adaptation in adaptations:
                accuracy = round(float(np.clip(0.9 - 0.05 * hardness, 0, 1)) * 75) / 75
                stuck = adaptation == "maml" and episode % 3 == 0
                support_loss = 1.55 if stuck else 0.05 * (1 + rng.random())
                start = {"anil": 0.45, "maml": 0.4, "retrain_head": 0.0}.get(adaptation, np.nan)
                for dummy in dummies:
                    leep = -1.0 - 0.1 * hardness + 0.05 * rng.normal()
                    rows.append(
                        {
                            "suite": "toy", "episode": episode, "ways": 5, "shots": 5,
                            "backbone": backbone, "dummy": dummy, "adaptation": adaptation,
                            "leep": leep, "nce": leep + 0.1 * rng.normal(), "h_score": 4.0,
                            "logme": rng.normal(), "accuracy": accuracy if episode else 1.0,
                            "loss": 0.3, "support_loss": support_loss, "start_logit_std": start,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_accuracy_table_by_hand() -> None:
    table = pd.DataFrame(
        {
            "episode": [0, 1, 2, 0, 1, 2, 0, 1, 2],
            "backbone": "b",
            "dummy": "head",
            "adaptation": ["anil"] * 3 + ["maml"] * 3 + ["prototype"] * 3,
            "ways": 5,
            "accuracy": [1.0, 0.6, 0.8, 0.2, 0.4, 0.6, 1.0, 1.0, 0.7],
            "support_loss": [0.1, 0.2, 0.3, 1.0, 0.5, 0.9, 2.0, 2.0, 2.0],
            "start_logit_std": [0.5, 0.5, 0.5, 0.4, 0.4, 0.4, np.nan, np.nan, np.nan],
        }
    )
    # a second dummy mode repeats the rows: counted once
    doubled = pd.concat([table, table.assign(dummy="prototypes")])
    settings = {"b": {"maml": {"steps": 1, "lr": 0.4, "first_order": False,
                               "batch_norm": "transductive", "from_training": True}}}  # fmt: skip
    out = accuracy_table(doubled, settings=settings).set_index("adaptation")
    assert out["episodes"].tolist() == [3, 3, 3]
    np.testing.assert_allclose(out["mean"], [0.8, 0.4, 0.9])
    np.testing.assert_allclose(out["std"], [0.2, 0.2, np.std([1.0, 1.0, 0.7], ddof=1)])
    np.testing.assert_allclose(out["share_100"], [1 / 3, 0.0, 2 / 3])
    np.testing.assert_allclose(out["support_loss"], [0.2, 0.8, 2.0])
    # above 0.5 log 5 = 0.805: two maml episodes; prototypes do not iterate: no verdict
    assert out.loc["anil", "unconverged"] == 0.0
    assert out.loc["maml", "unconverged"] == pytest.approx(2 / 3)
    assert math.isnan(out.loc["prototype", "unconverged"])
    assert out.loc["maml", "settings"] == "steps=1, lr=0.4, second order (as meta-trained)"
    assert out.loc["anil", "settings"] == ""
    with pytest.raises(ValueError, match=re.escape("got ['adaptation'] missing")):
        accuracy_table(table.drop(columns="adaptation"))


def test_report_accuracy_section_convergence_and_flat_heads(tmp_path: Path) -> None:
    table = make_adapted_table()
    config = {"adaptation_settings": {"maml": {"anil": {"steps": 100, "lr": "auto",
              "weight_decay": 0.0, "accelerated": True, "from_training": False}}}}  # fmt: skip
    write_report(table, tmp_path, config=config, n_boot=30, seed=0)
    md = (tmp_path / "report.md").read_text()
    assert "## Accuracy of each adaptation" in md
    assert "| maml | anil | 30 |" in md and "steps=100, lr=auto, accelerated" in md
    assert "maml / maml did not converge on 33 % of the episodes (mean support loss" in md
    assert "maml / anil did not converge" not in md
    assert "maml's meta-learned head starts from logits of spread 0.45" in md
    assert "nearly flat (a 5-way head that gives the true class 0.9 has 1.43)" in md
    # constant metrics: said once, and no panel of them
    assert md.count("Left out of the plots: H-score") == 1
    assert "H-score: constant" not in md


def test_scatter_grids_keep_the_report_short(tmp_path: Path) -> None:
    """One compact grid per backbone, rows = its configurations: 3 backbones, 14
    configurations, 4 metrics plotted (H-score constant). Before: one figure of 6 panels per
    configuration, about 620 px each (8,700 px here; 29,000 px in a 3-backbone glyph study)."""
    from PIL import Image

    table = make_adapted_table()
    write_report(table, tmp_path, config={}, n_boot=30, seed=0)
    scatters = sorted(tmp_path.glob("scatter_*.png"))
    assert [p.name for p in scatters] == [
        "scatter_00_maml.png",
        "scatter_01_protonet.png",
        "scatter_02_supervised.png",
    ]
    sizes = [Image.open(p).size for p in scatters]
    assert [round(h / 175) for _, h in sizes] == [8, 2, 4]  # 175 px per configuration
    assert sum(h for _, h in sizes) < 2600 and max(w for w, _ in sizes) <= 1000
    # the cap on plotted configurations still applies, and says what it left out
    out = tmp_path / "capped"
    write_report(table, out, config={}, n_boot=30, seed=0, max_scatter_groups=9)
    md = (out / "report.md").read_text()
    assert sorted(p.name for p in out.glob("scatter_*.png")) == [
        "scatter_00_maml.png",
        "scatter_01_protonet.png",
    ]
    assert "Not plotted (max_scatter_groups): protonet: 1 configurations; supervised: 4" in md


def test_scatter_grid_marks_constant_panels() -> None:
    from metaleep.report.plots import scatter_grid

    table = make_adapted_table(12)
    table.loc[table["adaptation"] == "anil", "logme"] = 0.5
    part = table[table["backbone"] == "maml"]
    fig = scatter_grid(part, rows=["dummy", "adaptation"], metrics=["leep", "logme"])
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 16
    assert titles.count("LogME: constant") == 2  # anil under both dummy modes
    assert all(t.startswith("LEEP: r = ") for t in titles[::2])
    with pytest.raises(ValueError, match=re.escape("`rows` must be columns of `table`")):
        scatter_grid(part, rows=["nosuch"])
