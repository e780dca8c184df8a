"""Adaptation of a whole network on an episode's support set: MAML's inner loop and fine-tuning.

The network is ``model.classifier(model.features(x))``: ``features`` maps images (n, C, H, W)
to embeddings (n, d) and ``classifier`` is the meta-learned ``nn.Linear(d, N)`` head. Every
function here works on a deep copy of those two modules, so the caller's model is never
changed: not its parameters, not its BatchNorm running statistics, not its train/eval mode.

- :func:`maml_adapt`: MAML's inner loop (Finn et al., ICML 2017), ``steps`` SGD steps on the
  support loss, then the query logits: metaleep's one inner loop,
  :class:`metaleep.adapt.inner_loop.InnerLoop` (the loop meta-training and evaluation run),
  whose values equal learn2learn's ``MAML(model, lr).clone()`` and ``adapt(loss)`` bit for bit.
- :func:`maml_adapt_batch`: the same for E episodes at once, episode after episode on one copy
  of the network, or batched with ``torch.func.vmap`` (the same step rule; for GPUs).
- :func:`finetune` / :func:`finetune_batch`: full-batch fine-tuning with SGD or Adam, keeping
  the meta-learned head or starting a fresh one.

BatchNorm (see :data:`~metaleep.adapt.common.BatchNormMode`): ``"transductive"``
(default) normalises with the statistics of the batch at hand, the support set while adapting
and the query set (as one batch) when evaluating, as learn2learn and the reference MAML do;
``"running"`` uses the model's stored running statistics throughout.

No second-order path is exposed: adaptation at evaluation time needs no meta-gradient (the
inner-loop values are the same first- or second-order), and ``torch.func.vmap`` gives wrong
second-order meta-gradients through affine BatchNorm/LayerNorm (functorch issue 534), so
meta-training runs the per-episode loop.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from metaleep.adapt.common import (
    AdaptationResult,
    BatchAdaptationResult,
    BatchNormMode,
    FinetuneConfig,
    HeadInit,
    MamlConfig,
    OptimizerName,
    check_episode_tensors,
    check_ways,
    score_logits_batch,
)
from metaleep.adapt.inner_loop import InnerLoop

__all__ = ["finetune", "finetune_batch", "maml_adapt", "maml_adapt_batch"]

_IMAGE_NAMES = ("support_x", "query_x")
ArrayLike = torch.Tensor | np.ndarray


class _Network(nn.Module):
    """``classifier(features(x))`` over (copies of) a backbone's two children."""

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _children(model: nn.Module, *, need_head: bool) -> tuple[nn.Module, nn.Module | None]:
    """``model.features`` and ``model.classifier``, checked (the head must be a Linear)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__!r}.")
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise TypeError(
            f"`model.features` must be a torch.nn.Module; got {type(features).__name__!r}."
        )
    classifier = getattr(model, "classifier", None)
    if need_head and not isinstance(classifier, nn.Linear):
        raise TypeError(
            f"`model.classifier` must be a torch.nn.Linear; got {type(classifier).__name__!r}."
        )
    return features, classifier if isinstance(classifier, nn.Module) else None


def _copy_network(model: nn.Module, *, need_head: bool) -> _Network:
    """A deep copy of ``model.features`` and ``model.classifier``, every parameter trainable."""
    features, classifier = _children(model, need_head=need_head)
    network = copy.deepcopy(_Network(features, classifier or nn.Identity()))
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    return network


def _head_ways(model: nn.Module, ways: object) -> int:
    """The meta-learned head's N, checked against ``ways`` when given."""
    _, head = _children(model, need_head=True)
    if not isinstance(head, nn.Linear):  # pragma: no cover - _children raised already
        raise TypeError(f"`model.classifier` must be a torch.nn.Linear; got {head!r}.")
    if ways is not None and check_ways(ways) != head.out_features:
        raise ValueError(
            f"`ways` must equal the meta-learned head's outputs ({head.out_features}); "
            f"got {ways!r}."
        )
    return int(head.out_features)


def _like(network: nn.Module) -> tuple[torch.dtype, torch.device]:
    """``dtype`` and ``device`` of the network's parameters (float32 / CPU when it has none)."""
    for parameter in network.parameters():
        return parameter.dtype, parameter.device
    return torch.float32, torch.device("cpu")


def _episodes(
    network: nn.Module,
    support_x: object,
    support_y: object,
    query_x: object,
    query_y: object,
    *,
    ways: int,
    batched: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    sx, sy, qx, qy = check_episode_tensors(
        support_x,
        support_y,
        query_x,
        query_y,
        ways=ways,
        batched=batched,
        x_names=_IMAGE_NAMES,
        features=False,
    )
    dtype, device = _like(network)
    return sx.to(device, dtype), sy.to(device), qx.to(device, dtype), qy.to(device)


# --------------------------------------------------------------------------------------------
# MAML
# --------------------------------------------------------------------------------------------


def _inner_loop(network: _Network, config: MamlConfig) -> InnerLoop:
    """The engine's loop for ``config``, with ``network`` put in its BatchNorm mode."""
    network.train(config.batch_norm == "transductive")
    return InnerLoop(steps=int(config.steps), lr=float(config.lr))


def maml_adapt(
    model: nn.Module,
    support_x: ArrayLike,
    support_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    *,
    steps: int = 5,
    lr: float = 0.4,
    first_order: bool = True,
    batch_norm: BatchNormMode = "transductive",
    ways: int | None = None,
) -> AdaptationResult:
    """MAML's inner loop on the whole network for one episode, then score the query set.

    ``steps`` times ``theta <- theta + (-lr * grad)`` of the support cross-entropy (plain SGD),
    then the query logits under ``no_grad``:
    :meth:`metaleep.adapt.inner_loop.InnerLoop.query_logits`, the inner loop meta-training
    runs, whose values are those of learn2learn's
    ``MAML(copy, lr, first_order).clone()`` and ``adapt(cross_entropy(learner(support_x),
    support_y))``, bit for bit (learn2learn is not imported). The model is deep-copied first:
    its parameters, BatchNorm running statistics and mode are unchanged.

    Parameters
    ----------
    model:
        ``nn.Module`` with ``features`` (images -> (n, d)) and ``classifier``
        (``nn.Linear(d, N)``); the network is ``classifier(features(x))``.
    support_x:
        Float images of shape (n_s, C, H, W) (any per-example shape the model takes),
        converted to the model's dtype and device.
    support_y:
        Integer labels of shape (n_s,) in 0..N-1.
    query_x:
        Float images of shape (n_q, C, H, W).
    query_y:
        Integer labels of shape (n_q,) in 0..N-1.
    steps:
        Inner-loop steps (>= 0).
    lr:
        Inner-loop learning rate (> 0).
    first_order:
        learn2learn's flag, kept for its meaning: the adapted predictions do not depend on it
        and the loop is first-order (see
        :class:`~metaleep.adapt.common.MamlConfig`).
    batch_norm:
        ``"transductive"`` (batch statistics, learn2learn's and reference MAML's choice) or
        ``"running"`` (the model's running statistics, ``.eval()``).
    ways:
        Optional check: must equal the head's N.

    Returns
    -------
    AdaptationResult
        Query accuracy, log-loss and logits (n_q, N).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> model.classifier = torch.nn.Linear(4, 2)
    >>> _ = torch.nn.init.zeros_(model.classifier.weight)
    >>> _ = torch.nn.init.zeros_(model.classifier.bias)
    >>> x = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 1.0]]]])
    >>> y = torch.tensor([0, 1])
    >>> result = maml_adapt(model, x, y, x, y, steps=5, lr=1.0)
    >>> result.accuracy, result.predictions.tolist()
    (1.0, [0, 1])
    >>> float(model.classifier.weight.detach().abs().sum())  # the model is unchanged
    0.0
    """
    config = MamlConfig(steps=steps, lr=lr, first_order=first_order, batch_norm=batch_norm)
    network = _copy_network(model, need_head=True)
    n_ways = _head_ways(network, ways)
    sx, sy, qx, qy = _episodes(
        network, support_x, support_y, query_x, query_y, ways=n_ways, batched=False
    )
    logits, start, end = _inner_loop(network, config).episode_logits(network, sx[0], sy[0], qx[0])
    return score_logits_batch(logits.unsqueeze(0), qy).with_support(
        end.unsqueeze(0), sy, start.unsqueeze(0)
    )[0]


def maml_adapt_batch(
    model: nn.Module,
    support_x: ArrayLike,
    support_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    *,
    steps: int = 5,
    lr: float = 0.4,
    first_order: bool = True,
    batch_norm: BatchNormMode = "transductive",
    ways: int | None = None,
    vectorize: bool | None = None,
    chunk_size: int | None = None,
) -> BatchAdaptationResult:
    """MAML's inner loop for E episodes at once; per episode the same as :func:`maml_adapt`.

    With ``vectorize`` the episodes run batched:
    :meth:`~metaleep.adapt.inner_loop.InnerLoop.query_logits_vmap`, ``torch.func.vmap`` of the
    same step rule with gradients from ``torch.func.grad`` (first-order: only adapted
    predictions are needed). Each episode's BatchNorm uses its own batch statistics
    (``"transductive"``: BatchNorm copies without running statistics,
    ``torch.func.replace_all_batch_norm_modules_``) or the model's frozen running statistics
    (``"running"``); the model is never changed. Without ``vectorize`` it runs
    :func:`maml_adapt`'s inner loop episode after episode on one deep copy of the network,
    with the same logits as :func:`maml_adapt`, bit for bit. Both give the same predictions,
    logits equal within float rounding.

    Parameters
    ----------
    model:
        As for :func:`maml_adapt`.
    support_x:
        Float images of shape (E, n_s, C, H, W).
    support_y:
        Integer labels of shape (E, n_s).
    query_x:
        Float images of shape (E, n_q, C, H, W).
    query_y:
        Integer labels of shape (E, n_q).
    steps, lr, first_order, batch_norm, ways:
        As for :func:`maml_adapt` (``first_order`` changes nothing).
    vectorize:
        True: ``vmap``; False: the loop; None (default): ``vmap`` when the model is on a GPU,
        the loop on the CPU (where ``vmap`` gains little; see ``benchmarks/bench_adaptation.py``
        and ``benchmarks/bench_study.py``).
    chunk_size:
        With ``vectorize``, episodes per ``vmap`` call (bounds memory); None: all at once.

    Returns
    -------
    BatchAdaptationResult
        Per-episode query accuracy and log-loss (E,), logits (E, n_q, N).

    Notes
    -----
    Speed (``benchmarks/bench_adaptation.py``, OmniglotCNN, 5-way 1-shot, 75 queries, 5 steps):
    on an H200, ``vmap`` took about 0.6-1 ms per episode against 11-13 ms for the loop (E = 64
    to 256). On a shared 2-core CPU (E = 50, the study's chunk; best of 4): the loop took
    21 / 18 ms per episode (OmniglotCNN, 1 / 2 threads) and 14 / 13 ms (conv4-small), against
    27 / 21 ms for learn2learn's clone/adapt with a deep copy per episode (conv4-small, the
    study runner's former path); ``vmap`` took 32 / 16 ms (OmniglotCNN) and 13 / 8 ms
    (conv4-small). The loop stays the CPU default: it is never much slower and its logits are
    learn2learn's bit for bit.
    In float64 both forms agree to about 1e-13. In float32 the inner loop amplifies rounding:
    logits typically differ by about 1e-5, but in rare episodes much more (1e-2 on a CPU with
    2 of 3,750 query predictions changed; up to 0.3 on a GPU, where ``vmap`` runs batched
    convolutions through other cuDNN kernels). Use float64 where logits must match exactly.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> model.classifier = torch.nn.Linear(4, 2)
    >>> x = torch.eye(4).reshape(2, 2, 1, 2, 2)  # 2 episodes of 2 one-pixel images
    >>> y = torch.tensor([[0, 1], [0, 1]])
    >>> result = maml_adapt_batch(model, x, y, x, y, steps=20, lr=1.0, vectorize=True)
    >>> result.accuracy.tolist()
    [1.0, 1.0]
    """
    config = MamlConfig(steps=steps, lr=lr, first_order=first_order, batch_norm=batch_norm)
    if vectorize is not None and not isinstance(vectorize, bool):
        raise TypeError(f"`vectorize` must be a bool or None; got {vectorize!r}.")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` must be None or an integer >= 1; got {chunk_size!r}.")
    network = _copy_network(model, need_head=True)
    n_ways = _head_ways(network, ways)
    sx, sy, qx, qy = _episodes(
        network, support_x, support_y, query_x, query_y, ways=n_ways, batched=True
    )
    if vectorize is None:
        vectorize = sx.device.type != "cpu"
    inner = _inner_loop(network, config)
    if vectorize:
        logits, start, end = inner.episode_logits_vmap(network, sx, sy, qx, chunk_size=chunk_size)
    else:
        outputs = [inner.episode_logits(network, sx[e], sy[e], qx[e]) for e in range(sx.shape[0])]
        logits, start, end = (torch.stack([o[k] for o in outputs]) for k in range(3))
    return score_logits_batch(logits, qy).with_support(end, sy, start)


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------


def _fresh_head(
    network: _Network, support_x: torch.Tensor, ways: int, config: FinetuneConfig
) -> nn.Linear:
    head = network.classifier
    if isinstance(head, nn.Linear):
        dim = head.in_features
    else:
        network.eval()
        with torch.no_grad():
            dim = int(network.features(support_x).shape[-1])
    dtype, device = _like(network)
    linear = nn.Linear(dim, ways).to(device, dtype)
    with torch.no_grad():
        if config.head == "zero":
            linear.weight.zero_()
            linear.bias.zero_()
        else:
            generator = torch.Generator().manual_seed(int(config.seed))
            bound = 1.0 / math.sqrt(dim)
            for parameter in (linear.weight, linear.bias):
                draw = torch.rand(parameter.shape, generator=generator, dtype=torch.float64)
                parameter.copy_((2 * draw - 1) * bound)
    return linear


def _finetune_episode(
    model: nn.Module,
    config: FinetuneConfig,
    support_x: object,
    support_y: object,
    query_x: object,
    query_y: object,
    ways: int | None,
    batched: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fine-tune a fresh copy on one episode: query logits (n_q, N), query labels (n_q,),
    support logits (n_s, N) before and after, support labels (n_s,)."""
    network = _copy_network(model, need_head=config.head == "meta")
    if config.head == "meta":
        n_ways = _head_ways(network, ways)
    elif ways is None:
        raise ValueError(
            f"`ways` must be given when `head` is {config.head!r} (a fresh head); got None."
        )
    else:
        n_ways = check_ways(ways)
    sx, sy, qx, qy = _episodes(
        network, support_x, support_y, query_x, query_y, ways=n_ways, batched=batched
    )
    sx, sy, qx, qy = sx[0], sy[0], qx[0], qy[0]
    if config.head != "meta":
        network.classifier = _fresh_head(network, sx, n_ways, config)
    network.train(config.batch_norm == "transductive")
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            network.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    else:
        optimizer = torch.optim.Adam(
            network.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    start_logits = None
    with torch.enable_grad():
        for _ in range(config.steps):
            optimizer.zero_grad(set_to_none=True)
            logits = network(sx)
            if start_logits is None:
                start_logits = logits.detach()
            nn.functional.cross_entropy(logits, sy).backward()
            optimizer.step()
    with torch.no_grad():
        query_logits = network(qx).detach()
        end_logits = network(sx).detach()
    start = end_logits if start_logits is None else start_logits
    return query_logits, qy, start, end_logits, sy


def finetune(
    model: nn.Module,
    support_x: ArrayLike,
    support_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    *,
    ways: int | None = None,
    steps: int = 100,
    lr: float = 0.01,
    optimizer: OptimizerName = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    head: HeadInit = "meta",
    batch_norm: BatchNormMode = "transductive",
    seed: int = 0,
) -> AdaptationResult:
    """Fine-tune a deep copy of the whole network on one episode's support set.

    ``steps`` full-batch steps of ``torch.optim.SGD`` (with ``momentum``) or ``Adam`` on the
    support cross-entropy, then the query logits under ``no_grad``. The model is unchanged.

    Parameters
    ----------
    model:
        ``nn.Module`` with ``features`` and (for ``head="meta"``) an ``nn.Linear``
        ``classifier``.
    support_x, support_y, query_x, query_y:
        As for :func:`maml_adapt`.
    ways:
        N. Required for a fresh head; for ``head="meta"`` optional, checked against the head.
    steps, lr, optimizer, momentum, weight_decay, head, batch_norm, seed:
        See :class:`~metaleep.adapt.common.FinetuneConfig`.

    Returns
    -------
    AdaptationResult
        Query accuracy, log-loss and logits (n_q, N).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> x = torch.eye(4).reshape(4, 1, 2, 2)
    >>> y = torch.tensor([0, 1, 2, 3])
    >>> result = finetune(model, x, y, x, y, ways=4, head="zero", steps=20, lr=0.5)
    >>> result.accuracy
    1.0
    """
    config = FinetuneConfig(
        steps=steps,
        lr=lr,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        head=head,
        batch_norm=batch_norm,
        seed=seed,
    )
    logits, labels, start, end, sy = _finetune_episode(
        model, config, support_x, support_y, query_x, query_y, ways, batched=False
    )
    result = score_logits_batch(logits.unsqueeze(0), labels.unsqueeze(0))
    return result.with_support(end.unsqueeze(0), sy.unsqueeze(0), start.unsqueeze(0))[0]


def finetune_batch(
    model: nn.Module,
    support_x: ArrayLike,
    support_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    *,
    ways: int | None = None,
    steps: int = 100,
    lr: float = 0.01,
    optimizer: OptimizerName = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    head: HeadInit = "meta",
    batch_norm: BatchNormMode = "transductive",
    seed: int = 0,
) -> BatchAdaptationResult:
    """:func:`finetune` on each of E episodes (a loop; inputs (E, n_s, ...) and (E, n_q, ...)).

    Every episode starts from a fresh copy of ``model`` (and, for ``head="random"``, the same
    seeded head).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> x = torch.eye(4).reshape(2, 2, 1, 2, 2)
    >>> y = torch.tensor([[0, 1], [0, 1]])
    >>> finetune_batch(model, x, y, x, y, ways=2, head="zero", lr=0.5).accuracy.tolist()
    [1.0, 1.0]
    """
    config = FinetuneConfig(
        steps=steps,
        lr=lr,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        head=head,
        batch_norm=batch_norm,
        seed=seed,
    )
    # Validate the whole batch first (shapes, labels), then adapt each episode.
    _children(model, need_head=head == "meta")
    n_ways = _head_ways(model, ways) if head == "meta" else ways
    if n_ways is None:
        raise ValueError(f"`ways` must be given when `head` is {head!r} (a fresh head); got None.")
    sx, sy, qx, qy = _episodes(
        model, support_x, support_y, query_x, query_y, ways=check_ways(n_ways), batched=True
    )
    outputs = [
        _finetune_episode(model, config, sx[e], sy[e], qx[e], qy[e], n_ways, batched=False)
        for e in range(sx.shape[0])
    ]
    logits, start, end = (torch.stack([o[k] for o in outputs]) for k in (0, 2, 3))
    return score_logits_batch(logits, qy).with_support(end, sy, start)
