"""The grid of transfer settings: the LEEP paper's table at this project's scale.

A **setting** is (source backbone, dummy-label mode, transfer type, target suite): the paper's
"transfer settings" (source task x transfer type x target subset). A grid declares sources,
dummy-label modes, transfer types (adaptations) and targets in a TOML file
(:func:`load_grid`; ``metaleep/study/grids/default.toml`` and ``quick.toml`` ship with the
package, copy one to edit it); :func:`run_grid` runs it:

- each target is **one resumable study** (:func:`~metaleep.study.runner.run_study`) with every
  source, dummy mode and feature- or MAML-based transfer, so each backbone's outputs on the
  target are computed once and shared by all of its settings there;
- fine-tuning, the expensive transfer type (a copy of the network trained 100 SGD steps per
  episode), runs as a second study on the first ``finetune_episodes`` episodes of the target.
  A backbone whose head does not fit the episode (the supervised source classifier's 762-way
  head, ProtoNet's missing one, MAML's 5-way head on 20-way episodes) is fine-tuned from a
  fresh zero head (``FinetuneConfig(head="zero")``'s start); MAML's meta-learned head is kept
  where it fits. The fine-tune rows take their metric values from the main study (the metrics
  see only the support set, whatever the transfer);
- the finished table (``table.csv``) is analysed by :mod:`metaleep.analysis.grid` and
  rendered by :mod:`metaleep.report.grid_page`.

Everything is written as it goes (``targets/<name>/`` holds each target's study and its own
report); running the same grid again in the same folder resumes.

Examples
--------
>>> grid = load_grid("quick")
>>> grid.sources, [t.name for t in grid.targets][:2]
(('maml', 'protonet', 'supervised'), ['glyphs-5w1s', 'glyphs-5w5s'])
>>> grid_from_dict({"targets": [{"suite": "glyphs-5w1s"}], "grid": {"episodes": 0}})
Traceback (most recent call last):
...
ValueError: `grid.episodes` must be an integer >= 1; got 0.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaleep.study.config import DEFAULT_METRICS, _names
from metaleep.study.outputs import DUMMY_MODES

if TYPE_CHECKING:
    from metaleep.analysis.grid import GridAnalysis
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_GRIDS",
    "GridConfig",
    "GridResult",
    "GridTarget",
    "grid_from_dict",
    "load_grid",
    "run_grid",
]

GRIDS_DIR = Path(__file__).resolve().parent / "grids"
"""Where the shipped grid files live."""

BUILTIN_GRIDS: tuple[str, ...] = ("default", "quick")
"""Names of the shipped grids (``grids/NAME.toml``)."""

TRANSFERS: tuple[str, ...] = ("maml", "anil", "retrain_head", "prototype", "finetune")
"""Transfer types a grid may name (the study's adaptations)."""

_GRID_KEYS = (
    "name",
    "sources",
    "dummies",
    "transfers",
    "metrics",
    "episodes",
    "finetune_episodes",
    "chunk_size",
    "seed",
    "n_boot",
    "alpha",
    "target_reports",
)
_TARGET_KEYS = ("name", "suite", "data", "episodes", "transfers")


def _positive_int(value: object, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{key}` must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{key}` must be an integer >= {minimum}; got {value!r}.")
    return value


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"`{key}` must be a non-empty string; got {value!r}.")
    if not value.strip():
        raise ValueError(f"`{key}` must be a non-empty string; got {value!r}.")
    return value.strip()


@dataclass(frozen=True)
class GridTarget:
    """One target of a grid: a suite of episodes (and, optionally, the data it is drawn from).

    Parameters
    ----------
    name:
        Label of the target in tables and the folder ``targets/<name>`` (letters, digits,
        ``-``, ``_`` and ``.``).
    suite:
        A standard suite name or a manifest path.
    data:
        ``--data`` spec of the target data (``None``: the suite's own data set).
    episodes:
        Episodes of this target (``None``: the grid's ``episodes``).
    transfers:
        Transfer types on this target (``None``: the grid's ``transfers``); each must be one
        of the grid's.
    """

    name: str
    suite: str
    data: str | None = None
    episodes: int | None = None
    transfers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        where = f"targets.{self.name}" if isinstance(self.name, str) else "targets"
        name = _text(self.name, "targets.name")
        if not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
            raise ValueError(
                f"`targets.name` must hold only letters, digits, '-', '_' and '.'; got {name!r}."
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "suite", _text(self.suite, f"{where}.suite"))
        if self.data is not None:
            object.__setattr__(self, "data", _text(self.data, f"{where}.data"))
        if self.episodes is not None:
            _positive_int(self.episodes, f"{where}.episodes")
        if self.transfers is not None:
            object.__setattr__(
                self, "transfers", _names(self.transfers, f"{where}.transfers", TRANSFERS)
            )


@dataclass(frozen=True)
class GridConfig:
    """A grid of transfer settings (what a grid TOML file declares).

    Parameters
    ----------
    targets:
        The targets (at least one; names distinct).
    sources:
        Backbone specs (as ``--backbones`` takes them: default names, checkpoints,
        factories, ``NAME=SPEC``).
    dummies:
        Dummy-label modes; each source uses those it offers.
    transfers:
        Transfer types (adaptations); each source uses those it supports.
    metrics:
        Transferability metrics (registry names).
    episodes:
        Episodes per target (its suite's first ``episodes``; fewer when the suite is shorter).
    finetune_episodes:
        Episodes of each target that are fine-tuned (the first ones): fine-tuning costs about
        a second per episode and source on 2 cores.
    chunk_size:
        Episodes per stored chunk of each study.
    seed:
        Seed of every study and of the bootstrap.
    n_boot:
        Bootstrap resamples (confidence intervals, significance, stability).
    alpha:
        Level of the paired-bootstrap significance of a win.
    target_reports:
        Write each target study's own report (correlations with 4 methods, scatter plots);
        about 10 s a target.
    name:
        Name of the grid (the report's title).
    """

    targets: tuple[GridTarget, ...]
    sources: tuple[str, ...] = ("maml", "protonet", "supervised")
    dummies: tuple[str, ...] = DUMMY_MODES
    transfers: tuple[str, ...] = TRANSFERS
    metrics: tuple[str, ...] = DEFAULT_METRICS
    episodes: int = 300
    finetune_episodes: int = 30
    chunk_size: int = 100
    seed: int = 0
    n_boot: int = 1000
    alpha: float = 0.05
    target_reports: bool = True
    name: str = "grid"

    def __post_init__(self) -> None:
        from metaleep.metrics.registry import METRICS

        targets = tuple(self.targets)
        if not targets or not all(isinstance(t, GridTarget) for t in targets):
            raise ValueError(f"`targets` must be one or more targets; got {self.targets!r}.")
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"`targets.name` must be distinct; got {dup!r} twice.")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "sources", _names(self.sources, "grid.sources"))
        object.__setattr__(self, "dummies", _names(self.dummies, "grid.dummies", DUMMY_MODES))
        object.__setattr__(self, "transfers", _names(self.transfers, "grid.transfers", TRANSFERS))
        object.__setattr__(self, "metrics", _names(self.metrics, "grid.metrics", tuple(METRICS)))
        for t in targets:
            extra = [x for x in (t.transfers or ()) if x not in self.transfers]
            if extra:
                raise ValueError(
                    f"`targets.{t.name}.transfers` must be among grid.transfers "
                    f"({', '.join(self.transfers)}); got {', '.join(extra)}."
                )
        _positive_int(self.episodes, "grid.episodes")
        _positive_int(self.finetune_episodes, "grid.finetune_episodes")
        _positive_int(self.chunk_size, "grid.chunk_size")
        _positive_int(self.seed, "grid.seed", 0)
        _positive_int(self.n_boot, "grid.n_boot", 0)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise TypeError(f"`grid.alpha` must be a number in (0, 1); got {self.alpha!r}.")
        if not 0 < self.alpha < 1:
            raise ValueError(f"`grid.alpha` must be a number in (0, 1); got {self.alpha!r}.")
        if not isinstance(self.target_reports, bool):
            raise TypeError(
                f"`grid.target_reports` must be true or false; got {self.target_reports!r}."
            )
        object.__setattr__(self, "name", _text(self.name, "grid.name"))

    def transfers_of(self, target: GridTarget) -> tuple[str, ...]:
        """The transfer types run on ``target``, in the grid's order."""
        chosen = target.transfers or self.transfers
        return tuple(t for t in self.transfers if t in chosen)

    def episodes_of(self, target: GridTarget) -> int:
        """Episodes of ``target`` (its own count, else the grid's)."""
        return target.episodes or self.episodes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the TOML file's content, lists for tuples)."""

        def plain(value: Any) -> Any:
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        out = plain(asdict(self))
        out["targets"] = [{k: v for k, v in t.items() if v is not None} for t in out["targets"]]
        return dict(out)


def grid_from_dict(data: Mapping[str, Any]) -> GridConfig:
    """A :class:`GridConfig` from the content of a grid TOML file.

    The file has a ``[grid]`` table (every key optional; see :class:`GridConfig`) and one
    ``[[targets]]`` table per target (``suite`` required; ``name`` defaults to the suite).
    Unknown keys are refused, naming the key.

    Examples
    --------
    >>> g = grid_from_dict({"grid": {"sources": ["maml"], "episodes": 50},
    ...                     "targets": [{"suite": "glyphs-5w1s"},
    ...                                 {"name": "same", "suite": "glyphs-5w5s-same"}]})
    >>> g.sources, g.episodes, [t.name for t in g.targets]
    (('maml',), 50, ['glyphs-5w1s', 'same'])
    >>> grid_from_dict({"grid": {"sorces": ["maml"]}, "targets": [{"suite": "x"}]})
    Traceback (most recent call last):
    ...
    ValueError: `grid.sorces` must be a known key (name, sources, dummies, transfers, metrics, \
episodes, finetune_episodes, chunk_size, seed, n_boot, alpha, target_reports); got 'sorces'.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"`config` must be a table of [grid] and [[targets]]; got {data!r}.")
    unknown = [k for k in data if k not in ("grid", "targets")]
    if unknown:
        raise ValueError(
            f"`{unknown[0]}` must be a known table (grid, targets); got {unknown[0]!r}."
        )
    grid = data.get("grid", {})
    if not isinstance(grid, Mapping):
        raise TypeError(f"`grid` must be a table; got {grid!r}.")
    for key in grid:
        if key not in _GRID_KEYS:
            raise ValueError(
                f"`grid.{key}` must be a known key ({', '.join(_GRID_KEYS)}); got {key!r}."
            )
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise ValueError(f"`targets` must be one or more [[targets]] tables; got {raw_targets!r}.")
    targets = []
    for i, item in enumerate(raw_targets):
        if not isinstance(item, Mapping):
            raise TypeError(f"`targets[{i}]` must be a table; got {item!r}.")
        for key in item:
            if key not in _TARGET_KEYS:
                raise ValueError(
                    f"`targets[{i}].{key}` must be a known key ({', '.join(_TARGET_KEYS)}); "
                    f"got {key!r}."
                )
        if "suite" not in item:
            raise ValueError(f"`targets[{i}].suite` must be given; got a table without it.")
        transfers = item.get("transfers")
        targets.append(
            GridTarget(
                name=item.get("name", item["suite"]),
                suite=item["suite"],
                data=item.get("data"),
                episodes=item.get("episodes"),
                transfers=None if transfers is None else transfers,
            )
        )
    options = dict(grid)
    for key in ("sources", "dummies", "transfers", "metrics"):
        if key in options and isinstance(options[key], list):
            options[key] = tuple(options[key])
    return GridConfig(targets=tuple(targets), **options)


def load_grid(name_or_path: str | os.PathLike[str]) -> GridConfig:
    """A shipped grid by name (:data:`BUILTIN_GRIDS`) or a grid TOML file by path.

    Examples
    --------
    >>> g = load_grid("default")
    >>> len(g.targets), g.transfers
    (7, ('maml', 'anil', 'retrain_head', 'prototype', 'finetune'))
    """
    key = os.fspath(name_or_path)
    path = GRIDS_DIR / f"{key}.toml" if key in BUILTIN_GRIDS else Path(key).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"`config` must be a grid name ({', '.join(BUILTIN_GRIDS)}) or a TOML file; "
            f"got {key!r}."
        )
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"`config` must be valid TOML; got {str(path)!r}: {error}.") from error
    return grid_from_dict(data)


# --------------------------------------------------------------------------------------------
# Running a grid
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class GridResult:
    """What :func:`run_grid` returns.

    Attributes
    ----------
    config:
        The grid.
    table:
        Every setting's rows: the study table of each target (column ``target`` added),
        fine-tune rows included.
    analysis:
        The aggregates (:class:`~metaleep.analysis.grid.GridAnalysis`).
    out_dir:
        The grid folder.
    report:
        Path of the grid report.
    seconds:
        Wall time of this call.
    notes:
        What was skipped and why.
    """

    config: GridConfig
    table: pd.DataFrame
    analysis: GridAnalysis
    out_dir: Path
    report: Path | None
    seconds: float
    notes: list[str] = field(default_factory=list)


def _finetune_variant(backbone: StudyBackbone, ways: int, dataset: ImageDataset) -> StudyBackbone:
    """``backbone`` for fine-tuning on ``ways``-way episodes: itself when its meta-learned head
    fits, else a copy whose head is a fresh zero ``Linear(d, ways)``."""
    import torch
    from torch import nn

    if backbone.head_ways == ways:
        return backbone
    model = copy.deepcopy(backbone.model)
    head = backbone.head
    param = next(model.parameters())
    if head is not None:
        dim = int(head.in_features)
    else:  # an embedding network: its output size, from one image
        image = backbone.view(dataset).batch(np.zeros(1, dtype=np.int64))
        training = model.training
        model.eval()
        with torch.no_grad():
            embedding = model.features(image.to(param.device, param.dtype))  # type: ignore[operator]
        model.train(training)
        dim = int(embedding.shape[1])
    fresh = nn.Linear(dim, ways).to(param.device, param.dtype)
    nn.init.zeros_(fresh.weight)
    nn.init.zeros_(fresh.bias)
    model.classifier = fresh
    return replace(
        backbone,
        model=model,
        fingerprint=f"{backbone.fingerprint}+zero-head-{ways}",
        origin=f"{backbone.origin}; fine-tuned from a fresh zero {ways}-way head".lstrip("; "),
    )


_ADAPTED = ("accuracy", "loss", "support_loss", "start_logit_std", "seconds_adapt")
"""Columns of the study table that belong to the adaptation (the rest to the episode/metrics)."""


def _finetune_rows(main: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """Fine-tune rows: the main study's metrics per (episode, backbone, dummy) with the
    fine-tuned accuracy, losses and time per (episode, backbone)."""
    if tuned.empty or main.empty:
        return pd.DataFrame()
    keys = ["episode", "backbone"]
    adapted = [c for c in _ADAPTED if c in main.columns and c in tuned.columns]
    metrics = main.drop_duplicates(["episode", "backbone", "dummy"]).drop(
        columns=["adaptation", *[c for c in _ADAPTED if c in main.columns]]
    )
    rows = metrics.merge(tuned.drop_duplicates(keys)[[*keys, *adapted]], on=keys, how="inner")
    rows["adaptation"] = "finetune"
    return rows[[c for c in main.columns if c in rows.columns]]


def _count_chunks(out: Path) -> int:
    return sum(1 for _ in out.glob("targets/**/chunk-*.csv"))


def _ways_of(suite: Any, n: int) -> list[int]:
    return sorted({int(ep.ways) for ep in suite.episodes[:n]})


def run_grid(
    config: GridConfig,
    out_dir: str | Path = "runs/grid",
    *,
    backbones: Sequence[StudyBackbone] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    report: bool = True,
    command: str = "",
) -> GridResult:
    """Run (or resume) every target study of ``config`` and aggregate the grid.

    Parameters
    ----------
    config:
        The grid (:func:`load_grid`).
    out_dir:
        The grid folder: ``grid.json``, ``targets/<name>/`` (each target's study; fine-tuning in
        ``targets/<name>/finetune/``), ``table.csv``, the aggregate CSVs and ``report.html``.
    backbones:
        Ready backbones instead of loading ``config.sources`` (tests, notebooks).
    progress:
        Progress bars.
    overwrite:
        Discard results of another grid configuration found in ``out_dir``.
    report:
        Write the grid report.
    command:
        The command line that ran the grid, recorded in ``grid.json`` (for the README's
        figures).
    """
    from tqdm.auto import tqdm

    from metaleep._io import atomic_write_bytes
    from metaleep.analysis.grid import analyse_grid
    from metaleep.episodes.suites import load_suite
    from metaleep.study.config import StudyConfig
    from metaleep.study.loading import dataset_for, load_backbones
    from metaleep.study.runner import run_study

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    identity = config.to_dict()
    stored = out / "grid.json"
    previous: dict[str, Any] = json.loads(stored.read_text()) if stored.is_file() else {}
    if previous and previous.get("config") != identity:
        if not overwrite:
            raise ValueError(
                f"`out_dir` must be empty or hold the same grid; got {str(out)!r}, which holds "
                "another grid configuration (pass overwrite=True / --overwrite to replace it)."
            )
        previous = {}
    runs: list[dict[str, Any]] = list(previous.get("runs", []))
    atomic_write_bytes(
        stored, json.dumps({"config": identity, "runs": runs}, indent=2).encode("utf-8")
    )
    chunks_before = _count_chunks(out)

    notes: list[str] = []
    loaded: list[StudyBackbone] | None = list(backbones) if backbones is not None else None
    frames: list[pd.DataFrame] = []
    reports: dict[str, str] = {}
    bar = tqdm(config.targets, desc="targets", disable=not progress)
    for target in bar:
        bar.set_postfix_str(target.name)
        transfers = config.transfers_of(target)
        cheap = tuple(t for t in transfers if t != "finetune")
        base = StudyConfig(
            suite=target.suite,
            backbones=config.sources if loaded is None else tuple(b.name for b in loaded),
            dummies=config.dummies,
            adaptations=cheap or ("prototype",),
            metrics=config.metrics,
            episodes=config.episodes_of(target),
            chunk_size=config.chunk_size,
            seed=config.seed,
            data=target.data,
        )
        dataset = dataset_for(base)
        if loaded is None:
            loaded = load_backbones(config.sources, dataset, progress=progress)
            base = replace(base, backbones=tuple(b.name for b in loaded))
        suite = load_suite(target.suite, dataset)
        folder = out / "targets" / target.name
        study = run_study(
            base,
            out_dir=folder,
            dataset=dataset,
            suite=suite,
            backbones=loaded,
            analyse=config.target_reports,
            progress=progress,
            overwrite=overwrite,
            n_boot=config.n_boot,
        )
        if study.report is not None:
            reports[target.name] = os.path.relpath(study.report, out)
        main = study.table
        if not cheap:  # only fine-tuning asked for: the prototype rows carried the metrics
            keep = main.iloc[0:0]
        else:
            keep = main
        parts = [keep]
        if "finetune" in transfers:
            n_tune = min(config.finetune_episodes, base.episodes or len(suite.episodes))
            ways = _ways_of(suite, n_tune)
            if len(ways) != 1:
                notes.append(
                    f"{target.name}: fine-tuning skipped (episodes of {len(ways)} numbers of "
                    "ways; one fresh head cannot serve them)"
                )
            else:
                variants = [_finetune_variant(b, ways[0], dataset) for b in loaded]
                tuned = run_study(
                    replace(
                        base,
                        backbones=tuple(b.name for b in variants),
                        adaptations=("finetune",),
                        metrics=("leep",),
                        episodes=n_tune,
                    ),
                    out_dir=folder / "finetune",
                    dataset=dataset,
                    suite=suite,
                    backbones=variants,
                    analyse=False,
                    progress=progress,
                    overwrite=overwrite,
                )
                parts.append(_finetune_rows(main, tuned.table))
        frame = pd.concat([p for p in parts if not p.empty], ignore_index=True)
        frame.insert(0, "target", target.name)
        frames.append(frame)
    bar.close()
    table = pd.concat(frames, ignore_index=True)
    atomic_write_bytes(out / "table.csv", table.to_csv(index=False).encode("utf-8"))
    analysis = analyse_grid(
        table, metrics=config.metrics, n_boot=config.n_boot, seed=config.seed, alpha=config.alpha
    )
    analysis.write(out)
    path = None
    seconds = time.perf_counter() - started
    if report:
        from metaleep.report.grid_page import write_grid_report

        path = write_grid_report(
            analysis, out, config=config, target_reports=reports, notes=notes, seconds=seconds
        )
    # Each call's wall time and how many result chunks it computed: the time a grid took is
    # the sum over the calls that computed something (a rerun that only re-analyses adds 0).
    runs.append({"seconds": round(seconds, 1), "new_chunks": _count_chunks(out) - chunks_before})
    summary = {
        "config": identity,
        "command": command or "run_grid(...)",
        "notes": notes,
        "seconds": round(sum(r["seconds"] for r in runs if r["new_chunks"] > 0), 1),
        "runs": runs,
        "n_settings": len(analysis.settings),
        "target_reports": reports,
    }
    atomic_write_bytes(out / "grid.json", json.dumps(summary, indent=2).encode("utf-8"))
    return GridResult(config, table, analysis, out, path, seconds, notes)
