"""Folders of images as people have them: ``root/<class>/<image>``, mixed and messy.

:func:`load_image_folder` reads a torchvision ``ImageFolder`` tree into an
:class:`~metaleep.data.base.ImageDataset`, in two passes:

1. :func:`scan_image_folder` reads every file's **header** only (:mod:`metaleep.data.images`):
   sizes, colour, transparency, and which files are unusable, before any pixel is decoded.
2. :meth:`FolderScan.load` decodes the usable files by rules fixed from the whole scan, so the
   result never depends on the order of the files:

   - **classes**: the top-level folders (sorted names, as ``ImageFolder``); images in nested
     folders belong to their top-level class and are counted; hidden files and folders
     (``.ipynb_checkpoints``, ``.git``, ``.DS_Store``, ``__MACOSX``) are ignored; a class folder
     without a usable image is no class;
   - **files**: ``ImageFolder``'s extensions, in its order; files with other extensions are
     ignored; empty, truncated, corrupt and over-sized files (see ``max_pixels``) are skipped
     (``bad_files="skip"``, default) or refused (``bad_files="refuse"``), and listed either way;
   - **channels**: ``channels`` when given, else the majority of the files (colour or grey;
     a tie keeps colour), every converted file counted by its mode (``"L -> RGB"``);
     transparency is composited over white;
   - **size**: ``image_size`` when given, else the files' own size when they all share it, else
     the median height x median width of the files (each rounded down to a file's value); the
     resized files are counted.

What was done is recorded in :attr:`ImageDataset.loading` (a JSON-ready dict that a study
writes to ``study.json`` and its report).
"""

from __future__ import annotations

import logging
import os
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaleep.data.images import (
    MAX_PIXELS,
    BadImage,
    ImageHeader,
    conversion,
    decode,
    read_header,
)

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset

log = logging.getLogger(__name__)

__all__ = [
    "BAD_FILES",
    "EXTENSIONS",
    "FolderScan",
    "check_image_size",
    "load_image_folder",
    "scan_image_folder",
]

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ``IMG_EXTENSIONS`` (not imported: torchvision costs about 1 s to import)."""

BAD_FILES = ("skip", "refuse")
"""What :meth:`FolderScan.load` does with files that are not usable images."""

SHOWN = 5
"""How many paths the record and the messages list of each kind of problem."""

_IGNORED_NAMES = frozenset({"__MACOSX"})


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def printable(text: str) -> str:
    """``text`` with control characters escaped (file names are shown to people).

    >>> printable("a\\x1b[2Jb")
    'a\\\\x1b[2Jb'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def check_image_size(value: Any, flag: str = "image_size") -> tuple[int, int]:
    """``N`` (square), ``(H, W)`` or ``"HxW"`` -> ``(H, W)`` of positive integers.

    >>> check_image_size(28), check_image_size("84x96"), check_image_size((32, 40))
    ((28, 28), (84, 96), (32, 40))
    """
    expected = "a positive integer N (N x N) or HxW"
    items: tuple[Any, ...]
    if isinstance(value, str):
        parts = value.lower().split("x")
        try:
            items = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"`{flag}` must be {expected}; got {value!r}.") from None
    elif isinstance(value, Sequence):
        items = tuple(value)
    else:
        items = (value,)
    if len(items) == 1:
        items = items * 2
    ok = len(items) == 2 and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in items
    )
    if not ok:
        if not isinstance(value, str | Sequence | int | np.integer) or isinstance(value, bool):
            raise TypeError(f"`{flag}` must be {expected}; got {value!r}.")
        raise ValueError(f"`{flag}` must be {expected}; got {value!r}.")
    return int(items[0]), int(items[1])


def size_text(size: tuple[int, int]) -> str:
    """``(84, 96)`` -> ``"84x96"``, ``(28, 28)`` -> ``"28"`` (what ``--image-size`` takes)."""
    return str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"


def chosen_options(record: Mapping[str, Any] | None) -> dict[str, str]:
    """The loading options a record says were chosen for the data rather than read from the
    files (a size or channels decided for mixed files, or given): ``{"image_size": "64x56",
    "channels": "3", "bad_files": "refuse"}`` as text, the words ``--image-size`` etc. take.

    A suite sampled from the data records them in its command, so that a study on the suite's
    file loads the images the same way whoever runs it.

    Examples
    --------
    >>> chosen_options({"size": [64, 56], "size_rule": "given", "channels": 3,
    ...                 "channel_rule": "all 9 files are colour", "bad_files": "skip"})
    {'image_size': '64x56'}
    """
    if not record:
        return {}
    out = {}
    if record.get("size_rule") != "the files' own size":
        out["image_size"] = size_text(tuple(record["size"]))
    if not str(record.get("channel_rule", "")).startswith("all "):
        out["channels"] = str(record["channels"])
    if record.get("bad_files", "skip") != "skip":
        out["bad_files"] = str(record["bad_files"])
    return out


def options_text(options: Mapping[str, str]) -> str:
    """``{"image_size": "84", "channels": "3"}`` -> ``"--image-size 84 --channels 3"``."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in options.items())


@dataclass(frozen=True)
class FolderFile:
    """A usable image of the tree: its path, class id and header."""

    path: Path
    label: int
    header: ImageHeader
    nested: bool


@dataclass(frozen=True)
class FolderScan:
    """The headers of an image tree, and its problems, before any pixel is decoded.

    Attributes
    ----------
    root:
        The tree.
    classes:
        Class names (folder names; ``"group/class"`` with ``groups``), sorted; only folders
        with at least one usable image.
    alphabets:
        The group of each class (``groups=True``), else None.
    files:
        Usable images, in ``ImageFolder`` order.
    bad:
        ``(path relative to root, reason)`` of image files that cannot be used (empty,
        truncated, corrupt, over the pixel limit).
    ignored:
        ``(path, reason)`` of files and folders that are no images of a class: other
        extensions, class folders without a usable image, files directly in ``root``.
    hidden:
        Hidden files and folders (names starting with a dot, ``__MACOSX``), not looked into.
    max_pixels:
        The pixel limit the headers were checked against.
    """

    root: Path
    classes: tuple[str, ...]
    alphabets: tuple[str, ...] | None
    files: tuple[FolderFile, ...]
    bad: tuple[tuple[str, str], ...]
    ignored: tuple[tuple[str, str], ...]
    hidden: tuple[str, ...]
    max_pixels: int = MAX_PIXELS

    @property
    def sizes(self) -> Counter[tuple[int, int]]:
        """How many files have each ``(height, width)``."""
        return Counter((f.header.height, f.header.width) for f in self.files)

    @property
    def colour_files(self) -> int:
        """Files holding colour (the rest are grey)."""
        return sum(f.header.colour for f in self.files)

    @property
    def mixed_colour(self) -> bool:
        """Whether some files hold colour and others not: a rule decides the channels."""
        return 0 < self.colour_files < len(self.files)

    def default_size(self) -> tuple[tuple[int, int], str]:
        """The size the files load at without ``image_size``, and the rule, in words."""
        sizes = self.sizes
        if len(sizes) == 1:
            return next(iter(sizes)), "the files' own size"
        heights = [f.header.height for f in self.files]
        widths = [f.header.width for f in self.files]
        size = (int(statistics.median_low(heights)), int(statistics.median_low(widths)))
        return size, (
            f"the median height x median width of the files, which differ in size "
            f"({min(heights)}..{max(heights)} x {min(widths)}..{max(widths)}); "
            "image_size chooses another"
        )

    def default_channels(self) -> tuple[int, str]:
        """The channels without ``channels``, and the rule, in words."""
        colour = self.colour_files
        grey = len(self.files) - colour
        channels = 3 if colour >= grey else 1
        if not colour or not grey:
            return channels, f"all {len(self.files)} files are {'colour' if colour else 'grey'}"
        return channels, (
            f"the majority of the files: {colour} colour, {grey} grey (a tie keeps colour)"
        )

    def decode(
        self,
        *,
        image_size: int | tuple[int, int] | str | None = None,
        channels: int | None = None,
        bad_files: str = "skip",
        rules: Mapping[str, str] | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, list[str], tuple[str, ...] | None, dict[str, Any]]:
        """Decode the usable files (see the module docstring for the rules).

        Returns uint8 images (N, H, W, C), class ids, class names, alphabets (or None) and the
        record of what was done. ``rules`` may say in words who chose a given ``image_size``
        or ``channels`` (keys ``"size"``, ``"channels"``; default ``"given"``); ``progress``
        shows a progress bar.
        """
        from tqdm.auto import tqdm

        if bad_files not in BAD_FILES:
            raise ValueError(f"`bad_files` must be skip or refuse; got {bad_files!r}.")
        if channels is not None and channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3; got {channels!r}.")
        rules = dict(rules or {})
        problems = [*self.bad, *(i for i in self.ignored if i[1] != _LOOSE)]
        if bad_files == "refuse" and problems:
            raise ValueError(_refusal(self.root, problems, "are not"))
        if not self.files:
            raise FileNotFoundError(
                f"`root` must contain images in class folders; got none in "
                f"{printable(str(self.root))} ({_listing([*self.bad, *self.ignored]) or 'empty'})."
            )
        if image_size is None:
            size, size_rule = self.default_size()
        else:
            size, size_rule = check_image_size(image_size), rules.get("size", "given")
        if channels is None:
            channels, channel_rule = self.default_channels()
        else:
            channel_rule = rules.get("channels", "given")
        mode = "L" if channels == 1 else "RGB"
        images = np.empty((len(self.files), size[0], size[1], channels), dtype=np.uint8)
        converted: Counter[str] = Counter()
        resized = oriented = 0
        failed: list[tuple[str, str]] = []
        keep = np.ones(len(self.files), dtype=bool)
        files = tqdm(self.files, desc="decoding images", disable=not progress, leave=False)
        for i, item in enumerate(files):
            try:
                images[i] = decode(item.path, mode=mode, size=size, max_pixels=self.max_pixels)
            except BadImage as error:  # e.g. truncated: found only while decoding
                failed.append((self._relative(item.path), str(error)))
                keep[i] = False
                continue
            change = conversion(item.header, mode)
            if change:
                converted[change] += 1
            resized += (item.header.height, item.header.width) != size
            oriented += item.header.orientation != 1
        if failed and bad_files == "refuse":
            raise ValueError(_refusal(self.root, failed, "cannot be decoded"))
        labels = np.array([f.label for f in self.files], dtype=np.int64)[keep]
        if failed:
            images = images[keep]
        names, alphabets = list(self.classes), self.alphabets
        present = np.unique(labels)
        if len(present) < len(names):  # a class lost every image while decoding
            lost = sorted(set(range(len(names))) - set(present.tolist()))
            failed += [(names[c], "class folder without a usable image") for c in lost]
            remap = np.full(len(names), -1, dtype=np.int64)
            remap[present] = np.arange(len(present))
            labels = remap[labels]
            names = [names[c] for c in present]
            alphabets = None if alphabets is None else tuple(alphabets[c] for c in present)
        nested = Counter(self.classes[f.label] for f in self.files if f.nested)
        record: dict[str, Any] = {
            "source": f"imagefolder:{self.root}",
            "classes": len(names),
            "images": len(labels),
            "channels": channels,
            "channel_rule": channel_rule,
            "size": list(size),
            "size_rule": size_rule,
            "resized": int(resized),
            "converted": dict(sorted(converted.items())),
            "transparency": (
                "composited over white" if any(f.header.alpha for f in self.files) else "none"
            ),
            "exif_oriented": int(oriented),
            "skipped": _record([*self.bad, *failed]),
            "ignored": _record(list(self.ignored)),
            "hidden": _record([(h, "hidden") for h in self.hidden]),
            "nested": {
                "images": int(sum(nested.values())),
                "classes": dict(sorted(nested.items())),
            },
            "bad_files": bad_files,
            "max_pixels": self.max_pixels,
        }
        _log(record)
        return images, labels, names, alphabets, record

    def load(
        self,
        *,
        image_size: int | tuple[int, int] | str | None = None,
        channels: int | None = None,
        bad_files: str = "skip",
        dataset_id: str | None = None,
        rules: Mapping[str, str] | None = None,
        progress: bool = False,
    ) -> ImageDataset:
        """The tree as an :class:`~metaleep.data.base.ImageDataset` (see :meth:`decode`);
        its ``loading`` holds the record."""
        from metaleep.data.base import dataset_from_arrays

        images, labels, names, alphabets, record = self.decode(
            image_size=image_size,
            channels=channels,
            bad_files=bad_files,
            rules=rules,
            progress=progress,
        )
        return dataset_from_arrays(
            images,
            labels,
            names,
            dataset_id=dataset_id or self.root.name,
            alphabets=alphabets,
            loading=record,
        )

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


_LOOSE = "a file directly in the root, in no class folder"


def _refusal(root: Path, problems: Sequence[tuple[str, str]], what: str) -> str:
    n = len(problems)
    return (
        f"`bad_files` is refuse, so every file of {printable(str(root))} must be a usable "
        f"image of a class; got {n} that {what if n > 1 else _singular(what)}: "
        f"{_listing(problems)}. Fix or remove them, or skip them (bad_files='skip', "
        "--bad-files skip)."
    )


def _singular(what: str) -> str:
    return {"are not": "is not"}.get(what, what)


def _listing(items: Sequence[tuple[str, str]]) -> str:
    shown = "; ".join(f"{printable(p)} ({printable(r)})" for p, r in items[:SHOWN])
    more = len(items) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def _record(items: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "count": len(items),
        "first": [f"{printable(p)}: {printable(r)}" for p, r in items[:SHOWN]],
    }


def _log(record: Mapping[str, Any]) -> None:
    log.info(
        "%s: %d images of %d classes at %s, %d channels (%s); %d resized; converted %s",
        printable(str(record["source"])),
        record["images"],
        record["classes"],
        "x".join(str(v) for v in record["size"]),
        record["channels"],
        record["channel_rule"],
        record["resized"],
        ", ".join(f"{k}: {v}" for k, v in record["converted"].items()) or "none",
    )
    for key in ("skipped", "ignored"):
        part = record[key]
        if part["count"]:
            log.warning(
                "%s: %s %d files: %s",
                printable(str(record["source"])),
                key,
                part["count"],
                "; ".join(part["first"]),
            )


def _class_folders(root: Path, groups: bool, hidden: list[str]) -> list[tuple[str, Path, str]]:
    """(class name, folder, group) of each class folder, in sorted order."""

    def folders(parent: Path) -> list[Path]:
        out = []
        for entry in sorted(os.scandir(parent), key=lambda e: e.name):
            if _hidden(entry.name):
                hidden.append(os.path.relpath(entry.path, root))
            elif entry.is_dir():
                out.append(Path(entry.path))
        return out

    if not groups:
        return [(p.name, p, "") for p in folders(root)]
    return [(f"{g.name}/{c.name}", c, g.name) for g in folders(root) for c in folders(g)]


def _walk(folder: Path, root: Path, hidden: list[str]) -> list[tuple[Path, bool]]:
    """Files under ``folder`` in ``ImageFolder``'s order (sorted folders, then sorted names),
    each with whether it is in a nested folder; hidden entries are recorded and skipped."""
    found: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symbolic link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        for name in [d for d in dirnames if _hidden(d)]:
            hidden.append(os.path.relpath(os.path.join(dirpath, name), root))
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        for name in [f for f in filenames if _hidden(f)]:
            hidden.append(os.path.relpath(os.path.join(dirpath, name), root))
        found.append((dirpath, [f for f in filenames if not _hidden(f)]))
    out = []
    for dirpath, names in sorted(found):
        nested = Path(dirpath) != folder
        out += [(Path(dirpath) / name, nested) for name in sorted(names)]
    return out


def scan_image_folder(
    root: str | os.PathLike[str],
    *,
    groups: bool = False,
    classes: Sequence[str] | None = None,
    max_pixels: int = MAX_PIXELS,
    progress: bool = False,
) -> FolderScan:
    """Read the headers of every file of an image tree (see the module docstring).

    Parameters
    ----------
    root:
        The tree, ``root/<class>/<image>`` (``root/<group>/<class>/<image>`` with ``groups``).
    groups:
        One more level of folders: classes are named ``"<group>/<class>"``.
    classes:
        Only these class folders (by name); default every folder.
    max_pixels:
        Files whose header declares more pixels are bad files (refused before decoding).
    progress:
        Show a progress bar over the class folders.
    """
    from tqdm.auto import tqdm

    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"`max_pixels` must be a positive integer; got {max_pixels!r}.")
    root_path = Path(os.fspath(root)).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"`root` must be an existing folder of class folders; got {str(root_path)!r}."
        )
    hidden: list[str] = []
    ignored: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    folders = _class_folders(root_path, groups, hidden)
    if classes is not None:
        wanted = set(classes)
        folders = [f for f in folders if f[0] in wanted]
    if not folders:
        raise FileNotFoundError(
            f"`root` must contain one folder per class; got {str(root_path)!r} (no class "
            "folder found)."
        )
    for entry in sorted(os.scandir(root_path), key=lambda e: e.name):
        if not _hidden(entry.name) and not entry.is_dir():
            ignored.append((entry.name, _LOOSE))
    files: list[FolderFile] = []
    names: list[str] = []
    alphabets: list[str] = []
    for name, folder, group in tqdm(folders, desc="reading headers", disable=not progress):
        usable = []
        for path, nested in _walk(folder, root_path, hidden):
            relative = str(path.relative_to(root_path))
            if path.suffix.lower() not in EXTENSIONS:
                ignored.append((relative, "not an image file (by its extension)"))
                continue
            try:
                header = read_header(path, max_pixels=max_pixels)
            except BadImage as error:
                bad.append((relative, str(error)))
                continue
            except OSError as error:  # e.g. a dangling symbolic link
                bad.append((relative, f"unreadable ({type(error).__name__})"))
                continue
            usable.append(FolderFile(path, len(names), header, nested))
        if usable:
            files += usable
            names.append(name)
            alphabets.append(group)
        else:
            relative = str(folder.relative_to(root_path))
            ignored.append((relative, "class folder without a usable image"))
    return FolderScan(
        root=root_path,
        classes=tuple(names),
        alphabets=tuple(alphabets) if groups else None,
        files=tuple(files),
        bad=tuple(bad),
        ignored=tuple(ignored),
        hidden=tuple(sorted(hidden)),
        max_pixels=max_pixels,
    )


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    groups: bool = False,
    dataset_id: str | None = None,
    bad_files: str = "skip",
    max_pixels: int = MAX_PIXELS,
    progress: bool = False,
) -> ImageDataset:
    """Load an ``ImageFolder`` tree (``root/<class>/<image>``) into memory.

    Parameters
    ----------
    root:
        The tree. Class ids follow ``ImageFolder``'s (sorted folder names) and images its order
        and extensions, so for a clean tree ``labels`` equal ``ImageFolder(root).targets``.
    image_size:
        Resize every image to ``N`` x ``N`` (an int) or ``(H, W)`` (Pillow, Lanczos). Default:
        the files' own size when they share it, else their median height x median width.
    channels:
        1 (grey) or 3 (RGB); default: the majority of the files.
    groups:
        When true the tree has one more level, ``root/<group>/<class>/<image>`` (Omniglot's
        alphabets): classes are named ``"<group>/<class>"`` and ``classes["alphabet"]`` holds
        the group, so episodes can be drawn within or across groups.
    dataset_id:
        Default: the folder's name.
    bad_files:
        ``"skip"`` (default) or ``"refuse"`` files that are not usable images (empty,
        truncated, corrupt, over ``max_pixels``, other extensions); they are listed either way.
    max_pixels:
        Pixel limit per image, checked from the header before decoding.
    progress:
        Show progress bars (headers, then pixels).

    Returns
    -------
    ImageDataset
        uint8 images (N, channels, H, W); ``version`` hashes the images, labels and names;
        ``loading`` records what was converted, resized, skipped and ignored.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "shapes"
    >>> for c in ("circle", "square"):
    ...     (root / c).mkdir(parents=True)
    ...     for i in range(3):
    ...         Image.new("L", (8, 8 + i), 40 * i).save(root / c / f"{i}.png")
    >>> (root / "square" / "broken.png").write_bytes(b"")
    0
    >>> ds = load_image_folder(root)
    >>> ds.images.shape, ds.labels.tolist(), ds.classes["name"].tolist()
    (torch.Size([6, 1, 9, 8]), [0, 0, 0, 1, 1, 1], ['circle', 'square'])
    >>> ds.loading["resized"], ds.loading["skipped"]["first"]
    (4, ['square/broken.png: empty file (0 bytes)'])
    """
    scan = scan_image_folder(root, groups=groups, max_pixels=max_pixels, progress=progress)
    return scan.load(
        image_size=image_size,
        channels=channels,
        bad_files=bad_files,
        dataset_id=dataset_id,
        progress=progress,
    )
