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
    pd.DataFrame(
        {
            "metric": ["leep", "nce", "h_score"],
            "wins": [2, 1, 0],
            "significant_wins": [1, 0, 0],
            "n_settings": 3,
            "boot_mean": [1.8, 1.2, 0.0],
            "boot_low": [1.0, 0.0, 0.0],
            "boot_high": [3.0, 2.0, 0.0],
            "top_share": [0.7, 0.3, 0.0],
        }
    ).to_csv(folder / "wins.csv", index=False)
    pd.DataFrame(
        {
            "target": ["a", "a", "b"],
            "r_leep": [0.5, 0.4, 0.1],
            "r_nce": [0.3, 0.5, 0.0],
            "r_h_score": [0.1, math.nan, -0.2],
            "winner": ["leep", "nce", "leep"],
        }
    ).to_csv(folder / "settings.csv", index=False)
    info = {
        "config": {"targets": [{"name": "a", "suite": "s"}, {"name": "b", "suite": "t"}]},
        "command": "metaleep grid --quick",
        "seconds": 150.0,
    }
    (folder / "grid.json").write_text(json.dumps(info))
    return folder


def test_blocks_are_rewritten_from_the_runs(tool, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    run = _default_run(tmp_path / "default")
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
    assert "supervised / source / retrain_head, 600 episodes" in text
    assert "| LEEP | 2 of 3 | 1 of 3 | 1.8 [1, 3] | 70 % |" in text
    assert "| H-score | 0 of 3 | 0 of 3 | 0.0 [0, 0] | 0 % |" in text
    assert "| target | settings | LEEP | NCE | H-score |\n|---|---|---|---|---|\n" in text
    assert "| a | 2 | 1 | 1 | 0 |\n| b | 1 | 1 | 0 | 0 |" in text
    # (0.5 > 0.3 > 0.1) holds; (0.4 < 0.5) does not; (0.1 > 0.0 > -0.2) holds
    assert "holds in 2 of 3 settings counting a metric without r" in text
    assert "and in 2 of the 2 settings where all three have an r" in text
    assert "mean r over settings: LEEP 0.33, NCE 0.27, H-score -0.05." in text
    assert "3 settings over 2 targets (a, b); wall time 2.5 min" in text
    assert "(`metaleep grid --quick`)" in text
    assert "at commit abc123.*" in text
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
