"""A resumable, append-only result store: one checked CSV file per finished chunk of episodes.

Layout of a study directory::

    study.json            the configuration (and its hash) the results were made with
    .metaleep.lock        the lock held by the one process writing the study (see StudyLock)
    .metaleep.owner       who holds it: pid, host, command, start time (JSON)
    results/chunk-00000.csv   rows of episodes [0, chunk_size), written atomically
    results/chunk-00001.csv   ...
    results.csv           the assembled table, written when the study ends

A chunk file is bound to its study: its first line, ``# metaleep-chunk {"chunk": c,
"episodes": [...], "study": "<configuration hash>"}``, names the configuration that made it and
the episodes it holds, and its last line, ``# sha256=<hex>``, is the checksum of everything
above it. A chunk is written whole (temporary file + rename) or not at all, so a study killed at
any point resumes from the chunks that exist: no finished episode is lost and none is computed
or stored twice. Opening a store checks every file under ``results/`` before any work: a chunk
whose checksum does not match, one of another configuration (or of no recorded configuration),
one stored under another chunk's name and any other file are reported with their path and what
to do, never silently used. So deleting ``study.json`` can never make old chunks count for a
new configuration.

One process writes a study directory at a time: :class:`StudyLock` takes an operating-system
lock on ``.metaleep.lock`` (released by the system when the process ends, however it ends);
a second process is refused with the holder's pid, host and command, and ``overwrite`` never
deletes anything before the lock is held.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from metaleep._io import atomic_write, atomic_write_bytes

CONFIG_FILE = "study.json"
RESULTS_FILE = "results.csv"
LOCK_FILE = ".metaleep.lock"
OWNER_FILE = ".metaleep.owner"
REPORT_FILES = (
    "report.html",
    "report.md",
    "analysis.json",
    "correlations.csv",
    "verdict.csv",
    "baseline_tests.csv",
    "comparisons.csv",
    "selection.csv",
    "accuracy.csv",
    "correlations_by_ways.csv",
    "correlations_by_shots.csv",
    "correlations_by_within_alphabet.csv",
)
"""Files the analysis and the report write beside the results (and the ``*.png`` figures):
removed with the results they were made from when ``overwrite`` discards a study."""
_CHUNK_DIR = "results"
_CHUNK_NAME = re.compile(r"chunk-(\d{5,})\.csv")
_TEMP_NAME = re.compile(r"\.chunk-\d{5,}\.csv\..*\.tmp")
_CHUNK_TAG = "# metaleep-chunk "
_MIN_FREE_BYTES = 50 * 1024 * 1024


class StoreError(RuntimeError):
    """A study directory cannot be used as it is (the message says why and what to do)."""


class StudyInterrupted(KeyboardInterrupt):
    """A study stopped by an interruption (Ctrl-C, SIGTERM) while computing its chunks.

    ``str()`` says how far it got: ``interrupted after k of n chunks; run the same command to
    resume``. A :class:`KeyboardInterrupt`, so code that handles one handles this one.
    """

    def __init__(self, done: int, total: int) -> None:
        super().__init__(done, total)
        self.done, self.total = done, total

    def __str__(self) -> str:
        return (
            f"interrupted after {self.done} of {self.total} chunks; run the same command to resume."
        )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def table_to_csv(table: pd.DataFrame) -> str:
    """CSV text of ``table`` with floats written exactly (the shortest repr that round-trips).

    Written with the standard library's ``csv`` module, row by row from the columns' Python
    values: 1.5x faster than ``DataFrame.to_csv`` with a ``%.17g`` float format on study
    chunks. NaN and infinities are written ``nan``/``inf``, which ``pandas.read_csv`` reads
    back as such.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(zip(*(table[c].tolist() for c in table.columns), strict=True))
    return buffer.getvalue()


def _episode_list(episodes: Sequence[int]) -> list[int]:
    return [int(e) for e in episodes]


# ----------------------------------------------------------------------------- the lock


class StudyLock:
    """The one-writer lock of a study directory (an OS file lock, via ``filelock``).

    Acquiring creates the directory, checks that it is writable with some free space, takes the
    lock without waiting and records the holder (pid, host, command, start time) in
    ``.metaleep.owner``. A directory locked by another live process raises
    :class:`StoreError` naming that process. The operating system releases the lock when the
    holder ends, killed or not; a stale owner file is then simply replaced.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> with StudyLock(root) as lock:
    ...     StudyLock(root).acquire()
    Traceback (most recent call last):
    ...
    metaleep.study.store.StoreError: ... is in use by another metaleep process (pid ...
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._lock: Any = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock is not None and bool(self._lock.is_locked)

    def acquire(self) -> StudyLock:
        """Take the lock (:class:`StoreError` if another process holds it); return self."""
        from filelock import FileLock, Timeout

        if self.held:
            return self
        _check_writable(self.root)
        lock = FileLock(self.root / LOCK_FILE, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"{self.root} is in use by another metaleep process ({self._holder()}); wait "
                "for it to finish (or stop it), or choose another --out. Two processes writing "
                "one study directory would mix their results."
            ) from None
        except OSError as error:
            raise StoreError(
                f"output directory {self.root} is not writable ({error.strerror or error}); "
                "choose another one with --out."
            ) from error
        self._lock = lock
        try:
            _check_layout(self.root)
        except StoreError:
            self.release()
            raise
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv) or sys.executable,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            atomic_write_bytes(self.root / OWNER_FILE, (json.dumps(owner) + "\n").encode())
        except OSError:  # the lock is what counts; the owner file only helps the message
            pass
        return self

    def release(self) -> None:
        """Release the lock (and remove the owner file); nothing when it is not held."""
        if self._lock is None:
            return
        (self.root / OWNER_FILE).unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def _holder(self) -> str:
        try:
            owner = json.loads((self.root / OWNER_FILE).read_text())
            return (
                f"pid {owner['pid']} on {owner['host']}, since {owner['started']}: "
                f"{owner['command']}"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "its owner file is missing or unreadable"

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _check_layout(root: Path) -> None:
    """The files a study writes are not in the way of something else (a folder in place of
    ``results.csv``, a file in place of ``results/``)."""
    for name, kind, is_kind in (
        (RESULTS_FILE, "a file", Path.is_file),
        (CONFIG_FILE, "a file", Path.is_file),
        (_CHUNK_DIR, "a directory", Path.is_dir),
    ):
        path = root / name
        if (path.exists() or path.is_symlink()) and not is_kind(path):
            what = (
                "keeps its chunks"
                if name == _CHUNK_DIR
                else "writes its " + ("table" if name == RESULTS_FILE else "configuration")
            )
            raise StoreError(
                f"{path} is not {kind}; the study {what} there: move it away (or delete it) "
                "and rerun."
            )


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise StoreError(
            f"output directory {root} is not writable ({error.strerror or error}); "
            "choose another one with --out."
        ) from error
    free = shutil.disk_usage(root).free
    if free < _MIN_FREE_BYTES:
        raise StoreError(
            f"output directory {root} has only {free // 2**20} MiB free; a study needs "
            f"at least {_MIN_FREE_BYTES // 2**20} MiB. Free space or choose another --out."
        )


# ----------------------------------------------------------------------------- the store


class ResultStore:
    """Chunk files of one study under ``root``, bound to the study's configuration.

    Parameters
    ----------
    root:
        The study directory (created).
    config:
        JSON-serialisable configuration of the study; its hash is written into every chunk.
        A directory that holds results of a different configuration is refused (pass
        ``overwrite=True`` to start over); one whose ``study.json`` names another
        configuration but holds no result is taken over.
    overwrite:
        Delete results of another configuration (and the report made from them), and any
        other file under ``results/``, instead of refusing.
    plan:
        The episode ids of each chunk, in chunk order. Given, a chunk must hold exactly its
        planned episodes, :meth:`assemble` requires every planned chunk, and a chunk number
        outside the plan is refused. ``None``: chunks are taken as written.
    lock:
        A :class:`StudyLock` on ``root`` already held by the caller (``None``: the store takes
        one, released by :meth:`close` or the ``with`` block).

    Opening a directory checks, before any work is done, that it is writable with some free
    space and not in use by another process, and checks every file under ``results/``
    (:class:`StoreError` otherwise, naming the file and what to do).

    Examples
    --------
    >>> import tempfile
    >>> with ResultStore(tempfile.mkdtemp(), {"suite": "demo"}) as store:
    ...     store.write_chunk(0, pd.DataFrame({"episode": [0, 1], "leep": [-0.5, -0.25]}))
    ...     store.finished_chunks()
    ...     store.read_all()["leep"].tolist()
    [0]
    [-0.5, -0.25]
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: Mapping[str, Any],
        *,
        overwrite: bool = False,
        plan: Sequence[Sequence[int]] | None = None,
        lock: StudyLock | None = None,
    ) -> None:
        self.root = Path(root)
        self.chunk_dir = self.root / _CHUNK_DIR
        self.config = dict(config)
        text = json.dumps(self.config, sort_keys=True, indent=2, default=str) + "\n"
        self.config_hash = _digest(text)[:16]
        self.plan = None if plan is None else [_episode_list(p) for p in plan]
        self._own_lock = lock is None
        self.lock = (lock or StudyLock(self.root)).acquire()
        try:
            self._open(overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the lock if this store took it."""
        if self._own_lock:
            self.lock.release()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, overwrite: bool) -> None:
        _check_layout(self.root)
        path = self.root / CONFIG_FILE
        discard = False
        has_results = self.chunk_dir.is_dir() and any(self.chunk_dir.iterdir())
        # study.json matters only when there are results to tie to it: a directory whose last
        # command was refused (or stopped before its first chunk) is simply taken over.
        if has_results and (path.exists() or path.is_symlink()):
            try:
                saved = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise StoreError(
                    f"{path} is unreadable ({error}); delete it (and {self.chunk_dir}) to "
                    "start over."
                ) from error
            saved_config = saved.get("config") if isinstance(saved, dict) else None
            saved_text = json.dumps(saved_config, sort_keys=True, indent=2, default=str) + "\n"
            damaged = (
                not isinstance(saved_config, dict)
                or saved.get("config_hash") != _digest(saved_text)[:16]
            )
            if damaged and not overwrite:
                raise StoreError(
                    f"{path} is damaged (its configuration does not match its hash); the "
                    f"chunks in {self.chunk_dir} record their own configuration and are "
                    "checked if you delete this file and rerun; or use another output "
                    "directory, or overwrite=True (--overwrite) to discard them."
                )
            if damaged or saved.get("config_hash") != self.config_hash:
                if not overwrite:
                    raise StoreError(
                        f"{self.root} holds results of another study configuration "
                        f"(hash {saved.get('config_hash')}, this one {self.config_hash}); use "
                        "another output directory, or overwrite=True (--overwrite) to discard them."
                    )
                discard = True
        if discard:
            self._discard()
        self.verify(overwrite=overwrite)
        payload = {"config_hash": self.config_hash, "config": self.config}
        try:
            atomic_write_bytes(
                path, (json.dumps(payload, sort_keys=True, indent=2, default=str) + "\n").encode()
            )
            self.chunk_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"could not write {path} or {self.chunk_dir} ({error.strerror or error}); "
                "move away what is in the way (or choose another --out) and rerun."
            ) from error

    def _discard(self) -> None:
        """Delete the results and the report made from them (the lock is held)."""
        shutil.rmtree(self.chunk_dir, ignore_errors=True)
        (self.root / RESULTS_FILE).unlink(missing_ok=True)
        for name in REPORT_FILES:
            (self.root / name).unlink(missing_ok=True)
        for figure in self.root.glob("*.png"):
            figure.unlink(missing_ok=True)

    def chunk_path(self, chunk: int) -> Path:
        """Path of chunk ``chunk``'s file."""
        return self.chunk_dir / f"chunk-{chunk:05d}.csv"

    def write_chunk(self, chunk: int, rows: pd.DataFrame) -> None:
        """Store the rows of one finished chunk (atomically, with its binding and checksum).

        The chunk's episodes are its planned ones, or (without a plan) the distinct values of
        the ``episode`` column.
        """
        if self.plan is not None:
            if not 0 <= chunk < len(self.plan):
                raise ValueError(
                    f"`chunk` must be in 0..{len(self.plan) - 1} (the plan); got {chunk!r}."
                )
            episodes = self.plan[chunk]
        elif "episode" in rows.columns:
            episodes = sorted({int(e) for e in rows["episode"]})
        else:
            episodes = []
        tag = json.dumps(
            {"chunk": int(chunk), "episodes": episodes, "study": self.config_hash},
            sort_keys=True,
        )
        text = f"{_CHUNK_TAG}{tag}\n{table_to_csv(rows)}"
        data = f"{text}# sha256={_digest(text)}\n".encode()
        path = self.chunk_path(chunk)
        try:
            atomic_write_bytes(path, data)
        except OSError as error:
            raise StoreError(
                f"could not write result chunk {path} ({error.strerror or error}); the chunks "
                "already stored are intact: free disk space (or fix the directory) and rerun "
                "to resume."
            ) from error

    def _read(self, path: Path) -> tuple[dict[str, Any], str]:
        """``(binding, CSV body)`` of a chunk file whose checksum matches."""
        try:
            text = path.read_text()
        except UnicodeDecodeError:  # a damaged byte; the checksum check below reports it
            text = ""
        except OSError as error:
            raise StoreError(
                f"result chunk {path} is unreadable ({error.strerror or error}); delete it "
                "and rerun the study to recompute that chunk."
            ) from error
        content, _, tail = text.rpartition("# sha256=")
        if not content or tail.strip() != _digest(content):
            raise StoreError(
                f"result chunk {path} is damaged (checksum mismatch or truncated); delete it and "
                "rerun the study to recompute that chunk."
            )
        first, _, body = content.partition("\n")
        binding: dict[str, Any] = {}
        if first.startswith(_CHUNK_TAG):
            try:
                loaded = json.loads(first[len(_CHUNK_TAG) :])
            except json.JSONDecodeError:
                loaded = None
            binding = loaded if isinstance(loaded, dict) else {}
        else:
            body = content  # a chunk of a metaleep that did not bind chunks
        return binding, body

    def _checked_body(self, chunk: int) -> str:
        """The CSV text of chunk ``chunk``, once its checksum and binding are checked."""
        path = self.chunk_path(chunk)
        binding, body = self._read(path)
        problem = self._binding_problem(chunk, binding)
        if problem:
            raise StoreError(problem)
        return body

    def _binding_problem(self, chunk: int, binding: Mapping[str, Any]) -> str:
        """Why a chunk file (intact) cannot count for this study ('' when it can)."""
        path = self.chunk_path(chunk)
        study = binding.get("study")
        if study != self.config_hash:
            made = (
                f"by another study configuration (hash {study})"
                if study
                else "without a record of its configuration (by an older metaleep)"
            )
            return (
                f"result chunk {path} was made {made}, not by this one (hash "
                f"{self.config_hash}), so it cannot count here: use another output directory, "
                "or overwrite=True (--overwrite) to discard such chunks."
            )
        if binding.get("chunk") != chunk:
            return (
                f"result chunk {path} holds chunk {binding.get('chunk')} (a copy under another "
                f"name?), so its rows would be counted twice: delete {path} and rerun (or use "
                "overwrite=True (--overwrite) to discard such files)."
            )
        if self.plan is not None:
            if chunk >= len(self.plan):
                return (
                    f"result chunk {path} is outside this study's plan of {len(self.plan)} "
                    f"chunks: delete {path} and rerun (or use overwrite=True (--overwrite))."
                )
            if binding.get("episodes") != self.plan[chunk]:
                return (
                    f"result chunk {path} holds other episodes than this study's chunk "
                    f"{chunk}: delete {path} and rerun to recompute it."
                )
        return ""

    def read_chunk(self, chunk: int) -> pd.DataFrame:
        """Rows of a finished chunk; a damaged or foreign file raises :class:`StoreError`."""
        return pd.read_csv(io.StringIO(self._checked_body(chunk)))

    def verify(self, *, overwrite: bool = False) -> list[int]:
        """Check every file under ``results/``; return the indices of the chunks, sorted.

        A damaged chunk, a chunk of another configuration or stored under another chunk's name,
        one outside the plan, and any other file raise :class:`StoreError` naming the first
        such file; with ``overwrite``, all but damaged chunks of this configuration are deleted
        instead. Leftover temporary files of an interrupted write are removed. Run when the
        store is opened, so that a problem is reported before a resumed study computes
        anything.
        """
        if not self.chunk_dir.exists():
            return []
        if not self.chunk_dir.is_dir():
            raise StoreError(
                f"{self.chunk_dir} is not a directory; the study keeps its chunks there: move "
                "it away (or delete it) and rerun."
            )
        chunks = []
        for path in sorted(self.chunk_dir.iterdir()):
            if _TEMP_NAME.fullmatch(path.name) and path.is_file():
                path.unlink(missing_ok=True)  # a write that never finished
                continue
            match = _CHUNK_NAME.fullmatch(path.name)
            if match is None or not path.is_file():
                if overwrite:
                    _remove(path)
                    continue
                raise StoreError(
                    f"{path} is not a chunk of this study: {self.chunk_dir} must hold only the "
                    f"study's chunk files; move it away (or delete it) and rerun, or use "
                    "overwrite=True (--overwrite) to discard it."
                )
            chunk = int(match.group(1))
            try:
                binding, _ = self._read(path)
            except StoreError:
                if overwrite and self._foreign_or_unbound(path):
                    path.unlink(missing_ok=True)
                    continue
                raise
            problem = self._binding_problem(chunk, binding)
            if problem:
                if overwrite:
                    path.unlink(missing_ok=True)
                    continue
                raise StoreError(problem)
            chunks.append(chunk)
        return sorted(chunks)

    def _foreign_or_unbound(self, path: Path) -> bool:
        """Whether a damaged chunk file names another configuration (or none) in its tag."""
        try:
            with open(path, "rb") as fh:
                first = fh.readline().decode("utf-8", "replace")
        except OSError:
            return False
        return not first.startswith(_CHUNK_TAG) or f'"study": "{self.config_hash}"' not in first

    def finished_chunks(self) -> list[int]:
        """Indices of the chunk files on disk, sorted (checked when the store was opened)."""
        if not self.chunk_dir.is_dir():
            return []
        return sorted(
            int(m.group(1))
            for p in self.chunk_dir.iterdir()
            if (m := _CHUNK_NAME.fullmatch(p.name)) and p.is_file()
        )

    def _expected_chunks(self) -> list[int]:
        finished = self.finished_chunks()
        if self.plan is None:
            return finished
        missing = sorted(set(range(len(self.plan))) - set(finished))
        if missing:
            raise StoreError(
                f"{self.chunk_dir} lacks chunk(s) {', '.join(map(str, missing))} of this "
                "study's plan; rerun the same command to compute them."
            )
        return list(range(len(self.plan)))

    def read_all(self) -> pd.DataFrame:
        """All stored rows, in chunk order (an empty frame when nothing is stored)."""
        frames = [self.read_chunk(c) for c in self.finished_chunks()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def assemble(self, keys: Sequence[str]) -> pd.DataFrame:
        """All stored rows sorted (stably) by ``keys``; also written to ``results.csv``.

        Exactly the expected chunks are read (with a plan: every planned chunk, and no other),
        each checked again, and the table is checked before it is written or returned: unique
        ``keys`` and, with a plan, every row's episode among its chunk's planned episodes
        (:class:`StoreError` otherwise). The file is made of the checked chunk files' own
        lines, reordered, so no value is formatted twice and ``results.csv`` holds exactly the
        text of the chunks. (Chunks of different columns, or a field with a line break, take
        the slower way: parse, sort, format again.)
        """
        chunks = self._expected_chunks()
        bodies = [self._checked_body(c) for c in chunks]
        headers = {body.partition("\n")[0] for body in bodies}
        if len(headers) == 1:
            header = headers.pop()
            per_chunk = [body.partition("\n")[2].splitlines() for body in bodies]
            lines = [line for part in per_chunk for line in part]
            table = pd.read_csv(io.StringIO("\n".join([header, *lines])))
            if len(table) == len(lines):
                sizes = [len(part) for part in per_chunk]
                self._check_table(table, keys, chunks, sizes)
                order = table.sort_values(list(keys), kind="stable").index.to_numpy()
                text = "\n".join([header, *(lines[i] for i in order)]) + "\n"
                atomic_write(self.root / RESULTS_FILE, lambda p: p.write_text(text))
                return table.iloc[order].reset_index(drop=True)
        frames = [pd.read_csv(io.StringIO(body)) for body in bodies]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if not table.empty:
            self._check_table(table, keys, chunks, [len(f) for f in frames])
            table = table.sort_values(list(keys), kind="stable").reset_index(drop=True)
        self.write_results(table)
        return table

    def _check_table(
        self, table: pd.DataFrame, keys: Sequence[str], chunks: Sequence[int], sizes: list[int]
    ) -> None:
        """Unique keys; with a plan, each chunk's rows within its planned episodes."""
        if self.plan is not None and "episode" in table.columns:
            start = 0
            for chunk, size in zip(chunks, sizes, strict=True):
                episodes = table["episode"].iloc[start : start + size]
                stray = sorted(set(episodes.tolist()) - set(self.plan[chunk]))
                if stray:
                    raise StoreError(
                        f"result chunk {self.chunk_path(chunk)} holds rows of episodes "
                        f"{stray[:5]} outside its planned ones; delete it and rerun to "
                        "recompute that chunk."
                    )
                start += size
        present = [k for k in keys if k in table.columns]
        if present:
            duplicated = table.duplicated(present, keep=False)
            if duplicated.any():
                first = table.loc[duplicated, present].iloc[0].tolist()
                raise StoreError(
                    f"the chunks in {self.chunk_dir} hold {int(duplicated.sum())} rows with "
                    f"repeated keys ({', '.join(present)}; first {first}), so no statistic is "
                    "computed from them; rerun with overwrite=True (--overwrite) to recompute "
                    "the study."
                )

    def write_results(self, table: pd.DataFrame) -> Path:
        """Write the assembled table to ``results.csv`` (atomically) and return its path."""
        text = table_to_csv(table)
        return atomic_write(self.root / RESULTS_FILE, lambda p: p.write_text(text))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
