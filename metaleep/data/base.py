"""The in-memory image data set that every metaleep data source produces.

Glyphs, the learn2learn benchmarks and ``ImageFolder`` trees all load into an
:class:`ImageDataset`: uint8 images held in one tensor, an integer class id per image, and one
metadata row per class. Episodes, backbones and the study only ever see this type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset


@dataclass(eq=False)
class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images of many classes, with per-class metadata.

    Attributes
    ----------
    images:
        uint8 tensor of shape (N, channels, height, width).
    labels:
        int64 array of shape (N,): the class id of each image (an index into ``classes``).
    classes:
        DataFrame with one row per class id (its index, ``class_id``, runs 0..C-1). Columns:
        ``name`` (str) always; ``alphabet`` (str) where classes come in groups (glyph scripts,
        Omniglot alphabets); other columns as the source provides (e.g. ``codepoint``,
        ``cluster`` for glyphs).
    dataset_id:
        Short name of the source, e.g. ``"glyphs"`` or ``"mini-imagenet"``.
    version:
        Fingerprint of the content: two data sets with equal ``dataset_id`` and ``version``
        hold the same images in the same order. Manifests and checkpoints record it.
    loading:
        What was done to the files while loading them (a JSON-ready dict: conversions,
        resizing, skipped and ignored files; see :mod:`metaleep.data.folder`), or None when
        there is nothing to say (built-in data). A study records it in ``study.json``.

    Indexing returns ``(image, label)`` with the image as float32 in [0, 1], so the object is a
    map-style dataset that torch's ``DataLoader`` and learn2learn's ``MetaDataset`` accept.
    """

    images: torch.Tensor
    labels: np.ndarray
    classes: pd.DataFrame
    dataset_id: str
    version: str
    loading: dict[str, Any] | None = None
    _labels_to_indices: dict[int, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(
                f"`images` must be a 4-D tensor (N, channels, height, width); "
                f"got shape {tuple(self.images.shape)!r}."
            )
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"`labels` must be 1-D with one entry per image ({self.images.shape[0]}); "
                f"got shape {labels.shape!r}."
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"`labels` must be integers; got dtype {labels.dtype!r}.")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(
                f"`labels` must be class ids in 0..{len(self.classes) - 1}; "
                f"got values in {labels.min()}..{labels.max()}."
            )
        self.labels = labels.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(255.0), int(self.labels[index])

    def batch(self, indices: np.ndarray | list[int]) -> torch.Tensor:
        """Images ``indices`` as one float32 tensor in [0, 1], shape (k, channels, H, W)."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return self.images.index_select(0, index).float().div_(255.0)

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    @property
    def labels_to_indices(self) -> dict[int, np.ndarray]:
        """Class id -> sorted int64 array of image indices (computed once).

        The same map learn2learn's ``MetaDataset`` builds; pass it as
        ``MetaDataset(ds, labels_to_indices=...)`` to skip its pass over every image.
        """
        if self._labels_to_indices is None:
            order = np.argsort(self.labels, kind="stable")
            bounds = np.searchsorted(self.labels[order], np.arange(self.num_classes + 1))
            self._labels_to_indices = {
                c: order[bounds[c] : bounds[c + 1]] for c in range(self.num_classes)
            }
        return self._labels_to_indices

    @property
    def fingerprint(self) -> str:
        """``"{dataset_id}@{version}"``: what manifests and checkpoints record."""
        return f"{self.dataset_id}@{self.version}"


def dataset_from_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    dataset_id: str,
    alphabets: Sequence[str] | None = None,
    loading: dict[str, Any] | None = None,
) -> ImageDataset:
    """An :class:`ImageDataset` of uint8 images (N, H, W, C), class ids and class names.

    ``version`` is a hash of the images, labels, class names (and alphabets): equal content,
    equal fingerprint.

    Examples
    --------
    >>> ds = dataset_from_arrays(np.zeros((2, 3, 3, 1), np.uint8), np.array([0, 1]), ["a", "b"],
    ...                          dataset_id="toy")
    >>> ds.image_shape, ds.fingerprint
    ((1, 3, 3), 'toy@23f9f9be992f6598')
    """
    chw = np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2))
    classes = pd.DataFrame({"name": [str(n) for n in names]})
    if alphabets is not None:
        classes["alphabet"] = [str(a) for a in alphabets]
    classes.index.name = "class_id"
    labels = np.asarray(labels, dtype=np.int64)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(chw.shape), classes.to_dict("list")]).encode())
    digest.update(labels.astype("<i8").tobytes())
    digest.update(chw.tobytes())
    return ImageDataset(
        images=torch.from_numpy(chw),
        labels=labels,
        classes=classes,
        dataset_id=dataset_id,
        version=digest.hexdigest()[:16],
        loading=loading,
    )
