"""Contact sheets: pixel size, content of the cells, class choice, errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from metaleep.data.base import ImageDataset
from metaleep.data.glyphs import load_glyphs
from metaleep.data.sheet import contact_sheet, sheet_size


@pytest.fixture(scope="module")
def glyph_ds():
    return load_glyphs(instances_per_class=2)


def test_png_size_and_default_rows(glyph_ds, tmp_path):
    out = contact_sheet(glyph_ds, tmp_path / "a" / "sheet.png", instances=2)
    assert out == tmp_path / "a" / "sheet.png"
    image = Image.open(out)
    assert image.format == "PNG"
    # 10 rows of 2x-zoomed 28 px cells (+2 px gaps) beside a 170 px label column
    assert image.size == (170 + 2 * (56 + 2) + 2, 10 * (56 + 2) + 2)
    assert image.size == sheet_size(10, 2, (28, 28))


def test_cells_show_the_images_dark_on_white(glyph_ds, tmp_path):
    c = 123
    out = contact_sheet(glyph_ds, tmp_path / "s.png", classes=[c], instances=2)
    sheet = np.asarray(Image.open(out).convert("L"))
    for col, index in enumerate(glyph_ds.labels_to_indices[c]):
        left = 170 + 2 + col * (56 + 2)
        cell = sheet[2 : 2 + 56, left : left + 56]
        expected = 255 - glyph_ds.images[int(index), 0].numpy()
        np.testing.assert_array_equal(cell, np.kron(expected, np.ones((2, 2), dtype=np.uint8)))
    label = sheet[2 : 2 + 56, :170]
    assert (label < 128).sum() > 30  # the row label was drawn


def test_class_choice_is_seeded(glyph_ds, tmp_path):
    a = np.asarray(Image.open(contact_sheet(glyph_ds, tmp_path / "a.png", classes=3, seed=5)))
    b = np.asarray(Image.open(contact_sheet(glyph_ds, tmp_path / "b.png", classes=3, seed=5)))
    c = np.asarray(Image.open(contact_sheet(glyph_ds, tmp_path / "c.png", classes=3, seed=6)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape[:2] == (3 * 58 + 2, 170 + 10 * 58 + 2)


def test_other_datasets_rgb(tmp_path):
    gen = np.random.default_rng(0)
    images = torch.from_numpy(gen.integers(0, 256, (12, 3, 8, 10), dtype=np.uint8))
    classes = pd.DataFrame({"name": ["cat", "dog", "eel"]})
    ds = ImageDataset(images, np.repeat(np.arange(3), 4), classes, "toy", "v")
    out = contact_sheet(ds, tmp_path / "rgb.png", classes=[0, 2], instances=4)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (2 * (max(16, 32) + 2) + 2, 170 + 4 * (20 + 2) + 2, 3)
    first = sheet[2 : 2 + 16, 172 : 172 + 20]
    expected = np.kron(images[0].numpy().transpose(1, 2, 0), np.ones((2, 2, 1), dtype=np.uint8))
    np.testing.assert_array_equal(first, expected)  # RGB is not inverted


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"classes": 0}, ValueError, "`classes` must be >= 1; got 0."),
        ({"classes": [99999]}, ValueError, "`classes` must be class ids in 0..1397; got [99999]."),
        ({"classes": True}, TypeError, "`classes` must be None, an int or class ids; got True."),
        ({"instances": 0}, ValueError, "`instances` must be >= 1; got 0."),
        ({"instances": 2.0}, TypeError, "`instances` must be an int; got 2.0."),
    ],
)
def test_errors(glyph_ds, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        contact_sheet(glyph_ds, tmp_path / "x.png", **kwargs)
