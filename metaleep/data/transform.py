"""Bringing a data set's images to what a backbone takes: size, channels, normalisation.

A backbone declares the input it expects (:class:`InputSpec`: ``(C, H, W)`` and optionally a
per-channel mean and standard deviation). :func:`input_transform` turns that declaration and a
data set's image shape into one :class:`ImageTransform` with fixed, documented rules:

- **size**: bilinear resampling with antialiasing (``torch.nn.functional.interpolate``) to
  ``(H, W)``;
- **channels**: 1 -> C copies the grey channel; 3 -> 1 takes the ITU-R BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B``; any other change is refused;
- **normalisation**: ``(x - mean) / std`` per channel, after the two above.

Images reach the transform as float32 in [0, 1] (what :meth:`ImageDataset.batch` returns). A
backbone that declares nothing gets the images as they are; a shape it then cannot take is
found by the study's probe before any work (see :func:`metaleep.study.checks.check_study`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from metaleep.data.base import ImageDataset

Shape = tuple[int, int, int]

LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of R, G, B for a grey image."""


def _shape(value: Any, name: str) -> Shape:
    items = tuple(value) if isinstance(value, Sequence) else None
    if (
        items is None
        or len(items) != 3
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items)
        or min(items) < 1
    ):
        raise ValueError(
            f"`{name}` must be (channels, height, width) of positive integers; got {value!r}."
        )
    return (int(items[0]), int(items[1]), int(items[2]))


def _per_channel(value: Any, name: str, channels: int, positive: bool) -> tuple[float, ...]:
    items = (value,) if isinstance(value, int | float) else tuple(value)
    if len(items) == 1:
        items = items * channels
    ok = len(items) == channels and all(
        isinstance(v, int | float | np.floating) and math.isfinite(v) for v in items
    )
    if ok and positive:
        ok = all(v > 0 for v in items)
    if not ok:
        expected = "positive finite numbers" if positive else "finite numbers"
        raise ValueError(f"`{name}` must be one or {channels} {expected}; got {value!r}.")
    return tuple(float(v) for v in items)


@dataclass(frozen=True)
class InputSpec:
    """The input a backbone takes.

    Parameters
    ----------
    shape:
        ``(C, H, W)`` of the images the model takes; ``None``: images as the data set has them.
    channels:
        Without ``shape``: only the number of channels the model takes (the size stays the
        data's); what :func:`~metaleep.backbones.from_module` reads from a model's first
        convolution.
    mean, std:
        Per-channel normalisation applied after resizing (one number or C numbers); ``None``:
        images stay in [0, 1].

    Examples
    --------
    >>> InputSpec((3, 224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)).shape
    (3, 224, 224)
    >>> InputSpec((1, 28, 28), mean=0.5, std=0.0)
    Traceback (most recent call last):
    ...
    ValueError: `std` must be one or 1 positive finite numbers; got 0.0.
    """

    shape: Shape | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.shape is not None:
            object.__setattr__(self, "shape", _shape(self.shape, "input_shape"))
            if self.channels is not None and self.channels != self.shape[0]:
                raise ValueError(
                    f"`channels` must equal input_shape's {self.shape[0]} channels; "
                    f"got {self.channels!r}."
                )
            object.__setattr__(self, "channels", self.shape[0])
        elif self.channels is not None and (
            isinstance(self.channels, bool)
            or not isinstance(self.channels, int)
            or self.channels < 1
        ):
            raise ValueError(f"`channels` must be a positive integer; got {self.channels!r}.")
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                f"`mean` and `std` must be given together; got mean={self.mean!r}, "
                f"std={self.std!r}."
            )
        if self.mean is not None and self.std is not None:
            channels = self.channels or len(
                (self.mean,) if isinstance(self.mean, int | float) else tuple(self.mean)
            )
            object.__setattr__(self, "mean", _per_channel(self.mean, "mean", channels, False))
            object.__setattr__(self, "std", _per_channel(self.std, "std", channels, True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded in study.json and checkpoints)."""
        return {
            "shape": None if self.shape is None else list(self.shape),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "channels": self.channels,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> InputSpec:
        """Inverse of :meth:`to_dict` (``None`` gives the empty declaration)."""
        data = data or {}
        shape = data.get("shape")
        mean, std = data.get("mean"), data.get("std")
        return cls(
            None if shape is None else _shape(shape, "input_shape"),
            None if mean is None else tuple(mean),
            None if std is None else tuple(std),
            data.get("channels"),
        )


@dataclass(frozen=True)
class ImageTransform:
    """Images ``(k, C_in, H_in, W_in)`` in [0, 1] -> what a backbone takes.

    Built by :func:`input_transform`; ``describe()`` says what it does in words.

    Examples
    --------
    >>> import torch
    >>> t = input_transform((1, 8, 8), InputSpec((3, 16, 16)))
    >>> t(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 3, 16, 16])
    >>> t.describe()
    'resize 8x8 -> 16x16 (bilinear, antialias); grey -> 3 channels (copies)'
    """

    source: Shape
    target: Shape
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def describe(self) -> str:
        """What the transform does, in words."""
        steps = []
        (c0, h0, w0), (c1, h1, w1) = self.source, self.target
        if (h0, w0) != (h1, w1):
            steps.append(f"resize {h0}x{w0} -> {h1}x{w1} (bilinear, antialias)")
        if c0 != c1:
            steps.append(
                f"grey -> {c1} channels (copies)" if c0 == 1 else "RGB -> grey (BT.601 luma)"
            )
        if self.mean is not None:
            steps.append(f"normalise (mean {list(self.mean)}, std {list(self.std or ())})")
        return "; ".join(steps) or "none"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        import torch
        from torch.nn import functional

        (c0, h0, w0), (c1, h1, w1) = self.source, self.target
        x = images
        if (h0, w0) != (h1, w1):
            x = functional.interpolate(
                x, size=(h1, w1), mode="bilinear", antialias=True, align_corners=False
            )
        if c0 != c1:
            if c0 == 1:
                x = x.expand(-1, c1, -1, -1).contiguous()
            else:
                weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                x = (x * weights).sum(dim=1, keepdim=True)
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x


def input_transform(source: Shape, spec: InputSpec) -> ImageTransform | None:
    """The transform from images of shape ``source`` to ``spec``; None when nothing changes.

    Raises
    ------
    ValueError
        When the channels cannot be converted (only 1 -> C and 3 -> 1 are).

    Examples
    --------
    >>> input_transform((1, 28, 28), InputSpec()) is None
    True
    >>> input_transform((2, 28, 28), InputSpec((3, 28, 28)))
    Traceback (most recent call last):
    ...
    ValueError: `input_shape` must have the data's 2 channels, or convert 1 -> C or 3 -> 1; ...
    """
    target = spec.shape or (spec.channels or source[0], source[1], source[2])
    if target[0] != source[0] and not (source[0] == 1 or (source[0] == 3 and target[0] == 1)):
        raise ValueError(
            f"`input_shape` must have the data's {source[0]} channels, or convert 1 -> C or "
            f"3 -> 1; got {target!r} for images of shape {source!r}."
        )
    if target == source and spec.mean is None:
        return None
    return ImageTransform(source, target, spec.mean, spec.std)


class TransformedDataset:
    """A view of an :class:`~metaleep.data.base.ImageDataset` whose images pass a transform.

    Everything but the images (labels, classes, fingerprint, ...) is the data set's own;
    :meth:`batch` and indexing return transformed images, :attr:`image_shape` their shape.
    """

    def __init__(self, dataset: ImageDataset, transform: ImageTransform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image.unsqueeze(0))[0], label

    def batch(self, indices: np.ndarray | list[int]) -> torch.Tensor:
        """Images ``indices``, transformed, shape (k, *target)."""
        return self.transform(self.dataset.batch(indices))

    @property
    def image_shape(self) -> Shape:
        """(C, H, W) after the transform."""
        return self.transform.target


def view(dataset: ImageDataset, spec: InputSpec) -> ImageDataset:
    """``dataset`` as a backbone declaring ``spec`` takes it (itself when nothing changes)."""
    transform = input_transform(dataset.image_shape, spec)
    if transform is None:
        return dataset
    return TransformedDataset(dataset, transform)  # type: ignore[return-value]
