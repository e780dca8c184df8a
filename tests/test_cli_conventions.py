"""One convention for every command: exit 2 for a usage or configuration error, 1 for a failure,
130 for an interruption; every message names options as flags and suggests only valid specs.

Each command runs with a bad option (fast: the check comes before any data or model is
loaded); the message must name the flag, and no message may name an option by its Python
name (`` `n_boot` ``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaleep.cli import app

FACTORY = """
import torch


def build():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 8))
"""


def bad_options(tmp: Path) -> list[tuple[list[str], str]]:
    """(command line, flag its message must name) for every command."""
    factory = tmp / "mine.py"
    factory.write_text(FACTORY)
    study = tmp / "study"
    study.mkdir()
    (study / "results.csv").write_text(
        "episode,backbone,dummy,adaptation,leep,accuracy\n0,a,head,anil,-1.0,0.5\n"
    )
    return [
        (["run", "--n-boot", "0", "--out", str(tmp / "r")], "`--n-boot`"),
        (["run", "--dummies", "logits", "--out", str(tmp / "r")], "`--dummies`"),
        (
            [
                "score",
                "--dummies",
                "bogus",
                "--episodes",
                "2",
                "--no-progress",
                "--out",
                str(tmp / "s"),
            ],
            "`--dummies`",
        ),
        (["score", "--rank-by", "nope", "--out", str(tmp / "s")], "`--rank-by`"),
        (["grid", "--config", "nosuch", "--out", str(tmp / "g")], "`--config`"),
        (["grid", "--quick", "--config", "x.toml"], "`--quick`"),
        (["train", "--iterations", "0", "--out", str(tmp / "t")], "`--iterations`"),
        (
            ["export", f"{factory}:build", "--algorithm", "bogus", "--out", str(tmp / "m.pt")],
            "`--algorithm`",
        ),
        (["episodes", "sample", "--ways", "0", "--out", str(tmp / "e.csv")], "`--ways`"),
        (
            ["episodes", "sample", "--alphabets", "some", "--out", str(tmp / "e.csv")],
            "`--alphabets`",
        ),
        (["episodes", "show", "glyphs-smoke", "--head", "many"], "'--head'"),
        (["episodes", "list", "--all"], "--all"),
        (["data", "sheet", "--out", str(tmp)], "`--out`"),
        (["data", "info", "--seed", "-1"], "'--seed'"),
        (["rank", str(study), "--metrics", "bogus"], "`--metrics`"),
    ]


def _python_names(message: str) -> list[str]:
    """Backticked names that are no flag (`` `n_boot` `` where `` `--n-boot` `` was meant)."""
    return [name for name in re.findall(r"`([^`\s]+)`", message) if not name.startswith("--")]


def test_every_command_exits_2_and_names_the_flag(tmp_path):
    runner = CliRunner()
    seen = set()
    for args, flag in bad_options(tmp_path):
        result = runner.invoke(app, args)
        where = " ".join(args)
        assert result.exit_code == 2, (where, result.output)
        assert flag in result.output, (where, result.output)
        assert _python_names(result.output) == [], (where, result.output)
        seen.add(" ".join(a for a in args[:2] if not a.startswith("-") and "/" not in a))
    assert seen >= {
        "run", "score", "grid", "train", "export", "episodes sample", "episodes show",
        "episodes list", "data sheet", "data info", "rank",
    }  # fmt: skip


def test_library_messages_are_said_in_flags(tmp_path):
    """A message from the library names `dummies`; the command says `--dummies`, prefixed
    with the command's name."""
    result = CliRunner().invoke(
        app, ["score", "--dummies", "bogus", "--episodes", "2", "--no-progress",
              "--out", str(tmp_path)]
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "metaleep score: `--dummies` must name from head, source, prototypes; got bogus."
    )


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["episodes", "show", "glyphs-smoke"], "metaleep.episodes.suites.load_suite"),
        (["score", "--no-progress"], "metaleep.study.scores.score"),
        (["grid", "--quick"], "metaleep.study.grid.run_grid"),
    ],
)
def test_interruption_exits_130_and_failure_1(args, target, tmp_path):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    runner = CliRunner()
    out = ["--out", str(tmp_path / "x")] if args[0] != "episodes" else []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(target, interrupted)
        result = runner.invoke(app, [*args, *out])
    assert result.exit_code == 130, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"metaleep {args[0]}") and ": interrupted" in last, result.output
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(target, disk_full)
        result = runner.invoke(app, [*args, *out])
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output


def test_suggested_data_specs_are_valid(tmp_path):
    """A suite of a data set with no built-in name suggests `--data imagefolder:DIR`, never
    `--data NAME:ROOT` for a NAME that is no data set; a benchmark's suite suggests its own."""
    import numpy as np

    from metaleep.data.spec import parse_data
    from metaleep.episodes.manifest import Suite, write_manifest
    from metaleep.episodes.spec import Episode, EpisodeSpec
    from metaleep.study.config import StudyConfig
    from metaleep.study.loading import dataset_for

    episode = Episode.from_indices(0, [3, 1], [[30], [10]], [[31, 32], [11, 12]])
    for dataset_id, suggested in (("kanji", "imagefolder:DIR"), ("omniglot", "omniglot:ROOT")):
        suite = Suite(
            name="s",
            dataset_id=dataset_id,
            dataset_version="v1",
            split="all",
            part="all",
            seed=0,
            pool=np.array([1, 3]),
            specs=(EpisodeSpec(ways=2, shots=1, queries=2),),
            episodes=(episode,),
        )
        path = write_manifest(suite, tmp_path / f"{dataset_id}.csv")
        with pytest.raises(ValueError) as error:
            dataset_for(StudyConfig(suite=str(path), backbones=("maml",)))
        specs = re.findall(r"--data (\S+?)\)", str(error.value))
        assert specs == [suggested], str(error.value)
        parse_data(suggested.replace("DIR", "/tmp").replace("ROOT", "/tmp"))  # a valid spec
