"""The meta-training configuration: :class:`TrainConfig`."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeAlias

Algorithm: TypeAlias = Literal["maml", "fomaml", "anil", "protonet", "supervised"]
ALGORITHMS: tuple[str, ...] = ("maml", "fomaml", "anil", "protonet", "supervised")
EPISODIC: tuple[str, ...] = ("maml", "fomaml", "anil", "protonet")
"""Algorithms trained on episodes (tasks); ``supervised`` trains on minibatches."""

ARCH_NAMES: tuple[str, ...] = ("conv4-small", "omniglot-cnn", "cnn4", "resnet12")
"""Named architectures; ``conv<L>-<H>`` (L blocks of H channels) is accepted as well."""
CONV_PATTERN = re.compile(r"conv([1-9][0-9]?)-([1-9][0-9]{0,3})")

__all__ = ["ALGORITHMS", "ARCH_NAMES", "EPISODIC", "Algorithm", "TrainConfig", "check_arch_name"]


def check_arch_name(arch: object, flag: str = "arch") -> str:
    """``arch`` if it names an architecture, else a ValueError listing the names.

    Examples
    --------
    >>> check_arch_name("conv3-16")
    'conv3-16'
    >>> check_arch_name("vgg16")
    Traceback (most recent call last):
    ...
    ValueError: `arch` must be one of conv4-small, omniglot-cnn, cnn4, resnet12, or ... got 'vgg16'.
    """
    if isinstance(arch, str) and (arch in ARCH_NAMES or CONV_PATTERN.fullmatch(arch)):
        return arch
    raise ValueError(
        f"`{flag}` must be one of {', '.join(ARCH_NAMES)}, or conv<L>-<H> (L blocks of H "
        f"channels, e.g. conv3-32); got {arch!r}."
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_int(name: str, value: Any, low: int, *, none_ok: bool = False) -> None:
    if none_ok and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or None" if none_ok else ""
        raise ValueError(f"`{_flag(name)}` must be an integer >= {low}{extra}; got {value!r}.")


def _check_positive(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{_flag(name)}` must be a finite number > 0; got {value!r}.")


@dataclass(frozen=True)
class TrainConfig:
    """How a backbone is (meta-)trained. Saved in every checkpoint.

    Errors name the ``metaleep train`` flag of the field (``inner_lr`` is ``--inner-lr``).

    Parameters
    ----------
    algorithm:
        ``"maml"`` (second-order MAML, Finn et al., 2017), ``"fomaml"`` (first-order MAML),
        ``"anil"`` (MAML on the head only, Raghu et al., 2020), ``"protonet"`` (prototypical
        networks, Snell et al., 2017) or ``"supervised"`` (a Z-way classifier over all source
        classes trained with minibatch cross-entropy: the classic LEEP source model).
    arch:
        Architecture name (:func:`metaleep.backbones.models.build_backbone`).
    ways:
        N, classes per episode: of the training tasks (episodic algorithms), of the meta-learned
        head (MAML, ANIL) and of the meta-validation episodes (every algorithm).
    shots:
        K, support images per class in training tasks and validation episodes.
    queries:
        Query images per class in training tasks and validation episodes.
    inner_lr:
        Step size of the MAML/ANIL inner loop (SGD on the support loss).
    inner_steps:
        Inner-loop steps, in training and in meta-validation. :attr:`inner_loop` gathers the
        inner-loop settings; the study adapts MAML backbones with them.
    meta_lr:
        Adam learning rate of the outer loop (of the minibatch steps for ``supervised``).
    meta_batch:
        Tasks per outer step (episodic algorithms).
    batch_size:
        Images per minibatch step (``supervised`` only).
    iterations:
        Outer steps (minibatch steps for ``supervised``).
    seed:
        Seed of the initial weights, the training tasks (task ``j`` of step ``t`` is episode
        ``t * meta_batch + j`` of the suite with this seed), the minibatch order, the
        validation episodes and the BatchNorm calibration.
    device:
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available).
    eval_every:
        Meta-validate (and write the resume checkpoint) every this many steps, and at the end.
    eval_episodes:
        Validation episodes per evaluation, drawn from the split's validation classes (always
        the same episodes).
    patience:
        Stop after this many evaluations in a row without a better validation accuracy
        (``None``: never stop early). The best weights are kept either way.
    threads:
        torch intra-op threads while training (``None``: leave torch's setting); restored
        afterwards.

    Examples
    --------
    >>> cfg = TrainConfig(algorithm="anil", iterations=10)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> TrainConfig(inner_lr=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: `--inner-lr` must be a finite number > 0; got -1.0.
    """

    algorithm: Algorithm = "maml"
    arch: str = "conv4-small"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    inner_lr: float = 0.4
    inner_steps: int = 1
    meta_lr: float = 1e-3
    meta_batch: int = 16
    batch_size: int = 128
    iterations: int = 1000
    seed: int = 0
    device: str = "cpu"
    eval_every: int = 100
    eval_episodes: int = 100
    patience: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"`--algorithm` must be one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}."
            )
        check_arch_name(self.arch, "--arch")
        for name, low in (
            ("ways", 2),
            ("shots", 1),
            ("queries", 1),
            ("inner_steps", 1),
            ("meta_batch", 1),
            ("batch_size", 2),
            ("iterations", 1),
            ("seed", 0),
            ("eval_every", 1),
            ("eval_episodes", 1),
        ):
            _check_int(name, getattr(self, name), low)
        _check_int("patience", self.patience, 1, none_ok=True)
        _check_int("threads", self.threads, 1, none_ok=True)
        for name in ("inner_lr", "meta_lr"):
            _check_positive(name, getattr(self, name))
            object.__setattr__(self, name, float(getattr(self, name)))
        device = self.device
        if not isinstance(device, str) or not (
            device in ("cpu", "cuda", "auto") or re.fullmatch(r"cuda:\d+", device)
        ):
            raise ValueError(f"`--device` must be cpu, cuda, cuda:N or auto; got {device!r}.")

    @property
    def episodic(self) -> bool:
        """True for the algorithms trained on tasks (all but ``supervised``)."""
        return self.algorithm in EPISODIC

    @property
    def inner_loop(self) -> dict[str, Any]:
        """How the inner loop adapted during meta-training: ``{"steps", "lr", "first_order"}``
        for MAML (second order: ``first_order`` False), first-order MAML and ANIL (learn2learn's
        second-order ``MAML`` on the head), ``{}`` for algorithms without one.

        Examples
        --------
        >>> TrainConfig(algorithm="maml", inner_steps=1, inner_lr=0.4).inner_loop
        {'steps': 1, 'lr': 0.4, 'first_order': False}
        >>> TrainConfig(algorithm="fomaml").inner_loop["first_order"], TrainConfig(
        ...     algorithm="protonet").inner_loop
        (True, {})
        """
        if self.algorithm not in ("maml", "fomaml", "anil"):
            return {}
        return {
            "steps": self.inner_steps,
            "lr": self.inner_lr,
            "first_order": self.algorithm == "fomaml",
        }

    @property
    def name(self) -> str:
        """Short label such as ``"maml-conv4-small-5w1s"``."""
        return f"{self.algorithm}-{self.arch}-{self.ways}w{self.shots}s"

    def resolved_device(self) -> str:
        """The torch device: ``auto`` is ``cuda`` when available, else ``cpu``."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return TrainConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"`config` must hold only TrainConfig fields ({', '.join(sorted(known))}); "
                f"got unknown keys {unknown!r}."
            )
        return cls(**data)
