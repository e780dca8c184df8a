"""``--data NAME[:ROOT]``: one way to name a data set, for every command and for Python.

============================ ===================================================
spec                         data set
============================ ===================================================
``glyphs``                   the embedded glyph data (default)
``digits``                   scikit-learn's handwritten digits (built in)
``imagefolder:DIR``          an ImageFolder tree ``DIR/<class>/<image>``
``omniglot:ROOT``            a learn2learn benchmark read from local files
``mini-imagenet:ROOT``       (``tiered-imagenet``, ``cifarfs``, ``fc100`` too)
============================ ===================================================

Benchmarks take a ``mode`` (which split file: ``train``/``validation``/``test``, omniglot
``train``/``test``/``all``); ImageFolder trees take an ``image_size``, ``channels`` and
``bad_files`` (:func:`metaleep.data.folder.load_image_folder`; their default rules handle mixed
sizes, colours and unusable files). Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset

__all__ = ["BUILTIN_DATASETS", "DATA_HELP", "DataSpec", "load_data", "load_dataset", "parse_data"]

BUILTIN_DATASETS: tuple[str, ...] = ("glyphs", "digits")
"""Data sets loaded by name alone, with no root (shipped with metaleep or its dependencies, no
download)."""

DATA_HELP = (
    "glyphs (default), digits, imagefolder:DIR, or a learn2learn benchmark read from local "
    "files: omniglot:ROOT, mini-imagenet:ROOT, tiered-imagenet:ROOT, cifarfs:ROOT, fc100:ROOT."
)


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``NAME[:ROOT]``.

    Examples
    --------
    >>> parse_data("imagefolder:~/pets").name
    'imagefolder'
    >>> parse_data("glyphs").text
    'glyphs'
    >>> parse_data("omniglot")
    Traceback (most recent call last):
    ...
    ValueError: `--data` must be NAME:ROOT for omniglot (the folder that holds its ...
    """

    name: str
    root: str | None = None

    @property
    def text(self) -> str:
        """The spec as written on the command line (roots made absolute)."""
        return self.name if self.root is None else f"{self.name}:{self.root}"


def _names() -> tuple[str, ...]:
    from metaleep.data.benchmarks import BENCHMARKS

    return (*BUILTIN_DATASETS, "imagefolder", *BENCHMARKS)


def parse_data(text: str) -> DataSpec:
    """Parse ``NAME[:ROOT]`` (see the module docstring); roots become absolute paths."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`--data` must be NAME[:ROOT] ({DATA_HELP}); got {text!r}.")
    name, sep, root = text.strip().partition(":")
    names = _names()
    if name not in names:
        raise ValueError(f"`--data` must name one of {', '.join(names)}; got {name!r}.")
    if name in BUILTIN_DATASETS:
        if sep:
            raise ValueError(f"`--data` {name} takes no root; got {text!r}.")
        return DataSpec(name)
    if not root:
        what = "the image tree" if name == "imagefolder" else "the folder that holds its files"
        raise ValueError(f"`--data` must be NAME:ROOT for {name} ({what}); got {text!r}.")
    return DataSpec(name, str(Path(root).expanduser().resolve()))


def load_data(
    spec: str | DataSpec,
    *,
    mode: str = "test",
    image_size: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    bad_files: str = "skip",
) -> ImageDataset:
    """The data set ``spec`` names (never downloads).

    Parameters
    ----------
    spec:
        ``NAME[:ROOT]`` or a :class:`DataSpec`.
    mode:
        Benchmarks: which split file to read.
    image_size:
        Resize every image to this size while loading: ``N`` (square) or ``HxW`` /
        ``(H, W)`` for ImageFolder trees, ``N`` for benchmarks (default: their usual size).
    channels, bad_files:
        ImageFolder trees only: 1 or 3 channels (default: the files' majority), and ``"skip"``
        or ``"refuse"`` unusable files.
    """
    parsed = parse_data(spec) if isinstance(spec, str) else spec
    if parsed.name == "imagefolder":
        from metaleep.data.folder import load_image_folder

        return load_image_folder(
            parsed.root or ".", image_size=image_size, channels=channels, bad_files=bad_files
        )
    if channels is not None or bad_files != "skip":
        raise ValueError(
            f"`channels` and `bad_files` must be left to their defaults for {parsed.name} "
            f"(they apply to imagefolder data); got channels={channels!r}, "
            f"bad_files={bad_files!r}."
        )
    size = None
    if image_size is not None:
        from metaleep.data.folder import check_image_size

        height, width = check_image_size(image_size)
        if height != width:
            raise ValueError(
                f"`image_size` must be square (N) for {parsed.name}; got {image_size!r}."
            )
        size = height
    if parsed.root is None:
        if size is not None:
            raise ValueError(
                f"`image_size` must be left out for the built-in {parsed.name} data; got "
                f"{image_size!r}."
            )
        return load_dataset(parsed.name)
    from metaleep.data.benchmarks import load_benchmark

    return load_benchmark(parsed.name, os.fspath(parsed.root), mode=mode, image_size=size)


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, mode: str = "test"
) -> ImageDataset:
    """The data set a recipe names: built in (:data:`BUILTIN_DATASETS`: ``"glyphs"``,
    ``"digits"``), or a benchmark read from ``root``.

    Benchmark names are those of :func:`metaleep.data.benchmarks.load_benchmark`.
    """
    if name == "glyphs":
        from metaleep.data.glyphs import load_glyphs

        return load_glyphs()
    if name == "digits":
        from metaleep.data.digits import load_digits

        return load_digits()
    from metaleep.data.benchmarks import BENCHMARKS, load_benchmark

    if name not in BENCHMARKS:
        raise ValueError(
            f"`dataset` must be {', '.join(BUILTIN_DATASETS)} or one of "
            f"{', '.join(BENCHMARKS)}; got {name!r}."
        )
    if root is None:
        raise ValueError(f"`root` must be the folder that holds the {name} files; got None.")
    return load_benchmark(name, root, mode=mode)
