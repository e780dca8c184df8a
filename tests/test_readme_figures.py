"""tools/readme_figures.py on small fabricated run folders."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "readme_figures.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("readme_figures", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_figures"] = module
    spec.loader.exec_module(module)
    return module


README = """# x

intro

<!-- figures:default-run -->
| old | table |
<!-- /figures:default-run -->

middle

<!-- figures:grid -->
*Not measured yet.*
<!-- /figures:grid -->

end
"""


def _default_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = []
    for backbone, dummy, adaptation in (
        ("supervised", "source", "retrain_head"),
        ("maml", "head", "maml"),
    ):
        for metric, r, note in (
            ("leep", 0.553, ""),
            ("nce", 0.371, ""),
            ("h_score", math.nan, "constant metric"),
        ):
            for method in ("pearson", "spearman"):
                rows.append(
                    {
                        "backbone": backbone,
                        "dummy": dummy,
                        "adaptation": adaptation,
                        "metric": metric,
                        "method": method,
                        "n": 600,
                        "n_episodes": 600,
                        "r": r if backbone == "supervised" and method == "pearson" else 0.0,
                        "ci_low": r - 0.07,
                        "ci_high": r + 0.06,
                        "p_value": 0.0,
                        "note": note,
                    }
                )
    pd.DataFrame(rows).to_csv(folder / "correlations.csv", index=False)
    return folder


def _grid(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = []
    for regime, wins, sig, undefined in (
        ("1-shot", [2, 1, 0], [1, 0, 0], [0, 0, 3]),
        (">=2-shot", [1, 0, 2], [0, 0, 1], [0, 0, 0]),
    ):
        for i, metric in enumerate(["leep", "nce", "centroid_loo"]):
            rows.append(
                {
                    "regime": regime,
                    "metric": metric,
                    "wins": wins[i],
                    "significant_wins": sig[i],
                    "n_settings": 3,
                    "distinct_wins": wins[i] - (i == 0 and regime == "1-shot"),
                    "distinct_significant_wins": sig[i],
                    "undefined": undefined[i],
                    "mean_r": 0.3,
                    "median_seed_share": [0.4, 0.1, 0.2][i],
                    "wins_spearman": wins[i],
                    "wins_kendall": wins[::-1][i],
                    "boot_mean": wins[i] - 0.2,
                    "boot_low": max(wins[i] - 1, 0),
                    "boot_high": wins[i] + 1,
                    "top_share": [0.7, 0.3, 0.0][i],
                }
            )
    pd.DataFrame(rows).to_csv(folder / "wins_by_regime.csv", index=False)
    pd.DataFrame(
        {
            "regime": ["1-shot", ">=2-shot", "all"],
            "n_settings": [3, 3, 6],
            "n_decided": [3, 3, 6],
            "n_distinct_accuracy": [2, 3, 5],
            "n_targets": [1, 2, 2],
            "n_tests": [3, 3, 6],
            "n_distinct_tests": [3, 3, 6],
            "n_significant": [1, 1, 2],
            "n_seeds": 3,
            "mean_competing": [2.0, 3.0, 2.5],
            "spearman_changes": [0, 1, 1],
            "kendall_changes": [2, 0, 2],
        }
    ).to_csv(folder / "counts.csv", index=False)
    pd.DataFrame(
        {
            "target": ["a", "b"],
            "regime": ["1-shot", ">=2-shot"],
            "metric": "leep",
            "added_over_controls": [0.05, 0.02],
            "added_over_baselines": [0.01, -0.001],
        }
    ).to_csv(folder / "added.csv", index=False)
    pd.DataFrame(
        {
            "target": "a",
            "dummy": ["native", "native", "native"],
            "metric": ["leep", "nce", "static_prior"],
            "hit_rate": [0.6, 0.4, 0.667],
            "tau": [0.2, 0.1, 0.3],
            "constant_choice": [True, False, True],
            "top_choice_share": [1.0, 0.6, 1.0],
        }
    ).to_csv(folder / "selection.csv", index=False)
    (folder / "analysis.json").write_text(
        json.dumps({"alpha": 0.05, "n_boot": 10000, "seeds": [0, 1, 2]})
    )
    info = {
        "config": {"targets": [{"name": "a", "suite": "s"}, {"name": "b", "suite": "t"}]},
        "command": "metaleep grid --quick",
        "seconds": 150.0,
        "backbone_fingerprints": {"seed0": {"maml": "aa11"}, "seed1": {"maml": "bb22"}},
    }
    (folder / "grid.json").write_text(json.dumps(info))
    return folder


def test_blocks_are_rewritten_from_the_runs(tool, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    run = _default_run(tmp_path / "default")
    (run / "study.json").write_text(
        json.dumps({"config": {"backbone_fingerprints": {"supervised": "4253", "maml": "30bb"}}})
    )
    grid = _grid(tmp_path / "grid")
    args = ["--readme", str(readme), "--default-run", str(run), "--grid", str(grid)]
    assert tool.main([*args, "--commit", "abc123", "--check"]) == 1  # stale
    assert tool.main([*args, "--commit", "abc123"]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nintro\n\n<!-- figures:default-run -->\n")
    assert text.endswith("<!-- /figures:grid -->\n\nend\n")
    assert (
        "| metric | Pearson r [95 % CI] |\n|---|---|\n| LEEP | 0.55 [0.48, 0.61] |\n"
        "| NCE | 0.37 [0.30, 0.43] |\n| H-score | n/a (constant) |\n" in text
    )
    assert "supervised / source / retrain_head, 600 episodes; backbones maml `30bb`, " in text
    # the grid: 1-shot and >=2-shot apart, in words, over distinct comparisons
    assert "**At 1 shot.** 3 settings (2 distinct accuracy vectors on 1 target sample, 3 " in text
    assert "Highest r: LEEP in 2 of 3 (1 distinct; significant in 1, 1 distinct); NCE in 1" in text
    assert "Significant wins: 1 (selection-aware two-sided test of each winner against" in text
    assert "No r in any setting (constant): centroid LOO (baseline)." in text
    assert "Under Spearman the winner changes in 0 of 3 settings, under Kendall in 2." in text
    assert "| LEEP | 2 of 3 (1 distinct) | 1 of 3 | 0 | 1.8 [1, 3] | 70 % | 2 / 0 |" in text
    assert "**At 2 or more shots.** 3 settings" in text
    assert "Highest r: centroid LOO (baseline) in 2 of 3 (2 distinct; significant in 1" in text
    assert "mean over targets: LEEP +0.050 / +0.010" in text
    assert "LEEP hit rate 0.60 (weighted tau 0.20); static prior (baseline) hit rate 0.67" in text
    assert "A static prior in disguise: LEEP picks its usual source on 100.0 % of episodes" in text
    assert "mean over targets: LEEP +0.050 / +0.010." in text  # centroid LOO: no r at 1 shot
    assert "6 settings over 2 targets (a, b), training seeds 0, 1, 2, B = 10,000" in text
    assert "wall time 2.5 min; backbones seed0: maml `aa11`; seed1: maml `bb22`" in text
    assert "(`metaleep grid --quick`)" in text
    assert "at commit abc123.*" in text
    assert "H-score -0.64" not in text and "LEEP > NCE > H-score" not in text
    # up to date now, whatever commit the check runs at; a second run changes nothing
    assert tool.main([*args, "--commit", "def456", "--check"]) == 0
    assert tool.main([*args, "--commit", "abc123"]) == 0
    assert readme.read_text() == text


def test_a_missing_run_leaves_its_block(tool, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    run = _default_run(tmp_path / "default")
    assert (
        tool.main(
            [
                "--readme",
                str(readme),
                "--default-run",
                str(run),
                "--grid",
                str(tmp_path / "none"),
                "--commit",
                "x",
            ]
        )
        == 0
    )
    text = readme.read_text()
    assert "*Not measured yet.*" in text and "| old | table |" not in text
    assert "grid block left as it is" in capsys.readouterr().err


def test_missing_markers_and_files_are_errors(tool, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    run = _default_run(tmp_path / "default")
    assert (
        tool.main(
            ["--readme", str(readme), "--default-run", str(run), "--grid", str(tmp_path / "none")]
        )
        == 2
    )
    assert "must hold one <!-- figures:default-run -->" in capsys.readouterr().err
    readme.write_text(README)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        tool.main(
            ["--readme", str(readme), "--default-run", str(empty), "--grid", str(tmp_path / "none")]
        )
        == 2
    )
    assert "`correlations.csv` must exist in" in capsys.readouterr().err
    assert readme.read_text() == README


def test_the_repository_readme_has_both_blocks(tool):
    text = (TOOL.parents[1] / "README.md").read_text()
    for name in ("default-run", "grid"):
        assert text.count(f"<!-- figures:{name} -->") == 1
        assert text.count(f"<!-- /figures:{name} -->") == 1
