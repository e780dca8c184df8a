"""What a study configuration names, loaded: the data set, the episode suite, the backbones.

Backbones are named by specs (``--backbones``, :attr:`StudyConfig.backbones`), each optionally
labelled ``NAME=SPEC``:

- a default backbone (``maml``, ``protonet``, ``supervised``): trained on the glyph background
  alphabets and shipped with the package (:mod:`metaleep.backbones.default`; training seed 0,
  or the ``seed`` a grid asks for);
- a checkpoint: a ``metaleep train`` backbone (``backbone.pt`` or its directory, or a snapshot)
  or a ``metaleep export`` file; a folder of checkpoint files (``snapshots/``) stands for each.
  An export's model is built by the factory it records, code that runs only with
  ``trust_code`` (``--trust-factory``); or name it: ``FILE.py:CALLABLE@export.pt``;
- a factory ``FILE.py:CALLABLE`` or ``package.module:CALLABLE``, optionally ``@WEIGHTS.pt``, a
  state dict or an export (see :func:`metaleep.backbones.wrap.load_factory`).

In Python, specs and objects (``StudyBackbone``, trained ``Backbone``, ``nn.Module``) mix in one
list. Any backbone runs on any data: one trained on other data than the study's is scored
cross-domain (its ``prototypes`` dummy labels are computed on its own source data when that is
known, or given with ``source_data`` / ``--source-data NAME=SPEC``), and the study records it
so.

The suite is the one named, or one sampled from the data the way ``metaleep run --data``
does (:func:`metaleep.episodes.suites.sampled_recipe`: the same function for the CLI and
Python). An image folder is loaded as a suite file recorded (``--image-size``, ``--channels``);
a suite sampled from a folder of mixed sizes or colours loads it at the largest input the
backbones declare, in the channels they take, and records that choice in the suite.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaleep.backbones.checkpoint import read_checkpoint
from metaleep.backbones.protocol import StudyBackbone
from metaleep.backbones.wrap import source_data_for, study_backbone
from metaleep.study.config import Sampling, StudyConfig
from metaleep.study.out_dir import StudyLock
from metaleep.study.store import STUDY_LAYOUT, SUITE_FILE

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset
    from metaleep.data.folder import FolderScan
    from metaleep.episodes.manifest import Suite
    from metaleep.episodes.spec import Episode

log = logging.getLogger(__name__)


@dataclass(eq=False)
class StudyInputs:
    """Everything a study or a scoring run works on, loaded.

    Attributes
    ----------
    config:
        The configuration with the suite named (a sampled suite's file, or the suite's name)
        and ``episodes`` None when a sampled suite holds exactly the episodes asked for.
    dataset, suite, backbones:
        The loaded data set, suite and backbones.
    episodes:
        The episodes that run (the first ``config.episodes`` of the suite).
    facts:
        What was done on the way, for ``study.json``: ``data_loading`` (the data set's
        loading record) and ``sampling`` (how the suite was sampled), when there is any.
    """

    config: StudyConfig
    dataset: ImageDataset
    suite: Suite
    backbones: list[StudyBackbone]
    episodes: list[Episode]
    facts: dict[str, Any] = field(default_factory=dict)


def dataset_for(config: StudyConfig) -> ImageDataset:
    """The data set of ``config``: ``config.data`` when given (loaded with the options a suite
    file recorded and ``config.image_size``), else the suite's own."""
    return _target_data(config, _suite_header(config), declared=())


def _suite_header(config: StudyConfig) -> Suite | None:
    """The suite file ``config`` names, read without its data (None for standard suites)."""
    from metaleep.episodes.manifest import read_manifest
    from metaleep.episodes.suites import STANDARD_SUITES

    if config.suite is None or config.suite in STANDARD_SUITES:
        return None
    return read_manifest(config.suite)


def _target_data(
    config: StudyConfig,
    header: Suite | None,
    *,
    declared: Sequence[StudyBackbone],
    scan: FolderScan | None = None,
    progress: bool = False,
) -> ImageDataset:
    from metaleep.data.spec import load_data, load_dataset, parse_data
    from metaleep.episodes.suites import STANDARD_SUITES, recorded_options

    if config.data is None:
        if config.suite is None or config.suite in STANDARD_SUITES:
            return load_dataset(STANDARD_SUITES[config.suite_name].dataset)
        assert header is not None  # a suite file
        if header.dataset_id in ("glyphs", "digits"):
            return load_dataset(header.dataset_id)
        from metaleep.data.benchmarks import BENCHMARKS

        # suggest only specs that parse: NAME:ROOT exists for the benchmarks alone
        spec = f"{header.dataset_id}:ROOT" if header.dataset_id in BENCHMARKS else "imagefolder:DIR"
        raise ValueError(
            f"`--data` must name the data set of suite {config.suite!r} ({header.dataset_id}: "
            f"e.g. --data {spec}); got none."
        )
    parsed = parse_data(config.data)
    options = recorded_options(header.command) if header is not None else {}
    if config.image_size is not None:
        options["image_size"] = config.image_size
    if config.bad_files != "skip":
        options["bad_files"] = config.bad_files
    if parsed.name != "imagefolder":
        return load_data(
            parsed, mode=options.get("mode", "test"), image_size=options.get("image_size")
        )
    if scan is None:
        from metaleep.data.folder import scan_image_folder

        scan = scan_image_folder(parsed.root or ".", progress=progress)
    size, channels, rules = _declared_input(declared, options, mixed_colour=scan.mixed_colour)
    return scan.load(
        image_size=options.get("image_size", size),
        channels=int(options["channels"]) if "channels" in options else channels,
        bad_files=options.get("bad_files", "skip"),
        rules=rules,
        progress=progress,
    )


def _declared_input(
    backbones: Sequence[StudyBackbone], options: Mapping[str, str], *, mixed_colour: bool
) -> tuple[tuple[int, int] | None, int | None, dict[str, str]]:
    """The size and channels the backbones declare (None when none does, or when the options
    fix them; channels only for files of mixed colour), with the rule in words."""
    rules: dict[str, str] = {}
    size = channels = None
    shapes = {b.name: b.input.shape for b in backbones if b.input.shape is not None}
    if shapes and "image_size" not in options:
        height = max(s[1] for s in shapes.values())
        width = max(s[2] for s in shapes.values())
        size = (height, width)
        rules["size"] = (
            "the largest input the backbones declare ("
            + ", ".join(f"{name}: {s[1]}x{s[2]}" for name, s in shapes.items())
            + ")"
        )
    taken = {b.name: b.input.channels for b in backbones if b.input.channels is not None}
    if taken and mixed_colour and "channels" not in options:
        channels = 3 if any(c != 1 for c in taken.values()) else 1
        rules["channels"] = (
            "the channels the backbones take ("
            + ", ".join(f"{name}: {c}" for name, c in taken.items())
            + ")"
        )
    return size, channels, rules


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
    dataset: ImageDataset | None = None,
    *,
    progress: bool = True,
    seed: int = 0,
    trust_code: bool = False,
) -> list[StudyBackbone]:
    """Backbones by spec (see the module docstring) for a study on ``dataset``.

    Names must be distinct: give ``NAME=SPEC`` to tell apart two of the same name (e.g. two
    checkpoints of one training run). ``seed`` is the training seed of the default backbones
    (other specs have none); ``trust_code``: exports may run the factory they record.
    """
    backbones = [b for b, _ in _load(list(specs), dataset, progress, seed, trust_code)]
    check_names(backbones, specs)
    return backbones


def _load(
    items: Sequence[Any],
    dataset: ImageDataset | None,
    progress: bool,
    seed: int = 0,
    trust_code: bool = False,
) -> list[tuple[StudyBackbone, str]]:
    """Each spec or object as a backbone, with the fingerprint of the data it was trained on
    (``""`` when unknown), so that the target data can be bound as its source later."""
    out: list[tuple[StudyBackbone, str]] = []
    for position, item in enumerate(items):
        if isinstance(item, str):
            out += [
                _backbone_for(text, dataset, progress, seed, trust_code) for text in _expand(item)
            ]
        else:
            out.append((_as_backbone(item, position), ""))
    return out


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


def check_names(backbones: Sequence[StudyBackbone], specs: Sequence[Any] | None = None) -> None:
    """Distinct backbone names, or a ValueError that says how to rename."""
    names = [b.name for b in backbones]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        strings = [s for s in specs or () if isinstance(s, str)]
        shown = f" (from {', '.join(strings)})" if strings else ""
        raise ValueError(
            f"`backbones` must have distinct names; got {', '.join(repeated)} more than once"
            f"{shown}. Name them with NAME=SPEC, e.g. early=runs/a/snapshots/step-100.pt."
        )


def _backbone_for(
    text: str,
    dataset: ImageDataset | None,
    progress: bool,
    seed: int = 0,
    trust_code: bool = False,
) -> tuple[StudyBackbone, str]:
    from metaleep.backbones.default import DEFAULT_CONFIGS, DEFAULT_SPLIT, default_backbone

    name, spec = split_spec(text)
    wanted = ""
    if spec in DEFAULT_CONFIGS:
        from metaleep.data.spec import load_dataset
        from metaleep.data.splits import get_split

        if dataset is not None and dataset.dataset_id == "glyphs":
            glyphs = dataset
        else:
            glyphs = load_dataset("glyphs")
        split = get_split(glyphs, DEFAULT_SPLIT)
        trained = default_backbone(spec, seed=seed, progress=progress, dataset=glyphs, split=split)
        backbone = study_backbone(trained, source_data=glyphs, origin="default")
    elif Path(spec).exists():
        backbone, wanted = _checkpoint(Path(spec), dataset, trust_code)
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
    return (replace(backbone, name=name) if name else backbone), wanted


def _checkpoint(
    path: Path, dataset: ImageDataset | None, trust_code: bool = False
) -> tuple[StudyBackbone, str]:
    from metaleep.backbones.checkpoint import BACKBONE_FILE, load_backbone

    file = path / BACKBONE_FILE if path.is_dir() and (path / BACKBONE_FILE).is_file() else path
    if file.is_file():
        header, _ = read_checkpoint(file)
        if header.get("kind") == "wrapped":
            from metaleep.backbones.export import load_wrapped

            recorded = str(header.get("dataset", ""))
            source = source_data_for(recorded, dataset)
            return load_wrapped(file, source_data=source, trust_code=trust_code), recorded
    trained = load_backbone(path)
    source = source_data_for(trained.dataset_fingerprint, dataset)
    return study_backbone(trained, source_data=source), trained.dataset_fingerprint


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
            f"`backbones[{position}]` must be a spec (str), a StudyBackbone, a trained Backbone "
            f"or an nn.Module (wrapped with from_module); got {type(value).__name__!r} "
            f"({error})."
        ) from error


def _bind_sources(
    loaded: Sequence[tuple[StudyBackbone, str]], dataset: ImageDataset
) -> list[StudyBackbone]:
    """Each backbone, with ``dataset`` as its source data when it was trained on it."""
    out = []
    for backbone, wanted in loaded:
        if backbone.source_data is None and wanted and wanted == dataset.fingerprint:
            backbone = replace(backbone, source_data=dataset)
        out.append(backbone)
    return out


def with_source_data(
    backbones: Sequence[StudyBackbone],
    entries: Sequence[str] = (),
    given: Mapping[str, Any] | None = None,
) -> list[StudyBackbone]:
    """``backbones`` with the source data ``entries`` (``NAME=SPEC``, loaded; benchmarks read
    their ``train`` split) and ``given`` (``{name: spec or ImageDataset}``) name: every class
    of it is a source class (a backbone's own source classes are kept when it has some)."""
    from metaleep.data.spec import load_data

    wanted: dict[str, Any] = {}
    for entry in entries:
        name, _, spec = entry.partition("=")
        wanted[name] = spec
    wanted.update(given or {})
    names = [b.name for b in backbones]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise ValueError(
            f"`source_data` must name backbones of the study ({', '.join(names)}); got "
            f"{', '.join(unknown)}."
        )
    out = []
    for backbone in backbones:
        if backbone.name not in wanted:
            out.append(backbone)
            continue
        data = wanted[backbone.name]
        source = load_data(data, mode="train") if isinstance(data, str) else data
        classes = backbone.source_classes
        if not classes.size:
            classes = np.arange(source.num_classes, dtype=np.int64)
        elif classes.max() >= source.num_classes:
            raise ValueError(
                f"`source_data` of backbone {backbone.name!r} must hold its "
                f"{classes.size} source classes (ids up to {int(classes.max())}); got "
                f"{source.fingerprint} with {source.num_classes} classes."
            )
        out.append(replace(backbone, source_data=source, source_classes=classes))
    return out


def load_study_inputs(
    config: StudyConfig,
    *,
    dataset: ImageDataset | None = None,
    suite: Suite | None = None,
    backbones: Sequence[Any] | None = None,
    source_data: Mapping[str, Any] | None = None,
    sampling: Sampling | None = None,
    out_dir: str | Path | None = None,
    by: str = "metaleep run",
    progress: bool = True,
    overwrite: bool = False,
    lock: StudyLock | None = None,
) -> StudyInputs:
    """The data set, suite and backbones of ``config``; given ones are used as they are.

    Parameters
    ----------
    config:
        The study's configuration.
    dataset, suite:
        Loaded data and suite to use instead of loading them by name.
    backbones:
        Backbones to use instead of ``config.backbones``: specs (str) and objects, mixed.
    source_data:
        ``{backbone name: --data spec or ImageDataset}``: the data each was trained on.
    sampling:
        How to sample a suite from the data when ``config.suite`` is None and data is given
        (default :class:`Sampling` ``()``).
    out_dir:
        Where a sampled suite is written (``OUT/suite.csv``); None keeps it in memory.
    by:
        The command named in a sampled suite's description.
    progress:
        Progress bars while training default backbones.
    overwrite, lock:
        As :func:`sample_suite` takes them.
    """
    from metaleep.episodes.manifest import validate_against

    items = list(config.backbones) if backbones is None else list(backbones)
    sampled = (
        suite is None and config.suite is None and (config.data is not None or dataset is not None)
    )
    header = None if suite is not None else _suite_header(config)
    if header is None and suite is None and config.data is not None and config.suite:
        _check_standard_suite(config)
    loaded: list[tuple[StudyBackbone, str]] | None = None
    if dataset is None:
        declared: Sequence[StudyBackbone] = ()
        scan = _folder_scan(config, progress) if sampled else None
        if scan is not None and (config.image_size is None or scan.mixed_colour):
            # The backbones' declared inputs decide how a sampled folder is loaded.
            loaded = _load(items, None, progress, trust_code=config.trust_code)
            declared = [b for b, _ in loaded]
        dataset = _target_data(config, header, declared=declared, scan=scan, progress=progress)
    if loaded is None:
        loaded = _load(items, dataset, progress, trust_code=config.trust_code)
    study_backbones = _bind_sources(loaded, dataset)
    check_names(study_backbones, items)
    study_backbones = with_source_data(study_backbones, config.source_data, source_data)
    facts: dict[str, Any] = {}
    if dataset.loading is not None:
        facts["data_loading"] = dataset.loading
    if suite is not None:
        validate_against(suite, dataset)
    elif header is not None:
        validate_against(header, dataset, path=config.suite)
        suite = header
    elif sampled:
        suite, facts["sampling"] = sample_suite(
            config,
            dataset,
            sampling or Sampling(),
            out_dir=out_dir,
            by=by,
            overwrite=overwrite,
            lock=lock,
        )
        config = replace(
            config,
            suite=str(Path(out_dir) / SUITE_FILE) if out_dir is not None else suite.name,
            episodes=facts["sampling"]["episodes"],
        )
    else:
        from metaleep.episodes.suites import load_suite

        suite = load_suite(config.suite_name, dataset)
    if config.suite is None:
        config = replace(config, suite=config.suite_name)
    episodes = list(suite.episodes[: config.episodes] if config.episodes else suite.episodes)
    return StudyInputs(config, dataset, suite, study_backbones, episodes, facts)


def _folder_scan(config: StudyConfig, progress: bool) -> FolderScan | None:
    from metaleep.data.spec import parse_data

    if config.data is None:
        return None
    parsed = parse_data(config.data)
    if parsed.name != "imagefolder":
        return None
    from metaleep.data.folder import scan_image_folder

    return scan_image_folder(parsed.root or ".", progress=progress)


def _check_standard_suite(config: StudyConfig) -> None:
    """A standard suite runs on its own data: never advise rewriting the package's files."""
    from metaleep.data.spec import parse_data
    from metaleep.episodes.suites import STANDARD_SUITES, not_standard_data

    recipe = STANDARD_SUITES.get(config.suite or "")
    if recipe is None or config.data is None:
        return
    if parse_data(config.data).text != recipe.dataset:
        raise ValueError(not_standard_data(str(config.suite), recipe.dataset, config.data))


def sample_suite(
    config: StudyConfig,
    dataset: ImageDataset,
    sampling: Sampling,
    *,
    out_dir: str | Path | None = None,
    by: str = "metaleep run",
    overwrite: bool = False,
    lock: StudyLock | None = None,
) -> tuple[Suite, dict[str, Any]]:
    """The suite sampled from ``dataset`` for a study without one, and what was decided.

    ``config.episodes`` episodes (600 when None) of ``sampling``'s spec with ``config.seed``;
    written to ``OUT/suite.csv`` when ``out_dir`` is given: a study directory keeps the suite it
    ran. A ``suite.csv`` already there of the same recipe is kept when it is at least as long
    (episode i depends only on the seed and i; the study runs its first episodes) and replaced
    by the longer one otherwise, so a study extends to more episodes; one of another recipe or
    content is replaced only with ``overwrite`` (its study is then recomputed), else refused.
    ``lock``: the directory's lock when the caller holds it (else one is taken to write).
    """
    from metaleep.data.folder import chosen_options, options_text
    from metaleep.data.spec import parse_data
    from metaleep.episodes.manifest import ManifestError, read_manifest, write_manifest
    from metaleep.episodes.suites import ALL_CLASSES, build_suite, dropped_classes, sampled_recipe

    parsed = parse_data(config.data) if config.data else None
    name = parsed.name if parsed is not None else dataset.dataset_id
    split, part = ("omniglot", "test") if name == "glyphs" else (ALL_CLASSES, ALL_CLASSES)
    options = chosen_options(dataset.loading)
    if parsed is not None and parsed.root is not None and parsed.name != "imagefolder":
        options = {"mode": "test"}  # a benchmark's split file, as _target_data read it
        if config.image_size is not None:
            options["image_size"] = config.image_size
    recipe = sampled_recipe(
        dataset,
        name=f"{name}-{sampling.ways}w{sampling.shots}s",
        ways=sampling.ways,
        shots=sampling.shots,
        queries=sampling.queries,
        episodes=config.episodes or 600,
        seed=config.seed,
        split=split,
        part=part,
        min_images=sampling.min_images,
        data=parsed.text if parsed is not None else "",
        dataset_options=options_text(options),
        by=by,
    )
    built = build_suite(recipe, dataset)
    spec = built.specs[0]
    facts: dict[str, Any] = {
        "ways": spec.ways,
        "shots": spec.shots,
        "queries": spec.queries,
        "queries_rule": "given"
        if sampling.queries is not None
        else "as many as every class allows beside the shots, at most 15",
        "episodes": len(built),
        "seed": config.seed,
        "command": built.command,
    }
    if sampling.min_images:
        from metaleep.episodes.suites import class_pool

        dropped = dropped_classes(dataset, class_pool(dataset, split, part), built.pool)
        facts["min_images"] = sampling.min_images
        facts["dropped_classes"] = {"count": len(dropped), "first": dropped[:10]}
    if out_dir is None:
        return built, facts
    path = Path(out_dir) / SUITE_FILE
    # The caller's lock stays the caller's (held after this call); else one for the write.
    held_lock = (
        contextlib.nullcontext(lock) if lock is not None else StudyLock(out_dir, STUDY_LAYOUT)
    )
    with held_lock as held:
        if os.path.lexists(path):
            try:
                stored: Suite | None = read_manifest(path)
            except ManifestError:
                if not overwrite:
                    raise
                stored = None
            if stored is not None and _extends(stored, built):
                if len(stored) >= len(built):
                    return stored, facts
            elif stored is not None and not overwrite:
                raise ValueError(
                    f"`--out` {out_dir} holds a suite of other episodes ({path}: "
                    f"{_describe(stored)}; this command samples {_describe(built)}); use "
                    "--overwrite to replace it (its study is then recomputed), another --out, "
                    f"or --suite {path} to run that one."
                )
        held.held_outputs.record(SUITE_FILE)
        write_manifest(built, path)
    return built, facts


def _extends(stored: Suite, built: Suite) -> bool:
    """Whether two suites are of one recipe with the same first episodes (one extends the
    other)."""
    if stored.recipe() != built.recipe():
        return False
    mine, theirs = stored.episode_digests(), built.episode_digests()
    common = set(mine) & set(theirs)
    return all(mine[e] == theirs[e] for e in common) and bool(common)


def _describe(suite: Suite) -> str:
    specs = ", ".join(suite.spec_counts())
    return f"{len(suite)} episodes {specs} of {suite.fingerprint}, seed {suite.seed}"
