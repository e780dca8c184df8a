"""Adaptation of a whole network on an episode's support set: MAML's inner loop and fine-tuning.

The network is ``model.classifier(model.features(x))``: ``features`` maps images (n, C, H, W)
to embeddings (n, d) and ``classifier`` is the meta-learned ``nn.Linear(d, N)`` head. Every
function here works on a deep copy of those two modules, so the caller's model is never
changed: not its parameters, not its BatchNorm running statistics, not its train/eval mode.

- :func:`maml_adapt_batch` / :func:`maml_adapt`: MAML's inner loop (Finn et al., ICML 2017),
  ``steps`` SGD steps on the support loss, then the query logits: metaleep's one inner loop,
  :class:`metaleep.adapt.inner_loop.InnerLoop` (the loop meta-training and evaluation run),
  whose values equal learn2learn's ``MAML(model, lr).clone()`` and ``adapt(loss)`` bit for bit;
  for E episodes episode after episode on one copy of the network, or batched with
  ``torch.func.vmap`` (the same step rule; for GPUs).
- :func:`finetune_batch` / :func:`finetune`: full-batch fine-tuning with SGD or Adam, keeping
  the meta-learned head or starting a fresh one (:func:`fresh_head`).

Each is one batched core; :func:`metaleep.adapt.spec.define_adaptation` derives the batched and
the single-episode function from it, with the settings as a config (:class:`MamlConfig`,
:class:`FinetuneConfig`) or as keyword overrides of its fields.

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
from typing import Literal

import torch
from torch import nn

from metaleep.adapt.common import (
    BatchAdaptationResult,
    EpisodeTensors,
    FinetuneConfig,
    MamlConfig,
    check_ways,
    score_logits_batch,
)
from metaleep.adapt.inner_loop import EpisodeLogits, InnerLoop
from metaleep.adapt.spec import Extra, define_adaptation, module_dtype_device

__all__ = [
    "finetune",
    "finetune_batch",
    "fresh_head",
    "maml_adapt",
    "maml_adapt_batch",
]


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


# --------------------------------------------------------------------------------------------
# MAML
# --------------------------------------------------------------------------------------------


def _inner_loop(network: _Network, config: MamlConfig) -> InnerLoop:
    """The engine's loop for ``config``, with ``network`` put in its BatchNorm mode."""
    network.train(config.batch_norm == "transductive")
    return InnerLoop(steps=int(config.steps), lr=float(config.lr))


def _maml_core(
    model: nn.Module,
    episodes: EpisodeTensors,
    *,
    ways: int,
    config: MamlConfig,
    vectorize: bool | None = None,
    chunk_size: int | None = None,
) -> BatchAdaptationResult:
    if vectorize is not None and not isinstance(vectorize, bool):
        raise TypeError(f"`vectorize` must be a bool or None; got {vectorize!r}.")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` must be None or an integer >= 1; got {chunk_size!r}.")
    sx, sy, qx, qy = episodes
    network = _copy_network(model, need_head=True)
    if vectorize is None:
        vectorize = sx.device.type != "cpu" and sx.shape[0] > 1
    inner = _inner_loop(network, config)
    if vectorize:
        out = inner.episode_logits_vmap(network, sx, sy, qx, chunk_size=chunk_size)
    else:
        out = _stack([inner.episode_logits(network, sx[e], sy[e], qx[e]) for e in range(len(sx))])
    return score_logits_batch(out.query, qy).with_support(out.support_end, sy, out.support_start)


def _stack(outputs: list[EpisodeLogits]) -> EpisodeLogits:
    return EpisodeLogits(*(torch.stack(parts) for parts in zip(*outputs, strict=True)))


def _maml_ways(model: nn.Module, ways: object, config: MamlConfig) -> int:
    return _head_ways(model, ways)


maml_adapt, maml_adapt_batch = define_adaptation(
    name="maml_adapt",
    core=_maml_core,
    config=MamlConfig,
    inputs="images",
    resolve_ways=_maml_ways,
    ways_doc="Optional check: must equal the head's N.",
    title="MAML's inner loop on the whole network, then score the query set",
    summary="""
    ``steps`` times ``theta <- theta + (-lr * grad)`` of the support cross-entropy (plain
    SGD), then the query logits under ``no_grad``: the inner loop meta-training runs
    (:class:`metaleep.adapt.inner_loop.InnerLoop`), whose values are those of learn2learn's
    ``MAML(copy, lr, first_order).clone()`` and ``adapt(cross_entropy(learner(support_x),
    support_y))``, bit for bit (learn2learn is not imported). ``first_order`` is recorded:
    the adapted predictions do not depend on it (see :class:`MamlConfig`).
    """,
    extras=(
        Extra(
            "vectorize",
            None,
            "",
            batch_doc="True: the episodes run batched, ``torch.func.vmap`` of the same step rule "
            "(:meth:`~metaleep.adapt.inner_loop.InnerLoop.episode_logits_vmap`); False: the "
            "inner loop episode after episode on one deep copy of the network, with the "
            "single-episode form's logits bit for bit; None (default): ``vmap`` when the model "
            "is on a GPU and there are several episodes, the loop on the CPU (where ``vmap`` "
            "gains little; see ``benchmarks/bench_adaptation.py`` and "
            "``benchmarks/bench_study.py``). Both give the same predictions, logits equal "
            "within float rounding.",
            batch_only=True,
            annotation="bool | None",
        ),
        Extra(
            "chunk_size",
            None,
            "",
            batch_doc="With ``vectorize``, episodes per ``vmap`` call (bounds memory); None: "
            "all at once.",
            batch_only=True,
            annotation="int | None",
        ),
    ),
    module=__name__,
    examples="""
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
    """,
    batch_notes="""
    With ``vectorize``, each episode's BatchNorm uses its own batch statistics
    (``"transductive"``: BatchNorm copies without running statistics,
    ``torch.func.replace_all_batch_norm_modules_``) or the model's frozen running statistics
    (``"running"``).

    Speed (``benchmarks/bench_adaptation.py``, OmniglotCNN, 5-way 1-shot, 75 queries, 5
    steps): on an H200, ``vmap`` took about 0.6-1 ms per episode against 11-13 ms for the loop
    (E = 64 to 256). On a shared 2-core CPU (E = 50, the study's chunk; best of 4): the loop
    took 21 / 18 ms per episode (OmniglotCNN, 1 / 2 threads) and 14 / 13 ms (conv4-small),
    against 27 / 21 ms for learn2learn's clone/adapt with a deep copy per episode
    (conv4-small, the study runner's former path); ``vmap`` took 32 / 16 ms (OmniglotCNN) and
    13 / 8 ms (conv4-small). The loop stays the CPU default: it is never much slower and its
    logits are learn2learn's bit for bit.

    In float64 both forms agree to about 1e-13. In float32 the inner loop amplifies rounding:
    logits typically differ by about 1e-5, but in rare episodes much more (1e-2 on a CPU with
    2 of 3,750 query predictions changed; up to 0.3 on a GPU, where ``vmap`` runs batched
    convolutions through other cuDNN kernels). Use float64 where logits must match exactly.
    """,
    batch_examples="""
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> model.classifier = torch.nn.Linear(4, 2)
    >>> x = torch.eye(4).reshape(2, 2, 1, 2, 2)  # 2 episodes of 2 one-pixel images
    >>> y = torch.tensor([[0, 1], [0, 1]])
    >>> config = MamlConfig(steps=20, lr=1.0)
    >>> maml_adapt_batch(model, x, y, x, y, config=config, vectorize=True).accuracy.tolist()
    [1.0, 1.0]
    """,
)


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------


def fresh_head(
    dim: int,
    ways: int,
    *,
    init: Literal["zero", "random"] = "zero",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> nn.Linear:
    """A new ``nn.Linear(dim, ways)`` head: all zeros, or uniform(+-1/sqrt(dim)) drawn from
    ``torch.Generator().manual_seed(seed)`` (float64 draws, then cast), on ``device``.

    The head a backbone is fine-tuned from when its own does not fit the episode
    (:meth:`metaleep.backbones.protocol.StudyBackbone.with_head`, ``FinetuneConfig.head``).

    Examples
    --------
    >>> head = fresh_head(3, 2)
    >>> head.weight.abs().sum().item(), tuple(head.weight.shape)
    (0.0, (2, 3))
    >>> bool((fresh_head(3, 2, init="random").weight.abs() <= 3 ** -0.5).all())
    True
    """
    linear = nn.Linear(dim, ways).to(device, dtype)
    with torch.no_grad():
        if init == "zero":
            linear.weight.zero_()
            linear.bias.zero_()
        elif init == "random":
            generator = torch.Generator().manual_seed(int(seed))
            bound = 1.0 / math.sqrt(dim)
            for parameter in (linear.weight, linear.bias):
                draw = torch.rand(parameter.shape, generator=generator, dtype=torch.float64)
                parameter.copy_((2 * draw - 1) * bound)
        else:
            raise ValueError(f"`init` must be one of ('zero', 'random'); got {init!r}.")
    return linear


def _finetune_episode(
    model: nn.Module,
    config: FinetuneConfig,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    ways: int,
) -> EpisodeLogits:
    """Fine-tune a fresh copy on one (validated) episode: its query logits and its support
    logits before and after."""
    network = _copy_network(model, need_head=config.head == "meta")
    if config.head != "meta":
        head = network.classifier
        if isinstance(head, nn.Linear):
            dim = head.in_features
        else:
            network.eval()
            with torch.no_grad():
                dim = int(network.features(support_x).shape[-1])
        dtype, device = module_dtype_device(network)
        network.classifier = fresh_head(
            dim, ways, init=config.head, seed=config.seed, dtype=dtype, device=device
        )
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
            logits = network(support_x)
            if start_logits is None:
                start_logits = logits.detach()
            nn.functional.cross_entropy(logits, support_y).backward()
            optimizer.step()
    with torch.no_grad():
        query_logits = network(query_x).detach()
        end_logits = network(support_x).detach()
    start = end_logits if start_logits is None else start_logits
    return EpisodeLogits(query_logits, start, end_logits)


def _finetune_core(
    model: nn.Module, episodes: EpisodeTensors, *, ways: int, config: FinetuneConfig
) -> BatchAdaptationResult:
    sx, sy, qx, qy = episodes
    out = _stack(
        [_finetune_episode(model, config, sx[e], sy[e], qx[e], ways) for e in range(len(sx))]
    )
    return score_logits_batch(out.query, qy).with_support(out.support_end, sy, out.support_start)


def _finetune_ways(model: nn.Module, ways: object, config: FinetuneConfig) -> int:
    _children(model, need_head=config.head == "meta")
    if config.head == "meta":
        return _head_ways(model, ways)
    if ways is None:
        raise ValueError(
            f"`ways` must be given when `head` is {config.head!r} (a fresh head); got None."
        )
    return check_ways(ways)


finetune, finetune_batch = define_adaptation(
    name="finetune",
    core=_finetune_core,
    config=FinetuneConfig,
    inputs="images",
    resolve_ways=_finetune_ways,
    ways_doc='N. Required for a fresh head; for ``head="meta"`` optional, checked against '
    "the head.",
    title="Fine-tune a deep copy of the whole network on the support set, then score the queries",
    summary="""
    ``steps`` full-batch steps of ``torch.optim.SGD`` (with ``momentum``) or ``Adam`` on the
    support cross-entropy, then the query logits under ``no_grad``. Every episode starts from
    a fresh copy of ``model`` (and, for ``head="random"``, the same seeded head); the model is
    unchanged. With ``head="meta"`` the model needs an ``nn.Linear`` ``classifier``; otherwise
    only ``features``.
    """,
    module=__name__,
    examples="""
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> x = torch.eye(4).reshape(4, 1, 2, 2)
    >>> y = torch.tensor([0, 1, 2, 3])
    >>> result = finetune(model, x, y, x, y, ways=4, head="zero", steps=20, lr=0.5)
    >>> result.accuracy
    1.0
    """,
    batch_examples="""
    >>> import torch
    >>> model = torch.nn.Module()
    >>> model.features = torch.nn.Flatten()
    >>> x = torch.eye(4).reshape(2, 2, 1, 2, 2)
    >>> y = torch.tensor([[0, 1], [0, 1]])
    >>> config = FinetuneConfig(head="zero", lr=0.5)
    >>> finetune_batch(model, x, y, x, y, ways=2, config=config).accuracy.tolist()
    [1.0, 1.0]
    """,
)

__test__ = {
    "maml_adapt": maml_adapt,
    "maml_adapt_batch": maml_adapt_batch,
    "finetune": finetune,
    "finetune_batch": finetune_batch,
}
