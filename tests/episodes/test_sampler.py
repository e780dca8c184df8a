"""EpisodeSpec and EpisodeSampler: validation, determinism, episode structure, alphabet rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from metaleep.episodes.sampler import EpisodeSampler, episode_rng, label_index
from metaleep.episodes.spec import Episode, EpisodeSpec

SPEC = EpisodeSpec(ways=5, shots=2, queries=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": 1}, "`ways` must be an integer >= 2; got 1."),
        ({"shots": 0}, "`shots` must be an integer >= 1; got 0."),
        ({"queries": 0}, "`queries` must be an integer >= 1; got 0."),
        ({"ways": 2.0}, "`ways` must be an integer >= 2; got 2.0."),
        ({"shots": True}, "`shots` must be an integer >= 1; got True."),
        ({"alphabets": "some"}, "`alphabets` must be one of any, same, mixed; got 'some'."),
    ],
)
def test_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EpisodeSpec(**kwargs)


def test_spec_properties():
    spec = EpisodeSpec(ways=20, shots=5, queries=15, alphabets="same")
    assert (spec.per_class, spec.n_support, spec.n_query) == (20, 100, 300)
    assert spec.name == "20w5s15q-same" and EpisodeSpec(5, 1, 15).name == "5w1s15q"
    assert EpisodeSpec(np.int64(5)).ways == 5 and type(EpisodeSpec(np.int64(5)).ways) is int


def test_more_shots_than_a_class_has(toy_factory):
    small = toy_factory(images_per_class=20)
    message = (
        "`queries` must be at most 14 with 6 shots (every class of the pool gives 6 + the "
        "queries images); got 15, and 150 classes have fewer than 21 images: 'c000' (20 images), "
        "'c001' (20 images), 'c002' (20 images), 'c003' (20 images), 'c004' (20 images) and 145 "
        "more. Take fewer `queries`, or leave small classes out with `min_images` 21."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EpisodeSampler(small, EpisodeSpec(ways=5, shots=6, queries=15))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "`seed` must be a non-negative integer; got -1."),
        ({"classes": [0, 0, 1]}, "`classes` must be distinct class ids; got [0, 0, 1]."),
        (
            {"classes": [0, 500]},
            "`classes` must be class ids of the data set; got unknown ids [500].",
        ),
        ({"classes": [0, 1, 2]}, "`ways` must be at most the 3 classes in the pool; got 5."),
    ],
)
def test_sampler_validation(toy, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EpisodeSampler(toy, SPEC, **kwargs)


def test_alphabet_rule_errors(toy):
    one_alphabet = np.flatnonzero(toy.classes["alphabet"].to_numpy() == "Alpha")
    message = (
        "`ways` must be at most the classes of some alphabet in the pool for alphabets='same' "
        "(largest has 25); got 26."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EpisodeSampler(toy, EpisodeSpec(26, 1, 1, "same"))
    with pytest.raises(ValueError, match=r"^`alphabets` must name a rule the pool can satisfy"):
        EpisodeSampler(toy, EpisodeSpec(5, 1, 1, "mixed"), classes=one_alphabet)
    with pytest.raises(ValueError, match=r"^`alphabets` must be given \(or the data set must"):
        EpisodeSampler(label_index(toy), EpisodeSpec(5, 1, 1, "same"))


def test_episode_structure(toy):
    sampler = EpisodeSampler(toy, SPEC, seed=3)
    for ep in sampler.sample_many(50):
        assert ep.support.shape == (10,) and ep.query.shape == (15,)
        assert len(np.unique(ep.classes)) == 5
        assert np.intersect1d(ep.support, ep.query).size == 0
        assert len(np.unique(np.concatenate([ep.support, ep.query]))) == 25
        # Relabelled targets are 0..N-1, class-major, and name the true classes.
        assert ep.support_labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        assert ep.query_labels.tolist() == np.repeat(np.arange(5), 3).tolist()
        assert np.array_equal(toy.labels[ep.support], ep.classes[ep.support_labels])
        assert np.array_equal(toy.labels[ep.query], ep.classes[ep.query_labels])


def test_pool_is_respected(toy, toy_split):
    sampler = EpisodeSampler(toy, SPEC, classes=toy_split.test, seed=1)
    used = np.unique(np.concatenate([ep.classes for ep in sampler.sample_many(100)]))
    assert np.isin(used, toy_split.test).all()
    assert used.size > 0.9 * toy_split.test.size  # the pool is actually explored


def test_alphabet_rules(toy):
    alphabet = toy.classes["alphabet"].to_numpy()
    same = EpisodeSampler(toy, EpisodeSpec(5, 1, 1, "same"), seed=0)
    mixed = EpisodeSampler(toy, EpisodeSpec(2, 1, 1, "mixed"), seed=0)
    for i in range(100):
        assert len(set(alphabet[same.sample(i).classes])) == 1
        assert len(set(alphabet[mixed.sample(i).classes])) >= 2
    chosen = {alphabet[same.sample(i).classes[0]] for i in range(100)}
    assert len(chosen) == 6  # every alphabet gets "same" episodes
    assert same.alphabets_of(same.sample(0)) == [alphabet[same.sample(0).classes[0]]]


def test_any_rule_mixes_alphabets_sometimes(toy):
    alphabet = toy.classes["alphabet"].to_numpy()
    sampler = EpisodeSampler(toy, EpisodeSpec(2, 1, 1), seed=0)
    counts = [len(set(alphabet[sampler.sample(i).classes])) for i in range(200)]
    assert 1 in counts and 2 in counts


def test_episode_i_depends_only_on_seed_and_i(toy):
    sampler = EpisodeSampler(toy, SPEC, seed=11)
    forward = sampler.sample_many(40)
    backward = [sampler.sample(i) for i in reversed(range(40))][::-1]
    assert forward == backward
    assert sampler.sample_many(10, start=30) == forward[30:]
    # A fresh sampler, a longer run, and an iterator all agree.
    again = EpisodeSampler(toy, SPEC, seed=11).sample_many(80)
    assert again[:40] == forward
    it = iter(sampler)
    assert [next(it) for _ in range(5)] == forward[:5]
    assert EpisodeSampler(toy, SPEC, seed=12).sample(0) != forward[0]


def test_episode_rng_is_the_spawned_child():
    children = np.random.SeedSequence(5).spawn(4)
    for i, child in enumerate(children):
        expected = np.random.default_rng(child).integers(0, 1 << 30, 8)
        assert np.array_equal(episode_rng(5, i).integers(0, 1 << 30, 8), expected)


def test_same_episodes_in_a_subprocess(toy):
    index = {c: idx.tolist() for c, idx in label_index(toy).items()}
    code = (
        "import json, sys\n"
        "from metaleep.episodes.sampler import EpisodeSampler\n"
        "from metaleep.episodes.spec import EpisodeSpec\n"
        "index = {int(k): v for k, v in json.load(sys.stdin).items()}\n"
        "s = EpisodeSampler(index, EpisodeSpec(5, 2, 3), seed=11)\n"
        "print(json.dumps([[e.classes.tolist(), e.support.tolist(), e.query.tolist()]"
        " for e in (s.sample(i) for i in (17, 3, 0))]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(index), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    sampler = EpisodeSampler(index, SPEC, seed=11)
    expected = [
        [e.classes.tolist(), e.support.tolist(), e.query.tolist()]
        for e in (sampler.sample(i) for i in (17, 3, 0))
    ]
    assert json.loads(out.stdout) == expected


def test_label_index_matches_a_naive_loop(toy):
    naive: dict[int, list[int]] = {}
    for i, label in enumerate(toy.labels.tolist()):
        naive.setdefault(label, []).append(i)
    index = label_index(toy)
    assert sorted(index) == sorted(naive)
    assert all(index[c].tolist() == naive[c] for c in naive)
    with pytest.raises(TypeError, match=r"^`source` must be an ImageDataset, a learn2learn"):
        label_index([1, 2, 3])


def test_episode_equality_and_shape_properties():
    ep = Episode.from_indices(2, [7, 9], [[1, 2], [3, 4]], [[5], [6]])
    assert (ep.ways, ep.shots, ep.queries) == (2, 2, 1)
    assert ep == Episode.from_indices(2, [7, 9], [[1, 2], [3, 4]], [[5], [6]])
    assert ep != Episode.from_indices(3, [7, 9], [[1, 2], [3, 4]], [[5], [6]])
    assert ep != Episode.from_indices(2, [7, 9], [[1, 2], [3, 4]], [[6], [5]])


# --- small and uneven classes (issue 21) --------------------------------------------------------


def _uneven(sizes: dict[str, int]):
    import pandas as pd
    import torch

    from metaleep.data.base import ImageDataset

    labels = np.repeat(np.arange(len(sizes)), list(sizes.values()))
    images = torch.zeros(labels.size, 1, 2, 2, dtype=torch.uint8)
    return ImageDataset(images, labels, pd.DataFrame({"name": list(sizes)}), "uneven", "v1")


@pytest.mark.parametrize("shots", [1, 2, 5, 9])
def test_queries_fit_the_smallest_class(shots):
    from metaleep.episodes.sampler import fit_queries

    data = _uneven({"cat": 14, "dog": 30, "emu": 10, "fox": 22})
    expected = min(15, min(14, 30, 10, 22) - shots)  # from the definition
    assert fit_queries(data, shots) == expected
    # and episodes of that many queries can be drawn from every class
    sampler = EpisodeSampler(data, EpisodeSpec(ways=4, shots=shots, queries=expected))
    assert sampler.sample(0).query.size == 4 * expected
    # at most 15, and only over the pool
    assert fit_queries(data, 1, classes=[1, 3]) == 15


def test_a_class_too_small_for_any_query_is_named():
    from metaleep.episodes.sampler import fit_queries

    data = _uneven({"cat": 3, "dog": 30, "emu": 5})
    message = (
        "`shots` must leave at least one query image in every class of the pool; got 5, and 2 "
        "classes have 5 images or fewer: 'cat' (3 images), 'emu' (5 images). Drop them with "
        "`min_images` 6, or take fewer `shots`."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit_queries(data, 5)


def test_too_many_queries_name_the_classes_and_the_largest_value():
    data = _uneven({"cat": 14, "dog": 30, "emu": 12})
    message = (
        "`queries` must be at most 7 with 5 shots (every class of the pool gives 5 + the "
        "queries images); got 15, and 2 classes have fewer than 20 images: 'emu' (12 images), "
        "'cat' (14 images). Take fewer `queries`, or leave small classes out with `min_images` 20."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EpisodeSampler(data, EpisodeSpec(ways=2, shots=5, queries=15))


def test_min_images_leaves_small_classes_out_of_the_suite():
    from metaleep.episodes.suites import build_suite, sampled_recipe

    data = _uneven({"cat": 3, "dog": 30, "emu": 12, "fox": 9})
    recipe = sampled_recipe(data, name="u", ways=2, shots=2, episodes=20, min_images=9)
    suite = build_suite(recipe, data)
    assert suite.pool.tolist() == [1, 2, 3]  # cat left out
    assert suite.specs[0].queries == 7  # fox: 9 images - 2 shots
    used = {int(c) for ep in suite.episodes for c in ep.classes}
    assert 0 not in used
    assert "--min-images 9" in suite.command and "classes of at least 9 images" in suite.description
    with pytest.raises(ValueError, match=r"^`min_images` must leave at least 2 classes"):
        sampled_recipe(data, name="u", ways=2, shots=2, min_images=20)


def test_a_suite_records_the_loading_options_it_was_sampled_with():
    from metaleep.episodes.suites import recorded_options, sampled_recipe

    data = _uneven({"cat": 8, "dog": 8})
    recipe = sampled_recipe(
        data,
        name="u",
        ways=2,
        shots=1,
        data="imagefolder:/my pets",
        dataset_options="--image-size 84x96 --channels 3",
    )
    command = recipe.command
    assert command.startswith("metaleep episodes sample --data 'imagefolder:/my pets'")
    assert recorded_options(command) == {"image_size": "84x96", "channels": "3"}
