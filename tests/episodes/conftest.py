"""Fabricated data sets for the episode tests (the glyph data set is tested separately)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from metaleep.data.base import ImageDataset

ALPHABETS = ("Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta")
CLASSES_PER_ALPHABET = 25
IMAGES_PER_CLASS = 20


def make_toy(
    *, images_per_class: int = IMAGES_PER_CLASS, version: str = "v1", shuffle: bool = True
) -> ImageDataset:
    """6 alphabets x 25 classes x 20 images of 1x4x4; images stored in a shuffled order."""
    n_classes = len(ALPHABETS) * CLASSES_PER_ALPHABET
    labels = np.repeat(np.arange(n_classes), images_per_class)
    gen = np.random.default_rng(0)
    if shuffle:
        labels = labels[gen.permutation(labels.size)]
    images = torch.from_numpy(gen.integers(0, 256, (labels.size, 1, 4, 4), dtype=np.uint8))
    classes = pd.DataFrame(
        {
            "name": [f"c{c:03d}" for c in range(n_classes)],
            "alphabet": np.repeat(ALPHABETS, CLASSES_PER_ALPHABET),
        }
    )
    return ImageDataset(images, labels, classes, "toy", version)


@dataclass(frozen=True)
class ToySplit:
    """Stands in for ``metaleep.data.splits.ClassSplit``: the last 3 alphabets are test."""

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_split(dataset: ImageDataset, name: str = "omniglot") -> ToySplit:
    alphabet = dataset.classes["alphabet"].to_numpy()
    ids = np.arange(dataset.num_classes)
    return ToySplit(
        name,
        ids[np.isin(alphabet, ALPHABETS[:2])],
        ids[alphabet == ALPHABETS[2]],
        ids[np.isin(alphabet, ALPHABETS[3:])],
    )


@pytest.fixture(scope="session")
def toy() -> ImageDataset:
    return make_toy()


@pytest.fixture(scope="session")
def toy_split(toy: ImageDataset) -> ToySplit:
    return make_split(toy)


@pytest.fixture(scope="session")
def toy_factory() -> object:
    """``make_toy`` itself, for tests that need a variant (fewer images, other version)."""
    return make_toy


@pytest.fixture(scope="session")
def split_factory() -> object:
    return make_split
