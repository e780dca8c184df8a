"""Backbone outputs computed once per distinct image: embeddings and dummy-label distributions.

A suite's episodes share images. :func:`compute_outputs` runs the backbone once, in batched
no-grad passes in eval mode, over the union of the images the suite touches; episodes then
gather their rows. Dummy-label modes (what plays θ(x) in LEEP):

``head``
    softmax of the meta-learned N-way head before adaptation (MAML, ANIL): ``classifier(f(x))``.
``source``
    softmax of the supervised source classifier over its Z source classes.
``prototypes``
    ``softmax(-‖f(x) − μ_z‖² / T)`` over the prototypes μ_z (mean embeddings) of the source
    (background) classes (:func:`metaleep.adapt.prototypes.prototype_logits`, in float64):
    works for any embedding backbone, e.g. ProtoNet. ``T`` is the
    temperature; ``T = None`` takes the median squared distance to the nearest prototype over
    the source images, which makes the distribution scale-free.

A backbone that offers none of the requested modes on an episode (an embedding network
without source data: a ProtoNet, learn2learn's ``CNN4Backbone``) gets rows of dummy mode
``none`` (:data:`NO_DUMMY`): every feature metric (LogME, H-score, GBC, TransRate, SFDA,
N-LEEP, the centroid baseline, ...), and NaN for the metrics that need a label distribution
(LEEP, NCE), with the reason (:func:`no_dummy_reason`) in ``study.json`` and the report. Feature
metrics do not depend on the dummy mode: a backbone with dummy modes has the same feature
values in each of its rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset

log = logging.getLogger(__name__)

DummyMode = Literal["head", "source", "prototypes"]
DUMMY_MODES: tuple[DummyMode, ...] = ("head", "source", "prototypes")

NO_DUMMY = "none"
"""The ``dummy`` of rows of a backbone without a requested dummy-label mode: feature metrics
only (see the module docstring)."""


def needs_labels(metric: str) -> bool:
    """Whether ``metric`` (a registry name, or its ``_norm`` form) reads a label distribution:
    its values depend on the dummy mode, and rows of dummy ``none`` have none.

    >>> needs_labels("leep"), needs_labels("leep_norm"), needs_labels("logme")
    (True, True, False)
    """
    from metaleep.metrics.registry import METRICS

    spec = METRICS.get(metric.removesuffix("_norm"))
    return spec is not None and spec.input_kind == "probs"


def dummy_modes(backbone: StudyBackbone, requested: Sequence[str], ways: int) -> list[str]:
    """The dummy modes of ``backbone``'s rows on ``ways``-way episodes: the requested modes it
    offers, or ``[NO_DUMMY]`` when it offers none of them."""
    modes = [m for m in requested if backbone.offers_dummy(m, ways)]
    return modes or [NO_DUMMY]


def no_dummy_reasons(
    backbones: Sequence[StudyBackbone], requested: Sequence[str], ways: Sequence[int]
) -> dict[str, str]:
    """``{backbone: reason}`` for the backbones that get rows of dummy ``none`` on some of
    ``ways`` (the reason per number of ways when it differs)."""
    out = {}
    for backbone in backbones:
        reasons = {
            w: no_dummy_reason(backbone, requested, w)
            for w in sorted(set(ways))
            if dummy_modes(backbone, requested, w) == [NO_DUMMY]
        }
        if len(set(reasons.values())) == 1 and len(reasons) == len(set(ways)):
            out[backbone.name] = next(iter(reasons.values()))
        elif reasons:
            out[backbone.name] = "; ".join(f"{w}-way: {r}" for w, r in reasons.items())
    return out


def no_dummy_reason(backbone: StudyBackbone, requested: Sequence[str], ways: int) -> str:
    """Why ``backbone`` has no label distribution on ``ways``-way episodes, in words.

    Examples
    --------
    >>> import torch
    >>> from metaleep.backbones.wrap import from_module
    >>> proto = from_module(torch.nn.Flatten(), name="proto")
    >>> no_dummy_reason(proto, DUMMY_MODES, 5)
    'no label distribution: no 5-way head, no source classifier, no source data (--source-data)'
    """
    offered = backbone.dummies(ways)
    if offered:
        return (
            f"its dummy labels ({', '.join(offered)}) are not among the requested "
            f"({', '.join(requested)})"
        )
    return (
        f"no label distribution: no {ways}-way head, no source classifier, no source data "
        "(--source-data)"
    )


@dataclass(eq=False)
class BackboneOutputs:
    """Per-image outputs of one backbone over a set of image indices.

    Attributes
    ----------
    images:
        int64 (U,): the data set's image indices, sorted; row r of every array is image
        ``images[r]``.
    features:
        float64 (U, d) embeddings.
    logits:
        Dummy-label logits per mode, each float64 (U, Z_mode); only modes the backbone offers.
    seconds:
        Wall time of the forward passes.
    references:
        How many image references (with repeats: an image in several episodes counts once per
        episode) the outputs serve; ``len(images)`` when unknown.
    """

    images: np.ndarray
    features: np.ndarray
    logits: dict[str, np.ndarray]
    seconds: float
    references: int | None = None

    @property
    def reuse(self) -> float:
        """Image references per distinct image (1.0: no image is shared by two episodes).

        Examples
        --------
        >>> import numpy as np
        >>> out = BackboneOutputs(np.arange(4), np.zeros((4, 2)), {}, 0.0, references=10)
        >>> out.reuse
        2.5
        """
        references = len(self.images) if self.references is None else self.references
        return references / max(len(self.images), 1)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """Row numbers of data set image ``indices`` (all must be in ``images``)."""
        position = np.searchsorted(self.images, indices)
        if np.any(position >= len(self.images)) or np.any(
            self.images[np.minimum(position, len(self.images) - 1)] != indices
        ):
            raise KeyError("image indices outside the computed set were requested")
        return position

    def _gather(self, array: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Rows of ``array`` for image ``indices``, shaped (*indices.shape, -1)."""
        return array[self.rows(np.asarray(indices).reshape(-1))].reshape(*np.shape(indices), -1)

    def gather_features(self, indices: np.ndarray) -> np.ndarray:
        """Features of image ``indices``; works for any leading shape, e.g. (E, n)."""
        return self._gather(self.features, indices)

    def gather_logits(self, mode: str, indices: np.ndarray) -> np.ndarray:
        """Dummy-label logits of image ``indices``, shape (*indices.shape, Z)."""
        return self._gather(self.logits[mode], indices)


def parameter_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating dtype of ``model``'s parameters (float32 for a model without any)."""
    import torch

    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


@contextlib.contextmanager
def full_float32(device: str | torch.device) -> Iterator[None]:
    """On a CUDA ``device``, TF32 off in convolutions and matrix products for the duration.

    cuDNN convolutions use TF32 (10-bit mantissa) by default; their results then depend on the
    batch an image is in, which would make a study's features, scores and accuracies depend on
    how images were batched (a GPU study against a per-episode loop: dummy-label LEEP 5e-4
    apart, a third of the accuracies different). With TF32 off they are float32 products again.
    Elsewhere, and for other devices, this does nothing. The previous settings are restored.
    """
    import torch

    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _part(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """``model.features`` / ``model.classifier``, with a clear error when it is missing."""
    import torch

    part = getattr(model, name, None)
    if not isinstance(part, torch.nn.Module):
        raise TypeError(
            f"`model` must have a `{name}` submodule (features: images -> (n, d) embeddings, "
            f"classifier: nn.Linear); got {type(model).__name__!r} without one."
        )
    return part


def embed(
    model: torch.nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    *,
    batch_size: int | None = None,
    device: str = "cpu",
) -> torch.Tensor:
    """``model.features`` of images ``indices`` (eval mode, no grad), in the model's dtype.

    ``batch_size`` images per forward pass; None picks 1024 on a GPU, and on a CPU 256 with one
    torch thread, 512 with more. On a CPU moderate batches are fastest (the activations stay
    in cache: conv4-small on 28x28 glyphs took 24 us per image in batches of 256 or 512 and
    46 us in batches of 1024 with one thread; 14.8, 13.6 and 34 us with two threads), and in
    eval mode the features do not depend on the batch size (checked bit for bit for
    contiguous float32 convolutions).
    """
    import torch

    if batch_size is None:
        if torch.device(device).type == "cpu":
            batch_size = 256 if torch.get_num_threads() == 1 else 512
        else:
            batch_size = 1024
    chunks = []
    dtype = parameter_dtype(model)
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            x = dataset.batch(indices[start : start + batch_size]).to(device, dtype)
            chunks.append(_part(model, "features")(x))
    if not chunks:
        return torch.empty(0, 0, device=device)
    return torch.cat(chunks)


_DISTANCE_ROWS = 1024
"""Rows per block of the nearest-prototype distances (1024 x 762 float64: 6 MB)."""


class SourcePrototypes(NamedTuple):
    """The source classes' prototypes and the scale of their distances."""

    prototypes: torch.Tensor
    """float64 (Z, d): the mean embedding of each source class."""
    scale: float
    """The median squared distance of the source images to their nearest prototype: the
    temperature of the ``prototypes`` dummy labels unless one is given."""


def source_prototypes(
    model: torch.nn.Module,
    dataset: ImageDataset,
    classes: np.ndarray,
    *,
    device: str = "cpu",
    per_class: int | None = None,
) -> SourcePrototypes:
    """Mean embedding of each source class, and the median squared nearest-prototype distance.

    Parameters
    ----------
    model:
        The backbone's module (``features`` is used, in its current mode, without grad).
    dataset:
        The source data, brought to the model's input.
    classes:
        The source class ids (of ``dataset``), Z of them: the prototypes' order.
    device:
        Where the forward passes run.
    per_class:
        At most this many images per class (the first by index), to bound the cost; None: all.

    Returns
    -------
    SourcePrototypes
        ``(prototypes (Z, d) float64, scale)``.
    """
    import torch

    index = dataset.labels_to_indices
    chosen = [index[int(c)][:per_class] if per_class else index[int(c)] for c in classes]
    owner = np.repeat(np.arange(len(classes)), [len(c) for c in chosen])
    features = embed(model, dataset, np.concatenate(chosen), device=device).double()
    owner_t = torch.as_tensor(owner, device=features.device)
    sums = torch.zeros(
        len(classes), features.shape[1], dtype=features.dtype, device=features.device
    )
    sums.index_add_(0, owner_t, features)
    counts = torch.bincount(owner_t, minlength=len(classes)).to(features.dtype)
    prototypes = sums / counts[:, None]
    # Distance to the nearest prototype (min, then square), in blocks of rows: the same values
    # as one cdist over all rows, 3x faster on the CPU (a block's distances stay in cache).
    nearest = torch.cat(
        [
            torch.cdist(features[i : i + _DISTANCE_ROWS], prototypes).min(dim=1).values
            for i in range(0, len(features), _DISTANCE_ROWS)
        ]
    ).square()
    scale = float(nearest.median().clamp_min(1e-12))
    return SourcePrototypes(prototypes, scale)


def compute_outputs(
    model: torch.nn.Module,
    dataset: ImageDataset,
    images: np.ndarray,
    *,
    modes: tuple[str, ...],
    prototypes: torch.Tensor | None = None,
    temperature: float = 1.0,
    device: str = "cpu",
    references: int | None = None,
) -> BackboneOutputs:
    """Features and dummy-label logits of each distinct image of ``images``, in one pass.

    ``modes`` lists the dummy-label modes to compute: ``head`` and ``source`` both read
    ``model.classifier``; ``prototypes`` needs ``prototypes`` (Z, d). ``images`` may hold
    repeats (e.g. every episode's support and query indices, concatenated): each distinct image
    is computed once, and the number of references is recorded (``references``, ``reuse``) and
    logged. ``references`` overrides that count (when ``images`` is already unique).
    """
    import time

    import torch

    from metaleep.adapt.prototypes import prototype_logits

    start = time.perf_counter()
    referenced = np.asarray(images, dtype=np.int64).reshape(-1)
    images = np.unique(referenced)
    if references is None:
        references = len(referenced)
    model = model.to(device).eval()
    features = embed(model, dataset, images, device=device)
    logits: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for mode in modes:
            if mode in ("head", "source"):
                logits[mode] = _part(model, "classifier")(features).double().cpu().numpy()
            elif mode == "prototypes":
                if prototypes is None:
                    raise ValueError("`prototypes` must be given for dummy mode 'prototypes'.")
                out = prototype_logits(
                    features.double(), prototypes.to(device).double(), temperature=temperature
                )
                logits[mode] = out.cpu().numpy()
            else:
                raise ValueError(
                    f"`modes` must hold names from {', '.join(DUMMY_MODES)}; got {mode!r}."
                )
    outputs = BackboneOutputs(
        images=images,
        features=features.double().cpu().numpy(),
        logits=logits,
        seconds=time.perf_counter() - start,
        references=int(references),
    )
    log.info(
        "backbone outputs: %d distinct images for %d image references (%.1fx reuse), %.2f s",
        len(images),
        outputs.references,
        outputs.reuse,
        outputs.seconds,
    )
    return outputs
