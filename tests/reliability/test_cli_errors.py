"""Bad command lines are refused before any work, in the words of the option (issue 16).

Each refused command must: exit with a clear message that names the CLI option, load nothing
(no data set, backbone or suite), and leave nothing behind that blocks the corrected command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.data import spec as data_spec
from metaleep.episodes.suites import STANDARD_SUITES
from metaleep.metrics.registry import METRICS


@pytest.fixture
def nothing_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a study starts loading its inputs."""
    from metaleep.study import loading

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused command loaded its inputs")

    monkeypatch.setattr(loading, "load_study_inputs", refuse)
    monkeypatch.setattr(loading, "load_backbones", refuse)


ADAPTATIONS = "maml, finetune, retrain_head, anil, prototype"
CASES = {
    "adaptations": (
        ["--adaptations", "maml,retrain_hed"],
        f"`--adaptations` must name from {ADAPTATIONS}; got retrain_hed.",
    ),
    "metrics": (
        ["--metrics", "leep,nse"],
        f"`--metrics` must name from {', '.join(METRICS)}; got nse.",
    ),
    "dummies": (
        ["--dummies", "head,logits"],
        "`--dummies` must name from head, source, prototypes; got logits.",
    ),
    "n-boot": (["--n-boot", "-1"], "`--n-boot` must be a positive integer; got -1."),
    "threads": (["--threads", "-1"], "`--threads` must be >= 0 (0: torch's default); got -1."),
    "chunk-size": (["--chunk-size", "0"], "`--chunk-size` must be a positive integer; got 0."),
    "device": (["--device", "tpu"], "`--device` must be cpu, cuda, cuda:N or auto; got 'tpu'."),
    "no gpu": (
        ["--device", "cuda"],
        "`--device` must be cpu or auto on this machine, which has no CUDA GPU (or no CUDA "
        "build of torch); got 'cuda'.",
    ),
    "suite": (
        ["--suite", "nosuchsuite"],
        f"`--suite` must be a standard suite ({', '.join(STANDARD_SUITES)}; see `metaleep "
        "episodes list`) or an existing manifest file; got 'nosuchsuite'.",
    ),
    "backbones": (
        ["--backbones", "maml,fomaml"],
        "`--backbones` must name default backbones (maml, supervised, protonet), existing "
        "checkpoint paths, or factories FILE.py:CALLABLE / package.module:CALLABLE "
        "(optionally @WEIGHTS.pt), each optionally as NAME=SPEC; got fomaml.",
    ),
    "executor": (["--executor", "dask"], "`--executor` must be local or ray; got 'dask'."),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_option_is_refused_before_any_work(case, tmp_path, nothing_loaded, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args, message = CASES[case]
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["run", *args, "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert result.output == f"metaleep run: {message}\n"
    assert not out.exists()  # nothing that could block the corrected command


def test_help_lists_what_run_accepts() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", result.output)
    assert "default backbones (maml, protonet, supervised;" in text
    assert "fomaml" not in text
    assert "pip install metaleep[ray]" in text


def test_episodes_sample_refuses_an_unwritable_out_before_sampling(tmp_path, monkeypatch):

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("sampled before checking --out")

    monkeypatch.setattr(data_spec, "load_dataset", refuse)
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "suite.csv"
    result = CliRunner().invoke(app, ["episodes", "sample", "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"metaleep episodes sample: `--out` must be a path in a writable folder; got {str(out)!r} ("
    )


def test_data_sheet_refuses_a_directory_as_out_before_generating(tmp_path, monkeypatch):
    from metaleep.data import glyphs

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("generated before checking --out")

    monkeypatch.setattr(glyphs, "load_glyphs", refuse)
    result = CliRunner().invoke(app, ["data", "sheet", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == (
        f"metaleep data sheet: `--out` must be a file path; got the directory {str(tmp_path)!r}.\n"
    )


def test_results_csv_replaced_by_a_directory_is_a_clear_error(tmp_path, nothing_loaded):
    out = tmp_path / "study"
    (out / "results.csv").mkdir(parents=True)
    result = CliRunner().invoke(app, ["run", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2
    assert result.output == (
        f"metaleep run: {out} holds 1 file(s) metaleep did not write where it writes its own: "
        f"{out / 'results.csv'}. metaleep never overwrites or deletes them (not even with "
        "--overwrite): move them away, or choose another --out, and rerun.\n"
    )


@pytest.mark.slow
def test_the_corrected_command_runs_after_a_refused_one(tmp_path: Path, tiny_backbones) -> None:
    """The issue's sequence: a typo in --adaptations, then the corrected command, without
    --overwrite."""
    out = tmp_path / "study"
    common = [
        "run",
        "--suite",
        "glyphs-smoke",
        "--episodes",
        "4",
        "--backbones",
        tiny_backbones["supervised"],
        "--n-boot",
        "20",
        "--out",
        str(out),
        "--no-progress",
    ]
    bad = CliRunner().invoke(app, [*common, "--adaptations", "retrain_hed"])
    assert bad.exit_code == 2
    good = CliRunner().invoke(app, [*common, "--adaptations", "retrain_head"])
    assert good.exit_code == 0, good.output
    assert "4 episodes" in good.output
