"""Data sets for metaleep: the built-in glyphs and digits, class splits by alphabet, contact sheets.

Everything loads into :class:`~metaleep.data.base.ImageDataset`. The names below are imported
on first use, so ``import metaleep.data`` (and the CLI's start-up) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset
    from metaleep.data.digits import load_digits
    from metaleep.data.folder import load_image_folder, scan_image_folder
    from metaleep.data.glyphs import GlyphBank, GlyphCacheWarning, load_bank, load_glyphs
    from metaleep.data.sheet import contact_sheet
    from metaleep.data.spec import load_data, parse_data
    from metaleep.data.splits import ClassSplit, get_split, list_splits

_EXPORTS = {
    "ImageDataset": "base",
    "load_digits": "digits",
    "GlyphBank": "glyphs",
    "GlyphCacheWarning": "glyphs",
    "load_bank": "glyphs",
    "load_glyphs": "glyphs",
    "contact_sheet": "sheet",
    "load_image_folder": "folder",
    "scan_image_folder": "folder",
    "load_data": "spec",
    "parse_data": "spec",
    "ClassSplit": "splits",
    "get_split": "splits",
    "list_splits": "splits",
}

__all__ = [
    "ClassSplit",
    "GlyphBank",
    "GlyphCacheWarning",
    "ImageDataset",
    "contact_sheet",
    "get_split",
    "list_splits",
    "load_bank",
    "load_data",
    "load_digits",
    "load_glyphs",
    "load_image_folder",
    "parse_data",
    "scan_image_folder",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"metaleep.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'metaleep.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (lazy ones too) for dir() and tab completion.
    return sorted({*__all__, *(n for n in globals() if n.startswith("_"))})
