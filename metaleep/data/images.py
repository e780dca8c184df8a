"""Decoding one image file safely: the header first, a pixel limit, every problem a reason.

Every image metaleep reads from files (ImageFolder trees, Omniglot, cifarfs, the PNG blobs of
tiered-ImageNet) goes through :func:`read_header` and :func:`decode`:

- **Header first.** Pillow's ``Image.open`` reads only the header (format, size, mode);
  :func:`read_header` refuses a file that declares more than ``max_pixels`` pixels *before* any
  pixel is decoded. A decompression bomb (a PNG of a few kilobytes that declares 30000 x 30000
  pixels, 2.7 GB as RGB) never reaches the decoder. Pillow's own guard
  (``DecompressionBombError``, and ``DecompressionBombWarning``, turned into an error here) is
  caught and reported the same way.
- **Problems are reasons, never tracebacks.** An empty, truncated, corrupt or non-image file
  raises :class:`BadImage` with one line saying why; callers list such files and skip or refuse
  them.
- **Fixed conversions**, whatever the order of the files: colour -> grey by Pillow's ITU-R 601
  luma (``L = 0.299 R + 0.587 G + 0.114 B``); grey -> RGB by copying the channel; transparency
  (RGBA, LA, palette or colour-key transparency) composited **over white**, the background such
  images are drawn on; 16-bit grey scaled to 8 bits (``round(v / 257)``); the EXIF orientation
  of photos applied (the image as a viewer shows it); resizing by Lanczos.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = [
    "ALPHA_BACKGROUND",
    "MAX_PIXELS",
    "BadImage",
    "ImageHeader",
    "decode",
    "read_header",
]

MAX_PIXELS = 89_478_485
"""Default pixel limit per image: Pillow's own ``Image.MAX_IMAGE_PIXELS`` (about 9459 x 9459;
0.27 GB decoded as RGB). Pillow's limit applies as well: raise both to read larger images."""

ALPHA_BACKGROUND = (255, 255, 255)
"""Transparent pixels are composited over white."""

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ORIENTATION = 0x0112  # the EXIF orientation tag
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # orientations that turn the image by 90 degrees


class BadImage(ValueError):
    """A file that cannot be used as an image; ``str()`` says why in a few words."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares, read without decoding its pixels.

    Attributes
    ----------
    width, height:
        The size as a viewer shows it (after the EXIF orientation).
    mode:
        Pillow's mode of the file (``"L"``, ``"RGB"``, ``"RGBA"``, ``"P"``, ``"I;16"``, ...).
    colour:
        Whether the file holds colour (False for grey modes and grey palettes).
    alpha:
        Whether the file has transparency.
    orientation:
        The EXIF orientation (1: as stored).
    """

    width: int
    height: int
    mode: str
    colour: bool
    alpha: bool
    orientation: int = 1

    @property
    def pixels(self) -> int:
        """width x height."""
        return self.width * self.height


@contextlib.contextmanager
def _bomb_guard() -> Iterator[None]:
    """Pillow's decompression-bomb warning raised as an error for the duration."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _grey_palette(image: Any) -> bool:
    palette = getattr(image, "palette", None)
    raw = getattr(palette, "palette", None)
    if not raw or getattr(palette, "mode", None) != "RGB":
        return False
    values = np.frombuffer(bytes(raw), dtype=np.uint8)
    values = values[: values.size - values.size % 3].reshape(-1, 3)
    return bool(values.size) and bool((values == values[:, :1]).all())


def _orientation(image: Any) -> int:
    # PNG keeps EXIF after the pixels: Pillow would decode the image to find it. Read it only
    # where it is part of the header.
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    value = image.getexif().get(_ORIENTATION, 1)
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _header(image: Any, max_pixels: int) -> ImageHeader:
    width, height = (int(v) for v in image.size)
    if width < 1 or height < 1:
        raise BadImage(f"declares an empty size ({width} x {height})")
    if width * height > max_pixels:
        raise BadImage(
            f"declares {width} x {height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (refused before decoding: a decompression bomb, or a photo too "
            "large for few-shot episodes)"
        )
    mode = str(image.mode)
    orientation = _orientation(image)
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    if mode == "P":
        colour = not _grey_palette(image)
    else:
        colour = mode not in _GREY_MODES
    alpha = mode in _ALPHA_MODES or "transparency" in image.info
    return ImageHeader(width, height, mode, colour, alpha, orientation)


def _problem(error: BaseException) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"refused by Pillow's decompression-bomb guard ({error})"
    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow can read"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "truncated" in text:
        return f"truncated ({text})"
    return f"unreadable ({type(error).__name__}{': ' + text if text else ''})"


Source = str | os.PathLike[str] | bytes


@contextlib.contextmanager
def _opened(source: Source) -> Iterator[Any]:
    from PIL import Image

    handle: IO[bytes] | str
    if isinstance(source, bytes):
        if not source:
            raise BadImage("empty file (0 bytes)")
        handle = io.BytesIO(source)
    else:
        path = os.fspath(source)
        if os.path.getsize(path) == 0:
            raise BadImage("empty file (0 bytes)")
        handle = path
    with _bomb_guard(), Image.open(handle) as image:
        yield image


def read_header(source: Source, *, max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """The header of an image file (a path, or the file's bytes), without decoding pixels.

    Raises
    ------
    BadImage
        For an empty, unidentifiable or unreadable file, and for one that declares more than
        ``max_pixels`` pixels (checked from the header, before any decoding).

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("RGBA", (4, 3)).save(buffer, "PNG")
    >>> read_header(buffer.getvalue())
    ImageHeader(width=4, height=3, mode='RGBA', colour=True, alpha=True, orientation=1)
    >>> read_header(buffer.getvalue(), max_pixels=10)
    Traceback (most recent call last):
    ...
    metaleep.data.images.BadImage: declares 4 x 3 = 12 pixels, over the limit of 10 (...
    """
    try:
        with _opened(source) as image:
            return _header(image, max_pixels)
    except BadImage:
        raise
    except Exception as error:  # Pillow's plugins raise many types on malformed files
        raise BadImage(_problem(error)) from error


def _to_eight_bits(image: Any) -> Any:
    """16-bit (or 32-bit integer) grey -> 8-bit grey, ``round(v / 257)`` clipped to 0..255."""
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")


def _converted(image: Any, header: ImageHeader, mode: str) -> Any:
    """``image`` in ``mode`` ("L" or "RGB") by the module's rules."""
    from PIL import Image

    if image.mode in _WIDE_MODES:
        image = _to_eight_bits(image)
    if header.alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == mode else image.convert(mode)


def conversion(header: ImageHeader, mode: str) -> str | None:
    """The conversion :func:`decode` applies to a file with ``header`` for ``mode``, in words
    (``"RGBA -> RGB"``, ``"L -> RGB"``); None when the file is already in ``mode``."""
    return None if header.mode == mode else f"{header.mode} -> {mode}"


def decode(
    source: Source,
    *,
    mode: str,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The image of a file as uint8 (H, W, C), in ``mode`` (``"L"``: C = 1, ``"RGB"``: C = 3).

    Parameters
    ----------
    source:
        A path, or the file's bytes.
    mode:
        ``"L"`` or ``"RGB"``: the conversions of the module docstring apply.
    size:
        ``(height, width)`` to resize to (Lanczos); None keeps the file's size.
    max_pixels:
        Files that declare more pixels are refused before decoding.

    Raises
    ------
    BadImage
        For any file that cannot be decoded (see :func:`read_header`), truncated ones included.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("LA", (2, 2), (0, 0)).save(buffer, "PNG")
    >>> decode(buffer.getvalue(), mode="RGB")[0, 0].tolist()  # transparent: white
    [255, 255, 255]
    >>> decode(b"not an image", mode="L")
    Traceback (most recent call last):
    ...
    metaleep.data.images.BadImage: not an image Pillow can read
    """
    from PIL import Image, ImageOps

    if mode not in ("L", "RGB"):
        raise ValueError(f"`mode` must be 'L' or 'RGB'; got {mode!r}.")
    try:
        with _opened(source) as image:
            header = _header(image, max_pixels)
            image.load()
            oriented = ImageOps.exif_transpose(image) if header.orientation != 1 else image
            out = _converted(oriented, header, mode)
            if size is not None and (out.height, out.width) != tuple(size):
                out = out.resize((int(size[1]), int(size[0])), Image.Resampling.LANCZOS)
            array = np.asarray(out, dtype=np.uint8)
    except BadImage:
        raise
    except Exception as error:  # Pillow's plugins raise many types on malformed files
        raise BadImage(_problem(error)) from error
    return array[:, :, None] if array.ndim == 2 else array
