"""Meta-test (and meta-validation) accuracy of a backbone on few-shot episodes.

Each method maps one episode's support set to query logits (n_q, N):

``"maml"``
    MAML's inner loop (Finn et al., 2017): ``inner_steps`` SGD steps of size ``inner_lr`` on the
    support cross-entropy, over the whole network, starting from the meta-learned weights and
    N-way head (:class:`metaleep.adapt.inner_loop.InnerLoop`, the loop training runs; its
    values are learn2learn's ``MAML.clone()/adapt()``; first-order, as no outer step follows).
``"anil"``
    The same over the head only, on frozen features (Raghu et al., 2020).
``"prototype"``
    Nearest class mean: logits ``-‖f(x) − c_k‖²`` with ``c_k`` the mean support embedding of
    class k (Snell et al., 2017; :func:`metaleep.adapt.prototypes.prototype_logits`). Needs no
    head: the method of ProtoNet, and of the supervised source model, whose Z-way head does not
    fit N-way episodes (a fixed-feature nearest-centroid baseline, as in Chen et al., 2019, "A
    Closer Look at Few-shot Classification").

BatchNorm: ``"transductive"`` normalises with the statistics of the batch at hand (the support
set while adapting, the query set as one batch when predicting), as reference MAML does;
``"running"`` uses the stored statistics (``model.eval()``). Either way the model's weights
and buffers are the same after evaluation as before (the inner loop writes only private copies
of the buffers; buffers are restored).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

import numpy as np
import torch
from torch import nn

from metaleep.adapt.inner_loop import InnerLoop
from metaleep.adapt.prototypes import class_means, prototype_logits
from metaleep.episodes import Episode, EpisodeSampler, EpisodeSpec

if TYPE_CHECKING:
    from metaleep.backbones.checkpoint import Backbone, SplitLike
    from metaleep.backbones.models import FewShotNet
    from metaleep.data.base import ImageDataset

Method: TypeAlias = Literal["maml", "anil", "prototype"]
METHODS: tuple[str, ...] = ("maml", "anil", "prototype")
DEFAULT_METHOD: dict[str, Method] = {
    "maml": "maml",
    "fomaml": "maml",
    "anil": "anil",
    "protonet": "prototype",
    "supervised": "prototype",
}
"""The evaluation method of each training algorithm."""

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "MeanCI",
    "episode_logits",
    "evaluate",
    "evaluate_episodes",
    "mean_ci",
]


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore ``model``'s buffers and train/eval mode on exit."""
    saved = {k: v.detach().clone() for k, v in model.named_buffers()}
    modes = {name: m.training for name, m in model.named_modules()}
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(saved[k])
        for name, m in model.named_modules():
            m.training = modes[name]


def set_batch_norm(model: nn.Module, mode: str) -> None:
    """``train()`` for ``"transductive"`` (batch statistics), ``eval()`` for ``"running"``."""
    if mode not in ("transductive", "running"):
        raise ValueError(f"`batch_norm` must be one of transductive, running; got {mode!r}.")
    model.train(mode == "transductive")


def episode_logits(
    model: FewShotNet,
    support: torch.Tensor,
    support_labels: torch.Tensor,
    query: torch.Tensor,
    *,
    ways: int,
    method: str,
    batch_norm: str,
    inner_steps: int = 1,
    inner_lr: float = 0.4,
) -> torch.Tensor:
    """Detached query logits (n_q, ways) of one episode after adapting on its support set.

    Parameters
    ----------
    model:
        A :class:`~metaleep.backbones.models.FewShotNet`; left with the weights, buffers and
        mode it had.
    support, support_labels, query:
        The episode: images (n_s, C, H, W), labels (n_s,) in 0..ways-1, images (n_q, C, H, W).
    ways:
        N; ``maml`` and ``anil`` need the head's N.
    method:
        ``"maml"``, ``"anil"`` or ``"prototype"`` (module docstring).
    batch_norm:
        ``"transductive"`` or ``"running"``.
    inner_steps, inner_lr:
        The inner loop of ``maml`` and ``anil``.

    Returns
    -------
    torch.Tensor
        (n_q, ways) query logits.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}.")
    with preserved_state(model):
        set_batch_norm(model, batch_norm)
        if method == "prototype":
            with torch.no_grad():
                centres = class_means(model.features(support), support_labels, ways)
                return prototype_logits(model.features(query), centres)
        out = model.classifier.out_features
        if out != ways:
            raise ValueError(
                f"`ways` must equal the {out} outputs of the backbone's head for method "
                f"{method!r}; got {ways}."
            )
        loop = InnerLoop(steps=inner_steps, lr=inner_lr)
        if method == "anil":
            with torch.no_grad():
                f_support = model.features(support)
                f_query = model.features(query)
            return loop.query_logits(model.classifier, f_support, support_labels, f_query)
        return loop.query_logits(model, support, support_labels, query)


def _episode_tensors(
    dataset: ImageDataset, episode: Episode, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        dataset.batch(episode.support).to(device),
        torch.as_tensor(episode.support_labels, device=device),
        dataset.batch(episode.query).to(device),
        torch.as_tensor(episode.query_labels, device=device),
    )


class MeanCI(NamedTuple):
    """A mean accuracy and its 95 % confidence half-width."""

    mean: float
    """Mean accuracy in [0, 1]."""
    half_width: float
    """``1.96 * s / sqrt(E)`` (normal approximation; 0 for one episode)."""


def mean_ci(accuracies: np.ndarray) -> MeanCI:
    """Mean and 95 % normal-approximation half-width ``1.96 * s / sqrt(E)`` (0 for E = 1).

    Examples
    --------
    >>> mean_ci(np.array([0.5, 0.7, 0.9]))
    MeanCI(mean=0.7, half_width=0.22...)
    """
    values = np.asarray(accuracies, dtype=np.float64)
    if values.size < 2:
        return MeanCI(float(values.mean()), 0.0)
    return MeanCI(float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(values.size)))


def evaluate_episodes(
    model: FewShotNet,
    dataset: ImageDataset,
    episodes: list[Episode],
    *,
    method: str,
    batch_norm: str,
    inner_steps: int = 1,
    inner_lr: float = 0.4,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Query accuracy of each of ``episodes`` of ``dataset``, adapted by :func:`episode_logits`.

    Parameters
    ----------
    model, method, batch_norm, inner_steps, inner_lr:
        As for :func:`episode_logits`.
    dataset, episodes:
        The images and the episodes drawn from them.
    device:
        Where the images go (the model's device).

    Returns
    -------
    numpy.ndarray
        float64 (E,), each exactly (correct queries) / n_q.
    """
    accuracies = np.empty(len(episodes))
    for e, episode in enumerate(episodes):
        xs, ys, xq, yq = _episode_tensors(dataset, episode, device)
        logits = episode_logits(
            model,
            xs,
            ys,
            xq,
            ways=episode.ways,
            method=method,
            batch_norm=batch_norm,
            inner_steps=inner_steps,
            inner_lr=inner_lr,
        )
        accuracies[e] = int((logits.argmax(1) == yq).sum()) / len(yq)  # exactly k / n_q
    return accuracies


def evaluate(
    backbone: Backbone,
    dataset: ImageDataset,
    split: SplitLike,
    spec: EpisodeSpec,
    *,
    episodes: int = 600,
    seed: int = 0,
    classes: Literal["train", "validation", "test"] = "test",
    method: str | None = None,
    batch_norm: str | None = None,
    inner_steps: int | None = None,
    inner_lr: float | None = None,
    progress: bool = False,
) -> MeanCI:
    """Mean query accuracy of a backbone over episodes of held-out classes, with a 95 % CI.

    Parameters
    ----------
    backbone:
        A trained :class:`~metaleep.backbones.checkpoint.Backbone`.
    dataset, split:
        The data set and class split (episodes use ``split.<classes>``).
    spec:
        The episodes (N-way K-shot). ``maml``/``anil`` need N = the head's ways.
    episodes:
        How many episodes (episode i is episode i of the suite with ``seed``).
    classes:
        Which part of the split: ``"test"`` (meta-test) by default.
    method:
        ``"maml"``, ``"anil"`` or ``"prototype"`` (module docstring); default from the
        algorithm: MAML/first-order MAML -> maml, ANIL -> anil, ProtoNet/supervised ->
        prototype.
    batch_norm:
        ``"transductive"`` or ``"running"``; default the backbone's own mode.
    inner_steps, inner_lr:
        Inner loop of ``maml``/``anil``; default the training config's.
    progress:
        Show a tqdm bar.

    Returns
    -------
    MeanCI
        ``(mean, half_width)``: the mean accuracy in [0, 1] and the 95 % confidence
        half-width ``1.96 s / sqrt(E)``.
    """
    from metaleep._optional import progress_bar as tqdm

    if classes not in ("train", "validation", "test"):
        raise ValueError(f"`classes` must be one of train, validation, test; got {classes!r}.")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"`episodes` must be a positive integer; got {episodes!r}.")
    config = backbone.config
    method = method or DEFAULT_METHOD[config.algorithm]
    model = backbone.model
    device = next(model.parameters()).device
    sampler = EpisodeSampler(dataset, spec, classes=np.asarray(getattr(split, classes)), seed=seed)
    accuracies = np.empty(episodes)
    options: dict[str, Any] = {
        "method": method,
        "batch_norm": batch_norm or backbone.batch_norm,
        "inner_steps": inner_steps or config.inner_steps,
        "inner_lr": inner_lr or config.inner_lr,
        "device": device,
    }
    with preserved_state(model):
        for i in tqdm(range(episodes), disable=not progress, desc=f"evaluate {backbone.name}"):
            accuracies[i] = evaluate_episodes(model, dataset, [sampler.sample(i)], **options)[0]
    return mean_ci(accuracies)
