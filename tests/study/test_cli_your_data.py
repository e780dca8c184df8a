"""The CLI on a user's own data and models: --data, factories, checkpoints, score, export."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from metaleep.cli import app

FACTORY = textwrap.dedent(
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


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's ImageFolder tree: 8 classes of 12 grey 20x20 PNG images (blobs per class)."""
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for c in range(8):
        base = rng.random((20, 20)) < 0.3
        folder = root / f"class-{c}"
        folder.mkdir()
        for i in range(12):
            noisy = base ^ (rng.random((20, 20)) < 0.05)
            Image.fromarray((noisy * 255).astype(np.uint8), mode="L").save(folder / f"{i}.png")
    return root


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "mymodels.py"
    path.write_text(FACTORY)
    return path


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_run_on_an_image_folder_cross_domain(
    image_tree: Path, tiny_backbones: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "study"
    args = (
        "run",
        "--data",
        f"imagefolder:{image_tree}",
        "--ways",
        "5",
        "--shots",
        "2",
        "--queries",
        "3",
        "--episodes",
        "6",
        "--backbones",
        f"maml={tiny_backbones['maml']},supervised={tiny_backbones['supervised']}",
        "--adaptations",
        "maml,retrain_head,prototype",
        "--metrics",
        "leep,nce",
        "--out",
        str(out),
        "--n-boot",
        "20",
        "--no-progress",
    )
    output = _invoke(*args)
    assert "6 episodes" in output and "Pearson r" in output
    table = pd.read_csv(out / "results.csv")
    assert set(table["backbone"]) == {"maml", "supervised"}
    # glyph-trained backbones on another data set: prototypes of their glyph source classes
    assert {"prototypes", "source", "head"} <= set(table["dummy"])
    record = (out / "study.json").read_text()
    assert '"cross_domain": true' in record and "resize 20x20 -> 28x28" in record
    # the suite's recorded command regenerates it through the CLI (it names --data)
    from metaleep.episodes.manifest import read_manifest

    stored = read_manifest(out / "suite.csv")
    assert stored.command.startswith(f"metaleep episodes sample --data imagefolder:{image_tree}")
    again = tmp_path / "again.csv"
    _invoke(*stored.command.split()[1:], "--out", str(again))
    assert list(read_manifest(again).episodes) == list(stored.episodes)
    # the study's own suite is stored: the same command resumes, another sample is refused
    assert "6 episodes" in _invoke(*args)
    refused = CliRunner().invoke(
        app,
        [
            "run",
            "--data",
            f"imagefolder:{image_tree}",
            "--shots",
            "1",
            "--queries",
            "3",
            "--backbones",
            f"maml={tiny_backbones['maml']}",
            "--out",
            str(out),
        ],
    )
    assert refused.exit_code == 2 and "holds a suite of other episodes" in refused.output


def test_score_three_backbones_with_a_factory(
    image_tree: Path, tiny_backbones: dict[str, str], factory: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    output = _invoke(
        "score",
        "--data",
        f"imagefolder:{image_tree}",
        "--ways",
        "5",
        "--shots",
        "2",
        "--queries",
        "2",
        "--episodes",
        "5",
        "--backbones",
        f"{tiny_backbones['supervised']},{tiny_backbones['protonet']},mine={factory}:classifier",
        "--metrics",
        "leep,nce,logme",
        "--out",
        str(out),
        "--no-progress",
    )
    assert "Ranking by mean leep" in output
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["backbone"]) == {"supervised", "protonet", "mine"}
    assert set(scores.loc[scores["backbone"] == "mine", "dummy"]) == {"source"}
    ranking = pd.read_csv(out / "ranking.csv")
    assert list(ranking["rank"]) == list(range(1, len(ranking) + 1))
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["metric"]) == {"leep", "nce", "logme"}


def test_export_then_use_the_checkpoint(factory: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.ckpt"
    output = _invoke("export", f"{factory}:classifier", "--out", str(path), "--name", "mine")
    assert f"wrote {path}" in output
    # The export's factory is code: it runs when the user names it, or trusts the file.
    for how, spec in (("named", f"{factory}:classifier@{path}"), ("trusted", str(path))):
        out = tmp_path / how
        _invoke(
            "score",
            "--suite",
            "glyphs-smoke",
            "--backbones",
            spec,
            "--metrics",
            "nce,logme",
            "--out",
            str(out),
            "--no-progress",
            *(["--trust-factory"] if how == "trusted" else []),
        )
        scores = pd.read_csv(out / "scores.csv")
        assert set(scores["backbone"]) == {"mine"} and len(scores) == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--data", "nosuch"], "`--data` must name one of glyphs, digits, imagefolder"),
        (["run", "--data", "imagefolder"], "`--data` must be NAME:ROOT for imagefolder"),
        (["run", "--backbones", "nosuch"], "`--backbones` must name default backbones"),
        (["run", "--backbones", "a=x.py:f"], "`--backbones` must name default backbones"),
        (["score", "--backbones", "a=x.py:f"], "`--backbones` must name default backbones"),
        (["score", "--rank-by", "nce", "--metrics", "leep"], "`--rank-by` must be one of"),
        (["export", "nosuch.module:f"], "factory module must be importable"),
    ],
)
def test_cli_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "o").exists()


def test_duplicate_names_are_refused(tiny_backbones: dict[str, str], tmp_path: Path) -> None:
    path = tiny_backbones["protonet"]
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--suite",
            "glyphs-smoke",
            "--backbones",
            f"{path},{path}/backbone.pt",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "`--backbones` must have distinct names; got protonet more than once" in result.output
