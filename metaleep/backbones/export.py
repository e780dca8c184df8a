"""Checkpoints of wrapped backbones: ``metaleep export`` and :func:`save_backbone`.

A model that metaleep did not build cannot be rebuilt from its weights alone, and a pickled
module would run code when loaded. A ``wrapped`` checkpoint therefore holds the weights of the
wrapped network (``Network(features, head)``'s state dict), what is known of how it was trained
(algorithm, inner loop, source classes and data fingerprint, declared input) and the *factory*
that builds the model: ``FILE.py:CALLABLE`` or ``package.module:CALLABLE``, the same spec
``--backbones`` takes. Loading calls the factory, wraps its result as it was wrapped, checks
the weights fit and loads them (``torch.load(weights_only=True)``, inside the checksummed
checkpoint format of :mod:`metaleep.backbones.checkpoint`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaleep.backbones.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from metaleep.data.transform import InputSpec

if TYPE_CHECKING:
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset

__all__ = ["load_wrapped", "save_backbone"]


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


def load_wrapped(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    source_data: ImageDataset | None = None,
) -> StudyBackbone:
    """The backbone of a ``wrapped`` checkpoint (see the module docstring).

    ``source_data``: the data set it was trained on, when the caller has it (its fingerprint
    must be the one recorded); enables the ``prototypes`` dummy labels.
    """
    from metaleep.backbones.protocol import weights_fingerprint
    from metaleep.backbones.wrap import from_module, load_factory

    file = Path(path)
    header, payload = read_checkpoint(file)
    if header.get("kind") != "wrapped":
        raise CheckpointError(f"{file} is a {header.get('kind')!r} checkpoint, not a wrapped one.")
    made = load_factory(str(payload["factory"]), name=str(payload["name"]))
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
            f"{file}: its weights do not fit the model {payload['factory']!r} builds "
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
