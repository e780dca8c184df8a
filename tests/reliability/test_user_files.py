"""Nothing of the user's lost (issue 20, items 1 and 6): metaleep writes, and with
``--overwrite`` deletes, only what it wrote; ``--out`` must be a directory it may own; text and
odd files found in a study directory are handled as untrusted.

The user's folders are built of files with known bytes; after every command each one must be
there, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.study.store import OWNER_FILE, StoreError, StudyLock

pytestmark = pytest.mark.slow


def _snapshot(root: Path, skip: Path | None = None) -> dict[str, bytes | str]:
    """Every file (and link) under ``root`` but ``skip``: bytes, or a link's target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[key] = path.read_bytes()
    return found


def _user_folder(root: Path, *, results: bool) -> Path:
    """A project folder as people have them: results of their own, notes, figures, a link."""
    (root / "paper").mkdir(parents=True)
    (root / "notes.txt").write_text("meeting notes")
    (root / "figure1.png").write_bytes(b"\x89PNG my figure")
    (root / "scatter_01_leep.png").write_bytes(b"\x89PNG a figure named like metaleep's")
    (root / "paper" / "draft.tex").write_text("\\section{Results}")
    elsewhere = root.parent / f"{root.name}-other-disk"
    elsewhere.mkdir()
    (elsewhere / "big.dat").write_bytes(b"data on another disk")
    (root / "data-link").symlink_to(elsewhere)
    if results:
        (root / "results" / "2025-experiments" / "run1").mkdir(parents=True)
        (root / "results" / "2025-experiments" / "run1" / "table.csv").write_text("a,b\n1,2\n")
        (root / "results" / "summary.txt").write_text("what we found")
    return root


def _run(out: Path, backbone: str, *extra: str) -> tuple[int, str]:
    args = [
        "run",
        "--suite",
        "glyphs-smoke",
        "--episodes",
        "3",
        "--backbones",
        backbone,
        "--adaptations",
        "prototype",
        "--metrics",
        "leep,nce",
        "--n-boot",
        "20",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_overwrite_twice_with_other_seeds_leaves_every_file_of_the_user(tmp_path, tiny_backbones):
    """The issue's folder, less the clash: two runs with --overwrite and another seed each
    write and replace metaleep's outputs only. (Before: the second run deleted every *.png of
    the folder, the user's included.)"""
    out = _user_folder(tmp_path / "project", results=False)
    before = _snapshot(out.parent)
    backbone = tiny_backbones["supervised"]
    for seed in ("0", "1"):
        code, output = _run(out, backbone, "--overwrite", "--seed", seed)
        assert code == 0, output
        assert (out / "report.html").is_file()
        now = _snapshot(out.parent)
        assert {k: now.get(k) for k in before} == before
    record = json.loads((out / ".metaleep-outputs.json").read_text())["files"]
    assert "figure1.png" not in record and "notes.txt" not in record
    assert "report.html" in record and "study.json" in record


def test_a_folder_whose_results_are_the_users_is_refused_listing_every_path(
    tmp_path, tiny_backbones
):
    """The issue's folder: results/ holds the user's experiments. Refused, with and without
    --overwrite, naming every foreign path (summary.txt included); nothing touched, nothing
    loaded."""
    out = _user_folder(tmp_path / "project", results=True)
    before = _snapshot(out.parent)
    for extra in ((), ("--overwrite",), ("--overwrite", "--seed", "1")):
        code, output = _run(out, tiny_backbones["supervised"], *extra)
        assert code == 2, output
        assert "holds 2 file(s) metaleep did not write where it writes its own" in output
        assert str(out / "results" / "2025-experiments") in output
        assert str(out / "results" / "summary.txt") in output
        assert "not even with --overwrite" in output
        now = _snapshot(out.parent)
        assert {k: now.get(k) for k in before} == before
        assert set(now) - set(before) <= {"project/.metaleep.lock"}


def test_results_as_a_link_to_another_disk_is_never_followed(tmp_path, tiny_backbones):
    out = tmp_path / "project"
    out.mkdir()
    other = tmp_path / "disk2"
    (other / "old").mkdir(parents=True)
    (other / "old" / "keep.csv").write_text("unrelated")
    (out / "results").symlink_to(other)
    code, output = _run(out, tiny_backbones["supervised"], "--overwrite")
    assert code == 2 and f"its own: {out / 'results'}." in output
    assert (other / "old" / "keep.csv").read_text() == "unrelated"


@pytest.mark.parametrize("where", ["/", "home", "a file", "/dev/null"])
def test_out_must_be_a_directory_metaleep_may_own(tmp_path, monkeypatch, where):
    """Said before any work, for run and score. (Before: `--out /` wrote 14 files into /.)"""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    target = {"/": "/", "home": str(home), "a file": str(tmp_path / "f"), "/dev/null": "/dev/null"}
    (tmp_path / "f").write_text("mine")
    for command in ("run", "score"):
        result = CliRunner().invoke(
            app, [command, "--suite", "glyphs-smoke", "--out", target[where], "--no-progress"]
        )
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"metaleep {command}: `--out` must be a directory metaleep may own (not the file "
            "system's root, the home directory or an existing file); got "
            f"{target[where]!r}.\n"
        )
    assert (tmp_path / "f").read_text() == "mine"
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("case", ["read-only", "long name", "user's scores.csv", "threads"])
def test_score_out_and_options_are_checked_before_scoring(tmp_path, monkeypatch, case):
    """(Before: tracebacks after the scoring; `--threads -1` a RuntimeError.)"""
    from metaleep.study import scores

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("scored before its --out was checked")

    monkeypatch.setattr(scores, "score", refuse)
    out = tmp_path / "scores"
    extra: list[str] = []
    expected = ""
    if case == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only folders")
        out.mkdir()
        out.chmod(0o500)
        expected = "is not writable (Permission denied); choose another one with --out."
    elif case == "long name":
        out = tmp_path / ("x" * 300)
        expected = "is not writable (File name too long); choose another one with --out."
    elif case == "user's scores.csv":
        out.mkdir()
        (out / "scores.csv").write_text("the user's own scores")
        expected = f"holds 1 file(s) metaleep did not write where it writes its own: {out}"
    else:
        extra = ["--threads", "-1"]
        expected = "`--threads` must be >= 0 (0: torch's default); got -1."
    result = CliRunner().invoke(
        app, ["score", "--suite", "glyphs-smoke", "--out", str(out), "--no-progress", *extra]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    if case == "user's scores.csv":
        assert (out / "scores.csv").read_text() == "the user's own scores"


# ----------------------------------------------------------------------------- untrusted text

HOLDER = """
import json, sys, time
from pathlib import Path
from metaleep.study.store import StudyLock
with StudyLock(sys.argv[1]):
    owner = Path(sys.argv[1]) / ".metaleep.owner"
    forged = json.loads(owner.read_text())
    forged["command"] = "metaleep run\\x1b[2J\\x1b]0;owned\\x07\\nmetaleep: all good"
    owner.write_text(json.dumps(forged))
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_forged_owner_record_is_shown_escaped(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError) as caught:
            StudyLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    text = str(caught.value)
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert "metaleep run\\x1b[2J\\x1b]0;owned\\x07\\nmetaleep: all good" in text


@pytest.mark.parametrize("case", ["owner is a folder", "lock is a link", "study.json is a FIFO"])
def test_odd_files_in_a_study_directory_are_refused_before_any_work(tmp_path, tiny_backbones, case):
    """(Before: `.metaleep.owner` as a folder let the study run, then IsADirectoryError.)"""
    out = tmp_path / "study"
    out.mkdir()
    if case == "owner is a folder":
        path = out / OWNER_FILE
        path.mkdir()
        expected = f"{path} is not a regular file (a link, a folder or a device)"
    elif case == "lock is a link":
        victim = tmp_path / "victim.txt"
        victim.write_text("kept")
        path = out / ".metaleep.lock"
        path.symlink_to(victim)
        expected = f"{path} is not a regular file (a link, a folder or a device)"
    else:
        path = out / "study.json"
        os.mkfifo(path)
        expected = f"holds 1 file(s) metaleep did not write where it writes its own: {path}"
    code, output = _run(out, tiny_backbones["supervised"])
    assert code == 2, output
    assert expected in output
    if case == "lock is a link":
        assert (tmp_path / "victim.txt").read_text() == "kept"


def test_a_deeply_nested_study_json_is_refused_clearly(tmp_path, tiny_backbones):
    """(Before: RecursionError.)"""
    out = tmp_path / "study"
    code, output = _run(out, tiny_backbones["supervised"])
    assert code == 0, output
    (out / "study.json").write_text("[" * 100000 + "]" * 100000)
    code, output = _run(out, tiny_backbones["supervised"])
    assert code == 2, output
    assert f"{out / 'study.json'} is unreadable (too deep)" in output
    assert "Traceback" not in output


def test_score_holds_its_out_while_it_scores(tmp_path, monkeypatch):
    """A second process (or call) cannot write the same --out while scores are computed; the
    suite `--data` samples is stored in --out beside the scores."""
    from metaleep.study import scores

    out = tmp_path / "scores"
    seen = []
    real_score = scores.score

    def probe(*args: object, **kwargs: object) -> object:
        with pytest.raises(StoreError, match="is in use by another metaleep process"):
            StudyLock(out).acquire()
        seen.append(True)
        return real_score(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scores, "score", probe)
    args = ["score", "--data", "digits", "--episodes", "2", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [True]
    assert (out / "suite.csv").is_file() and (out / "scores.csv").is_file()


def test_only_the_holder_of_the_lock_writes(tmp_path):
    """The outputs record exists once the lock is held; before, writing is refused."""
    lock = StudyLock(tmp_path / "out")
    with pytest.raises(RuntimeError, match="must be held to write there"):
        lock.held_outputs  # noqa: B018
    with lock:
        assert lock.held_outputs is lock.outputs and lock.outputs is not None
