"""Small fabricated data for tests and examples: classes of noisy, shifted random blobs.

Not a benchmark: a quick, offline stand-in with the shape of the glyph data (uint8 images
(N, 1, 28, 28), an ``alphabet`` column) so training and checkpoint code can be exercised in
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metaleep.data.base import ImageDataset

__all__ = ["ToySplit", "toy_dataset", "toy_split"]


@dataclass(frozen=True)
class ToySplit:
    """A class split with the fields training reads (``name``, ``train``, ``validation``,
    ``test``: int64 class-id arrays)."""

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def toy_dataset(
    *, classes: int = 20, per_class: int = 10, size: int = 28, seed: int = 0
) -> ImageDataset:
    """``classes`` classes of ``per_class`` images each, (N, 1, size, size) uint8.

    A class is a random 7x7 binary pattern upsampled to ``size``; an instance is the pattern
    shifted by up to 2 pixels with 5 % of its pixels flipped. Classes belong to alphabets of 5.

    Examples
    --------
    >>> data = toy_dataset(classes=4, per_class=3)
    >>> data.images.shape, data.labels.tolist()
    (torch.Size([12, 1, 28, 28]), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    """
    import torch

    rng = np.random.default_rng(seed)
    cell = -(-size // 7)
    images = np.empty((classes * per_class, 1, size, size), dtype=np.uint8)
    for c in range(classes):
        pattern = rng.random((7, 7)) < 0.4
        big = np.kron(pattern, np.ones((cell, cell), dtype=bool))[:size, :size]
        for i in range(per_class):
            dy, dx = rng.integers(-2, 3, size=2)
            shifted = np.roll(big, (int(dy), int(dx)), axis=(0, 1))
            noisy = shifted ^ (rng.random((size, size)) < 0.05)
            images[c * per_class + i, 0] = noisy.astype(np.uint8) * 255
    table = pd.DataFrame(
        {
            "name": [f"toy-{c}" for c in range(classes)],
            "alphabet": [f"alpha-{c // 5}" for c in range(classes)],
        },
        index=pd.RangeIndex(classes, name="class_id"),
    )
    return ImageDataset(
        images=torch.from_numpy(images),
        labels=np.repeat(np.arange(classes), per_class),
        classes=table,
        dataset_id="toy",
        version=f"c{classes}-n{per_class}-s{size}-seed{seed}",
    )


def toy_split(dataset: ImageDataset, *, validation: float = 0.25, test: float = 0.25) -> ToySplit:
    """Classes in order: the first ones train, then validation, then test.

    Examples
    --------
    >>> split = toy_split(toy_dataset(classes=8, per_class=2))
    >>> split.train.tolist(), split.validation.tolist(), split.test.tolist()
    ([0, 1, 2, 3], [4, 5], [6, 7])
    """
    n = dataset.num_classes
    n_val, n_test = max(1, round(n * validation)), max(1, round(n * test))
    ids = np.arange(n, dtype=np.int64)
    n_train = n - n_val - n_test
    return ToySplit("toy", ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :])
