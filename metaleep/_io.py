"""Files that are written whole or not at all, and where metaleep keeps its caches."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "METALEEP_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """The metaleep cache directory (``$METALEEP_CACHE_DIR``, else ``~/.cache/metaleep``).

    ``parts`` name a subdirectory, which is created.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"METALEEP_CACHE_DIR": "/tmp/metaleep-doctest-cache"}):
    ...     str(cache_dir("glyphs"))
    '/tmp/metaleep-doctest-cache/glyphs'
    """
    base = os.environ.get(CACHE_ENV)
    if base:
        root = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "metaleep"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file, then it is renamed.

    A process killed mid-write leaves at most a stray ``.tmp`` file, never a half ``path``.
    The temporary file is fsynced before the rename, and removed if ``write`` raises.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = atomic_write(d / "x.txt", lambda p: p.write_text("hello"))
    >>> (d / "x.txt").read_text()
    'hello'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a ``Path`` once it is known to be writable: not a directory, in a folder that
    exists (it is created) and takes a new file. ``ValueError`` naming ``flag`` otherwise, so a
    command can refuse an unusable output before doing its work.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_file(folder / "a" / "b.csv", "--out") == folder / "a" / "b.csv"
    True
    >>> check_output_file(folder, "--out")
    Traceback (most recent call last):
    ...
    ValueError: `--out` must be a file path; got the directory '...'.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"`{flag}` must be a file path; got the directory {str(target)!r}.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target.parent, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(
            f"`{flag}` must be a path in a writable folder; got {str(target)!r} "
            f"({error.strerror or error})."
        ) from error
    return target
