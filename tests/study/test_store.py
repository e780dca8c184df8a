"""The result store: assembly of ``results.csv`` from the chunk files, chunks bound to their
study, the one-writer lock."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from metaleep.study.store import OWNER_FILE, RESULTS_FILE, ResultStore, StoreError, table_to_csv

KEYS = ("episode", "adaptation")


def _rows(episodes: list[int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # backbone-major within a chunk, as the runner writes them: not in table order
    return pd.DataFrame(
        {
            "episode": episodes * 2,
            "adaptation": ["b"] * len(episodes) + ["a"] * len(episodes),
            "alphabets": ["Latin, Greek"] * (2 * len(episodes)),
            "leep": rng.normal(size=2 * len(episodes)) / 3,
        }
    )


def test_assemble_sorts_rows_and_writes_the_chunks_own_text(tmp_path):
    store = ResultStore(tmp_path, {"suite": "t"})
    chunks = [_rows([2, 3], 0), _rows([0, 1], 1)]
    for c, rows in enumerate(chunks):
        store.write_chunk(c, rows)
    table = store.assemble(KEYS)
    expected = store.read_all().sort_values(list(KEYS), kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(table, expected)
    assert table["episode"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert table["adaptation"].tolist() == ["a", "b"] * 4
    text = (tmp_path / RESULTS_FILE).read_text()
    body_lines = {line for c in range(2) for line in table_to_csv(chunks[c]).splitlines()[1:]}
    lines = text.splitlines()
    assert lines[0] == "episode,adaptation,alphabets,leep"
    assert set(lines[1:]) == body_lines and len(lines) == 9
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / RESULTS_FILE), expected)


@pytest.mark.parametrize("case", ["other columns", "line break in a field"])
def test_assemble_falls_back_to_formatting_again(tmp_path, case):
    store = ResultStore(tmp_path, {"suite": "t"})
    first, second = _rows([1], 0), _rows([0], 1)
    if case == "other columns":
        second = second.assign(extra=1.5)
    else:
        second.loc[0, "alphabets"] = "Latin\nGreek"
    store.write_chunk(0, first)
    store.write_chunk(1, second)
    table = store.assemble(KEYS)
    assert table["episode"].tolist() == [0, 0, 1, 1]
    if case == "line break in a field":
        assert "Latin\nGreek" in table["alphabets"].tolist()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / RESULTS_FILE), table)


def test_assemble_of_an_empty_store(tmp_path):
    store = ResultStore(tmp_path, {"suite": "t"})
    assert store.assemble(KEYS).empty
    assert (tmp_path / RESULTS_FILE).read_text() == "\n"


# ----------------------------------------------------------------------------- binding (#16)

PLAN = [[0, 1], [2, 3], [4]]


def _planned(root, config=None, **kwargs) -> ResultStore:
    return ResultStore(root, config or {"suite": "t", "seed": 0}, plan=PLAN, **kwargs)


def _fill(store: ResultStore, chunks=range(3)) -> None:
    for c in chunks:
        store.write_chunk(c, _rows(PLAN[c], c))


def test_a_chunk_carries_its_study_and_episodes_in_its_checksummed_text(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store, [1])
    lines = (tmp_path / "results" / "chunk-00001.csv").read_text().splitlines()
    assert lines[0] == (
        f'# metaleep-chunk {{"chunk": 1, "episodes": [2, 3], "study": "{store.config_hash}"}}'
    )
    assert lines[-1].startswith("# sha256=")
    assert lines[1] == "episode,adaptation,alphabets,leep"


def test_chunks_of_another_configuration_are_refused_after_study_json_is_deleted(tmp_path):
    """The issue's drift: study.json deleted (as its error suggests), then another
    configuration: the old chunks must not count, whatever the plan."""
    with _planned(tmp_path) as store:
        _fill(store)
    (tmp_path / "study.json").unlink()
    other = {"suite": "t", "seed": 1}
    chunk = tmp_path / "results" / "chunk-00000.csv"
    with pytest.raises(StoreError) as caught:
        _planned(tmp_path, other)
    text = str(caught.value)
    assert text.startswith(
        f"result chunk {chunk} was made by another study configuration (hash "
        f"{store.config_hash}), not by this one (hash "
    )
    assert text.endswith(
        "so it cannot count here: use another output directory, or overwrite=True "
        "(--overwrite) to discard such chunks."
    )
    assert not (tmp_path / "study.json").exists()  # nothing written for the refused one
    with _planned(tmp_path, other, overwrite=True) as fresh:
        assert fresh.finished_chunks() == []
    assert sorted((tmp_path / "results").iterdir()) == []


def test_the_same_configuration_resumes_after_study_json_is_deleted(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store, [0, 2])
    (tmp_path / "study.json").unlink()
    with _planned(tmp_path) as again:
        assert again.finished_chunks() == [0, 2]


@pytest.mark.parametrize(
    "case", ["copy under another number", "out of plan", "foreign", "unbound", "stray file"]
)
def test_files_that_are_not_this_studys_chunks_are_refused(tmp_path, case):
    with _planned(tmp_path) as store:
        _fill(store, [0, 1])
    results = tmp_path / "results"
    source = results / "chunk-00000.csv"
    if case == "copy under another number":
        path = results / "chunk-00002.csv"
        path.write_bytes(source.read_bytes())
        expected = f"result chunk {path} holds chunk 0 (a copy under another name?)"
    elif case == "out of plan":
        path = results / "chunk-00007.csv"
        with ResultStore(tmp_path / "other", {"suite": "t", "seed": 0}) as loose:
            loose.write_chunk(7, _rows([14, 15], 7))
        # the same configuration hash, written without a plan: chunk 7 of a 3-chunk study
        path.write_bytes((tmp_path / "other" / "results" / "chunk-00007.csv").read_bytes())
        expected = f"result chunk {path} is outside this study's plan of 3 chunks"
    elif case == "foreign":
        path = results / "chunk-00002.csv"
        with ResultStore(tmp_path / "other", {"suite": "t", "seed": 5}, plan=PLAN) as other:
            other.write_chunk(2, _rows([4], 2))
        path.write_bytes((tmp_path / "other" / "results" / "chunk-00002.csv").read_bytes())
        expected = f"result chunk {path} was made by another study configuration"
    elif case == "unbound":  # a chunk of a metaleep that did not bind chunks
        path = results / "chunk-00002.csv"
        body = table_to_csv(_rows([4], 2))
        path.write_text(f"{body}# sha256={hashlib.sha256(body.encode()).hexdigest()}\n")
        expected = f"result chunk {path} was made without a record of its configuration"
    else:
        path = results / "chunk-00001 (copy).csv"
        path.write_bytes(source.read_bytes())
        expected = f"{path} is not a chunk of this study: {results} must hold only"
    with pytest.raises(StoreError) as caught:
        _planned(tmp_path)
    assert str(caught.value).startswith(expected)
    assert "overwrite" in str(caught.value) or "delete" in str(caught.value)
    with _planned(tmp_path, overwrite=True) as store:  # --overwrite discards just that file
        assert store.finished_chunks() == [0, 1]
    assert not path.exists()


def test_assembly_takes_exactly_the_planned_chunks(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store, [0, 2])
        with pytest.raises(StoreError, match=r"lacks chunk\(s\) 1 of this study's plan; rerun"):
            store.assemble(KEYS)
        _fill(store, [1])
        assert store.assemble(KEYS)["episode"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_assembly_refuses_repeated_keys_and_rows_of_unplanned_episodes(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store)
        store.write_chunk(2, _rows([4, 4], 2))  # a chunk whose rows repeat a key
        with pytest.raises(StoreError, match=r"hold 4 rows with repeated keys \(episode, "):
            store.assemble(KEYS)
        assert not (tmp_path / RESULTS_FILE).exists()
        store.write_chunk(2, _rows([3], 2))  # rows of episode 3 filed as chunk 2 (episode 4)
        with pytest.raises(StoreError, match=r"holds rows of episodes \[3\] outside its planned"):
            store.assemble(KEYS)


def test_leftover_temporary_files_of_a_killed_write_are_removed(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store, [0])
    leftover = tmp_path / "results" / ".chunk-00001.csv.abc123.tmp"
    leftover.write_text("half a chunk")
    with _planned(tmp_path) as store:
        assert store.finished_chunks() == [0]
    assert not leftover.exists()


def test_a_refused_configuration_does_not_block_the_corrected_one(tmp_path):
    """study.json of a configuration that stored nothing is taken over without --overwrite."""
    with _planned(tmp_path, {"suite": "typo"}):
        pass
    with _planned(tmp_path) as store:
        _fill(store, [0])
    with pytest.raises(StoreError, match="holds results of another study configuration"):
        _planned(tmp_path, {"suite": "typo"})


def test_results_csv_that_is_a_directory_is_reported(tmp_path):
    (tmp_path / RESULTS_FILE).mkdir()
    message = (
        f"{tmp_path / RESULTS_FILE} is not a file; the study writes its table there: move it "
        "away (or delete it) and rerun."
    )
    with pytest.raises(StoreError, match=f"^{re.escape(message)}$"):
        _planned(tmp_path)


def test_overwrite_removes_the_report_of_the_discarded_results(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store)
    for name in ("report.html", "scatter_03_old.png", "correlations.csv", "verdict.csv"):
        (tmp_path / name).write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    with _planned(tmp_path, {"suite": "t", "seed": 1}, overwrite=True):
        pass
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "notes.txt",
        "results",
        "study.json",
    ]


# ----------------------------------------------------------------------------- the lock (#16)

HOLDER = """
import sys, time
from metaleep.study.store import StudyLock
with StudyLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_directory_in_use_by_another_process_is_refused_and_never_overwritten(tmp_path):
    with _planned(tmp_path) as store:
        _fill(store)
    before = {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for overwrite in (False, True):
            with pytest.raises(StoreError) as caught:
                _planned(tmp_path, {"suite": "t", "seed": 1}, overwrite=overwrite)
            text = str(caught.value)
            assert text.startswith(
                f"{tmp_path} is in use by another metaleep process (pid {holder.pid} on "
                f"{socket.gethostname()}, since "
            )
            assert "wait for it to finish (or stop it), or choose another --out." in text
        after = {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()}
        assert after == before
    finally:
        holder.kill()
        holder.wait()
    # killed: the system released its lock; the stale owner file does not block
    with _planned(tmp_path) as store:
        assert store.finished_chunks() == [0, 1, 2]
        assert json.loads((tmp_path / OWNER_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / OWNER_FILE).exists()
