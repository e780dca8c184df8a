"""What a study configuration names, loaded: the data set, the episode suite, the backbones.

Backbones are named by specs (``--backbones``, :attr:`StudyConfig.backbones`), each optionally
labelled ``NAME=SPEC``:

- a default backbone (``maml``, ``fomaml``, ``anil``, ``protonet``, ``supervised``): trained on
  the glyph background alphabets once per machine, then loaded from the cache;
- a checkpoint: a ``metaleep train`` backbone (``backbone.pt`` or its directory, or a snapshot)
  or a ``metaleep export`` file; a folder of checkpoint files (``snapshots/``) stands for each.
  An export's model is built by the factory it records, code that runs only with
  ``trust_code`` (``--trust-factory``); or name it: ``FILE.py:CALLABLE@export.pt``;
- a factory ``FILE.py:CALLABLE`` or ``package.module:CALLABLE``, optionally ``@WEIGHTS.pt``, a
  state dict or an export (see :func:`metaleep.backbones.wrap.load_factory`).

Any backbone runs on any data: one trained on other data than the study's is scored
cross-domain (its ``prototypes`` dummy labels are computed on its own source data when that is
known), and the study records it so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaleep.backbones.checkpoint import read_checkpoint
from metaleep.backbones.protocol import StudyBackbone
from metaleep.backbones.wrap import source_data_for, study_backbone
from metaleep.study.config import StudyConfig

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite

log = logging.getLogger(__name__)


def dataset_for(config: StudyConfig) -> ImageDataset:
    """The data set of ``config``: ``config.data`` when given, else the suite's own."""
    from metaleep.data.spec import load_data, load_dataset
    from metaleep.episodes.suites import STANDARD_SUITES

    if config.data is not None:
        return load_data(config.data)
    if config.suite in STANDARD_SUITES:
        return load_dataset(STANDARD_SUITES[config.suite].dataset)
    from metaleep.episodes.manifest import read_manifest

    header = read_manifest(config.suite)
    if header.dataset_id in ("glyphs", "digits"):
        return load_dataset(header.dataset_id)
    raise ValueError(
        f"`--data` must name the data set of suite {config.suite!r} ({header.dataset_id}: "
        f"e.g. --data imagefolder:DIR or --data {header.dataset_id}:ROOT); got none."
    )


def split_spec(text: str) -> tuple[str | None, str]:
    """``NAME=SPEC`` -> (NAME, SPEC); a bare SPEC -> (None, SPEC).

    Examples
    --------
    >>> split_spec("mine=models.py:build"), split_spec("maml")
    (('mine', 'models.py:build'), (None, 'maml'))
    """
    name, sep, spec = text.partition("=")
    if sep and name and "/" not in name and ":" not in name:
        return name.strip(), spec.strip()
    return None, text.strip()


def check_specs(specs: Sequence[str]) -> None:
    """Every backbone spec names something that exists, checked before anything is loaded:
    a default backbone, an existing checkpoint path, or a factory whose file exists (a module
    factory is checked when it is imported). ``ValueError`` naming all the others.

    Examples
    --------
    >>> check_specs(["maml", "mine=models.py:build"])
    Traceback (most recent call last):
    ...
    ValueError: `backbones` must name default backbones (maml, supervised, protonet), existing \
checkpoint paths, or factories FILE.py:CALLABLE / package.module:CALLABLE (optionally \
@WEIGHTS.pt), each optionally as NAME=SPEC; got mine=models.py:build.
    """
    from metaleep.backbones.default import DEFAULT_CONFIGS

    unknown = []
    for text in specs:
        _, spec = split_spec(text)
        target = spec.partition("@")[0].rpartition(":")[0]
        is_factory = bool(target) and (not target.endswith(".py") or Path(target).is_file())
        if spec not in DEFAULT_CONFIGS and not Path(spec).exists() and not is_factory:
            unknown.append(text)
    if unknown:
        raise ValueError(
            f"`backbones` must name default backbones ({', '.join(DEFAULT_CONFIGS)}), "
            "existing checkpoint paths, or factories FILE.py:CALLABLE / package.module:CALLABLE "
            f"(optionally @WEIGHTS.pt), each optionally as NAME=SPEC; got {', '.join(unknown)}."
        )


def load_backbones(
    specs: Sequence[str],
    dataset: ImageDataset,
    *,
    progress: bool = True,
    trust_code: bool = False,
) -> list[StudyBackbone]:
    """Backbones by spec (see the module docstring) for a study on ``dataset``.

    Names must be distinct: give ``NAME=SPEC`` to tell apart two of the same name (e.g. two
    checkpoints of one training run). ``trust_code``: exports may run the factory they record.
    """
    backbones = [
        _backbone_for(item, dataset, progress, trust_code)
        for spec in specs
        for item in _expand(spec)
    ]
    check_names(backbones, specs)
    return backbones


def _expand(spec: str) -> list[str]:
    """A folder of checkpoint files (e.g. ``metaleep train --save-every``'s ``snapshots/``)
    stands for each of its ``*.pt`` files, in name order; any other spec for itself."""
    _, path = split_spec(spec)
    folder = Path(path)
    if folder.is_dir() and not any((folder / f).exists() for f in ("backbone.pt", "training.pt")):
        files = sorted(folder.glob("*.pt"))
        if files:
            return [str(f) for f in files]
    return [spec]


def check_names(backbones: Sequence[StudyBackbone], specs: Sequence[str] | None = None) -> None:
    """Distinct backbone names, or a ValueError that says how to rename."""
    names = [b.name for b in backbones]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        shown = f" (from {', '.join(specs)})" if specs else ""
        raise ValueError(
            f"`backbones` must have distinct names; got {', '.join(repeated)} more than once"
            f"{shown}. Name them with NAME=SPEC, e.g. early=runs/a/snapshots/step-100.pt."
        )


def _backbone_for(
    text: str, dataset: ImageDataset, progress: bool, trust_code: bool = False
) -> StudyBackbone:
    from dataclasses import replace

    from metaleep.backbones.default import DEFAULT_CONFIGS, DEFAULT_SPLIT, default_backbone

    name, spec = split_spec(text)
    if spec in DEFAULT_CONFIGS:
        from metaleep.data.spec import load_dataset
        from metaleep.data.splits import get_split

        glyphs = dataset if dataset.dataset_id == "glyphs" else load_dataset("glyphs")
        split = get_split(glyphs, DEFAULT_SPLIT)
        trained = default_backbone(spec, progress=progress, dataset=glyphs, split=split)
        backbone = study_backbone(trained, source_data=glyphs, origin="default")
    elif Path(spec).exists():
        backbone = _checkpoint(Path(spec), dataset, trust_code)
    elif ":" in spec:
        from metaleep.backbones.export import is_checkpoint, load_wrapped
        from metaleep.backbones.wrap import load_factory

        target, _, weights = spec.partition("@")
        if weights and is_checkpoint(Path(weights).expanduser()):
            # FACTORY@export.pt: the user names the code that builds the export's model.
            header, _ = read_checkpoint(Path(weights).expanduser())
            source = source_data_for(str(header.get("dataset", "")), dataset)
            backbone = load_wrapped(Path(weights).expanduser(), factory=target, source_data=source)
        else:
            backbone = load_factory(spec, name=name or spec.rpartition(":")[2].partition("@")[0])
    else:
        raise ValueError(
            f"`backbones` must name default backbones ({', '.join(DEFAULT_CONFIGS)}), "
            f"existing checkpoint paths, or factories FILE.py:CALLABLE / "
            f"package.module:CALLABLE (optionally @WEIGHTS.pt), each optionally as NAME=SPEC; "
            f"got {text!r}."
        )
    return replace(backbone, name=name) if name else backbone


def _checkpoint(path: Path, dataset: ImageDataset, trust_code: bool = False) -> StudyBackbone:
    from metaleep.backbones.checkpoint import BACKBONE_FILE, load_backbone

    file = path / BACKBONE_FILE if path.is_dir() and (path / BACKBONE_FILE).is_file() else path
    if file.is_file():
        header, _ = read_checkpoint(file)
        if header.get("kind") == "wrapped":
            from metaleep.backbones.export import load_wrapped

            source = source_data_for(str(header.get("dataset", "")), dataset)
            return load_wrapped(file, source_data=source, trust_code=trust_code)
    trained = load_backbone(path)
    return study_backbone(
        trained, source_data=source_data_for(trained.dataset_fingerprint, dataset)
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
        dataset = dataset_for(config)
    if suite is None:
        suite = load_suite(config.suite, dataset)
    else:
        validate_against(suite, dataset)
    if backbones is None:
        backbones = load_backbones(
            config.backbones, dataset, progress=progress, trust_code=config.trust_code
        )
    else:
        backbones = [_as_backbone(b, i) for i, b in enumerate(backbones)]
    check_names(backbones)
    return dataset, suite, list(backbones)


def _as_backbone(value: Any, position: int) -> StudyBackbone:
    """A study backbone from what a caller passed (a StudyBackbone, a trained Backbone or a
    module: wrapped by ``from_module``)."""
    if isinstance(value, StudyBackbone):
        return value
    from metaleep.backbones.wrap import from_module

    try:
        return from_module(value, name=getattr(value, "name", None) or f"model{position}")
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`backbones[{position}]` must be a StudyBackbone, a trained Backbone or an "
            f"nn.Module (wrapped with from_module); got {type(value).__name__!r} ({error})."
        ) from error
