"""The grid of transfer settings: the LEEP paper's table at this project's scale.

A **setting** is (source backbone, dummy-label mode, transfer type, target suite): the paper's
"transfer settings" (source task x transfer type x target subset). A grid declares sources,
dummy-label modes, transfer types (adaptations) and targets in a TOML file
(:func:`~metaleep.study.grid_config.load_grid`; ``metaleep/study/grids/default.toml`` and
``quick.toml`` ship with the package, copy one to edit it); :func:`run_grid` runs it:

- each target is **one resumable study** (:func:`~metaleep.study.runner.run_study`) per
  training seed of the sources (``seeds``: the default backbones ship at seeds 0, 1 and 2),
  with every source, dummy mode and feature- or MAML-based transfer, so each backbone's outputs
  on the target are computed once and shared by all of its settings there. The seeds are
  replicates of one source: the table's ``seed`` column tells them apart, the source keeps
  its name, and the analysis resamples seeds and episodes together;
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
report, ``targets/<name>/seed-<k>/`` each seed's when the grid has several); running the same
grid again in the same folder resumes.

The grid itself is declared by a :class:`~metaleep.study.grid_config.GridConfig`
(:func:`~metaleep.study.grid_config.load_grid` reads a TOML file).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from metaleep._io import atomic_write_bytes
from metaleep.study.grid_config import GridConfig
from metaleep.study.out_dir import Layout, StudyLock, peek_json, read_json

if TYPE_CHECKING:
    from metaleep.analysis.grid import GridAnalysis
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset

log = logging.getLogger(__name__)

__all__ = ["GRID_FILES", "GRID_LAYOUT", "GridInterrupted", "GridResult", "run_grid"]


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


GRID_FILES = (
    "grid.json",
    "table.csv",
    "settings.csv",
    "correlations.csv",
    "wins.csv",
    "wins_by_regime.csv",
    "counts.csv",
    "robustness.csv",
    "leave_out.csv",
    "selection.csv",
    "added.csv",
    "cells.csv",
    "analysis.json",
    "report.html",
    "report.md",
    "grid_wins.png",
    "grid_heatmap.png",
    "grid_leave_out.png",
)
"""The files a grid writes in its folder (besides its report's figures and ``targets/``)."""


def _legacy_grid(root: Path) -> tuple[str, ...]:
    """What a metaleep that kept no record wrote in a grid folder (with a ``grid.json``)."""
    saved = peek_json(root / "grid.json")
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return ()
    return (*GRID_FILES, "grid_heatmap.png", "grid_stability.png")


def _is_target_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


GRID_LAYOUT = Layout(files=GRID_FILES, folders={"targets": _is_target_folder}, legacy=_legacy_grid)
"""A grid's folder (:mod:`metaleep.study.out_dir`): its files, and ``targets/`` whose entries
are the target studies' directories (each checked by its own study lock)."""


class GridInterrupted(KeyboardInterrupt):
    """A grid stopped by an interruption (Ctrl-C, SIGTERM).

    ``str()`` says how far it got (targets finished, and the interrupted target's chunks) and
    how to resume. A :class:`KeyboardInterrupt`, so code that handles one handles this one.
    """

    def __init__(self, done: int, total: int, target: str, detail: str) -> None:
        super().__init__(done, total, target, detail)
        self.done, self.total, self.target, self.detail = done, total, target, detail

    def __str__(self) -> str:
        detail = self.detail.removesuffix("; run the same command to resume.").rstrip(".")
        return (
            f"interrupted after {self.done} of {self.total} targets (target {self.target}: "
            f"{detail}); every finished chunk is stored: run the same command to resume."
        )


@dataclass(eq=False)
class _Target:
    """A target checked and loaded before the first study: its study's configuration, data
    and suite."""

    target: Any
    base: Any
    dataset: ImageDataset
    suite: Any


def _in_keys(message: str, target: str | None) -> str:
    """A library message with option names replaced by the grid's keys (``grid.sources``,
    ``targets.NAME.suite``).

    >>> print(_in_keys("`--data` must be NAME:ROOT; got 'x'.", "t1"))
    `targets.t1.data` must be NAME:ROOT; got 'x'.
    """
    names = {"backbones": "grid.sources", "--backbones": "grid.sources"}
    for key in ("n_boot", "episodes", "chunk_size", "seed", "metrics", "dummies"):
        names[key] = f"grid.{key}"
    names["adaptations"] = "grid.transfers"
    if target is not None:  # the suite's file (`path`), the data's folder (`root`)
        for key in ("suite", "--suite", "name_or_path", "path"):
            names[key] = f"targets.{target}.suite"
        for key in ("data", "--data", "root"):
            names[key] = f"targets.{target}.data"
    for name, key in names.items():
        message = message.replace(f"`{name}`", f"`{key}`")
    return message


def _prepare(
    config: GridConfig,
    backbones: Sequence[StudyBackbone] | None,
    *,
    progress: bool,
    trust_code: bool,
) -> tuple[list[_Target], dict[int, list[StudyBackbone]]]:
    """Every target's study configuration, data and suite, and the sources at every training
    seed, loaded and checked before the first study: a grid whose last target is broken fails
    before any chunk."""
    from metaleep.episodes.suites import STANDARD_SUITES, load_suite
    from metaleep.study import loading
    from metaleep.study.checks import check_study
    from metaleep.study.config import StudyConfig

    if backbones is None:
        try:
            loading.check_specs(config.sources)
        except ValueError as error:
            raise ValueError(_in_keys(str(error), None)) from error
    datasets: dict[tuple[str, str], ImageDataset] = {}
    prepared = []
    for target in config.targets:
        transfers = tuple(t for t in config.transfers_of(target) if t != "finetune")
        try:
            base = StudyConfig(
                suite=target.suite,
                backbones=config.sources if backbones is None else tuple(b.name for b in backbones),
                dummies=config.dummies,
                adaptations=transfers or ("prototype",),
                metrics=config.metrics,
                episodes=config.episodes_of(target),
                chunk_size=config.chunk_size,
                seed=config.seed,
                data=target.data,
                trust_code=trust_code,
            )
            if base.data is not None:
                key = ("data", base.data)
            elif base.suite in STANDARD_SUITES:
                key = ("data", STANDARD_SUITES[base.suite].dataset)
            else:
                key = ("suite", base.suite_name)
            if key not in datasets:
                datasets[key] = loading.dataset_for(base)
            dataset = datasets[key]
            suite = load_suite(target.suite, dataset)
        except (ValueError, TypeError, FileNotFoundError, OSError) as error:
            raise ValueError(
                f"target {target.name!r}: {_in_keys(str(error), target.name)}"
            ) from error
        prepared.append(_Target(target, base, dataset, suite))
    seeds = config.seeds
    if backbones is not None and len(seeds) > 1:
        raise ValueError(
            f"`backbones` must come with one training seed (grid.seeds = [0]); got seeds "
            f"{list(seeds)} (ready backbones have no seeds to choose)."
        )
    loaded: dict[int, list[StudyBackbone]] = {}
    for seed in seeds:
        if backbones is None:
            try:
                loaded[seed] = loading.load_backbones(
                    config.sources,
                    prepared[0].dataset,
                    progress=progress,
                    seed=seed,
                    trust_code=trust_code,
                )
            except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
                raise type(error)(_in_keys(str(error), None)) from error
        else:
            loaded[seed] = list(backbones)
    names = tuple(b.name for b in loaded[seeds[0]])
    for item in prepared:
        item.base = replace(item.base, backbones=names)
        episodes = item.suite.episodes[: item.base.episodes]
        for sources in loaded.values():
            try:
                check_study(item.base, item.dataset, episodes, sources)
            except (ValueError, TypeError) as error:
                message = _in_keys(str(error), item.target.name)
                raise ValueError(f"target {item.target.name!r}: {message}") from error
    return prepared, loaded


def run_grid(
    config: GridConfig,
    out_dir: str | Path = "runs/grid",
    *,
    backbones: Sequence[StudyBackbone] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    report: bool = True,
    command: str = "",
    trust_code: bool = False,
) -> GridResult:
    """Run (or resume) every target study of ``config`` and aggregate the grid.

    Parameters
    ----------
    config:
        The grid (:func:`~metaleep.study.grid_config.load_grid`).
    out_dir:
        The grid folder: ``grid.json``, ``targets/<name>/`` (each target's study; fine-tuning in
        ``targets/<name>/finetune/``), ``table.csv``, the aggregate CSVs and ``report.html``.
        Locked for the whole call; files metaleep did not write there are never touched.
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
    trust_code:
        Let ``metaleep export`` files among the sources run the factory they record
        (``--trust-factory``).

    Every target's suite, data and study configuration, and the sources, are loaded and
    checked before the first study (``ValueError`` naming the target and the key otherwise).

    Raises
    ------
    GridInterrupted
        (a ``KeyboardInterrupt``) when interrupted: how many targets were finished, how far
        the interrupted one got, and that the same call resumes.
    """
    from metaleep._optional import progress_bar as tqdm
    from metaleep.analysis.grid import analyse_grid

    started = time.perf_counter()
    out = Path(out_dir)
    identity = config.to_dict()
    with StudyLock(out, GRID_LAYOUT) as lock:
        assert lock.outputs is not None
        outputs = lock.outputs
        stored = out / "grid.json"
        previous: dict[str, Any] = {}
        if os.path.lexists(stored):
            loaded_json = read_json(stored, "the grid's configuration")
            previous = loaded_json if isinstance(loaded_json, dict) else {"config": None}
        if previous and previous.get("config") != identity:
            if not overwrite:
                raise ValueError(
                    f"`out_dir` must be empty or hold the same grid; got {str(out)!r}, which "
                    "holds another grid configuration (pass overwrite=True / --overwrite to "
                    "replace it)."
                )
            previous = {}
        prepared, loaded = _prepare(config, backbones, progress=progress, trust_code=trust_code)
        runs: list[dict[str, Any]] = [r for r in previous.get("runs", []) if isinstance(r, dict)]
        outputs.record("grid.json")
        atomic_write_bytes(
            stored, json.dumps({"config": identity, "runs": runs}, indent=2).encode("utf-8")
        )
        chunks_before = _count_chunks(out)

        notes: list[str] = []
        frames: list[pd.DataFrame] = []
        reports: dict[str, str] = {}
        seeds = config.seeds
        work = [(item, seed) for item in prepared for seed in seeds]
        bar = tqdm(work, desc="targets", disable=not progress)
        done = 0
        try:
            for item, seed in bar:
                name = item.target.name if len(seeds) == 1 else f"{item.target.name} seed {seed}"
                bar.set_postfix_str(name)
                frames.append(
                    _run_target(
                        config,
                        item,
                        seed,
                        loaded[seed],
                        out,
                        notes,
                        reports,
                        progress=progress,
                        overwrite=overwrite,
                    )
                )
                done += 1
        except KeyboardInterrupt as interrupt:
            item, seed = work[done]
            name = item.target.name if len(seeds) == 1 else f"{item.target.name} seed {seed}"
            detail = str(interrupt) or "interrupted before its first chunk"
            raise GridInterrupted(done, len(work), name, detail) from interrupt
        bar.close()
        table = pd.concat(frames, ignore_index=True)
        analysis = analyse_grid(
            table,
            metrics=config.metrics,
            n_boot=config.n_boot,
            seed=config.seed,
            alpha=config.alpha,
        )
        seconds = time.perf_counter() - started
        prints = {f"seed{k}": {b.name: b.fingerprint for b in bs} for k, bs in loaded.items()}

        def write(folder: Path) -> Path | None:
            atomic_write_bytes(folder / "table.csv", table.to_csv(index=False).encode("utf-8"))
            analysis.write(folder)
            if not report:
                return None
            from metaleep.report.grid_page import write_grid_report

            return write_grid_report(
                analysis,
                folder,
                config={**config.to_dict(), "backbone_fingerprints": prints},
                target_reports=reports,
                notes=notes,
                seconds=seconds,
            )

        written = outputs.publish(write)
        path = None if written is None else out / written.name
        # Each call's wall time and how many result chunks it computed: the time a grid took
        # is the sum over the calls that computed something (a rerun that only re-analyses
        # adds 0).
        runs.append(
            {"seconds": round(seconds, 1), "new_chunks": _count_chunks(out) - chunks_before}
        )
        summary = {
            "config": identity,
            "command": command or "run_grid(...)",
            "backbone_fingerprints": prints,  # what the README's figures stamp beside the commit
            "notes": notes,
            "seconds": round(sum(r.get("seconds", 0) for r in runs if r.get("new_chunks")), 1),
            "runs": runs,
            "n_settings": len(analysis.settings),
            "target_reports": reports,
        }
        atomic_write_bytes(stored, json.dumps(summary, indent=2).encode("utf-8"))
    return GridResult(config, table, analysis, out, path, seconds, notes)


def _run_target(
    config: GridConfig,
    item: _Target,
    seed: int,
    loaded: list[StudyBackbone],
    out: Path,
    notes: list[str],
    reports: dict[str, str],
    *,
    progress: bool,
    overwrite: bool,
) -> pd.DataFrame:
    """One target's study (and its fine-tuning study) with the sources of one training seed:
    its rows of the grid's table. The first seed's study writes the target's own report (its
    intervals from at most 1,000 resamples: the grid's own analysis resamples seeds and
    episodes together)."""
    from metaleep.study.runner import run_study

    target, base, dataset, suite = item.target, item.base, item.dataset, item.suite
    first = seed == config.seeds[0]
    transfers = config.transfers_of(target)
    cheap = tuple(t for t in transfers if t != "finetune")
    folder = out / "targets" / target.name
    if len(config.seeds) > 1:
        folder = folder / f"seed-{seed}"
    study = run_study(
        base,
        out_dir=folder,
        dataset=dataset,
        suite=suite,
        backbones=loaded,
        analyse=config.target_reports and first,
        progress=progress,
        overwrite=overwrite,
        n_boot=min(config.n_boot, 1000),
    )
    if study.report is not None:
        reports[target.name] = os.path.relpath(study.report, out)
    main = study.table
    # only fine-tuning asked for: the prototype rows carried the metrics
    parts = [main if cheap else main.iloc[0:0]]
    if "finetune" in transfers:
        n_tune = min(config.finetune_episodes, base.episodes or len(suite.episodes))
        ways = _ways_of(suite, n_tune)
        if len(ways) != 1:
            if first:
                notes.append(
                    f"{target.name}: fine-tuning skipped (episodes of {len(ways)} numbers of "
                    "ways; one fresh head cannot serve them)"
                )
        else:
            variants = [b.with_head(ways[0], dataset) for b in loaded]
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
    frame.insert(0, "seed", seed)
    frame.insert(0, "target", target.name)
    return frame
