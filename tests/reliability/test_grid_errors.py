"""A grid's configuration errors, every one before the first study (issue 20, item 4): a broken
second target, an unknown source or a bad option is refused before any chunk is computed,
named by its key in the grid file (``targets.NAME.suite``, ``grid.sources``, ``grid.n_boot``).
(Before: the first target's study ran, 33-34 s, then the error; ``n_boot`` unnamed.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaleep.cli import app

pytestmark = pytest.mark.slow


def _grid(tmp_path: Path, sources: str, second: str, extra: str = "") -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(
        "[grid]\n"
        f"sources = [{sources}]\n"
        'transfers = ["prototype"]\nmetrics = ["leep"]\n'
        f"episodes = 4\nchunk_size = 2\nn_boot = 20\ntarget_reports = false\n{extra}\n"
        '[[targets]]\nname = "first"\nsuite = "glyphs-smoke"\n\n'
        f'[[targets]]\nname = "second"\n{second}\n'
    )
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing suite", "target 'second': `targets.second.suite` must be an existing manifest"),
        ("bad data", "target 'second': `targets.second.data` must"),
        ("unknown source", "`grid.sources` must name default backbones"),
        ("n_boot 0", "`grid.n_boot` must be an integer >= 1; got 0."),
        ("binary file", "`--config` must be a grid TOML file (UTF-8 text, valid TOML); got '"),
    ],
)
def test_a_broken_grid_is_refused_before_any_chunk(tmp_path, tiny_backbones, case, message):
    sources = f'"s={tiny_backbones["supervised"]}"'
    second = 'suite = "glyphs-smoke"'
    extra = ""
    if case == "missing suite":
        second = f'suite = "{tmp_path / "nosuch.csv"}"'
    elif case == "bad data":
        second = f'suite = "glyphs-smoke"\ndata = "imagefolder:{tmp_path / "no-folder"}"'
    elif case == "unknown source":
        sources += ', "mine=nosuch.py:build"'
    elif case == "n_boot 0":
        extra = "n_boot = 0\n"
    path = _grid(tmp_path, sources, second, extra)
    if case == "n_boot 0":
        path.write_text(path.read_text().replace("n_boot = 20\n", ""))
    if case == "binary file":
        path.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["grid", "--config", str(path), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert not list(out.glob("targets/**/chunk-*.csv"))
    assert not (out / "targets").exists()
