"""Suite recipes, spec mixes, building, loading, and the standard suites' registry."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from metaleep.data import spec as data_spec
from metaleep.episodes import suites
from metaleep.episodes.manifest import manifest_bytes, write_manifest
from metaleep.episodes.sampler import EpisodeSampler
from metaleep.episodes.spec import EpisodeSpec
from metaleep.episodes.suites import (
    STANDARD_SUITES,
    SpecMix,
    SuiteRecipe,
    build_suite,
    class_pool,
    load_suite,
)

FIXED = SuiteRecipe("toy-fixed", 25, EpisodeSpec(5, 1, 4), seed=4)


def test_spec_mix_is_deterministic_and_covers_every_value():
    mix = SpecMix()
    specs = [mix.spec_for(0, i) for i in range(600)]
    assert specs == [mix.spec_for(0, i) for i in range(600)]
    assert [mix.spec_for(0, i) for i in reversed(range(600))][::-1] == specs
    assert {s.ways for s in specs} == {2, 5, 10, 20}
    assert {s.shots for s in specs} == {1, 2, 5}
    assert {s.alphabets for s in specs} == {"same", "mixed"} and {s.queries for s in specs} == {15}
    # Roughly uniform: each of the 24 combinations appears (600 draws, expected 25 each).
    combos = Counter((s.ways, s.shots, s.alphabets) for s in specs)
    assert len(combos) == 24 and min(combos.values()) >= 8
    assert [mix.spec_for(1, i) for i in range(20)] != specs[:20]


def test_spec_mix_stream_is_independent_of_the_samplers():
    # spec_for(seed, i) uses SeedSequence(seed, spawn_key=(i, 0)): the first child of the
    # sequence the sampler uses for episode i.
    child = np.random.SeedSequence(0, spawn_key=(7,)).spawn(1)[0]
    rng = np.random.default_rng(child)
    mix = SpecMix()
    expected = (mix.ways[rng.integers(4)], mix.shots[rng.integers(3)])
    spec = mix.spec_for(0, 7)
    assert (spec.ways, spec.shots) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": ()}, "`ways` must be a non-empty tuple; got ()."),
        ({"shots": [1]}, "`shots` must be a non-empty tuple; got [1]."),
        ({"alphabets": ("all",)}, "`alphabets` must hold rules among any, same, mixed; got 'all'."),
        ({"ways": (1, 5)}, "`ways` must be an integer >= 2; got 1."),
    ],
)
def test_spec_mix_validation(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SpecMix(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"episodes": 0}, ValueError, "`episodes` must be an integer >= 1; got 0."),
        ({"episodes": 2.5}, TypeError, "`episodes` must be an integer; got 2.5."),
        ({"seed": -3}, ValueError, "`seed` must be a non-negative integer; got -3."),
        ({"spec": "5w1s"}, TypeError, "`spec` must be an EpisodeSpec or a SpecMix; got '5w1s'."),
        (
            {"part": "holdout"},
            ValueError,
            "`part` must be one of train, validation, test for split 'omniglot'; got 'holdout'.",
        ),
        (
            {"split": "all", "part": "test"},
            ValueError,
            "`part` must be one of all for split 'all'; got 'test'.",
        ),
    ],
)
def test_recipe_validation(kwargs, error, message):
    fields = {"name": "x", "episodes": 10, "spec": EpisodeSpec()} | kwargs
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        SuiteRecipe(**fields)


def test_commands():
    assert (
        STANDARD_SUITES["glyphs-mixed"].command == "metaleep episodes sample --suite glyphs-mixed"
    )
    assert FIXED.command == (
        "metaleep episodes sample --data glyphs --split omniglot --part test --ways 5 "
        "--shots 1 --queries 4 --alphabets any --episodes 25 --seed 4 --name toy-fixed"
    )
    assert SuiteRecipe("m", 5, SpecMix()).command == ""


def test_build_suite_matches_the_sampler(toy, toy_split):
    suite = build_suite(FIXED, toy, toy_split)
    sampler = EpisodeSampler(toy, FIXED.spec, classes=toy_split.test, seed=4)  # type: ignore[arg-type]
    assert list(suite.episodes) == sampler.sample_many(25)
    assert np.array_equal(suite.pool, np.sort(toy_split.test))
    assert (suite.split, suite.part, suite.seed, suite.name) == ("omniglot", "test", 4, "toy-fixed")
    alphabet = toy.classes["alphabet"].to_numpy()
    assert suite.alphabets == tuple(
        tuple(sorted(set(alphabet[ep.classes]))) for ep in suite.episodes
    )


def test_build_mixed_suite(toy, toy_split):
    recipe = SuiteRecipe("toy-mixed", 120, SpecMix(ways=(2, 5, 10), shots=(1, 2, 5), queries=(3,)))
    suite = build_suite(recipe, toy, toy_split)
    alphabet = toy.classes["alphabet"].to_numpy()
    for i, (ep, spec) in enumerate(zip(suite.episodes, suite.specs, strict=True)):
        assert spec == recipe.spec_for(i)
        assert (ep.ways, ep.shots, ep.queries) == (spec.ways, spec.shots, spec.queries)
        n_alphabets = len(set(alphabet[ep.classes]))
        assert n_alphabets == 1 if spec.alphabets == "same" else n_alphabets >= 2
        expected = EpisodeSampler(toy, spec, classes=toy_split.test, seed=0).sample(i)
        assert ep == expected


def test_episode_i_is_unchanged_when_the_suite_grows(toy, toy_split):
    mix = SpecMix(ways=(2, 5), shots=(1, 2), queries=(3,))
    short = build_suite(SuiteRecipe("a", 15, mix), toy, toy_split)
    long = build_suite(SuiteRecipe("a", 60, mix), toy, toy_split)
    assert long.episodes[:15] == short.episodes and long.specs[:15] == short.specs


def test_same_seed_same_bytes_other_seed_other_bytes(toy, toy_split):
    a = manifest_bytes(build_suite(FIXED, toy, toy_split))
    b = manifest_bytes(build_suite(FIXED, toy, toy_split))
    c = manifest_bytes(
        build_suite(SuiteRecipe("toy-fixed", 25, FIXED.spec, seed=5), toy, toy_split)
    )
    assert a == b and a != c


def test_split_all_uses_every_class(toy):
    suite = build_suite(SuiteRecipe("all", 30, EpisodeSpec(5, 1, 1), split="all", part="all"), toy)
    assert suite.pool.tolist() == list(range(toy.num_classes))
    assert class_pool(toy, "all", "all").tolist() == list(range(150))


def test_class_pool_checks_the_split_name(toy, toy_split):
    message = "`split` must be the 'other' split; got a split named 'omniglot'."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        class_pool(toy, "other", "test", toy_split)


def test_standard_registry():
    assert set(STANDARD_SUITES) == {
        "glyphs-5w1s",
        "glyphs-5w5s",
        "glyphs-20w1s",
        "glyphs-mixed",
        "glyphs-5w5s-same",
        "glyphs-smoke",
        "digits-5w1s",
        "digits-5w5s",
    }
    for name, recipe in STANDARD_SUITES.items():
        assert recipe.name == name and recipe.dataset == name.split("-")[0]
        where = ("omniglot", "test") if recipe.dataset == "glyphs" else ("all", "all")
        assert (recipe.split, recipe.part, recipe.seed) == (*where, 0)
    assert STANDARD_SUITES["glyphs-smoke"].episodes == 20
    assert {r.episodes for n, r in STANDARD_SUITES.items() if n != "glyphs-smoke"} == {600}


def test_smoke_is_the_prefix_of_5w1s(toy, toy_split):
    smoke = build_suite(STANDARD_SUITES["glyphs-smoke"], toy, toy_split)
    full = build_suite(STANDARD_SUITES["glyphs-5w1s"], toy, toy_split)
    assert full.episodes[:20] == smoke.episodes
    paired = build_suite(STANDARD_SUITES["glyphs-5w5s"], toy, toy_split)
    assert all(
        np.array_equal(a.classes, b.classes)
        for a, b in zip(full.episodes, paired.episodes, strict=True)
    )


def test_load_suite_by_path_and_by_name(toy, toy_split, tmp_path, monkeypatch):
    suite = build_suite(STANDARD_SUITES["glyphs-smoke"], toy, toy_split)
    path = write_manifest(suite, tmp_path / "episodes" / "glyphs-smoke.csv")
    assert load_suite(path, dataset=toy).episodes == suite.episodes
    assert load_suite(str(path)).episodes == suite.episodes
    # By name: the checkout's file when there is one ...
    (tmp_path / "episodes" / "README.md").write_text("x")
    monkeypatch.setattr(suites, "episodes_dir", lambda: tmp_path / "episodes")
    assert suites.standard_suite_path("glyphs-smoke") == path
    assert suites.standard_suite_path("glyphs-5w1s") is None
    assert load_suite("glyphs-smoke").episodes == suite.episodes
    # other data: what to do instead, never "regenerate" the package's own file
    with pytest.raises(
        ValueError, match=r"standard suite of the toy@v1 data; got data toy@v2"
    ) as e:
        load_suite(
            "glyphs-smoke", dataset=type(toy)(toy.images, toy.labels, toy.classes, "toy", "v2")
        )
    assert "Regenerate" not in str(e.value) and "--out my-suite.csv" in str(e.value)
    # ... and otherwise the suite regenerated from its recipe, never on other data
    with pytest.raises(ValueError, match=r"^`suite` glyphs-5w1s is a standard suite of the glyphs"):
        load_suite("glyphs-5w1s", dataset=toy)
    monkeypatch.setattr(data_spec, "load_dataset", lambda name, **kw: toy)
    regenerated = load_suite("glyphs-5w1s", split=toy_split)
    assert regenerated.episodes[:20] == suite.episodes and len(regenerated) == 600


def test_load_suite_unknown():
    message = (
        "`name_or_path` must be a standard suite (glyphs-5w1s, glyphs-5w5s, glyphs-20w1s, "
        "glyphs-mixed, glyphs-5w5s-same, glyphs-smoke, digits-5w1s, digits-5w5s) or an "
        "existing manifest file; "
        "got 'glyphs-9w9s'."
    )
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_suite("glyphs-9w9s")


def test_within_alphabet_suite_draws_each_episode_from_one_alphabet():
    suite = load_suite("glyphs-5w5s-same")
    assert len(suite) == 600 and suite.spec_counts() == {"5w5s15q-same": 600}
    assert all(len(alphabets) == 1 for alphabets in suite.alphabets)
    assert len({a[0] for a in suite.alphabets}) > 1  # not all from one alphabet
