"""The committed standard suite files in ``episodes/``: consistent, regenerable byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from metaleep.data.base import ImageDataset
from metaleep.episodes.manifest import manifest_bytes, read_manifest
from metaleep.episodes.spec import EpisodeSpec
from metaleep.episodes.suites import (
    STANDARD_SUITES,
    SpecMix,
    build_suite,
    episodes_dir,
    load_suite,
    standard_suite_path,
)

EPISODES = Path(__file__).resolve().parents[2] / "episodes"
INSTANCES = 20  # load_glyphs() default, the data set the standard suites are drawn from


@pytest.fixture(scope="module")
def bank_classes():
    from metaleep.data.glyphs import load_bank

    return load_bank().classes_frame()


@pytest.fixture(scope="module")
def glyph_version() -> str:
    from metaleep.data.glyphs import cache_key

    return cache_key(0, INSTANCES).removeprefix("glyphs-")


@pytest.fixture(scope="module")
def glyph_labels_only(bank_classes, glyph_version) -> ImageDataset:
    """The glyph data set's labels, classes and version with 1x1 blank images.

    Sampling reads only labels and classes, so this gives the real suites without rendering
    25,000 images (load_glyphs documents the class-major layout used here; the slow test below
    checks against the real data set).
    """
    labels = np.repeat(np.arange(len(bank_classes)), INSTANCES)
    images = torch.zeros((labels.size, 1, 1, 1), dtype=torch.uint8)
    return ImageDataset(images, labels, bank_classes, "glyphs", glyph_version)


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    from metaleep.data.digits import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def sources(glyph_labels_only, digits) -> dict[str, ImageDataset]:
    """The data set each standard suite is drawn from, by recipe ``dataset`` name."""
    return {"glyphs": glyph_labels_only, "digits": digits}


@pytest.fixture(scope="module")
def files() -> dict[str, object]:
    return {name: read_manifest(EPISODES / f"{name}.csv") for name in STANDARD_SUITES}


def test_the_checkout_folder_is_found():
    assert episodes_dir() == EPISODES
    for name in STANDARD_SUITES:
        assert standard_suite_path(name) == EPISODES / f"{name}.csv"
    assert sorted(p.stem for p in EPISODES.glob("*.csv")) == sorted(STANDARD_SUITES)


def test_files_match_their_recipes(files, sources, bank_classes):
    from metaleep.data.splits import get_split

    pools = {
        "glyphs": ("omniglot", "test", get_split(bank_classes, name="omniglot").test),
        "digits": ("all", "all", np.arange(10)),
    }
    assert {recipe.dataset for recipe in STANDARD_SUITES.values()} == set(pools)
    for name, recipe in STANDARD_SUITES.items():
        suite = files[name]
        split, part, pool = pools[recipe.dataset]
        assert name.startswith(f"{recipe.dataset}-")
        assert (suite.name, suite.seed, suite.split, suite.part) == (name, 0, split, part)
        assert suite.dataset_id == recipe.dataset
        assert suite.dataset_version == sources[recipe.dataset].version, (
            f"episodes/{name}.csv was made for another {recipe.dataset} data set version; "
            "regenerate the standard files with `metaleep episodes sample --suite all`"
        )
        assert suite.command == f"metaleep episodes sample --suite {name}"
        assert suite.description == recipe.description and len(suite) == recipe.episodes
        assert [ep.index for ep in suite.episodes] == list(range(recipe.episodes))
        assert list(suite.specs) == [recipe.spec_for(i) for i in range(recipe.episodes)]
        assert np.array_equal(suite.pool, pool)


def test_alphabets_follow_the_rules(files, bank_classes):
    alphabet = bank_classes["alphabet"].to_numpy()
    mixed = files["glyphs-mixed"]
    seen = set()
    for ep, spec, recorded in zip(mixed.episodes, mixed.specs, mixed.alphabets, strict=True):
        actual = tuple(sorted(set(alphabet[ep.classes])))
        assert recorded == actual
        assert len(actual) == 1 if spec.alphabets == "same" else len(actual) >= 2
        seen.add((spec.ways, spec.shots, spec.alphabets))
    assert len(seen) == 24  # every (ways, shots, rule) combination occurs
    assert isinstance(STANDARD_SUITES["glyphs-mixed"].spec, SpecMix)


def test_smoke_is_a_prefix_and_shots_are_paired(files):
    assert files["glyphs-smoke"].episodes == files["glyphs-5w1s"].episodes[:20]
    for prefix in ("glyphs", "digits"):
        one, five = files[f"{prefix}-5w1s"].episodes, files[f"{prefix}-5w5s"].episodes
        for a, b in zip(one, five, strict=True):
            assert np.array_equal(a.classes, b.classes)
    assert files["glyphs-20w1s"].spec_counts() == {EpisodeSpec(20, 1, 15).name: 600}


def test_every_standard_file_regenerates_byte_for_byte(sources):
    for name, recipe in STANDARD_SUITES.items():
        expected = (EPISODES / f"{name}.csv").read_bytes()
        regenerated = manifest_bytes(build_suite(recipe, sources[recipe.dataset]))
        assert regenerated == expected, (
            f"episodes/{name}.csv differs from its regeneration: run "
            f"`metaleep episodes sample --suite {name}` and commit the file if the change is meant"
        )


def test_readme_documents_every_suite():
    readme = (EPISODES / "README.md").read_text()
    for name, recipe in STANDARD_SUITES.items():
        assert f"`metaleep episodes sample --suite {name}`" in readme
        assert re.search(rf"\| `{name}\.csv` \| {recipe.episodes} \|", readme)
    assert "format_version" in readme and "checksum" in readme


@pytest.mark.slow
def test_standard_suites_on_the_real_glyph_data_set(tmp_path):
    """Loads the real data set (renders ~28k images unless cached): files validate against it,
    and the CLI regenerates the smoke suite byte for byte."""
    from typer.testing import CliRunner

    from metaleep.cli import app
    from metaleep.data.glyphs import load_glyphs

    dataset = load_glyphs()
    for name, recipe in STANDARD_SUITES.items():
        if recipe.dataset == "glyphs":
            load_suite(name, dataset)  # validate_against: version, classes, indices, labels, ...
    out = tmp_path / "smoke.csv"
    result = CliRunner().invoke(
        app, ["episodes", "sample", "--suite", "glyphs-smoke", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (EPISODES / "glyphs-smoke.csv").read_bytes()
    # A custom CLI suite on the real data: same-alphabet episodes from the omniglot test split.
    custom = tmp_path / "custom.csv"
    args = ["episodes", "sample", "--ways", "20", "--shots", "5", "--alphabets", "same"]
    result = CliRunner().invoke(app, [*args, "--episodes", "30", "--out", str(custom)])
    assert result.exit_code == 0, result.output
    suite = read_manifest(custom, dataset=dataset)
    assert all(len(a) == 1 for a in suite.alphabets)


def test_digit_suites_validate_against_the_digits(digits):
    """The digit files check against the real data set (labels, version, index range), and
    without the file the suite regenerates from its recipe with the same episodes."""
    for name in ("digits-5w1s", "digits-5w5s"):
        suite = load_suite(name, digits)
        labels = digits.labels
        for ep in suite.episodes[:50]:
            assert np.array_equal(labels[ep.support], ep.classes[ep.support_labels])
            assert np.array_equal(labels[ep.query], ep.classes[ep.query_labels])
            assert len(set(ep.support) | set(ep.query)) == ep.support.size + ep.query.size
        rebuilt = build_suite(STANDARD_SUITES[name], digits)
        assert rebuilt.episodes == suite.episodes
    # every digit occurs and class sets repeat (252 possible sets of 5 among 10)
    used = {tuple(sorted(ep.classes)) for ep in load_suite("digits-5w5s").episodes}
    assert 100 < len(used) <= 252
