"""What the study needs of a model: the model protocol and the backbone the study runs.

Every model reaches the study as a :class:`StudyBackbone`: a module of the
:class:`FewShotModel` layout (an embedding ``features``: images -> (n, d), and an optional
linear ``head``-as-``classifier``: (n, d) -> logits over Z labels), plus what is known of how it
was meta-trained. :func:`metaleep.backbones.from_module` builds one from a learn2learn model, a
torchvision classifier, a bare embedding network or explicit ``features=``/``head=`` modules;
the default backbones and ``metaleep train`` checkpoints become one through
:func:`metaleep.backbones.wrap.study_backbone`. Dummy labels, every adaptation, training and
evaluation read a model only through this layout.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from metaleep.data.transform import InputSpec, view

if TYPE_CHECKING:
    import torch
    from torch import nn

    from metaleep.data.base import ImageDataset

__all__ = [
    "ALGORITHMS",
    "HEAD_ALGORITHMS",
    "FewShotModel",
    "StudyBackbone",
    "weights_fingerprint",
]

ALGORITHMS = ("maml", "fomaml", "anil", "protonet", "supervised")
"""How a backbone can have been (meta-)trained; it decides the dummy labels and adaptations."""

HEAD_ALGORITHMS = ("maml", "fomaml", "anil")
"""Algorithms whose backbone carries a meta-learned N-way head."""


@runtime_checkable
class FewShotModel(Protocol):
    """The module layout the study reads: ``classifier(features(x))``.

    ``features`` maps images (n, C, H, W) to embeddings (n, d); ``classifier`` is an
    ``nn.Linear(d, Z)`` (a meta-learned N-way head, or a source classifier over Z labels) or
    ``None`` for an embedding network (ProtoNet). metaleep's ``FewShotNet`` and learn2learn's
    vision models have it; :func:`~metaleep.backbones.from_module` gives it to anything else.
    """

    features: nn.Module
    classifier: nn.Module | None


@dataclass(eq=False)
class StudyBackbone:
    """A backbone as the study sees it.

    Attributes
    ----------
    name:
        Label in the table (``backbone`` column).
    model:
        A :class:`FewShotModel`: ``features`` (images -> (n, d)) and ``classifier``
        (``nn.Linear``, or None / an identity for an embedding network).
    algorithm:
        How it was trained: ``maml``, ``fomaml``, ``anil``, ``protonet`` or ``supervised``
        (:data:`ALGORITHMS`). MAML-family backbones offer the ``head`` dummy labels and the
        ``maml``/``anil`` adaptations; ``supervised`` offers ``source`` dummy labels (its head's
        softmax over its Z source labels); every backbone offers ``prototypes`` when its source
        data are known.
    source_classes:
        Class ids (of :attr:`source_data`) of the source classes it was trained on: the Z labels
        of a supervised classifier, and the classes whose prototypes the ``prototypes`` mode
        uses. Empty when unknown.
    fingerprint:
        Identifies the weights (e.g. a checkpoint hash); recorded in the study configuration.
    inner:
        Inner-loop settings the backbone was meta-trained with (keys ``steps``, ``lr``,
        ``first_order``, e.g. ``{"steps": 1, "lr": 0.4, "first_order": False}``); the
        adaptation that repeats its training uses them (``maml`` for MAML backbones, ``anil``
        for ANIL ones; :func:`~metaleep.adapt.registry.backbone_config`). Pass other values
        to adapt otherwise.
    source_data:
        The data set :attr:`source_classes` index (the data it was trained on), when known:
        the ``prototypes`` dummy labels are computed on it, whatever the target data are.
    input:
        The input the model takes (:class:`~metaleep.data.transform.InputSpec`); a study brings
        its images there by the declared transform.
    origin:
        Where it came from, in words (``default``, ``checkpoint PATH``, ``factory SPEC``,
        ``module CLASS``); recorded in the study.
    """

    name: str
    model: torch.nn.Module
    algorithm: str
    source_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fingerprint: str = ""
    inner: dict[str, Any] = field(default_factory=dict)
    source_data: ImageDataset | None = None
    input: InputSpec = field(default_factory=InputSpec)
    origin: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string; got {self.name!r}.")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"`algorithm` must be one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}."
            )
        self.source_classes = np.asarray(self.source_classes, dtype=np.int64).reshape(-1)

    @property
    def head(self) -> torch.nn.Linear | None:
        """The linear head (``model.classifier``), or None for an embedding network."""
        from torch import nn

        head = getattr(self.model, "classifier", None)
        return head if isinstance(head, nn.Linear) else None

    @property
    def head_ways(self) -> int | None:
        """N of the meta-learned head, or None when the backbone has none."""
        head = self.head
        if self.algorithm not in HEAD_ALGORITHMS or head is None:
            return None
        return int(head.out_features)

    @property
    def source_id(self) -> str | None:
        """Fingerprint of :attr:`source_data` (None when unknown)."""
        return None if self.source_data is None else self.source_data.fingerprint

    def cross_domain(self, target: ImageDataset) -> bool:
        """Whether ``target`` is another data set than the one it was trained on."""
        return self.source_data is not None and self.source_id != target.fingerprint

    def view(self, dataset: ImageDataset) -> ImageDataset:
        """``dataset`` with its images brought to :attr:`input` (itself when they fit)."""
        return view(dataset, self.input)

    def on(self, device: str) -> StudyBackbone:
        """This backbone with its model on ``device``: itself when the model is already there,
        else a copy with a moved copy of the model (the caller's model stays where it is)."""
        import torch

        target = torch.device(device)
        param = next(self.model.parameters(), None)
        if param is None or (
            param.device.type == target.type
            and (target.index is None or param.device.index == target.index)
        ):
            return self
        return replace(self, model=copy.deepcopy(self.model).to(target))

    def offers_dummy(self, mode: str, ways: int) -> bool:
        """Whether dummy-label ``mode`` exists for an episode of ``ways`` classes."""
        if mode == "head":
            return self.head_ways == ways
        if mode == "source":
            return self.algorithm == "supervised" and self.head is not None
        if mode == "prototypes":
            return self.source_data is not None and self.source_classes.size > 0
        return False

    def embedding_dim(self, dataset: ImageDataset | None = None) -> int:
        """d, the width of the embedding ``features`` gives.

        The linear head's input width when the model has one; else measured with one forward
        pass (eval mode, no grad; the modes are restored) of the first image of ``dataset``
        brought to :attr:`input`, or of a zero image of the declared ``input.shape``.

        Examples
        --------
        >>> import torch
        >>> from metaleep.backbones import from_module
        >>> embed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 7))
        >>> from_module(features=embed, name="e", input_shape=(1, 4, 4)).embedding_dim()
        7
        """
        head = self.head
        if head is not None:
            return int(head.in_features)
        import torch

        if dataset is not None:
            image = self.view(dataset).batch(np.zeros(1, dtype=np.int64))
        elif self.input.shape is not None:
            image = torch.zeros(1, *self.input.shape)
        else:
            raise ValueError(
                f"`dataset` must be given to measure the embedding of backbone {self.name!r} "
                f"(it has no linear head and no declared input shape); got None."
            )
        param = next(self.model.parameters(), None)
        if param is not None:
            image = image.to(param.device, param.dtype)
        modes = {name: m.training for name, m in self.model.named_modules()}
        self.model.eval()
        try:
            with torch.no_grad():
                embedding = self.model.features(image)  # type: ignore[operator]
        finally:
            for name, m in self.model.named_modules():
                m.training = modes[name]
        return int(embedding.shape[-1])

    def with_head(self, ways: int, dataset: ImageDataset | None = None) -> StudyBackbone:
        """This backbone as whole-network adaptation starts from on ``ways``-way episodes.

        The one rule for the head a fine-tuned network starts from: its own meta-learned head
        when that has ``ways`` outputs (:attr:`head_ways`); otherwise (a supervised source
        classifier over Z labels, even when Z equals ``ways``; an embedding network; a
        meta-learned head of another N) a fresh zero ``Linear(d, ways)``
        (:func:`metaleep.adapt.network.fresh_head`, d = :meth:`embedding_dim`, measured on
        ``dataset`` when the model has no linear head). The runner adapts through it and the
        settings grid fine-tunes it.

        Returns
        -------
        StudyBackbone
            Itself when its head fits; else a copy with a deep-copied model whose
            ``classifier`` is the zero head (in the model's dtype and on its device), its
            fingerprint suffixed ``+zero-head-N`` and its origin saying so. The model of this
            backbone is not changed.

        Examples
        --------
        >>> import torch
        >>> from metaleep.backbones import from_module
        >>> embed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 7))
        >>> backbone = from_module(features=embed, name="e", input_shape=(1, 4, 4))
        >>> head = backbone.with_head(5).head
        >>> tuple(head.weight.shape), head.weight.abs().sum().item(), backbone.head is None
        ((5, 7), 0.0, True)
        """
        if self.head_ways == ways:
            return self
        from metaleep.adapt.network import fresh_head
        from metaleep.adapt.spec import module_dtype_device

        dim = self.embedding_dim(dataset)
        model = copy.deepcopy(self.model)
        dtype, device = module_dtype_device(model)
        model.classifier = fresh_head(dim, ways, init="zero", dtype=dtype, device=device)
        return replace(
            self,
            model=model,
            fingerprint=f"{self.fingerprint}+zero-head-{ways}",
            origin=f"{self.origin}; fine-tuned from a fresh zero {ways}-way head".lstrip("; "),
        )

    def offers_adaptation(self, name: str, ways: int) -> bool:
        """Whether adaptation ``name`` applies to this backbone on a ``ways``-way episode."""
        if name == "maml":
            return self.algorithm in ("maml", "fomaml") and self.head_ways == ways
        if name == "anil":
            return self.head_ways == ways
        return True

    def dummies(self, ways: int) -> list[str]:
        """The dummy-label modes it offers on ``ways``-way episodes."""
        return [m for m in ("head", "source", "prototypes") if self.offers_dummy(m, ways)]

    def describe(self, target: ImageDataset | None = None) -> dict[str, Any]:
        """What the study records of it (``study.json``, the report)."""
        head = self.head
        info: dict[str, Any] = {
            "name": self.name,
            "algorithm": self.algorithm,
            "origin": self.origin,
            "fingerprint": self.fingerprint,
            "head": None if head is None else int(head.out_features),
            "inner": dict(self.inner),
            "source_data": self.source_id,
            "source_classes": int(self.source_classes.size),
            "input": self.input.to_dict(),
        }
        if target is not None:
            info["target_data"] = target.fingerprint
            info["cross_domain"] = self.cross_domain(target)
            transform = self.view(target)
            info["transform"] = (
                transform.transform.describe() if transform is not target else "none"  # type: ignore[attr-defined]
            )
        return info


def weights_fingerprint(model: Any) -> str:
    """Short SHA-256 of a model's parameters and buffers (names, shapes and values).

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> weights_fingerprint(a) == weights_fingerprint(b)
    True
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
