"""``glyphs``: an offline, Omniglot-like few-shot data set rendered from open fonts.

A class is a Unicode letter, its alphabet is its Unicode script (Latin, Greek, Cyrillic,
Georgian, Devanagari, Ethiopic, Tifinagh, ...). The bank shipped in ``metaleep/data/bank``
holds each letter as a 64x64 1-bit prototype in every open font that really covers it (built by
``tools/build_glyph_bank.py``; fonts and licences in ``bank/ATTRIBUTION.txt``). Instances are
generated here, with numpy only: each is one face's prototype, distorted (stroke width, affine,
elastic warp; :mod:`metaleep.data.instances`) and shrunk to 28x28, like Omniglot in
learn2learn. The generated images are cached on disk, keyed by bank version, seed, instances per
class and generator version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaleep._io import atomic_write, cache_dir
from metaleep.data._npz import write_npz
from metaleep.data.base import ImageDataset
from metaleep.data.instances import GENERATOR_VERSION, PROTO, SIZE, render_instances

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

BANK_PATH = Path(__file__).resolve().parent / "bank" / "glyphs.npz"
BANK_FORMAT = 1
DATASET_ID = "glyphs"
_BANK_KEYS = (
    "prototypes",
    "proto_class",
    "proto_face",
    "class_codepoint",
    "class_name",
    "class_alphabet",
    "class_cluster",
    "alphabets",
    "face_name",
    "face_family",
    "face_file",
    "meta",
    "version",
)


def bank_version(arrays: dict[str, np.ndarray]) -> str:
    """Content version of a bank: ``"{format}.{first 12 hex of SHA-256}"``.

    The hash runs over every array but ``version``, in name order: name, dtype string, shape
    string and the C-order bytes of each.

    >>> bank_version({"x": np.arange(3)}) == bank_version({"x": np.arange(3), "version": "v"})
    True

    """
    digest = hashlib.sha256()
    for name in sorted(k for k in arrays if k != "version"):
        array = np.asarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes(order="C"))
    return f"{BANK_FORMAT}.{digest.hexdigest()[:12]}"


class GlyphCacheWarning(UserWarning):
    """A cached glyph file was unreadable or corrupt and is being regenerated."""


@dataclass(frozen=True, eq=False)
class GlyphBank:
    """The prototypes of every glyph class (read-only; load with :func:`load_bank`).

    Attributes
    ----------
    version:
        Content hash of the bank, e.g. ``"1.2b06132b44a6"``.
    packed:
        uint8 (P, 512): each prototype, 64x64 bits, ``np.packbits`` of the row-major pixels.
    proto_class, proto_face:
        int (P,): class id and face id of each prototype, sorted by class.
    codepoint, name, alphabet, cluster:
        Per class (C,): Unicode code point, Unicode name, alphabet (script) name, look-alike
        cluster id.
    faces, face_family, face_file:
        Per face (F,): full font name, design family, font file name.
    meta:
        Build parameters and counts (thresholds, package versions, ...).
    """

    version: str
    packed: np.ndarray
    proto_class: np.ndarray
    proto_face: np.ndarray
    codepoint: np.ndarray
    name: np.ndarray
    alphabet: np.ndarray
    cluster: np.ndarray
    faces: np.ndarray
    face_family: np.ndarray
    face_file: np.ndarray
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.codepoint)

    @functools.cached_property
    def _bounds(self) -> np.ndarray:
        return np.searchsorted(self.proto_class, np.arange(self.num_classes + 1))

    @property
    def n_faces(self) -> np.ndarray:
        """int64 (C,): faces (prototypes) per class."""
        return np.diff(self._bounds).astype(np.int64)

    @property
    def n_families(self) -> np.ndarray:
        """int64 (C,): distinct design families per class."""
        fam = self.face_family[self.proto_face]
        return np.asarray(
            [
                len(set(fam[a:b].tolist()))
                for a, b in zip(self._bounds[:-1], self._bounds[1:], strict=True)
            ],
            dtype=np.int64,
        )

    def prototypes(self, class_id: int) -> np.ndarray:
        """uint8 0/1 array (F, 64, 64): class ``class_id``'s prototype in each of its faces."""
        if not 0 <= class_id < self.num_classes:
            raise ValueError(f"`class_id` must be in 0..{self.num_classes - 1}; got {class_id!r}.")
        a, b = self._bounds[class_id], self._bounds[class_id + 1]
        return np.unpackbits(self.packed[a:b], axis=1).reshape(-1, PROTO, PROTO)

    def prototype_faces(self, class_id: int) -> np.ndarray:
        """Face ids (F,) of :meth:`prototypes` rows."""
        return self.proto_face[self._bounds[class_id] : self._bounds[class_id + 1]]

    def classes_frame(self) -> pd.DataFrame:
        """One row per class, indexed by ``class_id``: name, char, codepoint, alphabet,
        cluster, n_faces, n_families."""
        frame = pd.DataFrame(
            {
                "name": self.name.astype(str),
                "char": [chr(c) for c in self.codepoint.tolist()],
                "codepoint": self.codepoint.astype(np.int64),
                "alphabet": self.alphabet.astype(str),
                "cluster": self.cluster.astype(np.int64),
                "n_faces": self.n_faces,
                "n_families": self.n_families,
            }
        )
        frame.index.name = "class_id"
        return frame


def load_bank(path: str | os.PathLike[str] | None = None) -> GlyphBank:
    """Read the glyph bank (default: the one shipped with metaleep; read once, then shared).

    Examples
    --------
    >>> bank = load_bank()
    >>> bank.num_classes > 1000, bank.prototypes(0).shape[1:]
    (True, (64, 64))
    """
    if path is None:
        return _default_bank()
    return _read_bank(Path(path))


@functools.lru_cache(maxsize=1)
def _default_bank() -> GlyphBank:
    return _read_bank(BANK_PATH)


def _read_bank(path: Path) -> GlyphBank:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in _BANK_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"`path` must be a glyph bank; {path} lacks {missing!r}.")
        arrays = {k: z[k] for k in _BANK_KEYS}
    meta = json.loads(str(arrays["meta"].reshape(-1)[0]))
    if meta.get("format") != BANK_FORMAT:
        raise ValueError(
            f"`path` must be a glyph bank of format {BANK_FORMAT}; got {meta.get('format')!r}."
        )
    alphabets = arrays["alphabets"].astype(str)
    return GlyphBank(
        version=str(arrays["version"].reshape(-1)[0]),
        packed=arrays["prototypes"],
        proto_class=arrays["proto_class"].astype(np.int64),
        proto_face=arrays["proto_face"].astype(np.int64),
        codepoint=arrays["class_codepoint"].astype(np.int64),
        name=arrays["class_name"].astype(str),
        alphabet=alphabets[arrays["class_alphabet"]],
        cluster=arrays["class_cluster"].astype(np.int64),
        faces=arrays["face_name"].astype(str),
        face_family=arrays["face_family"].astype(str),
        face_file=arrays["face_file"].astype(str),
        meta=meta,
    )


def _check_args(seed: object, instances_per_class: object) -> tuple[int, int]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an int; got {seed!r}.")
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0; got {seed!r}.")
    if isinstance(instances_per_class, bool) or not isinstance(
        instances_per_class, (int, np.integer)
    ):
        raise TypeError(f"`instances_per_class` must be an int; got {instances_per_class!r}.")
    if instances_per_class < 1:
        raise ValueError(f"`instances_per_class` must be >= 1; got {instances_per_class!r}.")
    return int(seed), int(instances_per_class)


def generate_glyphs(
    *,
    seed: int = 0,
    instances_per_class: int = 20,
    classes: Sequence[int] | np.ndarray | None = None,
    bank: GlyphBank | None = None,
) -> np.ndarray:
    """Generate glyph instances (no cache): uint8 (len(classes) * n, 28, 28), class-major.

    Row ``i * n + j`` is instance ``j`` of ``classes[i]``; it depends only on
    (bank, seed, class, j), not on ``instances_per_class`` or on the other classes.

    Examples
    --------
    >>> a = generate_glyphs(seed=0, instances_per_class=3, classes=[5, 9])
    >>> a.shape
    (6, 28, 28)
    >>> b = generate_glyphs(seed=0, instances_per_class=2, classes=[9])
    >>> bool((a[3:5] == b).all())
    True
    """
    seed, n = _check_args(seed, instances_per_class)
    bank = bank if bank is not None else load_bank()
    ids = np.arange(bank.num_classes) if classes is None else np.asarray(classes, dtype=np.int64)
    out = np.empty((len(ids) * n, SIZE, SIZE), dtype=np.uint8)
    instance_ids = np.arange(n)
    for row, c in enumerate(ids.tolist()):
        out[row * n : (row + 1) * n] = render_instances(
            bank.prototypes(c), seed=seed, class_id=c, instances=instance_ids
        )
    return out


def cache_key(seed: int, instances_per_class: int, bank_version: str | None = None) -> str:
    """Name of the cached images of (bank, seed, instances per class, generator version).

    >>> cache_key(0, 20, "1.abc")
    'glyphs-1.abc-seed0-n20-gen1'
    """
    version = bank_version if bank_version is not None else load_bank().version
    return f"glyphs-{version}-seed{seed}-n{instances_per_class}-gen{GENERATOR_VERSION}"


def cache_path(seed: int = 0, instances_per_class: int = 20) -> Path:
    """Where :func:`load_glyphs` caches these images (in ``cache_dir("glyphs")``)."""
    seed, n = _check_args(seed, instances_per_class)
    return cache_dir("glyphs") / f"{cache_key(seed, n)}.npz"


def _digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def _read_cache(path: Path, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached images, or None (with a warning when the file exists but is bad)."""
    if not path.exists():
        return None
    reason = None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored_key = str(z["key"].reshape(-1)[0])
            images = z["images"]
            digest = str(z["sha256"].reshape(-1)[0])
        if stored_key != key:
            reason = f"key {stored_key!r} != {key!r}"
        elif images.dtype != np.uint8 or images.shape != shape:
            reason = f"images {images.dtype} {images.shape} != uint8 {shape}"
        elif _digest(images) != digest:
            reason = "checksum mismatch"
    except Exception as e:  # any decoding error (zlib.error, BadZipFile, ...): regenerate
        reason = f"{type(e).__name__}: {e}"
    if reason is not None:
        warnings.warn(
            f"glyph cache {path} is unusable ({reason}); regenerating it.",
            GlyphCacheWarning,
            stacklevel=3,
        )
        return None
    return images


def cache_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Key, image count and generation seconds recorded in a cache file."""
    with np.load(path, allow_pickle=False) as z:
        return {
            "key": str(z["key"].reshape(-1)[0]),
            "images": int(z["images"].shape[0]),
            "seconds": float(z["seconds"].reshape(-1)[0]),
        }


def glyph_images(*, seed: int = 0, instances_per_class: int = 20, cache: bool = True) -> np.ndarray:
    """All classes' instances, uint8 (C * n, 28, 28), from the disk cache when valid.

    The cache file is written atomically (a killed process never leaves a half file) and checked
    on load (key, shape, dtype, SHA-256 of the pixels); an unusable file is regenerated with a
    :class:`GlyphCacheWarning`.
    """
    seed, n = _check_args(seed, instances_per_class)
    bank = load_bank()
    shape = (bank.num_classes * n, SIZE, SIZE)
    key = cache_key(seed, n, bank.version)
    path = cache_dir("glyphs") / f"{key}.npz" if cache else None
    if path is not None:
        images = _read_cache(path, key, shape)
        if images is not None:
            return images
    start = time.perf_counter()
    images = generate_glyphs(seed=seed, instances_per_class=n, bank=bank)
    seconds = time.perf_counter() - start
    log.info("generated %d glyph images in %.1f s", len(images), seconds)
    if path is not None:
        arrays = {
            "images": images,
            "key": np.asarray(key),
            "sha256": np.asarray(_digest(images)),
            "seconds": np.asarray(seconds),
        }
        atomic_write(path, lambda p: write_npz(p, arrays))
    return images


def load_glyphs(
    *, seed: int = 0, instances_per_class: int = 20, cache: bool = True
) -> ImageDataset:
    """The glyphs data set: every bank class with ``instances_per_class`` distorted instances.

    Parameters
    ----------
    seed:
        Seed of the distortions (>= 0). Instance j of class c depends only on (bank, seed, c, j).
    instances_per_class:
        Instances per class (Omniglot has 20).
    cache:
        Read and write the images in ``cache_dir("glyphs")`` ($METALEEP_CACHE_DIR to move it).

    Returns
    -------
    ImageDataset
        ``images`` uint8 (C * n, 1, 28, 28) (ink 255 on 0), ``labels`` the class ids
        (class-major: image ``c * n + j`` is instance j of class c), ``classes`` indexed by
        ``class_id`` with columns name (Unicode name), char, codepoint, alphabet (script),
        cluster (look-alike cluster id), n_faces, n_families; ``dataset_id`` ``"glyphs"``;
        ``version`` ``"{bank version}-seed{seed}-n{n}-gen{generator version}"``.

    Examples
    --------
    >>> ds = load_glyphs(instances_per_class=2)
    >>> ds.images.shape[1:], ds.images.dtype
    (torch.Size([1, 28, 28]), torch.uint8)
    >>> ds.classes.loc[ds.classes.char == "α", ["name", "alphabet"]].values.tolist()
    [['GREEK SMALL LETTER ALPHA', 'Greek']]
    """
    import torch

    seed, n = _check_args(seed, instances_per_class)
    bank = load_bank()
    images = glyph_images(seed=seed, instances_per_class=n, cache=cache)
    labels = np.repeat(np.arange(bank.num_classes, dtype=np.int64), n)
    tensor = torch.from_numpy(np.ascontiguousarray(images).reshape(-1, 1, SIZE, SIZE))
    return ImageDataset(
        images=tensor,
        labels=labels,
        classes=bank.classes_frame(),
        dataset_id=DATASET_ID,
        version=cache_key(seed, n, bank.version).removeprefix("glyphs-"),
    )


def alphabet_table(bank: GlyphBank | None = None) -> pd.DataFrame:
    """Per alphabet: classes, faces per class (min/median/max), look-alike clusters shared.

    >>> int(alphabet_table().loc["Greek", "classes"]) > 20
    True
    """
    bank = bank if bank is not None else load_bank()
    frame = bank.classes_frame()
    sizes = frame.groupby("cluster")["alphabet"].transform("size")
    frame = frame.assign(shared=sizes > 1)
    table = frame.groupby("alphabet").agg(
        classes=("name", "size"),
        faces_min=("n_faces", "min"),
        faces_median=("n_faces", "median"),
        faces_max=("n_faces", "max"),
        lookalikes=("shared", "sum"),
    )
    return table.astype({"lookalikes": np.int64})
