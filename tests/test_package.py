"""The package itself: version, entry points, cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

import metaleep
from metaleep.cli import app

HEAVY = ("torch", "learn2learn", "matplotlib", "sklearn")


def _imported_after(statement: str) -> dict[str, bool]:
    check = f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    code = f"import sys, json; {statement}; {check}"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_metaleep_is_cheap():
    assert _imported_after("import metaleep") == dict.fromkeys(HEAVY, False)


def test_cli_start_up_does_not_import_torch():
    assert _imported_after("import metaleep.cli") == dict.fromkeys(HEAVY, False)


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"metaleep {metaleep.__version__}\n"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "train", "episodes", "data"):
        assert command in result.output


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "metaleep", "--version"], check=True, capture_output=True, text=True
    )
    assert out.stdout == f"metaleep {metaleep.__version__}\n"


def test_public_names_are_visible_to_dir_and_tab_completion():
    import importlib

    expected = {
        "metaleep": {"score", "run_study", "rank_backbones", "from_module", "load_data", "study"},
        "metaleep.study": {"score", "run_study", "rank_backbones", "StudyConfig", "Sampling"},
        "metaleep.backbones": {"from_module", "save_backbone", "default_backbone"},
        "metaleep.data": {"load_data", "load_image_folder", "ImageDataset", "load_glyphs"},
        "metaleep.adapt": {"InnerLoop"},
    }
    for name, names in expected.items():
        module = importlib.import_module(name)
        listed = set(dir(module))
        assert names <= listed, (name, names - listed)
        for attribute in names:  # and each listed name resolves
            assert getattr(module, attribute) is not None
    assert "Any" not in dir(metaleep) and "importlib" not in dir(metaleep)
    # the lazy names come without torch
    assert _imported_after("import metaleep; dir(metaleep); dir(metaleep.study)") == dict.fromkeys(
        HEAVY, False
    )
