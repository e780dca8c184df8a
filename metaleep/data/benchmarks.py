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

import hashlib
import io
import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metaleep.data.base import ImageDataset

BENCHMARKS: tuple[str, ...] = ("omniglot", "mini-imagenet", "tiered-imagenet", "cifarfs", "fc100")
"""Names accepted by :func:`load_benchmark` (learn2learn's ``get_tasksets`` names)."""

# torchvision.datasets.folder.IMG_EXTENSIONS (not imported: torchvision costs ~1 s to import).
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
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
    reader: Callable[[tuple[Path, ...], int | None], _Arrays] = {
        "omniglot": _read_omniglot,
        "mini-imagenet": _read_mini_imagenet,
        "tiered-imagenet": _read_tiered_imagenet,
        "cifarfs": _read_cifarfs,
        "fc100": _read_fc100,
    }[name]
    return reader(paths, size).to_dataset(name)


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    channels: int | None = None,
    groups: bool = False,
    dataset_id: str | None = None,
) -> ImageDataset:
    """Load a torchvision ``ImageFolder`` tree (``root/<class>/<image>``) into memory.

    Parameters
    ----------
    root:
        The tree. Class ids follow ``ImageFolder``'s (sorted folder names) and images its order
        and extensions, so ``labels`` equal ``ImageFolder(root).targets``.
    image_size:
        Resize every image to ``image_size`` x ``image_size`` (Pillow, Lanczos). Required when
        the images differ in size.
    channels:
        1 (grayscale) or 3 (RGB); default from the first image's mode.
    groups:
        When true the tree has one more level, ``root/<group>/<class>/<image>`` (Omniglot's
        alphabets): classes are named ``"<group>/<class>"`` and ``classes["alphabet"]`` holds
        the group, so episodes can be drawn within or across groups.
    dataset_id:
        Default: the folder's name.

    Returns
    -------
    ImageDataset
        uint8 images (N, channels, H, W); ``version`` hashes the images, labels and names.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "shapes"
    >>> for c in ("circle", "square"):
    ...     (root / c).mkdir(parents=True)
    ...     for i in range(3):
    ...         Image.new("L", (8, 8), 40 * i).save(root / c / f"{i}.png")
    >>> ds = load_image_folder(root)
    >>> ds.images.shape, ds.labels.tolist(), ds.classes["name"].tolist()
    (torch.Size([6, 1, 8, 8]), [0, 0, 0, 1, 1, 1], ['circle', 'square'])
    """
    root_path = Path(os.fspath(root)).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"`root` must be an existing folder of class folders; got {str(root_path)!r}."
        )
    size = None if image_size is None else _check_size(image_size)
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3; got {channels!r}.")
    if groups:
        files, labels, names, alphabets = _list_grouped(root_path)
    else:
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        try:
            class_names, class_to_idx = find_classes(str(root_path))
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"`root` must contain one folder per class; got {str(root_path)!r} ({e})."
            ) from e
        samples = make_dataset(str(root_path), class_to_idx, extensions=IMG_EXTENSIONS)
        files = [Path(p) for p, _ in samples]
        labels = [t for _, t in samples]
        names, alphabets = list(class_names), None
    arrays = _decode_files(files, size, channels, where=str(root_path))
    return _Arrays(arrays, np.asarray(labels, dtype=np.int64), names, alphabets).to_dataset(
        dataset_id or root_path.name
    )


# --- readers ---------------------------------------------------------------------------------


@dataclass
class _Arrays:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,), class ids 0..C-1
    names: Sequence[str]
    alphabets: Sequence[str] | None = None

    def to_dataset(self, dataset_id: str) -> ImageDataset:
        import torch

        images = np.ascontiguousarray(self.images.transpose(0, 3, 1, 2))
        classes = pd.DataFrame({"name": [str(n) for n in self.names]})
        if self.alphabets is not None:
            classes["alphabet"] = [str(a) for a in self.alphabets]
        classes.index.name = "class_id"
        digest = hashlib.sha256()
        digest.update(json.dumps([list(images.shape), classes.to_dict("list")]).encode())
        digest.update(self.labels.astype("<i8").tobytes())
        digest.update(images.tobytes())
        return ImageDataset(
            images=torch.from_numpy(images),
            labels=self.labels.astype(np.int64),
            classes=classes,
            dataset_id=dataset_id,
            version=digest.hexdigest()[:16],
        )


def _check_size(image_size: Any) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
        raise TypeError(f"`image_size` must be an integer; got {image_size!r}.")
    if image_size < 1:
        raise ValueError(f"`image_size` must be an integer >= 1; got {image_size!r}.")
    return int(image_size)


def _to_array(image: Any, size: int | None, mode: str) -> np.ndarray:
    """A PIL image converted to ``mode`` ("L" or "RGB"), resized, as uint8 (H, W, C)."""
    from PIL import Image

    image = image.convert(mode)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def _stack(arrays: list[np.ndarray], where: str) -> np.ndarray:
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(
            f"`image_size` must be given when images differ in size; got sizes {shapes[:4]!r} "
            f"in {where}."
        )
    return np.stack(arrays)


def _decode_files(
    files: Sequence[Path], size: int | None, channels: int | None, *, where: str
) -> np.ndarray:
    from PIL import Image

    if not files:
        raise FileNotFoundError(
            f"`root` must contain images in class folders; got none in {where}."
        )
    mode = None if channels is None else ("L" if channels == 1 else "RGB")
    out = []
    for path in files:
        with Image.open(path) as image:
            if mode is None:
                mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            out.append(_to_array(image, size, mode))
    return _stack(out, where)


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted (``ImageFolder``'s extensions)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTENSIONS and p.is_file())


def _list_grouped(root: Path) -> tuple[list[Path], list[int], list[str], list[str]]:
    files: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    alphabets: list[str] = []
    for group in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in group.iterdir() if p.is_dir()):
            images = _image_files(folder)
            if not images:
                continue
            files += images
            labels += [len(names)] * len(images)
            names.append(f"{group.name}/{folder.name}")
            alphabets.append(group.name)
    return files, labels, names, alphabets


def _read_omniglot(paths: tuple[Path, ...], size: int | None) -> _Arrays:
    files: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    alphabets: list[str] = []
    for folder in paths:
        f, lab, n, a = _list_grouped(folder)
        files += f
        labels += [x + len(names) for x in lab]
        names += n
        alphabets += a
    # Omniglot PNGs are 1-bit, white background: invert so ink is 255 like the glyph data.
    images = 255 - _decode_files(files, size, 1, where=", ".join(map(str, paths)))
    return _Arrays(images, np.asarray(labels, dtype=np.int64), names, alphabets)


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


def _read_mini_imagenet(paths: tuple[Path, ...], size: int | None) -> _Arrays:
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
    return _Arrays(_resize_array(images, size), labels, names)


def _resize_array(images: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    mode = "L" if images.shape[-1] == 1 else "RGB"
    return np.stack(
        [
            _to_array(Image.fromarray(im.squeeze(-1) if mode == "L" else im), size, mode)
            for im in images
        ]
    )


def _relabel(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Raw labels -> (class ids 0..C-1 in sorted order of the raw values, sorted raw values)."""
    values, labels = np.unique(np.asarray(raw), return_inverse=True)
    return labels.astype(np.int64).reshape(-1), values


def _read_tiered_imagenet(paths: tuple[Path, ...], size: int | None) -> _Arrays:
    from PIL import Image

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
    for blob in encoded:
        with Image.open(io.BytesIO(np.asarray(blob, dtype=np.uint8).tobytes())) as image:
            arrays.append(_to_array(image, size, "RGB"))
    return _Arrays(_stack(arrays, str(paths[0])), labels, names, alphabets)


def _read_cifarfs(paths: tuple[Path, ...], size: int | None) -> _Arrays:
    if len(paths) == 1:  # learn2learn's processed/{s} ImageFolder
        folder = paths[0]
        class_names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    else:  # the unpacked archive and Bertinetto et al.'s split file
        folder = paths[0]
        class_names = sorted({n.strip() for n in paths[1].read_text().splitlines() if n.strip()})
    files: list[Path] = []
    labels: list[int] = []
    for class_id, class_name in enumerate(class_names):
        images = _image_files(folder / class_name)
        files += images
        labels += [class_id] * len(images)
    images_array = _decode_files(files, size, 3, where=str(folder))
    return _Arrays(images_array, np.asarray(labels, dtype=np.int64), class_names)


def _read_fc100(paths: tuple[Path, ...], size: int | None) -> _Arrays:
    archive = _unpickle(paths[0], latin1=True)
    labels, values = _relabel(archive["labels"])
    images = np.asarray(archive["data"], dtype=np.uint8)
    return _Arrays(_resize_array(images, size), labels, [str(v) for v in values])
