"""Checkpoints of wrapped backbones: ``metaleep export`` and :func:`save_backbone`.

A model that metaleep did not build cannot be rebuilt from its weights alone, and a pickled
module would run code when loaded. A ``wrapped`` checkpoint therefore holds the weights of the
wrapped network (``Network(features, head)``'s state dict), what is known of how it was trained
(algorithm, inner loop, source classes and data fingerprint, declared input) and the *factory*
that builds the model: ``FILE.py:CALLABLE`` or ``package.module:CALLABLE``, the same spec
``--backbones`` takes. Loading calls a factory, wraps its result as it was wrapped, checks
the weights fit and loads them (``torch.load(weights_only=True)``, inside the checksummed
checkpoint format of :mod:`metaleep.backbones.checkpoint`).

The factory an export records is code, and an export is a file people pass around and anyone
can edit (its checksum is no signature: an edit recomputes it). So loading one never imports
anything on its own: the user names the factory (``--backbones FILE.py:CALLABLE@export.pt``,
``load_wrapped(path, factory=...)``), which may be another copy of the same code, or says that
the recorded one may run (``--trust-factory``, ``trust_code=True``). Without either, loading
refuses and shows the recorded factory (escaped).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaleep._text import printable
from metaleep.backbones.checkpoint import (
    MAGIC,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)
from metaleep.data.transform import InputSpec

if TYPE_CHECKING:
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset

__all__ = ["is_checkpoint", "load_wrapped", "save_backbone"]

log = logging.getLogger(__name__)


def save_backbone(
    backbone: StudyBackbone, path: str | os.PathLike[str], *, factory: str | None = None
) -> Path:
    """Write ``backbone`` to a ``wrapped`` checkpoint that ``--backbones PATH`` loads.

    Parameters
    ----------
    backbone:
        The backbone (e.g. from :func:`~metaleep.backbones.from_module`).
    path:
        The file to write (atomically).
    factory:
        ``FILE.py:CALLABLE`` or ``package.module:CALLABLE`` returning the model (as the CLI's
        ``--backbones`` takes it). Default: the factory the backbone was loaded from.
    """
    import torch

    import metaleep

    if factory is None and backbone.origin.startswith("factory "):
        factory = backbone.origin.removeprefix("factory ").partition("@")[0]
    if not factory:
        raise ValueError(
            "`factory` must name the callable that builds the model (FILE.py:CALLABLE or "
            "package.module:CALLABLE), so that the checkpoint can be loaded without running "
            f"pickled code; got None for backbone {backbone.name!r} ({backbone.origin})."
        )
    target = factory.partition("@")[0]
    module_part, _, _ = target.rpartition(":")
    if module_part.endswith(".py"):
        target = f"{Path(module_part).expanduser().resolve()}:{target.rpartition(':')[2]}"
    payload: dict[str, Any] = {
        "model": {k: v.detach().cpu().clone() for k, v in backbone.model.state_dict().items()},
        "config": {"algorithm": backbone.algorithm, "arch": "factory"},
        "name": backbone.name,
        "factory": target,
        "inner": dict(backbone.inner),
        "input": backbone.input.to_dict(),
        "source_classes": [int(c) for c in backbone.source_classes],
        "dataset": backbone.source_id or "",
        "split": {},
        "step": 0,
        "metaleep": metaleep.__version__,
        "torch": str(torch.__version__),
    }
    return write_checkpoint(path, payload, kind="wrapped")


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file in metaleep's checkpoint format (by its first line only)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def load_wrapped(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    source_data: ImageDataset | None = None,
    factory: str | None = None,
    trust_code: bool = False,
) -> StudyBackbone:
    """The backbone of a ``wrapped`` checkpoint (see the module docstring).

    Parameters
    ----------
    path:
        The export file.
    name:
        The backbone's name (default: the recorded one).
    source_data:
        The data set it was trained on, when the caller has it (its fingerprint must be the one
        recorded); enables the ``prototypes`` dummy labels.
    factory:
        ``FILE.py:CALLABLE`` or ``package.module:CALLABLE`` that builds the model, named by the
        user (``--backbones FACTORY@PATH``): it runs instead of the recorded one.
    trust_code:
        Run the factory the file records (``--trust-factory``). Without it, and without
        ``factory``, loading raises :class:`~metaleep.backbones.checkpoint.CheckpointError`
        naming the recorded factory, having run nothing.
    """
    from metaleep.backbones.protocol import weights_fingerprint
    from metaleep.backbones.wrap import from_module, load_factory

    if not isinstance(trust_code, bool):
        raise TypeError(f"`trust_code` must be True or False; got {trust_code!r}.")
    file = Path(path)
    header, payload = read_checkpoint(file)
    if header.get("kind") != "wrapped":
        raise CheckpointError(
            f"{file} is a {printable(header.get('kind'))!r} checkpoint, not a wrapped one."
        )
    recorded = str(payload.get("factory", ""))
    if factory is None:
        if not trust_code:
            shown = printable(recorded)
            raise CheckpointError(
                f"{file} is an export whose model is built by the factory it records, "
                f"{shown!r}: code that loading would import and run, and an export is a file "
                "anyone can edit. Name the factory yourself (--backbones "
                f"{shown}@{file}; factory= in Python), or pass --trust-factory "
                "(trust_code=True) to run the recorded one."
            )
        factory = recorded
    elif factory.partition("@")[0] != recorded:
        log.info(
            "export %s: model built by %s (the file records %s)",
            file,
            factory,
            printable(recorded),
        )
    made = load_factory(factory.partition("@")[0], name=str(payload["name"]))
    spec = InputSpec.from_dict(payload["input"])
    inner = dict(payload["inner"])
    backbone = from_module(
        features=made.model.features,
        head=made.head,
        name=name or str(payload["name"]),
        algorithm=str(payload["config"]["algorithm"]),
        inner_lr=inner.get("lr"),
        inner_steps=inner.get("steps"),
        first_order=inner.get("first_order"),
        fingerprint="pending",
    )
    try:
        backbone.model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{file}: its weights do not fit the model {printable(factory)!r} builds "
            f"({str(error).splitlines()[0]}); export it again with `metaleep export`."
        ) from error
    recorded = str(payload["dataset"])
    if source_data is not None and recorded and source_data.fingerprint != recorded:
        source_data = None
    return replace(
        backbone,
        input=spec,
        source_classes=np.asarray(payload["source_classes"], dtype=np.int64),
        source_data=source_data,
        fingerprint=weights_fingerprint(backbone.model),
        origin=f"checkpoint {file}",
    )
