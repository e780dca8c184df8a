"""Backbone architectures: a feature extractor ``features`` and a linear ``classifier``.

Every network :func:`build_backbone` returns is a :class:`FewShotNet`, the module layout that
learn2learn's vision models share (``forward(x) = classifier(features(x))``):

- ``features``: images (n, C, H, W) -> embeddings (n, d);
- ``classifier``: ``nn.Linear(d, out_features)``. For MAML/ANIL an N-way head (N = ways), for
  the supervised source model a Z-way head over the source classes; for ProtoNet an untrained
  N-way head whose weights are all zero (uniform output): only ``features`` is meaningful
  there (see :attr:`metaleep.backbones.checkpoint.Backbone.head`).

Architectures (``arch`` names):

``"conv4-small"``
    4 blocks (3x3 stride-2 conv with 32 channels, BatchNorm, ReLU) and a global mean: learn2learn's
    ``ConvBase`` (as in ``OmniglotCNN``) at half its width, d = 32. Any image size; the fast
    default. Built without importing learn2learn (same layers and initialisation).
``"conv<L>-<H>"``
    The same with L blocks of H channels, e.g. ``"conv3-32"``, ``"conv2-8"`` (tiny, for tests).
``"omniglot-cnn"``
    learn2learn's ``OmniglotCNN`` (Finn et al., 2017): 4 blocks of 64, d = 64; 1x28x28 only.
``"cnn4"``
    learn2learn's ``CNN4`` (Ravi & Larochelle, 2017): 4 blocks (conv, BatchNorm, ReLU, 2x2
    max-pool) of 64 channels, flattened: d = 64 * (H/16) * (W/16), 1600 at 84x84; H, W >= 16.
``"resnet12"``
    learn2learn's ``ResNet12`` (Oreshkin et al., 2018; Lee et al., 2019), d = 640; its 5x5
    average pool and DropBlock need 80 <= H, W <= 95 (84x84 as mini-ImageNet).

``"omniglot-cnn"``, ``"cnn4"`` and ``"resnet12"`` are learn2learn's models and need it (the
``l2l`` extra: ``metaleep[l2l]``, installed by ``tools/install.sh``); without it building one
raises an ImportError that says how to install it. The ``conv`` architectures need only torch.

BatchNorm layers keep running statistics (PyTorch's default), so a network can normalise with
batch statistics (train mode, "transductive") or with its stored statistics (eval mode,
"running"); see :mod:`metaleep.backbones.training` for how training keeps them apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from metaleep._optional import require_learn2learn
from metaleep.backbones.config import ARCH_NAMES, CONV_PATTERN, check_arch_name

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "FewShotNet",
    "build_backbone",
    "check_arch",
    "import_learn2learn",
]

Shape = tuple[int, int, int]


class FewShotNet(nn.Module):
    """A feature extractor followed by a linear classifier.

    Parameters
    ----------
    features:
        Module mapping images (n, C, H, W) to embeddings (n, d).
    classifier:
        ``nn.Linear(d, out_features)``.
    arch:
        Architecture name it was built as.
    in_shape:
        (C, H, W) of the images it takes.

    Examples
    --------
    >>> net = build_backbone("conv2-8", out_features=5)
    >>> net(torch.zeros(3, 1, 28, 28)).shape, net.features(torch.zeros(3, 1, 28, 28)).shape
    (torch.Size([3, 5]), torch.Size([3, 8]))
    """

    def __init__(
        self, features: nn.Module, classifier: nn.Linear, *, arch: str, in_shape: Shape
    ) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.arch = arch
        self.in_shape = in_shape

    @property
    def embedding_dim(self) -> int:
        """d, the width of ``features``' output."""
        return int(self.classifier.in_features)

    @property
    def out_features(self) -> int:
        """Outputs of ``classifier`` (N ways or Z source classes)."""
        return int(self.classifier.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, out_features) of images ``x`` (n, C, H, W)."""
        return self.classifier(self.features(x))


class _GlobalMean(nn.Module):
    """(n, d, h, w) -> (n, d): mean over the spatial positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: how to build it and which inputs it takes.

    Attributes
    ----------
    name:
        The ``arch`` name.
    description:
        One line for ``--help`` and error messages.
    requirement:
        The inputs it takes, in words (used in the error message).
    accepts:
        ``accepts((C, H, W))`` is True when the architecture can take such images.
    build:
        ``build(out_features, in_shape) -> (features, classifier)``.
    """

    name: str
    description: str
    requirement: str
    accepts: Callable[[Shape], bool]
    build: Callable[[int, Shape], tuple[nn.Module, nn.Linear]]


class _ConvBlock(nn.Module):
    """learn2learn's ``ConvBlock`` without max-pooling: 3x3 stride-2 conv, BatchNorm, ReLU.

    Same layers, attribute names and initialisation (in the same order of random draws) as
    ``learn2learn.vision.models.ConvBlock(..., max_pool=False)``, but importable without
    learn2learn (about 3 s) and picklable (learn2learn's block holds a lambda).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.normalize = nn.BatchNorm2d(out_channels, affine=True)
        nn.init.uniform_(self.normalize.weight)
        self.relu = nn.ReLU(inplace=True)  # on the BatchNorm output: same values, one buffer less
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=True)
        nn.init.xavier_uniform_(self.conv.weight, gain=1.0)
        if self.conv.bias is not None:
            nn.init.constant_(self.conv.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.normalize(self.conv(x)))


def _maml_linear(in_features: int, out_features: int) -> nn.Linear:
    """``nn.Linear`` with learn2learn's ``maml_init_``: Xavier-uniform weight, zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight, gain=1.0)
    nn.init.constant_(layer.bias, 0.0)
    return layer


def _conv_base(layers: int, hidden: int) -> Callable[[int, Shape], tuple[nn.Module, nn.Linear]]:
    def build(out_features: int, in_shape: Shape) -> tuple[nn.Module, nn.Linear]:
        widths = [in_shape[0]] + [hidden] * layers
        base = nn.Sequential(*(_ConvBlock(a, b) for a, b in itertools.pairwise(widths)))
        return nn.Sequential(base, _GlobalMean()), _maml_linear(hidden, out_features)

    return build


def import_learn2learn() -> Any:
    """The ``learn2learn`` module (the ``l2l`` extra), imported without the notice about NumPy 2
    that its gym dependency prints; an ImportError that says how to install it without it.

    For your own learn2learn code beside metaleep (``l2l = import_learn2learn()``).
    """
    return require_learn2learn("import_learn2learn()")


def _learn2learn_model(arch: str, name: str) -> Any:
    """learn2learn's model class ``name`` (the ``l2l`` extra); a clear ImportError without it."""
    l2l = require_learn2learn(f"arch {arch!r} (a learn2learn model)")
    return getattr(l2l.vision.models, name)


def _omniglot_cnn(out_features: int, in_shape: Shape) -> tuple[nn.Module, nn.Linear]:
    OmniglotCNN = _learn2learn_model("omniglot-cnn", "OmniglotCNN")

    model = OmniglotCNN(output_size=out_features, hidden_size=64, layers=4)
    return model.features, model.classifier


def _pooled(size: int, times: int) -> int:
    for _ in range(times):
        size //= 2
    return size


def _cnn4(out_features: int, in_shape: Shape) -> tuple[nn.Module, nn.Linear]:
    CNN4 = _learn2learn_model("cnn4", "CNN4")

    channels, height, width = in_shape
    embedding = 64 * _pooled(height, 4) * _pooled(width, 4)
    model = CNN4(output_size=out_features, channels=channels, embedding_size=embedding)
    return model.features, model.classifier


def _resnet12(out_features: int, in_shape: Shape) -> tuple[nn.Module, nn.Linear]:
    ResNet12 = _learn2learn_model("resnet12", "ResNet12")

    model = ResNet12(output_size=out_features, channels=in_shape[0])
    return model.features, model.classifier


ARCHITECTURES: dict[str, ArchSpec] = {
    "conv4-small": ArchSpec(
        "conv4-small",
        "4 stride-2 conv blocks of 32 channels + global mean (d=32); any image size",
        "any (C, H, W)",
        lambda shape: True,
        _conv_base(4, 32),
    ),
    "omniglot-cnn": ArchSpec(
        "omniglot-cnn",
        "learn2learn OmniglotCNN: 4 stride-2 conv blocks of 64 channels (d=64); 1x28x28",
        "(1, 28, 28)",
        lambda shape: tuple(shape) == (1, 28, 28),
        _omniglot_cnn,
    ),
    "cnn4": ArchSpec(
        "cnn4",
        "learn2learn CNN4: 4 conv+max-pool blocks of 64 channels, flattened; H, W >= 16",
        "(C, H, W) with H, W >= 16",
        lambda shape: shape[1] >= 16 and shape[2] >= 16,
        _cnn4,
    ),
    "resnet12": ArchSpec(
        "resnet12",
        "learn2learn ResNet12 (d=640); 80 <= H, W <= 95, e.g. 3x84x84",
        "(C, H, W) with 80 <= H, W <= 95 (84x84 as mini-ImageNet)",
        lambda shape: 80 <= shape[1] <= 95 and 80 <= shape[2] <= 95,
        _resnet12,
    ),
}

if tuple(ARCHITECTURES) != ARCH_NAMES:  # pragma: no cover - a developer's slip
    raise RuntimeError("ARCHITECTURES and config.ARCH_NAMES disagree")


def check_arch(arch: str) -> ArchSpec:
    """The :class:`ArchSpec` of ``arch``; ValueError listing the names for an unknown one.

    Examples
    --------
    >>> check_arch("conv3-16").description
    '3 stride-2 conv blocks of 16 channels + global mean (d=16); any image size'
    """
    check_arch_name(arch)
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch]
    match = CONV_PATTERN.fullmatch(arch)
    if match is None:  # pragma: no cover - check_arch_name accepted it
        raise ValueError(f"`arch` must be an architecture name; got {arch!r}.")
    layers, hidden = int(match.group(1)), int(match.group(2))
    return ArchSpec(
        arch,
        f"{layers} stride-2 conv blocks of {hidden} channels + global mean (d={hidden}); "
        "any image size",
        "any (C, H, W)",
        lambda shape: True,
        _conv_base(layers, hidden),
    )


def check_shape(in_shape: Any) -> Shape:
    shape = tuple(in_shape) if isinstance(in_shape, tuple | list | torch.Size) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    ):
        raise ValueError(
            f"`in_shape` must be (channels, height, width) of positive integers; got {in_shape!r}."
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def build_backbone(
    arch: str, *, out_features: int, in_shape: tuple[int, int, int] = (1, 28, 28), seed: int = 0
) -> FewShotNet:
    """Build a freshly initialised backbone.

    Parameters
    ----------
    arch:
        Architecture name (see the module docstring), e.g. ``"conv4-small"``.
    out_features:
        Outputs of ``classifier``: N (ways) or Z (source classes).
    in_shape:
        (C, H, W) of the images; checked against what the architecture takes *before* building
        (learn2learn's 84x84 models otherwise fail deep inside ``forward`` with shape errors or
        a ZeroDivisionError).
    seed:
        Seed of the initial weights: drawn under ``torch.random.fork_rng`` with
        ``torch.manual_seed(seed)``, so the caller's global torch RNG is left as it was.

    Returns
    -------
    FewShotNet
        In train mode, on the CPU.

    Examples
    --------
    >>> net = build_backbone("conv4-small", out_features=5)
    >>> net.embedding_dim, net.out_features
    (32, 5)
    >>> again = build_backbone("conv4-small", out_features=5)
    >>> torch.equal(net.classifier.weight, again.classifier.weight)
    True
    >>> build_backbone("resnet12", out_features=5, in_shape=(3, 32, 32))
    Traceback (most recent call last):
    ...
    ValueError: `in_shape` must be (C, H, W) with 80 <= H, W <= 95 ... got (3, 32, 32).
    """
    spec = check_arch(arch)
    shape = check_shape(in_shape)
    if isinstance(out_features, bool) or not isinstance(out_features, int) or out_features < 1:
        raise ValueError(f"`out_features` must be a positive integer; got {out_features!r}.")
    if not spec.accepts(shape):
        raise ValueError(f"`in_shape` must be {spec.requirement} for arch {arch!r}; got {shape!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features, classifier = spec.build(out_features, shape)
    return FewShotNet(features, classifier, arch=arch, in_shape=shape)
