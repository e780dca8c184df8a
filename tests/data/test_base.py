"""ImageDataset: validation, indexing, batch, label index, fingerprint, torch/learn2learn use."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from metaleep.data.base import ImageDataset


def _make(n_classes: int = 4, per_class: int = 5, seed: int = 0) -> ImageDataset:
    gen = np.random.default_rng(seed)
    labels = gen.permutation(np.repeat(np.arange(n_classes), per_class))
    images = torch.from_numpy(gen.integers(0, 256, (labels.size, 1, 3, 3), dtype=np.uint8))
    classes = pd.DataFrame({"name": [f"k{c}" for c in range(n_classes)]})
    return ImageDataset(images, labels, classes, "toy", "v1")


def test_validation_errors():
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    classes = pd.DataFrame({"name": ["a", "b"]})
    message = "`images` must be a 4-D tensor (N, channels, height, width); got shape (4, 2, 2)."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ImageDataset(images[:, 0], np.zeros(4, dtype=int), classes, "t", "v")
    message = "`labels` must be 1-D with one entry per image (4); got shape (3,)."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ImageDataset(images, np.zeros(3, dtype=int), classes, "t", "v")
    with pytest.raises(
        TypeError, match=r"^`labels` must be integers; got dtype dtype\('float64'\)\.$"
    ):
        ImageDataset(images, np.zeros(4), classes, "t", "v")
    message = "`labels` must be class ids in 0..1; got values in 0..2."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ImageDataset(images, np.array([0, 1, 2, 0]), classes, "t", "v")
    with pytest.raises(ValueError, match=r"got values in -1\.\.1\.$"):
        ImageDataset(images, np.array([0, 1, -1, 0]), classes, "t", "v")


def test_labels_become_int64():
    ds = ImageDataset(
        torch.zeros(3, 1, 1, 1, dtype=torch.uint8),
        np.array([1, 0, 1], dtype=np.int8),
        pd.DataFrame({"name": ["a", "b"]}),
        "t",
        "v",
    )
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [1, 0, 1]


def test_getitem_len_and_shapes():
    ds = _make()
    image, label = ds[7]
    assert image.dtype == torch.float32 and image.shape == (1, 3, 3)
    assert torch.equal(image, ds.images[7].float() / 255.0) and label == int(ds.labels[7])
    assert isinstance(label, int) and len(ds) == 20
    assert ds.num_classes == 4 and ds.image_shape == (1, 3, 3)
    assert ds.images[7].dtype == torch.uint8  # indexing does not modify the stored images


def test_batch_matches_indexing():
    ds = _make()
    indices = np.array([3, 0, 19, 3])
    batch = ds.batch(indices)
    assert batch.shape == (4, 1, 3, 3) and batch.dtype == torch.float32
    for row, i in zip(batch, indices, strict=True):
        assert torch.equal(row, ds[int(i)][0])
    assert torch.equal(ds.batch([3, 0, 19, 3]), batch)
    assert ds.batch([]).shape == (0, 1, 3, 3)


def test_labels_to_indices_matches_a_naive_loop():
    ds = _make(n_classes=7, per_class=6, seed=3)
    naive: dict[int, list[int]] = {c: [] for c in range(7)}
    for i in range(len(ds)):
        naive[ds[i][1]].append(i)
    mapping = ds.labels_to_indices
    assert sorted(mapping) == list(range(7))
    for c in range(7):
        assert mapping[c].dtype == np.int64 and mapping[c].tolist() == naive[c]
    assert ds.labels_to_indices is mapping  # computed once


def test_labels_to_indices_with_an_empty_class():
    classes = pd.DataFrame({"name": ["a", "b", "c"]})
    ds = ImageDataset(torch.zeros(3, 1, 1, 1, dtype=torch.uint8), [2, 0, 2], classes, "t", "v")
    assert {c: v.tolist() for c, v in ds.labels_to_indices.items()} == {0: [1], 1: [], 2: [0, 2]}


def test_fingerprint():
    ds = _make()
    assert ds.fingerprint == "toy@v1"
    assert (
        ImageDataset(ds.images, ds.labels, ds.classes, "glyphs", "abc").fingerprint == "glyphs@abc"
    )


def test_dataloader_accepts_it():
    ds = _make()
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (8, 1, 3, 3)
    assert torch.equal(images, ds.batch(np.arange(8)))
    assert labels.tolist() == ds.labels[:8].tolist()


def test_learn2learn_meta_dataset_accepts_it():
    l2l = pytest.importorskip("learn2learn")
    ds = _make(n_classes=5, per_class=4)
    meta = l2l.data.MetaDataset(ds)
    expected = {c: v.tolist() for c, v in ds.labels_to_indices.items()}
    assert {c: sorted(v) for c, v in meta.labels_to_indices.items()} == expected
    # Passing the precomputed map skips MetaDataset's pass over every image.
    fast = l2l.data.MetaDataset(ds, labels_to_indices=ds.labels_to_indices)
    assert sorted(fast.labels) == list(range(5))
    taskset = l2l.data.Taskset(
        meta,
        task_transforms=[
            l2l.data.transforms.NWays(meta, n=3),
            l2l.data.transforms.KShots(meta, k=2),
            l2l.data.transforms.LoadData(meta),
        ],
        num_tasks=1,
    )
    images, labels = taskset[0]
    assert images.shape == (6, 1, 3, 3) and len(set(labels.tolist())) == 3
