"""The study runner: schema, equality with the straightforward per-episode path, query-label
isolation, resuming, and the result store's checks."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import torch

from metaleep.adapt.registry import maml_adapt, nearest_prototype, retrain_head
from metaleep.metrics import h_score, leep_score, logme_score, nce_score, nleep_score
from metaleep.study import runner as runner_module
from metaleep.study.config import DEFAULT_METRICS, StudyConfig
from metaleep.study.outputs import full_float32
from metaleep.study.runner import run_study
from metaleep.study.store import StoreError

METRICS = DEFAULT_METRICS  # every default metric, the new ones and the baseline included


@pytest.fixture(scope="module")
def data(toy_study):
    return toy_study(10)


def _run(data, tmp_path, overwrite=False, **changes):
    dataset, suite, backbones = data
    config = StudyConfig(
        **{
            "suite": "toy",
            "backbones": ("maml", "supervised"),
            "adaptations": ("maml", "anil", "retrain_head", "prototype"),
            "chunk_size": 4,
            "temperature": 2.0,
            **changes,
        }
    )
    return run_study(
        config,
        out_dir=tmp_path,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        analyse=False,
        progress=False,
        overwrite=overwrite,
    )


def test_table_schema_and_rows(data, tmp_path):
    table = _run(data, tmp_path).table
    keys = [
        "suite",
        "episode",
        "ways",
        "shots",
        "queries",
        "alphabets",
        "within_alphabet",
        "backbone",
        "dummy",
        "adaptation",
    ]
    assert list(table.columns) == [
        *keys,
        *METRICS,
        "accuracy",
        "loss",
        "support_loss",
        "start_logit_std",
        "seconds_metrics",
        "seconds_adapt",
    ]
    # maml backbone: {head, prototypes} x {maml, anil, retrain_head, prototype};
    # supervised: {source, prototypes} x {retrain_head, prototype}
    assert len(table) == 10 * (2 * 4 + 2 * 2)
    combos = set(table[["backbone", "dummy", "adaptation"]].itertuples(index=False, name=None))
    assert ("supervised", "head", "retrain_head") not in combos
    assert ("supervised", "source", "maml") not in combos
    assert ("maml", "head", "maml") in combos
    assert not table.duplicated(["episode", "backbone", "dummy", "adaptation"]).any()
    assert table["accuracy"].between(0, 1).all()
    assert np.isfinite(table[list(METRICS)].to_numpy()).all()
    assert (table["leep"] <= 1e-12).all()
    # every adaptation records the support loss it ended at; the start spread is 0 for a zero
    # head, NaN without a starting head, positive for a meta-learned one
    assert np.isfinite(table["support_loss"]).all() and (table["support_loss"] >= 0).all()
    spread = table.groupby("adaptation")["start_logit_std"]
    assert spread.apply(lambda v: v.isna().all())["prototype"]
    assert (spread.max()["retrain_head"], spread.min()["retrain_head"]) == (0.0, 0.0)
    assert spread.min()["maml"] > 0 and spread.min()["anil"] > 0


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def test_fast_path_equals_per_episode_path(data, tmp_path):
    """Cached, batched scoring and adaptation give the numbers of a plain per-episode loop."""
    dataset, suite, backbones = data
    table = _run(data, tmp_path).table.set_index(["episode", "backbone", "dummy", "adaptation"])
    maml, supervised = (b.model for b in backbones)
    source_images = np.concatenate([dataset.labels_to_indices[c] for c in range(10)])
    with torch.no_grad():
        source_feats = supervised.features(dataset.batch(source_images).double())
        owner = torch.as_tensor(dataset.labels[source_images])
        prototypes = torch.stack([source_feats[owner == c].mean(0) for c in range(10)])
    for ep in suite.episodes[:4]:
        sx, qx = dataset.batch(ep.support).double(), dataset.batch(ep.query).double()
        ys, yq = torch.as_tensor(ep.support_labels), torch.as_tensor(ep.query_labels)
        with torch.no_grad():
            sf, qf = supervised.features(sx), supervised.features(qx)
            source = _softmax(supervised.classifier(sf).numpy())
            proto = _softmax(-(torch.cdist(sf, prototypes) ** 2).numpy() / 2.0)
        row = table.loc[(ep.index, "supervised", "source", "prototype")]
        assert row["leep"] == pytest.approx(leep_score(source, ep.support_labels), abs=1e-9)
        assert row["nce"] == pytest.approx(nce_score(source, ep.support_labels), abs=1e-9)
        assert row["h_score"] == pytest.approx(h_score(sf.numpy(), ep.support_labels), abs=1e-8)
        assert row["logme"] == pytest.approx(logme_score(sf.numpy(), ep.support_labels), rel=1e-6)
        seed = runner_module._episode_seed(0, ep.index)
        assert row["nleep"] == pytest.approx(
            nleep_score(sf.numpy(), ep.support_labels, seed=seed), abs=1e-9
        )
        assert row["accuracy"] == nearest_prototype(sf, ys, qf, yq, ways=5).accuracy
        row = table.loc[(ep.index, "supervised", "prototypes", "retrain_head")]
        assert row["leep"] == pytest.approx(leep_score(proto, ep.support_labels), abs=1e-9)
        assert row["accuracy"] == retrain_head(sf, ys, qf, yq, ways=5, accelerated=True).accuracy
        direct = maml_adapt(maml, sx, ys, qx, yq, lr=0.3)
        row = table.loc[(ep.index, "maml", "head", "maml")]
        assert row["accuracy"] == direct.accuracy
        assert row["loss"] == pytest.approx(direct.loss, rel=1e-9)
        assert row["support_loss"] == pytest.approx(direct.support_loss, rel=1e-9)
        assert row["start_logit_std"] == pytest.approx(direct.start_logit_std, rel=1e-9)


def test_whole_network_adaptation_split_by_image_budget_gives_the_same_rows(
    data, tmp_path, monkeypatch
):
    """Episodes of a chunk go to MAML in calls bounded by image bytes; the split changes
    nothing (here: one episode per call against the whole 4-episode chunk at once)."""
    whole = _run(data, tmp_path / "whole").table
    monkeypatch.setattr(runner_module, "_MODEL_BATCH_BYTES", 1)
    from metaleep.adapt import registry as adaptation

    calls: list[int] = []
    get = adaptation.get_adaptation

    def counting(name):
        spec = get(name)
        if name != "maml":
            return spec

        def run_batch(model, sx, *args, **kwargs):
            calls.append(sx.shape[0])
            return spec.run_batch(model, sx, *args, **kwargs)

        return dataclasses.replace(spec, run_batch=run_batch)

    monkeypatch.setattr(adaptation, "get_adaptation", counting)
    split = _run(data, tmp_path / "split").table
    assert calls and set(calls) == {1}
    columns = [c for c in whole.columns if not c.startswith("seconds")]
    pd.testing.assert_frame_equal(whole[columns], split[columns])


def test_query_set_never_reaches_a_metric(data, tmp_path):
    """Replacing every query image changes accuracy, never a metric."""
    dataset, suite, backbones = data
    changed = []
    for ep in suite.episodes:
        used = set(np.concatenate([ep.support, ep.query]).tolist())
        fresh = [
            [i for i in dataset.labels_to_indices[int(c)] if i not in used][: ep.queries]
            for c in ep.classes
        ]
        changed.append(dataclasses.replace(ep, query=np.asarray(fresh).reshape(-1)))
    other = dataclasses.replace(suite, episodes=tuple(changed))
    a = _run(data, tmp_path / "a").table
    b = run_study(
        StudyConfig(
            suite="toy",
            adaptations=("maml", "anil", "retrain_head", "prototype"),
            chunk_size=4,
            temperature=2.0,
        ),
        out_dir=tmp_path / "b",
        dataset=dataset,
        suite=other,
        backbones=backbones,
        analyse=False,
        progress=False,
    ).table
    pd.testing.assert_frame_equal(a[list(METRICS)], b[list(METRICS)])
    assert not np.array_equal(a["accuracy"].to_numpy(), b["accuracy"].to_numpy())


def test_resume_reuses_finished_chunks(data, tmp_path, monkeypatch):
    full = _run(data, tmp_path / "full").table
    calls = {"n": 0}
    original = runner_module.evaluate_chunk

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(data, tmp_path / "resumed")
    files = sorted(p.name for p in (tmp_path / "resumed" / "results").glob("chunk-*.csv"))
    assert files == ["chunk-00000.csv"]
    monkeypatch.setattr(runner_module, "evaluate_chunk", original)
    counted = {"n": 0}

    def counting(*args, **kwargs):
        counted["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate_chunk", counting)
    resumed = _run(data, tmp_path / "resumed").table
    assert counted["n"] == 2 * 2  # the two missing chunks, two backbones each
    pd.testing.assert_frame_equal(
        resumed.drop(columns=["seconds_metrics", "seconds_adapt"]),
        full.drop(columns=["seconds_metrics", "seconds_adapt"]),
    )


def test_other_configuration_in_same_directory_is_refused(data, tmp_path):
    _run(data, tmp_path)
    with pytest.raises(StoreError, match="holds results of another study configuration"):
        _run(data, tmp_path, seed=1)
    again = _run(data, tmp_path, overwrite=True, seed=1, episodes=4)
    assert sorted(again.table["episode"].unique()) == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "results").glob("*.csv")) == ["chunk-00000.csv"]


def test_damaged_chunk_is_reported(data, tmp_path):
    _run(data, tmp_path)
    chunk = tmp_path / "results" / "chunk-00001.csv"
    chunk.write_text(chunk.read_text().replace("maml", "mAml", 1))
    with pytest.raises(StoreError, match=re.escape(f"result chunk {chunk} is damaged")):
        _run(data, tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_study_equals_cpu(data, tmp_path):
    """The whole study on a GPU (float64 backbones) gives the CPU's rows."""
    keys = ["episode", "backbone", "dummy", "adaptation"]
    cpu = _run(data, tmp_path / "cpu").table.set_index(keys).sort_index()
    gpu = _run(data, tmp_path / "cuda", device="cuda").table.set_index(keys).sort_index()
    assert gpu.index.equals(cpu.index)
    for column in [*METRICS, "loss"]:
        np.testing.assert_allclose(gpu[column], cpu[column], rtol=1e-7, atol=1e-9, err_msg=column)
    assert (gpu["accuracy"] == cpu["accuracy"]).all()
    # the caller's models stay where they were
    assert all(p.device.type == "cpu" for b in data[2] for p in b.model.parameters())


def test_backbone_on_another_device_is_a_moved_copy(data):
    backbone = data[2][0]
    assert backbone.on("cpu") is backbone
    moved = backbone.on("meta")
    assert moved is not backbone and moved.name == backbone.name
    assert all(p.device.type == "meta" for p in moved.model.parameters())
    assert all(p.device.type == "cpu" for p in backbone.model.parameters())


def test_full_float32_turns_tf32_off_on_cuda_only_and_restores_it():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        with full_float32("cpu"):
            assert cudnn.allow_tf32 and matmul.allow_tf32
        with full_float32("cuda:0"):
            assert not cudnn.allow_tf32 and not matmul.allow_tf32
        assert cudnn.allow_tf32 and matmul.allow_tf32
        with pytest.raises(KeyError), full_float32(torch.device("cuda")):
            assert not cudnn.allow_tf32
            raise KeyError("restored after an error too")
        assert cudnn.allow_tf32 and matmul.allow_tf32
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def test_rows_do_not_depend_on_the_chunk_size(data, tmp_path, monkeypatch):
    """Batched calls over 1, 4 or all 10 episodes give the same numbers, bit for bit.

    With the metrics' kernel threshold lowered so that their ``auto`` choice would differ
    between these chunk sizes (the fused LEEP kernel and torch agree only to ~1e-16)."""
    from metaleep.metrics import leep

    monkeypatch.setattr(leep, "KERNEL_MIN_VALUES", 200)  # chunks of 4+: 200+ values
    tables = [
        _run(data, tmp_path / str(size), chunk_size=size).table.drop(
            columns=["seconds_metrics", "seconds_adapt"]
        )
        for size in (1, 4, 10)
    ]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0], check_exact=True)


def test_backbones_are_adapted_as_they_were_meta_trained(data, tmp_path):
    """A MAML backbone's inner loop (steps, lr, order) drives its ``maml`` rows, and
    study.json records what each backbone was adapted with."""
    import json

    dataset, suite, backbones = data
    trained = [
        dataclasses.replace(backbones[0], inner={"steps": 1, "lr": 0.3, "first_order": False})
    ]
    config = StudyConfig(
        suite="toy", backbones=("maml",), adaptations=("maml", "anil"), chunk_size=4
    )
    result = run_study(
        config,
        out_dir=tmp_path,
        dataset=dataset,
        suite=suite,
        backbones=trained,
        analyse=False,
        progress=False,
    )
    table = result.table.set_index(["episode", "backbone", "dummy", "adaptation"])
    maml = trained[0].model
    for ep in suite.episodes[:3]:
        sx, qx = dataset.batch(ep.support).double(), dataset.batch(ep.query).double()
        ys, yq = torch.as_tensor(ep.support_labels), torch.as_tensor(ep.query_labels)
        one = maml_adapt(maml, sx, ys, qx, yq, steps=1, lr=0.3)
        five = maml_adapt(maml, sx, ys, qx, yq, steps=5, lr=0.3)
        row = table.loc[(ep.index, "maml", "head", "maml")]
        assert row["loss"] == pytest.approx(one.loss, rel=1e-9)
        assert row["loss"] != pytest.approx(five.loss, rel=1e-6)
    settings = json.loads((tmp_path / "study.json").read_text())["config"]
    assert settings["adaptation_settings"] == {
        "maml": {
            "maml": {
                "steps": 1,
                "lr": 0.3,
                "first_order": False,
                "batch_norm": "transductive",
                "from_training": True,
            },
            "anil": {
                "steps": 100,
                "lr": "auto",
                "weight_decay": 0.0,
                "accelerated": True,
                "from_training": False,
            },
        }
    }


def test_a_study_on_the_digits(tmp_path):
    """The built-in digits as a target domain: the standard suite, stand-in backbones for
    1x28x28 images, every adaptation and metric; the report says what it saw."""
    from metaleep.backbones.models import build_backbone
    from metaleep.data.spec import load_dataset
    from metaleep.episodes.suites import load_suite
    from metaleep.study.runner import StudyBackbone

    dataset = load_dataset("digits")
    suite = load_suite("digits-5w5s", dataset)
    torch.manual_seed(0)
    backbones = [
        StudyBackbone(
            "maml",
            build_backbone("conv2-8", out_features=5).eval(),
            "maml",
            np.arange(10),
            inner={"steps": 1, "lr": 0.4, "first_order": False},
        ),
        StudyBackbone(
            "supervised",
            build_backbone("conv2-8", out_features=10).eval(),
            "supervised",
            np.arange(10),
        ),
    ]
    config = StudyConfig(suite="digits-5w5s", backbones=("maml", "supervised"), episodes=12)
    result = run_study(
        config,
        out_dir=tmp_path,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        progress=False,
        n_boot=50,
    )
    table = result.table
    assert table["suite"].eq("digits-5w5s").all() and table["episode"].nunique() == 12
    assert table["alphabets"].isna().all()  # no alphabets: empty, read back as NaN
    assert set(table["adaptation"]) == {"maml", "anil", "retrain_head", "prototype"}
    assert table["accuracy"].between(0, 1).all() and np.isfinite(table["support_loss"]).all()
    assert result.report is not None and "digits-5w5s" in result.report.read_text()
