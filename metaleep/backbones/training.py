"""(Meta-)training of backbones on the source (training) classes of a split.

Algorithms (``TrainConfig.algorithm``):

``"maml"`` / ``"fomaml"``
    MAML (Finn et al., 2017): per task ``inner_steps`` SGD steps on the support cross-entropy
    (metaleep's one inner loop, :class:`metaleep.adapt.inner_loop.InnerLoop`, with the values
    of learn2learn's ``MAML.clone()`` / ``adapt()``), then the query cross-entropy of the
    adapted parameters; the outer Adam step follows the mean over ``meta_batch`` tasks,
    through the inner loop (second order) or not (``fomaml``).
``"anil"``
    ANIL (Raghu et al., 2020): the same inner loop (second order) on the head alone, over
    ``model.features(x)``; the outer step trains features and head initialisation.
``"protonet"``
    Prototypical networks (Snell et al., 2017): query logits ``-‖f(x) − c_k‖²`` to the class
    means of the support embeddings, cross-entropy; no inner loop.
``"supervised"``
    A Z-way classifier over every source class, minibatch cross-entropy (the classic LEEP
    source model: its softmax over the Z source labels is the dummy-label distribution).

Tasks come from :class:`~metaleep.episodes.EpisodeSampler` over the split's ``train`` classes
with ``seed = config.seed``: task j of step t is episode ``t * meta_batch + j``. Minibatch t
of ``supervised`` is a slice of the permutation of epoch ``t // steps_per_epoch``, drawn from
``(seed, epoch)``. So step t does not depend on how the run got there, which is what makes
resuming exact.

BatchNorm. MAML-family training normalises with batch statistics (train mode), as reference
MAML and learn2learn do. The inner loop runs its forward passes with private copies of the
buffers (:func:`metaleep.adapt.inner_loop.private_buffers`; learn2learn's ``clone()`` would
share them), so task adaptation never changes the original model's running statistics.
Forward passes of the original itself (ANIL's features, ProtoNet, supervised) update its
statistics as usual. At the end of training the running statistics of the kept
(best) weights are recomputed on source images (cumulative average over batches, "precise
BN"), so every backbone can also be used in eval mode with one output per image.

Meta-validation on the split's ``validation`` classes every ``eval_every`` steps (always the
same ``eval_episodes`` episodes) drives early stopping and the choice of the kept weights, and
is when the resume checkpoint ``training.pt`` is written. The final backbone is
``backbone.pt``. Same seed, same thread count, CPU: same weights, bit for bit, whether or not
the run was interrupted and resumed.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import metaleep
from metaleep.adapt.inner_loop import InnerLoop, functional_forward, private_buffers
from metaleep.adapt.prototypes import class_means, prototype_logits
from metaleep.backbones.checkpoint import (
    BACKBONE_FILE,
    TRAINING_FILE,
    Backbone,
    CheckpointError,
    SplitLike,
    read_checkpoint,
    split_fingerprint,
    write_checkpoint,
)
from metaleep.backbones.config import TrainConfig
from metaleep.backbones.evaluation import DEFAULT_METHOD, evaluate_episodes, mean_ci
from metaleep.backbones.models import FewShotNet, build_backbone
from metaleep.data.base import ImageDataset
from metaleep.episodes import EpisodeSampler, EpisodeSpec

logger = logging.getLogger(__name__)

__all__ = ["RESUMABLE_FIELDS", "calibrate_batch_norm", "train"]

RESUMABLE_FIELDS: tuple[str, ...] = ("iterations", "patience", "device", "threads")
"""Config fields a resumed run may change; any other difference is a CheckpointError."""

_TAG_VALIDATION, _TAG_MINIBATCH, _TAG_CALIBRATION, _TAG_TORCH = 1, 2, 3, 4
_CALIBRATION_IMAGES, _CALIBRATION_BATCH = 2048, 256
_BATCH_NORM = {
    "maml": "transductive",
    "fomaml": "transductive",
    "anil": "transductive",
    "protonet": "running",
    "supervised": "running",
}


def _subseed(seed: int, tag: int) -> int:
    """A seed derived from ``(seed, tag)`` (independent streams for independent uses)."""
    return int(np.random.SeedSequence(seed, spawn_key=(tag,)).generate_state(1)[0])


@dataclass
class _State:
    """Everything besides weights and optimizer that a resumed run needs."""

    step: int = 0
    last_eval: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = -math.inf
    best_step: int = 0
    best_model: dict[str, torch.Tensor] | None = None
    bad_evals: int = 0
    stopped: bool = False
    loss_sum: float = 0.0
    loss_count: int = 0
    seconds: float = 0.0


def _check_inputs(dataset: Any, split: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"`dataset` must be an ImageDataset; got {type(dataset).__name__!r}.")
    if not all(hasattr(split, part) for part in ("name", "train", "validation", "test")):
        raise TypeError(
            "`split` must have name, train, validation and test class ids (a ClassSplit); "
            f"got {type(split).__name__!r}."
        )
    source = np.unique(np.asarray(split.train, dtype=np.int64))
    if source.size == 0:
        raise ValueError("`split.train` must hold class ids; got none.")
    return source, np.unique(np.asarray(split.validation, dtype=np.int64))


def _state_dict_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _module_counters(model: torch.nn.Module) -> dict[str, int]:
    """Python-int ``num_batches_tracked`` counters (learn2learn's ResNet12 DropBlock schedule)."""
    return {
        name: int(m.__dict__["num_batches_tracked"])
        for name, m in model.named_modules()
        if isinstance(m.__dict__.get("num_batches_tracked"), int)
    }


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def calibrate_batch_norm(
    model: FewShotNet,
    dataset: ImageDataset,
    classes: np.ndarray,
    *,
    seed: int,
    images: int = _CALIBRATION_IMAGES,
    batch_size: int = _CALIBRATION_BATCH,
) -> None:
    """Recompute every BatchNorm layer's running statistics on images of ``classes``.

    ``images`` images drawn without replacement with ``seed`` are passed in batches of
    ``batch_size`` in train mode without gradients, with ``momentum=None`` (cumulative average
    over the batches); weights are unchanged, the model is left in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        model.eval()
        return
    pool = np.concatenate([dataset.labels_to_indices[int(c)] for c in classes])
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(pool.size, min(images, pool.size), replace=False))
    order = pool[chosen][rng.permutation(chosen.size)]
    device = next(model.parameters()).device
    momenta = [m.momentum for m in norms]
    model.eval()  # dropout and DropBlock off: only the BatchNorm layers see batch statistics
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        with torch.no_grad():
            for start in range(0, order.size, batch_size):
                block = order[start : start + batch_size]
                if block.size < 2:
                    break
                model.features(dataset.batch(block).to(device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()


class _Trainer:
    """One training run (kept in an object so each algorithm's step is a small method)."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: ImageDataset,
        split: SplitLike,
        source: np.ndarray,
        validation: np.ndarray,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.split = split
        self.source = source
        self.device = torch.device(config.resolved_device())
        out = source.size if config.algorithm == "supervised" else config.ways
        self.model = build_backbone(
            config.arch, out_features=out, in_shape=dataset.image_shape, seed=config.seed
        ).to(self.device)
        if config.algorithm == "protonet":
            with torch.no_grad():  # untrained head: uniform output, documented in Backbone.head
                self.model.classifier.weight.zero_()
                self.model.classifier.bias.zero_()
            params = list(self.model.features.parameters())
        else:
            params = list(self.model.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.meta_lr)
        spec = EpisodeSpec(ways=config.ways, shots=config.shots, queries=config.queries)
        if config.episodic:
            self.tasks = EpisodeSampler(dataset, spec, classes=source, seed=config.seed)
        else:
            self.pool = np.concatenate([dataset.labels_to_indices[int(c)] for c in source])
            if self.pool.size < config.batch_size:
                raise ValueError(
                    f"`--batch-size` must be at most the {self.pool.size} source images; "
                    f"got {config.batch_size}."
                )
            self.targets = torch.as_tensor(np.searchsorted(source, dataset.labels[self.pool]))
        self.validation = (
            EpisodeSampler(
                dataset, spec, classes=validation, seed=_subseed(config.seed, _TAG_VALIDATION)
            ).sample_many(config.eval_episodes)
            if validation.size
            else []
        )
        self.state = _State()
        self.inner = InnerLoop(
            steps=config.inner_steps,
            lr=config.inner_lr,
            second_order=config.algorithm != "fomaml",
        )

    # -- one step of each algorithm: returns the mean training loss ---------------------------

    def _task(self, index: int) -> tuple[torch.Tensor, ...]:
        episode = self.tasks.sample(index)
        to = self.device
        return (
            self.dataset.batch(episode.support).to(to),
            torch.as_tensor(episode.support_labels, device=to),
            self.dataset.batch(episode.query).to(to),
            torch.as_tensor(episode.query_labels, device=to),
        )

    def _maml_loss(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor):
        return self._adapted_loss(self.model, xs, ys, xq, yq)

    def _anil_loss(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor):
        f_support, f_query = self.model.features(xs), self.model.features(xq)
        return self._adapted_loss(self.model.classifier, f_support, ys, f_query, yq)

    def _adapted_loss(
        self,
        network: torch.nn.Module,
        xs: torch.Tensor,
        ys: torch.Tensor,
        xq: torch.Tensor,
        yq: torch.Tensor,
    ) -> torch.Tensor:
        """Query cross-entropy of ``network`` after the inner loop on the support set."""
        buffers = private_buffers(network)
        params = dict(network.named_parameters())
        adapted = self.inner.adapt(network, params, xs, ys, buffers=buffers)
        return F.cross_entropy(functional_forward(network, adapted, buffers, xq), yq)

    def _protonet_loss(
        self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor
    ):
        embedded = self.model.features(torch.cat([xs, xq]))
        centres = class_means(embedded[: xs.shape[0]], ys, self.config.ways)
        return F.cross_entropy(prototype_logits(embedded[xs.shape[0] :], centres), yq)

    def _episodic_step(self, step: int) -> float:
        loss_fn = {
            "maml": self._maml_loss,
            "fomaml": self._maml_loss,
            "anil": self._anil_loss,
            "protonet": self._protonet_loss,
        }[self.config.algorithm]
        batch = self.config.meta_batch
        total = 0.0
        for j in range(batch):
            loss = loss_fn(*self._task(step * batch + j))
            (loss / batch).backward()
            total += float(loss.detach())
        return total / batch

    def _supervised_step(self, step: int) -> float:
        size = self.config.batch_size
        per_epoch = self.pool.size // size
        epoch, offset = divmod(step, per_epoch)
        order = np.random.default_rng(
            np.random.SeedSequence(_subseed(self.config.seed, _TAG_MINIBATCH), spawn_key=(epoch,))
        ).permutation(self.pool.size)[offset * size : (offset + 1) * size]
        images = self.dataset.batch(self.pool[order]).to(self.device)
        loss = F.cross_entropy(self.model(images), self.targets[order].to(self.device))
        loss.backward()
        return float(loss.detach())

    # -- validation, checkpoints -----------------------------------------------------------

    def validate(self) -> tuple[float, float]:
        config = self.config
        if not self.validation:
            return math.nan, math.nan
        accuracies = evaluate_episodes(
            self.model,
            self.dataset,
            self.validation,
            method=DEFAULT_METHOD[config.algorithm],
            batch_norm=_BATCH_NORM[config.algorithm],
            inner_steps=config.inner_steps,
            inner_lr=config.inner_lr,
            device=self.device,
        )
        return mean_ci(accuracies)

    def _common_payload(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "in_shape": list(self.model.in_shape),
            "out_features": self.model.out_features,
            "source_classes": [int(c) for c in self.source],
            "dataset": self.dataset.fingerprint,
            "split": split_fingerprint(self.split),
            "step": self.state.step,
            "best_step": self.state.best_step,
            "history": [dict(h) for h in self.state.history],
            "metaleep": metaleep.__version__,
            "torch": str(torch.__version__),
        }

    def save_training(self, path: Path, name: str) -> None:
        s = self.state
        payload = self._common_payload() | {
            "name": name,
            "model": _state_dict_copy(self.model),
            "optimizer": self.optimizer.state_dict(),
            "best_model": s.best_model,
            "best_val": s.best_val if math.isfinite(s.best_val) else None,
            "last_eval": s.last_eval,
            "bad_evals": s.bad_evals,
            "stopped": s.stopped,
            "loss_sum": s.loss_sum,
            "loss_count": s.loss_count,
            "seconds": s.seconds,
            "rng": _rng_state(self.device),
            "counters": _module_counters(self.model),
        }
        write_checkpoint(path, payload, kind="training")

    def restore(self, path: Path) -> None:
        header, payload = read_checkpoint(path)
        if header.get("kind") != "training":
            raise CheckpointError(f"{path} is not a training checkpoint; delete it to start over.")
        saved = TrainConfig.from_dict(dict(payload["config"]))
        ours, theirs = self.config.to_dict(), saved.to_dict()
        differ = [k for k in ours if ours[k] != theirs[k] and k not in RESUMABLE_FIELDS]
        if differ:
            detail = ", ".join(f"{k}: {theirs[k]!r} there, {ours[k]!r} here" for k in differ)
            raise CheckpointError(
                f"{path} was written by a run with another configuration ({detail}); resume "
                "with the same settings, use another --out directory, or drop --resume to "
                "start over."
            )
        if payload["dataset"] != self.dataset.fingerprint:
            raise CheckpointError(
                f"{path} was trained on data set {payload['dataset']!r}, not "
                f"{self.dataset.fingerprint!r}; resume with the data set it was started on, "
                "use another --out directory, or drop --resume to start over."
            )
        if payload["split"] != split_fingerprint(self.split):
            raise CheckpointError(
                f"{path} was trained on split {payload['split']!r}, not "
                f"{split_fingerprint(self.split)!r}; resume with the split it was started on, "
                "use another --out directory, or drop --resume to start over."
            )
        try:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: its weights do not fit architecture {self.config.arch!r} ({err}); "
                "delete it and train again."
            ) from err
        for name, module in self.model.named_modules():
            if name in payload["counters"]:
                module.__dict__["num_batches_tracked"] = int(payload["counters"][name])
        s = self.state
        s.step, s.last_eval = int(payload["step"]), int(payload["last_eval"])
        s.history = [dict(h) for h in payload["history"]]
        s.best_val = -math.inf if payload["best_val"] is None else float(payload["best_val"])
        s.best_step, s.best_model = int(payload["best_step"]), payload["best_model"]
        s.bad_evals, s.stopped = int(payload["bad_evals"]), bool(payload["stopped"])
        s.loss_sum, s.loss_count = float(payload["loss_sum"]), int(payload["loss_count"])
        s.seconds = float(payload["seconds"])
        _set_rng_state(payload["rng"], self.device)
        if s.stopped and self.config.patience is not None and s.bad_evals < self.config.patience:
            s.stopped = False  # a larger --patience lets a run that stopped early go on

    # -- the loop --------------------------------------------------------------------------

    def run(
        self,
        *,
        checkpoint: Path | None,
        name: str,
        progress: bool,
        callback: Callable[[int, dict[str, float]], None] | None,
    ) -> None:
        from metaleep._optional import progress_bar as tqdm

        config, s = self.config, self.state
        step_fn = self._episodic_step if config.episodic else self._supervised_step
        started = time.perf_counter() - s.seconds
        updating = False
        bar = tqdm(
            total=config.iterations, initial=s.step, disable=not progress, desc=name, leave=True
        )
        try:
            while True:
                due = s.step == config.iterations or s.step % config.eval_every == 0
                if s.step > 0 and due and s.last_eval != s.step:
                    self._evaluate_now(started)
                    bar.set_postfix(
                        loss=f"{s.history[-1]['train_loss']:.3f}",
                        val=f"{s.history[-1]['val_acc']:.3f}",
                    )
                    if checkpoint is not None:
                        self.save_training(checkpoint, name)
                if s.step >= config.iterations or s.stopped:
                    break
                self.model.train()
                self.optimizer.zero_grad(set_to_none=True)
                loss = step_fn(s.step)
                updating = True
                self.optimizer.step()
                s.step += 1
                s.loss_sum += loss
                s.loss_count += 1
                updating = False
                bar.update(1)
                if callback is not None:
                    callback(s.step, {"step": s.step, "loss": loss})
        except KeyboardInterrupt:
            if checkpoint is not None and not updating:
                s.seconds = time.perf_counter() - started
                self.save_training(checkpoint, name)
                logger.warning("interrupted at step %d; %s holds the run", s.step, checkpoint)
            raise
        finally:
            bar.close()
        s.seconds = time.perf_counter() - started

    def _evaluate_now(self, started: float) -> None:
        s = self.state
        accuracy, half_width = self.validate()
        s.seconds = time.perf_counter() - started
        s.history.append(
            {
                "step": s.step,
                "train_loss": s.loss_sum / max(s.loss_count, 1),
                "val_acc": accuracy,
                "val_ci": half_width,
                "seconds": s.seconds,
            }
        )
        s.loss_sum, s.loss_count, s.last_eval = 0.0, 0, s.step
        if math.isnan(accuracy):
            return  # no validation classes: the last weights are kept
        if accuracy > s.best_val:
            s.best_val, s.best_step, s.bad_evals = accuracy, s.step, 0
            s.best_model = _state_dict_copy(self.model)
        else:
            s.bad_evals += 1
            if self.config.patience is not None and s.bad_evals >= self.config.patience:
                s.stopped = True


def train(
    config: TrainConfig,
    dataset: ImageDataset,
    split: SplitLike,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = False,
    name: str | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    snapshot_every: int | None = None,
) -> Backbone:
    """Train a backbone on ``split.train`` classes, validating on ``split.validation``.

    Parameters
    ----------
    config:
        The :class:`TrainConfig`.
    dataset:
        An :class:`~metaleep.data.base.ImageDataset` (images scaled to [0, 1]).
    split:
        A class split with ``name``, ``train``, ``validation`` (and ``test``) class ids.
    checkpoint_dir:
        Where ``training.pt`` (written at each validation, and on Ctrl-C between steps) and
        the final ``backbone.pt`` go; ``None`` writes nothing.
    resume:
        Continue from ``checkpoint_dir/training.pt`` if it exists (its config must match
        except :data:`RESUMABLE_FIELDS`; same data set and split). The result equals an
        uninterrupted run's. Without ``resume`` an existing ``training.pt`` is overwritten.
    progress:
        Show a tqdm bar with the training loss and validation accuracy.
    name:
        The backbone's :attr:`~metaleep.backbones.checkpoint.Backbone.name` (default
        ``config.name``).
    callback:
        Called after every step as ``callback(step, {"step": ..., "loss": ...})``. A
        KeyboardInterrupt (from it, or Ctrl-C anywhere but inside the optimizer update) writes
        ``training.pt`` at the last completed step before it propagates; after any other
        exception the run resumes from the last validation's ``training.pt``.
    snapshot_every:
        Every this many steps, write the weights as they are (BatchNorm calibrated like the
        final backbone's, on a copy) to ``checkpoint_dir/snapshots/step-NNNNNN.pt``, a backbone
        checkpoint named ``NAME@step-N``: rank a run's checkpoints with ``metaleep score``. The
        training itself is unchanged.

    Returns
    -------
    Backbone
        The best weights by validation accuracy, BatchNorm calibrated, in eval mode; saved to
        ``checkpoint_dir/backbone.pt`` when a directory is given.

    Examples
    --------
    >>> from metaleep.backbones.testing import toy_dataset, toy_split
    >>> data = toy_dataset(classes=12, per_class=6)
    >>> cfg = TrainConfig(algorithm="protonet", arch="conv2-8", ways=3, queries=2,
    ...                   iterations=4, meta_batch=2, eval_every=2, eval_episodes=4)
    >>> backbone = train(cfg, data, toy_split(data))
    >>> [h["step"] for h in backbone.history], backbone.head, backbone.model.training
    ([2, 4], 'none', False)
    """
    source, validation = _check_inputs(dataset, split)
    if validation.size == 0:
        warnings.warn(
            f"split {split.name!r} has no validation classes: no early stopping, the last "
            "weights are kept and history's val_acc is NaN",
            stacklevel=2,
        )
    name = name or config.name
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if snapshot_every is not None and (
        isinstance(snapshot_every, bool)
        or not isinstance(snapshot_every, int)
        or snapshot_every < 1
        or directory is None
    ):
        raise ValueError(
            "`snapshot_every` must be a positive integer, with a checkpoint_dir; got "
            f"{snapshot_every!r} with checkpoint_dir={checkpoint_dir!r}."
        )
    checkpoint = directory / TRAINING_FILE if directory is not None else None
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = torch.device(config.resolved_device())
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(_subseed(config.seed, _TAG_TORCH))
            trainer = _Trainer(config, dataset, split, source, validation)
            if resume and checkpoint is not None and checkpoint.is_file():
                trainer.restore(checkpoint)
            on_step = callback
            if snapshot_every is not None and directory is not None:

                def on_step(step: int, info: dict[str, float]) -> None:
                    if callback is not None:
                        callback(step, info)
                    if step % snapshot_every == 0:
                        _snapshot(trainer, directory, name, step)

            trainer.run(checkpoint=checkpoint, name=name, progress=progress, callback=on_step)
    finally:
        torch.set_num_threads(threads)
    model, state = trainer.model, trainer.state
    if state.best_model is not None:
        model.load_state_dict(state.best_model)
    calibrate_batch_norm(model, dataset, source, seed=_subseed(config.seed, _TAG_CALIBRATION))
    backbone = Backbone(
        model=model,
        config=config,
        source_classes=source,
        dataset_fingerprint=dataset.fingerprint,
        split=split_fingerprint(split),
        name=name,
        step=state.step,
        best_step=state.best_step,
        history=[dict(h) for h in state.history],
    )
    if directory is not None:
        backbone.save(directory / BACKBONE_FILE)
    return backbone


SNAPSHOT_DIR = "snapshots"
"""Folder of ``train(snapshot_every=...)``'s snapshots inside the checkpoint directory."""


def _snapshot(trainer: _Trainer, directory: Path, name: str, step: int) -> Path:
    """Save the trainer's current weights as a backbone checkpoint (a calibrated copy)."""
    import copy

    model = copy.deepcopy(trainer.model)
    config = trainer.config
    calibrate_batch_norm(
        model, trainer.dataset, trainer.source, seed=_subseed(config.seed, _TAG_CALIBRATION)
    )
    backbone = Backbone(
        model=model,
        config=config,
        source_classes=trainer.source,
        dataset_fingerprint=trainer.dataset.fingerprint,
        split=split_fingerprint(trainer.split),
        name=f"{name}@step-{step}",
        step=step,
        best_step=step,
        history=[dict(h) for h in trainer.state.history],
    )
    return backbone.save(directory / SNAPSHOT_DIR / f"step-{step:06d}.pt")
