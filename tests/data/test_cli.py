"""`metaleep data sheet` and `metaleep data info` through typer's CliRunner."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.data.glyphs import load_bank

runner = CliRunner()


def test_sheet_command(tmp_path):
    out = tmp_path / "sheet.png"
    args = ["data", "sheet", "--out", str(out), "--classes", "3", "--instances", "2"]
    result = runner.invoke(app, [*args, "--instances-per-class", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    assert Image.open(out).size == (170 + 2 * 58 + 2, 3 * 58 + 2)


def test_sheet_alphabet(tmp_path):
    out = tmp_path / "greek.png"
    args = ["data", "sheet", "--out", str(out), "--alphabet", "GREEK", "--classes", "4"]
    result = runner.invoke(app, [*args, "--instances", "2", "--instances-per-class", "2"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[1] == 4 * 58 + 2
    bad = runner.invoke(app, ["data", "sheet", "--out", str(out), "--alphabet", "klingon"])
    assert bad.exit_code != 0
    assert "Greek" in bad.output and "klingon" in bad.output


def test_info_command(tmp_path, monkeypatch):
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path))
    bank = load_bank()
    result = runner.invoke(app, ["data", "info", "--instances-per-class", "1"])
    assert result.exit_code == 0, result.output
    assert bank.version in result.output
    assert f"classes   {bank.num_classes} in {len(set(bank.alphabet))} alphabets" in result.output
    assert "Cyrillic" in result.output and "not built yet" in result.output
    built = runner.invoke(app, ["data", "info", "--instances-per-class", "1", "--build"])
    assert built.exit_code == 0, built.output
    assert "built in" in built.output and str(tmp_path) in built.output
    files = list((tmp_path / "glyphs").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0]) as z:
        assert z["images"].shape == (bank.num_classes, 28, 28)


def test_help_lists_commands():
    result = runner.invoke(app, ["data", "--help"])
    assert result.exit_code == 0
    assert "sheet" in result.output and "info" in result.output
