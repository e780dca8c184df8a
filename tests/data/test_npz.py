"""Reproducible .npz files (metaleep/data/_npz.py)."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest

from metaleep.data._npz import write_npz


def _arrays():
    return {
        "b": np.arange(12, dtype=np.int16).reshape(3, 4),
        "a": np.asarray("κείμενο"),
        "c": np.linspace(0, 1, 5)[::2],  # not contiguous
        "d": np.array(["x", "yy"]),
    }


def test_round_trip_and_byte_identical(tmp_path):
    write_npz(tmp_path / "one.npz", _arrays())
    write_npz(tmp_path / "two", _arrays())  # no suffix is added
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two").read_bytes()
    with np.load(tmp_path / "one.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["a", "b", "c", "d"]
        for name, array in _arrays().items():
            np.testing.assert_array_equal(z[name], array)
            assert z[name].shape == array.shape and z[name].dtype == array.dtype
    with zipfile.ZipFile(tmp_path / "one.npz") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a.npy", "b.npy", "c.npy", "d.npy"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}


def test_file_object_and_stored(tmp_path):
    buffer = io.BytesIO()
    write_npz(buffer, {"x": np.ones(1000)}, compress=False)
    assert len(buffer.getvalue()) > 8000  # stored, not deflated
    buffer.seek(0)
    np.testing.assert_array_equal(np.load(buffer)["x"], np.ones(1000))


def test_object_arrays_refused(tmp_path):
    message = "`arrays['o']` must not be an object array; got dtype dtype('O')."
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        write_npz(tmp_path / "o.npz", {"o": np.array([{}, 1], dtype=object)})
