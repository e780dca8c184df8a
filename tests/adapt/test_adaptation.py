"""Tests of metaleep.adapt.registry (and its common / head / network parts).

References are independent of the code under test: numpy loops for prototypes, autograd and
learn2learn for the hand-derived head gradient, a plain autograd SGD loop for MAML, and the
per-episode functions for their batched forms.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from metaleep.adapt.registry import (
    ADAPTATIONS,
    AdaptationResult,
    BatchAdaptationResult,
    FinetuneConfig,
    HeadConfig,
    MamlConfig,
    PrototypeConfig,
    adaptation_settings,
    backbone_config,
    finetune,
    finetune_batch,
    get_adaptation,
    head_parameters,
    maml_adapt,
    maml_adapt_batch,
    nearest_prototype,
    nearest_prototype_batch,
    retrain_head,
    retrain_head_batch,
    score_logits,
    score_logits_batch,
)

l2l = pytest.importorskip("learn2learn")

WAYS = 5
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


class TinyCNN(nn.Module):
    """features: two strided conv + BatchNorm + ReLU blocks, mean-pooled -> (n, 4)."""

    def __init__(self, ways: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)  # module init draws from the global generator; fix it
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, stride=3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(4, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _with_running_stats(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics (so "running" mode is tested)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    return model


def omniglot_cnn(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    model = l2l.vision.models.OmniglotCNN(output_size=WAYS).to(dtype)
    return _with_running_stats(model, seed)


def image_episodes(
    episodes: int,
    *,
    ways: int = WAYS,
    shots: int = 1,
    queries: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fabricated 28x28 one-channel episodes: (E, ways*shots, 1, 28, 28) etc."""
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(ways).repeat_interleave(shots).repeat(episodes, 1)
    query_y = torch.arange(ways).repeat_interleave(queries).repeat(episodes, 1)
    # class-dependent mean brightness, so adaptation has something to learn
    support_x = torch.rand(episodes, ways * shots, 1, 28, 28, generator=generator, dtype=dtype)
    query_x = torch.rand(episodes, ways * queries, 1, 28, 28, generator=generator, dtype=dtype)
    support_x = support_x + support_y[..., None, None, None].to(dtype) / ways
    query_x = query_x + query_y[..., None, None, None].to(dtype) / ways
    return support_x, support_y, query_x, query_y


def feature_episodes(
    episodes: int,
    *,
    ways: int = WAYS,
    shots: int = 2,
    queries: int = 4,
    dim: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    separation: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian class clusters: (E, ways*shots, dim), (E, ways*shots), (E, ways*queries, dim)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(episodes, ways, dim, generator=generator, dtype=dtype) * separation
    support_y = torch.arange(ways).repeat(shots).repeat(episodes, 1)
    query_y = torch.arange(ways).repeat(queries).repeat(episodes, 1)
    pick = torch.arange(episodes)[:, None]
    support = centres[pick, support_y] + torch.randn(
        episodes, ways * shots, dim, generator=generator, dtype=dtype
    )
    query = centres[pick, query_y] + torch.randn(
        episodes, ways * queries, dim, generator=generator, dtype=dtype
    )
    return support, support_y, query, query_y


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_state_equal(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 0.0, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 0, "atol": 1e-5}


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def test_score_logits_matches_hand_computation() -> None:
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2, 1, 2])
    result = score_logits(logits, labels)
    # argmax: 0, 1, 0 (first of ties), 0 -> one of four right
    assert result.predictions.tolist() == [0, 1, 0, 0]
    assert result.accuracy == 0.25
    expected = np.mean(
        [
            -(1 - math.log(math.e + 2)),
            -(0 - math.log(math.exp(2) + 2)),
            math.log(3),
            -(1 - math.log(math.exp(3) + 1 + math.e)),
        ]
    )
    assert result.loss == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_batch_accuracy_is_exactly_k_over_n_on_every_device(device: str) -> None:
    """k correct of 75 gives the float k / 75, not k * (1 / 75) (which a CUDA mean computes)."""
    n = 75
    labels = torch.zeros(n + 1, n, dtype=torch.long)
    logits = torch.zeros(n + 1, n, 2)
    for k in range(n + 1):
        logits[k, :k, 0] = 1.0  # the first k queries are right, the rest predict class 1
        logits[k, k:, 1] = 1.0
    batch = score_logits_batch(logits.to(device), labels.to(device))
    assert batch.accuracy.dtype == np.float64
    assert batch.accuracy.tolist() == [k / n for k in range(n + 1)]


def test_batch_result_indexing_and_stacking() -> None:
    logits = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    batch = score_logits_batch(logits, torch.tensor([[0], [0]]))
    assert len(batch) == 2
    assert batch.accuracy.tolist() == [1.0, 0.0]
    assert isinstance(batch[1], AdaptationResult)
    assert batch[1].accuracy == 0.0
    stacked = BatchAdaptationResult.from_results([batch[0], batch[1]])
    np.testing.assert_array_equal(stacked.loss, batch.loss)
    assert torch.equal(stacked.logits, logits)


# --------------------------------------------------------------------------------------------
# Head-only adaptation over features
# --------------------------------------------------------------------------------------------


def naive_prototype_logits(
    support: np.ndarray, support_y: np.ndarray, query: np.ndarray, ways: int
) -> np.ndarray:
    logits = np.zeros((len(query), ways))
    for k in range(ways):
        members = [support[i] for i in range(len(support)) if support_y[i] == k]
        centre = sum(members) / len(members)
        for i, q in enumerate(query):
            logits[i, k] = -sum((q[j] - centre[j]) ** 2 for j in range(len(q)))
    return logits


def test_nearest_prototype_matches_naive_numpy() -> None:
    support, support_y, query, query_y = feature_episodes(3, shots=3, seed=1)
    batch = nearest_prototype_batch(support, support_y, query, query_y, ways=WAYS)
    for e in range(3):
        expected = naive_prototype_logits(
            support[e].numpy(), support_y[e].numpy(), query[e].numpy(), WAYS
        )
        np.testing.assert_allclose(batch.logits[e].numpy(), expected, rtol=1e-10, atol=1e-10)
        shifted = expected - expected.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.mean(log_probs[np.arange(len(query_y[e])), query_y[e].numpy()])
        accuracy = np.mean(expected.argmax(axis=1) == query_y[e].numpy())
        assert batch.loss[e] == pytest.approx(loss, rel=1e-10)
        assert batch.accuracy[e] == accuracy


def test_nearest_prototype_accepts_numpy_and_needs_every_class() -> None:
    support, support_y, query, query_y = feature_episodes(1)
    from_numpy = nearest_prototype(
        support[0].numpy(), support_y[0].numpy(), query[0].numpy(), query_y[0].numpy(), ways=WAYS
    )
    from_torch = nearest_prototype(support[0], support_y[0], query[0], query_y[0], ways=WAYS)
    assert torch.equal(from_numpy.logits, from_torch.logits)
    labels = support_y.clone()
    labels[0, labels[0] == 3] = 0
    with pytest.raises(ValueError, match=re.escape("got no example of class 3 in episode 0.")):
        nearest_prototype_batch(support, labels, query, query_y, ways=WAYS)


def reference_head_descent(
    support: torch.Tensor,
    support_y: torch.Tensor,
    query: torch.Tensor,
    *,
    ways: int,
    steps: int,
    lr: float,
    weight_decay: float,
    init: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """Gradient descent on CE + wd/2 ||W||^2 with autograd, one episode; query logits."""
    dim = support.shape[1]
    if init is None:
        weight = torch.zeros(ways, dim, dtype=support.dtype)
        bias = torch.zeros(ways, dtype=support.dtype)
    else:
        weight, bias = init[0].clone(), init[1].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    for _ in range(steps):
        objective = nn.functional.cross_entropy(support @ weight.T + bias, support_y)
        objective = objective + weight_decay / 2 * weight.square().sum()
        grad_weight, grad_bias = torch.autograd.grad(objective, (weight, bias))
        with torch.no_grad():
            weight -= lr * grad_weight
            bias -= lr * grad_bias
    return (query @ weight.T + bias).detach()


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("with_init", [False, True])
def test_retrain_head_matches_autograd_reference(weight_decay: float, with_init: bool) -> None:
    support, support_y, query, query_y = feature_episodes(2, seed=2)
    generator = torch.Generator().manual_seed(3)
    init = None
    if with_init:
        init = (
            torch.randn(WAYS, 8, generator=generator, dtype=torch.float64),
            torch.randn(WAYS, generator=generator, dtype=torch.float64),
        )
    for e in range(2):
        result = retrain_head(
            support[e], support_y[e], query[e], query_y[e],
            ways=WAYS, steps=7, lr=0.3, weight_decay=weight_decay, init=init,
        )  # fmt: skip
        expected = reference_head_descent(
            support[e], support_y[e], query[e],
            ways=WAYS, steps=7, lr=0.3, weight_decay=weight_decay, init=init,
        )  # fmt: skip
        torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-12)


def test_anil_matches_learn2learn_maml_on_the_head() -> None:
    """ANIL's inner loop: learn2learn MAML(classifier) adapted on fixed features."""
    support, support_y, query, query_y = feature_episodes(1, dim=6, seed=4)
    torch.manual_seed(0)
    head = nn.Linear(6, WAYS).double()
    learner = l2l.algorithms.MAML(head, lr=0.4, first_order=True).clone()
    for _ in range(5):
        learner.adapt(nn.functional.cross_entropy(learner(support[0]), support_y[0]))
    expected = learner(query[0]).detach()
    result = retrain_head(
        support[0], support_y[0], query[0], query_y[0],
        ways=WAYS, steps=5, lr=0.4, init=head_parameters(_holder(head)),
    )  # fmt: skip
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-12)


def _holder(head: nn.Linear) -> nn.Module:
    holder = nn.Module()
    holder.classifier = head
    return holder


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("init_kind", ["zero", "shared", "per_episode"])
@pytest.mark.parametrize("lr", [0.5, "auto"])
def test_retrain_head_batch_equals_loop(dtype: torch.dtype, init_kind: str, lr: object) -> None:
    episodes = 6
    support, support_y, query, query_y = feature_episodes(episodes, seed=5, dtype=dtype)
    generator = torch.Generator().manual_seed(6)
    weights = torch.randn(episodes, WAYS, 8, generator=generator, dtype=dtype)
    biases = torch.randn(episodes, WAYS, generator=generator, dtype=dtype)
    inits = {
        "zero": (None, [None] * episodes),
        "shared": ((weights[0], biases[0]), [(weights[0], biases[0])] * episodes),
        "per_episode": ((weights, biases), [(weights[e], biases[e]) for e in range(episodes)]),
    }
    batch_init, loop_inits = inits[init_kind]
    options = {"ways": WAYS, "steps": 30, "lr": lr, "weight_decay": 0.01}
    batch = retrain_head_batch(support, support_y, query, query_y, init=batch_init, **options)
    loop = [
        retrain_head(support[e], support_y[e], query[e], query_y[e], init=loop_inits[e], **options)
        for e in range(episodes)
    ]
    assert batch.logits.dtype == dtype
    for e, single in enumerate(loop):
        assert torch.equal(batch.predictions[e], single.predictions)
        torch.testing.assert_close(batch.logits[e], single.logits, **tolerance(dtype))
        assert batch.accuracy[e] == single.accuracy
        assert batch.loss[e] == pytest.approx(single.loss, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nearest_prototype_batch_equals_loop(dtype: torch.dtype) -> None:
    support, support_y, query, query_y = feature_episodes(5, shots=3, seed=7, dtype=dtype)
    batch = nearest_prototype_batch(support, support_y, query, query_y, ways=WAYS)
    for e in range(5):
        single = nearest_prototype(support[e], support_y[e], query[e], query_y[e], ways=WAYS)
        assert torch.equal(batch.predictions[e], single.predictions)
        torch.testing.assert_close(batch.logits[e], single.logits, **tolerance(dtype))
        assert batch.loss[e] == pytest.approx(single.loss, rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_retrain_head_separable_features_reach_accuracy_one(scale: float) -> None:
    """Auto step size: separable clusters are learnt whatever the feature scale."""
    support, support_y, query, query_y = feature_episodes(4, seed=8, separation=10.0)
    result = retrain_head_batch(
        support * scale, support_y, query * scale, query_y, ways=WAYS, steps=100
    )
    assert result.accuracy.tolist() == [1.0] * 4
    assert np.all(np.isfinite(result.loss))
    assert np.all(result.loss < 0.5)


def test_retrain_head_from_zero_without_steps_is_uniform() -> None:
    support, support_y, query, query_y = feature_episodes(1)
    result = retrain_head(support[0], support_y[0], query[0], query_y[0], ways=WAYS, steps=0)
    assert result.loss == pytest.approx(math.log(WAYS))
    assert result.predictions.tolist() == [0] * len(query_y[0])


def reference_accelerated_head(
    support: torch.Tensor,
    support_y: torch.Tensor,
    *,
    ways: int,
    steps: int,
    weight_decay: float,
    init: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nesterov's accelerated gradient written from Beck and Teboulle (2009), FISTA without a
    prox: t_1 = 1, x_k = y_k - grad(y_k) / L, t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,
    y_{k+1} = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1}); autograd gradients, one episode.
    Returns (W, b). (The code uses the common momentum (k - 1) / (k + 2) instead of the t_k
    recursion; the two differ, so this reference takes the same momentum schedule.)"""
    n, dim = support.shape
    augmented = torch.cat([support, torch.ones(n, 1, dtype=support.dtype)], dim=1)
    lipschitz = torch.linalg.matrix_norm(augmented, ord=2) ** 2 / (2 * n) + weight_decay
    if init is None:
        x = torch.zeros(ways, dim + 1, dtype=support.dtype)
    else:
        x = torch.cat([init[0], init[1].unsqueeze(1)], dim=1).clone()
    y = x.clone()
    for k in range(1, steps + 1):
        y = y.detach().requires_grad_(True)
        logits = support @ y[:, :dim].T + y[:, dim]
        objective = nn.functional.cross_entropy(logits, support_y)
        objective = objective + weight_decay / 2 * y[:, :dim].square().sum()
        (grad,) = torch.autograd.grad(objective, y)
        with torch.no_grad():
            new = y - grad / lipschitz
            y = new + (k - 1) / (k + 2) * (new - x)
            x = new
    return x[:, :dim].detach(), x[:, dim].detach()


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("with_init", [False, True])
def test_accelerated_head_matches_autograd_reference(weight_decay: float, with_init: bool) -> None:
    support, support_y, query, query_y = feature_episodes(2, seed=21, separation=0.5)
    generator = torch.Generator().manual_seed(22)
    init = None
    if with_init:
        init = (
            torch.randn(WAYS, 8, generator=generator, dtype=torch.float64),
            torch.randn(WAYS, generator=generator, dtype=torch.float64),
        )
    batch = retrain_head_batch(
        support, support_y, query, query_y,
        ways=WAYS, steps=9, weight_decay=weight_decay, init=init, accelerated=True,
    )  # fmt: skip
    for e in range(2):
        weight, bias = reference_accelerated_head(
            support[e], support_y[e], ways=WAYS, steps=9, weight_decay=weight_decay, init=init
        )
        torch.testing.assert_close(batch.logits[e], query[e] @ weight.T + bias, rtol=0, atol=1e-11)
        support_logits = support[e] @ weight.T + bias
        expected_loss = float(nn.functional.cross_entropy(support_logits, support_y[e]))
        assert batch.support_loss[e] == pytest.approx(expected_loss, rel=1e-11)
        single = retrain_head(
            support[e], support_y[e], query[e], query_y[e],
            ways=WAYS, steps=9, weight_decay=weight_decay, init=init, accelerated=True,
        )  # fmt: skip
        torch.testing.assert_close(single.logits, batch.logits[e], rtol=0, atol=1e-12)


def test_accelerated_head_converges_from_any_start() -> None:
    """With weight decay the objective is strongly convex: one optimum, reached from the zero
    head and from a far-off head alike; plain descent with as many steps is still far from it."""
    support, support_y, query, query_y = feature_episodes(3, seed=23, separation=0.7)
    far = (torch.full((WAYS, 8), 3.0, dtype=torch.float64), torch.zeros(WAYS, dtype=torch.float64))
    far[0][0] = -3.0
    options = {"ways": WAYS, "weight_decay": 0.05}
    optimum = retrain_head_batch(
        support, support_y, query, query_y, steps=5000, accelerated=True, **options
    )
    fast = {
        start: retrain_head_batch(
            support, support_y, query, query_y, steps=500, init=init, accelerated=True, **options
        )
        for start, init in (("zero", None), ("far", far))
    }
    slow = retrain_head_batch(support, support_y, query, query_y, steps=500, init=far, **options)
    for result in fast.values():  # measured: 1e-3 from zero, 4e-3 from far
        torch.testing.assert_close(result.logits, optimum.logits, rtol=0, atol=1e-2)
    assert float((slow.logits - optimum.logits).abs().max()) > 0.1  # measured: 0.13


def test_support_loss_and_start_spread_are_recorded() -> None:
    support, support_y, query, query_y = feature_episodes(2, seed=24)
    weight = torch.tensor([[1.0] * 8, [0.0] * 8, [-1.0] * 8, [2.0] * 8, [0.5] * 8]).double()
    bias = torch.zeros(WAYS, dtype=torch.float64)
    result = retrain_head_batch(
        support, support_y, query, query_y, ways=WAYS, steps=3, lr=0.2, init=(weight, bias)
    )
    for e in range(2):
        start = support[e] @ weight.T  # population std over the 5 classes, mean over examples
        expected = float(np.mean(np.std(start.numpy(), axis=1)))
        assert result.start_logit_std[e] == pytest.approx(expected, rel=1e-12)
        final = retrain_head(
            support[e], support_y[e], support[e], support_y[e],
            ways=WAYS, steps=3, lr=0.2, init=(weight, bias),
        )  # fmt: skip
        assert result.support_loss[e] == pytest.approx(final.loss, rel=1e-12)
        assert result[e].support_loss == result.support_loss[e]
    zero = retrain_head_batch(support, support_y, query, query_y, ways=WAYS, steps=0)
    assert zero.start_logit_std.tolist() == [0.0, 0.0]
    np.testing.assert_allclose(zero.support_loss, math.log(WAYS), rtol=1e-12)
    proto = nearest_prototype_batch(support, support_y, query, query_y, ways=WAYS)
    as_query = nearest_prototype_batch(support, support_y, support, support_y, ways=WAYS)
    np.testing.assert_allclose(proto.support_loss, as_query.loss, rtol=1e-12)
    assert np.isnan(proto.start_logit_std).all()
    stacked = BatchAdaptationResult.from_results([result[1], result[0]])
    assert stacked.support_loss.tolist() == result.support_loss[::-1].tolist()
    bare = BatchAdaptationResult(np.zeros(2), np.zeros(2), torch.zeros(2, 1, 1))
    assert np.isnan(bare.support_loss).all() and np.isnan(bare.start_logit_std).all()


def test_retrain_head_auto_step_decreases_the_objective() -> None:
    support, support_y, _, _ = feature_episodes(1, seed=9, separation=0.3)
    losses = [
        retrain_head(support[0], support_y[0], support[0], support_y[0], ways=WAYS, steps=k).loss
        for k in range(0, 12)
    ]
    assert all(b < a for a, b in itertools.pairwise(losses))


# --------------------------------------------------------------------------------------------
# MAML on the whole network
# --------------------------------------------------------------------------------------------


def reference_maml(
    model: nn.Module,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    *,
    steps: int,
    lr: float,
    train_mode: bool,
) -> torch.Tensor:
    """Plain autograd SGD on a deep copy (no learn2learn); query logits."""
    network = copy.deepcopy(model).train(train_mode)
    params = list(network.parameters())
    for _ in range(steps):
        loss = nn.functional.cross_entropy(
            network.classifier(network.features(support_x)), support_y
        )
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                param -= lr * grad
    with torch.no_grad():
        return network.classifier(network.features(query_x))


@pytest.mark.parametrize("batch_norm", ["transductive", "running"])
def test_maml_adapt_matches_plain_autograd_loop(batch_norm: str) -> None:
    model = _with_running_stats(TinyCNN(seed=1).double(), seed=1)
    sx, sy, qx, qy = image_episodes(1, ways=3, shots=2, seed=1, dtype=torch.float64)
    result = maml_adapt(model, sx[0], sy[0], qx[0], qy[0], steps=3, lr=0.5, batch_norm=batch_norm)
    expected = reference_maml(
        model, sx[0], sy[0], qx[0], steps=3, lr=0.5, train_mode=batch_norm == "transductive"
    )
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-12)
    assert result.accuracy == float((expected.argmax(1) == qy[0]).double().mean())


@pytest.mark.parametrize("batch_norm", ["transductive", "running"])
@pytest.mark.parametrize("vectorize", [False, True])
def test_maml_support_loss_and_start_spread(batch_norm: str, vectorize: bool) -> None:
    """The support loss is the adapted network's loss on the support set (a query set equal to
    the support set scores the same); the start spread is that of the unadapted network."""
    model = _with_running_stats(TinyCNN(seed=5).double(), seed=5)
    sx, sy, _, _ = image_episodes(2, ways=3, shots=2, seed=5, dtype=torch.float64)
    options = {"lr": 0.5, "batch_norm": batch_norm, "vectorize": vectorize}
    result = maml_adapt_batch(model, sx, sy, sx, sy, steps=3, **options)
    unadapted = maml_adapt_batch(model, sx, sy, sx, sy, steps=0, **options)
    np.testing.assert_allclose(result.support_loss, result.loss, rtol=1e-10)
    np.testing.assert_allclose(unadapted.support_loss, unadapted.loss, rtol=1e-10)
    assert np.all(result.support_loss < unadapted.support_loss)
    network = copy.deepcopy(model).train(batch_norm == "transductive")
    with torch.no_grad():
        start = [network(sx[e]).numpy() for e in range(2)]
    expected = [float(np.mean(np.std(logits, axis=1))) for logits in start]
    np.testing.assert_allclose(result.start_logit_std, expected, rtol=1e-10)
    np.testing.assert_allclose(unadapted.start_logit_std, expected, rtol=1e-10)
    single = maml_adapt(model, sx[1], sy[1], sx[1], sy[1], steps=3, batch_norm=batch_norm, lr=0.5)
    assert single.support_loss == pytest.approx(result.support_loss[1], rel=1e-10)


def test_finetune_support_loss_and_start_spread() -> None:
    model = TinyCNN(seed=6).double()
    sx, sy, _, _ = image_episodes(2, ways=3, shots=2, seed=6, dtype=torch.float64)
    tuned = finetune_batch(model, sx, sy, sx, sy, steps=4, lr=0.05)
    np.testing.assert_allclose(tuned.support_loss, tuned.loss, rtol=1e-10)
    untouched = finetune_batch(model, sx, sy, sx, sy, steps=0)
    np.testing.assert_allclose(untouched.start_logit_std, tuned.start_logit_std, rtol=1e-10)
    zero = finetune(model, sx[0], sy[0], sx[0], sy[0], steps=2, head="zero", ways=3)
    assert zero.start_logit_std == 0.0
    assert zero.support_loss == pytest.approx(zero.loss, rel=1e-10)


def test_learn2learn_clone_alone_changes_batchnorm_buffers() -> None:
    """The trap maml_adapt avoids: a clone in train mode writes the original's buffers."""
    model = TinyCNN()
    before = state_copy(model)
    sx, sy, _, _ = image_episodes(1, ways=3)
    learner = l2l.algorithms.MAML(model, lr=0.1).clone()
    learner.adapt(nn.functional.cross_entropy(learner(sx[0]), sy[0]))
    assert not torch.equal(model.features[1].running_mean, before["features.1.running_mean"])


@pytest.mark.parametrize("batch_norm", ["transductive", "running"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_maml_adapt_leaves_model_unchanged(batch_norm: str, train_mode: bool) -> None:
    model = omniglot_cnn(seed=2).train(train_mode)
    model.classifier.weight.requires_grad_(False)  # frozen parameters are adapted on the copy
    before = state_copy(model)
    sx, sy, qx, qy = image_episodes(1, seed=2)
    result = maml_adapt(model, sx[0], sy[0], qx[0], qy[0], steps=2, batch_norm=batch_norm)
    assert_state_equal(model, before)
    assert model.training is train_mode
    assert all(m.training is train_mode for m in model.modules())
    assert model.classifier.weight.requires_grad is False
    assert model.classifier.weight.grad is None
    assert result.logits.shape == (WAYS * 3, WAYS)
    assert not result.logits.requires_grad
    # and the adaptation did something: the model as-is predicts differently
    with torch.no_grad():
        unadapted = model.train(batch_norm == "transductive")(qx[0])
    assert not torch.allclose(unadapted, result.logits)


def test_maml_first_order_flag_does_not_change_predictions() -> None:
    model = TinyCNN(seed=3).double()
    sx, sy, qx, qy = image_episodes(1, ways=3, seed=3, dtype=torch.float64)
    first = maml_adapt(model, sx[0], sy[0], qx[0], qy[0], steps=3, first_order=True)
    second = maml_adapt(model, sx[0], sy[0], qx[0], qy[0], steps=3, first_order=False)
    torch.testing.assert_close(first.logits, second.logits, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch_norm", ["transductive", "running"])
def test_maml_adapt_batch_vmap_equals_per_episode_loop_tiny(batch_norm: str) -> None:
    model = _with_running_stats(TinyCNN(seed=4).double(), seed=4)
    before = state_copy(model)
    sx, sy, qx, qy = image_episodes(4, ways=3, shots=2, seed=4, dtype=torch.float64)
    options = {"steps": 3, "lr": 0.5, "batch_norm": batch_norm}
    vmapped = maml_adapt_batch(model, sx, sy, qx, qy, vectorize=True, chunk_size=3, **options)
    looped = maml_adapt_batch(model, sx, sy, qx, qy, vectorize=False, **options)
    assert_state_equal(model, before)
    for e in range(4):
        single = maml_adapt(model, sx[e], sy[e], qx[e], qy[e], **options)
        assert torch.equal(vmapped.predictions[e], single.predictions)
        torch.testing.assert_close(vmapped.logits[e], single.logits, rtol=0, atol=1e-10)
        torch.testing.assert_close(looped.logits[e], single.logits, rtol=0, atol=0)
        assert vmapped.accuracy[e] == single.accuracy
        assert vmapped.loss[e] == pytest.approx(single.loss, rel=1e-10)


def test_maml_adapt_batch_vmap_equals_loop_on_omniglot_cnn() -> None:
    """The adapted predictions (not meta-gradients) are right under vmap with affine BN."""
    model = omniglot_cnn(seed=5, dtype=torch.float64)
    before = state_copy(model)
    sx, sy, qx, qy = image_episodes(2, seed=5, dtype=torch.float64)
    vmapped = maml_adapt_batch(model, sx, sy, qx, qy, vectorize=True)
    for e in range(2):
        single = maml_adapt(model, sx[e], sy[e], qx[e], qy[e])
        assert torch.equal(vmapped.predictions[e], single.predictions)
        torch.testing.assert_close(vmapped.logits[e], single.logits, rtol=0, atol=1e-10)
    assert_state_equal(model, before)


def test_maml_adapt_batch_float32_agrees_with_loop() -> None:
    model = omniglot_cnn(seed=6)
    sx, sy, qx, qy = image_episodes(2, seed=6)
    vmapped = maml_adapt_batch(model, sx, sy, qx, qy, steps=2, vectorize=True)
    looped = maml_adapt_batch(model, sx, sy, qx, qy, steps=2, vectorize=False)
    assert torch.equal(vmapped.predictions, looped.predictions)
    torch.testing.assert_close(vmapped.logits, looped.logits, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------


def test_finetune_without_steps_is_the_model_itself() -> None:
    model = TinyCNN(seed=7).double()
    sx, sy, qx, qy = image_episodes(1, ways=3, seed=7, dtype=torch.float64)
    result = finetune(model, sx[0], sy[0], qx[0], qy[0], steps=0)
    with torch.no_grad():
        expected = copy.deepcopy(model).train()(qx[0])
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-12)
    zero = finetune(model, sx[0], sy[0], qx[0], qy[0], steps=0, head="zero", ways=4)
    assert zero.logits.shape == (9, 4)
    assert zero.loss == pytest.approx(math.log(4))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("head", ["meta", "zero", "random"])
def test_finetune_learns_the_support_set_and_leaves_model_unchanged(
    optimizer: str, head: str
) -> None:
    model = TinyCNN(seed=8)
    before = state_copy(model)
    sx, sy, _, _ = image_episodes(1, ways=3, shots=3, seed=8)
    lr = 0.05 if optimizer == "adam" else 0.2
    result = finetune(
        model, sx[0], sy[0], sx[0], sy[0],
        ways=3, steps=60, lr=lr, optimizer=optimizer, head=head,
    )  # fmt: skip
    assert result.accuracy == 1.0
    assert_state_equal(model, before)


def test_finetune_random_head_is_seeded_and_batch_equals_loop() -> None:
    model = TinyCNN(seed=9).double()
    sx, sy, qx, qy = image_episodes(2, ways=3, seed=9, dtype=torch.float64)
    options = {"ways": 3, "steps": 4, "head": "random", "seed": 11}
    batch = finetune_batch(model, sx, sy, qx, qy, **options)
    for e in range(2):
        single = finetune(model, sx[e], sy[e], qx[e], qy[e], **options)
        torch.testing.assert_close(batch.logits[e], single.logits, rtol=0, atol=1e-12)
    other_seed = finetune(model, sx[0], sy[0], qx[0], qy[0], **{**options, "seed": 12})
    assert not torch.allclose(other_seed.logits, batch.logits[0])


def test_finetune_without_classifier_needs_a_fresh_head() -> None:
    model = nn.Module()
    model.features = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 6))
    sx, sy, qx, qy = image_episodes(1, ways=3)
    result = finetune(model, sx[0], sy[0], qx[0], qy[0], ways=3, head="zero", steps=1)
    assert result.logits.shape == (9, 3)
    with pytest.raises(TypeError, match=re.escape("`model.classifier` must be a torch.nn.Linear")):
        finetune(model, sx[0], sy[0], qx[0], qy[0])
    with pytest.raises(ValueError, match=re.escape("`ways` must be given when `head` is 'zero'")):
        finetune(model, sx[0], sy[0], qx[0], qy[0], head="zero")


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_registry_contents() -> None:
    assert sorted(ADAPTATIONS) == ["anil", "finetune", "maml", "prototype", "retrain_head"]
    needs_model = {name: spec.needs_model for name, spec in ADAPTATIONS.items()}
    assert needs_model == {
        "maml": True, "finetune": True, "retrain_head": False, "anil": False, "prototype": False,
    }  # fmt: skip
    assert [name for name, spec in ADAPTATIONS.items() if spec.needs_head] == ["anil"]
    assert ADAPTATIONS["maml"].config == MamlConfig(steps=5, lr=0.4, first_order=True)
    assert isinstance(ADAPTATIONS["finetune"].config, FinetuneConfig)
    assert isinstance(ADAPTATIONS["retrain_head"].config, HeadConfig)
    assert ADAPTATIONS["retrain_head"].config == HeadConfig(steps=100, accelerated=True)
    assert ADAPTATIONS["anil"].config == HeadConfig(steps=100, lr="auto", accelerated=True)
    assert isinstance(ADAPTATIONS["prototype"].config, PrototypeConfig)
    for name, spec in ADAPTATIONS.items():
        assert get_adaptation(name) is spec
        assert spec.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.config.steps = 1  # type: ignore[misc, union-attr]


def test_registry_feature_methods_call_the_functions() -> None:
    support, support_y, query, query_y = feature_episodes(3, seed=10)
    head = (torch.ones(WAYS, 8, dtype=torch.float64), torch.zeros(WAYS, dtype=torch.float64))
    args = (support, support_y, query, query_y)
    config = HeadConfig(steps=5, lr=0.4)
    cases = {
        "retrain_head": retrain_head_batch(*args, ways=WAYS, accelerated=True),
        "anil": retrain_head_batch(*args, ways=WAYS, init=head, accelerated=True),
        "prototype": nearest_prototype_batch(*args, ways=WAYS),
    }
    for name, expected in cases.items():
        spec = get_adaptation(name)
        got = spec.run_batch(*args, ways=WAYS, head=head)
        assert torch.equal(got.logits, expected.logits), name
        single = spec.run(*(a[1] for a in args), ways=WAYS, head=head)
        torch.testing.assert_close(single.logits, expected.logits[1], rtol=0, atol=1e-10)
    changed = get_adaptation("retrain_head").run_batch(*args, ways=WAYS, config=config)
    assert torch.equal(changed.logits, retrain_head_batch(*args, ways=WAYS, steps=5, lr=0.4).logits)
    with pytest.raises(ValueError, match=re.escape("`head` must be the meta-learned (W, b)")):
        get_adaptation("anil").run_batch(*args, ways=WAYS)
    with pytest.raises(TypeError, match=re.escape("`config` must be a HeadConfig for 'anil'")):
        get_adaptation("anil").run_batch(*args, ways=WAYS, head=head, config=MamlConfig())


def test_registry_model_methods_call_the_functions() -> None:
    model = TinyCNN(seed=12).double()
    sx, sy, qx, qy = image_episodes(2, ways=3, seed=12, dtype=torch.float64)
    maml = get_adaptation("maml")
    config = dataclasses.replace(maml.config, steps=2)
    got = maml.run_batch(model, sx, sy, qx, qy, config=config, vectorize=False)
    expected = maml_adapt(model, sx[1], sy[1], qx[1], qy[1], steps=2)
    assert torch.equal(got.logits[1], expected.logits)
    single = maml.run(model, sx[1], sy[1], qx[1], qy[1], config=config)
    assert torch.equal(single.logits, expected.logits)
    tune = get_adaptation("finetune")
    got_tune = tune.run(model, sx[0], sy[0], qx[0], qy[0], config=FinetuneConfig(steps=3))
    expected_tune = finetune(model, sx[0], sy[0], qx[0], qy[0], steps=3)
    assert torch.equal(got_tune.logits, expected_tune.logits)


def test_get_adaptation_unknown_name() -> None:
    message = (
        "`name` must be one of ('anil', 'finetune', 'maml', 'prototype', 'retrain_head'); "
        "got 'reptile'."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_adaptation("reptile")


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            {"support_y": torch.tensor([0, 1, 2, 3])},
            ValueError,
            "`support_y` must be of shape (10,); got (4,).",
        ),
        (
            {"query_feats": torch.zeros(20, 7, dtype=torch.float64)},
            ValueError,
            "`query_feats` must have the per-example shape of `support_feats` (8,); got (7,).",
        ),
        (
            {"query_y": torch.full((20,), 5)},
            ValueError,
            "`query_y` must be labels in 0..4; got values in 5..5.",
        ),
        (
            {"support_y": torch.full((10,), -1)},
            ValueError,
            "`support_y` must be labels in 0..4; got values in -1..-1.",
        ),
        (
            {"support_y": torch.zeros(10)},
            TypeError,
            "`support_y` must be integers; got dtype torch.float32.",
        ),
        (
            {"support_feats": torch.zeros(10, 8, dtype=torch.int64)},
            TypeError,
            "`support_feats` must be floating point; got dtype torch.int64.",
        ),
        (
            {"support_feats": torch.full((10, 8), float("nan"))},
            ValueError,
            "`support_feats` must be finite; got NaN or infinite values.",
        ),
        (
            {"support_feats": torch.zeros(2, 10, 8)},
            ValueError,
            "`support_feats` must be of shape (n_s, d); got (2, 10, 8).",
        ),
        ({"steps": -1}, ValueError, "`steps` must be >= 0; got -1."),
        ({"steps": 2.5}, TypeError, "`steps` must be an integer; got 2.5."),
        ({"lr": 0.0}, ValueError, "`lr` must be a finite number > 0; got 0.0."),
        (
            {"weight_decay": -1.0},
            ValueError,
            "`weight_decay` must be a finite number >= 0; got -1.0.",
        ),
        ({"ways": 0}, ValueError, "`ways` must be >= 1; got 0."),
        (
            {"init": (torch.zeros(WAYS, 3), torch.zeros(WAYS))},
            ValueError,
            "`init[0]` must be of shape (5, 8); got (5, 3).",
        ),
        (
            {"init": torch.zeros(5, 8)},
            TypeError,
            "`init` must be None or a pair (W, b); got 'Tensor'.",
        ),
    ],
)  # fmt: skip
def test_retrain_head_bad_inputs(change: dict[str, object], error: type, message: str) -> None:
    support, support_y, query, query_y = feature_episodes(1)
    kwargs: dict[str, object] = {
        "support_feats": support[0], "support_y": support_y[0], "query_feats": query[0],
        "query_y": query_y[0], "ways": WAYS,
    }  # fmt: skip
    kwargs.update(change)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        retrain_head(**kwargs)  # type: ignore[arg-type]


def test_batched_feature_bad_inputs() -> None:
    support, support_y, query, query_y = feature_episodes(3)
    with pytest.raises(
        ValueError,
        match=re.escape("`query_feats` must hold as many episodes as `support_feats` (3)"),
    ):
        nearest_prototype_batch(support, support_y, query[:2], query_y[:2], ways=WAYS)
    with pytest.raises(ValueError, match=re.escape("`init[0]` must be of shape (3, 5, 8)")):
        retrain_head_batch(
            support, support_y, query, query_y, ways=WAYS,
            init=(torch.zeros(2, WAYS, 8), torch.zeros(2, WAYS)),
        )  # fmt: skip
    with pytest.raises(
        ValueError, match=re.escape("`support_feats` must be of shape (E, n_s, d); got (10, 8).")
    ):
        retrain_head_batch(support[0], support_y[0], query[0], query_y[0], ways=WAYS)


def test_model_bad_inputs() -> None:
    model = TinyCNN(ways=3)
    sx, sy, qx, qy = image_episodes(2, ways=3)
    with pytest.raises(ValueError, match=re.escape("`support_y` must be labels in 0..2")):
        maml_adapt(model, sx[0], sy[0] + 1, qx[0], qy[0])
    with pytest.raises(ValueError, match=re.escape("`ways` must equal the meta-learned head's")):
        maml_adapt(model, sx[0], sy[0], qx[0], qy[0], ways=5)
    with pytest.raises(ValueError, match=re.escape("`steps` must be >= 0; got -2.")):
        maml_adapt(model, sx[0], sy[0], qx[0], qy[0], steps=-2)
    with pytest.raises(ValueError, match=re.escape("`batch_norm` must be one of")):
        maml_adapt(model, sx[0], sy[0], qx[0], qy[0], batch_norm="eval")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("`query_x` must have the per-example shape")):
        maml_adapt(model, sx[0], sy[0], qx[0, :, :, :20], qy[0])
    with pytest.raises(ValueError, match=re.escape("`support_x` must be of shape (E, n_s, ...)")):
        maml_adapt_batch(model, sx[0, :, 0, 0], sy[0], qx[0], qy[0])
    with pytest.raises(ValueError, match=re.escape("`chunk_size` must be None or an integer")):
        maml_adapt_batch(model, sx, sy, qx, qy, chunk_size=0)
    with pytest.raises(TypeError, match=re.escape("`support_x` must be floating point")):
        maml_adapt(model, (sx[0] * 255).to(torch.uint8), sy[0], qx[0], qy[0])
    with pytest.raises(TypeError, match=re.escape("`model.features` must be a torch.nn.Module")):
        maml_adapt(nn.Linear(3, 3), sx[0], sy[0], qx[0], qy[0])
    with pytest.raises(ValueError, match=re.escape("`optimizer` must be one of ('sgd', 'adam')")):
        finetune(model, sx[0], sy[0], qx[0], qy[0], optimizer="rmsprop")  # type: ignore[arg-type]


def test_configs_validate() -> None:
    with pytest.raises(ValueError, match=re.escape("`momentum` must be in [0, 1); got 1.0.")):
        FinetuneConfig(momentum=1.0)
    with pytest.raises(TypeError, match=re.escape("`first_order` must be a bool; got 1.")):
        MamlConfig(first_order=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("`lr` must be a finite number > 0; got inf.")):
        HeadConfig(lr=float("inf"))
    assert HeadConfig(lr="auto").lr == "auto"


# --------------------------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------------------------


@needs_cuda
def test_cuda_feature_methods_equal_cpu() -> None:
    support, support_y, query, query_y = feature_episodes(4, seed=13)
    args = (support, support_y, query, query_y)
    for fn in (retrain_head_batch, nearest_prototype_batch):
        cpu = fn(*args, ways=WAYS)
        gpu = fn(*(a.cuda() for a in args), ways=WAYS)
        assert gpu.logits.device.type == "cuda"
        assert torch.equal(gpu.predictions.cpu(), cpu.predictions)
        torch.testing.assert_close(gpu.logits.cpu(), cpu.logits, rtol=0, atol=1e-9)


@needs_cuda
def test_cuda_maml_adapt_batch_equals_cpu_loop() -> None:
    model = omniglot_cnn(seed=14, dtype=torch.float64)
    sx, sy, qx, qy = image_episodes(3, seed=14, dtype=torch.float64)
    cpu = maml_adapt_batch(model, sx, sy, qx, qy, vectorize=False)
    gpu = maml_adapt_batch(copy.deepcopy(model).cuda(), sx, sy, qx, qy)  # vmap on the GPU
    assert gpu.logits.device.type == "cuda"
    assert torch.equal(gpu.predictions.cpu(), cpu.predictions)
    torch.testing.assert_close(gpu.logits.cpu(), cpu.logits, rtol=0, atol=1e-8)


# --------------------------------------------------------------------------------------------
# Settings per backbone
# --------------------------------------------------------------------------------------------


def test_backbone_config_uses_the_training_inner_loop_where_it_repeats_training() -> None:
    inner = {"steps": 1, "lr": 0.25, "first_order": False}
    for algorithm in ("maml", "fomaml"):
        assert backbone_config("maml", algorithm, inner) == MamlConfig(
            steps=1, lr=0.25, first_order=False
        )
    assert backbone_config("maml", "maml", {}) == ADAPTATIONS["maml"].config
    assert backbone_config("maml", "maml", {"lr": 0.1}) == MamlConfig(steps=5, lr=0.1)
    # ANIL repeats training only on an ANIL backbone; elsewhere the converging default
    assert backbone_config("anil", "anil", inner) == HeadConfig(steps=1, lr=0.25)
    assert backbone_config("anil", "anil", {}) == HeadConfig(steps=5, lr=0.4)
    for algorithm in ("maml", "fomaml"):
        assert backbone_config("anil", algorithm, inner) is ADAPTATIONS["anil"].config
    for name in ("retrain_head", "prototype", "finetune"):
        assert backbone_config(name, "maml", inner) is ADAPTATIONS[name].config
    message = "`inner` must hold only steps, lr and first_order; got unknown keys ['momentum']."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        backbone_config("maml", "maml", {"momentum": 0.9})
    with pytest.raises(ValueError, match=re.escape("`steps` must be >= 0; got -1.")):
        backbone_config("maml", "maml", {"steps": -1})


def test_adaptation_settings_record_each_backbone() -> None:
    from types import SimpleNamespace

    def backbone(name, algorithm, inner, head_ways):
        offers = {
            "maml": algorithm in ("maml", "fomaml"),
            "anil": head_ways is not None,
        }
        return SimpleNamespace(
            name=name,
            algorithm=algorithm,
            inner=inner,
            head_ways=head_ways,
            offers_adaptation=lambda a, ways: offers.get(a, True),
        )

    settings = adaptation_settings(
        ["maml", "anil", "prototype"],
        [
            backbone("m", "maml", {"steps": 1, "lr": 0.4, "first_order": False}, 5),
            backbone("s", "supervised", {}, None),
        ],
    )
    assert settings["m"]["maml"] == {
        "steps": 1, "lr": 0.4, "first_order": False, "batch_norm": "transductive",
        "from_training": True,
    }  # fmt: skip
    assert settings["m"]["anil"]["from_training"] is False
    assert settings["m"]["anil"]["accelerated"] is True
    assert settings["m"]["prototype"] == {"from_training": False}
    assert settings["s"] == {"prototype": {"from_training": False}}


def test_head_config_checks_accelerated() -> None:
    with pytest.raises(TypeError, match=re.escape("`accelerated` must be a bool; got 1.")):
        HeadConfig(accelerated=1)  # type: ignore[arg-type]
