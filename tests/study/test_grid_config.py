"""The grid TOML: shipped grids, parsing, and clear errors that name the key."""

from __future__ import annotations

import re

import pytest

from metaleep.study.grid_config import (
    BUILTIN_GRIDS,
    GridConfig,
    GridTarget,
    grid_from_dict,
    load_grid,
)


def _grid(**grid: object) -> dict[str, object]:
    return {"grid": grid, "targets": [{"suite": "glyphs-5w1s"}]}


@pytest.mark.parametrize("name", BUILTIN_GRIDS)
def test_shipped_grids_load_and_name_existing_suites(name):
    from metaleep.episodes.suites import STANDARD_SUITES

    grid = load_grid(name)
    assert all(t.suite in STANDARD_SUITES for t in grid.targets)
    assert set(grid.sources) >= {"maml", "protonet", "supervised"}


def test_default_grid_declares_the_issue_targets_and_at_least_24_settings():
    grid = load_grid("default")
    assert grid.seeds == (0, 1, 2) and grid.n_boot >= 10_000  # seeds as a variance source
    suites = {t.suite for t in grid.targets}
    assert suites == {
        "glyphs-5w1s",
        "glyphs-5w5s",
        "glyphs-20w1s",
        "glyphs-5w5s-same",
        "glyphs-mixed",
        "digits-5w1s",
        "digits-5w5s",
    }
    assert set(grid.transfers) == {"maml", "anil", "retrain_head", "prototype", "finetune"}
    # Settings a target has at least: every source x prototypes x the feature transfers.
    per_target = len(grid.sources) * 2
    assert per_target * len(grid.targets) >= 24


def test_a_file_is_read_and_defaults_fill_the_rest(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        '[grid]\nsources = ["maml"]\nepisodes = 20\n\n'
        '[[targets]]\nsuite = "glyphs-5w1s"\n\n'
        '[[targets]]\nname = "mixed"\nsuite = "glyphs-mixed"\ntransfers = ["prototype"]\n'
    )
    grid = load_grid(path)
    assert grid.sources == ("maml",)
    assert grid.episodes == 20
    assert grid.finetune_episodes == GridConfig.finetune_episodes
    assert [t.name for t in grid.targets] == ["glyphs-5w1s", "mixed"]
    assert grid.transfers_of(grid.targets[1]) == ("prototype",)
    assert grid.transfers_of(grid.targets[0]) == grid.transfers
    assert grid.episodes_of(grid.targets[0]) == 20
    # to_dict round-trips through grid_from_dict
    data = grid.to_dict()
    targets = data.pop("targets")
    assert grid_from_dict({"grid": data, "targets": targets}) == grid


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (
            _grid(sorces=["maml"]),
            ValueError,
            "`grid.sorces` must be a known key (name, sources, dummies, transfers, metrics, "
            "episodes, finetune_episodes, chunk_size, seed, seeds, n_boot, alpha, "
            "target_reports); got 'sorces'.",
        ),
        (
            {"grid": {}, "targets": [{"suite": "glyphs-5w1s", "way": 5}]},
            ValueError,
            "`targets[0].way` must be a known key (name, suite, data, episodes, transfers); "
            "got 'way'.",
        ),
        (
            {"grid": {}, "targets": [{"name": "x"}]},
            ValueError,
            "`targets[0].suite` must be given; got a table without it.",
        ),
        ({"grid": {}}, ValueError, "`targets` must be one or more [[targets]] tables; got None."),
        (
            {"grid": {}, "targets": [], "extra": 1},
            ValueError,
            "`extra` must be a known table (grid, targets); got 'extra'.",
        ),
        (_grid(episodes=0), ValueError, "`grid.episodes` must be an integer >= 1; got 0."),
        (_grid(episodes="10"), TypeError, "`grid.episodes` must be an integer >= 1; got '10'."),
        (
            _grid(finetune_episodes=True),
            TypeError,
            "`grid.finetune_episodes` must be an integer >= 1; got True.",
        ),
        (
            _grid(transfers=["finetune", "retrain"]),
            ValueError,
            "`grid.transfers` must name from maml, anil, retrain_head, prototype, finetune; "
            "got retrain.",
        ),
        (
            _grid(dummies=["head", "head"]),
            ValueError,
            "`grid.dummies` must not repeat a name; got ('head', 'head').",
        ),
        (
            _grid(metrics=["leep", "kl"]),
            ValueError,
            "`grid.metrics` must name from",
        ),
        (_grid(sources=3), TypeError, "`grid.sources` must be one or more names; got 3."),
        (_grid(alpha=1.5), ValueError, "`grid.alpha` must be a number in (0, 1); got 1.5."),
        (
            _grid(seeds=[0, 0]),
            ValueError,
            "`grid.seeds` must be one or more distinct integers >= 0; got (0, 0).",
        ),
        (
            _grid(seeds=[0, -1]),
            ValueError,
            "`grid.seeds` must be one or more distinct integers >= 0; got (0, -1).",
        ),
        (
            _grid(seeds=[0, 1], sources=["maml", "mine=runs/a"]),
            ValueError,
            "`grid.seeds` must be one seed when a source is not a default backbone (maml, "
            "supervised, protonet); got [0, 1] with mine=runs/a.",
        ),
        (
            _grid(target_reports="yes"),
            TypeError,
            "`grid.target_reports` must be true or false; got 'yes'.",
        ),
        (
            {
                "grid": {"transfers": ["prototype"]},
                "targets": [{"suite": "glyphs-5w1s", "transfers": ["finetune"]}],
            },
            ValueError,
            "`targets.glyphs-5w1s.transfers` must be among grid.transfers (prototype); "
            "got finetune.",
        ),
        (
            {"grid": {}, "targets": [{"suite": "glyphs-5w1s"}, {"suite": "glyphs-5w1s"}]},
            ValueError,
            "`targets.name` must be distinct; got 'glyphs-5w1s' twice.",
        ),
        (
            {"grid": {}, "targets": [{"suite": "a", "name": "../x"}]},
            ValueError,
            "`targets.name` must hold only letters, digits, '-', '_' and '.'; got '../x'.",
        ),
        (
            {"grid": {}, "targets": [{"suite": "a", "episodes": -1}]},
            ValueError,
            "`targets.a.episodes` must be an integer >= 1; got -1.",
        ),
    ],
)
def test_bad_grids_are_refused_naming_the_key(data, error, message):
    with pytest.raises(error, match=re.escape(message)):
        grid_from_dict(data)


def test_unknown_files_and_bad_toml_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("got 'nope'.")):
        load_grid("nope")
    path = tmp_path / "bad.toml"
    path.write_text("[grid\nsources = 1\n")
    with pytest.raises(ValueError, match=r"^`config` must be a grid TOML file \(UTF-8 text, valid"):
        load_grid(path)
    # binary garbage and nesting beyond the parser: the file and the format named (#20)
    for data in (bytes(range(256)) * 4, b"a = " + b"[" * 100000):
        path.write_bytes(data)
        with pytest.raises(ValueError) as caught:
            load_grid(path)
        assert str(caught.value).startswith(
            f"`config` must be a grid TOML file (UTF-8 text, valid TOML); got '{path}': "
        )


def test_target_validates_on_its_own():
    assert GridTarget("a", "glyphs-5w1s", transfers=("prototype",)).transfers == ("prototype",)
    with pytest.raises(TypeError, match=re.escape("`targets.a.suite` must be a non-empty")):
        GridTarget("a", 3)  # type: ignore[arg-type]
