"""Tests of metaleep/backbones/models.py."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from metaleep.backbones.models import ARCHITECTURES, build_backbone, check_arch

LEARN2LEARN_ARCHS = ("omniglot-cnn", "cnn4", "resnet12")


def needs_learn2learn() -> None:
    """Skip the calling test when learn2learn (the ``l2l`` extra) is not installed."""
    pytest.importorskip("learn2learn")


@pytest.mark.parametrize(
    ("arch", "in_shape", "dim"),
    [
        ("conv4-small", (1, 28, 28), 32),
        ("conv2-8", (1, 28, 28), 8),
        ("conv3-16", (3, 20, 24), 16),
        ("omniglot-cnn", (1, 28, 28), 64),
        ("cnn4", (3, 32, 32), 64 * 2 * 2),
        ("cnn4", (1, 28, 28), 64),
    ],
)
def test_shapes(arch: str, in_shape: tuple[int, int, int], dim: int) -> None:
    if arch in LEARN2LEARN_ARCHS:
        needs_learn2learn()
    net = build_backbone(arch, out_features=7, in_shape=in_shape)
    x = torch.rand(4, *in_shape)
    assert net.features(x).shape == (4, dim)
    assert net(x).shape == (4, 7)
    assert net.embedding_dim == dim and net.out_features == 7
    assert isinstance(net.classifier, torch.nn.Linear)


def test_mini_imagenet_sized_models() -> None:
    needs_learn2learn()
    x = torch.rand(2, 3, 84, 84)
    cnn4 = build_backbone("cnn4", out_features=5, in_shape=(3, 84, 84))
    assert cnn4.features(x).shape == (2, 1600)  # 25 * 64, as learn2learn's CNN4 default
    resnet = build_backbone("resnet12", out_features=5, in_shape=(3, 84, 84)).eval()
    assert resnet.features(x).shape == (2, 640)
    assert resnet(x).shape == (2, 5)


def test_omniglot_cnn_is_learn2learns() -> None:
    needs_learn2learn()
    from learn2learn.vision.models import OmniglotCNN

    ours = build_backbone("omniglot-cnn", out_features=5, seed=3).eval()
    torch.manual_seed(3)
    reference = OmniglotCNN(output_size=5).eval()
    x = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_conv_nets_are_learn2learns_conv_base() -> None:
    needs_learn2learn()
    from learn2learn.vision.models import ConvBase, maml_init_

    ours = build_backbone("conv4-small", out_features=5, in_shape=(3, 28, 28), seed=4)
    torch.manual_seed(4)
    base = ConvBase(hidden=32, channels=3, max_pool=False, layers=4)
    head = maml_init_(torch.nn.Linear(32, 5))
    x = torch.rand(6, 3, 28, 28)
    expected = head(base(x).mean(dim=(2, 3)))
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
    assert list(ours.state_dict()) == [f"features.0.{k}" for k in base.state_dict()] + [
        "classifier.weight",
        "classifier.bias",
    ]


def test_seed_fixes_weights_and_leaves_global_rng_alone() -> None:
    before = torch.get_rng_state()
    a = build_backbone("conv4-small", out_features=5, seed=1).state_dict()
    b = build_backbone("conv4-small", out_features=5, seed=1).state_dict()
    c = build_backbone("conv4-small", out_features=5, seed=2).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def test_unknown_arch() -> None:
    message = (
        "`arch` must be one of conv4-small, omniglot-cnn, cnn4, resnet12, or conv<L>-<H> "
        "(L blocks of H channels, e.g. conv3-32); got 'vgg'."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build_backbone("vgg", out_features=5)
    with pytest.raises(ValueError, match="got 'conv0-8'"):
        check_arch("conv0-8")


@pytest.mark.parametrize(
    ("arch", "shape", "requirement"),
    [
        ("resnet12", (3, 32, 32), "(C, H, W) with 80 <= H, W <= 95 (84x84 as mini-ImageNet)"),
        ("omniglot-cnn", (3, 28, 28), "(1, 28, 28)"),
        ("cnn4", (1, 8, 8), "(C, H, W) with H, W >= 16"),
    ],
)
def test_shape_the_architecture_cannot_take(
    arch: str, shape: tuple[int, int, int], requirement: str
) -> None:
    message = f"`in_shape` must be {requirement} for arch {arch!r}; got {shape!r}."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build_backbone(arch, out_features=5, in_shape=shape)


@pytest.mark.parametrize("arch", LEARN2LEARN_ARCHS)
def test_learn2learn_archs_without_learn2learn(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "learn2learn", None)  # as if it were not installed
    message = (
        f"arch {arch!r} (a learn2learn model) needs learn2learn, which could not be imported "
        "(import of learn2learn halted; None in sys.modules). learn2learn 0.2.0 (the "
        "`metaleep[l2l]` extra) has no wheel on PyPI and its sdist does not build on Python "
        ">= 3.11: in a clone of metaleep run `bash tools/install.sh` (it builds the learn2learn "
        "wheel from the sdist with Cython >= 3, caches it and installs metaleep with the l2l "
        "extra; its comments give the steps to do by hand)."
    )
    with pytest.raises(ImportError, match=f"^{re.escape(message)}$"):
        build_backbone(
            arch, out_features=5, in_shape=(1, 28, 28) if arch != "resnet12" else (3, 84, 84)
        )
    assert build_backbone("conv2-8", out_features=5).out_features == 5  # torch only


def test_learn2learn_fails_without_the_check() -> None:
    """The reason for the shape check: learn2learn's ResNet12 dies deep inside at 32x32."""
    needs_learn2learn()
    from learn2learn.vision.models import ResNet12

    with pytest.raises((ZeroDivisionError, RuntimeError)):
        ResNet12(output_size=5).train()(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"in_shape": (1, 28)},
            "`in_shape` must be (channels, height, width) of positive integers; got (1, 28).",
        ),
        ({"out_features": 0}, "`out_features` must be a positive integer; got 0."),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build_backbone("conv2-8", **{"out_features": 5, **kwargs})  # type: ignore[arg-type]


def test_registry_names() -> None:
    assert list(ARCHITECTURES) == ["conv4-small", "omniglot-cnn", "cnn4", "resnet12"]
