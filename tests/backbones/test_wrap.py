"""from_module: every wrapper kind, what it finds, what it refuses, and factories/exports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from metaleep.backbones import from_module, load_factory, load_wrapped, save_backbone
from metaleep.backbones.checkpoint import CheckpointError
from metaleep.backbones.models import build_backbone
from metaleep.backbones.protocol import StudyBackbone


def _x(n: int = 2, c: int = 1, s: int = 28) -> torch.Tensor:
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(0))


def test_fewshotnet_layout_keeps_features_and_head() -> None:
    net = build_backbone("conv2-8", out_features=5)
    backbone = from_module(net, name="mine")
    assert backbone.model.features is net.features
    assert backbone.head is net.classifier
    assert backbone.algorithm == "supervised"  # a head and nothing saying how it was trained
    assert backbone.input.channels == 1


def test_learn2learn_maml_wrapper_gives_algorithm_and_inner_loop() -> None:
    l2l = pytest.importorskip("learn2learn")
    model = l2l.vision.models.OmniglotCNN(output_size=5, hidden_size=8, layers=2)
    backbone = from_module(l2l.algorithms.MAML(model, lr=0.3, first_order=True), name="l2l")
    assert backbone.algorithm == "fomaml"
    assert backbone.inner == {"lr": 0.3, "first_order": True}
    assert backbone.head_ways == 5
    out = backbone.model.features(_x())
    assert out.shape == (2, 8)


def test_anil_style_wrapped_head_is_anil() -> None:
    l2l = pytest.importorskip("learn2learn")
    features = nn.Sequential(nn.Flatten(), nn.Linear(784, 16))
    head = l2l.algorithms.MAML(nn.Linear(16, 5), lr=0.5)
    backbone = from_module(features=features, head=head, name="anil")
    assert backbone.algorithm == "anil"
    assert backbone.inner == {"lr": 0.5, "first_order": False}
    assert backbone.head_ways == 5


@pytest.mark.parametrize(
    ("factory", "attribute", "width"),
    [
        (lambda: torchvision.models.resnet18(num_classes=7), "fc", 512),
        (lambda: torchvision.models.mobilenet_v3_small(num_classes=7), "classifier", 1024),
        (lambda: torchvision.models.squeezenet1_1(num_classes=7), None, None),
    ],
)
def test_torchvision_classifiers(factory, attribute, width) -> None:
    net = factory().eval()
    if attribute is None:  # squeezenet's classifier is a convolution: refused, with the name
        with pytest.raises(ValueError, match=r"`module.classifier` must end with an nn.Linear"):
            from_module(net)
        return
    backbone = from_module(net, name="tv")
    assert backbone.head.out_features == 7 and backbone.head.in_features == width
    assert backbone.input.channels == 3
    with torch.no_grad():
        embedding = backbone.model.features(_x(2, 3, 64))
        assert embedding.shape == (2, width)
        # features + head is the original network, which is unchanged
        assert torch.allclose(backbone.model(_x(2, 3, 64)), net(_x(2, 3, 64)), atol=1e-6)
    assert isinstance(getattr(net, attribute), nn.Module)
    assert not isinstance(getattr(net, attribute), nn.Identity)


def test_vit_heads() -> None:
    net = torchvision.models.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=16,
        num_classes=4,
    ).eval()
    backbone = from_module(net)
    assert backbone.head.out_features == 4
    with torch.no_grad():
        assert backbone.model.features(_x(2, 3, 32)).shape == (2, 16)


def test_bare_embedding_and_callable() -> None:
    backbone = from_module(nn.Sequential(nn.Flatten(), nn.Linear(784, 6), nn.ReLU()), name="p")
    assert backbone.algorithm == "protonet" and backbone.head is None
    assert backbone.offers_dummy("head", 5) is False
    fn = from_module(features=lambda x: x.flatten(1), name="fn")
    assert fn.model.features(_x()).shape == (2, 784)
    assert list(fn.model.parameters()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "reptile"}, r"`algorithm` must be one of maml, fomaml, anil"),
        ({"algorithm": "maml", "head": None}, r"`algorithm` 'maml' needs a meta-learned head"),
        ({"head": nn.Conv2d(1, 1, 1)}, r"`head` must be an nn.Linear"),
        ({"inner_lr": 0.1}, r"must come with a MAML-family algorithm"),
        ({"source_data": object()}, r"`source_classes` must be given with `source_data`"),
    ],
)
def test_refusals_name_the_option(kwargs, message) -> None:
    kwargs = {"features": nn.Flatten(), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        from_module(**kwargs)


def test_module_and_features_together_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be given with `module`"):
        from_module(nn.Flatten(), features=nn.Flatten())


FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        torch.manual_seed(1)
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 5))

    def wrapped():
        from metaleep.backbones import from_module
        return from_module(build(), name="w", algorithm="maml", inner_lr=0.2, inner_steps=3)

    not_callable = 3
    """
)


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(FACTORY)
    return path


def test_factory_specs_and_weights(factory_file: Path, tmp_path: Path) -> None:
    plain = load_factory(f"{factory_file}:build", name="plain")
    assert plain.algorithm == "supervised" and plain.origin == f"factory {factory_file}:build"
    # @WEIGHTS: a state dict of the module the factory returns
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 5))
    torch.save(module.state_dict(), tmp_path / "w.pt")
    loaded = load_factory(f"{factory_file}:build@{tmp_path / 'w.pt'}", name="loaded")
    assert torch.equal(loaded.head.weight, module[3].weight)
    assert loaded.fingerprint != plain.fingerprint
    wrapped = load_factory(f"{factory_file}:wrapped", name="renamed")
    assert (wrapped.name, wrapped.algorithm, wrapped.inner) == (
        "renamed",
        "maml",
        {"lr": 0.2, "steps": 3},
    )
    with pytest.raises(ValueError, match="must name a callable"):
        load_factory(f"{factory_file}:not_callable", name="x")
    with pytest.raises(FileNotFoundError, match="factory file must exist"):
        load_factory(f"{tmp_path / 'nope.py'}:build", name="x")
    torch.save({"other": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"weights .* must fit the model"):
        load_factory(f"{factory_file}:build@{tmp_path / 'bad.pt'}", name="x")


def test_module_factory_spec() -> None:
    backbone = load_factory("torchvision.models:resnet18", name="r18")
    assert backbone.head.out_features == 1000


def test_export_round_trip(factory_file: Path, tmp_path: Path) -> None:
    backbone = load_factory(f"{factory_file}:wrapped", name="w")
    with torch.no_grad():
        backbone.head.weight.add_(1.0)  # weights that the factory alone would not give
    path = save_backbone(backbone, tmp_path / "w.ckpt")
    with pytest.raises(CheckpointError, match="code that loading would import and run"):
        load_wrapped(path)  # the factory it records runs only when the user says so
    again = load_wrapped(path, trust_code=True)
    assert isinstance(again, StudyBackbone)
    assert (again.name, again.algorithm, again.inner) == ("w", "maml", {"lr": 0.2, "steps": 3})
    from metaleep.backbones.protocol import weights_fingerprint

    assert again.fingerprint == weights_fingerprint(backbone.model) != backbone.fingerprint
    assert torch.equal(again.head.weight, backbone.head.weight)
    # a module without a factory cannot be saved: it would have to be pickled code
    with pytest.raises(ValueError, match="`factory` must name the callable"):
        save_backbone(from_module(nn.Flatten()), tmp_path / "x.ckpt")


def test_inner_settings_reach_the_adaptation_config() -> None:
    backbone = from_module(
        features=nn.Flatten(),
        head=nn.Linear(784, 5),
        algorithm="maml",
        inner_lr=0.1,
        inner_steps=2,
        first_order=True,
    )
    assert backbone.inner == {"lr": 0.1, "steps": 2, "first_order": True}
    assert backbone.offers_adaptation("maml", 5) and not backbone.offers_adaptation("maml", 4)
    assert np.asarray(backbone.source_classes).size == 0
    assert backbone.offers_dummy("prototypes", 5) is False
