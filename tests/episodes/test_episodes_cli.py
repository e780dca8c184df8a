"""``metaleep episodes`` through typer's CliRunner, on a fabricated data set."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.data import spec as data_spec
from metaleep.episodes import suites
from metaleep.episodes.manifest import manifest_bytes, read_manifest
from metaleep.episodes.sampler import EpisodeSampler
from metaleep.episodes.spec import EpisodeSpec

runner = CliRunner()


@pytest.fixture
def patched(toy, toy_split, monkeypatch):
    """The CLI loads the toy data set, and the toy split stands in for the omniglot split."""
    monkeypatch.setattr(data_spec, "load_dataset", lambda name, **kw: toy)
    real_pool = suites.class_pool

    def pool(dataset, split, part, split_obj=None):
        return real_pool(dataset, split, part, toy_split if split == "omniglot" else split_obj)

    monkeypatch.setattr(suites, "class_pool", pool)
    return toy


def test_sample_writes_the_suite_the_library_builds(patched, toy_split, tmp_path):
    out = tmp_path / "five.csv"
    args = ["episodes", "sample", "--ways", "5", "--shots", "2", "--queries", "3"]
    args += ["--episodes", "12", "--seed", "9", "--alphabets", "same", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 12 episodes" in result.output
    suite = read_manifest(out, dataset=patched)
    sampler = EpisodeSampler(patched, EpisodeSpec(5, 2, 3, "same"), classes=toy_split.test, seed=9)
    assert list(suite.episodes) == sampler.sample_many(12)
    assert suite.name == "five"
    assert suite.command.startswith("metaleep episodes sample --data glyphs")
    assert pd.read_csv(out, comment="#")["alphabets"].str.count(r"\|").eq(0).all()
    # Running again gives the same bytes.
    again = tmp_path / "again.csv"
    assert runner.invoke(app, [*args[:-1], str(again), "--name", "five"]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_sample_with_split_all(patched, tmp_path):
    out = tmp_path / "all.csv"
    result = runner.invoke(
        app, ["episodes", "sample", "--split", "all", "--episodes", "5", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    suite = read_manifest(out)
    assert (suite.split, suite.part, suite.pool.size) == ("all", "all", patched.num_classes)


def test_sample_standard_suite_reproduces_the_library_bytes(patched, toy_split, tmp_path):
    out = tmp_path / "smoke.csv"
    result = runner.invoke(
        app, ["episodes", "sample", "--suite", "glyphs-smoke", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    expected = suites.build_suite(suites.STANDARD_SUITES["glyphs-smoke"], patched, toy_split)
    assert out.read_bytes() == manifest_bytes(expected)
    assert read_manifest(out).command == "metaleep episodes sample --suite glyphs-smoke"


def test_sample_all_standard_suites_into_a_folder(patched, tmp_path):
    result = runner.invoke(app, ["episodes", "sample", "--suite", "all", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in tmp_path.glob("*.csv")) == sorted(suites.STANDARD_SUITES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ways", "1", "--out", "x.csv"], "`--ways` must be an integer >= 2; got 1."),
        (["--ways", "5"], "`--out` must name the manifest file to write; got nothing."),
        (
            ["--shots", "6", "--queries", "15", "--out", "x.csv"],
            "`--queries` must be at most 14 with 6 shots (every class of the pool gives "
            "6 + the queries images); got 15, and 75 classes have fewer than 21 images: "
            "'c075' (20 images)",
        ),
        (["--suite", "glyphs-1w1s"], "`--suite` must be all or one of glyphs-5w1s,"),
    ],
)
def test_sample_errors(patched, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["episodes", "sample", *args])
    assert result.exit_code == 2
    assert result.output.startswith(f"metaleep episodes sample: {message}")
    assert not (tmp_path / "x.csv").exists()


def test_show(patched, tmp_path):
    out = tmp_path / "s.csv"
    runner.invoke(app, ["episodes", "sample", "--episodes", "7", "--out", str(out)])
    result = runner.invoke(app, ["episodes", "show", str(out), "--head", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name:", "s"]
    assert f"dataset:                toy@{patched.version}" in lines
    assert "split:                  omniglot/test" in lines
    assert "specs:                  {'5w1s15q': 7}" in lines
    episodes = [line for line in lines if line.startswith("episode ")]
    assert len(episodes) == 2 and episodes[0].startswith("episode 0 5w1s15q: classes [")
    summary = json.loads(runner.invoke(app, ["episodes", "show", str(out), "--json"]).output)
    assert summary["episodes"] == 7 and summary["specs"] == {"5w1s15q": 7}
    assert summary["classes_used"] == len(
        np.unique(np.concatenate([e.classes for e in read_manifest(out).episodes]))
    )


def test_show_errors(tmp_path):
    result = runner.invoke(app, ["episodes", "show", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "SUITE must be a standard suite" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("episode\n")
    result = runner.invoke(app, ["episodes", "show", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"metaleep episodes show: Manifest {bad}: not a metaleep episode manifest"
    )


def test_list():
    result = runner.invoke(app, ["episodes", "list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == list(suites.STANDARD_SUITES)
    assert "600 episodes" in result.output.splitlines()[0]


def test_sample_from_a_benchmark_folder(tmp_path):
    import pickle

    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (36, 84, 84, 3), dtype=np.uint8)
    class_dict = {f"n{c:02d}": list(range(c, 36, 6)) for c in range(6)}  # 6 classes x 6
    with open(tmp_path / "mini-imagenet-cache-test.pkl", "wb") as fh:
        pickle.dump({"image_data": images, "class_dict": class_dict}, fh)
    out = tmp_path / "mini.csv"
    args = ["episodes", "sample", "--dataset", "mini-imagenet", "--root", str(tmp_path)]
    args += ["--split", "all", "--ways", "3", "--shots", "2", "--queries", "3"]
    result = runner.invoke(app, [*args, "--episodes", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from metaleep.data.benchmarks import load_benchmark

    suite = read_manifest(out, dataset=load_benchmark("mini-imagenet", tmp_path))
    assert suite.dataset_id == "mini-imagenet" and suite.alphabets == ((),) * 4
    assert f"--data mini-imagenet:{tmp_path} --mode test --split all" in suite.command
    # the --data form gives the same suite
    again = tmp_path / "again.csv"
    spec = ["episodes", "sample", "--data", f"mini-imagenet:{tmp_path}", *args[6:]]
    result = runner.invoke(app, [*spec, "--episodes", "4", "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert read_manifest(again).fingerprint == read_manifest(out).fingerprint
    missing = runner.invoke(app, [*args[:5], str(tmp_path / "none"), *args[6:], "--out", "x.csv"])
    assert missing.exit_code == 2
    assert missing.output.startswith(
        "metaleep episodes sample: `--data` must contain the mini-imagenet files"
    )
