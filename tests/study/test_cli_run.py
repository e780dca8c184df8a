"""`metaleep run` end to end on a tiny configuration (real glyph data, tiny trained backbones)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from metaleep.cli import app

pytestmark = pytest.mark.slow


def test_run_end_to_end_then_resume(tiny_backbones, tmp_path):
    out = tmp_path / "study"
    args = [
        "run",
        "--suite",
        "glyphs-smoke",
        "--episodes",
        "12",
        "--chunk-size",
        "5",
        "--backbones",
        f"{tiny_backbones['maml']},{tiny_backbones['supervised']}",
        "--adaptations",
        "maml,retrain_head,prototype",
        "--n-boot",
        "50",
        "--out",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # a person reads the answer per group and where the tables are, not the tables
    lines = result.output.splitlines()
    assert any(line.startswith("Best metric per group: ") for line in lines)
    assert sum(line.startswith("  maml / ") for line in lines) >= 1
    assert sum(line.startswith("  supervised / ") for line in lines) >= 1
    assert "Pearson r [95 % bootstrap CI]" not in result.output
    assert "--table prints every correlation table here." in result.output
    assert f"report: {out / 'report.html'}" in result.output
    assert max(len(line) for line in lines if line.startswith("  ")) <= 100
    table = pd.read_csv(out / "results.csv")
    assert table["episode"].nunique() == 12
    assert set(table["backbone"]) == {"maml", "supervised"}
    assert sorted(p.name for p in (out / "results").iterdir()) == [
        "chunk-00000.csv",
        "chunk-00001.csv",
        "chunk-00002.csv",
    ]
    config = json.loads((out / "study.json").read_text())["config"]
    assert config["suite"] == "glyphs-smoke" and config["suite_recipe"]["name"] == "glyphs-smoke"
    assert "episodes" not in config  # more episodes extend this study (issue 21)
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 1

    # a rerun recomputes only the missing chunk and assembles the same table
    (out / "results" / "chunk-00001.csv").unlink()
    again = CliRunner().invoke(app, [*args, "--table"])
    assert again.exit_code == 0, again.output
    for method in ("Pearson r", "Spearman ρ", "Kendall τ-b", "weighted τ"):
        assert f"{method} [95 % bootstrap CI]:" in again.output
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "results.csv").drop(columns=["seconds_metrics", "seconds_adapt"]),
        table.drop(columns=["seconds_metrics", "seconds_adapt"]),
    )


def test_run_reports_bad_options_clearly(tmp_path):
    result = CliRunner().invoke(app, ["run", "--dummies", "logits", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "`--dummies` must name from head, source, prototypes; got logits." in result.output
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--backbones",
            "nosuch",
            "--episodes",
            "2",
            "--suite",
            "glyphs-smoke",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "`--backbones` must name default backbones" in result.output
