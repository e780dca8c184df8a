"""`metaleep grid` end to end on a tiny grid (real glyph suites, tiny trained backbones), resume."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.study.grid import run_grid
from metaleep.study.grid_config import GridConfig, GridTarget

pytestmark = pytest.mark.slow


def _toml(tiny_backbones: dict[str, str]) -> str:
    sources = ", ".join(f'"{n}={tiny_backbones[n]}"' for n in ("maml", "protonet", "supervised"))
    return (
        "[grid]\n"
        f"sources = [{sources}]\n"
        'transfers = ["maml", "retrain_head", "prototype", "finetune"]\n'
        'metrics = ["leep", "nce", "logme"]\n'
        "episodes = 8\nfinetune_episodes = 3\nchunk_size = 4\nn_boot = 40\n"
        "target_reports = false\n\n"
        '[[targets]]\nname = "g5"\nsuite = "glyphs-smoke"\n\n'
        '[[targets]]\nname = "mixed"\nsuite = "glyphs-mixed"\n'
        'transfers = ["retrain_head", "prototype", "finetune"]\n'
    )


def test_grid_end_to_end_then_resume(tiny_backbones, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(_toml(tiny_backbones))
    out = tmp_path / "grid"
    runner = CliRunner()
    args = ["grid", "--config", str(config), "--out", str(out), "--no-progress"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "best in k of N settings" in first.output
    assert "mixed: fine-tuning skipped" in first.output

    table = pd.read_csv(out / "table.csv")
    settings = pd.read_csv(out / "settings.csv")
    assert (table.seed == 0).all()  # one training seed: the ready checkpoints'
    # a setting is (target, regime, source, dummy, transfer): the mixed target splits in two
    regimes = table.assign(regime=np.where(table.shots == 1, "1-shot", ">=2-shot"))
    keys = ["target", "regime", "backbone", "dummy", "adaptation"]
    assert len(settings) == regimes.groupby(keys).ngroups
    assert set(settings[settings.target == "mixed"].regime) == {"1-shot", ">=2-shot"}
    combos = set(map(tuple, settings[keys].to_numpy()))
    # the tiny MAML backbone (5-way head) on 5-way episodes: its head, MAML, fine-tuning
    assert ("g5", "1-shot", "maml", "head", "maml") in combos
    assert ("g5", "1-shot", "supervised", "source", "finetune") in combos
    assert ("g5", "1-shot", "protonet", "prototypes", "finetune") in combos
    # mixed ways: no head dummy / MAML setting spans every episode, and no fine-tuning
    assert not any(t == "mixed" and a == "finetune" for t, _, _, _, a in combos)
    tuned = table[table.adaptation == "finetune"]
    assert sorted(tuned.episode.unique()) == [0, 1, 2]
    # fine-tune rows carry the main study's metric values of the same episode and dummy
    main = table[(table.adaptation == "prototype") & (table.episode < 3) & (table.target == "g5")]
    merged = tuned.merge(main, on=["episode", "backbone", "dummy"], suffixes=("", "_main"))
    assert len(merged) == len(tuned)
    assert (merged["leep"] == merged["leep_main"]).all()
    assert (merged["accuracy"].between(0, 1)).all()
    wins = pd.read_csv(out / "wins.csv")
    assert wins.metric.tolist() == ["leep", "nce", "logme"]
    assert wins.wins.sum() == (settings.winner.fillna("") != "").sum()
    html = (out / "report.html").read_text()
    order = ['class="lead"', "Best in k of N settings", "Stability", "Source selection"]
    positions = [html.index(mark) for mark in order]
    assert positions == sorted(positions)  # the headline in words, the wins, then the details
    md = (out / "report.md").read_text()
    assert md.index("grid_wins.png") < md.index("grid_heatmap.png")
    info = json.loads((out / "grid.json").read_text())
    assert info["n_settings"] == len(settings)
    studies = sorted(p.parent.name for p in (out / "targets").glob("*/study.json"))
    assert studies == ["g5", "mixed"]
    assert (out / "targets" / "g5" / "finetune" / "study.json").is_file()

    # a rerun resumes: nothing recomputed, the same table
    chunks = {p: p.stat().st_mtime_ns for p in out.glob("targets/**/chunk-*.csv")}
    assert chunks
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert {p: p.stat().st_mtime_ns for p in chunks} == chunks
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv"), table)
    pd.testing.assert_frame_equal(pd.read_csv(out / "settings.csv"), settings)
    runs = json.loads((out / "grid.json").read_text())
    assert [r["new_chunks"] > 0 for r in runs["runs"]] == [True, False]
    assert runs["seconds"] == runs["runs"][0]["seconds"]  # the rerun computed nothing
    assert runs["command"] == f"metaleep grid --config {config} --out {out}"

    # another grid in the same folder is refused, naming the folder
    config.write_text(_toml(tiny_backbones).replace("n_boot = 40", "n_boot = 41"))
    third = runner.invoke(app, args)
    assert third.exit_code == 2
    assert re.search(r"`--out` must be empty or hold the same grid; got '.*grid'", third.output)


def test_grid_cli_refuses_quick_with_config():
    result = CliRunner().invoke(app, ["grid", "--quick", "--config", "x.toml"])
    assert result.exit_code == 2
    assert "`--quick` must not be given with --config; got both." in result.output


def test_run_grid_with_ready_backbones(toy_study, tmp_path):
    """Library use: ready backbones instead of specs, a suite file as target."""
    from metaleep.episodes.manifest import write_manifest

    dataset, suite, backbones = toy_study(6)
    path = write_manifest(suite, tmp_path / "toy.csv")
    grid = GridConfig(
        targets=(GridTarget("toy", str(path)),),
        sources=("unused",),
        transfers=("retrain_head", "prototype"),
        metrics=("leep", "nce"),
        episodes=6,
        n_boot=20,
        target_reports=False,
    )
    with pytest.MonkeyPatch.context() as mp:
        # the toy data set is no built-in: hand it to the study through dataset_for
        mp.setattr("metaleep.study.loading.dataset_for", lambda config: dataset)
        result = run_grid(grid, tmp_path / "g", backbones=backbones, progress=False)
    assert set(result.table.backbone) == {"maml", "supervised"}
    assert (
        len(result.analysis.settings)
        == result.table.groupby(["target", "backbone", "dummy", "adaptation"]).ngroups
    )  # one regime (2 shots)
    assert (result.table.seed == 0).all()
    assert result.report is not None and result.report.is_file()
