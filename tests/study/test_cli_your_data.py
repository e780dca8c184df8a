"""The CLI on a user's own data and models: --data, factories, checkpoints, score, export."""

from __future__ import annotations

import json
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
    assert "6 episodes" in output and "Best metric per group: " in output
    table = pd.read_csv(out / "results.csv")
    assert set(table["backbone"]) == {"maml", "supervised"}
    # glyph-trained backbones on another data set: prototypes of their glyph source classes
    assert {"prototypes", "source", "head"} <= set(table["dummy"])
    record = json.loads((out / "study.json").read_text())["config"]
    assert record["backbone_info"]["maml"]["cross_domain"] is True
    # the 20x20 images load at the 28x28 the backbones declare (once, Lanczos), recorded
    loading = record["data_loading"]
    assert loading["size"] == [28, 28] and loading["resized"] == 96
    assert loading["size_rule"].startswith("the largest input the backbones declare")
    assert record["backbone_info"]["maml"]["transform"] == "none"
    # the suite's recorded command regenerates it through the CLI (it names --data)
    from metaleep.episodes.manifest import read_manifest

    stored = read_manifest(out / "suite.csv")
    assert stored.command.startswith(
        f"metaleep episodes sample --data imagefolder:{image_tree} --image-size 28"
    )
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
    # LEEP ranks backbones within one dummy mode (its label space) only
    for _, group in ranking.groupby("dummy"):
        assert list(group["rank"]) == list(range(1, len(group) + 1))
    assert set(ranking["dummy"]) == set(scores["dummy"])
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


# --- a messy folder and a ProtoNet, from nothing to a report (issue 21) -------------------------

PROTONET = textwrap.dedent(
    """
    import torch
    from learn2learn.vision.models import CNN4Backbone

    def protonet():
        torch.manual_seed(0)
        return CNN4Backbone(hidden_size=8, layers=2, channels=3)
    """
)


@pytest.fixture(scope="module")
def messy_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six classes as people have them: mixed sizes, grey / RGB / RGBA / palette files, a
    zero-byte image, a stray text file, a hidden folder and a nested folder."""
    root = tmp_path_factory.mktemp("messy") / "birds"
    rng = np.random.default_rng(3)
    for c in range(6):
        base = rng.integers(0, 256, 3)
        for i in range(9):
            h, w = int(rng.integers(18, 33)), int(rng.integers(20, 31))
            noise = rng.normal(0, 30, (h, w, 3))
            stripes = 40 * np.sin(np.arange(w) / (1 + c))[None, :, None]
            pixels = np.clip(base + noise + stripes, 0, 255)
            image = Image.fromarray(pixels.astype(np.uint8))
            image = [image, image.convert("L"), image.convert("RGBA"), image.quantize(8)][i % 4]
            folder = root / f"bird-{c}" / ("nested" if i == 8 else "")
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i}.png")
    (root / "bird-0" / "broken.jpg").write_bytes(b"")
    (root / "bird-1" / "notes.txt").write_text("seen at dawn")
    (root / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (25, 25)).save(root / ".ipynb_checkpoints" / "0-checkpoint.png")
    return root


def _run_protonet(protonet: Path, out: Path, *args: str) -> str:
    """``metaleep run`` of the ProtoNet factory, prototype accuracy and LogME only."""
    return _invoke(
        "run",
        *args,
        *("--backbones", f"proto={protonet}:protonet", "--adaptations", "prototype"),
        *("--metrics", "logme", "--out", str(out), "--n-boot", "10", "--no-progress"),
    )


def _score_protonet(messy_tree: Path, protonet: Path, out: Path, *args: str) -> str:
    """``metaleep score`` of the ProtoNet factory on the messy tree: 4 episodes of 5-way
    2-shot, LEEP, NCE and LogME."""
    return _invoke(
        "score",
        *("--data", f"imagefolder:{messy_tree}", "--ways", "5", "--shots", "2"),
        *("--episodes", "4", "--backbones", f"proto={protonet}:protonet", *args),
        *("--metrics", "leep,nce,logme", "--out", str(out), "--no-progress"),
    )


@pytest.fixture
def protonet(tmp_path: Path) -> Path:
    pytest.importorskip("learn2learn")
    path = tmp_path / "protonet.py"
    path.write_text(PROTONET)
    return path


def test_a_messy_folder_runs_and_the_report_says_what_was_done(
    messy_tree: Path, tiny_backbones: dict[str, str], protonet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    output = _invoke(
        "run",
        "--data",
        f"imagefolder:{messy_tree}",
        "--ways",
        "5",
        "--shots",
        "5",
        "--episodes",
        "6",
        "--backbones",
        f"maml={tiny_backbones['maml']},proto={protonet}:protonet",
        "--adaptations",
        "prototype,retrain_head",
        "--metrics",
        "leep,nce,logme,gbc,centroid_loo",
        "--out",
        str(out),
        "--n-boot",
        "20",
        "--no-progress",
    )
    assert "6 episodes" in output
    record = json.loads((out / "study.json").read_text())["config"]
    loading = record["data_loading"]
    assert loading["images"] == 6 * 9 and loading["classes"] == 6
    # mixed sizes: the largest input the backbones declare (the maml checkpoint: 28x28)
    assert loading["size"] == [28, 28] and loading["resized"] == 54
    # colour files are the majority and a backbone takes RGB: 3 channels, conversions counted
    assert loading["channels"] == 3
    assert loading["converted"] == {"L -> RGB": 12, "P -> RGB": 12, "RGBA -> RGB": 12}
    assert loading["transparency"] == "composited over white"
    assert loading["skipped"]["first"] == ["bird-0/broken.jpg: empty file (0 bytes)"]
    assert loading["ignored"]["first"] == ["bird-1/notes.txt: not an image file (by its extension)"]
    assert loading["hidden"]["first"] == [".ipynb_checkpoints: hidden"]
    assert loading["nested"] == {"images": 6, "classes": {f"bird-{c}": 1 for c in range(6)}}
    # queries fit the data: 9 images per class, 5 shots -> 4 queries
    assert record["sampling"]["queries"] == 4
    report = (out / "report.md").read_text()
    for words in (
        "## Data",
        "Loaded 54 images of 6 classes",
        "converted L -> RGB: 12, P -> RGB: 12, RGBA -> RGB: 12",
        "Unusable files skipped: 1: bird-0/broken.jpg: empty file (0 bytes).",
        "bird-1/notes.txt: not an image file",
        "Ignored hidden files and folders: 1: .ipynb_checkpoints: hidden.",
        "6 images in nested folders counted in their top-level class",
        "Backbone proto: rows of dummy 'none'",
    ):
        assert words in report, words
    table = pd.read_csv(out / "results.csv")
    proto = table[table["backbone"] == "proto"]
    assert set(proto["dummy"]) == {"none"} and proto["leep"].isna().all()
    assert proto[["logme", "gbc", "centroid_loo", "accuracy"]].notna().all().all()
    # the whole ranking, from the finished study
    ranked = _invoke("rank", str(out), "--out", str(tmp_path / "ranked"))
    assert "Rank correlation of mean metric with mean accuracy across backbones" in ranked
    agreement = pd.read_csv(tmp_path / "ranked" / "rank_agreement.csv")
    assert set(agreement.loc[agreement["metric"] == "logme", "dummy"]) == {"any"}


def test_python_score_equals_the_cli(messy_tree: Path, protonet: Path, tmp_path: Path) -> None:
    import metaleep

    args = ["--ways", "5", "--shots", "5", "--episodes", "5", "--metrics", "logme,gbc,sfda"]
    _invoke(
        "score",
        "--data",
        f"imagefolder:{messy_tree}",
        *args,
        "--backbones",
        f"proto={protonet}:protonet",
        "--out",
        str(tmp_path / "cli"),
        "--no-progress",
    )
    cli = pd.read_csv(tmp_path / "cli" / "scores.csv")
    python = metaleep.score(
        [f"proto={protonet}:protonet"],
        data=f"imagefolder:{messy_tree}",
        ways=5,
        shots=5,
        episodes=5,
        metrics=("logme", "gbc", "sfda"),
    )
    columns = [c for c in cli.columns if c != "seconds_metrics"]
    pd.testing.assert_frame_equal(
        python[columns].reset_index(drop=True), cli[columns], check_dtype=False, rtol=0, atol=0
    )


def test_score_ranks_by_the_first_metric_a_backbone_has(
    messy_tree: Path, protonet: Path, tmp_path: Path
) -> None:
    """An embedding network has no LEEP: without --rank-by the ranking takes the first of
    --metrics that has values, not an empty LEEP ranking."""
    out = _score_protonet(messy_tree, protonet, tmp_path / "scores")
    assert "Ranking by mean logme" in out and "no backbone has" not in out
    ranking = pd.read_csv(tmp_path / "scores" / "ranking.csv")
    assert ranking["mean"].notna().all() and list(ranking["backbone"]) == ["proto"]


def test_an_embedding_network_from_the_cli_gets_leep_with_its_source_data(
    image_tree: Path, messy_tree: Path, protonet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    _score_protonet(messy_tree, protonet, out, "--source-data", f"proto=imagefolder:{image_tree}")
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["dummy"]) == {"prototypes"}
    assert scores[["leep", "nce", "logme"]].notna().all().all()
    refused = CliRunner().invoke(
        app,
        [
            "score",
            "--data",
            f"imagefolder:{messy_tree}",
            "--backbones",
            f"proto={protonet}:protonet",
            "--source-data",
            f"other=imagefolder:{image_tree}",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert refused.exit_code == 2
    assert "`--source-data` must name backbones of the study (proto); got other." in refused.output


def test_small_classes_are_named_and_can_be_left_out(
    messy_tree: Path, protonet: Path, tmp_path: Path
) -> None:
    common = ["--data", f"imagefolder:{messy_tree}", "--backbones", f"proto={protonet}:protonet"]
    refused = CliRunner().invoke(
        app, ["score", *common, "--queries", "15", "--out", str(tmp_path / "a")]
    )
    assert refused.exit_code == 2
    assert "`--queries` must be at most 4 with 5 shots" in refused.output
    assert "'bird-0' (9 images)" in refused.output and "`--min-images` 20" in refused.output
    # a small class: left out with --min-images, recorded in the suite and study.json
    small = tmp_path / "small"
    for c, n in ((0, 3), (1, 8), (2, 8), (3, 8)):
        for i in range(n):
            folder = small / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (28, 28), (30 * c, 10 * i, 0)).save(folder / f"{i}.png")
    args = ["--data", f"imagefolder:{small}", "--ways", "3", "--shots", "2", "--episodes", "3"]
    blocked = CliRunner().invoke(
        app,
        [
            *("run", *args, "--shots", "3", "--backbones", f"proto={protonet}:protonet"),
            *("--adaptations", "prototype", "--out", str(tmp_path / "b")),
        ],
    )
    assert blocked.exit_code == 2
    assert "'c0' (3 images)" in blocked.output and "`--min-images` 4" in blocked.output
    out = tmp_path / "study"
    _run_protonet(protonet, out, *args, "--min-images", "5")
    record = json.loads((out / "study.json").read_text())["config"]["sampling"]
    assert record["dropped_classes"] == {"count": 1, "first": ["c0"]}
    assert record["queries"] == 6  # 8 images - 2 shots
    from metaleep.episodes.manifest import read_manifest

    assert read_manifest(out / "suite.csv").pool.tolist() == [1, 2, 3]


def test_a_suite_sampled_with_an_image_size_is_run_at_that_size(
    messy_tree: Path, protonet: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.csv"
    data = f"imagefolder:{messy_tree}"
    common = ["--ways", "5", "--shots", "2", "--episodes", "3"]
    _invoke(
        "episodes", "sample", "--data", data, *common, "--image-size", "24", "--out", str(suite)
    )
    out = tmp_path / "study"
    _run_protonet(protonet, out, "--suite", str(suite), "--data", data)
    loading = json.loads((out / "study.json").read_text())["config"]["data_loading"]
    assert loading["size"] == [24, 24] and loading["size_rule"] == "given"


def test_a_standard_suite_on_other_data_says_what_to_do(messy_tree: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("score", "--suite", "glyphs-5w5s", "--data", f"imagefolder:{messy_tree}"),
            *("--backbones", "protonet", "--out", str(tmp_path / "o")),
        ],
    )
    assert result.exit_code == 2
    assert "`--suite` glyphs-5w5s is a standard suite of the glyphs data" in result.output
    assert "episodes/glyphs-5w5s.csv" not in result.output and "--out my-suite.csv" in result.output
