"""Your model, your data: wrapped models, cross-domain rows, scores only, errors before work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

from metaleep.backbones import from_module
from metaleep.backbones.models import build_backbone
from metaleep.backbones.testing import toy_dataset
from metaleep.episodes import EpisodeSampler, EpisodeSpec
from metaleep.episodes.manifest import suite_from_episodes
from metaleep.metrics.registry import METRICS as METRIC_SPECS
from metaleep.study import StudyConfig, run_study, score

SPEC = EpisodeSpec(ways=5, shots=2, queries=3)
METRICS = ("leep", "nce", "h_score", "logme")


def _suite(dataset, episodes=6, pool=None):
    pool = np.arange(dataset.num_classes) if pool is None else pool
    drawn = EpisodeSampler(dataset, SPEC, classes=pool, seed=4).sample_many(episodes)
    return suite_from_episodes(
        drawn,
        [SPEC] * episodes,
        name="mine",
        dataset=dataset,
        split="all",
        part="all",
        pool=pool,
        seed=4,
    )


@pytest.fixture(scope="module")
def source():
    return toy_dataset(classes=20, per_class=8, seed=1)


@pytest.fixture(scope="module")
def target():
    # Another domain: other patterns, 16x16 images (the backbones below take 28x28).
    return toy_dataset(classes=12, per_class=6, size=16, seed=7)


def _config(**kwargs):
    base = dict(suite="mine", metrics=METRICS, chunk_size=4, temperature=2.0)
    return StudyConfig(**{**base, **kwargs})


def test_torchvision_resnet_runs_a_study(tmp_path: Path, source) -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).double().eval()
    backbone = from_module(net, name="resnet18")
    suite = _suite(source, 3, pool=np.arange(10, 20))
    result = run_study(
        _config(adaptations=("retrain_head", "prototype")),
        out_dir=tmp_path,
        dataset=source,
        suite=suite,
        backbones=[backbone],
        progress=False,
        n_boot=20,
    )
    table = result.table
    assert set(table["backbone"]) == {"resnet18"}
    assert set(table["dummy"]) == {"source"}  # a 5-way classifier: its softmax is the dummy
    assert table[list(METRICS)].notna().all().all()
    record = json.loads((tmp_path / "study.json").read_text())
    info = (
        record["config"]["backbone_info"]["resnet18"]
        if "config" in record
        else record["backbone_info"]["resnet18"]
    )
    assert info["transform"] == "grey -> 3 channels (copies)"
    assert json.dumps(record).count('"maml"') == 0  # the record lists the backbones that ran


def test_cross_domain_rows_use_the_source_prototypes(tmp_path: Path, source, target) -> None:
    torch.manual_seed(0)
    maml = build_backbone("conv2-8", out_features=5).double().eval()
    backbone = from_module(
        maml,
        name="maml",
        algorithm="fomaml",
        inner_lr=0.3,
        source_classes=np.arange(10),
        source_data=source,
        input_shape=(1, 28, 28),
    )
    suite = _suite(target, 4)
    result = run_study(
        _config(adaptations=("maml", "anil", "prototype")),
        out_dir=tmp_path,
        dataset=target,
        suite=suite,
        backbones=[backbone],
        progress=False,
        n_boot=20,
    )
    assert set(result.table["dummy"]) == {"head", "prototypes"}
    assert set(result.table["adaptation"]) == {"maml", "anil", "prototype"}
    text = (tmp_path / "study.json").read_text()
    assert '"cross_domain": true' in text
    assert "resize 16x16 -> 28x28" in text
    report = (tmp_path / "report.html").read_text()
    assert "cross-domain (toy@c20-n8-s28-seed1 -&gt; toy@c12-n6-s16-seed7)" in report
    # the prototypes are the 10 source classes of the source data (not the target's 12)
    from metaleep.study.runner import prepare_chunks

    context = prepare_chunks(_config(), target, "mine", suite.episodes, [backbone])
    assert context.outputs["maml"].logits["prototypes"].shape[1] == 10


def test_scores_only_equal_the_study_metric_columns(tmp_path: Path, source) -> None:
    torch.manual_seed(0)
    maml = build_backbone("conv2-8", out_features=5).double().eval()
    supervised = build_backbone("conv2-8", out_features=10).double().eval()
    backbones = [
        from_module(
            maml, name="maml", algorithm="fomaml", source_classes=np.arange(10), source_data=source
        ),
        from_module(
            supervised, name="supervised", source_classes=np.arange(10), source_data=source
        ),
    ]
    suite = _suite(source, 5, pool=np.arange(10, 20))
    study = run_study(
        _config(metrics=(*METRICS, "nleep"), adaptations=("prototype",)),
        out_dir=tmp_path,
        dataset=source,
        suite=suite,
        backbones=backbones,
        progress=False,
        analyse=False,
    ).table
    scores = score(backbones, suite, dataset=source, metrics=(*METRICS, "nleep"), temperature=2.0)
    keys = ["episode", "backbone", "dummy"]
    merged = study.merge(scores, on=keys, suffixes=("", "_score"))
    assert len(merged) == len(study) == len(scores)
    for metric in (*METRICS, "nleep"):
        np.testing.assert_array_equal(merged[metric], merged[f"{metric}_score"])


def test_score_accepts_modules_and_summarizes(source) -> None:
    from metaleep.study.scores import summarize_scores

    suite = _suite(source, 4, pool=np.arange(10, 20))
    nets = [
        from_module(build_backbone("conv2-8", out_features=10, seed=s), name=f"s{s}")
        for s in range(3)
    ]
    table = score(nets, suite, dataset=source, metrics=("leep", "nce"))
    assert len(table) == 3 * 4 and set(table["dummy"]) == {"source"}
    summary, ranking = summarize_scores(table, rank_by="leep")
    assert list(ranking["rank"]) == [1, 2, 3]
    assert ranking["mean"].is_monotonic_decreasing
    means = table.groupby("backbone")["leep"].mean()
    assert ranking.iloc[0]["backbone"] == means.idxmax()
    low, high = summary.loc[summary["metric"] == "leep", ["ci_low", "ci_high"]].to_numpy().T
    assert np.all(low <= high)


@pytest.fixture
def no_forward(monkeypatch: pytest.MonkeyPatch):
    """Fail the test if any backbone output is computed (errors must come before the work)."""
    import metaleep.study.runner as runner

    def refuse(*args, **kwargs):
        raise AssertionError("backbone outputs were computed before the error")

    monkeypatch.setattr(runner, "compute_outputs", refuse)


@pytest.mark.usefixtures("no_forward")
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("adaptation", r"`adaptations` must name from .*; got protoype"),
        ("maml-only", r"`adaptations` must include one that backbone 'sup'"),
        ("shape", r"backbone 'mlp' on images of shape \(1, 28, 28\).*declare the input"),
        ("head-width", r"`head` must take the embedding's 8 features"),
        ("leak", r"`suite` must use classes that backbone 'sup' was not trained on"),
        ("names", r"`backbones` must have distinct names; got sup more than once"),
    ],
)
def test_configuration_errors_come_before_any_work(case, message, tmp_path, source) -> None:
    sup = from_module(
        build_backbone("conv2-8", out_features=10),
        name="sup",
        source_classes=np.arange(10),
        source_data=source,
    )
    backbones = [sup]
    options: dict = {"adaptations": ("prototype",)}
    pool = np.arange(10, 20)
    if case == "adaptation":
        options = {"adaptations": ("prototype", "protoype")}
    elif case == "maml-only":
        options = {"adaptations": ("maml",)}
    elif case == "shape":
        backbones = [
            from_module(nn.Sequential(nn.Flatten(), nn.Linear(100, 4), nn.ReLU()), name="mlp")
        ]
    elif case == "head-width":
        backbones = [
            from_module(
                features=build_backbone("conv2-8", out_features=3).features,
                head=nn.Linear(9, 5),
                name="bad",
            )
        ]
    elif case == "leak":
        pool = np.arange(0, 10)
    elif case == "names":
        backbones = [sup, sup]
    with pytest.raises(ValueError, match=message):
        run_study(
            _config(**options),
            out_dir=tmp_path / "out",
            dataset=source,
            suite=_suite(source, 2, pool=pool),
            backbones=backbones,
            progress=False,
        )
    # nothing left behind that would block the corrected command (at most the lock file)
    left = {p.name for p in (tmp_path / "out").glob("*")} if (tmp_path / "out").exists() else set()
    assert not left & {"study.json", "results", "results.csv", "report.html"}


def test_plain_modules_are_wrapped_by_run_study(tmp_path: Path, source) -> None:
    net = build_backbone("conv2-8", out_features=10).double().eval()
    result = run_study(
        _config(adaptations=("prototype",)),
        out_dir=tmp_path,
        dataset=source,
        suite=_suite(source, 2, pool=np.arange(10, 20)),
        backbones=[net],  # type: ignore[list-item]
        progress=False,
        analyse=False,
    )
    assert set(result.table["backbone"]) == {"model0"}
    assert isinstance(result.table, pd.DataFrame)


def test_finetune_runs_on_every_backbone(tmp_path: Path, source) -> None:
    """Fine-tuning starts from the meta-learned head where it fits, else from a zero head."""
    torch.manual_seed(0)
    sup = from_module(build_backbone("conv2-8", out_features=10).double().eval(), name="sup")
    emb = from_module(
        features=build_backbone("conv2-8", out_features=3).double().features,
        name="emb",
        source_classes=np.arange(10),
        source_data=source,
    )
    result = run_study(
        _config(adaptations=("finetune",)),
        out_dir=tmp_path,
        dataset=source,
        suite=_suite(source, 2, pool=np.arange(10, 20)),
        backbones=[sup, emb],
        progress=False,
        analyse=False,
    )
    assert set(result.table["backbone"]) == {"sup", "emb"}
    assert result.table["accuracy"].between(0, 1).all()


# --- every model gets every metric it can have (issue 21) ---------------------------------------

FEATURE_METRICS = tuple(n for n, spec in METRIC_SPECS.items() if spec.input_kind == "features")


def _protonet(name: str = "proto"):
    """learn2learn's CNN4Backbone: an embedding network without a head or source data."""
    models = pytest.importorskip("learn2learn.vision.models")
    torch.manual_seed(0)
    return from_module(models.CNN4Backbone(hidden_size=8, layers=2, channels=1).double(), name=name)


def _reference(backbone, dataset, suite, metric: str) -> np.ndarray:
    """The metric on each episode's support embeddings, one episode at a time, from the
    registry's per-episode function: an independent path to the table's values."""
    from metaleep.metrics.registry import get_metric
    from metaleep.study.runner import _episode_seed

    spec = get_metric(metric)
    out = []
    model = backbone.model.eval()
    for ep in suite.episodes:
        with torch.no_grad():
            x = backbone.view(dataset).batch(ep.support).to(torch.float64)
            features = model.features(x).double().numpy()
        options = spec.select_options({"seed": _episode_seed(0, ep.index)})
        out.append(float(spec.score(features, ep.support_labels, **options)))
    return np.asarray(out)


def test_an_embedding_network_gets_every_feature_metric(target) -> None:
    # H-score, LogME, N-LEEP, shrinkage H-score, GBC, TransRate, SFDA, the centroid and the
    # cosine-spread baselines
    assert len(FEATURE_METRICS) == 9
    proto = _protonet()
    suite = _suite(target, 4)
    table = score([proto], suite, dataset=target, metrics=("leep", "nce", *FEATURE_METRICS))
    assert set(table["dummy"]) == {"none"} and len(table) == 4
    assert table[["leep", "nce"]].isna().all().all()
    for metric in FEATURE_METRICS:
        expected = _reference(proto, target, suite, metric)
        np.testing.assert_allclose(table[metric], expected, rtol=1e-7, atol=1e-10, err_msg=metric)
    from metaleep.study.scores import summarize_scores

    summary, ranking = summarize_scores(table, rank_by="logme")
    note = summary.loc[summary["metric"] == "leep", "note"].item()
    assert note.startswith("no label distribution: no 5-way head") and "--source-data" in note
    assert ranking["dummy"].tolist() == ["any"]


def test_an_embedding_network_is_adapted_and_its_missing_metrics_are_explained(
    tmp_path: Path, target
) -> None:
    proto = _protonet()
    result = run_study(
        _config(adaptations=("prototype", "retrain_head"), metrics=("leep", "nce", "logme")),
        out_dir=tmp_path,
        dataset=target,
        suite=_suite(target, 6),
        backbones=[proto],
        progress=False,
        n_boot=50,
    )
    table = result.table
    assert set(table["adaptation"]) == {"prototype", "retrain_head"}
    assert set(table["dummy"]) == {"none"} and table["accuracy"].between(0, 1).all()
    assert table["logme"].notna().all() and table["leep"].isna().all()
    record = json.loads((tmp_path / "study.json").read_text())["config"]
    assert record["no_dummy"]["proto"].startswith("no label distribution")
    corr = result.correlations
    assert corr is not None
    notes = corr.loc[corr["metric"] == "leep", "note"]
    assert notes.str.startswith("no label distribution").all()
    report = (tmp_path / "report.md").read_text()
    assert "Backbone proto: rows of dummy 'none', every feature metric and no LEEP" in report


def test_source_data_gives_an_embedding_network_leep_and_nce(source, target) -> None:
    proto = _protonet()
    suite = _suite(target, 4)
    metrics = ("leep", "nce", "logme", "gbc")
    alone = score([proto], suite, dataset=target, metrics=metrics)
    given = score([proto], suite, dataset=target, metrics=metrics, source_data={"proto": source})
    assert set(given["dummy"]) == {"prototypes"}
    assert given[["leep", "nce"]].notna().all().all()
    # feature metrics do not depend on the dummy mode: bit for bit the same
    for metric in ("logme", "gbc"):
        assert np.array_equal(alone[metric].to_numpy(), given[metric].to_numpy())


def test_backbones_with_dummy_modes_get_no_none_rows(source) -> None:
    sup = from_module(
        build_backbone("conv2-8", out_features=10).double().eval(),
        name="sup",
        source_classes=np.arange(10),
        source_data=source,
    )
    table = score([sup], _suite(source, 3, pool=np.arange(10, 20)), dataset=source)
    assert set(table["dummy"]) == {"source", "prototypes"}
    # one of them not requested: the other stays, still no none rows
    only = score(
        [sup], _suite(source, 3, pool=np.arange(10, 20)), dataset=source, dummies=("head",)
    )
    assert set(only["dummy"]) == {"none"}


def test_specs_and_modules_mix_in_one_list(tiny_backbones, target) -> None:
    mine = from_module(build_backbone("conv2-8", out_features=10).double().eval(), name="mine")
    suite = _suite(target, 3)
    table = score(
        [f"proto={tiny_backbones['protonet']}", mine], suite, dataset=target, metrics=("logme",)
    )
    assert set(table["backbone"]) == {"proto", "mine"}


# --- ranking backbones against accuracy ---------------------------------------------------------


def _naive_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1: smallest), by counting."""
    return np.array(
        [1 + (values < v).sum() + ((values == v).sum() - 1) / 2 for v in values], dtype=float
    )


def _naive_spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = _naive_ranks(x), _naive_ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def _naive_kendall_b(x: np.ndarray, y: np.ndarray) -> float:
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    n0 = concordant + discordant
    return (concordant - discordant) / np.sqrt((n0 + ties_x) * (n0 + ties_y))


def test_rank_backbones_against_naive_references() -> None:
    from metaleep.study.scores import rank_backbones

    rng = np.random.default_rng(5)
    rows = []
    for b in range(6):
        for e in range(5):
            for dummy in ("source", "prototypes"):
                rows.append(
                    {
                        "episode": e,
                        "backbone": f"b{b}",
                        "dummy": dummy,
                        "adaptation": "prototype",
                        "leep": rng.normal() + b * (dummy == "source"),
                        "nce": -rng.random() - b,
                        "logme": float(b % 3) + e,  # ties across backbones
                        "accuracy": 0.5 + 0.05 * b + 0.01 * e,
                    }
                )
    table = pd.DataFrame(rows)
    # accuracy and feature metrics do not depend on the dummy mode
    table["logme"] = table.groupby(["episode", "backbone"])["logme"].transform("first")
    per_backbone, agreement = rank_backbones(table, metrics=("leep", "nce", "logme"))
    for (dummy, metric), row in agreement.set_index(["dummy", "metric"]).iterrows():
        rows_used = table if dummy == "any" else table[table["dummy"] == dummy]
        if dummy == "any":
            rows_used = rows_used.drop_duplicates(["episode", "backbone"])
        means = rows_used.groupby("backbone")[[metric, "accuracy"]].mean()
        x, y = means[metric].to_numpy(), means["accuracy"].to_numpy()
        assert row["backbones"] == 6
        assert row["spearman"] == pytest.approx(_naive_spearman(x, y), abs=1e-12)
        assert row["kendall"] == pytest.approx(_naive_kendall_b(x, y), abs=1e-12)
    # LEEP and NCE are ranked per dummy mode, feature metrics once over every backbone
    assert set(agreement["dummy"]) == {"source", "prototypes", "any"}
    assert set(agreement.loc[agreement["metric"] == "logme", "dummy"]) == {"any"}
    leep = per_backbone[(per_backbone["metric"] == "leep") & (per_backbone["dummy"] == "source")]
    assert leep["metric_rank"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert leep["backbone"].tolist() == ["b5", "b4", "b3", "b2", "b1", "b0"]


def test_rank_backbones_says_when_means_are_constant_up_to_rounding() -> None:
    from metaleep.study.scores import rank_backbones

    table = pd.DataFrame(
        {
            "episode": 0,
            "backbone": ["a", "b", "c"],
            "dummy": "none",
            "adaptation": "prototype",
            "h_score": [4.0, 4.0 + 2e-15, 4.0 - 1e-15],  # C - 1 in exact arithmetic
            "accuracy": [0.4, 0.6, 0.5],
        }
    )
    _, agreement = rank_backbones(table, metrics=("h_score",))
    assert agreement["note"].tolist() == ["constant metric means"]
    assert np.isnan(agreement["spearman"]).all()


def test_rank_backbones_needs_three_backbones() -> None:
    from metaleep.study.scores import rank_backbones

    table = pd.DataFrame(
        {
            "episode": [0, 0],
            "backbone": ["a", "b"],
            "dummy": "none",
            "adaptation": "prototype",
            "logme": [1.0, 2.0],
            "leep": np.nan,
            "accuracy": [0.4, 0.6],
        }
    )
    _, agreement = rank_backbones(table, metrics=("leep", "logme"))
    assert agreement["metric"].tolist() == ["logme"]  # no LEEP in rows of dummy none
    assert agreement["note"].tolist() == ["fewer than 3 backbones"]
    assert np.isnan(agreement["spearman"]).all()
