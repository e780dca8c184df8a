"""No code run from a file (issue 20, item 3): an export runs the factory it records only when
the user says so, and a weights file holding a pickled object is refused in one line.

Each attack counts what ran: a factory or gadget that would run writes a marker file, and the
test asserts the marker is absent after every refusal.
"""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaleep.backbones.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from metaleep.backbones.export import load_wrapped
from metaleep.cli import app

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn

    def classifier():
        torch.manual_seed(3)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )
    """
)

EVIL = textwrap.dedent(
    """
    from pathlib import Path
    Path({marker!r}).write_text("imported")

    def classifier():
        Path({marker!r}).write_text("called")
        raise SystemExit(0)
    """
)


class _Gadget:
    """Unpickled, it would run ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A genuine ``metaleep export`` file of a small model."""
    models = tmp_path / "mymodels.py"
    models.write_text(MODEL)
    path = tmp_path / "mine.pt"
    result = CliRunner().invoke(app, ["export", f"{models}:classifier", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _rewrite_factory(export: Path, factory: str, out: Path) -> Path:
    """The export with its recorded factory replaced, checksum recomputed (what an attacker
    who edits the file does)."""
    _, payload = read_checkpoint(export)
    payload["factory"] = factory
    return write_checkpoint(out, payload, kind="wrapped")


def _score(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["score", "--suite", "glyphs-smoke", "--metrics", "nce", "--no-progress", *args]
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("kind", ["file", "interact", "exit"])
def test_an_export_with_a_rewritten_factory_runs_nothing_without_the_opt_in(export, tmp_path, kind):
    marker = tmp_path / "ran"
    if kind == "file":
        evil = tmp_path / "elsewhere" / "evil.py"
        evil.parent.mkdir()
        evil.write_text(EVIL.format(marker=str(marker)))
        factory = f"{evil}:classifier"
    else:
        factory = {"interact": "code:interact", "exit": "sys:exit"}[kind]
    forged = _rewrite_factory(export, factory, tmp_path / "forged.pt")
    code, output = _score("--backbones", str(forged), "--out", str(tmp_path / "out"))
    assert code == 2, output
    assert f"records, '{factory}': code that loading would import and run" in output
    assert "--trust-factory" in output and f"--backbones {factory}@{forged}" in output
    assert not marker.exists()
    assert not (tmp_path / "out" / "scores.csv").exists()
    with pytest.raises(CheckpointError, match="an export is a file anyone can edit"):
        load_wrapped(forged)
    assert not marker.exists()


def test_a_named_factory_runs_instead_of_the_recorded_one(export, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL.format(marker=str(marker)))
    forged = _rewrite_factory(export, f"{evil}:classifier", tmp_path / "forged.pt")
    models = export.parent / "mymodels.py"
    code, output = _score(
        "--backbones", f"{models}:classifier@{forged}", "--out", str(tmp_path / "out")
    )
    assert code == 0, output
    assert not marker.exists()
    backbone = load_wrapped(forged, factory=f"{models}:classifier")
    assert backbone.name == "classifier" and not marker.exists()


def test_trusting_the_file_runs_its_factory(export, tmp_path):
    code, output = _score(
        "--backbones", str(export), "--trust-factory", "--out", str(tmp_path / "out")
    )
    assert code == 0, output
    assert load_wrapped(export, trust_code=True).name == "classifier"
    with pytest.raises(TypeError, match=r"^`trust_code` must be True or False; got 'yes'\.$"):
        load_wrapped(export, trust_code="yes")  # type: ignore[arg-type]


def test_control_characters_in_a_recorded_factory_are_shown_escaped(export, tmp_path):
    forged = _rewrite_factory(export, "x\x1b[2J\x1b]0;owned\x07:f", tmp_path / "forged.pt")
    code, output = _score("--backbones", str(forged), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "\x1b" not in output and "\x07" not in output
    assert "x\\x1b[2J\\x1b]0;owned\\x07:f" in output


def test_a_pickle_gadget_as_weights_is_refused_in_one_line(export, tmp_path):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights.pt"
    weights.write_bytes(pickle.dumps({"0.weight": _Gadget(marker)}, protocol=2))
    models = export.parent / "mymodels.py"
    code, output = _score("--backbones", f"{models}:classifier@{weights}", "--out", str(tmp_path))
    assert code == 2, output
    message = output.strip().splitlines()
    assert len(message) == 1, output
    assert message[0].startswith(
        f"metaleep score: `--backbones` weights must be a state dict of tensors; got "
        f"'{weights}': torch.load(weights_only=True) refuses it (a pickled object"
    )
    assert "Traceback" not in output and not marker.exists()
