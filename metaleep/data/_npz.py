"""Reproducible ``.npz`` files: the same arrays always give the same bytes.

``np.savez_compressed`` stamps every zip entry with the current date, so two writes of equal
arrays differ. :func:`write_npz` writes the same container (``np.load`` reads it) with entries in
sorted order, a fixed date (1980-01-01) and a fixed compression level, so equal arrays give
byte-identical files for a given zlib.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(
    target: str | os.PathLike[str] | BinaryIO,
    arrays: Mapping[str, np.ndarray],
    *,
    compress: bool = True,
) -> None:
    """Write ``arrays`` as an ``.npz`` archive whose bytes depend only on the arrays.

    Parameters
    ----------
    target:
        A path (written as given, no ``.npz`` suffix added) or a binary file object.
    arrays:
        Name -> array. Object arrays are refused (they would need pickle).
    compress:
        Deflate each entry (level 6) when true, store it when false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_npz(d / "a.npz", {"x": np.arange(3)})
    >>> write_npz(d / "b.npz", {"x": np.arange(3)})
    >>> (d / "a.npz").read_bytes() == (d / "b.npz").read_bytes()
    True
    >>> np.load(d / "a.npz")["x"].tolist()
    [0, 1, 2]
    """
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    if isinstance(target, (str, os.PathLike)):
        with open(Path(target), "wb") as fh:
            _write(fh, arrays, method)
    else:
        _write(target, arrays, method)


def _write(fh: BinaryIO, arrays: Mapping[str, np.ndarray], method: int) -> None:
    with zipfile.ZipFile(fh, mode="w", compression=method, allowZip64=True) as archive:
        for name in sorted(arrays):
            array = np.asarray(arrays[name])
            if array.dtype.hasobject:
                raise TypeError(
                    f"`arrays[{name!r}]` must not be an object array; got dtype {array.dtype!r}."
                )
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compress_type=method, compresslevel=6)
