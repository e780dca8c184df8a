"""An output directory metaleep writes: its one-writer lock, the record of what it wrote there,
and the checks that keep the user's own files safe.

A study (``metaleep run``), a grid and ``metaleep score`` write into the directory ``--out``
names, often a folder that holds the user's files as well. Three rules, checked before any
work:

- ``--out`` must be a directory metaleep may own: not the file system's root, not the home
  directory, not an existing file (:func:`check_out_dir`).
- Every file metaleep writes there is recorded, by its relative path, in
  ``.metaleep-outputs.json`` (:class:`Outputs`). A file at one of the names a command writes
  that is not in the record (the user's ``report.html``, ``results/summary.txt``, a symbolic
  link) is *foreign*: the command refuses, listing every foreign path it found, and never
  writes over it.
- ``--overwrite`` removes exactly the recorded files (regular files only; never through a
  symbolic link, never out of the directory) and nothing else.

Outputs whose names are known only at the end (the report's figures) are written into a
staging folder and moved into place by :meth:`Outputs.publish`, which checks each name first.
A directory written by a metaleep that kept no record is recognised by its ``study.json`` (or
``grid.json``) and the files that metaleep wrote are adopted (:attr:`Layout.legacy`).

Text read from the directory (the owner record, the record itself) is untrusted: it is read
only from regular files of bounded size, parsed with depth errors caught, and shown escaped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, TypeVar

from metaleep._io import atomic_write_bytes
from metaleep._text import printable

__all__ = [
    "LOCK_FILE",
    "OUTPUTS_FILE",
    "OWNER_FILE",
    "Layout",
    "Outputs",
    "StoreError",
    "StudyLock",
    "check_out_dir",
    "is_regular_file",
    "peek_json",
    "read_json",
]

OUTPUTS_FILE = ".metaleep-outputs.json"
"""The record of the files metaleep wrote in a directory."""
LOCK_FILE = ".metaleep.lock"
OWNER_FILE = ".metaleep.owner"
_OWN = (OUTPUTS_FILE, LOCK_FILE, OWNER_FILE)
_STAGING = ".metaleep-staging"
_FORMAT = "metaleep-outputs"
_MAX_JSON_BYTES = 16 * 1024 * 1024
_MIN_FREE_BYTES = 50 * 1024 * 1024
_SHOWN_PATHS = 20

T = TypeVar("T")


class StoreError(RuntimeError):
    """A directory cannot be used as it is (the message says why and what to do)."""


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (not a link to one, not a FIFO)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def read_json(path: Path, what: str) -> Any:
    """The JSON value in ``path``, a regular file of at most 16 MiB; :class:`StoreError` naming
    ``what`` and the remedy for anything else (another file type, bad UTF-8, bad JSON, nesting
    too deep for the parser)."""
    if not is_regular_file(path):
        raise StoreError(
            f"{path} is not a regular file; metaleep keeps {what} there: move it away (or "
            "delete it) and rerun."
        )
    try:
        if os.path.getsize(path) > _MAX_JSON_BYTES:
            raise ValueError(f"larger than {_MAX_JSON_BYTES // 2**20} MiB")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        problem = printable(error, 200) if not isinstance(error, RecursionError) else "too deep"
        raise StoreError(
            f"{path} is unreadable ({problem}); it should hold {what}: delete it to start over."
        ) from None


def peek_json(path: Path) -> Any:
    """The JSON value in ``path`` if it is a readable regular file of JSON, else None (for
    recognising a file; :func:`read_json` when it must be there)."""
    try:
        return read_json(path, "JSON")
    except StoreError:
        return None


def check_out_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` if it may be metaleep's output directory; :class:`StoreError` otherwise.

    Refused: the file system's root, the home directory (whose files are the user's), an
    existing path that is not a directory (a file, ``/dev/null``), and a path through a
    file.

    Examples
    --------
    >>> check_out_dir("/")
    Traceback (most recent call last):
    ...
    metaleep.study.out_dir.StoreError: `out_dir` must be a directory metaleep may own (not the \
file system's root, the home directory or an existing file); got '/'.
    """
    root = Path(path).expanduser()
    try:
        resolved = root.resolve()
    except (OSError, RuntimeError):  # a link loop
        resolved = root
    forbidden = {Path(resolved.anchor)}
    try:
        forbidden.add(Path.home().resolve())
    except (OSError, RuntimeError, KeyError):
        pass
    exists = os.path.lexists(root)
    if resolved in forbidden or (exists and not root.is_dir()):
        raise StoreError(
            "`out_dir` must be a directory metaleep may own (not the file system's root, the "
            f"home directory or an existing file); got {printable(os.fspath(path))!r}."
        )
    return root


# ----------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """What a command writes in its output directory.

    Attributes
    ----------
    files:
        Names of the files it writes (relative paths): each must be absent, or a regular file
        it wrote (recorded), before it starts.
    folders:
        Folders it keeps its own files in, each with a test of which entries are metaleep's
        (e.g. checksummed chunk files); any other entry is foreign.
    legacy:
        For a directory without a record: the files an older metaleep wrote there, adopted
        into the record (empty: none recognised).
    """

    files: tuple[str, ...]
    folders: Mapping[str, Callable[[Path], bool]] = field(default_factory=dict)
    legacy: Callable[[Path], tuple[str, ...]] | None = None


def _clean_name(name: object) -> str | None:
    """A record entry as a safe relative path, or None: no absolute path, no ``..``, no
    empty part, no control character, not one of metaleep's own bookkeeping files."""
    if not isinstance(name, str) or not name or len(name) > 4096:
        return None
    if printable(name, 4096) != name:
        return None
    parts = PurePosixPath(name).parts
    if name.startswith("/") or not parts or any(p in ("", ".", "..") for p in parts):
        return None
    if parts[0] in _OWN or "\\" in name:
        return None
    return "/".join(parts)


def _listed(paths: list[Path]) -> str:
    shown = ", ".join(printable(os.fspath(p), 200) for p in paths[:_SHOWN_PATHS])
    more = len(paths) - _SHOWN_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


class Outputs:
    """The record of the files metaleep wrote in ``root`` (``.metaleep-outputs.json``).

    Made by :meth:`StudyLock.acquire` once the directory is locked. A missing record starts
    empty, or adopts the files an older metaleep wrote (``layout.legacy``); a damaged one is
    refused (:class:`StoreError`).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "notes.txt").write_text("mine")
    4
    >>> outputs = Outputs(root, Layout(files=("table.csv", "notes.txt")))
    >>> [p.name for p in outputs.foreign()]
    ['notes.txt']
    >>> outputs.record("table.csv"); _ = (root / "table.csv").write_text("1")
    >>> outputs.remove(); sorted(p.name for p in root.iterdir())
    ['.metaleep-outputs.json', 'notes.txt']
    """

    def __init__(self, root: str | os.PathLike[str], layout: Layout) -> None:
        self.root = Path(root)
        self.layout = layout
        self.path = self.root / OUTPUTS_FILE
        self.files: set[str] = set()
        if os.path.lexists(self.path):
            self.files = self._load()
        elif layout.legacy is not None:
            adopted = [n for n in layout.legacy(self.root) if is_regular_file(self.root / n)]
            if adopted:
                self.record(*adopted)

    def _load(self) -> set[str]:
        data = read_json(self.path, "the list of the files metaleep wrote")
        names = data.get("files") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(names, list)
            or any(_clean_name(n) is None for n in names)
        ):
            raise StoreError(
                f"{self.path} is damaged (it must list the relative paths of the files metaleep "
                "wrote here); delete it to start over: the files it listed then count as "
                "yours, and metaleep neither overwrites nor removes them."
            )
        return {str(_clean_name(n)) for n in names}

    def _save(self) -> None:
        data = {"format": _FORMAT, "version": 1, "files": sorted(self.files)}
        try:
            atomic_write_bytes(self.path, (json.dumps(data, indent=1) + "\n").encode())
        except OSError as error:
            raise StoreError(
                f"could not write {self.path} ({error.strerror or error}); free disk space (or "
                "fix the directory) and rerun."
            ) from error

    def record(self, *names: str) -> None:
        """Add files (relative paths) metaleep wrote, or is about to write, to the record."""
        new = {str(_clean_name(n)) for n in names if _clean_name(n) is not None} - self.files
        if new:
            self.files |= new
            self._save()

    def forget(self, *names: str) -> None:
        """Drop files from the record."""
        if self.files & set(names):
            self.files -= set(names)
            self._save()

    def ours(self, name: str) -> bool:
        """Whether ``name`` is a regular file metaleep recorded (reached without a link)."""
        return name in self.files and self._reachable(name) and is_regular_file(self.root / name)

    def _reachable(self, name: str) -> bool:
        """Every folder on the way to ``name`` is a real directory (no link out) or absent
        (metaleep creates it)."""
        folder = self.root
        for part in PurePosixPath(name).parts[:-1]:
            folder = folder / part
            if not os.path.lexists(folder):
                return True
            if not _is_real_dir(folder):
                return False
        return True

    def foreign(self, names: Iterable[str] | None = None) -> list[Path]:
        """The paths in the way of ``names`` (default: the layout): present, not metaleep's."""
        found = []
        for name in self.layout.files if names is None else names:
            path = self.root / name
            if (os.path.lexists(path) or not self._reachable(name)) and not self.ours(name):
                found.append(path)
        if names is None:
            for folder, is_ours in self.layout.folders.items():
                path = self.root / folder
                if not os.path.lexists(path):
                    continue
                if not _is_real_dir(path):
                    found.append(path)
                    continue
                found += [entry for entry in sorted(path.iterdir()) if not is_ours(entry)]
        return found

    def check(self, names: Iterable[str] | None = None) -> None:
        """:class:`StoreError` listing every foreign path in the way of ``names``."""
        found = self.foreign(names)
        if found:
            raise StoreError(
                f"{self.root} holds {len(found)} file(s) metaleep did not write where it writes "
                f"its own: {_listed(found)}. metaleep never overwrites or deletes them (not even "
                "with --overwrite): move them away, or choose another --out, and rerun."
            )

    def remove(self, keep: Iterable[str] = ()) -> None:
        """Delete every recorded file but ``keep`` (regular files reached without a link;
        anything else at a recorded name is left, and then counts as foreign)."""
        kept = set(keep)
        gone = []
        for name in sorted(self.files - kept):
            path = self.root / name
            if self.ours(name):
                path.unlink()
                gone.append(name)
            elif not os.path.lexists(path):
                gone.append(name)
        self.forget(*gone)

    def publish(self, write: Callable[[Path], T]) -> T:
        """``write(folder)`` into a staging folder, then each file it wrote moved into place.

        Every name is checked first: one in the way (not metaleep's) stops the whole move
        with :class:`StoreError` listing them, before any file is replaced. The names are
        recorded before the first move, so a process killed midway leaves only recorded files.
        """
        staging_name = f"{_STAGING}-{os.getpid()}"
        staging = self.root / staging_name
        self.record(staging_name)
        if os.path.lexists(staging):
            _remove_tree(staging)
        staging.mkdir()
        try:
            value = write(staging)
            written = sorted(
                p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()
            )
            odd = [staging / n for n in written if _clean_name(n) is None]
            if odd:
                raise StoreError(f"an output has a name metaleep cannot record: {_listed(odd)}.")
            self.check(written)
            folders = sorted({str(PurePosixPath(n).parent) for n in written} - {"."})
            for folder in folders:
                (self.root / folder).mkdir(parents=True, exist_ok=True)
            self.record(*written)
            for name in written:
                os.replace(staging / name, self.root / name)
        finally:
            _remove_tree(staging)
            self.forget(staging_name)
        return value

    def clean_staging(self) -> None:
        """Remove staging folders a killed process left (recorded ones only)."""
        for name in sorted(n for n in self.files if n.startswith(_STAGING)):
            path = self.root / name
            if _is_real_dir(path):
                _remove_tree(path)
            if not os.path.lexists(path):
                self.forget(name)


def _remove_tree(path: Path) -> None:
    """A staging folder, removed (links inside are unlinked, never followed)."""
    if _is_real_dir(path):
        shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- the lock


class StudyLock:
    """The one-writer lock of an output directory (an OS file lock, via ``filelock``).

    Acquiring checks that the directory may be metaleep's (:func:`check_out_dir`), creates it,
    checks that it is writable with some free space, takes the lock without waiting, checks
    that nothing foreign is where ``layout`` writes (:meth:`Outputs.check`) and records the
    holder (pid, host, command, start time) in ``.metaleep.owner``. A directory locked by
    another live process raises :class:`StoreError` naming that process (its record shown
    escaped: the file is anyone's to edit). The operating system releases the lock when the
    holder ends, killed or not; a stale owner file is then simply replaced. The lock and owner
    files must be regular files: a link, a folder or a FIFO in their place is refused.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> with StudyLock(root) as lock:
    ...     StudyLock(root).acquire()
    Traceback (most recent call last):
    ...
    metaleep.study.out_dir.StoreError: ... is in use by another metaleep process (pid ...
    """

    def __init__(self, root: str | os.PathLike[str], layout: Layout | None = None) -> None:
        self.root = Path(root)
        self.layout = layout if layout is not None else Layout(files=())
        self.outputs: Outputs | None = None
        self._lock: Any = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock is not None and bool(self._lock.is_locked)

    @property
    def held_outputs(self) -> Outputs:
        """The record of what is written in the held directory (``RuntimeError`` when the
        lock has not been acquired: only a holder writes)."""
        if self.outputs is None:
            raise RuntimeError(f"the lock of {self.root} must be held to write there; it is not.")
        return self.outputs

    def acquire(self) -> StudyLock:
        """Take the lock (:class:`StoreError` if another process holds it); return self."""
        from filelock import FileLock, Timeout

        if self.held:
            return self
        check_out_dir(self.root)
        _check_writable(self.root)
        for name in (LOCK_FILE, OWNER_FILE, OUTPUTS_FILE):
            path = self.root / name
            if os.path.lexists(path) and not is_regular_file(path):
                raise StoreError(
                    f"{path} is not a regular file (a link, a folder or a device); metaleep "
                    "keeps its bookkeeping there: move it away (or delete it) and rerun."
                )
        lock = FileLock(self.root / LOCK_FILE, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"{self.root} is in use by another metaleep process ({self._holder()}); wait "
                "for it to finish (or stop it), or choose another --out. Two processes writing "
                "one directory would mix their results."
            ) from None
        except OSError as error:
            raise StoreError(
                f"output directory {self.root} is not writable ({error.strerror or error}); "
                "choose another one with --out."
            ) from error
        self._lock = lock
        try:
            self.outputs = Outputs(self.root, self.layout)
            self.outputs.clean_staging()
            self.outputs.check()
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
        owner = self.root / OWNER_FILE
        if is_regular_file(owner):
            owner.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def _holder(self) -> str:
        try:
            owner = read_json(self.root / OWNER_FILE, "the lock holder's record")
            return printable(
                f"pid {owner['pid']} on {owner['host']}, since {owner['started']}: "
                f"{owner['command']}"
            )
        except (StoreError, KeyError, TypeError):
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
