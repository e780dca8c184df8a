"""Tests of metaleep/backbones/cli.py through the root ``metaleep`` app."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from metaleep.backbones import cli as backbones_cli
from metaleep.backbones.checkpoint import BACKBONE_FILE, load_backbone
from metaleep.backbones.testing import ToySplit
from metaleep.cli import app
from metaleep.data.base import ImageDataset

TINY_FLAGS = [
    "--algorithm",
    "protonet",
    "--arch",
    "conv4-8",
    "--ways",
    "3",
    "--queries",
    "2",
    "--meta-batch",
    "2",
    "--iterations",
    "4",
    "--eval-every",
    "2",
    "--eval-episodes",
    "4",
    "--no-progress",
]


@pytest.fixture
def toy_data(monkeypatch: pytest.MonkeyPatch, toy: ImageDataset, split: ToySplit) -> None:
    monkeypatch.setattr(backbones_cli, "load_data", lambda data, name, mode="train": (toy, split))


@pytest.mark.usefixtures("toy_data")
def test_train_command(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "train",
            *TINY_FLAGS,
            "--out",
            str(tmp_path),
            "--test-episodes",
            "3",
            "--test-shots",
            "1,2",
            "--test-queries",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("protonet-conv4-8-3w1s: step      2  train loss ")
    assert f"checkpoint {tmp_path / BACKBONE_FILE}" in result.output
    assert "meta-test 3w1s3q over 3 episodes: " in result.output
    assert "meta-test 3w2s3q over 3 episodes: " in result.output
    backbone = load_backbone(tmp_path)
    assert backbone.config.arch == "conv4-8" and backbone.step == 4
    again = runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--resume"])
    assert again.exit_code == 0, again.output
    assert "kept step" in again.output


@pytest.mark.usefixtures("toy_data")
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--inner-lr", "-1"], "`--inner-lr` must be a finite number > 0; got -1.0."),
        (["--arch", "vgg"], "`--arch` must be one of conv4-small"),
        ([], "`--out` must be a directory for the checkpoint; got None."),
        (["--test-shots", "one"], "`--test-shots` must be integers like 1,5; got 'one'."),
    ],
)
def test_bad_flags(flags: list[str], message: str, tmp_path: Path) -> None:
    out = [] if not flags else ["--out", str(tmp_path)]
    result = CliRunner().invoke(app, ["train", *TINY_FLAGS, *out, *flags])
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


def test_help_lists_every_config_field() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in (
        "--inner-lr",
        "--meta-batch",
        "--eval-every",
        "--patience",
        "--threads",
        "--resume",
        "--default",
        "--out",
    ):
        assert flag in result.output


def test_snapshots_rank_with_score(tmp_path: Path) -> None:
    """train --save-every K --name N keeps snapshots that `score` takes as one folder."""
    runner = CliRunner()
    out = tmp_path / "run"
    flags = [
        "--algorithm",
        "protonet",
        "--arch",
        "conv2-8",
        "--iterations",
        "4",
        "--eval-every",
        "2",
        "--eval-episodes",
        "2",
        "--threads",
        "1",
        "--no-progress",
    ]
    result = runner.invoke(
        app, ["train", *flags, "--out", str(out), "--save-every", "2", "--name", "mine"]
    )
    assert result.exit_code == 0, result.output
    snapshots = sorted((out / "snapshots").glob("*.pt"))
    assert [p.name for p in snapshots] == ["step-000002.pt", "step-000004.pt"]
    scores = tmp_path / "scores"
    result = runner.invoke(
        app,
        [
            "score",
            "--suite",
            "glyphs-smoke",
            "--backbones",
            str(out / "snapshots"),
            "--dummies",
            "prototypes",
            "--metrics",
            "leep,logme",
            "--out",
            str(scores),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    import pandas as pd

    ranked = pd.read_csv(scores / "ranking.csv")
    assert set(ranked["backbone"]) == {"mine@step-2", "mine@step-4"}
    # the final weights equal those of a run without snapshots
    plain = tmp_path / "plain"
    result = runner.invoke(app, ["train", *flags, "--out", str(plain), "--name", "mine"])
    assert result.exit_code == 0, result.output
    a, b = load_backbone(out), load_backbone(plain)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
