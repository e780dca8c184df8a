"""What a study configuration names, loaded: the data set, the episode suite, the backbones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaleep.study.config import StudyConfig
from metaleep.study.runner import StudyBackbone

if TYPE_CHECKING:
    from metaleep.backbones.checkpoint import Backbone
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite


def weights_fingerprint(model: Any) -> str:
    """Short SHA-256 of a model's parameters and buffers (names, shapes and values).

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> weights_fingerprint(a) == weights_fingerprint(b)
    True
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def study_backbone(backbone: Backbone) -> StudyBackbone:
    """The study's view of a trained :class:`~metaleep.backbones.checkpoint.Backbone`.

    MAML-family backbones carry the inner loop they were meta-trained with
    (:attr:`~metaleep.backbones.config.TrainConfig.inner_loop`: steps, learning rate, first or
    second order), and the study's ``maml`` (``anil`` for ANIL backbones) adapts them that way.
    """
    inner = dict(backbone.config.inner_loop)
    return StudyBackbone(
        name=backbone.name,
        model=backbone.model,
        algorithm=backbone.algorithm,
        source_classes=np.asarray(backbone.source_classes, dtype=np.int64),
        fingerprint=weights_fingerprint(backbone.model),
        inner=inner,
    )


def _dataset_for(config: StudyConfig) -> ImageDataset:
    from metaleep.episodes.suites import STANDARD_SUITES, load_dataset

    if config.suite in STANDARD_SUITES:
        return load_dataset(STANDARD_SUITES[config.suite].dataset)
    from metaleep.episodes.manifest import read_manifest

    header = read_manifest(config.suite)
    if header.dataset_id != "glyphs":
        raise ValueError(
            f"`dataset` must be passed to run_study for a suite on {header.dataset_id!r} "
            f"(only the embedded glyph data is loaded by name); got None for {config.suite!r}."
        )
    return load_dataset("glyphs")


def load_backbones(
    names: Sequence[str], dataset: ImageDataset, *, progress: bool = True
) -> list[StudyBackbone]:
    """Backbones by name for a study on ``dataset``.

    A name is a default backbone (``maml``, ``protonet``, ``supervised``: trained on the
    glyph background alphabets once per machine, then loaded from the cache) or the path of a
    checkpoint written by ``metaleep train``.
    """
    return [_backbone_for(name, dataset, progress) for name in names]


def _backbone_for(name: str, dataset: ImageDataset, progress: bool) -> StudyBackbone:
    from metaleep.backbones.default import DEFAULT_CONFIGS, DEFAULT_SPLIT, default_backbone

    if name in DEFAULT_CONFIGS:
        if dataset.dataset_id != "glyphs":
            raise ValueError(
                f"`backbones` must be checkpoint paths for data other than glyphs (the default "
                f"{name!r} backbone is trained on glyphs); got {name!r} with "
                f"{dataset.dataset_id!r}."
            )
        from metaleep.data.splits import get_split

        split = get_split(dataset, DEFAULT_SPLIT)
        return study_backbone(
            default_backbone(name, progress=progress, dataset=dataset, split=split)
        )
    if Path(name).exists():
        from metaleep.backbones.checkpoint import load_backbone

        return study_backbone(load_backbone(name, dataset=dataset))
    raise ValueError(
        f"`backbones` must name default backbones ({', '.join(DEFAULT_CONFIGS)}) or existing "
        f"checkpoint paths; got {name!r}."
    )


def load_study_inputs(
    config: StudyConfig,
    *,
    dataset: ImageDataset | None = None,
    suite: Suite | None = None,
    backbones: Sequence[StudyBackbone] | None = None,
    progress: bool = True,
) -> tuple[ImageDataset, Suite, list[StudyBackbone]]:
    """The data set, suite and backbones of ``config``; given ones are used as they are."""
    from metaleep.episodes.manifest import validate_against
    from metaleep.episodes.suites import load_suite

    if dataset is None:
        dataset = _dataset_for(config)
    if suite is None:
        suite = load_suite(config.suite, dataset)
    else:
        validate_against(suite, dataset)
    if backbones is None:
        backbones = load_backbones(config.backbones, dataset, progress=progress)
    names = [b.name for b in backbones]
    if len(set(names)) != len(names):
        raise ValueError(f"`backbones` must have distinct names; got {names!r}.")
    return dataset, suite, list(backbones)
