"""The default backbones: trained once, shipped with the package, the same on every machine.

Each default backbone (``maml``, ``supervised``, ``protonet``) is a fixed :class:`TrainConfig`
(:data:`DEFAULT_CONFIGS`) trained on :func:`metaleep.data.glyphs.load_glyphs` with the
``"omniglot"`` split (background alphabets for training, validation alphabets for early
stopping), at training seeds 0, 1 and 2 (:data:`SHIPPED_SEEDS`). The trained weights ship in
``metaleep/backbones/weights/`` (about 1.4 MB for the nine; ``manifest.json`` records each
file's SHA-256, its weights fingerprint, the data set, the split and how it was made), so
``metaleep run``, ``metaleep grid`` and the tests load them and train nothing: float rounding
differs between CPUs, and backbones trained on another machine are other backbones, with other
figures. :func:`default_backbone` checks a shipped file against the manifest before loading
it and refuses a damaged one, naming it.

``metaleep train --default`` (:func:`default_backbone` with ``shipped=False``) still trains
them, into ``cache_dir("backbones")``, keyed by the config (seed included), the data set
fingerprint, the split and :data:`DEFAULT_REVISION`; an interrupted run resumes from its
``training.pt``. With ``--out DIR`` it also writes the shipped layout (:func:`ship`): that is
how the files in the package were made (on the 2-core x86_64 VM this project is developed on,
torch 2.14 CPU, 1 thread). Other data than the glyphs, or a seed that is not shipped, also
goes through the cache.

The defaults are sized for a 2-core CPU: all three train in about 135 s of CPU time with one
torch thread (measured: MAML 88 s, supervised 19 s, ProtoNet 28 s; add about 10 s to generate
the glyph images on a fresh machine). One thread, because tiny MAML ops slow down by up to 25x
with two threads on a busy shared 2-core VM, and gain only about 10 % on a quiet one. All use
``conv4-small`` (4 stride-2 conv blocks of 32 channels, d = 32), 5-way 1-shot tasks with 15
queries. MAML is second-order (1 inner step, lr 0.4, 4 tasks per step, 900 steps): after
60 s of CPU each, second-order MAML reached 84 % 5-way 1-shot meta-test accuracy, first-order
MAML 76 %. Meta-test accuracy on the glyph test alphabets (600 episodes, 15 queries) of the
shipped seed 0 (seeds 1 and 2 within 0.6 points of it):

=============  ==============  ==============
backbone       5-way 1-shot    5-way 5-shot
=============  ==============  ==============
maml           87.3 ± 0.7 %    95.0 ± 0.4 %
supervised     89.2 ± 0.7 %    96.6 ± 0.3 %
protonet       88.2 ± 0.7 %    95.4 ± 0.4 %
=============  ==============  ==============

(MAML adapted with 1 step, transductive BatchNorm; supervised and ProtoNet by nearest
prototype with running statistics.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    "SHIPPED_SEEDS",
    "WEIGHTS_DIR",
    "default_backbone",
    "default_backbones",
    "default_config",
    "default_directory",
    "ship",
    "shipped_fingerprints",
    "shipped_manifest",
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
        algorithm="maml",
        inner_lr=0.4,
        inner_steps=1,
        meta_lr=3e-3,
        meta_batch=4,
        iterations=900,
        eval_every=150,
        eval_episodes=100,
        patience=3,
        **_COMMON,  # type: ignore[arg-type]
    ),
    "supervised": TrainConfig(
        algorithm="supervised",
        meta_lr=3e-3,
        batch_size=128,
        iterations=800,
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

SHIPPED_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Training seeds of the shipped default backbones (seed 0 is the one ``metaleep run`` uses;
the grid takes all three as replicates of each source)."""

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where the shipped default backbones live (package data)."""

MANIFEST = "manifest.json"


def _check_name(algorithm: str) -> TrainConfig:
    if algorithm not in DEFAULT_CONFIGS:
        raise ValueError(
            f"`algorithm` must be one of {', '.join(DEFAULT_CONFIGS)}; got {algorithm!r}."
        )
    return DEFAULT_CONFIGS[algorithm]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; got {seed!r}.")
    return seed


def default_config(algorithm: str, seed: int = 0) -> TrainConfig:
    """The :class:`TrainConfig` of default backbone ``algorithm`` at training seed ``seed``.

    Examples
    --------
    >>> default_config("maml", 2).seed, default_config("maml") == DEFAULT_CONFIGS["maml"]
    (2, True)
    """
    return _check_name(algorithm).replace(seed=_check_seed(seed))


def shipped_name(algorithm: str, seed: int) -> str:
    """The stem of a shipped file: ``"<algorithm>-seed<seed>"``."""
    return f"{algorithm}-seed{seed}"


def shipped_manifest(directory: Path | None = None) -> dict[str, Any]:
    """The manifest of the shipped default backbones (``{"backbones": {}}`` when none).

    Each entry of ``"backbones"`` (keyed ``"<algorithm>-seed<seed>"``) holds ``file``,
    ``sha256`` and ``bytes`` of the checkpoint file, ``weights`` (the weights fingerprint that
    studies record), ``algorithm``, ``seed``, ``cache_key``, ``dataset``, ``split`` and the
    versions it was made with.

    Examples
    --------
    >>> entry = shipped_manifest()["backbones"]["maml-seed0"]
    >>> entry["algorithm"], entry["seed"], len(entry["sha256"])
    ('maml', 0, 64)
    """
    path = (WEIGHTS_DIR if directory is None else directory) / MANIFEST
    if not path.is_file():
        return {"backbones": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is damaged ({err}); reinstall metaleep, or rebuild the default backbones "
            "with `metaleep train --default` (they will differ from the shipped ones)."
        ) from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("backbones"), dict):
        raise CheckpointError(f"{path} is damaged (no 'backbones' table); reinstall metaleep.")
    return manifest


def _load_shipped(
    algorithm: str, seed: int, entry: dict[str, Any], dataset: ImageDataset, directory: Path
) -> Backbone:
    """The shipped backbone of ``entry``, after checking its file against the manifest."""
    from metaleep.backbones.protocol import weights_fingerprint

    path = directory / str(entry["file"])
    how = (
        "reinstall metaleep (pip install --force-reinstall metaleep, or git checkout the file), "
        "or rebuild it with `metaleep train --default` (a rebuilt backbone differs from the "
        "shipped one)"
    )
    if not path.is_file():
        raise CheckpointError(
            f"{path}: the shipped default {algorithm!r} backbone (seed {seed}) is missing; {how}."
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"{path}: the shipped default {algorithm!r} backbone (seed {seed}) is damaged: its "
            f"SHA-256 is {digest[:16]}..., the manifest says {str(entry['sha256'])[:16]}...; "
            f"{how}."
        )
    backbone = load_backbone(path, dataset=dataset)
    expected = default_config(algorithm, seed)
    if backbone.config != expected or weights_fingerprint(backbone.model) != entry["weights"]:
        raise CheckpointError(
            f"{path} does not hold the default {algorithm!r} backbone of seed {seed} that the "
            f"manifest describes; {how}."
        )
    return backbone


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
    algorithm: str,
    dataset: ImageDataset,
    split: SplitLike,
    *,
    create: bool = True,
    seed: int = 0,
) -> Path:
    """Cache directory of a default backbone: ``cache_dir("backbones", "<name>-<key>")``."""
    config = default_config(algorithm, seed)
    folder = f"{algorithm}-{cache_key(config, dataset, split)}"
    return cache_dir("backbones", folder) if create else cache_dir("backbones") / folder


def default_backbone(
    algorithm: str = "maml",
    *,
    seed: int = 0,
    progress: bool = True,
    dataset: ImageDataset | None = None,
    split: SplitLike | None = None,
    shipped: bool = True,
) -> Backbone:
    """A default backbone: the shipped one, or one trained once into the cache.

    Parameters
    ----------
    algorithm:
        A key of :data:`DEFAULT_CONFIGS`: ``"maml"`` (second-order MAML, 1 inner step of lr
        0.4, with a meta-learned 5-way head: "head" dummy labels; the study adapts it with that
        inner loop), ``"supervised"`` (Z-way source classifier:
        "source" dummy labels) or ``"protonet"``.
    seed:
        Training seed (:data:`SHIPPED_SEEDS` are shipped; another seed is trained and cached).
    progress:
        Show a progress bar while training.
    dataset, split:
        Default: the glyph data set and its ``"omniglot"`` split (loaded here). Pass them to
        avoid loading twice; other data gives another (trained, cached) backbone.
    shipped:
        Use the shipped file when there is one for this data, split and seed (default). False
        trains into the cache (or loads what an earlier call trained there): what
        ``metaleep train --default`` does.

    Returns
    -------
    Backbone
        Named ``algorithm``, model in eval mode on the CPU.

    Raises
    ------
    CheckpointError
        A shipped file that is missing or does not match the package's manifest (named, with
        what to do); it is never replaced silently.
    """
    config = default_config(algorithm, seed)
    if dataset is None or split is None:
        dataset, split = _glyph_data()
    if shipped:
        entry = shipped_manifest(WEIGHTS_DIR)["backbones"].get(shipped_name(algorithm, seed))
        if (
            entry is not None
            and entry.get("dataset") == dataset.fingerprint
            and entry.get("split") == split_fingerprint(split)
        ):
            return _load_shipped(algorithm, seed, entry, dataset, WEIGHTS_DIR)
    directory = default_directory(algorithm, dataset, split, seed=seed)
    with _locked(directory):
        return _load_or_train(algorithm, config, dataset, split, directory, progress)


def ship(backbone: Backbone, directory: str | Path, *, seed: int) -> Path:
    """Copy a trained default backbone into ``directory`` in the shipped layout.

    Writes ``<algorithm>-seed<seed>.pt`` (the ``backbone.pt`` file as it is) and adds its
    entry to ``directory/manifest.json``: how ``metaleep/backbones/weights`` was made
    (``metaleep train --default --seed K --out metaleep/backbones/weights``).
    """
    import metaleep
    from metaleep._io import atomic_write_bytes
    from metaleep.backbones.protocol import weights_fingerprint

    if backbone.path is None or not backbone.path.is_file():
        raise ValueError(f"`backbone` must have been saved to a file; got path {backbone.path!r}.")
    if backbone.config != default_config(backbone.name, seed):
        raise ValueError(
            f"`backbone` must be the default {backbone.name!r} backbone of seed {seed}; got one "
            "made with another configuration."
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    stem = shipped_name(backbone.name, seed)
    target = out / f"{stem}.pt"
    data = backbone.path.read_bytes()
    if backbone.path.resolve() != target.resolve():
        atomic_write_bytes(target, data)
    manifest = shipped_manifest(out)
    manifest["backbones"][stem] = {
        "file": target.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "weights": weights_fingerprint(backbone.model),
        "algorithm": backbone.name,
        "seed": seed,
        "cache_key": backbone.path.parent.name.rpartition("-")[2],
        "dataset": backbone.dataset_fingerprint,
        "split": dict(backbone.split),
        "revision": DEFAULT_REVISION,
        "metaleep": metaleep.__version__,
    }
    manifest["backbones"] = dict(sorted(manifest["backbones"].items()))
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(out / MANIFEST, text.encode("utf-8"))
    return target


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.lock`` (POSIX), so that processes asking for the
    same default at once train it once: the others wait, then load it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    path = directory / ".lock"
    # Never through a link (the study lock refuses links too): opening a link with "w" would
    # truncate whatever file it points to.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as error:
        raise ValueError(
            f"`METALEEP_CACHE_DIR` must hold a regular lock file at {path}; got "
            f"{'a symbolic link' if path.is_symlink() else 'something else'} "
            f"({error.strerror or error}): remove it and rerun."
        ) from None
    with os.fdopen(fd, "r+") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(
                f"`METALEEP_CACHE_DIR` must hold a regular lock file at {path}; got another "
                "kind of file: remove it and rerun."
            )
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DefaultBackboneCacheWarning(UserWarning):
    """A cached default backbone was unusable (damaged, or not the slot's) and is rebuilt."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _load_or_train(
    algorithm: str,
    config: TrainConfig,
    dataset: ImageDataset,
    split: SplitLike,
    directory: Path,
    progress: bool,
) -> Backbone:
    cached = directory / BACKBONE_FILE
    if cached.exists():
        try:
            backbone = load_backbone(cached, dataset=dataset)
            if backbone.config != config:
                raise CheckpointError(
                    f"{cached} holds a {backbone.config.algorithm!r} backbone made with another "
                    f"configuration than the default {algorithm!r} one (a file copied into the "
                    "wrong cache folder?)"
                )
            return backbone
        except (CheckpointError, KeyError, TypeError, ValueError, OSError) as err:
            # any cached file that does not decode to this slot's backbone is rebuilt
            warnings.warn(
                f"retraining the default {algorithm!r} backbone: {err}",
                DefaultBackboneCacheWarning,
                stacklevel=3,
            )
            _remove(cached)
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
    except (CheckpointError, KeyError, TypeError, ValueError) as err:  # an unusable training.pt
        warnings.warn(
            f"restarting the default {algorithm!r} backbone: {err}",
            DefaultBackboneCacheWarning,
            stacklevel=3,
        )
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
    seed: int = 0,
    progress: bool = True,
    dataset: ImageDataset | None = None,
    split: SplitLike | None = None,
    shipped: bool = True,
) -> dict[str, Backbone]:
    """:func:`default_backbone` for each of ``algorithms`` (data loaded once)."""
    for algorithm in algorithms:
        _check_name(algorithm)
    if dataset is None or split is None:
        dataset, split = _glyph_data()
    return {
        a: default_backbone(
            a, seed=seed, progress=progress, dataset=dataset, split=split, shipped=shipped
        )
        for a in algorithms
    }


def shipped_fingerprints(seeds: Sequence[int] = SHIPPED_SEEDS) -> dict[str, dict[str, str]]:
    """``{"seed<k>": {algorithm: weights fingerprint}}`` of the shipped backbones (from the
    manifest; what figures stamp beside the commit)."""
    entries = shipped_manifest()["backbones"].values()
    out: dict[str, dict[str, str]] = {}
    for entry in sorted(entries, key=lambda e: (e["seed"], e["algorithm"])):
        if entry["seed"] in seeds:
            out.setdefault(f"seed{entry['seed']}", {})[entry["algorithm"]] = entry["weights"]
    return out
