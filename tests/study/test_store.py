"""The result store: assembly of ``results.csv`` from the chunk files, chunks bound to their
study and to the content of their episodes, complete chunks only, extension to more episodes,
the one-writer lock, and deleting only what metaleep wrote."""

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

from metaleep.study.out_dir import OUTPUTS_FILE
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


# ----------------------------------------------------------------------------- binding (#16, #20)

SUITE = list(range(8))
DIGESTS = {e: hashlib.sha256(f"episode {e}".encode()).hexdigest() for e in SUITE}


def _rows_of(episode: int) -> set[tuple[str, ...]]:
    return {("a",), ("b",)}


def _store(root, config=None, digests=DIGESTS, **kwargs) -> ResultStore:
    return ResultStore(
        root,
        config or {"suite": "t", "seed": 0},
        episodes=digests,
        keys=KEYS,
        rows=_rows_of,
        **kwargs,
    )


def _fill(store: ResultStore, selected=SUITE[:5], chunk_size=2) -> dict[int, list[int]]:
    plan = store.plan(selected, chunk_size)
    for c, episodes in plan.items():
        store.write_chunk(c, _rows(episodes, c))
    return plan


def test_a_chunk_carries_its_study_episodes_and_their_content_in_its_checksummed_text(tmp_path):
    with _store(tmp_path) as store:
        assert _fill(store) == {0: [0, 1], 1: [2, 3], 2: [4]}
    lines = (tmp_path / "results" / "chunk-00001.csv").read_text().splitlines()
    content = hashlib.sha256(f"2:{DIGESTS[2]}\n3:{DIGESTS[3]}\n".encode()).hexdigest()
    assert lines[0] == (
        f'# metaleep-chunk {{"chunk": 1, "content": "{content}", "episodes": [2, 3], '
        f'"rows": 4, "study": "{store.config_hash}"}}'
    )
    assert lines[-1].startswith("# sha256=")
    assert lines[1] == "episode,adaptation,alphabets,leep"


def test_chunks_of_another_configuration_are_refused_after_study_json_is_deleted(tmp_path):
    """The drift of #16: study.json deleted (as its error suggests), then another
    configuration: the old chunks must not count."""
    with _store(tmp_path) as store:
        _fill(store)
    (tmp_path / "study.json").unlink()
    other = {"suite": "t", "seed": 1}
    chunk = tmp_path / "results" / "chunk-00000.csv"
    with pytest.raises(StoreError) as caught:
        _store(tmp_path, other)
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
    with _store(tmp_path, other, overwrite=True) as fresh:
        assert fresh.finished_chunks() == [] and fresh.stored == {}
    assert sorted((tmp_path / "results").iterdir()) == []


def test_another_configuration_is_named_by_what_differs(tmp_path):
    with _store(tmp_path) as store:
        _fill(store)
    with pytest.raises(StoreError, match=r"they differ in seed\); use another output"):
        _store(tmp_path, {"suite": "t", "seed": 1})


def test_the_same_configuration_resumes_after_study_json_is_deleted(tmp_path):
    with _store(tmp_path) as store:
        _fill(store)
    (tmp_path / "study.json").unlink()
    with _store(tmp_path) as again:
        assert again.finished_chunks() == [0, 1, 2]
        assert again.stored == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2}
        assert again.plan(SUITE[:5], 2) == {}


def test_a_regenerated_suite_is_refused_never_resumed(tmp_path):
    """The suite file rewritten with other content at the same path (same recipe in the
    identity): every chunk computed on the old episodes is refused, never mixed in; with
    --overwrite it is recomputed."""
    with _store(tmp_path) as store:
        _fill(store)
    regenerated = {e: d if e < 2 else "other" + d[5:] for e, d in DIGESTS.items()}
    with pytest.raises(StoreError) as caught:
        _store(tmp_path, digests=regenerated)
    assert str(caught.value).startswith(
        f"result chunk {tmp_path / 'results' / 'chunk-00001.csv'} was computed on other "
        "episodes than this study's suite holds (other content): the suite changed since "
        "(regenerated or edited at the same path), so its results cannot count: use "
        "overwrite=True (--overwrite) to recompute the study on this suite"
    )
    with _store(tmp_path, digests=regenerated, overwrite=True) as store:
        assert store.stored == {0: 0, 1: 0}  # the chunk of unchanged episodes counts
        assert store.plan(SUITE[:5], 2) == {1: [2, 3], 2: [4]}


@pytest.mark.parametrize("removed", [1, 2])
def test_a_chunk_with_rows_removed_and_its_checksum_recomputed_is_refused(tmp_path, removed):
    with _store(tmp_path) as store:
        _fill(store)
    path = tmp_path / "results" / "chunk-00001.csv"
    text = path.read_text().rpartition("# sha256=")[0]
    lines = text.splitlines(keepends=True)
    forged = "".join(lines[:-removed])
    path.write_text(f"{forged}# sha256={hashlib.sha256(forged.encode()).hexdigest()}\n")
    with pytest.raises(StoreError, match=rf"^result chunk {re.escape(str(path))} is incomplete: "):
        _store(tmp_path)
    with _store(tmp_path, overwrite=True) as store:  # metaleep's chunk: recomputed
        assert store.plan(SUITE[:5], 2) == {1: [2, 3]}


def test_more_episodes_keep_every_stored_one_with_any_chunk_size(tmp_path):
    """Issue 21: a finished study of 5 episodes extended to 8 (chunks of 200: the last chunk
    was partial), then to all with chunks of 3: only new episodes are planned, under free chunk
    numbers; the assembled table has every episode once."""
    with _store(tmp_path) as store:
        assert _fill(store, SUITE[:5], 200) == {0: [0, 1, 2, 3, 4]}
    with _store(tmp_path) as store:
        assert store.plan(SUITE[:7], 200) == {1: [5, 6]}
        store.write_chunk(1, _rows([5, 6], 1))
    with _store(tmp_path) as store:
        assert store.plan(SUITE, 3) == {2: [7]}
        store.write_chunk(2, _rows([7], 2))
        table = store.assemble(KEYS, episodes=SUITE)
        assert table["episode"].tolist() == [e for e in SUITE for _ in "ab"]
        first = store.assemble(KEYS, episodes=SUITE[:3])  # fewer: the rows of those only
        assert first["episode"].tolist() == [0, 0, 1, 1, 2, 2]
        with pytest.raises(ValueError, match=r"^`chunk` must be one of the planned chunks"):
            store.write_chunk(0, _rows([0], 0))


@pytest.mark.parametrize(
    "case", ["copy under another number", "foreign", "unbound", "twice", "stray file"]
)
def test_files_that_are_not_this_studys_chunks_are_refused(tmp_path, case):
    with _store(tmp_path) as store:
        _fill(store, SUITE[:4])
    results = tmp_path / "results"
    source = results / "chunk-00000.csv"
    deleted_by_overwrite = True
    if case == "copy under another number":
        path = results / "chunk-00002.csv"
        path.write_bytes(source.read_bytes())
        expected = f"result chunk {path} holds chunk 0 (a copy under another name?)"
    elif case == "foreign":
        path = results / "chunk-00002.csv"
        with _store(tmp_path / "other", {"suite": "t", "seed": 5}) as other:
            _fill(other)
        path.write_bytes((tmp_path / "other" / "results" / "chunk-00002.csv").read_bytes())
        expected = f"result chunk {path} was made by another study configuration"
    elif case == "unbound":  # a chunk of a metaleep that did not bind chunks
        path = results / "chunk-00002.csv"
        body = table_to_csv(_rows([4], 2))
        path.write_text(f"{body}# sha256={hashlib.sha256(body.encode()).hexdigest()}\n")
        expected = f"result chunk {path} was made without a record of its configuration"
    elif case == "twice":  # episode 1 written again under chunk 3, binding and all
        with _store(tmp_path / "again") as again:
            again.plan([1], 1)
            again.planned = {3: [1]}
            again.write_chunk(3, _rows([1], 3))
        path = results / "chunk-00003.csv"
        path.write_bytes((tmp_path / "again" / "results" / "chunk-00003.csv").read_bytes())
        expected = f"result chunk {path} holds episode 1, which chunk 0 holds too"
    else:  # a user's copy beside the chunks: not metaleep's, never deleted
        path = results / "chunk-00001 (copy).csv"
        path.write_bytes(source.read_bytes())
        expected = f"{tmp_path} holds 1 file(s) metaleep did not write where it writes its own"
        deleted_by_overwrite = False
    with pytest.raises(StoreError) as caught:
        _store(tmp_path)
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "overwrite" in str(caught.value) or "delete" in str(caught.value)
    if deleted_by_overwrite:
        with _store(tmp_path, overwrite=True) as store:  # --overwrite discards just that file
            assert store.finished_chunks() == [0, 1]
        assert not path.exists()
    else:
        with pytest.raises(StoreError, match="not even with --overwrite"):
            _store(tmp_path, overwrite=True)
        assert path.read_bytes() == source.read_bytes()


def test_assembly_takes_exactly_the_selected_episodes(tmp_path):
    with _store(tmp_path) as store:
        plan = store.plan(SUITE[:5], 2)
        store.write_chunk(0, _rows(plan[0], 0))
        store.write_chunk(2, _rows(plan[2], 2))
        with pytest.raises(StoreError, match=r"lacks 2 episode\(s\) of this study \(first \[2, 3"):
            store.assemble(KEYS, episodes=SUITE[:5])
        store.write_chunk(1, _rows(plan[1], 1))
        table = store.assemble(KEYS, episodes=SUITE[:5])
        assert table["episode"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_assembly_refuses_repeated_keys(tmp_path):
    with ResultStore(tmp_path, {"suite": "t"}) as store:
        store.write_chunk(0, _rows([0, 1], 0))
        store.write_chunk(1, _rows([4, 4], 2))  # rows that repeat a key (no row check)
        with pytest.raises(StoreError, match=r"hold 4 rows with repeated keys \(episode, "):
            store.assemble(KEYS)
        assert not (tmp_path / RESULTS_FILE).exists()


def test_leftover_temporary_files_of_a_killed_write_are_removed(tmp_path):
    with _store(tmp_path) as store:
        _fill(store, SUITE[:2])
    leftover = tmp_path / "results" / ".chunk-00001.csv.abc123.tmp"
    leftover.write_text("half a chunk")
    with _store(tmp_path) as store:
        assert store.finished_chunks() == [0]
    assert not leftover.exists()


def test_a_refused_configuration_does_not_block_the_corrected_one(tmp_path):
    """study.json of a configuration that stored nothing is taken over without --overwrite."""
    with _store(tmp_path, {"suite": "typo"}):
        pass
    with _store(tmp_path) as store:
        _fill(store, SUITE[:2])
    with pytest.raises(StoreError, match="holds results of another study configuration"):
        _store(tmp_path, {"suite": "typo"})


def test_results_csv_that_is_a_directory_is_reported(tmp_path):
    (tmp_path / RESULTS_FILE).mkdir()
    message = (
        f"{tmp_path} holds 1 file(s) metaleep did not write where it writes its own: "
        f"{tmp_path / RESULTS_FILE}. metaleep never overwrites or deletes them (not even with "
        "--overwrite): move them away, or choose another --out, and rerun."
    )
    with pytest.raises(StoreError, match=f"^{re.escape(message)}$"):
        _store(tmp_path)


# ----------------------------------------------------------------------------- what it wrote (#20)


def test_overwrite_removes_exactly_what_metaleep_wrote(tmp_path):
    """A report metaleep wrote (recorded) goes with the results it was made from; the user's
    files, even at names a report uses, stay; a user's file at an output name is refused."""
    with _store(tmp_path) as store:
        _fill(store)
        store.outputs.record("report.html", "scatter_03_old.png")
    for name in ("report.html", "scatter_03_old.png"):
        (tmp_path / name).write_text("metaleep's")
    for name in ("notes.txt", "figure1.png", "scatter_04_mine.png"):
        (tmp_path / name).write_text("mine")
    with _store(tmp_path, {"suite": "t", "seed": 1}, overwrite=True):
        pass
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "figure1.png",
        "notes.txt",
        "results",
        "scatter_04_mine.png",
        "study.json",
    ]
    assert (tmp_path / "figure1.png").read_text() == "mine"
    (tmp_path / "correlations.csv").write_text("mine")  # the user's, where a report writes
    with pytest.raises(StoreError, match="metaleep did not write where it writes its own: "):
        _store(tmp_path, {"suite": "t", "seed": 2}, overwrite=True)
    assert (tmp_path / "correlations.csv").read_text() == "mine"


def test_results_as_a_link_elsewhere_is_never_followed(tmp_path):
    elsewhere = tmp_path / "other-disk"
    elsewhere.mkdir()
    (elsewhere / "chunk-00000.csv").write_text("the user's data")
    out = tmp_path / "study"
    out.mkdir()
    (out / "results").symlink_to(elsewhere)
    for overwrite in (False, True):
        with pytest.raises(StoreError, match=re.escape(f"it writes its own: {out / 'results'}.")):
            _store(out, overwrite=overwrite)
    assert (elsewhere / "chunk-00000.csv").read_text() == "the user's data"


def test_a_damaged_record_of_outputs_is_refused(tmp_path):
    with _store(tmp_path) as store:
        _fill(store, SUITE[:2])
    record = tmp_path / OUTPUTS_FILE
    for text in ('{"format": "metaleep-outputs", "files": ["../../home/me/thesis.tex"]}', "["):
        record.write_text(text)
        with pytest.raises(StoreError, match=re.escape(str(record))):
            _store(tmp_path, overwrite=True)


# ----------------------------------------------------------------------------- the lock (#16)

HOLDER = """
import sys, time
from metaleep.study.store import StudyLock
with StudyLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_directory_in_use_by_another_process_is_refused_and_never_overwritten(tmp_path):
    with _store(tmp_path) as store:
        _fill(store)
    before = {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for overwrite in (False, True):
            with pytest.raises(StoreError) as caught:
                _store(tmp_path, {"suite": "t", "seed": 1}, overwrite=overwrite)
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
    with _store(tmp_path) as store:
        assert store.finished_chunks() == [0, 1, 2]
        assert json.loads((tmp_path / OWNER_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / OWNER_FILE).exists()


def test_publish_moves_new_outputs_into_place_and_records_them(tmp_path):
    from metaleep.study.out_dir import Layout, Outputs

    outputs = Outputs(tmp_path, Layout(files=()))

    def write(folder):
        (folder / "figures").mkdir()
        (folder / "figures" / "a.png").write_bytes(b"png")
        (folder / "report.html").write_text("report")
        return "done"

    assert outputs.publish(write) == "done"
    assert (tmp_path / "figures" / "a.png").read_bytes() == b"png"
    assert outputs.files == {"figures/a.png", "report.html"}
    assert not list(tmp_path.glob(".metaleep-staging*"))
    assert outputs.publish(write) == "done"  # its own files: replaced
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "figures" / "a.png").unlink()
    (tmp_path / "figures").rmdir()
    (tmp_path / "figures").symlink_to(elsewhere)  # a link where a folder goes: never through
    with pytest.raises(StoreError, match=re.escape(f"its own: {tmp_path / 'figures' / 'a.png'}")):
        outputs.publish(write)
    assert list(elsewhere.iterdir()) == []
