"""What a grid declares: its targets, sources, dummy modes, transfers and options (a TOML file).

:class:`GridConfig` holds a grid (:class:`GridTarget` each target) and checks every value in
the words of the TOML key (``grid.episodes``, ``targets.NAME.suite``); :func:`grid_from_dict`
reads the content of a file, refusing unknown keys, and :func:`load_grid` a shipped grid by
name (:data:`BUILTIN_GRIDS`) or a file by path. :func:`metaleep.study.grid.run_grid` runs one.

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

import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaleep._text import printable
from metaleep.study.config import DEFAULT_METRICS, option_names
from metaleep.study.outputs import DUMMY_MODES
from metaleep.study.seeds import check_seeds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "BUILTIN_GRIDS",
    "TRANSFERS",
    "GridConfig",
    "GridTarget",
    "grid_from_dict",
    "load_grid",
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
    "seeds",
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
                self, "transfers", option_names(self.transfers, f"{where}.transfers", TRANSFERS)
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
    seeds:
        Training seeds of the sources: each target is run once per seed, and the seeds are
        replicates of each source in the analysis (the default backbones ship at seeds 0, 1
        and 2). More than one seed needs every source to be a default backbone.
    n_boot:
        Bootstrap replicates (confidence intervals, tests of the winners, stability); at least
        10,000 for the tests to reach Benjamini-Hochberg's thresholds.
    alpha:
        False discovery rate of the significant wins (Benjamini-Hochberg over the grid's
        distinct selection-aware tests).
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
    seeds: tuple[int, ...] = (0,)
    n_boot: int = 10_000
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
        object.__setattr__(self, "sources", option_names(self.sources, "grid.sources"))
        object.__setattr__(self, "dummies", option_names(self.dummies, "grid.dummies", DUMMY_MODES))
        object.__setattr__(
            self, "transfers", option_names(self.transfers, "grid.transfers", TRANSFERS)
        )
        object.__setattr__(
            self, "metrics", option_names(self.metrics, "grid.metrics", tuple(METRICS))
        )
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
        object.__setattr__(self, "seeds", check_seeds(self.seeds, self.sources, "grid.seeds"))
        _positive_int(self.n_boot, "grid.n_boot")
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
episodes, finetune_episodes, chunk_size, seed, seeds, n_boot, alpha, target_reports); got 'sorces'.
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
    for key in ("sources", "dummies", "transfers", "metrics", "seeds"):
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
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as error:
        why = "nested too deep" if isinstance(error, RecursionError) else error
        raise ValueError(
            f"`config` must be a grid TOML file (UTF-8 text, valid TOML); got {str(path)!r}: "
            f"{printable(why, 200)}."
        ) from None
    except OSError as error:
        raise ValueError(
            f"`config` must be a readable grid TOML file; got {str(path)!r} "
            f"({error.strerror or error})."
        ) from error
    return grid_from_dict(data)
