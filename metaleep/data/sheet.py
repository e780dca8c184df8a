"""Contact sheets: a grid of classes x instances in one PNG, to look at a data set before
trusting it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset

#: Each image is drawn ZOOM times its size; cells are separated by GAP pixels.
ZOOM = 2
GAP = 2
#: Width of the row-label column, pixels.
LABEL_WIDTH = 170
FONT_SIZE = 13
DEFAULT_CLASSES = 10


def sheet_size(rows: int, columns: int, image_hw: tuple[int, int]) -> tuple[int, int]:
    """Pixel (width, height) of a contact sheet of ``rows`` classes x ``columns`` instances.

    >>> sheet_size(10, 10, (28, 28))
    (752, 582)
    """
    h, w = image_hw
    row_h = max(ZOOM * h, 2 * FONT_SIZE + 6)
    width = LABEL_WIDTH + columns * (ZOOM * w + GAP) + GAP
    height = rows * (row_h + GAP) + GAP
    return width, height


def _label_font() -> Any:
    """DejaVu Sans as shipped with matplotlib (wide script coverage), else Pillow's default."""
    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
            if path.exists():
                # basic layout: no bidi reordering or shaping of one-letter labels
                return ImageFont.truetype(
                    str(path), FONT_SIZE, layout_engine=ImageFont.Layout.BASIC
                )
    return ImageFont.load_default(FONT_SIZE)


def _renders(font: Any, text: str) -> bool:
    """Whether ``font`` has a glyph for ``text`` (it draws differently from a missing glyph)."""
    missing = font.getmask("\U0010fffd")
    mask = font.getmask(text)
    return bool(mask.size != missing.size or bytes(mask) != bytes(missing))


def _pick(
    dataset: ImageDataset, classes: int | Sequence[int] | None, rng: np.random.Generator
) -> np.ndarray:
    n = dataset.num_classes
    if classes is None:
        classes = DEFAULT_CLASSES
    if isinstance(classes, bool):
        raise TypeError(f"`classes` must be None, an int or class ids; got {classes!r}.")
    if isinstance(classes, (int, np.integer)):
        if classes < 1:
            raise ValueError(f"`classes` must be >= 1; got {classes!r}.")
        return np.sort(rng.choice(n, size=min(int(classes), n), replace=False))
    ids = np.asarray(classes, dtype=np.int64).reshape(-1)
    if ids.size == 0 or ids.min() < 0 or ids.max() >= n:
        raise ValueError(f"`classes` must be class ids in 0..{n - 1}; got {classes!r}.")
    return ids


def contact_sheet(
    dataset: ImageDataset,
    path: str | os.PathLike[str],
    *,
    classes: int | Sequence[int] | None = None,
    instances: int = 10,
    seed: int = 0,
    invert: bool | None = None,
) -> Path:
    """Render ``classes`` x ``instances`` images of ``dataset`` as a PNG grid.

    Each row is one class, labelled with its alphabet (when the data set has one) and its
    character and code point (glyphs) or name; each column one instance, drawn twice its size.

    Parameters
    ----------
    dataset:
        Any :class:`~metaleep.data.base.ImageDataset` (1 or 3 channels).
    path:
        Output PNG path (parent folders are created).
    classes:
        How many classes to draw at random (None: 10), or a sequence of class ids.
    instances:
        Instances per row (the first ones of a random sample of each class's images).
    seed:
        Seed of the random choice of classes and instances.
    invert:
        Draw ink dark on white (default for single-channel images, whose ink is 255 on 0).

    Returns
    -------
    Path
        ``path``. Its pixel size is :func:`sheet_size` ``(rows, instances, (H, W))``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from metaleep.data.glyphs import load_glyphs
    >>> ds = load_glyphs(instances_per_class=3)
    >>> out = contact_sheet(ds, pathlib.Path(tempfile.mkdtemp()) / "s.png", classes=4,
    ...                     instances=3)
    >>> from PIL import Image
    >>> Image.open(out).size == sheet_size(4, 3, (28, 28))
    True
    """
    from PIL import Image, ImageDraw

    if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)):
        raise TypeError(f"`instances` must be an int; got {instances!r}.")
    if instances < 1:
        raise ValueError(f"`instances` must be >= 1; got {instances!r}.")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    ids = _pick(dataset, classes, rng)
    channels, h, w = dataset.image_shape
    if channels not in (1, 3):
        raise ValueError(f"`dataset` images must have 1 or 3 channels; got {channels!r}.")
    if invert is None:
        invert = channels == 1
    width, height = sheet_size(len(ids), instances, (h, w))
    row_h = max(ZOOM * h, 2 * FONT_SIZE + 6)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _label_font()
    frame = dataset.classes
    by_class = dataset.labels_to_indices
    for row, c in enumerate(ids.tolist()):
        top = GAP + row * (row_h + GAP)
        members = by_class[c]
        chosen = np.sort(rng.permutation(members)[:instances])
        pixels = dataset.images[chosen].numpy()
        for col, image in enumerate(pixels):
            array = np.transpose(image, (1, 2, 0)) if channels == 3 else image[0]
            if invert:
                array = 255 - array
            tile = Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
            tile = tile.resize((ZOOM * w, ZOOM * h), Image.Resampling.NEAREST)
            sheet.paste(tile, (LABEL_WIDTH + GAP + col * (ZOOM * w + GAP), top))
        line1, line2 = _labels(frame, c, font)
        draw.text((4, top + 2), line1, fill=(0, 0, 0), font=font)
        draw.text((4, top + 4 + FONT_SIZE), line2, fill=(80, 80, 80), font=font)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out


def _labels(frame: Any, class_id: int, font: Any) -> tuple[str, str]:
    """(alphabet or dataset label, character / name) of one class."""
    row = frame.loc[class_id]
    line1 = str(row["alphabet"]) if "alphabet" in frame.columns else f"class {class_id}"
    if "codepoint" in frame.columns:
        code = int(row["codepoint"])
        char = chr(code)
        line2 = f"{char}  U+{code:04X}" if _renders(font, char) else f"U+{code:04X}"
    else:
        line2 = str(row["name"])
    return _fit(line1, font), _fit(line2, font)


def _fit(text: str, font: Any) -> str:
    limit = LABEL_WIDTH - 8
    if font.getlength(text) <= limit:
        return text
    while text and font.getlength(text + "…") > limit:
        text = text[:-1]
    return text + "…"
