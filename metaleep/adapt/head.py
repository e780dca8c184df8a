"""Adaptation over cached features: a linear head trained by gradient descent, or prototypes.

A backbone's ``features`` are computed once per episode; these methods adapt only what sits on
top of them, so many episodes are adapted at once with batched tensor operations.

- :func:`retrain_head_batch` / :func:`retrain_head`: full-batch gradient descent on the softmax
  cross-entropy of a linear head ``W x + b``, from zero (the "retrain head" baseline) or from
  the meta-learned head (ANIL's inner loop, Raghu et al., ICLR 2020).
- :func:`nearest_prototype_batch` / :func:`nearest_prototype`: ProtoNet's nearest class mean
  (Snell et al., NeurIPS 2017), logits ``-||x - c_k||^2``.

Each per-episode function is the batched one with E = 1: one implementation of the maths.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from metaleep._exact import matmul, per_matrix
from metaleep.adapt.common import (
    AdaptationResult,
    BatchAdaptationResult,
    HeadConfig,
    as_floats,
    check_episode_tensors,
    check_finite,
    check_shape,
    check_ways,
    score_logits_batch,
)

__all__ = [
    "head_parameters",
    "nearest_prototype",
    "nearest_prototype_batch",
    "retrain_head",
    "retrain_head_batch",
]

_FEATURE_NAMES = ("support_feats", "query_feats")


def head_parameters(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
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
    return weight, bias


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
    support: torch.Tensor,
    support_y: torch.Tensor,
    query: torch.Tensor,
    query_y: torch.Tensor,
    *,
    ways: int,
    config: HeadConfig,
    init: object,
) -> BatchAdaptationResult:
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


def retrain_head_batch(
    support_feats: torch.Tensor | np.ndarray,
    support_y: torch.Tensor | np.ndarray,
    query_feats: torch.Tensor | np.ndarray,
    query_y: torch.Tensor | np.ndarray,
    *,
    ways: int,
    steps: int = 100,
    lr: float | Literal["auto"] = "auto",
    weight_decay: float = 0.0,
    init: tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray] | None = None,
    accelerated: bool = False,
) -> BatchAdaptationResult:
    """Train a linear softmax head on each of E episodes' support features; score the queries.

    Full-batch gradient descent on
    ``J(W, b) = mean_i CE(W x_i + b, y_i) + weight_decay / 2 * ||W||_F^2`` with the hand-derived
    gradient ``dJ/dW = (softmax(X W^T + b) - onehot(y))^T X / n_s + weight_decay * W`` and
    ``dJ/db = sum_i (softmax(...) - onehot(y))_i / n_s``, computed for all episodes at once
    with ``bmm``. Deterministic.

    Parameters
    ----------
    support_feats:
        Float array of shape (E, n_s, d).
    support_y:
        Integer array of shape (E, n_s), labels in 0..ways-1.
    query_feats:
        Float array of shape (E, n_q, d).
    query_y:
        Integer array of shape (E, n_q), labels in 0..ways-1.
    ways:
        N, the number of classes (rows of W).
    steps:
        Gradient-descent steps (>= 0; 0 scores the initial head).
    lr:
        Step size (> 0) or ``"auto"`` (per-episode ``1 / L``, see :class:`HeadConfig`).
    weight_decay:
        L2 coefficient on W (>= 0).
    init:
        None: zero head (retrain from scratch). ``(W (N, d), b (N,))`` shared by all episodes
        or ``(W (E, N, d), b (E, N))`` per episode: start from the meta-learned head (ANIL's
        inner loop); see :func:`head_parameters`.
    accelerated:
        Nesterov's accelerated gradient instead of plain gradient descent (see
        :class:`~metaleep.adapt.common.HeadConfig`).

    Returns
    -------
    BatchAdaptationResult
        Per-episode query accuracy and log-loss (E,), query logits (E, n_q, N), the support
        log-loss of the final head and the spread of the starting head's support logits (E,),
        computed in the features' floating dtype on their device.

    Examples
    --------
    >>> import torch
    >>> support = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    >>> labels = torch.tensor([[0, 1], [0, 1]])
    >>> result = retrain_head_batch(support, labels, support, labels, ways=2, steps=50)
    >>> result.accuracy.tolist()
    [1.0, 1.0]
    >>> result.predictions.tolist()
    [[0, 1], [0, 1]]
    """
    config = HeadConfig(steps=steps, lr=lr, weight_decay=weight_decay, accelerated=accelerated)
    ways = check_ways(ways)
    tensors = check_episode_tensors(
        support_feats,
        support_y,
        query_feats,
        query_y,
        ways=ways,
        batched=True,
        x_names=_FEATURE_NAMES,
        features=True,
    )
    return _retrain_head_core(*tensors, ways=ways, config=config, init=init)


def retrain_head(
    support_feats: torch.Tensor | np.ndarray,
    support_y: torch.Tensor | np.ndarray,
    query_feats: torch.Tensor | np.ndarray,
    query_y: torch.Tensor | np.ndarray,
    *,
    ways: int,
    steps: int = 100,
    lr: float | Literal["auto"] = "auto",
    weight_decay: float = 0.0,
    init: tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray] | None = None,
    accelerated: bool = False,
) -> AdaptationResult:
    """Train a linear softmax head on one episode's support features; score the queries.

    :func:`retrain_head_batch` with E = 1 (same maths, same options). ``support_feats`` is
    (n_s, d), ``support_y`` (n_s,), ``query_feats`` (n_q, d), ``query_y`` (n_q,); ``init`` is
    None (zero head: "retrain head") or ``(W (N, d), b (N,))`` (ANIL); ``accelerated``
    chooses Nesterov's accelerated gradient.

    Examples
    --------
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
    """
    config = HeadConfig(steps=steps, lr=lr, weight_decay=weight_decay, accelerated=accelerated)
    ways = check_ways(ways)
    tensors = check_episode_tensors(
        support_feats,
        support_y,
        query_feats,
        query_y,
        ways=ways,
        batched=False,
        x_names=_FEATURE_NAMES,
        features=True,
    )
    if init is not None:
        if not isinstance(init, tuple | list) or len(init) != 2:
            raise TypeError(f"`init` must be None or a pair (W, b); got {type(init).__name__!r}.")
        dim = tensors[0].shape[-1]
        weight = as_floats(init[0], "init[0]")
        bias = as_floats(init[1], "init[1]")
        check_shape(weight, "init[0]", (ways, dim))
        check_shape(bias, "init[1]", (ways,))
        init = (weight, bias)
    return _retrain_head_core(*tensors, ways=ways, config=config, init=init)[0]


def _nearest_prototype_core(
    support: torch.Tensor,
    support_y: torch.Tensor,
    query: torch.Tensor,
    query_y: torch.Tensor,
    *,
    ways: int,
) -> BatchAdaptationResult:
    onehot = torch.nn.functional.one_hot(support_y, ways).to(support.dtype)  # (E, n_s, N)
    counts = onehot.sum(dim=1)  # (E, N)
    empty = (counts == 0).nonzero()
    if empty.numel():
        episode, label = (int(v) for v in empty[0])
        raise ValueError(
            f"`support_y` must hold every class 0..{ways - 1} in every episode; "
            f"got no example of class {label} in episode {episode}."
        )
    prototypes = matmul(onehot.transpose(1, 2), support) / counts.unsqueeze(-1)  # (E, N, d)

    def distances(points: torch.Tensor) -> torch.Tensor:  # ||q - c||^2 = ||q||^2 - 2 q.c + ||c||^2
        norms = points.square().sum(dim=-1, keepdim=True)
        norms = norms + prototypes.square().sum(dim=-1).unsqueeze(1)
        return (norms - 2.0 * matmul(points, prototypes.transpose(1, 2))).clamp_(min=0.0)

    return score_logits_batch(-distances(query), query_y).with_support(
        -distances(support), support_y
    )


def nearest_prototype_batch(
    support_feats: torch.Tensor | np.ndarray,
    support_y: torch.Tensor | np.ndarray,
    query_feats: torch.Tensor | np.ndarray,
    query_y: torch.Tensor | np.ndarray,
    *,
    ways: int,
) -> BatchAdaptationResult:
    """Nearest class mean (ProtoNet) on each of E episodes.

    Prototype ``c_k`` = mean of the support features of class k; query logits
    ``-||x - c_k||^2`` (squared Euclidean distance, Snell et al., NeurIPS 2017); accuracy of
    the arg-max and log-loss of the softmax over these logits.

    Parameters
    ----------
    support_feats:
        Float array of shape (E, n_s, d).
    support_y:
        Integer array of shape (E, n_s); every class 0..ways-1 must occur in every episode.
    query_feats:
        Float array of shape (E, n_q, d).
    query_y:
        Integer array of shape (E, n_q), labels in 0..ways-1.
    ways:
        N, the number of classes.

    Returns
    -------
    BatchAdaptationResult
        Per-episode accuracy and log-loss (E,), logits (E, n_q, N).

    Examples
    --------
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
    """
    ways = check_ways(ways)
    tensors = check_episode_tensors(
        support_feats,
        support_y,
        query_feats,
        query_y,
        ways=ways,
        batched=True,
        x_names=_FEATURE_NAMES,
        features=True,
    )
    return _nearest_prototype_core(*tensors, ways=ways)


def nearest_prototype(
    support_feats: torch.Tensor | np.ndarray,
    support_y: torch.Tensor | np.ndarray,
    query_feats: torch.Tensor | np.ndarray,
    query_y: torch.Tensor | np.ndarray,
    *,
    ways: int,
) -> AdaptationResult:
    """Nearest class mean (ProtoNet) on one episode: :func:`nearest_prototype_batch`, E = 1.

    ``support_feats`` is (n_s, d), ``support_y`` (n_s,) with every class present,
    ``query_feats`` (n_q, d), ``query_y`` (n_q,).

    Examples
    --------
    >>> import torch
    >>> support = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    >>> result = nearest_prototype(
    ...     support, torch.tensor([0, 1]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]), ways=2
    ... )
    >>> result.logits.tolist(), result.accuracy
    ([[-1.0, -9.0]], 1.0)
    """
    ways = check_ways(ways)
    tensors = check_episode_tensors(
        support_feats,
        support_y,
        query_feats,
        query_y,
        ways=ways,
        batched=False,
        x_names=_FEATURE_NAMES,
        features=True,
    )
    return _nearest_prototype_core(*tensors, ways=ways)[0]
