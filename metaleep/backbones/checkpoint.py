"""Checkpoint files and the trained :class:`Backbone` they hold.

File format (one file, written atomically with :func:`metaleep._io.atomic_write`)::

    METALEEP-CHECKPOINT 1\\n        magic line
    {"payload_sha256": ..., ...}\\n  one line of JSON: the header
    <payload>                       torch.save() bytes of a dict of tensors and plain values

The header repeats what a person or a tool wants without torch (kind, algorithm, arch, data set
fingerprint, split, step, versions, config) and holds the payload's length and SHA-256, checked
before the payload is unpickled (with ``torch.load(..., weights_only=True)``). A truncated or
altered file is reported with its path and what to do, never loaded.

Payload keys, both kinds: ``model`` (state dict), ``config`` (:meth:`TrainConfig.to_dict`),
``name``, ``in_shape``, ``source_classes`` (list of the Z class ids of the training split, in
the order of the supervised model's outputs), ``dataset`` (fingerprint), ``split`` (name and
hash of its class ids), ``step`` (steps done), ``best_step``, ``history``, ``metaleep`` and
``torch`` (versions). A ``training`` checkpoint (``training.pt``, what ``--resume`` reads) adds
the optimizer state, the best weights so far, the early-stopping counters, the torch RNG state
and the running means of the training loss; a ``backbone`` checkpoint (``backbone.pt``) holds
the final (best) weights with calibrated BatchNorm statistics.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from metaleep._io import atomic_write
from metaleep.backbones.config import TrainConfig

if TYPE_CHECKING:
    import torch

    from metaleep.backbones.models import FewShotNet
    from metaleep.data.base import ImageDataset

__all__ = [
    "BACKBONE_FILE",
    "TRAINING_FILE",
    "Backbone",
    "CheckpointError",
    "SplitLike",
    "load_backbone",
    "load_tensors",
    "read_checkpoint",
    "split_fingerprint",
    "write_checkpoint",
]

MAGIC = b"METALEEP-CHECKPOINT 1\n"
BACKBONE_FILE = "backbone.pt"
TRAINING_FILE = "training.pt"
CheckpointKind = Literal["backbone", "training", "wrapped"]
HeadKind = Literal["ways", "source", "none"]
BatchNormMode = Literal["transductive", "running"]


class CheckpointError(ValueError):
    """A checkpoint cannot be used as it is; the message names the file and what to do."""


class SplitLike(Protocol):
    """What training needs of a class split (``metaleep.data.splits.ClassSplit``)."""

    @property
    def name(self) -> str: ...

    @property
    def train(self) -> np.ndarray: ...

    @property
    def validation(self) -> np.ndarray: ...

    @property
    def test(self) -> np.ndarray: ...


def split_fingerprint(split: SplitLike) -> dict[str, str]:
    """``{"name": ..., "hash": ...}``: the split's name and a SHA-256 prefix of its class ids.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(name="demo", train=[0, 1], validation=[2], test=[3])
    >>> split_fingerprint(s)["name"], len(split_fingerprint(s)["hash"])
    ('demo', 16)
    """
    parts = {
        part: sorted(int(c) for c in np.asarray(getattr(split, part)).ravel())
        for part in ("train", "validation", "test")
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return {"name": str(split.name), "hash": digest}


def write_checkpoint(
    path: str | os.PathLike[str], payload: Mapping[str, Any], *, kind: CheckpointKind
) -> Path:
    """Write ``payload`` (see the module docstring) to ``path`` atomically; return the path."""
    import torch

    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    data = buffer.getvalue()
    config = dict(payload["config"])
    header = {
        "kind": kind,
        "payload_bytes": len(data),
        "payload_sha256": hashlib.sha256(data).hexdigest(),
        "name": payload["name"],
        "algorithm": config["algorithm"],
        "arch": config["arch"],
        "dataset": payload["dataset"],
        "split": payload["split"],
        "step": payload["step"],
        "metaleep": payload["metaleep"],
        "torch": payload["torch"],
        "config": config,
    }
    line = json.dumps(header, sort_keys=True).encode() + b"\n"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(MAGIC)
            fh.write(line)
            fh.write(data)

    return atomic_write(path, write)


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, payload)`` of a checkpoint file, after checking its length and SHA-256.

    Raises
    ------
    CheckpointError
        The file is missing, not a metaleep checkpoint, truncated or corrupted.
    """

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: no such checkpoint file.")
    raw = file.read_bytes()
    if not raw.startswith(MAGIC):
        raise CheckpointError(
            f"{file} is not a metaleep checkpoint (it does not start with {MAGIC[:-1]!r}); "
            "pass a file written by `metaleep train`."
        )
    end = raw.find(b"\n", len(MAGIC))
    try:
        if end < 0:
            raise ValueError("no end of header line")
        header = json.loads(raw[len(MAGIC) : end])
        expected_bytes = int(header["payload_bytes"])
        expected_sha = str(header["payload_sha256"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{file} is corrupted (unreadable header: {err}); delete it and train again."
        ) from err
    data = raw[end + 1 :]
    if len(data) != expected_bytes:
        raise CheckpointError(
            f"{file} is truncated or corrupted: its payload has {len(data)} bytes, the header "
            f"says {expected_bytes}; delete it and train again (`metaleep train ... --resume` "
            "continues from an intact training.pt)."
        )
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointError(
            f"{file} is corrupted: the SHA-256 of its payload does not match its header; "
            "delete it and train again (`metaleep train ... --resume` continues from an intact "
            "training.pt)."
        )
    try:
        payload = load_tensors(io.BytesIO(data))
    except ValueError as err:  # a payload that hashes right but does not unpickle
        raise CheckpointError(f"{file}: {err}; it was not written by metaleep.") from err
    return header, payload


def load_tensors(source: str | os.PathLike[str] | io.BytesIO) -> Any:
    """``torch.load(source, weights_only=True)`` on the CPU: tensors and plain values only.

    A file that holds anything else (a pickled object, a pickle "gadget" that would run code)
    raises ``ValueError`` in one line naming what torch refused, never a traceback from the
    unpickler.

    Examples
    --------
    >>> import io, os, pickle
    >>> class Gadget:
    ...     def __reduce__(self):
    ...         return (os.system, ("echo owned",))
    >>> load_tensors(io.BytesIO(pickle.dumps({"weight": Gadget()}, protocol=2)))
    Traceback (most recent call last):
    ...
    ValueError: torch.load(weights_only=True) refuses it (a pickled object, not only tensors: \
Trying to load unsupported GLOBAL posix.system whose module posix is blocked.)
    """
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on the pickle protocol
            return torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        text = str(error)
        _, found, rest = text.partition("WeightsUnpickler error:")
        boilerplate = ("Weights only", "Please file an issue", "Check the documentation")
        lines = [
            line.strip()
            for line in (rest if found else text).splitlines()
            if line.strip() and not line.strip().startswith(boilerplate)
        ]
        reason = lines[0] if lines else type(error).__name__
        shown = reason if len(reason) <= 120 else reason[:117] + "..."
        raise ValueError(
            "torch.load(weights_only=True) refuses it (a pickled object, not only tensors: "
            f"{shown})"
        ) from None


@dataclass(eq=False)
class Backbone:
    """A trained backbone and how it was made (what :func:`load_backbone` returns).

    Attributes
    ----------
    model:
        The :class:`~metaleep.backbones.models.FewShotNet`, in eval mode. ``model.features``
        maps images (n, C, H, W) in [0, 1] to (n, d) embeddings; ``model.classifier`` is
        described by :attr:`head`.
    config:
        The :class:`TrainConfig` it was trained with.
    source_classes:
        int64 (Z,): the class ids of the training (source) split, sorted. For ``supervised``
        output unit z of ``model.classifier`` is class ``source_classes[z]``.
    dataset_fingerprint:
        ``ImageDataset.fingerprint`` of the data it was trained on.
    split:
        ``{"name", "hash"}`` of the class split (:func:`split_fingerprint`).
    name:
        Short name: the algorithm for the default backbones, else ``config.name``.
    step:
        Training steps done (fewer than ``config.iterations`` when stopped early).
    best_step:
        Step of the kept weights (best validation accuracy).
    history:
        One dict per validation: ``step``, ``train_loss`` (mean since the previous
        validation), ``val_acc``, ``val_ci`` (95 % half-width), ``seconds`` (training wall
        time so far).
    path:
        The checkpoint file, when loaded from or saved to one.
    """

    model: FewShotNet
    config: TrainConfig
    source_classes: np.ndarray
    dataset_fingerprint: str
    split: dict[str, str]
    name: str
    step: int
    best_step: int
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None

    @property
    def algorithm(self) -> str:
        """The training algorithm (``config.algorithm``)."""
        return self.config.algorithm

    @property
    def head(self) -> HeadKind:
        """What ``model.classifier`` is.

        ``"ways"``: the meta-learned N-way head (N = ``config.ways``) of MAML, first-order MAML
        and ANIL, before adaptation; ``"source"``: the Z-way supervised classifier over
        :attr:`source_classes`; ``"none"``: ProtoNet's untrained, all-zero N-way head (uniform
        output), kept only so that every backbone has the same layout.
        """
        if self.config.algorithm == "supervised":
            return "source"
        return "none" if self.config.algorithm == "protonet" else "ways"

    @property
    def batch_norm(self) -> BatchNormMode:
        """The BatchNorm mode it was trained and validated in.

        ``"transductive"`` (MAML, first-order MAML, ANIL; as reference MAML): batch statistics
        of the batch at hand, so outputs depend on the batch (an episode's support set, then
        its query set). ``"running"`` (ProtoNet, supervised): the stored statistics
        (``model.eval()``), one output per image. Every backbone also carries running
        statistics calibrated on source images after training, so both modes run for all; but
        a MAML-family backbone must be *adapted* transductively: with running statistics its
        inner loop (lr 0.4) diverges (measured on the default MAML: 28 % 5-way 1-shot after one
        step, NaN after five), while its running-mode features are sound (nearest prototype
        78 %, vs 79 % transductive).
        """
        return "running" if self.config.algorithm in ("protonet", "supervised") else "transductive"

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model takes."""
        return self.model.in_shape

    @property
    def embedding_dim(self) -> int:
        """d, the width of ``model.features``."""
        return self.model.embedding_dim

    def payload(self) -> dict[str, Any]:
        """The ``backbone`` checkpoint payload of this backbone."""
        import torch

        import metaleep

        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "config": self.config.to_dict(),
            "name": self.name,
            "in_shape": list(self.model.in_shape),
            "out_features": self.model.out_features,
            "source_classes": [int(c) for c in self.source_classes],
            "dataset": self.dataset_fingerprint,
            "split": dict(self.split),
            "step": int(self.step),
            "best_step": int(self.best_step),
            "history": [dict(h) for h in self.history],
            "metaleep": metaleep.__version__,
            "torch": str(torch.__version__),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this backbone to ``path`` (a ``backbone`` checkpoint); set :attr:`path`."""
        self.path = write_checkpoint(path, self.payload(), kind="backbone")
        return self.path


def _resolve_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if file.is_dir():
        final, training = file / BACKBONE_FILE, file / TRAINING_FILE
        if final.is_file():
            return final
        if training.is_file():
            header, _ = read_checkpoint(training)
            raise CheckpointError(
                f"{file} holds an unfinished training run ({training.name} at step "
                f"{header.get('step')} of {header.get('config', {}).get('iterations')}); finish "
                f"it with `metaleep train ... --out {file} --resume`."
            )
        raise CheckpointError(f"{file} holds no {BACKBONE_FILE}; train one with `metaleep train`.")
    return file


def build_from_payload(payload: Mapping[str, Any], *, where: Path, device: str = "cpu") -> Any:
    """The model of a checkpoint payload with its weights loaded (CheckpointError if they
    do not fit the architecture the payload's config names)."""
    from metaleep.backbones.models import build_backbone

    config = TrainConfig.from_dict(dict(payload["config"]))
    shape = tuple(int(v) for v in payload["in_shape"])
    try:
        model = build_backbone(
            config.arch,
            out_features=int(payload["out_features"]),
            in_shape=(shape[0], shape[1], shape[2]),
        )
        model.load_state_dict(payload["model"])
    except (RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{where}: its weights do not fit architecture {config.arch!r} ({err}); the file is "
            "inconsistent: delete it and train again."
        ) from err
    return model.to(device)


def load_backbone(
    path: str | os.PathLike[str],
    *,
    dataset: ImageDataset | None = None,
    arch: str | None = None,
    device: str | torch.device = "cpu",
) -> Backbone:
    """Load a trained backbone (a ``backbone.pt`` file, or the directory that holds one).

    Parameters
    ----------
    path:
        The file, or a ``metaleep train --out`` directory.
    dataset:
        If given, the data set the backbone will be used with: its fingerprint must be the one
        the backbone was trained on (its source classes and dummy labels refer to it).
    arch:
        If given, the architecture the caller expects.
    device:
        Where to put the model.

    Returns
    -------
    Backbone
        With the model in eval mode.

    Raises
    ------
    CheckpointError
        (a ValueError) for a missing, truncated or corrupted file, an unfinished training run,
        or a backbone of another architecture or data set than asked for.
    """
    file = _resolve_file(path)
    header, payload = read_checkpoint(file)
    if header.get("kind") != "backbone":
        raise CheckpointError(
            f"{file} is a {header.get('kind')!r} checkpoint, not a trained backbone; finish the "
            f"run with `metaleep train ... --out {file.parent} --resume`."
        )
    config = TrainConfig.from_dict(dict(payload["config"]))
    if arch is not None and arch != config.arch:
        raise CheckpointError(
            f"{file} holds a {config.arch!r} backbone, not {arch!r}; load it with "
            f"arch={config.arch!r} or train a {arch!r} one with `metaleep train --arch {arch}`."
        )
    if dataset is not None and dataset.fingerprint != payload["dataset"]:
        raise CheckpointError(
            f"{file} was trained on data set {payload['dataset']!r}, not "
            f"{dataset.fingerprint!r}; its source classes and dummy labels refer to that data "
            "set: use it, or train a backbone on this one with `metaleep train`."
        )
    model = build_from_payload(payload, where=file, device=str(device))
    model.eval()
    return Backbone(
        model=model,
        config=config,
        source_classes=np.asarray(payload["source_classes"], dtype=np.int64),
        dataset_fingerprint=str(payload["dataset"]),
        split=dict(payload["split"]),
        name=str(payload["name"]),
        step=int(payload["step"]),
        best_step=int(payload["best_step"]),
        history=[dict(h) for h in payload["history"]],
        path=file,
    )
