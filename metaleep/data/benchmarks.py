"""Real few-shot benchmarks read from files the user already has, and any ``ImageFolder`` tree.

:func:`load_benchmark` reads learn2learn's vision benchmarks (omniglot, mini-imagenet,
tiered-imagenet, cifarfs, fc100) from a local ``root`` laid out exactly as learn2learn's and
torchvision's downloaders leave it, and :func:`load_image_folder` reads any torchvision
``ImageFolder`` tree. Both return an :class:`~metaleep.data.base.ImageDataset`.

Nothing is ever downloaded. Every expected file is checked *before* any file is opened, so a
missing root or file fails at once with a :class:`FileNotFoundError` that names the files and
the one command that fetches them (learn2learn's classes, whose downloaders are the reference).

The files are parsed here rather than through learn2learn's dataset classes, which create
``root`` when it is missing, print, convert all of mini-ImageNet to float32 (4x the memory of
the uint8 images kept here), drop tiered-ImageNet's category labels, cannot open an Omniglot
folder without torchvision's zip files (it checks their MD5), and cost about 2 s to import.
The tests check every reader against learn2learn's (or torchvision's) class on the same files.
Pickled files are read with a restricted unpickler that builds numpy arrays and plain
containers only: a file that names any other Python object is refused before anything in it
runs.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metaleep.data.base import ImageDataset, dataset_from_arrays
from metaleep.data.folder import FolderScan, load_image_folder, scan_image_folder
from metaleep.data.images import BadImage, decode

__all__ = ["BENCHMARKS", "load_benchmark", "load_image_folder"]

BENCHMARKS: tuple[str, ...] = ("omniglot", "mini-imagenet", "tiered-imagenet", "cifarfs", "fc100")
"""Names accepted by :func:`load_benchmark` (learn2learn's ``get_tasksets`` names)."""

_MODES = ("train", "validation", "test")
_OMNIGLOT_MODES = ("train", "test", "all")
_OMNIGLOT_FOLDERS = {"train": "images_background", "test": "images_evaluation"}
_ZENODO = "https://zenodo.org/record/7978538"
_L2L_CLASSES = {
    "mini-imagenet": "MiniImagenet",
    "tiered-imagenet": "TieredImagenet",
    "cifarfs": "CIFARFS",
    "fc100": "FC100",
}
# Default edge length per benchmark (None: the files' own size). Omniglot is 105x105; every
# learn2learn recipe resizes it to 28x28, the size of the glyph data set.
_DEFAULT_SIZE: dict[str, int | None] = {
    "omniglot": 28,
    "mini-imagenet": None,
    "tiered-imagenet": None,
    "cifarfs": None,
    "fc100": None,
}


@dataclass(frozen=True)
class _Layout:
    """What one (benchmark, mode) needs on disk: one or more alternative sets of paths."""

    alternatives: tuple[tuple[Path, ...], ...]
    hint: str


def _short(mode: str) -> str:
    return "val" if mode == "validation" else mode


def _layout(name: str, root: Path, mode: str) -> _Layout:
    """The files ``load_benchmark(name, root, mode=mode)`` reads, and how to get them."""
    l2l = _L2L_CLASSES.get(name)
    fetch = (
        f'Fetch them once (network needed) with learn2learn: `python -c "import learn2learn as '
        f'l2l; l2l.vision.datasets.{l2l}({str(root)!r}, mode={mode!r}, download=True)"`, '
        f"or from {_ZENODO}."
    )
    if name == "omniglot":
        folders = ("train", "test") if mode == "all" else (mode,)
        paths = tuple(root / "omniglot-py" / _OMNIGLOT_FOLDERS[m] for m in folders)
        hint = (
            'Fetch them once (network needed) with torchvision: `python -c "import torchvision; '
            f"[torchvision.datasets.Omniglot({str(root)!r}, background=b, download=True) for b in "
            '(True, False)]"`, or unzip images_background.zip and images_evaluation.zip from '
            f"https://github.com/brendenlake/omniglot into {root / 'omniglot-py'}."
        )
        return _Layout((paths,), hint)
    if name == "mini-imagenet":
        return _Layout(((root / f"mini-imagenet-cache-{mode}.pkl",),), fetch)
    if name == "tiered-imagenet":
        base = root / "tiered-imagenet"
        s = _short(mode)
        return _Layout(((base / f"{s}_images_png.pkl", base / f"{s}_labels.pkl"),), fetch)
    if name == "cifarfs":
        s = _short(mode)
        processed = (root / "cifarfs" / "processed" / s,)
        raw = (
            root / "cifarfs" / "cifar100" / "data",
            root / "cifarfs" / "cifar100" / "splits" / "bertinetto" / f"{s}.txt",
        )
        return _Layout((processed, raw), fetch)
    return _Layout(((root / f"FC100_{_short(mode)}.pickle",),), fetch)


def _check_files(name: str, root: Path, mode: str) -> tuple[Path, ...]:
    """The first complete alternative of the layout; a clear error if none is complete."""
    layout = _layout(name, root, mode)
    for paths in layout.alternatives:
        if all(p.exists() for p in paths):
            return paths
    wanted = " or ".join(", ".join(str(p) for p in paths) for paths in layout.alternatives)
    if not root.is_dir():
        problem = "the folder does not exist"
    else:
        missing = [str(p) for p in layout.alternatives[0] if not p.exists()]
        problem = f"missing: {', '.join(missing)}"
    raise FileNotFoundError(
        f"`root` must contain the {name} files for mode {mode!r} ({wanted}); "
        f"got {str(root)!r} ({problem}). {layout.hint}"
    )


def load_benchmark(
    name: str,
    root: str | os.PathLike[str],
    *,
    mode: str = "test",
    image_size: int | None = None,
) -> ImageDataset:
    """Load one split of a learn2learn vision benchmark from local files (never downloads).

    Parameters
    ----------
    name:
        One of :data:`BENCHMARKS`: ``"omniglot"``, ``"mini-imagenet"``, ``"tiered-imagenet"``,
        ``"cifarfs"``, ``"fc100"``.
    root:
        The folder learn2learn's (or torchvision's) downloader filled. Expected files, per mode
        (``{m}`` is ``train``/``validation``/``test``, ``{s}`` is ``train``/``val``/``test``):

        - omniglot: ``omniglot-py/images_background`` (mode ``"train"``, 964 classes in 30
          alphabets), ``omniglot-py/images_evaluation`` (``"test"``, 659 classes in 20
          alphabets), or both (``"all"``, learn2learn's ``FullOmniglot``, 1,623 classes).
        - mini-imagenet: ``mini-imagenet-cache-{m}.pkl``.
        - tiered-imagenet: ``tiered-imagenet/{s}_images_png.pkl`` and ``{s}_labels.pkl``.
        - cifarfs: ``cifarfs/processed/{s}/`` (class folders), or the unpacked archive
          ``cifarfs/cifar100/data/`` with ``cifarfs/cifar100/splits/bertinetto/{s}.txt``.
        - fc100: ``FC100_{s}.pickle``.
    mode:
        Which split of the benchmark (see above); omniglot has ``"train"``, ``"test"`` and
        ``"all"``, the others ``"train"``, ``"validation"`` and ``"test"``.
    image_size:
        Resize every image to ``image_size`` x ``image_size`` (Pillow, Lanczos). Default: 28 for
        omniglot (as every learn2learn recipe does), the files' own size otherwise (84 for the
        ImageNet subsets, 32 for cifarfs and fc100).

    Returns
    -------
    ImageDataset
        uint8 images (N, C, H, W) (C = 1 for omniglot, 3 otherwise); ``dataset_id`` is ``name``
        and ``version`` a hash of the images, labels and class names. ``classes`` has ``name``
        and, where the benchmark groups classes, ``alphabet``: the alphabet folder for omniglot,
        the ImageNet category (``label_general``) for tiered-imagenet. Omniglot's ink is
        inverted to 255 on a 0 background, the polarity of the glyph data set.

    Raises
    ------
    FileNotFoundError
        When ``root`` or an expected file is missing (checked before anything is read; the
        message names the files and the command that downloads them).

    Examples
    --------
    >>> load_benchmark("mini-imagenet", "/nonexistent", mode="test")
    Traceback (most recent call last):
    ...
    FileNotFoundError: `root` must contain the mini-imagenet files for mode 'test' (...
    """
    if name not in BENCHMARKS:
        raise ValueError(f"`name` must be one of {', '.join(BENCHMARKS)}; got {name!r}.")
    modes = _OMNIGLOT_MODES if name == "omniglot" else _MODES
    if mode not in modes:
        raise ValueError(f"`mode` must be one of {', '.join(modes)} for {name}; got {mode!r}.")
    size = _DEFAULT_SIZE[name] if image_size is None else _check_size(image_size)
    root_path = Path(os.fspath(root)).expanduser()
    paths = _check_files(name, root_path, mode)
    reader: Callable[[tuple[Path, ...], int | None], Arrays] = {
        "omniglot": _read_omniglot,
        "mini-imagenet": _read_mini_imagenet,
        "tiered-imagenet": _read_tiered_imagenet,
        "cifarfs": _read_cifarfs,
        "fc100": _read_fc100,
    }[name]
    return reader(paths, size).to_dataset(name)


# --- readers ---------------------------------------------------------------------------------


@dataclass
class Arrays:
    """What a reader returns: images, labels, class names (and alphabets)."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,), class ids 0..C-1
    names: Sequence[str]
    alphabets: Sequence[str] | None = None

    def to_dataset(self, dataset_id: str) -> ImageDataset:
        return dataset_from_arrays(
            self.images, self.labels, self.names, dataset_id=dataset_id, alphabets=self.alphabets
        )


def _check_size(image_size: Any) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
        raise TypeError(f"`image_size` must be an integer; got {image_size!r}.")
    if image_size < 1:
        raise ValueError(f"`image_size` must be an integer >= 1; got {image_size!r}.")
    return int(image_size)


def _files(scan: FolderScan, size: int | None, channels: int) -> Arrays:
    """A benchmark's image folders, decoded; any unusable file refuses the benchmark."""
    images, labels, names, alphabets, _ = scan.decode(
        image_size=size, channels=channels, bad_files="refuse"
    )
    return Arrays(images, labels, names, alphabets)


def _read_omniglot(paths: tuple[Path, ...], size: int | None) -> Arrays:
    parts = [_files(scan_image_folder(p, groups=True), size, 1) for p in paths]
    offsets = np.cumsum([0, *(len(p.names) for p in parts)])
    # Omniglot PNGs are 1-bit, white background: invert so ink is 255 like the glyph data.
    return Arrays(
        255 - np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels + offset for p, offset in zip(parts, offsets, strict=False)]),
        [n for p in parts for n in p.names],
        [a for p in parts for a in (p.alphabets or ())],
    )


_DATA_GLOBALS = frozenset(
    [
        # numpy arrays, dtypes and scalars (numpy 1 and 2 module paths)
        *(
            (module, name)
            for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # containers and bytes, as Python 2 and 3 pickle them
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
        ("__builtin__", "set"),
        ("__builtin__", "frozenset"),
        ("__builtin__", "bytearray"),
    ]
)
"""The only globals a learn2learn-format data pickle may name: numpy arrays, dtypes and scalars,
and plain containers. Lists, dicts, tuples, strings, numbers and bytes need none."""


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds data only: any other global is refused before it is loaded
    (so a crafted file cannot call ``os.system`` or anything else)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DATA_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a reference to {module}.{name}")


def _unpickle(path: Path, *, latin1: bool = False) -> Any:
    """The data in a pickle file, read without running code from it.

    Only numpy arrays, dtypes and scalars and plain containers are admitted
    (:data:`_DATA_GLOBALS`); a file that names anything else is refused with ``ValueError``
    before that thing is imported or called, as is a file that is not a whole pickle.
    """
    expected = "a data pickle (numpy arrays, numbers, strings, lists, dicts)"
    try:
        with open(path, "rb") as fh:
            unpickler = _DataUnpickler(fh, encoding="latin1" if latin1 else "ASCII")
            return unpickler.load()
    except pickle.UnpicklingError as error:
        detail = str(error)
        if detail.startswith("a reference to "):
            raise ValueError(
                f"`{path}` must be {expected}; got {detail}, refused without running it."
            ) from None
        raise ValueError(
            f"`{path}` must be {expected}; got an unreadable file ({detail})."
        ) from error
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(
            f"`{path}` must be {expected}; got an unreadable file ({type(error).__name__}: "
            f"{error})."
        ) from error


def _read_mini_imagenet(paths: tuple[Path, ...], size: int | None) -> Arrays:
    data = _unpickle(paths[0])
    images = np.asarray(data["image_data"], dtype=np.uint8)
    labels = np.full(len(images), -1, dtype=np.int64)
    names = list(data["class_dict"])  # learn2learn numbers classes in this order
    for class_id, class_name in enumerate(names):
        labels[np.asarray(data["class_dict"][class_name], dtype=np.int64)] = class_id
    if (labels < 0).any():
        raise ValueError(
            f"`class_dict` must give every image a class; got {(labels < 0).sum()} images "
            f"without one in {paths[0]}."
        )
    return Arrays(_resize_array(images, size), labels, names)


def _resize_array(images: np.ndarray, size: int | None) -> np.ndarray:
    """uint8 (N, H, W, C) resized to ``size`` x ``size`` (Pillow, Lanczos)."""
    if size is None or images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    grey = images.shape[-1] == 1
    out = np.empty((len(images), size, size, images.shape[-1]), dtype=np.uint8)
    for i, image in enumerate(images):
        resized = Image.fromarray(image.squeeze(-1) if grey else image).resize(
            (size, size), Image.Resampling.LANCZOS
        )
        out[i] = np.asarray(resized, dtype=np.uint8).reshape(size, size, -1)
    return out


def _relabel(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Raw labels -> (class ids 0..C-1 in sorted order of the raw values, sorted raw values)."""
    values, labels = np.unique(np.asarray(raw), return_inverse=True)
    return labels.astype(np.int64).reshape(-1), values


def _read_tiered_imagenet(paths: tuple[Path, ...], size: int | None) -> Arrays:

    encoded = _unpickle(paths[0])
    meta = _unpickle(paths[1])
    labels, values = _relabel(meta["label_specific"])
    first = np.unique(labels, return_index=True)[1]
    names = (
        [str(meta["label_specific_str"][int(v)]) for v in values]
        if "label_specific_str" in meta
        else [str(v) for v in values]
    )
    alphabets = None
    if "label_general" in meta:
        general = np.asarray(meta["label_general"])[first]
        if "label_general_str" in meta:
            alphabets = [str(meta["label_general_str"][int(g)]) for g in general]
        else:
            alphabets = [str(g) for g in general]
    arrays = []
    for index, blob in enumerate(encoded):
        try:
            data = np.asarray(blob, dtype=np.uint8).tobytes()
            arrays.append(decode(data, mode="RGB", size=None if size is None else (size, size)))
        except BadImage as error:
            raise ValueError(
                f"`{paths[0]}` must hold PNG images; got image {index} that is not usable "
                f"({error})."
            ) from error
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(
            f"`{paths[0]}` must hold images of one size; got sizes {shapes[:4]!r} (pass "
            "image_size)."
        )
    return Arrays(np.stack(arrays), labels, names, alphabets)


def _read_cifarfs(paths: tuple[Path, ...], size: int | None) -> Arrays:
    folder = paths[0]
    if len(paths) == 1:  # learn2learn's processed/{s} ImageFolder
        scan = scan_image_folder(folder)
    else:  # the unpacked archive and Bertinetto et al.'s split file
        names = sorted({n.strip() for n in paths[1].read_text().splitlines() if n.strip()})
        missing = [n for n in names if not (folder / n).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"`root` must hold a folder for every class of {paths[1]}; got none for "
                f"{', '.join(missing[:5])} in {folder}."
            )
        scan = scan_image_folder(folder, classes=names)
    return _files(scan, size, 3)


def _read_fc100(paths: tuple[Path, ...], size: int | None) -> Arrays:
    archive = _unpickle(paths[0], latin1=True)
    labels, values = _relabel(archive["labels"])
    images = np.asarray(archive["data"], dtype=np.uint8)
    return Arrays(_resize_array(images, size), labels, [str(v) for v in values])
