"""``digits``: scikit-learn's handwritten digits as a second, real target domain (no download).

scikit-learn ships the UCI "Optical Recognition of Handwritten Digits" test set
(:func:`sklearn.datasets.load_digits`: 1,797 images of the digits 0-9, about 180 per digit,
written by people other than the 30 of the UCI training set; Alpaydin and Kaynak, 1998). Each
image is 8x8 with integer values 0..16: NIST's 32x32 bitmaps with the "on" pixels counted in
4x4 blocks.

:func:`load_digits` makes it an :class:`~metaleep.data.base.ImageDataset` the glyph backbones
take (1x28x28, uint8, ink 255 on 0, like the glyphs), by a fixed, documented transform:

1. scale to [0, 1]: ``v / 16`` (ink is already high, background 0, as in the glyphs);
2. resize 8x8 -> 20x20 by separable bilinear interpolation with half-pixel centres (each output
   pixel samples the input at ``(i + 0.5) * 8 / 20 - 0.5``, clamped to the border: the
   convention of ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``),
   computed in float64 NumPy, so the bytes do not depend on the torch build;
3. pad 4 pixels of background on every side -> 28x28: the digit fills the central 20x20 box,
   the extent of most glyphs (and MNIST's convention);
4. ``round(255 * v)`` to uint8.

The images stay in scikit-learn's order; class id c is the digit c. There are no alphabets.
The data set's ``version`` hashes the resulting images, so a manifest drawn from it refuses
other bytes.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pandas as pd

from metaleep.data.base import ImageDataset

__all__ = ["DATASET_ID", "DIGITS_SIZE", "TRANSFORM_VERSION", "digits_images", "load_digits"]

DATASET_ID = "digits"
DIGITS_SIZE = 28
"""Side of the images (the glyph backbones' input, 1x28x28)."""
_BOX = 20
"""Side of the box the digit is resized to, centred in the 28x28 image."""
TRANSFORM_VERSION = 1
"""Bumped when the transform changes (a new ``version``: manifests must be regenerated)."""


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix of 1-D linear interpolation with half-pixel centres.

    Examples
    --------
    >>> m = _bilinear_matrix(2, 4)
    >>> m.tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    >>> bool(np.allclose(_bilinear_matrix(8, 20).sum(axis=1), 1.0))
    True
    """
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    position = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    position = np.clip(position, 0.0, size_in - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    frac = position - low
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def digits_images(raw: np.ndarray) -> np.ndarray:
    """The transform of :mod:`metaleep.data.digits`: (n, 8, 8) values 0..16 -> (n, 28, 28) uint8.

    Parameters
    ----------
    raw:
        Array of shape (n, 8, 8) with values in [0, 16] (``sklearn.datasets.load_digits().images``).

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (n, 28, 28): each image scaled to [0, 1], resized to 20x20
        (bilinear, half-pixel centres), padded by 4 on each side, times 255, rounded.

    Examples
    --------
    >>> img = np.zeros((1, 8, 8)); img[0, 3:5, 3:5] = 16
    >>> out = digits_images(img)
    >>> out.shape, out.dtype, int(out.max()), int(out[0, :4].max()), int(out[0, :, :4].max())
    ((1, 28, 28), dtype('uint8'), 255, 0, 0)
    """
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (8, 8):
        raise ValueError(f"`raw` must be of shape (n, 8, 8); got {array.shape!r}.")
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 16):
        raise ValueError("`raw` must hold values in [0, 16]; got values outside that range.")
    resize = _bilinear_matrix(8, _BOX)
    box = np.einsum("ij,njk,lk->nil", resize, array / 16.0, resize)  # (n, 20, 20)
    pad = (DIGITS_SIZE - _BOX) // 2
    out = np.zeros((array.shape[0], DIGITS_SIZE, DIGITS_SIZE), dtype=np.float64)
    out[:, pad : pad + _BOX, pad : pad + _BOX] = box
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = digits_images(bunch.images)
    labels = np.asarray(bunch.target, dtype=np.int64)
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    version = f"{TRANSFORM_VERSION}.{digest.hexdigest()[:12]}"
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, version


def load_digits() -> ImageDataset:
    """The ``digits`` data set: 1,797 handwritten digits as 1x28x28 images (see the module).

    Returns
    -------
    ImageDataset
        ``images`` uint8 (1797, 1, 28, 28), ink 255 on 0; ``labels`` the digit of each image
        (scikit-learn's order); ``classes`` indexed by ``class_id`` 0..9 with columns ``name``
        (``"0"`` .. ``"9"``) and ``images`` (count per digit); ``dataset_id`` ``"digits"``;
        ``version`` ``"{transform version}.{12 hex of SHA-256 of the images and labels}"``.

    Examples
    --------
    >>> ds = load_digits()
    >>> len(ds), ds.image_shape, ds.num_classes, ds.dataset_id
    (1797, (1, 28, 28), 10, 'digits')
    >>> int(ds.classes["images"].min()), int(ds.classes["images"].max())
    (174, 183)
    """
    import torch

    images, labels, version = _load()
    counts = np.bincount(labels, minlength=10)
    classes = pd.DataFrame(
        {"name": [str(d) for d in range(10)], "images": counts},
        index=pd.RangeIndex(10, name="class_id"),
    )
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return ImageDataset(
        images=tensor,
        labels=labels.copy(),
        classes=classes,
        dataset_id=DATASET_ID,
        version=version,
    )
