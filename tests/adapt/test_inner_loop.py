"""Tests of metaleep/adapt/inner_loop.py: MAML's one inner loop.

References: a step computed by hand, a plain in-place SGD loop on a deep copy (the equation
``θ <- θ - lr ∇θ CE``), central finite differences of the meta-loss (second order), and
learn2learn's ``MAML.clone()`` / ``adapt()`` (adapted values and meta-gradients, bit for bit).
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from metaleep.adapt.inner_loop import (
    InnerLoop,
    functional_forward,
    private_buffers,
    sgd_step,
)
from metaleep.backbones.models import build_backbone


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)


def _episode(
    n: int = 6, ways: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=gen).to(dtype)
    return x, torch.arange(n) % ways


def _mlp(seed: int = 0) -> nn.Module:
    """A smooth network with affine BatchNorm (float64): finite differences are reliable."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3)
    ).double()


# --------------------------------------------------------------------------------------------
# The values
# --------------------------------------------------------------------------------------------


def test_one_step_by_hand() -> None:
    # zero head: softmax 1/2 everywhere, dCE/dlogits = (1/2 - onehot) / n, dW = dlogits^T x
    head = nn.Linear(2, 2)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    x, y = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    adapted = InnerLoop(steps=1, lr=0.5).adapt(head, dict(head.named_parameters()), x, y)
    # dW = [[-1/4, 1/2], [1/4, -1/2]], db = 0; W = -0.5 dW
    assert torch.equal(adapted["weight"], torch.tensor([[0.125, -0.25], [-0.125, 0.25]]))
    assert torch.equal(adapted["bias"], torch.zeros(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("train_mode", [True, False])
def test_equals_a_plain_sgd_loop_bit_for_bit(dtype: torch.dtype, train_mode: bool) -> None:
    model = build_backbone("conv2-8", out_features=3, seed=1).to(dtype)
    with torch.no_grad():  # non-trivial running statistics for eval mode
        model.train()(torch.rand(8, 1, 28, 28, dtype=dtype))
    model.train(train_mode)
    x, y = _episode(dtype=dtype)
    query, _ = _episode(9, seed=1, dtype=dtype)

    plain = copy.deepcopy(model)
    params = list(plain.parameters())
    for _ in range(3):
        grads = torch.autograd.grad(F.cross_entropy(plain(x), y), params)
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                param -= 0.3 * grad
    with torch.no_grad():
        expected = plain(query)

    loop = InnerLoop(steps=3, lr=0.3)
    start = {k: p.detach().requires_grad_() for k, p in model.named_parameters()}
    buffers = private_buffers(model)
    adapted = loop.adapt(model, start, x, y, buffers=buffers)
    for name, param in plain.named_parameters():
        assert torch.equal(adapted[name], param), name
    assert torch.equal(functional_forward(model, adapted, buffers, query), expected)
    assert torch.equal(loop.query_logits(model, x, y, query), expected)


def test_second_order_meta_gradient_against_finite_differences() -> None:
    model = _mlp().train()
    gen = torch.Generator().manual_seed(1)
    xs, xq = torch.randn(6, 12, generator=gen).double(), torch.randn(9, 12, generator=gen).double()
    ys, yq = torch.arange(6) % 3, torch.arange(9) % 3
    names = [name for name, _ in model.named_parameters()]

    def meta_loss(params: dict[str, torch.Tensor], second_order: bool) -> torch.Tensor:
        loop = InnerLoop(steps=2, lr=0.7, second_order=second_order)
        buffers = private_buffers(model)
        adapted = loop.adapt(model, params, xs, ys, buffers=buffers)
        return F.cross_entropy(functional_forward(model, adapted, buffers, xq), yq)

    start = {k: p.detach().clone().requires_grad_() for k, p in model.named_parameters()}
    second = torch.autograd.grad(meta_loss(start, True), [start[k] for k in names])
    first = torch.autograd.grad(meta_loss(start, False), [start[k] for k in names])
    direction = {k: torch.randn(p.shape, generator=gen).double() for k, p in start.items()}
    eps = 1e-6
    with torch.no_grad():  # (leaves that require grad: the loop adapts only those)
        plus = {k: (p + eps * direction[k]).requires_grad_() for k, p in start.items()}
        minus = {k: (p - eps * direction[k]).requires_grad_() for k, p in start.items()}
    numeric = float((meta_loss(plus, False) - meta_loss(minus, False)).detach()) / (2 * eps)
    analytic = sum(float((g * direction[k]).sum()) for k, g in zip(names, second, strict=True))
    approx = sum(float((g * direction[k]).sum()) for k, g in zip(names, first, strict=True))
    assert analytic == pytest.approx(numeric, rel=1e-6)
    assert abs(approx - numeric) > 1e-3 * abs(numeric)  # first order is another gradient

    # first order: the query-loss gradient at the adapted parameters (FOMAML's definition)
    adapted = InnerLoop(steps=2, lr=0.7).adapt(model, start, xs, ys)
    frozen = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    at_adapted = torch.autograd.grad(
        F.cross_entropy(functional_forward(model, frozen, private_buffers(model), xq), yq),
        [frozen[k] for k in names],
    )
    for a, b in zip(first, at_adapted, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


@pytest.mark.parametrize("second_order", [True, False])
def test_equals_learn2learn_values_and_meta_gradients(second_order: bool) -> None:
    l2l = pytest.importorskip("learn2learn")
    model = build_backbone("conv2-8", out_features=3, seed=2).train()
    theirs, ours = copy.deepcopy(model), copy.deepcopy(model)
    x, y = _episode(seed=3)
    query, query_y = _episode(9, seed=4)

    learner = l2l.algorithms.MAML(theirs, lr=0.4, first_order=not second_order).clone()
    for sub in learner.modules():  # private buffers, as the engine's
        sub._buffers = {k: None if b is None else b.clone() for k, b in sub._buffers.items()}
    for _ in range(2):
        learner.adapt(F.cross_entropy(learner(x), y))
    expected = learner(query)
    F.cross_entropy(expected, query_y).backward()

    loop = InnerLoop(steps=2, lr=0.4, second_order=second_order)
    buffers = private_buffers(ours)
    adapted = loop.adapt(ours, dict(ours.named_parameters()), x, y, buffers=buffers)
    logits = functional_forward(ours, adapted, buffers, query)
    F.cross_entropy(logits, query_y).backward()

    assert torch.equal(logits, expected)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert a.grad is not None and torch.equal(a.grad, b.grad), name


# --------------------------------------------------------------------------------------------
# What it leaves alone
# --------------------------------------------------------------------------------------------


def test_the_callers_model_is_never_written() -> None:
    model = build_backbone("conv2-8", out_features=3, seed=5).train()
    before = _state(model)
    x, y = _episode(seed=5)
    buffers = private_buffers(model)
    loop = InnerLoop(steps=2, lr=0.4, second_order=True)
    adapted = loop.adapt(model, dict(model.named_parameters()), x, y, buffers=buffers)
    F.cross_entropy(functional_forward(model, adapted, buffers, x), y).backward()
    assert _same_state(model, before)  # weights and running statistics
    key = "features.0.0.normalize.running_mean"
    assert not torch.equal(buffers[key], before[key])  # the private copies took the updates
    logits = loop.query_logits(model, x, y, x)
    assert _same_state(model, before) and model.training
    assert not logits.requires_grad


def test_learn2learn_clones_share_buffers_the_engine_does_not() -> None:
    """The trap the private buffers avoid: a learn2learn clone updates the original's."""
    l2l = pytest.importorskip("learn2learn")
    x, y = _episode(seed=6)
    net = build_backbone("conv2-8", out_features=3).train()
    before = net.features[0][0].normalize.running_mean.clone()
    clone = l2l.algorithms.MAML(net, lr=0.1).clone()
    clone(x)
    assert not torch.equal(net.features[0][0].normalize.running_mean, before)

    net = build_backbone("conv2-8", out_features=3).train()
    InnerLoop(steps=1, lr=0.1).query_logits(net, x, y, x)
    assert torch.equal(net.features[0][0].normalize.running_mean, before)


def test_frozen_and_unused_parameters_are_kept() -> None:
    model = nn.Module()
    model.linear = nn.Linear(4, 2)
    model.unused = nn.Parameter(torch.ones(3))
    model.forward = lambda x: model.linear(x)  # type: ignore[method-assign]
    x, y = torch.eye(4), torch.tensor([0, 1, 0, 1])
    params = dict(model.named_parameters())
    params["linear.bias"] = params["linear.bias"].detach()  # frozen
    adapted = InnerLoop(steps=2, lr=0.5).adapt(model, params, x, y)
    assert adapted["unused"] is params["unused"]
    assert adapted["linear.bias"] is params["linear.bias"]
    assert not torch.equal(adapted["linear.weight"], params["linear.weight"])
    unchanged = InnerLoop(steps=0, lr=0.5).adapt(model, params, x, y)
    assert all(unchanged[k] is params[k] for k in params)


def test_sgd_step_keeps_parameters_without_gradients() -> None:
    params = {"a": torch.tensor([1.0]), "b": torch.tensor([2.0])}
    out = sgd_step(params, {"a": torch.tensor([4.0]), "b": None}, lr=0.25)
    assert torch.equal(out["a"], torch.tensor([0.0])) and out["b"] is params["b"]


# --------------------------------------------------------------------------------------------
# Batched execution (vmap) = the same step rule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train_mode", [True, False])
def test_vmap_equals_the_loop(train_mode: bool) -> None:
    model = build_backbone("conv2-8", out_features=3, seed=7).double()
    with torch.no_grad():
        model.train()(torch.rand(8, 1, 28, 28, dtype=torch.float64))
    model.train(train_mode)
    before = _state(model)
    episodes = [_episode(seed=s, dtype=torch.float64) for s in range(4)]
    sx = torch.stack([x for x, _ in episodes])
    sy = torch.stack([y for _, y in episodes])
    loop = InnerLoop(steps=3, lr=0.4)
    batched = loop.query_logits_vmap(model, sx, sy, sx, chunk_size=3)
    for e in range(4):
        expected = loop.query_logits(model, sx[e], sy[e], sx[e])
        torch.testing.assert_close(batched[e], expected, rtol=0, atol=1e-10)
    assert _same_state(model, before) and model.training is train_mode
    assert model.features[0][0].normalize.running_mean is not None


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": -1}, ValueError, "`steps` must be >= 0; got -1."),
        ({"steps": 1.5}, TypeError, "`steps` must be an integer; got 1.5."),
        ({"steps": True}, TypeError, "`steps` must be an integer; got True."),
        ({"lr": 0.0}, ValueError, "`lr` must be a finite number > 0; got 0.0."),
        ({"lr": float("nan")}, ValueError, "`lr` must be a finite number > 0; got nan."),
        ({"lr": "0.1"}, TypeError, "`lr` must be a real number; got '0.1'."),
        ({"second_order": 1}, TypeError, "`second_order` must be a bool; got 1."),
    ],
)
def test_bad_configuration(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        InnerLoop(**kwargs)
