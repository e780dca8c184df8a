"""Any model as a study backbone: :func:`from_module` and the backbone specs of the CLI.

:func:`from_module` wraps, in one call:

- **learn2learn vision models** (``features`` + ``classifier``: ``OmniglotCNN``, ``CNN4``,
  ``ResNet12``, metaleep's own ``FewShotNet``), also inside ``l2l.algorithms.MAML`` /
  ``MetaSGD`` (whose ``lr`` and ``first_order`` become the backbone's inner-loop settings);
- **torchvision classifiers**: the last ``nn.Linear`` of ``fc`` (ResNet), ``classifier``
  (VGG, DenseNet, MobileNet, EfficientNet, ...), ``heads`` (ViT) or ``head`` (Swin) is the head
  and the rest of the network, unchanged, the embedding;
- **an ``nn.Sequential`` ending with an ``nn.Linear``**: that layer is the head;
- **a bare embedding network** (ProtoNet style, no head);
- **explicit** ``features=`` / ``head=`` modules (or a plain callable as ``features``).

It says what it found (:func:`describe_wrap`, logged at INFO) and refuses what it cannot use,
naming the attribute. The backbone's input is declared, never guessed: ``input_shape`` /
``mean`` / ``std`` when given, else the channels of the model's first convolution (see
:class:`~metaleep.data.transform.InputSpec`).

:func:`load_factory` resolves the CLI's ``FILE.py:CALLABLE`` and ``package.module:CALLABLE``
specs (optionally ``...@WEIGHTS.pt``, loaded with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from metaleep._optional import without_gym_notice
from metaleep.backbones.protocol import (
    ALGORITHMS,
    HEAD_ALGORITHMS,
    StudyBackbone,
    weights_fingerprint,
)
from metaleep.data.transform import InputSpec

if TYPE_CHECKING:
    from metaleep.backbones.checkpoint import Backbone
    from metaleep.data.base import ImageDataset

log = logging.getLogger(__name__)

__all__ = ["Network", "from_module", "load_factory", "source_data_for", "study_backbone"]

_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
"""Where torchvision (and timm) classifiers keep their head, in the order tried."""


class Network(nn.Module):
    """``classifier(features(x))``: the :class:`~metaleep.backbones.protocol.FewShotModel`
    layout around an embedding and an optional linear head (``classifier`` None: embedding)."""

    def __init__(self, features: nn.Module, classifier: nn.Linear | None) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, Z) of images ``x``, or the embeddings when there is no head."""
        out = self.features(x)
        return out if self.classifier is None else self.classifier(out)


class _Callable(nn.Module):
    """A plain function as a (parameter-free) embedding module."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _is_l2l_wrapper(obj: object) -> bool:
    """A learn2learn algorithm wrapper (``MAML``, ``MetaSGD``, ...) around ``.module``."""
    return type(obj).__module__.startswith("learn2learn.algorithms") and isinstance(
        getattr(obj, "module", None), nn.Module
    )


def _unwrap(obj: Any, facts: dict[str, Any], found: list[str], what: str) -> Any:
    """The module inside learn2learn wrappers; their lr / first_order go into ``facts``."""
    while _is_l2l_wrapper(obj):
        found.append(f"{what}: learn2learn {type(obj).__name__} wrapper")
        lr = getattr(obj, "lr", None)
        if isinstance(lr, int | float):
            facts.setdefault("lr", float(lr))
        if isinstance(getattr(obj, "first_order", None), bool):
            facts.setdefault("first_order", bool(obj.first_order))
        obj = obj.module
    return obj


def _last_linear(container: nn.Module) -> tuple[list[str], nn.Linear] | None:
    """Path (names below ``container``) and module of its last ``nn.Linear``, if that is the
    last module with parameters in it (so that dropping it leaves the embedding)."""
    if isinstance(container, nn.Linear):
        return [], container
    last: tuple[list[str], nn.Module] | None = None
    for name, module in container.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)):
            last = (name.split("."), module)
    if last is None or not isinstance(last[1], nn.Linear):
        return None
    return last[0], last[1]


def _without(module: nn.Module, path: Sequence[str]) -> nn.Module:
    """``module`` with the submodule at ``path`` replaced by ``nn.Identity``.

    The other submodules and every parameter are shared with ``module``, which is unchanged
    (each module on the path is a shallow copy with its own child table).
    """
    top = copy.copy(module)
    top._modules = dict(module._modules)
    if len(path) == 1:
        top._modules[path[0]] = nn.Identity()
    else:
        top._modules[path[0]] = _without(module._modules[path[0]], path[1:])  # type: ignore[arg-type]
    return top


def _split_head(module: nn.Module, found: list[str]) -> tuple[nn.Module, nn.Linear | None]:
    """(embedding, head) of ``module`` (see the module docstring for the rules)."""
    is_torchvision = type(module).__module__.startswith("torchvision.")
    features = getattr(module, "features", None)
    classifier = getattr(module, "classifier", None)
    if not is_torchvision and isinstance(features, nn.Module):
        # learn2learn's layout (and metaleep's FewShotNet): forward = classifier(features(x)).
        if classifier is None or isinstance(classifier, nn.Identity):
            found.append("layout: `features`, no head")
            return features, None
        last = _last_linear(classifier) if isinstance(classifier, nn.Module) else None
        if last is None or last[0]:
            raise ValueError(
                f"`module.classifier` must be an nn.Linear (the head over `features`); got "
                f"{type(classifier).__name__!r}. Pass features= and head= explicitly."
            )
        found.append(
            f"layout: `features` + `classifier` nn.Linear({last[1].in_features}, "
            f"{last[1].out_features})"
        )
        return features, last[1]
    for attribute in _HEAD_ATTRIBUTES:
        container = getattr(module, attribute, None)
        if not isinstance(container, nn.Module):
            continue
        located = _last_linear(container)
        if located is None:
            raise ValueError(
                f"`module.{attribute}` must end with an nn.Linear to serve as the head; got "
                f"{type(container).__name__!r}. Pass features= and head= explicitly (head=None "
                "for an embedding network)."
            )
        path, head = located
        where = ".".join([attribute, *path])
        found.append(
            f"head: `{where}` nn.Linear({head.in_features}, {head.out_features}); "
            f"embedding: the rest of {type(module).__name__}"
        )
        return _without(module, [attribute, *path]), head
    if isinstance(module, nn.Sequential) and len(module) > 1 and isinstance(module[-1], nn.Linear):
        head = module[-1]
        found.append(
            f"head: the last layer nn.Linear({head.in_features}, {head.out_features}) "
            "of the nn.Sequential; embedding: the layers before it"
        )
        return module[:-1], head
    found.append(f"no head attribute ({', '.join(_HEAD_ATTRIBUTES)}): an embedding network")
    return module, None


def _first_conv_channels(module: nn.Module) -> int | None:
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return int(sub.in_channels)
    return None


def describe_wrap(backbone: StudyBackbone) -> str:
    """One line: what :func:`from_module` made of a model."""
    head = backbone.head
    return (
        f"{backbone.name}: {backbone.origin}; algorithm {backbone.algorithm}; head "
        f"{'none' if head is None else f'{head.in_features} -> {head.out_features}'}; "
        f"inner {backbone.inner or 'defaults'}; source data "
        f"{backbone.source_id or 'unknown (no prototypes dummy labels)'}"
    )


def from_module(
    module: Any = None,
    *,
    name: str = "model",
    features: Any = None,
    head: Any = None,
    algorithm: str | None = None,
    source_classes: Sequence[int] | np.ndarray | None = None,
    source_data: ImageDataset | None = None,
    inner_lr: float | None = None,
    inner_steps: int | None = None,
    first_order: bool | None = None,
    input_shape: tuple[int, int, int] | None = None,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    fingerprint: str | None = None,
) -> StudyBackbone:
    """Wrap a model for the study (and ``metaleep.score``).

    Parameters
    ----------
    module:
        The model: a learn2learn vision model (optionally inside ``l2l.algorithms.MAML``), a
        torchvision classifier, an embedding network, a metaleep ``Backbone`` or
        ``StudyBackbone``. Omit it to pass ``features=`` (and ``head=``) instead.
    name:
        The ``backbone`` label in tables.
    features, head:
        Explicit embedding (an ``nn.Module`` or a callable images -> (n, d)) and head
        (an ``nn.Linear(d, Z)``, optionally inside ``l2l.algorithms.MAML``, or None).
    algorithm:
        How it was trained (:data:`~metaleep.backbones.protocol.ALGORITHMS`). Default: ``maml``
        (``fomaml`` when first-order) inside a learn2learn MAML wrapper (``anil`` when only the
        head is wrapped), ``supervised`` for a model with a head, ``protonet`` for an embedding.
    source_classes, source_data:
        The data it was trained on and its source class ids there: enable the ``prototypes``
        dummy labels (on ``source_data``, whatever the target data).
    inner_lr, inner_steps, first_order:
        The inner loop it was meta-trained with: the ``maml`` / ``anil`` adaptations use them.
    input_shape, mean, std:
        The input it takes (:class:`~metaleep.data.transform.InputSpec`): a study resizes
        and normalises images to it. Default: the data's size, with the channels of the
        model's first convolution.
    fingerprint:
        Identifies the weights in the study record (default: a hash of the parameters).

    Returns
    -------
    StudyBackbone

    Examples
    --------
    >>> import torchvision
    >>> net = torchvision.models.resnet18(num_classes=5)
    >>> backbone = from_module(net, name="resnet18")
    >>> backbone.algorithm, backbone.head.out_features, backbone.input.channels
    ('supervised', 5, 3)
    >>> backbone.model.features(torch.zeros(2, 3, 32, 32)).shape  # the embedding, fc dropped
    torch.Size([2, 512])
    >>> net.fc.out_features  # the caller's model is unchanged
    5
    >>> from_module(torch.nn.Flatten(), name="flat").algorithm
    'protonet'
    """
    from metaleep.backbones.checkpoint import Backbone

    if isinstance(module, StudyBackbone):
        return module if name == "model" else _renamed(module, name)
    if isinstance(module, Backbone):
        out = study_backbone(module)
        return out if name == "model" else _renamed(out, name)
    facts: dict[str, Any] = {}
    found: list[str] = []
    wrapped_head = False
    if module is not None:
        if features is not None or head is not None:
            raise ValueError(
                "`features` and `head` must not be given with `module`; got both (pass the "
                "module alone, or features= and head= alone)."
            )
        inner = _unwrap(module, facts, found, "module")
        if not isinstance(inner, nn.Module):
            raise TypeError(f"`module` must be a torch.nn.Module; got {type(inner).__name__!r}.")
        origin = f"module {type(inner).__name__}"
        embed, linear = _split_head(inner, found)
    else:
        if features is None:
            raise ValueError("`module` or `features` must be given; got neither.")
        raw_head = _unwrap(head, facts, found, "head") if head is not None else None
        wrapped_head = any(f.startswith("head: learn2learn") for f in found)
        if isinstance(features, nn.Module):
            embed = features
        elif callable(features):
            embed = _Callable(features)
            found.append("features: a plain callable (no parameters: no whole-network adaptation)")
        else:
            raise TypeError(
                f"`features` must be an nn.Module or a callable; got {type(features).__name__!r}."
            )
        if raw_head is not None and not isinstance(raw_head, nn.Linear):
            raise TypeError(
                f"`head` must be an nn.Linear (d -> Z) or None; got {type(raw_head).__name__!r}."
            )
        linear = raw_head
        origin = f"features {type(embed).__name__}" + (
            f" + head nn.Linear({linear.in_features}, {linear.out_features})" if linear else ""
        )
    algorithm = algorithm or _default_algorithm(facts, linear is not None, wrapped_head, module)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"`algorithm` must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}.")
    if algorithm in HEAD_ALGORITHMS and linear is None:
        raise ValueError(
            f"`algorithm` {algorithm!r} needs a meta-learned head (nn.Linear); got a model "
            "without one (pass head=, or algorithm='protonet' for an embedding network)."
        )
    if algorithm == "supervised" and linear is None:
        raise ValueError(
            "`algorithm` 'supervised' needs the source classifier's head (nn.Linear); got a "
            "model without one."
        )
    inner_settings = _inner(facts, inner_lr, inner_steps, first_order, algorithm)
    if input_shape is None and mean is None:
        channels = _first_conv_channels(embed)
        spec = InputSpec(channels=channels)
        if channels is not None:
            found.append(f"input: {channels} channels (first convolution), the data's size")
    else:
        spec = InputSpec(
            shape=input_shape,
            mean=None if mean is None else _floats(mean),
            std=None if std is None else _floats(std),
            channels=None if input_shape is not None else _first_conv_channels(embed),
        )
    network = Network(embed, linear)
    if source_classes is None and source_data is not None:
        raise ValueError(
            "`source_classes` must be given with `source_data` (the class ids it was trained "
            "on); got None."
        )
    if fingerprint is None:
        fingerprint = weights_fingerprint(network)
    backbone = StudyBackbone(
        name=name,
        model=network,
        algorithm=algorithm,
        source_classes=np.zeros(0, dtype=np.int64)
        if source_classes is None
        else np.asarray(source_classes, dtype=np.int64),
        fingerprint=fingerprint,
        inner=inner_settings,
        source_data=source_data,
        input=spec,
        origin=origin,
    )
    log.info("from_module: %s [%s]", describe_wrap(backbone), "; ".join(found))
    return backbone


def _floats(value: Sequence[float] | float) -> tuple[float, ...]:
    return (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)


def _renamed(backbone: StudyBackbone, name: str) -> StudyBackbone:
    from dataclasses import replace

    return replace(backbone, name=name)


def _default_algorithm(
    facts: dict[str, Any], has_head: bool, head_wrapped: bool, module: Any
) -> str:
    if "lr" in facts:  # a learn2learn MAML / MetaSGD wrapper
        if head_wrapped and module is None:
            return "anil"
        return "fomaml" if facts.get("first_order") else "maml"
    return "supervised" if has_head else "protonet"


def _inner(
    facts: dict[str, Any],
    lr: float | None,
    steps: int | None,
    first_order: bool | None,
    algorithm: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if lr is not None or "lr" in facts:
        value = facts["lr"] if lr is None else lr
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"`inner_lr` must be a number > 0; got {value!r}.")
        out["lr"] = float(value)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"`inner_steps` must be an integer >= 0; got {steps!r}.")
        out["steps"] = int(steps)
    if first_order is not None or "first_order" in facts:
        value = facts["first_order"] if first_order is None else first_order
        if not isinstance(value, bool):
            raise TypeError(f"`first_order` must be a bool; got {value!r}.")
        out["first_order"] = value
    if out and algorithm not in HEAD_ALGORITHMS:
        raise ValueError(
            f"`inner_lr`/`inner_steps`/`first_order` must come with a MAML-family algorithm "
            f"({', '.join(HEAD_ALGORITHMS)}); got algorithm {algorithm!r}."
        )
    return out


# --- factories: FILE.py:CALLABLE and package.module:CALLABLE ------------------------------


def _import_callable(spec: str) -> Callable[..., Any]:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ValueError(
            f"`--backbones` factory must look like FILE.py:CALLABLE or package.module:CALLABLE; "
            f"got {spec!r}."
        )
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"`--backbones` factory file must exist; got {target!r}.")
        module_name = f"metaleep_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:  # pragma: no cover - odd files
            raise ValueError(f"`--backbones` factory file must be Python; got {target!r}.")
        module = importlib.util.module_from_spec(loader_spec)
        with without_gym_notice():  # a model file that imports learn2learn
            loader_spec.loader.exec_module(module)
    else:
        try:
            with without_gym_notice():
                module = importlib.import_module(target)
        except ImportError as error:
            raise ValueError(
                f"`--backbones` factory module must be importable; got {target!r} ({error})."
            ) from error
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(
            f"`--backbones` factory must name a callable in {target!r}; got {attr!r} "
            f"({'missing' if fn is None else type(fn).__name__})."
        )
    return fn


def load_factory(spec: str, *, name: str) -> StudyBackbone:
    """The backbone a ``FILE.py:CALLABLE[@WEIGHTS]`` or ``package.module:CALLABLE[@WEIGHTS]``
    spec makes.

    The callable is called without arguments and returns an ``nn.Module`` (wrapped by
    :func:`from_module`) or a ``StudyBackbone`` (e.g. ``from_module(...)`` with the settings
    it needs). ``@WEIGHTS`` is a state dict file loaded with ``torch.load(weights_only=True)``
    into the module before wrapping (a file holding anything but tensors is refused in one
    line; a metaleep export goes to :func:`metaleep.backbones.export.load_wrapped`).
    """
    from metaleep.backbones.checkpoint import MAGIC, load_tensors

    target, _, weights = spec.partition("@")
    path = Path(weights).expanduser()
    if weights:
        if not path.is_file():
            raise FileNotFoundError(f"`--backbones` weights file must exist; got {weights!r}.")
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) == MAGIC:
                raise ValueError(
                    f"`--backbones` weights must be a state dict file; got the metaleep "
                    f"checkpoint {weights!r} (load an export with "
                    f"metaleep.backbones.load_wrapped({weights!r}, factory={target!r}))."
                )
    fn = _import_callable(target)
    made = fn()
    if weights:
        try:
            state = load_tensors(os.fspath(path))
        except ValueError as error:
            raise ValueError(
                f"`--backbones` weights must be a state dict of tensors; got {weights!r}: {error}."
            ) from None
        if (
            isinstance(state, dict)
            and "state_dict" in state
            and isinstance(state["state_dict"], dict)
        ):
            state = state["state_dict"]
        module = made.model if isinstance(made, StudyBackbone) else made
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"`--backbones` factory must return an nn.Module or a StudyBackbone to load "
                f"weights into; got {type(made).__name__!r} from {target!r}."
            )
        try:
            # A wrapped backbone takes a state dict of its network (Network's keys).
            module.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(
                f"`--backbones` weights {weights!r} must fit the model {target!r} returns; "
                f"got {str(error).splitlines()[0]}"
            ) from error
    from dataclasses import replace

    if isinstance(made, StudyBackbone):
        fingerprint = weights_fingerprint(made.model) if weights else made.fingerprint
        backbone = replace(made, name=name, fingerprint=fingerprint)
    elif isinstance(made, nn.Module):
        backbone = from_module(made, name=name)  # fingerprints the weights as loaded
    else:
        raise TypeError(
            f"`--backbones` factory must return an nn.Module or a StudyBackbone; got "
            f"{type(made).__name__!r} from {target!r}."
        )
    return replace(backbone, origin=f"factory {spec}")


def source_data_for(fingerprint: str, target: ImageDataset | None = None) -> ImageDataset | None:
    """The data set with ``fingerprint`` when it can be had without asking: ``target`` itself,
    or the embedded glyph / digits data; None otherwise."""
    if target is not None and target.fingerprint == fingerprint:
        return target
    name = fingerprint.partition("@")[0]
    if name in ("glyphs", "digits"):
        from metaleep.data.spec import load_dataset

        try:
            data = load_dataset(name)
        except ValueError:  # a built-in this version does not know
            return None
        return data if data.fingerprint == fingerprint else None
    return None


def study_backbone(
    backbone: Backbone, *, source_data: ImageDataset | None = None, origin: str = ""
) -> StudyBackbone:
    """The study's view of a trained :class:`~metaleep.backbones.checkpoint.Backbone`.

    MAML-family backbones carry the inner loop they were meta-trained with
    (:attr:`~metaleep.backbones.config.TrainConfig.inner_loop`: steps, learning rate, first or
    second order), and the study's ``maml`` (``anil`` for ANIL backbones) adapts them that way.
    ``source_data``: the data set it was trained on (found by fingerprint when not given: the
    embedded data sets are).
    """
    inner = dict(backbone.config.inner_loop)
    if source_data is None or source_data.fingerprint != backbone.dataset_fingerprint:
        source_data = source_data_for(backbone.dataset_fingerprint)
    if source_data is None:
        log.info(
            "backbone %s: its source data %s is not at hand, so it offers no prototypes "
            "dummy labels",
            backbone.name,
            backbone.dataset_fingerprint,
        )
    return StudyBackbone(
        name=backbone.name,
        model=backbone.model,
        algorithm=backbone.algorithm,
        source_classes=np.asarray(backbone.source_classes, dtype=np.int64),
        fingerprint=weights_fingerprint(backbone.model),
        inner=inner,
        source_data=source_data,
        input=InputSpec(shape=backbone.in_shape),
        origin=origin or (f"checkpoint {backbone.path}" if backbone.path else "trained"),
    )
