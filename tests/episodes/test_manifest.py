"""Manifest files: format, byte-for-byte reproducibility, round trips, and every load error."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaleep.episodes.manifest import (
    COLUMNS,
    ManifestError,
    Suite,
    manifest_bytes,
    read_manifest,
    suite_from_episodes,
    validate_against,
    write_manifest,
)
from metaleep.episodes.spec import Episode, EpisodeSpec
from metaleep.episodes.suites import SpecMix, SuiteRecipe, build_suite

RECIPE = SuiteRecipe("toy-5w2s", 30, EpisodeSpec(ways=5, shots=2, queries=3, alphabets="any"))
MIXED = SuiteRecipe("toy-mixed", 40, SpecMix(ways=(2, 5), shots=(1, 2), queries=(3,)))


@pytest.fixture
def suite(toy, toy_split) -> Suite:
    return build_suite(RECIPE, toy, toy_split)


@pytest.fixture
def written(suite, tmp_path) -> Path:
    return write_manifest(suite, tmp_path / "toy.csv")


def _regen(path: Path) -> str:
    cmd = "metaleep episodes sample --data glyphs --split omniglot --part test --ways 5 "
    cmd += "--shots 2 --queries 3 --alphabets any --episodes 30 --seed 0 --name toy-5w2s"
    return f"Regenerate it with `{cmd} --out {path}`."


def test_layout_matches_the_documented_format(written, suite, toy):
    text = written.read_text()
    lines = text.split("\n")
    assert text.endswith("\n") and "\r" not in text
    assert lines[0] == (
        '# metaleep episode manifest (format 1): pandas.read_csv(path, comment="#") reads the rows'
    )
    header = json.loads(lines[1][2:])
    assert lines[1][2:] == json.dumps(header, sort_keys=True, separators=(",", ":"))
    assert header["format"] == "metaleep-episodes" and header["format_version"] == 1
    assert header["dataset_id"] == "toy" and header["dataset_version"] == toy.version
    assert (header["split"], header["part"], header["seed"]) == ("omniglot", "test", 0)
    assert header["num_episodes"] == 30 and header["specs"] == {"5w2s3q": 30}
    assert header["pool"] == sorted(suite.pool.tolist())
    assert lines[2] == ",".join(COLUMNS)
    # The checksum, recomputed independently from its definition.
    unsigned = {k: v for k, v in header.items() if k != "checksum"}
    body = "\n".join(lines[2:]).encode()
    expected = hashlib.sha256(
        json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode() + b"\n" + body
    )
    assert header["checksum"] == "sha256:" + expected.hexdigest()
    # Row 0 written out by hand from the episode.
    ep = suite.episodes[0]
    alphabets = "|".join(sorted(set(toy.classes["alphabet"].iloc[ep.classes])))
    row = [0, 5, 2, 3, "any", *(" ".join(map(str, a)) for a in (ep.classes, ep.support, ep.query))]
    assert lines[3] == ",".join(map(str, row)) + "," + alphabets


def test_pandas_reads_the_rows(written, suite):
    frame = pd.read_csv(written, comment="#")
    assert list(frame.columns) == list(COLUMNS)
    assert frame["episode"].tolist() == list(range(30))
    assert (frame[["ways", "shots", "queries"]].to_numpy() == [5, 2, 3]).all()
    for row, ep in zip(frame.itertuples(), suite.episodes, strict=True):
        assert np.array_equal(np.array(row.support.split(), dtype=np.int64), ep.support)
        assert np.array_equal(np.array(row.query.split(), dtype=np.int64), ep.query)
        assert np.array_equal(np.array(row.classes.split(), dtype=np.int64), ep.classes)


def test_round_trip_and_same_bytes(suite, written, toy, toy_split, tmp_path):
    back = read_manifest(written, dataset=toy)
    assert back.episodes == suite.episodes
    assert back.specs == suite.specs and back.alphabets == suite.alphabets
    assert np.array_equal(back.pool, suite.pool)
    for key in ("name", "dataset_id", "dataset_version", "split", "part", "seed", "command"):
        assert getattr(back, key) == getattr(suite, key)
    # Rewriting what was read, and rebuilding from the recipe, give the same bytes.
    assert manifest_bytes(back) == written.read_bytes()
    again = write_manifest(build_suite(RECIPE, toy, toy_split), tmp_path / "again.csv")
    assert again.read_bytes() == written.read_bytes()


def test_round_trip_of_a_mixed_suite(toy, toy_split, tmp_path):
    suite = build_suite(MIXED, toy, toy_split)
    assert len(suite.spec_counts()) > 4
    back = read_manifest(write_manifest(suite, tmp_path / "m.csv"), dataset=toy)
    assert back.specs == suite.specs and back.episodes == suite.episodes
    frame = back.to_frame()
    assert frame["spec"].tolist() == [s.name for s in suite.specs]
    assert [len(a) for a in frame["alphabets"]] == [len(a) for a in suite.alphabets]


def test_to_frame(suite):
    frame = suite.to_frame()
    assert list(frame.columns) == [*COLUMNS[:5], "spec", *COLUMNS[5:]]
    assert frame["spec"].unique().tolist() == ["5w2s3q"]
    assert all(
        np.array_equal(a, ep.query) for a, ep in zip(frame["query"], suite.episodes, strict=True)
    )


def test_summary_counts_class_usage(suite):
    summary = suite.summary()
    usage: dict[int, int] = {}
    for ep in suite.episodes:
        for c in ep.classes.tolist():
            usage[c] = usage.get(c, 0) + 1
    assert summary["classes_used"] == len(usage)
    assert summary["uses_per_class"]["max"] == max(usage.values())
    assert summary["uses_per_class"]["min"] == min(usage.values())
    assert sum(summary["alphabets"].values()) == sum(len(a) for a in suite.alphabets)
    assert summary["specs"] == {"5w2s3q": 30} and summary["episodes"] == 30


# --- load errors -----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    message = f"`path` must be an existing manifest file; got {str(path)!r}."
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        read_manifest(path)


def test_not_a_manifest(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    message = (
        f"Manifest {path}: not a metaleep episode manifest (format 'metaleep-episodes'). "
        f"Regenerate it with `metaleep episodes sample ... --out {path}`."
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(path)


def test_truncated_file(written):
    data = written.read_bytes()
    written.write_bytes(data[: len(data) // 2])
    rows = len(data[: len(data) // 2].split(b"\n")) - 4 + 1  # rows after the column line
    message = (
        f"Manifest {written}: {rows} episode rows but the header says 30: the file is truncated "
        f"or was edited. {_regen(written)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(written)


def test_truncated_inside_the_last_row(written):
    data = written.read_bytes()
    written.write_bytes(data[:-7])
    message = (
        f"Manifest {written}: checksum mismatch: the file was edited or corrupted after it was "
        f"written. {_regen(written)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(written)


def test_edited_row_fails_the_checksum(written):
    lines = written.read_text().split("\n")
    cells = lines[5].split(",")
    support = cells[6].split()
    support[0], support[1] = support[1], support[0]  # still a plausible episode
    cells[6] = " ".join(support)
    lines[5] = ",".join(cells)
    written.write_text("\n".join(lines))
    with pytest.raises(ManifestError, match=r"checksum mismatch: the file was edited"):
        read_manifest(written)


def test_edited_header_fails_the_checksum(written):
    text = written.read_text()
    written.write_text(text.replace('"seed":0', '"seed":1', 1))
    with pytest.raises(ManifestError, match=r"checksum mismatch"):
        read_manifest(written)


def test_damaged_header(written):
    lines = written.read_text().split("\n")
    lines[1] = lines[1][:40]
    written.write_text("\n".join(lines))
    message = (
        f"Manifest {written}: line 2 must be '# ' and the JSON header; it is damaged. "
        f"Regenerate it with `metaleep episodes sample ... --out {written}`."
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(written)


def test_newer_format_version(written):
    written.write_text(written.read_text().replace('"format_version":1', '"format_version":2'))
    message = (
        f"Manifest {written}: format version 2 is not supported (this metaleep reads version 1); "
        f"upgrade metaleep or. {_regen(written)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(written)


def _with_episode(suite: Suite, position: int, episode: Episode) -> Suite:
    episodes = list(suite.episodes)
    episodes[position] = episode
    return Suite(
        name=suite.name,
        dataset_id=suite.dataset_id,
        dataset_version=suite.dataset_version,
        split=suite.split,
        part=suite.part,
        seed=suite.seed,
        pool=np.union1d(suite.pool, episode.classes),
        specs=suite.specs,
        episodes=tuple(episodes),
        alphabets=suite.alphabets,
        command=suite.command,
    )


def test_unknown_class(suite, toy, tmp_path):
    ep = suite.episodes[3]
    classes = ep.classes.copy()
    classes[2] = 999
    bad = Episode.from_indices(3, classes, ep.support.reshape(5, 2), ep.query.reshape(5, 3))
    path = write_manifest(_with_episode(suite, 3, bad), tmp_path / "bad.csv")
    read_manifest(path)  # structurally fine without a data set
    message = (
        f"Manifest {path}: episode 3: unknown class id 999 (the data set has 150 classes). "
        f"{_regen(path)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(path, dataset=toy)


def test_index_out_of_range(suite, toy, tmp_path):
    ep = suite.episodes[4]
    query = ep.query.copy()
    query[7] = len(toy) + 5
    bad = Episode.from_indices(4, ep.classes, ep.support.reshape(5, 2), query.reshape(5, 3))
    path = write_manifest(_with_episode(suite, 4, bad), tmp_path / "bad.csv")
    message = (
        f"Manifest {path}: episode 4: query image index {len(toy) + 5} is out of range "
        f"(the data set has {len(toy)} images). {_regen(path)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(path, dataset=toy)


def test_labels_inconsistent_with_the_data_set(suite, toy, tmp_path):
    ep = suite.episodes[1]
    support = ep.support.reshape(5, 2)[[1, 0, 2, 3, 4]]  # targets 0 and 1 swapped
    bad = Episode.from_indices(1, ep.classes, support, ep.query.reshape(5, 3))
    path = write_manifest(_with_episode(suite, 1, bad), tmp_path / "bad.csv")
    first = int(support[0, 0])
    message = (
        f"Manifest {path}: episode 1: support image {first} has class "
        f"{int(toy.labels[first])}, not {int(ep.classes[0])}. {_regen(path)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(path, dataset=toy)


def test_wrong_dataset_version(written, toy_factory):
    other = toy_factory(version="v2")
    message = (
        f"Manifest {written}: it was made for data set toy@v1 but got toy@v2 (a different data "
        f"set or version; its image indices would mean other images). {_regen(written)}"
    )
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        read_manifest(written, dataset=other)


def test_wrong_alphabets(suite, toy):
    changed = Suite(
        **{k: getattr(suite, k) for k in ("name", "dataset_id", "dataset_version", "split")},
        part=suite.part,
        seed=suite.seed,
        pool=suite.pool,
        specs=suite.specs,
        episodes=suite.episodes,
        alphabets=(("Nope",), *suite.alphabets[1:]),
    )
    with pytest.raises(ManifestError, match=r"episode 0: alphabets 'Nope' recorded, the data"):
        validate_against(changed, toy)


def test_suite_rejects_inconsistent_fields(suite):
    ep = suite.episodes[0]
    with pytest.raises(ValueError, match=r"^`episodes` must match their specs; episode 0 has "):
        Suite("s", "toy", "v1", "all", "all", 0, [0], (EpisodeSpec(5, 1, 3),), (ep,))
    message = "`alphabets` must be names without , | # \" or control characters; got 'a|b'."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Suite("s", "toy", "v1", "all", "all", 0, [0], (EpisodeSpec(5, 2, 3),), (ep,), (("a|b",),))
    with pytest.raises(ValueError, match=r"^`specs` and `alphabets` must have one entry per"):
        Suite("s", "toy", "v1", "all", "all", 0, [0], (), (ep,))


def test_suite_from_episodes_without_alphabets(toy):
    plain = type(toy)(toy.images, toy.labels, toy.classes[["name"]], "plain", "v0")
    ep = Episode.from_indices(0, [0, 1], [[0], [1]], [[2], [3]])
    suite = suite_from_episodes(
        [ep], [EpisodeSpec(2, 1, 1)], name="p", dataset=plain, split="all", part="all",
        pool=[1, 0], seed=0,
    )  # fmt: skip
    assert suite.alphabets == ((),) and suite.pool.tolist() == [0, 1]
