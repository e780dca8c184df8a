"""Class prototypes and prototype logits: the one implementation in metaleep.

A prototype is the mean embedding of a class (ProtoNet, Snell et al., NeurIPS 2017); the logits
of a point x over prototypes c_1..c_K at temperature T are ``-‖x - c_k‖² / T``. Everything that
classifies by the nearest prototype computes them here: the ``prototype`` adaptation
(:func:`metaleep.adapt.head.nearest_prototype`), ProtoNet training and evaluation
(:mod:`metaleep.backbones.training`, :mod:`metaleep.backbones.evaluation`) and the
``prototypes`` dummy labels of the study (:mod:`metaleep.study.outputs`).

The squared distance is expanded, ``‖x‖² - 2 x·c + ‖c‖²``, with one batched matrix product
(:func:`metaleep._exact.matmul`: each episode's product is the same bits whatever else is in the
batch, so results do not depend on ``--chunk-size``) and clamped at 0 (rounding can make the
expansion slightly negative for a point on a prototype). Its rounding error is about ``eps *
(‖x‖² + ‖c‖²)``, not relative to the distance: points much closer to each other than to the
origin lose digits. Both functions take one set of points (2-D tensors) or E of them (3-D, a
leading episode axis)."""

from __future__ import annotations

import torch

from metaleep._exact import matmul

__all__ = ["class_means", "prototype_logits"]


def _batched(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if tensor.ndim == 2:
        return tensor.unsqueeze(0)
    if tensor.ndim == 3:
        return tensor
    raise ValueError(f"`{name}` must be of shape (n, d) or (E, n, d); got {tuple(tensor.shape)!r}.")


def class_means(
    features: torch.Tensor, labels: torch.Tensor, ways: int, *, name: str = "labels"
) -> torch.Tensor:
    """Mean feature of each class: (n, d) and labels (n,) -> (ways, d); or batched, (E, n, d)
    and (E, n) -> (E, ways, d).

    Every class 0..ways-1 must occur (in every episode): a class without an example has no
    prototype, and a ValueError naming ``labels`` as ``name`` says which. Differentiable in
    ``features``.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    >>> class_means(x, torch.tensor([0, 0, 1]), 2).tolist()
    [[1.0, 0.0], [0.0, 4.0]]
    """
    single = features.ndim == 2
    feats = _batched(features, "features")
    codes = labels.unsqueeze(0) if single else labels
    onehot = torch.nn.functional.one_hot(codes, ways).to(feats.dtype)  # (E, n, N)
    counts = onehot.sum(dim=1)  # (E, N)
    empty = (counts == 0).nonzero()
    if empty.numel():
        episode, label = (int(v) for v in empty[0])
        raise ValueError(
            f"`{name}` must hold every class 0..{ways - 1} in every episode; "
            f"got no example of class {label} in episode {episode}."
        )
    means = matmul(onehot.transpose(1, 2), feats) / counts.unsqueeze(-1)  # (E, N, d)
    return means[0] if single else means


def prototype_logits(
    points: torch.Tensor, prototypes: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """``-‖x - c_k‖² / T`` for every point x and prototype c_k: (n, d) and (K, d) -> (n, K); or
    batched, (E, n, d) and (E, K, d) -> (E, n, K).

    Computed in the inputs' dtype (promote them first for float64), differentiable; the
    distances are clamped at 0 before the sign and the temperature are applied.

    Examples
    --------
    >>> points = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    >>> centres = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    >>> prototype_logits(points, centres).tolist()
    [[-0.0, -4.0], [-2.0, -2.0]]
    >>> prototype_logits(points, centres, temperature=2.0).tolist()
    [[-0.0, -2.0], [-1.0, -1.0]]
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature!r}.")
    single = points.ndim == 2
    x = _batched(points, "points")
    c = _batched(prototypes, "prototypes")
    norms = x.square().sum(dim=-1, keepdim=True) + c.square().sum(dim=-1).unsqueeze(1)
    distances = (norms - 2.0 * matmul(x, c.transpose(1, 2))).clamp_(min=0.0)
    logits = distances.neg_() if temperature == 1 else distances.div_(-temperature)
    return logits[0] if single else logits
