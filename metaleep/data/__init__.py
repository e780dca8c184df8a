"""Data sets for metaleep: the built-in glyphs, class splits by alphabet, contact sheets.

Everything loads into :class:`~metaleep.data.base.ImageDataset`. Importing this package pulls
in numpy and pandas only (torch is imported when a data set is loaded).
"""

from __future__ import annotations

from metaleep.data.base import ImageDataset
from metaleep.data.glyphs import GlyphBank, GlyphCacheWarning, load_bank, load_glyphs
from metaleep.data.sheet import contact_sheet
from metaleep.data.splits import ClassSplit, get_split, list_splits

__all__ = [
    "ClassSplit",
    "GlyphBank",
    "GlyphCacheWarning",
    "ImageDataset",
    "contact_sheet",
    "get_split",
    "list_splits",
    "load_bank",
    "load_glyphs",
]
