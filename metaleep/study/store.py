"""A resumable, append-only result store: one checked CSV file per finished chunk of episodes.

Layout of a study directory::

    study.json            the study's identity (configuration, data, suite recipe, backbones)
    results/chunk-00000.csv   the rows of a chunk of episodes, written atomically
    results/chunk-00001.csv   ...
    results.csv           the assembled table, written when the study ends
    suite.csv             the suite ``metaleep run --data`` sampled (when it did)
    report.html, ...      the report
    .metaleep.lock, .metaleep.owner, .metaleep-outputs.json   (:mod:`metaleep.study.out_dir`)

A chunk file is bound to its study and to what it computed on: its first line,
``# metaleep-chunk {"chunk": c, "content": "<sha256>", "episodes": [...], "rows": r,
"study": "<identity hash>"}``, names the study identity that made it, the episodes it holds
and the checksum of those episodes' content (:meth:`~metaleep.episodes.manifest.Suite.
episode_digests`: classes, images, spec), and its last line, ``# sha256=<hex>``, is the checksum
of everything above it. A chunk is written whole (temporary file + rename) or not at all, so a
study killed at any point resumes from the chunks that exist: no finished episode is lost and
none is computed or stored twice.

The study's identity holds its suite's *recipe* (name, data, split and part, seed, class pool),
not its length, nor the chunk size: episode i depends only on (seed, i), so a study reruns with
a larger ``--episodes`` by computing only the new episodes, keeping every stored one, and
resumes with any ``--chunk-size``. Opening a store checks every file under ``results/`` before
any work: a chunk whose checksum does not match, one of another identity, one whose episodes
are not the suite's (a suite regenerated with other content at the same path), one that lacks
any of its episodes' planned rows (rows removed, checksum recomputed), one stored under another
chunk's name and any other file are reported with their path and what to do, never used. So
deleting ``study.json`` can never make old chunks count for a new configuration.

One process writes a study directory at a time (:class:`~metaleep.study.out_dir.StudyLock`), and
metaleep deletes only what it wrote there (``--overwrite`` included).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from metaleep._io import atomic_write, atomic_write_bytes
from metaleep._text import printable
from metaleep.study.out_dir import (
    LOCK_FILE,
    OWNER_FILE,
    Layout,
    Outputs,
    StoreError,
    StudyLock,
    is_regular_file,
    peek_json,
)

__all__ = [
    "CONFIG_FILE",
    "LOCK_FILE",
    "OWNER_FILE",
    "REPORT_FILES",
    "RESULTS_FILE",
    "STUDY_LAYOUT",
    "SUITE_FILE",
    "ResultStore",
    "StoreError",
    "StudyInterrupted",
    "StudyLock",
    "table_to_csv",
]

CONFIG_FILE = "study.json"
RESULTS_FILE = "results.csv"
SUITE_FILE = "suite.csv"
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
"""Files the analysis and the report write beside the results (and the ``*.png`` figures)."""
_CHUNK_DIR = "results"
_CHUNK_NAME = re.compile(r"chunk-(\d{5,})\.csv")
_TEMP_NAME = re.compile(r"\.chunk-\d{5,}\.csv\..*\.tmp")
_CHUNK_TAG = "# metaleep-chunk "
_CHECKSUM = "# sha256="
_LEGACY_FIGURES = re.compile(
    r"scatter_\d{2}_[A-Za-z0-9_.-]*\.png|correlation_bars\.png|selection\.png"
)
"""The figures metaleep's report wrote before outputs were recorded."""


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


def _config_text(config: Any) -> str:
    return json.dumps(config, sort_keys=True, indent=2, default=str) + "\n"


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


def _content(digests: Mapping[int, str], episodes: Sequence[int]) -> str:
    """The checksum of a chunk's episodes: their digests, in the chunk's order."""
    return _digest("".join(f"{e}:{digests[e]}\n" for e in episodes))


def _is_chunk_entry(path: Path) -> bool:
    """Whether an entry of ``results/`` is in metaleep's chunk namespace: a regular file named
    as a chunk, or as the temporary file of a chunk write."""
    return is_regular_file(path) and bool(
        _CHUNK_NAME.fullmatch(path.name) or _TEMP_NAME.fullmatch(path.name)
    )


def _in_chunk_format(path: Path) -> bool:
    """Whether a chunk file starts with metaleep's binding line (damaged or not)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_CHUNK_TAG)) == _CHUNK_TAG.encode()
    except OSError:
        return False


def _legacy_study(root: Path) -> tuple[str, ...]:
    """The files a metaleep that kept no record wrote in a study directory: recognised by an
    intact ``study.json`` (its configuration hashes to its recorded hash)."""
    saved = peek_json(root / CONFIG_FILE)
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return ()
    if saved.get("config_hash") != _digest(_config_text(saved["config"]))[:16]:
        return ()
    figures = tuple(p.name for p in root.iterdir() if _LEGACY_FIGURES.fullmatch(p.name))
    return (CONFIG_FILE, RESULTS_FILE, SUITE_FILE, *REPORT_FILES, *figures)


STUDY_LAYOUT = Layout(
    files=(CONFIG_FILE, RESULTS_FILE, SUITE_FILE, *REPORT_FILES),
    folders={_CHUNK_DIR: _is_chunk_entry},
    legacy=_legacy_study,
)
"""What a study writes in its directory (:class:`~metaleep.study.out_dir.Layout`)."""

Rows = Callable[[int], Collection[tuple[str, ...]]]
"""``rows(episode)``: the keys (all but ``episode``) of the rows an episode must have."""


class ResultStore:
    """Chunk files of one study under ``root``, bound to the study and to its episodes.

    Parameters
    ----------
    root:
        The study directory (created).
    config:
        The study's identity, JSON-serialisable; its hash is written into every chunk. A
        directory that holds results of a different identity is refused (pass
        ``overwrite=True`` to start over); one whose ``study.json`` names another identity but
        holds no result is taken over.
    overwrite:
        Delete metaleep's results of another identity, their report, and chunks that cannot
        count here (other episodes, incomplete, damaged) instead of refusing. Never anything
        metaleep did not write (:mod:`metaleep.study.out_dir`).
    episodes:
        The content digest of every episode the study may use, by index
        (:meth:`~metaleep.episodes.manifest.Suite.episode_digests`). Given, a stored chunk
        counts only if each of its episodes is there with the digest it was computed on.
        ``None``: chunks are taken as they say.
    keys, rows:
        The table's key columns (``episode`` first), and ``rows(episode)``: the other keys of
        the rows each episode must have. Given, a chunk missing any planned row, or holding an
        unplanned one, is refused.
    lock:
        A :class:`StudyLock` on ``root`` already held by the caller (``None``: the store takes
        one, released by :meth:`close` or the ``with`` block).

    Opening a directory checks, before any work is done, that it may be written, is not in use
    by another process, holds nothing foreign where a study writes, and checks every file under
    ``results/`` (:class:`StoreError` otherwise, naming the file and what to do).

    Examples
    --------
    >>> import tempfile
    >>> with ResultStore(tempfile.mkdtemp(), {"suite": "demo"}) as store:
    ...     store.write_chunk(0, pd.DataFrame({"episode": [0, 1], "leep": [-0.5, -0.25]}))
    ...     store.finished_chunks(), store.stored
    ...     store.read_all()["leep"].tolist()
    ([0], {0: 0, 1: 0})
    [-0.5, -0.25]
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: Mapping[str, Any],
        *,
        overwrite: bool = False,
        episodes: Mapping[int, str] | None = None,
        keys: Sequence[str] = ("episode",),
        rows: Rows | None = None,
        lock: StudyLock | None = None,
    ) -> None:
        self.root = Path(root)
        self.chunk_dir = self.root / _CHUNK_DIR
        self.config = dict(config)
        self.config_hash = _digest(_config_text(self.config))[:16]
        self.digests = None if episodes is None else {int(e): str(d) for e, d in episodes.items()}
        self.keys = tuple(keys)
        self.rows = rows
        self.stored: dict[int, int] = {}
        """Episode -> the chunk that holds it, for every checked chunk."""
        self.planned: dict[int, list[int]] | None = None
        self._own_lock = lock is None
        self.lock = (lock or StudyLock(self.root, STUDY_LAYOUT)).acquire()
        if self.lock.outputs is None or self.lock.outputs.layout is not STUDY_LAYOUT:
            self.lock.outputs = Outputs(self.root, STUDY_LAYOUT)
            self.lock.outputs.check()
        self.outputs: Outputs = self.lock.outputs
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

    # ------------------------------------------------------------------ opening

    def _open(self, overwrite: bool) -> None:
        path = self.root / CONFIG_FILE
        has_results = self.chunk_dir.is_dir() and any(self.chunk_dir.iterdir())
        # study.json matters only when there are results to tie to it: a directory whose last
        # command was refused (or stopped before its first chunk) is simply taken over.
        if has_results and os.path.lexists(path):
            saved = self._saved_config(path, overwrite)
            if saved is not None and saved.get("config_hash") != self.config_hash:
                if not overwrite:
                    raise StoreError(
                        f"{self.root} holds results of another study configuration (hash "
                        f"{printable(saved.get('config_hash'), 40)}, this one "
                        f"{self.config_hash}; they differ in "
                        f"{_differences(saved.get('config'), self.config)}); use another "
                        "output directory, or overwrite=True (--overwrite) to discard them."
                    )
                self._discard()
        self.verify(overwrite=overwrite)
        payload = {"config_hash": self.config_hash, "config": self.config}
        try:
            self.outputs.record(CONFIG_FILE)
            atomic_write_bytes(path, _config_text(payload).encode())
            if not self.chunk_dir.exists():
                self.chunk_dir.mkdir()
        except OSError as error:
            raise StoreError(
                f"could not write {path} or {self.chunk_dir} ({error.strerror or error}); "
                "move away what is in the way (or choose another --out) and rerun."
            ) from error

    def _saved_config(self, path: Path, overwrite: bool) -> dict[str, Any] | None:
        """The saved identity (``{"config_hash", "config"}``); None when damaged and
        ``overwrite`` (the results are then discarded: nothing says what made them)."""
        from metaleep.study.out_dir import read_json

        saved = read_json(path, "the study's configuration")
        config = saved.get("config") if isinstance(saved, dict) else None
        if (
            not isinstance(config, dict)
            or saved.get("config_hash") != _digest(_config_text(config))[:16]
        ):
            if not overwrite:
                raise StoreError(
                    f"{path} is damaged (its configuration does not match its hash); the "
                    f"chunks in {self.chunk_dir} record their own configuration and are "
                    "checked if you delete this file and rerun; or use another output "
                    "directory, or overwrite=True (--overwrite) to discard them."
                )
            return {"config_hash": None, "config": None}
        return saved

    def _discard(self) -> None:
        """Delete metaleep's results and the report made from them (the lock is held)."""
        if self.chunk_dir.is_dir():
            for path in sorted(self.chunk_dir.iterdir()):
                if _is_chunk_entry(path) and _in_chunk_format(path):
                    path.unlink()
        self.outputs.remove(keep=(CONFIG_FILE, SUITE_FILE))

    def chunk_path(self, chunk: int) -> Path:
        """Path of chunk ``chunk``'s file."""
        return self.chunk_dir / f"chunk-{chunk:05d}.csv"

    # ------------------------------------------------------------------ checks

    def verify(self, *, overwrite: bool = False) -> list[int]:
        """Check every file under ``results/``; return the numbers of the chunks that count.

        A damaged chunk, a chunk of another identity, one stored under another chunk's name,
        one whose episodes are not this study's (other content) or are already held by another
        chunk, one without all its planned rows, and any other file raise :class:`StoreError`
        naming the file; with ``overwrite``, metaleep's chunk files among them are deleted
        instead (never a file it did not write). Leftover temporary files of an interrupted
        write are removed. Run when the store is opened, so that a problem is reported before
        a resumed study computes anything.
        """
        self.stored = {}
        if not os.path.lexists(self.chunk_dir):
            return []
        foreign = self.outputs.foreign()
        if foreign:
            self.outputs.check()
        chunks = []
        for path in sorted(self.chunk_dir.iterdir()):
            if _TEMP_NAME.fullmatch(path.name):
                path.unlink(missing_ok=True)  # a write that never finished
                continue
            chunk = int(_CHUNK_NAME.fullmatch(path.name).group(1))  # type: ignore[union-attr]
            try:
                binding, body = self._read(path)
            except StoreError:
                if overwrite and _in_chunk_format(path):  # metaleep's, damaged
                    path.unlink()
                    continue
                raise
            episodes = self._episodes_of(binding, body)
            problem = self._binding_problem(chunk, binding) or self._rows_problem(
                chunk, binding, body
            )
            twice = [e for e in episodes if e in self.stored]
            if not problem and twice:
                problem = (
                    f"result chunk {path} holds episode {twice[0]}, which chunk "
                    f"{self.stored[twice[0]]} holds too, so its rows would be counted twice: "
                    f"delete {path} and rerun (or use overwrite=True (--overwrite))."
                )
            if problem:
                if overwrite:
                    path.unlink()
                    continue
                raise StoreError(problem)
            chunks.append(chunk)
            for episode in episodes:
                self.stored[episode] = chunk
        return chunks

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
        content, _, tail = text.rpartition(_CHECKSUM)
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
            except (ValueError, RecursionError):
                loaded = None
            binding = loaded if isinstance(loaded, dict) else {}
        else:
            body = content  # a chunk of a metaleep that did not bind chunks
        return binding, body

    def _binding_problem(self, chunk: int, binding: Mapping[str, Any]) -> str:
        """Why an intact chunk file cannot count for this study ('' when it can)."""
        path = self.chunk_path(chunk)
        study = binding.get("study")
        if study != self.config_hash:
            made = (
                f"by another study configuration (hash {printable(study, 40)})"
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
                f"result chunk {path} holds chunk {printable(binding.get('chunk'), 40)} (a copy "
                f"under another name?), so its rows would be counted twice: delete {path} and "
                "rerun (or use overwrite=True (--overwrite) to discard such files)."
            )
        episodes = binding.get("episodes")
        if not isinstance(episodes, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) and 0 <= e < 2**62 for e in episodes
        ):
            return (
                f"result chunk {path} does not say which episodes it holds: delete {path} and "
                "rerun to recompute it."
            )
        if self.digests is not None:
            unknown = [e for e in episodes if e not in self.digests]
            if unknown or binding.get("content") != _content(self.digests, episodes):
                why = f"episodes {unknown[:5]} are not in it" if unknown else "other content"
                return (
                    f"result chunk {path} was computed on other episodes than this study's "
                    f"suite holds ({why}): "
                    "the suite changed since (regenerated or edited at the same path), so its "
                    "results cannot count: use overwrite=True (--overwrite) to recompute the "
                    "study on this suite, or another output directory."
                )
        return ""

    def _episodes_of(self, binding: Mapping[str, Any], body: str) -> list[int]:
        episodes = binding.get("episodes")
        if isinstance(episodes, list):
            return [int(e) for e in episodes]
        return sorted({int(e) for e in _key_frame(body, ("episode",))["episode"]})

    def _rows_problem(self, chunk: int, binding: Mapping[str, Any], body: str) -> str:
        """Why a chunk's rows are not exactly its episodes' planned rows ('' when they are)."""
        if self.rows is None:
            return ""
        episodes = self._episodes_of(binding, body)
        try:
            frame = _key_frame(body, self.keys)
        except (ValueError, KeyError) as error:
            return (
                f"result chunk {self.chunk_path(chunk)} does not hold the study's columns "
                f"({printable(error, 100)}): delete it and rerun to recompute it."
            )
        found: dict[int, list[tuple[str, ...]]] = {}
        for key in frame.itertuples(index=False, name=None):
            found.setdefault(int(key[0]), []).append(tuple(str(k) for k in key[1:]))
        for episode in sorted(set(found) | set(episodes)):
            have = found.get(episode, [])
            want = set(self.rows(episode)) if episode in episodes else set()
            if len(have) != len(set(have)) or set(have) != want:
                missing, extra = sorted(want - set(have)), sorted(set(have) - want)
                what = (
                    f"lacks {len(missing)} of its rows (first {missing[0]})"
                    if missing
                    else f"has rows it should not ({extra[0] if extra else 'repeated'})"
                )
                return (
                    f"result chunk {self.chunk_path(chunk)} is incomplete: episode {episode} "
                    f"{what}, so no statistic is computed from it: delete it and rerun to "
                    "recompute that chunk (or use overwrite=True (--overwrite))."
                )
        return ""

    # ------------------------------------------------------------------ writing

    def plan(self, selected: Sequence[int], chunk_size: int) -> dict[int, list[int]]:
        """The chunks still to compute for the ``selected`` episodes (in suite order):
        ``{chunk number: episodes}``, each at most ``chunk_size`` episodes, none stored.

        Episodes are grouped as ``chunk_size`` consecutive selected episodes; a group's
        stored episodes are left out. A group keeps its position as its chunk number when that
        number is free, else takes the next free one (a longer study, another chunk size).
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"`chunk_size` must be a positive integer; got {chunk_size!r}.")
        used = set(self.finished_chunks())
        plan: dict[int, list[int]] = {}
        for group, start in enumerate(range(0, len(selected), chunk_size)):
            todo = [int(e) for e in selected[start : start + chunk_size] if e not in self.stored]
            if not todo:
                continue
            number = group if group not in used else max(used) + 1
            used.add(number)
            plan[number] = todo
        self.planned = plan
        return plan

    def write_chunk(self, chunk: int, rows: pd.DataFrame) -> None:
        """Store the rows of one finished chunk (atomically, with its binding and checksum).

        The chunk's episodes are its planned ones (:meth:`plan`), or without a plan the
        distinct values of the ``episode`` column.
        """
        if self.planned is not None:
            if chunk not in self.planned:
                raise ValueError(
                    f"`chunk` must be one of the planned chunks "
                    f"{sorted(self.planned)[:10]}; got {chunk!r}."
                )
            episodes = self.planned[chunk]
        elif "episode" in rows.columns:
            episodes = sorted({int(e) for e in rows["episode"]})
        else:
            episodes = []
        content = None if self.digests is None else _content(self.digests, episodes)
        tag = json.dumps(
            {
                "chunk": int(chunk),
                "content": content,
                "episodes": episodes,
                "rows": len(rows),
                "study": self.config_hash,
            },
            sort_keys=True,
        )
        text = f"{_CHUNK_TAG}{tag}\n{table_to_csv(rows)}"
        data = f"{text}{_CHECKSUM}{_digest(text)}\n".encode()
        path = self.chunk_path(chunk)
        try:
            atomic_write_bytes(path, data)
        except OSError as error:
            raise StoreError(
                f"could not write result chunk {path} ({error.strerror or error}); the chunks "
                "already stored are intact: free disk space (or fix the directory) and rerun "
                "to resume."
            ) from error
        for episode in episodes:
            self.stored[episode] = chunk

    # ------------------------------------------------------------------ reading

    def _checked_body(self, chunk: int) -> str:
        """The CSV text of chunk ``chunk``, once its checksum and binding are checked again."""
        binding, body = self._read(self.chunk_path(chunk))
        problem = self._binding_problem(chunk, binding) or self._rows_problem(chunk, binding, body)
        if problem:
            raise StoreError(problem)
        return body

    def read_chunk(self, chunk: int) -> pd.DataFrame:
        """Rows of a finished chunk; a damaged or foreign file raises :class:`StoreError`."""
        return pd.read_csv(io.StringIO(self._checked_body(chunk)))

    def finished_chunks(self) -> list[int]:
        """Numbers of the chunk files on disk, sorted (checked when the store was opened)."""
        if not self.chunk_dir.is_dir():
            return []
        return sorted(
            int(m.group(1))
            for p in self.chunk_dir.iterdir()
            if (m := _CHUNK_NAME.fullmatch(p.name)) and is_regular_file(p)
        )

    def read_all(self) -> pd.DataFrame:
        """All stored rows, in chunk order (an empty frame when nothing is stored)."""
        frames = [self.read_chunk(c) for c in self.finished_chunks()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def assemble(self, keys: Sequence[str], episodes: Sequence[int] | None = None) -> pd.DataFrame:
        """The rows of ``episodes`` (default: every stored one) sorted (stably) by ``keys``;
        also written to ``results.csv``.

        Exactly the chunks holding those episodes are read, each checked again, and only their
        rows of ``episodes`` kept (a longer study's chunks hold more). The table is checked
        before it is written or returned: every episode of ``episodes`` present (with all its
        planned rows) and unique ``keys`` (:class:`StoreError` otherwise). The file is made of
        the checked chunk files' own lines, reordered, so no value is formatted twice and
        ``results.csv`` holds exactly the text of the chunks. (Chunks of different columns, or
        a field with a line break, take the slower way: parse, sort, format again.)
        """
        if episodes is None:
            chunks = self.finished_chunks()
            wanted = None
        else:
            wanted = {int(e) for e in episodes}
            missing = sorted(wanted - set(self.stored))
            if missing:
                raise StoreError(
                    f"{self.chunk_dir} lacks {len(missing)} episode(s) of this study (first "
                    f"{missing[:5]}); rerun the same command to compute them."
                )
            chunks = sorted({self.stored[e] for e in wanted})
        bodies = [self._checked_body(c) for c in chunks]
        headers = {body.partition("\n")[0] for body in bodies}
        if len(headers) == 1:
            header = headers.pop()
            lines = [line for body in bodies for line in body.partition("\n")[2].splitlines()]
            table = pd.read_csv(io.StringIO("\n".join([header, *lines])))
            if len(table) == len(lines):
                if wanted is not None and "episode" in table.columns:
                    keep = table["episode"].isin(wanted).to_numpy()
                    table = table[keep]
                    lines = [line for line, k in zip(lines, keep, strict=True) if k]
                    table = table.reset_index(drop=True)
                self._check_table(table, keys)
                order = table.sort_values(list(keys), kind="stable").index.to_numpy()
                text = "\n".join([header, *(lines[i] for i in order)]) + "\n"
                self._write_results(text)
                return table.iloc[order].reset_index(drop=True)
        frames = [pd.read_csv(io.StringIO(body)) for body in bodies if body.strip()]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if not table.empty:
            if wanted is not None and "episode" in table.columns:
                table = table[table["episode"].isin(wanted)]
            self._check_table(table, keys)
            table = table.sort_values(list(keys), kind="stable").reset_index(drop=True)
        self.write_results(table)
        return table

    def _check_table(self, table: pd.DataFrame, keys: Sequence[str]) -> None:
        """Unique keys."""
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

    def _write_results(self, text: str) -> Path:
        self.outputs.record(RESULTS_FILE)
        return atomic_write(self.root / RESULTS_FILE, lambda p: p.write_text(text))

    def write_results(self, table: pd.DataFrame) -> Path:
        """Write the assembled table to ``results.csv`` (atomically) and return its path."""
        return self._write_results(table_to_csv(table))


def _key_frame(body: str, keys: Sequence[str]) -> pd.DataFrame:
    """The key columns of a chunk's CSV text, as text (``episode`` as integers)."""
    if not body.strip():  # a chunk without rows (no backbone had any on its episodes)
        return pd.DataFrame({k: pd.Series(dtype="int64" if k == "episode" else str) for k in keys})
    frame = pd.read_csv(io.StringIO(body), usecols=list(keys), dtype=str, keep_default_na=False)
    if "episode" in frame.columns:
        frame["episode"] = frame["episode"].astype("int64")
    return frame[list(keys)]


def _differences(saved: object, config: Mapping[str, Any]) -> str:
    """The top-level keys in which two identities differ, named (at most 5)."""
    if not isinstance(saved, dict):
        return "everything (no readable configuration)"
    names = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    shown = ", ".join(printable(n, 40) for n in names[:5])
    return (shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")) or "nothing"
