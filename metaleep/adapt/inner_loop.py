"""MAML's inner loop (Finn et al., ICML 2017): the one implementation in metaleep.

Given a network ``f``, parameters θ and an episode's support set (x, y), the inner loop takes
``steps`` plain gradient steps on the support cross-entropy::

    θ_0 = θ,    θ_{k+1} = θ_k + (-lr) * ∇_θ CE(f(x; θ_k), y)

and returns θ_steps. Everything gradient-based that adapts to an episode runs it:

- meta-training (:mod:`metaleep.backbones.training`): ``maml`` differentiates through it
  (``second_order=True``: the gradients are taken with ``create_graph``), ``fomaml`` does not
  (the gradients are constants of the outer step), ``anil`` runs it on the head alone, over
  the features of the support set (Raghu et al., ICLR 2020);
- evaluation (:func:`metaleep.backbones.evaluation.episode_logits`, methods ``maml`` and
  ``anil``) and the study (:func:`metaleep.adapt.network.maml_adapt` and
  :func:`~metaleep.adapt.network.maml_adapt_batch`): first order, then the query logits.

The loop is functional: the network's own parameters and buffers are never written. The
forward pass is ``torch.func.functional_call(network, (params, buffers), x)``; each step's
gradients come from ``torch.autograd.grad`` and the update is :func:`sgd_step`,
``p + (-lr) * g``, the operations of learn2learn's ``maml_update`` / ``update_module`` in the
same order, so the adapted parameters and logits equal those of learn2learn's
``MAML(network, lr).clone()`` and ``adapt(loss)`` bit for bit (``tests/adapt`` and
``tests/study/test_fast_paths.py``) without importing learn2learn. Parameters that do not
require grad are held fixed; parameters the loss does not use keep their value.

BatchNorm. A network in train mode normalises with the statistics of the batch at hand (the
support set while adapting, the query set when predicting: "transductive", as reference MAML
and learn2learn do) and updates running statistics as it goes; in eval mode it uses its
stored statistics. Either way the forward passes here write only to private copies of the
buffers (:func:`private_buffers`), never to the caller's model; learn2learn's ``clone()``
alone shares them, and a clone in train mode updates the original's statistics.

Batched execution. :meth:`InnerLoop.query_logits_vmap` runs the same step rule
(:func:`sgd_step`) for E episodes at once: ``torch.func.vmap`` over episodes of the loop
written with ``torch.func.grad``. It is a tool for GPUs (on a CPU it gains little) and gives
the same predictions; logits agree within float rounding, not bit for bit (other kernels). It
is first order only: ``vmap`` gives wrong second-order meta-gradients through affine
BatchNorm or LayerNorm (functorch issue 534), so meta-training uses the per-episode loop.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EpisodeLogits", "InnerLoop", "functional_forward", "private_buffers", "sgd_step"]

Params = dict[str, torch.Tensor]


class EpisodeLogits(NamedTuple):
    """Detached logits of an adapted episode (or, with a leading axis, of E episodes)."""

    query: torch.Tensor
    """(n_q, N): the query logits after adapting."""
    support_start: torch.Tensor
    """(n_s, N): the support logits before the first step (empty when not computed)."""
    support_end: torch.Tensor
    """(n_s, N): the support logits after the last step (empty when not computed)."""


def sgd_step(
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor | None],
    lr: float,
) -> Params:
    """One inner-loop update: ``p + (-lr) * g`` for each parameter with a gradient.

    The arithmetic of learn2learn's ``maml_update`` (``update = -lr * g``, then
    ``p + update``); a parameter without a gradient (absent from ``grads`` or None) is kept.
    Returns new tensors; ``params`` is not modified.

    Examples
    --------
    >>> p = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    >>> sgd_step(p, {"w": torch.tensor([1.0, -1.0])}, lr=0.5)
    {'w': tensor([0.5000, 2.5000]), 'b': tensor([0.5000])}
    """
    step = -float(lr)
    out: Params = {}
    for name, param in params.items():
        grad = grads.get(name)
        out[name] = param if grad is None else param + step * grad
    return out


def private_buffers(network: nn.Module) -> Params:
    """Copies of ``network``'s buffers (BatchNorm running statistics), name -> tensor.

    Pass them to :func:`functional_forward` so that forward passes in train mode update the
    copies, not the network.

    Examples
    --------
    >>> bn = nn.BatchNorm1d(2)
    >>> buffers = private_buffers(bn)
    >>> sorted(buffers), buffers["running_mean"] is bn.running_mean
    (['num_batches_tracked', 'running_mean', 'running_var'], False)
    """
    return {name: buffer.clone() for name, buffer in network.named_buffers()}


def functional_forward(
    network: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    x: torch.Tensor,
) -> torch.Tensor:
    """``network(x)`` with ``params`` and ``buffers`` in place of its own (functional_call).

    Examples
    --------
    >>> linear = nn.Linear(2, 1)
    >>> params = {"weight": torch.ones(1, 2), "bias": torch.zeros(1)}
    >>> functional_forward(linear, params, {}, torch.tensor([[1.0, 2.0]]))
    tensor([[3.]])
    """
    return torch.func.functional_call(network, (dict(params), dict(buffers)), (x,))


def _check_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise TypeError(f"`steps` must be an integer; got {steps!r}.")
    if steps < 0:
        raise ValueError(f"`steps` must be >= 0; got {steps!r}.")
    return int(steps)


def _check_lr(lr: object) -> float:
    if isinstance(lr, bool) or not isinstance(lr, int | float | np.integer | np.floating):
        raise TypeError(f"`lr` must be a real number; got {lr!r}.")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"`lr` must be a finite number > 0; got {lr!r}.")
    return float(lr)


def _has_running_stats(network: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in network.modules()
    )


@dataclass(frozen=True)
class InnerLoop:
    """MAML's inner loop: ``steps`` SGD steps of size ``lr`` on the support cross-entropy.

    Attributes
    ----------
    steps:
        Gradient steps on the support set (>= 0).
    lr:
        Step size (> 0).
    second_order:
        Take each step's gradients with ``create_graph=True``, so that a loss computed with
        the adapted parameters back-propagates through the loop into the starting parameters
        (MAML's meta-gradient). False: the gradients are constants (first-order MAML); the
        adapted values are the same either way.

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> head = nn.Linear(3, 2)
    >>> x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    >>> loop = InnerLoop(steps=2, lr=0.5, second_order=True)
    >>> adapted = loop.adapt(head, dict(head.named_parameters()), x, y)
    >>> before = F.cross_entropy(head(x), y)
    >>> after = F.cross_entropy(functional_forward(head, adapted, {}, x), y)
    >>> bool(after < before), adapted["weight"].requires_grad
    (True, True)
    >>> after.backward()  # the meta-gradient reaches the starting weights
    >>> head.weight.grad.shape
    torch.Size([2, 3])
    """

    steps: int = 1
    lr: float = 0.4
    second_order: bool = False

    def __post_init__(self) -> None:
        _check_steps(self.steps)
        _check_lr(self.lr)
        if not isinstance(self.second_order, bool):
            raise TypeError(f"`second_order` must be a bool; got {self.second_order!r}.")

    def adapt(
        self,
        network: nn.Module,
        params: Mapping[str, torch.Tensor],
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        *,
        buffers: Mapping[str, torch.Tensor] | None = None,
    ) -> Params:
        """The adapted parameters θ_steps, name -> tensor.

        Parameters
        ----------
        network:
            The module whose forward pass maps ``support_x`` to logits (n_s, N); used in its
            current train/eval mode, never written to.
        params:
            Starting parameters by name (``dict(network.named_parameters())``, or detached
            copies); those that do not require grad are held fixed. Missing names are taken
            from ``network``.
        support_x:
            Inputs (n_s, ...) of the support set.
        support_y:
            Integer labels (n_s,) in 0..N-1.
        buffers:
            Buffers for the forward passes (updated in place by BatchNorm in train mode); by
            default private copies of ``network``'s (:func:`private_buffers`).

        Returns
        -------
        dict[str, torch.Tensor]
            Every name of ``params``; differentiable functions of ``params`` (through the
            gradients too when ``second_order``).
        """
        if buffers is None:
            buffers = private_buffers(network)
        weights = dict(params)
        names = [name for name, p in weights.items() if p.requires_grad]
        if not names:
            return weights
        with torch.enable_grad():
            for _ in range(self.steps):
                logits = functional_forward(network, weights, buffers, support_x)
                loss = F.cross_entropy(logits, support_y)
                grads = torch.autograd.grad(
                    loss,
                    [weights[name] for name in names],
                    create_graph=self.second_order,
                    allow_unused=True,
                )
                weights = sgd_step(weights, dict(zip(names, grads, strict=True)), self.lr)
        return weights

    def query_logits(
        self,
        network: nn.Module,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
    ) -> torch.Tensor:
        """Detached query logits (n_q, N) after adapting ``network``'s own parameters.

        First order (no meta-gradient is wanted; the values do not depend on it). Every
        parameter is adapted, also those that do not require grad; BatchNorm as the
        network's mode says, with private buffers shared by the support and query passes.

        Examples
        --------
        >>> head = nn.Linear(2, 2)
        >>> _ = nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
        >>> x, y = torch.eye(2), torch.tensor([0, 1])
        >>> InnerLoop(steps=3, lr=1.0).query_logits(head, x, y, x).argmax(1).tolist()
        [0, 1]
        >>> float(head.weight.detach().abs().sum())  # unchanged
        0.0
        """
        return self._run(network, support_x, support_y, query_x, support=False).query

    def episode_logits(
        self,
        network: nn.Module,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
    ) -> EpisodeLogits:
        """:meth:`query_logits`, and the support logits before and after adapting (what the
        study records as the support loss an adaptation started from and ended at).

        The query logits are :meth:`query_logits`' bit for bit: the extra support passes use
        the same private buffers, whose running statistics no output reads.
        """
        return self._run(network, support_x, support_y, query_x, support=True)

    def _run(
        self,
        network: nn.Module,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        *,
        support: bool,
    ) -> EpisodeLogits:
        params = {name: p.detach().requires_grad_(True) for name, p in network.named_parameters()}
        buffers = private_buffers(network)
        first_order = InnerLoop(self.steps, self.lr) if self.second_order else self
        start = end = query_x.new_zeros(0)
        if support:
            with torch.no_grad():
                start = functional_forward(network, params, buffers, support_x).detach()
        adapted = first_order.adapt(network, params, support_x, support_y, buffers=buffers)
        with torch.no_grad():
            query = functional_forward(network, adapted, buffers, query_x).detach()
            if support:
                end = functional_forward(network, adapted, buffers, support_x).detach()
        return EpisodeLogits(query, start, end)

    def query_logits_vmap(
        self,
        network: nn.Module,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        *,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """:meth:`query_logits` for E episodes at once with ``torch.func.vmap``: (E, n_q, N).

        :meth:`episode_logits_vmap` also gives the support logits before and after adapting.

        The same step rule (:func:`sgd_step`) with gradients from ``torch.func.grad``, first
        order. In train mode each episode's BatchNorm normalises with its own batch statistics
        (on a copy of ``network`` whose BatchNorm layers keep no running statistics,
        ``torch.func.replace_all_batch_norm_modules_``); in eval mode with the stored ones.

        Parameters
        ----------
        network:
            As for :meth:`query_logits`; not modified.
        support_x, support_y, query_x:
            (E, n_s, ...), (E, n_s) and (E, n_q, ...).
        chunk_size:
            Episodes per ``vmap`` call (bounds memory); None: all at once.

        Examples
        --------
        >>> head = nn.Linear(2, 2)
        >>> x, y = torch.eye(2).expand(3, 2, 2), torch.tensor([[0, 1]] * 3)
        >>> loop = InnerLoop(steps=20, lr=1.0)
        >>> loop.query_logits_vmap(head, x, y, x, chunk_size=2).argmax(-1).tolist()
        [[0, 1], [0, 1], [0, 1]]
        """
        return self.episode_logits_vmap(
            network, support_x, support_y, query_x, chunk_size=chunk_size, support=False
        ).query

    def episode_logits_vmap(
        self,
        network: nn.Module,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        *,
        chunk_size: int | None = None,
        support: bool = True,
    ) -> EpisodeLogits:
        """:meth:`episode_logits` for E episodes with ``torch.func.vmap``.

        Parameters
        ----------
        network, support_x, support_y, query_x, chunk_size:
            As for :meth:`query_logits_vmap`.
        support:
            Also compute the support logits before and after adapting.

        Returns
        -------
        EpisodeLogits
            Query logits (E, n_q, N) and support logits (E, n_s, N) before and after adapting
            (empty without ``support``).
        """
        from torch.func import grad, replace_all_batch_norm_modules_, vmap

        if network.training and _has_running_stats(network):
            network = copy.deepcopy(network)
            replace_all_batch_norm_modules_(network)
        params = {name: p.detach() for name, p in network.named_parameters()}
        buffers = {name: b.detach() for name, b in network.named_buffers()}

        def support_loss(weights: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_forward(network, weights, buffers, x), y)

        loss_grad: Callable[..., Params] = grad(support_loss)

        def one_episode(
            x_s: torch.Tensor, y_s: torch.Tensor, x_q: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            weights = params
            for _ in range(self.steps):
                weights = sgd_step(weights, loss_grad(weights, x_s, y_s), self.lr)
            query = functional_forward(network, weights, buffers, x_q)
            if not support:
                return (query,)
            start = functional_forward(network, params, buffers, x_s)
            return query, start, functional_forward(network, weights, buffers, x_s)

        batched = vmap(one_episode)
        episodes = support_x.shape[0]
        size = episodes if chunk_size is None else chunk_size
        with torch.no_grad():
            chunks = [
                batched(support_x[i : i + size], support_y[i : i + size], query_x[i : i + size])
                for i in range(0, episodes, size)
            ]
        parts = [torch.cat([c[k] for c in chunks]).detach() for k in range(len(chunks[0]))]
        if not support:
            empty = parts[0].new_zeros(0)
            return EpisodeLogits(parts[0], empty, empty)
        return EpisodeLogits(parts[0], parts[1], parts[2])
