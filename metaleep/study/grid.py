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

from metaleep.study.grid_config import GridConfig

if TYPE_CHECKING:
    from metaleep.analysis.grid import GridAnalysis
    from metaleep.backbones.protocol import StudyBackbone

log = logging.getLogger(__name__)

__all__ = ["GridResult", "run_grid"]


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
        The grid (:func:`~metaleep.study.grid_config.load_grid`).
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
    from metaleep._io import atomic_write_bytes
    from metaleep._optional import progress_bar as tqdm
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
    seeds = config.seeds
    if backbones is not None and len(seeds) > 1:
        raise ValueError(
            f"`backbones` must come with one training seed (grid.seeds = [0]); got seeds "
            f"{list(seeds)} (ready backbones have no seeds to choose)."
        )
    loaded: dict[int, list[StudyBackbone]] = (
        {seeds[0]: list(backbones)} if backbones is not None else {}
    )
    frames: list[pd.DataFrame] = []
    reports: dict[str, str] = {}
    bar = tqdm(
        [(t, k) for t in config.targets for k in seeds], desc="targets", disable=not progress
    )
    for target, seed in bar:
        bar.set_postfix_str(target.name if len(seeds) == 1 else f"{target.name} seed {seed}")
        transfers = config.transfers_of(target)
        cheap = tuple(t for t in transfers if t != "finetune")
        base = StudyConfig(
            suite=target.suite,
            backbones=config.sources if seed not in loaded else tuple(b.name for b in loaded[seed]),
            dummies=config.dummies,
            adaptations=cheap or ("prototype",),
            metrics=config.metrics,
            episodes=config.episodes_of(target),
            chunk_size=config.chunk_size,
            seed=config.seed,
            data=target.data,
        )
        dataset = dataset_for(base)
        if seed not in loaded:
            loaded[seed] = load_backbones(config.sources, dataset, progress=progress, seed=seed)
            base = replace(base, backbones=tuple(b.name for b in loaded[seed]))
        sources = loaded[seed]
        suite = load_suite(target.suite, dataset)
        folder = out / "targets" / target.name
        if len(seeds) > 1:
            folder = folder / f"seed-{seed}"
        study = run_study(
            base,
            out_dir=folder,
            dataset=dataset,
            suite=suite,
            backbones=sources,
            analyse=config.target_reports and seed == seeds[0],
            progress=progress,
            overwrite=overwrite,
            n_boot=min(config.n_boot, 1000) or 1,
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
                if seed == seeds[0]:
                    notes.append(
                        f"{target.name}: fine-tuning skipped (episodes of {len(ways)} numbers "
                        "of ways; one fresh head cannot serve them)"
                    )
            else:
                variants = [b.with_head(ways[0], dataset) for b in sources]
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
        frames.append(frame)
    bar.close()
    table = pd.concat(frames, ignore_index=True)
    atomic_write_bytes(out / "table.csv", table.to_csv(index=False).encode("utf-8"))
    analysis = analyse_grid(
        table, metrics=config.metrics, n_boot=config.n_boot, seed=config.seed, alpha=config.alpha
    )
    analysis.write(out)
    seconds = time.perf_counter() - started
    prints = {f"seed{k}": {b.name: b.fingerprint for b in sources} for k, sources in loaded.items()}
    # Each call's wall time and how many result chunks it computed: the time a grid took is
    # the sum over the calls that computed something (a rerun that only re-analyses adds 0).
    # Recorded before the report, so that a report that fails loses no measurement.
    runs.append({"seconds": round(seconds, 1), "new_chunks": _count_chunks(out) - chunks_before})
    summary = {
        "config": identity,
        "command": command or "run_grid(...)",
        "backbone_fingerprints": prints,  # what the README's figures stamp beside the commit
        "notes": notes,
        "seconds": round(sum(r["seconds"] for r in runs if r["new_chunks"] > 0), 1),
        "runs": runs,
        "n_settings": len(analysis.settings),
        "target_reports": reports,
    }
    atomic_write_bytes(out / "grid.json", json.dumps(summary, indent=2).encode("utf-8"))
    path = None
    if report:
        from metaleep.report.grid_page import write_grid_report

        path = write_grid_report(
            analysis,
            out,
            config={**config.to_dict(), "backbone_fingerprints": prints},
            target_reports=reports,
            notes=notes,
            seconds=seconds,
        )
    return GridResult(config, table, analysis, out, path, seconds, notes)
