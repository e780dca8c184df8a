"""Scores only: every metric of every backbone on every episode, without adapting.

:func:`score` is the metric half of a study (the same backbone outputs, the same batched
metric calls, so its values equal the study table's metric columns) at a fraction of the
cost: rank checkpoints by LEEP first, adapt only to check the ranking
(``metaleep score``, then ``metaleep run``). :func:`summarize_scores` gives each backbone's
mean score with a 95 % confidence interval and the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaleep.study.config import DEFAULT_METRICS, StudyConfig
from metaleep.study.out_dir import Layout
from metaleep.study.outputs import DUMMY_MODES
from metaleep.study.store import SUITE_FILE

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite

__all__ = ["SCORE_FILES", "SCORE_KEYS", "SCORE_LAYOUT", "score", "summarize_scores", "write_scores"]

SCORE_KEYS = ("episode", "backbone", "dummy")
"""Columns that identify a row of the scores table."""
SCORE_FILES = ("scores.csv", "summary.csv", "ranking.csv")
"""What ``metaleep score`` writes in its ``--out``."""
SCORE_LAYOUT = Layout(files=(*SCORE_FILES, SUITE_FILE))
"""``metaleep score``'s output directory (:mod:`metaleep.study.out_dir`): the scores and the
suite it sampled."""


def write_scores(
    folder: str | Path, table: pd.DataFrame, summary: pd.DataFrame, ranking: pd.DataFrame
) -> None:
    """Write ``scores.csv``, ``summary.csv`` and ``ranking.csv`` (:data:`SCORE_FILES`)."""
    from metaleep._io import atomic_write_bytes

    for name, frame in zip(SCORE_FILES, (table, summary, ranking), strict=True):
        atomic_write_bytes(Path(folder) / name, frame.to_csv(index=False).encode("utf-8"))


def score(
    backbones: Sequence[Any] | Any,
    suite: str | Suite = "glyphs-5w5s",
    *,
    data: str | None = None,
    dataset: ImageDataset | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    dummies: Sequence[str] = DUMMY_MODES,
    episodes: int | None = None,
    temperature: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    trust_code: bool = False,
) -> pd.DataFrame:
    """Metric values of each backbone on each episode's support set, without adaptation.

    Parameters
    ----------
    backbones:
        One or more backbones: specs as ``--backbones`` takes them (``"maml"``, checkpoint
        paths, ``FILE.py:CALLABLE``, ``NAME=SPEC``), ``StudyBackbone`` objects
        (:func:`~metaleep.backbones.from_module`), trained ``Backbone`` objects or modules.
    suite:
        A standard suite name, a manifest path or a loaded :class:`Suite`.
    data, dataset:
        The target data: a ``NAME[:ROOT]`` spec or a loaded data set (default: the suite's).
    metrics, dummies:
        Registry metric names and dummy-label modes (each backbone uses those it offers).
    episodes:
        Only the first ``episodes`` episodes.
    temperature, seed, device:
        As for :class:`~metaleep.study.config.StudyConfig`.
    progress:
        Show a progress bar over backbones.
    trust_code:
        Let ``metaleep export`` files among ``backbones`` run the factory they record
        (:attr:`~metaleep.study.config.StudyConfig.trust_code`).

    Returns
    -------
    pandas.DataFrame
        One row per (episode, backbone, dummy): ``suite``, ``episode``, ``ways``, ``shots``,
        ``queries``, ``backbone``, ``dummy``, one column per metric, ``seconds_metrics``.
    """
    from tqdm.auto import tqdm

    from metaleep.episodes.manifest import Suite as SuiteType
    from metaleep.study.checks import check_study
    from metaleep.study.loading import load_study_inputs
    from metaleep.study.runner import prepare_chunks, score_episodes, thread_pools

    items = list(backbones) if isinstance(backbones, list | tuple) else [backbones]
    specs = tuple(b for b in items if isinstance(b, str))
    objects = [b for b in items if not isinstance(b, str)]
    if specs and objects:
        raise TypeError(
            "`backbones` must be all specs (strings) or all backbone objects; got a mix."
        )
    config = StudyConfig(
        suite=suite if isinstance(suite, str) else suite.name,
        backbones=specs or ("given",),
        dummies=tuple(dummies),
        metrics=tuple(metrics),
        episodes=episodes,
        temperature=temperature,
        seed=seed,
        device=device,
        data=data,
        trust_code=trust_code,
    )
    loaded_suite = suite if isinstance(suite, SuiteType) else None
    dataset, loaded, study_backbones = load_study_inputs(
        config,
        dataset=dataset,
        suite=loaded_suite,
        backbones=objects or None,  # type: ignore[arg-type]  # modules are wrapped there
        progress=progress,
    )
    chosen = loaded.episodes[:episodes] if episodes else loaded.episodes
    check_study(config, dataset, chosen, study_backbones, adapt=False)
    device = config.resolved_device()
    study_backbones = [b.on(device) for b in study_backbones]
    frames = []
    for backbone in tqdm(study_backbones, desc="score", disable=not progress):
        context = prepare_chunks(
            config, dataset, loaded.name, chosen, [backbone], device, support_only=True
        )
        outputs = context.outputs[backbone.name]
        shapes: dict[tuple[int, int, int], list[Any]] = {}
        for ep in chosen:
            shapes.setdefault((ep.ways, ep.shots, ep.queries), []).append(ep)
        for (ways, shots, queries), group in shapes.items():
            modes = [m for m in config.dummies if backbone.offers_dummy(m, ways)]
            if not modes:
                continue
            with thread_pools().limit(limits=1):
                values, seconds = score_episodes(config.metrics, outputs, group, modes, config.seed)
            n = len(group)
            for mode in modes:
                columns: dict[str, Any] = {
                    "suite": loaded.name,
                    "episode": np.array([ep.index for ep in group], dtype=np.int64),
                    "ways": ways,
                    "shots": shots,
                    "queries": queries,
                    "backbone": backbone.name,
                    "dummy": mode,
                }
                for metric in config.metrics:
                    columns[metric] = np.asarray(values[mode][metric], dtype=np.float64)
                columns["seconds_metrics"] = seconds / n / len(modes)
                frames.append(pd.DataFrame(columns))
    if not frames:
        return pd.DataFrame(columns=[*SCORE_KEYS, *config.metrics])
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(list(SCORE_KEYS), kind="stable", ignore_index=True)


def summarize_scores(
    table: pd.DataFrame, *, metrics: Sequence[str] | None = None, rank_by: str = "leep"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (backbone, dummy): mean of each metric with a 95 % t confidence interval; and the
    ranking of (backbone, dummy) pairs by the mean of ``rank_by``.

    Returns
    -------
    (summary, ranking):
        ``summary``: one row per (backbone, dummy, metric) with ``mean``, ``ci_low``,
        ``ci_high``, ``episodes``. ``ranking``: one row per (backbone, dummy), best first, with
        ``rank`` and the mean and CI of ``rank_by`` (higher is better for every registry
        metric but those declared lower-is-better, whose order is reversed).
    """
    from scipy import stats

    from metaleep.metrics.registry import get_metric

    if metrics is None:
        metrics = [
            c
            for c in table.columns
            if c not in (*SCORE_KEYS, "suite", "ways", "shots", "queries", "seconds_metrics")
        ]
    if rank_by not in metrics:
        raise ValueError(
            f"`rank_by` must be one of the scored metrics ({', '.join(metrics)}); got {rank_by!r}."
        )
    rows = []
    for (backbone, dummy), group in table.groupby(["backbone", "dummy"], sort=True):
        for metric in metrics:
            values = group[metric].to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
            mean = float(values.mean()) if values.size else float("nan")
            if values.size > 1 and values.std() > 0:
                low, high = stats.t.interval(
                    0.95, values.size - 1, loc=mean, scale=stats.sem(values)
                )
            else:
                low = high = mean
            rows.append(
                {
                    "backbone": backbone,
                    "dummy": dummy,
                    "metric": metric,
                    "mean": mean,
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "episodes": int(values.size),
                }
            )
    summary = pd.DataFrame(rows)
    ranking = summary[summary["metric"] == rank_by].drop(columns="metric")
    higher = get_metric(rank_by).higher_is_better
    ranking = ranking.sort_values(
        ["mean", "backbone", "dummy"], ascending=[not higher, True, True], ignore_index=True
    )
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    return summary, ranking
