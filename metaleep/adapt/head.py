"""Adaptation over cached features: a linear head trained by gradient descent, or prototypes.

A backbone's ``features`` are computed once per episode; these methods adapt only what sits on
top of them, so many episodes are adapted at once with batched tensor operations.

- :func:`retrain_head_batch` / :func:`retrain_head`: full-batch gradient descent on the softmax
  cross-entropy of a linear head ``W x + b``, from zero (the "retrain head" baseline) or from
  the meta-learned head (ANIL's inner loop, Raghu et al., ICLR 2020).
- :func:`nearest_prototype_batch` / :func:`nearest_prototype`: ProtoNet's nearest class mean
  (Snell et al., NeurIPS 2017), logits ``-||x - c_k||^2``.

Each is one batched core; :func:`metaleep.adapt.spec.define_adaptation` derives the batched and
the single-episode function from it, with the settings as a config (:class:`HeadConfig`,
:class:`PrototypeConfig`) or as keyword overrides of its fields.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from metaleep._exact import matmul, per_matrix
from metaleep.adapt.common import (
    BatchAdaptationResult,
    EpisodeTensors,
    HeadConfig,
    PrototypeConfig,
    as_floats,
    check_finite,
    check_shape,
    score_logits_batch,
)
from metaleep.adapt.prototypes import class_means, prototype_logits
from metaleep.adapt.spec import Extra, define_adaptation

__all__ = [
    "HeadParameters",
    "head_parameters",
    "nearest_prototype",
    "nearest_prototype_batch",
    "retrain_head",
    "retrain_head_batch",
]


class HeadParameters(NamedTuple):
    """A linear head ``W x + b``: what ``init=`` takes (any pair ``(W, b)`` does)."""

    weight: torch.Tensor
    """W, (N, d)."""
    bias: torch.Tensor
    """b, (N,)."""


def head_parameters(model: torch.nn.Module) -> HeadParameters:
    """The meta-learned linear head of ``model`` as detached copies ``(W (N, d), b (N,))``.

    ``model.classifier`` must be an ``nn.Linear``; a head without bias gives ``b = 0``. Pass the
    pair as ``init=`` to :func:`retrain_head` / :func:`retrain_head_batch` for ANIL.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.classifier = torch.nn.Linear(3, 2)
    >>> weight, bias = head_parameters(model)
    >>> tuple(weight.shape), tuple(bias.shape)
    ((2, 3), (2,))
    """
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, torch.nn.Linear):
        raise TypeError(
            f"`model.classifier` must be a torch.nn.Linear; got {type(classifier).__name__!r}."
        )
    weight = classifier.weight.detach().clone()
    if classifier.bias is None:
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    else:
        bias = classifier.bias.detach().clone()
    return HeadParameters(weight, bias)


def _initial_head(
    init: object, *, episodes: int, ways: int, dim: int, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``init`` as fresh (E, N, d) and (E, N) tensors (zeros when None)."""
    if init is None:
        weight = torch.zeros(episodes, ways, dim, dtype=like.dtype, device=like.device)
        return weight, torch.zeros(episodes, ways, dtype=like.dtype, device=like.device)
    if not isinstance(init, tuple | list) or len(init) != 2:
        raise TypeError(f"`init` must be None or a pair (W, b); got {type(init).__name__!r}.")
    weight = as_floats(init[0], "init[0]").to(device=like.device, dtype=like.dtype)
    bias = as_floats(init[1], "init[1]").to(device=like.device, dtype=like.dtype)
    if weight.ndim == 2:
        check_shape(weight, "init[0]", (ways, dim))
        check_shape(bias, "init[1]", (ways,))
        weight = weight.expand(episodes, ways, dim)
        bias = bias.expand(episodes, ways)
    else:
        check_shape(weight, "init[0]", (episodes, ways, dim))
        check_shape(bias, "init[1]", (episodes, ways))
    check_finite(weight, "init[0]")
    check_finite(bias, "init[1]")
    return weight.clone(), bias.clone()


def _auto_step(support: torch.Tensor, weight_decay: float) -> torch.Tensor:
    """Per-episode step 1 / L, L = sigma_max([X, 1])^2 / (2 n_s) + weight_decay; shape (E,)."""
    ones = torch.ones(*support.shape[:2], 1, dtype=support.dtype, device=support.device)
    augmented = torch.cat([support, ones], dim=-1)
    sigma = per_matrix(lambda m: torch.linalg.matrix_norm(m, ord=2), augmented)
    return 1.0 / (sigma.square() / (2 * support.shape[1]) + weight_decay)


def _gradient_step(head: torch.Tensor, residual: torch.Tensor, scaled: torch.Tensor) -> None:
    """``head -= residual^T scaled`` per episode, in place, summing over the support examples
    in their order: (E, N, d+1) -= sum_i (E, N, 1) * (E, 1, d+1). The same arithmetic for any
    number of episodes E."""
    for i in range(residual.shape[1]):
        head.sub_(residual[:, i].unsqueeze(-1) * scaled[:, i].unsqueeze(-2))


def _retrain_head_core(
    tensors: EpisodeTensors, *, ways: int, config: HeadConfig, init: object = None
) -> BatchAdaptationResult:
    support, support_y, query, query_y = tensors
    episodes, n_support, dim = support.shape
    weight, bias = _initial_head(init, episodes=episodes, ways=ways, dim=dim, like=support)
    if config.lr == "auto":
        step = _auto_step(support, config.weight_decay)
    else:
        step = torch.full((episodes,), float(config.lr), dtype=support.dtype, device=support.device)
    # The bias folds into an augmented head: logits = [X, 1] [W, b]^T. The step and the 1/n_s
    # of the mean fold into a pre-scaled copy of [X, 1], so one step is:
    #   residual = softmax([X, 1] [W, b]^T) - onehot(y)
    #   [W, b] *= [1 - lr * weight_decay, 1]            (only with weight decay)
    #   [W, b] -= residual^T ([X, 1] * lr / n_s)
    # The last product is summed over the support examples one at a time (n_s elementwise
    # kernels, _gradient_step), not by bmm: bmm's CPU kernels sum in another order for odd
    # batch sizes and for one episode (seen with N = 5, float32 and float64), which would make
    # an episode's head depend on how many episodes share its call (the study's chunking).
    # The logits are products of metaleep._exact.matmul for the same reason.
    ones = torch.ones(episodes, n_support, 1, dtype=support.dtype, device=support.device)
    augmented = torch.cat([support, ones], dim=-1)  # (E, n_s, d + 1)
    scaled = augmented * (step / n_support).view(episodes, 1, 1)
    head = torch.cat([weight, bias.unsqueeze(-1)], dim=-1)  # (E, N, d + 1)
    onehot = torch.nn.functional.one_hot(support_y, ways).to(support.dtype)
    shrink = None
    if config.weight_decay:
        shrink = torch.ones(episodes, 1, dim + 1, dtype=support.dtype, device=support.device)
        shrink[:, :, :dim] -= (step * float(config.weight_decay)).view(episodes, 1, 1)
    start_logits = matmul(augmented, head.transpose(1, 2))
    # Accelerated: the step is taken from the extrapolated point Y_k (``point``), and
    # Y_{k+1} = H_{k+1} + k / (k + 3) (H_{k+1} - H_k) (k from 0: Nesterov's (k-1)/(k+2)).
    point = head.clone() if config.accelerated else head
    for k in range(config.steps):
        logits = start_logits if k == 0 else matmul(augmented, point.transpose(1, 2))
        residual = torch.softmax(logits, dim=-1)
        residual.sub_(onehot)  # (E, n_s, N)
        if not config.accelerated:
            if shrink is not None:
                head.mul_(shrink)
            _gradient_step(head, residual, scaled)
            continue
        new = point * shrink if shrink is not None else point.clone()
        _gradient_step(new, residual, scaled)
        point = new + (k / (k + 3)) * (new - head)
        head = new
    query_logits = matmul(query, head[:, :, :dim].transpose(1, 2)) + head[:, :, dim].unsqueeze(1)
    support_logits = matmul(augmented, head.transpose(1, 2))
    return score_logits_batch(query_logits, query_y).with_support(
        support_logits, support_y, start_logits
    )


_INIT = Extra(
    "init",
    None,
    "None: a zero head (retrain from scratch). ``(W (N, d), b (N,))``: start from the "
    "meta-learned head (ANIL's inner loop); see :func:`head_parameters`.",
    batch_doc="None: a zero head. ``(W (N, d), b (N,))`` shared by all episodes or "
    "``(W (E, N, d), b (E, N))`` per episode: start from the meta-learned head (ANIL's inner "
    "loop); see :func:`head_parameters`.",
    annotation="tuple[Tensor | ndarray, Tensor | ndarray] | None",
)

retrain_head, retrain_head_batch = define_adaptation(
    name="retrain_head",
    core=_retrain_head_core,
    config=HeadConfig,
    inputs="features",
    title="Train a linear softmax head on the support features and score the queries",
    summary="""
    Full-batch gradient descent (or Nesterov's accelerated gradient, ``accelerated``) on
    ``J(W, b) = mean_i CE(W x_i + b, y_i) + weight_decay / 2 * ||W||_F^2`` with the
    hand-derived gradient ``dJ/dW = (softmax(X W^T + b) - onehot(y))^T X / n_s +
    weight_decay * W`` and ``dJ/db = sum_i (softmax(...) - onehot(y))_i / n_s``, for all
    episodes at once, in the features' floating dtype on their device. Deterministic: an
    episode's head does not depend on the other episodes of its call.
    """,
    extras=(_INIT,),
    module=__name__,
    examples="""
    >>> import torch
    >>> feats = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.5, 0.1], [0.2, 1.0]])
    >>> labels = torch.tensor([0, 1, 0, 1])
    >>> result = retrain_head(feats[:2], labels[:2], feats[2:], labels[2:], ways=2)
    >>> result.accuracy, result.predictions.tolist()
    (1.0, [0, 1])
    >>> anil = retrain_head(
    ...     feats[:2], labels[:2], feats[2:], labels[2:], ways=2, steps=0,
    ...     init=(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.zeros(2)),
    ... )
    >>> anil.accuracy
    0.0
    """,
    batch_examples="""
    >>> import torch
    >>> support = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    >>> labels = torch.tensor([[0, 1], [0, 1]])
    >>> config = HeadConfig(steps=50)
    >>> result = retrain_head_batch(support, labels, support, labels, ways=2, config=config)
    >>> result.accuracy.tolist(), result.predictions.tolist()
    ([1.0, 1.0], [[0, 1], [0, 1]])
    """,
)


def _nearest_prototype_core(
    episodes: EpisodeTensors, *, ways: int, config: PrototypeConfig
) -> BatchAdaptationResult:
    support, support_y, query, query_y = episodes
    prototypes = class_means(support, support_y, ways, name="support_y")  # (E, N, d)
    return score_logits_batch(prototype_logits(query, prototypes), query_y).with_support(
        prototype_logits(support, prototypes), support_y
    )


nearest_prototype, nearest_prototype_batch = define_adaptation(
    name="nearest_prototype",
    core=_nearest_prototype_core,
    config=PrototypeConfig,
    inputs="features",
    title="Classify the queries by the nearest class mean of the support features (ProtoNet)",
    summary="""
    Prototype ``c_k`` = mean of the support features of class k (every class 0..ways-1 must
    occur in every episode); query logits ``-||x - c_k||^2`` (squared Euclidean distance, Snell
    et al., NeurIPS 2017, :func:`~metaleep.adapt.prototypes.prototype_logits`); accuracy of the
    arg-max and log-loss of the softmax over these logits.
    """,
    module=__name__,
    examples="""
    >>> import torch
    >>> support = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    >>> result = nearest_prototype(
    ...     support, torch.tensor([0, 1]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]), ways=2
    ... )
    >>> result.logits.tolist(), result.accuracy
    ([[-1.0, -9.0]], 1.0)
    """,
    batch_examples="""
    >>> import torch
    >>> support = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]]])
    >>> query = torch.tensor([[[1.0, 0.0], [0.0, 4.0]]])
    >>> result = nearest_prototype_batch(
    ...     support, torch.tensor([[0, 0, 1, 1]]), query, torch.tensor([[0, 1]]), ways=2
    ... )
    >>> result.logits.tolist()
    [[[-0.0, -26.0], [-17.0, -1.0]]]
    >>> result.accuracy.tolist()
    [1.0]
    """,
)

__test__ = {
    "retrain_head": retrain_head,
    "retrain_head_batch": retrain_head_batch,
    "nearest_prototype": nearest_prototype,
    "nearest_prototype_batch": nearest_prototype_batch,
}
