"""metaleep/adapt/prototypes.py: class means and prototype logits against loops written from
the definition, and the one implementation behind every nearest-prototype computation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from metaleep.adapt.head import nearest_prototype_batch
from metaleep.adapt.prototypes import class_means, prototype_logits
from metaleep.backbones.evaluation import episode_logits
from metaleep.backbones.models import build_backbone


def naive_means(features: np.ndarray, labels: np.ndarray, ways: int) -> np.ndarray:
    means = np.zeros((ways, features.shape[1]))
    for k in range(ways):
        members = [features[i] for i in range(len(labels)) if labels[i] == k]
        means[k] = sum(members) / len(members)
    return means


def naive_logits(points: np.ndarray, centres: np.ndarray, temperature: float) -> np.ndarray:
    out = np.zeros((len(points), len(centres)))
    for i, x in enumerate(points):
        for k, c in enumerate(centres):
            out[i, k] = -sum((x[j] - c[j]) ** 2 for j in range(len(x))) / temperature
    return out


def test_hand_computed_case() -> None:
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    centres = class_means(support, torch.tensor([0, 0, 1, 1]), 2)
    assert centres.tolist() == [[1.0, 0.0], [0.0, 5.0]]
    logits = prototype_logits(torch.tensor([[1.0, 0.0], [0.0, 4.0]]), centres)
    # ||(1,0)-(1,0)||^2 = 0, ||(1,0)-(0,5)||^2 = 26; ||(0,4)-(1,0)||^2 = 17, ||(0,4)-(0,5)||^2 = 1
    assert logits.tolist() == [[-0.0, -26.0], [-17.0, -1.0]]
    assert prototype_logits(torch.tensor([[1.0, 0.0]]), centres, temperature=2.0).tolist() == [
        [-0.0, -13.0]
    ]


@pytest.mark.parametrize("temperature", [1.0, 0.37, 25.0])
def test_single_and_batched_match_naive_loops(temperature: float) -> None:
    rng = np.random.default_rng(0)
    ways, dim = 4, 6
    labels = np.tile(np.arange(ways), (3, 3))  # (E=3, 12)
    support = rng.normal(size=(3, 12, dim)) * 3 + 1
    query = rng.normal(size=(3, 7, dim)) * 3 + 1
    means = class_means(torch.as_tensor(support), torch.as_tensor(labels), ways)
    logits = prototype_logits(torch.as_tensor(query), means, temperature=temperature)
    assert means.shape == (3, ways, dim) and logits.shape == (3, 7, ways)
    for e in range(3):
        expected_means = naive_means(support[e], labels[e], ways)
        np.testing.assert_allclose(means[e].numpy(), expected_means, rtol=1e-12, atol=1e-12)
        expected = naive_logits(query[e], expected_means, temperature)
        np.testing.assert_allclose(logits[e].numpy(), expected, rtol=1e-10, atol=1e-10)
        single_means = class_means(torch.as_tensor(support[e]), torch.as_tensor(labels[e]), ways)
        single = prototype_logits(torch.as_tensor(query[e]), single_means, temperature=temperature)
        np.testing.assert_allclose(single.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_a_point_on_its_prototype_is_near_zero_and_never_below() -> None:
    # the expanded form rounds with an error of about eps * (|x|^2 + |c|^2) (the module's
    # docstring); the clamp keeps every squared distance >= 0 (every logit <= 0)
    gen = torch.Generator().manual_seed(3)
    centres = torch.randn(50, 16, generator=gen, dtype=torch.float64) * 1e3
    logits = prototype_logits(centres, centres)
    assert bool((logits <= 0).all())
    bound = 8 * torch.finfo(torch.float64).eps * 2 * centres.square().sum(1)
    assert bool((-logits.diagonal() <= bound).all())


def test_gradient_matches_the_naive_protonet_loss() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.arange(5).repeat(2)

    def naive(x: torch.Tensor) -> torch.Tensor:
        centres = torch.stack([x[:5][y[:5] == k].mean(0) for k in range(5)])
        return -((x[5:, None] - centres[None]) ** 2).sum(-1)

    loss = torch.nn.functional.cross_entropy(
        prototype_logits(x[5:], class_means(x[:5], y[:5], 5)), y[5:]
    )
    (grad,) = torch.autograd.grad(loss, x)
    (expected,) = torch.autograd.grad(torch.nn.functional.cross_entropy(naive(x), y[5:]), x)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-14)


def test_bad_inputs_are_refused_with_the_house_message() -> None:
    features = torch.zeros(4, 2)
    with pytest.raises(
        ValueError,
        match="^"
        + re.escape("`labels` must hold every class 0..2 in every episode; got no example of ")
        + re.escape("class 2 in episode 0.")
        + "$",
    ):
        class_means(features, torch.tensor([0, 1, 0, 1]), 3)
    with pytest.raises(
        ValueError, match=r"^`points` must be of shape \(n, d\) or \(E, n, d\); got \(4,\)\.$"
    ):
        prototype_logits(torch.zeros(4), features)
    with pytest.raises(ValueError, match=r"^`temperature` must be > 0; got 0\.0\.$"):
        prototype_logits(features, features, temperature=0.0)


def test_evaluation_and_the_prototype_adaptation_share_the_function() -> None:
    """ProtoNet evaluation and the study's ``prototype`` adaptation give the logits of
    ``prototype_logits(f(query), class_means(f(support)))`` bit for bit."""
    model = build_backbone("conv2-8", out_features=3, seed=0).double().eval()
    gen = torch.Generator().manual_seed(0)
    support = torch.rand(6, 1, 28, 28, generator=gen, dtype=torch.float64)
    query = torch.rand(4, 1, 28, 28, generator=gen, dtype=torch.float64)
    labels, query_labels = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        f_support, f_query = model.features(support), model.features(query)
    expected = prototype_logits(f_query, class_means(f_support, labels, 3))
    evaluated = episode_logits(
        model, support, labels, query, ways=3, method="prototype", batch_norm="running"
    )
    assert torch.equal(evaluated, expected)
    adapted = nearest_prototype_batch(
        f_support[None], labels[None], f_query[None], query_labels[None], ways=3
    )
    assert torch.equal(adapted.logits[0], expected)


def test_the_studys_prototype_dummy_labels_use_the_function() -> None:
    from metaleep.backbones.testing import toy_dataset
    from metaleep.study.outputs import compute_outputs

    dataset = toy_dataset(classes=6, per_class=3, seed=1)
    model = build_backbone("conv2-8", out_features=3, seed=0).double().eval()
    centres = torch.randn(4, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    images = np.arange(len(dataset))
    outputs = compute_outputs(
        model, dataset, images, modes=("prototypes",), prototypes=centres, temperature=0.7
    )
    features = torch.as_tensor(outputs.features)
    expected = prototype_logits(features, centres, temperature=0.7).numpy()
    np.testing.assert_array_equal(outputs.logits["prototypes"], expected)
    naive = naive_logits(outputs.features, centres.numpy(), 0.7)
    np.testing.assert_allclose(outputs.logits["prototypes"], naive, rtol=1e-10, atol=1e-10)
