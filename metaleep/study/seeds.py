"""A study over several training seeds of the default backbones: one source, replicates.

A default backbone trained at another seed is another network, and its correlations differ by
more than the episodes' sampling error. :func:`run_seeded_study` runs the same study once per
training seed (``out_dir/seed-<k>/``, each resumable), stacks the tables with a ``seed``
column (the backbones keep their names), and analyses them together: correlations within each
seed, averaged over the seeds on Fisher's z scale, with a hierarchical bootstrap (seeds, then
episodes) whose ``seed_share`` says how much of each interval the seed makes
(:mod:`metaleep.analysis.regimes`). ``metaleep run --seeds 0,1,2`` calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from metaleep.study.config import Sampling, StudyConfig
from metaleep.study.out_dir import Layout, StudyLock
from metaleep.study.store import REPORT_FILES, RESULTS_FILE

if TYPE_CHECKING:
    from metaleep.analysis.study import StudyAnalysis
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite
    from metaleep.study.runner import Executor, StudyResult

__all__ = ["SEEDED_LAYOUT", "check_seeds", "run_seeded_study"]


def _is_seed_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _seed_folders() -> dict[str, Callable[[Path], bool]]:
    return {f"seed-{k}": _is_seed_folder for k in range(_MAX_SEED_FOLDERS)}


_MAX_SEED_FOLDERS = 100
"""Seed folders a seeded study's layout knows (``seed-0`` .. ``seed-99``)."""

SEEDED_LAYOUT = Layout(files=(RESULTS_FILE, *REPORT_FILES), folders=_seed_folders())
"""A seeded study's directory (:mod:`metaleep.study.out_dir`): the stacked table, the analysis
and report, and ``seed-<k>/``, each seed's own study directory (locked by its own study)."""


def check_seeds(
    seeds: Sequence[int], sources: Sequence[str], flag: str = "seeds"
) -> tuple[int, ...]:
    """Distinct training seeds >= 0; several only when every source is a default backbone.

    Examples
    --------
    >>> check_seeds([0, 1, 2], ["maml", "supervised"])
    (0, 1, 2)
    >>> check_seeds([0, 1], ["maml", "mine=runs/a"], "--seeds")
    Traceback (most recent call last):
    ...
    ValueError: `--seeds` must be one seed when a source is not a default backbone (maml, \
supervised, protonet); got [0, 1] with mine=runs/a.
    """
    from metaleep.backbones.default import DEFAULT_CONFIGS
    from metaleep.study.loading import split_spec

    expected = "one or more distinct integers >= 0"
    items = (seeds,) if isinstance(seeds, int) else seeds
    if not isinstance(items, tuple | list) or not items:
        raise TypeError(f"`{flag}` must be {expected}; got {seeds!r}.")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise ValueError(f"`{flag}` must be {expected}; got {seeds!r}.")
    if len(set(items)) != len(items):
        raise ValueError(f"`{flag}` must be {expected}; got {seeds!r}.")
    others = [s for s in sources if split_spec(s)[1] not in DEFAULT_CONFIGS]
    if len(items) > 1 and others:
        raise ValueError(
            f"`{flag}` must be one seed when a source is not a default backbone "
            f"({', '.join(DEFAULT_CONFIGS)}); got {list(items)} with {', '.join(others)}."
        )
    return tuple(int(i) for i in items)


def run_seeded_study(
    config: StudyConfig,
    seeds: Sequence[int],
    *,
    out_dir: str | Path = "runs/study",
    dataset: ImageDataset | None = None,
    suite: Suite | None = None,
    backbones: dict[int, Sequence[StudyBackbone]] | None = None,
    sampling: Sampling | None = None,
    analyse: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    n_boot: int = 1000,
    executor: Executor | None = None,
) -> StudyResult:
    """Run ``config`` once per training seed and analyse the seeds as replicates.

    Parameters
    ----------
    config:
        The study; its default backbones are loaded at each seed.
    seeds:
        Training seeds (the default backbones ship at 0, 1 and 2; other seeds are trained and
        cached).
    out_dir:
        ``seed-<k>/`` holds each seed's study; ``results.csv`` (every seed, with a ``seed``
        column), ``correlations.csv`` and the report are written beside them.
    dataset, suite:
        Supply these to bypass loading by name (tests, notebooks, data in memory).
    backbones:
        Ready backbones per seed instead of loading ``config.backbones`` (tests, notebooks).
    sampling:
        How to sample the suite when ``config`` names data and no suite (``--ways``,
        ``--shots``, ...): every seed's study samples the same suite, (seed, i) decides
        episode i.
    analyse, progress, overwrite, n_boot, executor:
        As in :func:`~metaleep.study.runner.run_study`.
    """
    import time

    from metaleep._io import atomic_write_bytes
    from metaleep.study.loading import dataset_for, load_backbones
    from metaleep.study.runner import StudyResult, run_study

    started = time.perf_counter()
    # ready backbones come per seed: nothing to check of their specs
    seeds = check_seeds(seeds, config.backbones if backbones is None else ())
    if max(seeds) >= _MAX_SEED_FOLDERS:
        raise ValueError(
            f"`seeds` must be below {_MAX_SEED_FOLDERS} for a seeded study's folders; got "
            f"{list(seeds)}."
        )
    out = Path(out_dir)
    with StudyLock(out, SEEDED_LAYOUT) as lock:
        if dataset is None:
            dataset = dataset_for(config)
        shape = sampling or Sampling()
        tables = []
        for seed in seeds:
            ready = (
                list(backbones[seed])
                if backbones is not None
                else load_backbones(
                    config.backbones,
                    dataset,
                    progress=progress,
                    seed=seed,
                    trust_code=config.trust_code,
                )
            )
            result = run_study(
                config,
                out_dir=out / f"seed-{seed}",
                dataset=dataset,
                suite=suite,
                backbones=ready,
                ways=shape.ways,
                shots=shape.shots,
                queries=shape.queries,
                min_images=shape.min_images,
                analyse=False,
                progress=progress,
                overwrite=overwrite,
                n_boot=n_boot,
                executor=executor,
            )
            tables.append(result.table.assign(seed=seed))
        table = pd.concat(tables, ignore_index=True)
        identity = {**config.to_dict(), "seeds": list(seeds)}

        def write(folder: Path) -> tuple[StudyAnalysis | None, Path | None]:
            atomic_write_bytes(folder / RESULTS_FILE, table.to_csv(index=False).encode("utf-8"))
            if not analyse or table.empty:
                return None, None
            from metaleep.study.summary import analyse_and_report

            return analyse_and_report(
                table, folder, identity, metrics=config.metrics, n_boot=n_boot, seed=config.seed
            )

        analysis, written = lock.held_outputs.publish(write)
    return StudyResult(
        table=table,
        out_dir=out,
        correlations=None if analysis is None else analysis.correlations,
        report=None if written is None else out / written.name,
        seconds=time.perf_counter() - started,
        analysis=analysis,
    )
