"""A study over training seeds: one study per seed, analysed together as replicates."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.study.config import StudyConfig
from metaleep.study.seeds import check_seeds, run_seeded_study


def _perturbed(backbones, scale: float):
    from dataclasses import replace

    out = []
    for b in backbones:
        model = __import__("copy").deepcopy(b.model)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(scale * torch.randn_like(p))
        out.append(replace(b, model=model, fingerprint=f"{b.fingerprint}+{scale}"))
    return out


def test_seeds_run_apart_and_are_analysed_together(toy_study, tmp_path):
    dataset, suite, backbones = toy_study(12)
    torch.manual_seed(1)
    ready = {0: backbones, 1: _perturbed(backbones, 0.05)}
    config = StudyConfig(
        suite="toy",
        backbones=("maml", "supervised"),
        adaptations=("retrain_head", "prototype"),
        metrics=("leep", "nce", "logme"),
        chunk_size=6,
    )
    result = run_seeded_study(
        config,
        [0, 1],
        out_dir=tmp_path / "s",
        dataset=dataset,
        suite=suite,
        backbones=ready,
        n_boot=50,
        progress=False,
    )
    table = result.table
    assert sorted(table.seed.unique()) == [0, 1]
    assert set(table.backbone) == {"maml", "supervised"}  # the source keeps its name
    assert (tmp_path / "s" / "seed-0" / "study.json").is_file()
    assert (tmp_path / "s" / "seed-1" / "study.json").is_file()
    stored = pd.read_csv(tmp_path / "s" / "results.csv")
    assert len(stored) == len(table)
    corr = result.correlations
    assert corr is not None and (corr.n_seeds == 2).all()
    pearson = corr[(corr.method == "pearson") & corr.r.notna()]
    assert pearson.seed_share.between(0, 1).all()
    assert pearson.combination.str.contains("2 training seeds").all()
    # the combined r is the mean Fisher z of the two seeds' own correlations
    row = pearson[(pearson.backbone == "maml") & (pearson.adaptation == "prototype")]
    row = row[(row.metric == "logme") & (row.dummy == "head")]
    z = []
    for seed in (0, 1):
        part = table[(table.seed == seed) & (table.backbone == "maml")]
        part = part[(part.adaptation == "prototype") & (part.dummy == "head")]
        assert len(part) == 12
        z.append(np.arctanh(np.corrcoef(part.logme, part.accuracy)[0, 1]))
    assert row.r.item() == pytest.approx(np.tanh(np.mean(z)))
    selection = pd.read_csv(tmp_path / "s" / "selection.csv")
    assert set(selection.seed) == {0, 1} and "static_prior" in set(selection.metric)


def test_several_seeds_need_default_sources():
    message = (
        "`seeds` must be one seed when a source is not a default backbone (maml, supervised, "
        "protonet); got [0, 1] with x=runs/a."
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        check_seeds([0, 1], ["maml", "x=runs/a"])
    assert check_seeds([2], ["x=runs/a"]) == (2,)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "0,a"], "`--seeds` must be integers like 0,1,2; got '0,a'."),
        (["--seeds", "0,0"], "`--seeds` must be one or more distinct integers >= 0; got [0, 0]."),
    ],
)
def test_run_refuses_bad_seeds(flags, message, tmp_path):
    result = CliRunner().invoke(app, ["run", *flags, "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
