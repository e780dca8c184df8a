"""The embedded default backbones: meta-trained once per machine on the glyph background classes.

:func:`default_backbone` trains with a fixed :class:`TrainConfig` per algorithm
(:data:`DEFAULT_CONFIGS`) on :func:`metaleep.data.glyphs.load_glyphs` with the ``"omniglot"``
split (background alphabets for training, validation alphabets for early stopping) and caches
the result in ``cache_dir("backbones")``, keyed by the config, the data set fingerprint, the
split and :data:`DEFAULT_REVISION`. A run that is interrupted resumes from its
``training.pt`` on the next call.

The defaults are sized for a 2-core CPU (all three together in about three minutes, see
:data:`DEFAULT_CONFIGS`): a 4-block, 32-channel conv net (``conv4-small``, d = 32). The MAML
default is first-order: its second-order meta-gradient costs about 1.5x per step for no
measurable gain at this budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from metaleep._io import cache_dir
from metaleep.backbones.checkpoint import (
    BACKBONE_FILE,
    Backbone,
    CheckpointError,
    SplitLike,
    load_backbone,
    split_fingerprint,
)
from metaleep.backbones.config import TrainConfig

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_CONFIGS",
    "DEFAULT_REVISION",
    "default_backbone",
    "default_backbones",
    "default_directory",
]

DEFAULT_REVISION = 1
"""Bumped whenever training code changes what a default config produces (new cache key)."""

DEFAULT_SPLIT = "omniglot"

_COMMON = {
    "arch": "conv4-small",
    "ways": 5,
    "shots": 1,
    "queries": 15,
    "seed": 0,
    "device": "cpu",
    "threads": 1,
}

DEFAULT_CONFIGS: dict[str, TrainConfig] = {
    "maml": TrainConfig(
        algorithm="fomaml",
        inner_lr=0.4,
        inner_steps=1,
        meta_lr=3e-3,
        meta_batch=8,
        iterations=1000,
        eval_every=100,
        eval_episodes=100,
        patience=4,
        **_COMMON,  # type: ignore[arg-type]
    ),
    "supervised": TrainConfig(
        algorithm="supervised",
        meta_lr=3e-3,
        batch_size=128,
        iterations=1000,
        eval_every=200,
        eval_episodes=100,
        patience=3,
        **_COMMON,  # type: ignore[arg-type]
    ),
    "protonet": TrainConfig(
        algorithm="protonet",
        meta_lr=3e-3,
        meta_batch=4,
        iterations=500,
        eval_every=100,
        eval_episodes=100,
        patience=3,
        **_COMMON,  # type: ignore[arg-type]
    ),
}
"""The default config of each default backbone (keys are the backbone names)."""

DEFAULT_ALGORITHMS: tuple[str, ...] = tuple(DEFAULT_CONFIGS)


def _check_name(algorithm: str) -> TrainConfig:
    if algorithm not in DEFAULT_CONFIGS:
        raise ValueError(
            f"`algorithm` must be one of {', '.join(DEFAULT_CONFIGS)}; got {algorithm!r}."
        )
    return DEFAULT_CONFIGS[algorithm]


def cache_key(config: TrainConfig, dataset: ImageDataset, split: SplitLike) -> str:
    """16 hex digits of SHA-256 over the config, data set fingerprint, split and revision.

    Examples
    --------
    >>> from metaleep.backbones.testing import toy_dataset, toy_split
    >>> data = toy_dataset(classes=8, per_class=2)
    >>> a = cache_key(DEFAULT_CONFIGS["maml"], data, toy_split(data))
    >>> a == cache_key(DEFAULT_CONFIGS["maml"].replace(seed=1), data, toy_split(data))
    False
    """
    blob = json.dumps(
        {
            "config": config.to_dict(),
            "dataset": dataset.fingerprint,
            "split": split_fingerprint(split),
            "revision": DEFAULT_REVISION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _glyph_data() -> tuple[ImageDataset, SplitLike]:
    from metaleep.data.glyphs import load_glyphs
    from metaleep.data.splits import get_split

    dataset = load_glyphs()
    return dataset, get_split(dataset, name=DEFAULT_SPLIT)


def default_directory(
    algorithm: str, dataset: ImageDataset, split: SplitLike, *, create: bool = True
) -> Path:
    """Cache directory of a default backbone: ``cache_dir("backbones", "<name>-<key>")``."""
    config = _check_name(algorithm)
    folder = f"{algorithm}-{cache_key(config, dataset, split)}"
    return cache_dir("backbones", folder) if create else cache_dir("backbones") / folder


def default_backbone(
    algorithm: str = "maml",
    *,
    progress: bool = True,
    dataset: ImageDataset | None = None,
    split: SplitLike | None = None,
) -> Backbone:
    """A default backbone: loaded from the cache, or trained once (and cached) if absent.

    Parameters
    ----------
    algorithm:
        A key of :data:`DEFAULT_CONFIGS`: ``"maml"`` (first-order MAML, with a meta-learned
        5-way head: "head" dummy labels), ``"supervised"`` (Z-way source classifier:
        "source" dummy labels) or ``"protonet"``.
    progress:
        Show a progress bar while training.
    dataset, split:
        Default: the glyph data set and its ``"omniglot"`` split (loaded here). Pass them to
        avoid loading twice; other data gives another cache entry.

    Returns
    -------
    Backbone
        Named ``algorithm``, model in eval mode on the CPU.
    """
    config = _check_name(algorithm)
    if dataset is None or split is None:
        dataset, split = _glyph_data()
    directory = default_directory(algorithm, dataset, split)
    if (directory / BACKBONE_FILE).is_file():
        try:
            return load_backbone(directory, dataset=dataset)
        except CheckpointError as err:
            warnings.warn(f"retraining the default {algorithm!r} backbone: {err}", stacklevel=2)
            (directory / BACKBONE_FILE).unlink(missing_ok=True)
    from metaleep.backbones.training import train

    logger.info("training the default %r backbone into %s", algorithm, directory)
    try:
        return train(
            config,
            dataset,
            split,
            checkpoint_dir=directory,
            resume=True,
            progress=progress,
            name=algorithm,
        )
    except CheckpointError as err:  # an unusable training.pt: start over once
        warnings.warn(f"restarting the default {algorithm!r} backbone: {err}", stacklevel=2)
        return train(
            config,
            dataset,
            split,
            checkpoint_dir=directory,
            resume=False,
            progress=progress,
            name=algorithm,
        )


def default_backbones(
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
    *,
    progress: bool = True,
    dataset: ImageDataset | None = None,
    split: SplitLike | None = None,
) -> dict[str, Backbone]:
    """:func:`default_backbone` for each of ``algorithms`` (data loaded once)."""
    for algorithm in algorithms:
        _check_name(algorithm)
    if dataset is None or split is None:
        dataset, split = _glyph_data()
    return {
        a: default_backbone(a, progress=progress, dataset=dataset, split=split) for a in algorithms
    }
