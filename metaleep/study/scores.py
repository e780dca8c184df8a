"""Scores only: every metric of every backbone on every episode, without adapting.

:func:`score` is the metric half of a study (the same backbone outputs, the same batched
metric calls, so its values equal the study table's metric columns) at a fraction of the
cost: rank checkpoints by LEEP first, adapt only to check the ranking
(``metaleep score``, then ``metaleep run``). :func:`summarize_scores` gives each backbone's
mean score with a 95 % confidence interval and the ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaleep.study.config import DEFAULT_METRICS, StudyConfig
from metaleep.study.outputs import DUMMY_MODES, dummy_modes, no_dummy_reasons

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite

__all__ = ["SCORE_KEYS", "score", "summarize_scores"]

SCORE_KEYS = ("episode", "backbone", "dummy")
"""Columns that identify a row of the scores table."""


def score(
    backbones: Sequence[Any] | Any,
    suite: str | Suite | None = None,
    *,
    data: str | None = None,
    dataset: ImageDataset | None = None,
    ways: int | None = None,
    shots: int | None = None,
    queries: int | None = None,
    min_images: int | None = None,
    episodes: int | None = None,
    image_size: int | tuple[int, int] | str | None = None,
    bad_files: str = "skip",
    source_data: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    dummies: Sequence[str] = DUMMY_MODES,
    temperature: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Metric values of each backbone on each episode's support set, without adaptation.

    The Python form of ``metaleep score``: the same options, the same suite (sampled from
    ``data`` by the same function when no suite is named), the same values.

    Parameters
    ----------
    backbones:
        One or more backbones, mixed in one list: specs as ``--backbones`` takes them
        (``"maml"``, checkpoint paths, ``FILE.py:CALLABLE``, ``NAME=SPEC``), ``StudyBackbone``
        objects (:func:`~metaleep.backbones.from_module`), trained ``Backbone`` objects or
        modules.
    suite:
        A standard suite name, a manifest path or a loaded :class:`Suite`. Default: a suite
        sampled from ``data`` (or ``dataset``) when given, else ``glyphs-5w5s``.
    data, dataset:
        The target data: a ``NAME[:ROOT]`` spec or a loaded data set (default: the suite's).
    ways, shots, queries, min_images:
        With data and no suite: the sampled episodes (5-way 5-shot by default; ``queries``
        None fits the data, at most 15; ``min_images`` leaves smaller classes out).
    episodes:
        Without a suite: how many episodes to sample (600 by default); with one, only its
        first ``episodes``.
    image_size, bad_files:
        How the data are loaded (``--image-size``, ``--bad-files``).
    source_data:
        ``{backbone name: --data spec or ImageDataset}``: the data each was trained on.
    metrics, dummies:
        Registry metric names and dummy-label modes (each backbone uses those it offers; one
        that offers none gets rows of dummy ``none`` with every feature metric).
    temperature, seed, device:
        As for :class:`~metaleep.study.config.StudyConfig`.
    out_dir:
        Where to keep a sampled suite (``OUT/suite.csv``); None keeps it in memory.
    progress:
        Show a progress bar over backbones.

    Returns
    -------
    pandas.DataFrame
        One row per (episode, backbone, dummy): ``suite``, ``episode``, ``ways``, ``shots``,
        ``queries``, ``backbone``, ``dummy``, one column per metric, ``seconds_metrics``.
        ``attrs["no_dummy"]`` says why backbones with rows of dummy ``none`` have no label
        distribution.
    """
    from tqdm.auto import tqdm

    from metaleep.episodes.manifest import Suite as SuiteType
    from metaleep.study.checks import check_study
    from metaleep.study.loading import load_study_inputs
    from metaleep.study.runner import prepare_chunks, score_episodes, study_options, thread_pools

    items = list(backbones) if isinstance(backbones, list | tuple) else [backbones]
    config, sampling = study_options(
        StudyConfig(
            suite=suite if isinstance(suite, str) or suite is None else suite.name,
            backbones=tuple(b if isinstance(b, str) else f"given{i}" for i, b in enumerate(items))
            or ("given",),
            dummies=tuple(dummies),
            metrics=tuple(metrics),
            temperature=temperature,
            seed=seed,
            device=device,
            bad_files=bad_files,
        ),
        data=data,
        episodes=episodes,
        image_size=image_size,
        ways=ways,
        shots=shots,
        queries=queries,
        min_images=min_images,
    )
    inputs = load_study_inputs(
        config,
        dataset=dataset,
        suite=suite if isinstance(suite, SuiteType) else None,
        backbones=items,
        source_data=source_data,
        sampling=sampling,
        out_dir=out_dir,
        by="metaleep score",
        progress=progress,
    )
    config, dataset, chosen = inputs.config, inputs.dataset, inputs.episodes
    check_study(config, dataset, chosen, inputs.backbones, adapt=False)
    device = config.resolved_device()
    study_backbones = [b.on(device) for b in inputs.backbones]
    frames = []
    for backbone in tqdm(study_backbones, desc="score", disable=not progress):
        context = prepare_chunks(
            config, dataset, inputs.suite.name, chosen, [backbone], device, support_only=True
        )
        outputs = context.outputs[backbone.name]
        shapes: dict[tuple[int, int, int], list[Any]] = {}
        for ep in chosen:
            shapes.setdefault((ep.ways, ep.shots, ep.queries), []).append(ep)
        for (ways_, shots_, queries_), group in shapes.items():
            modes = dummy_modes(backbone, config.dummies, ways_)
            with thread_pools().limit(limits=1):
                values, seconds = score_episodes(config.metrics, outputs, group, modes, config.seed)
            n = len(group)
            for mode in modes:
                columns: dict[str, Any] = {
                    "suite": inputs.suite.name,
                    "episode": np.array([ep.index for ep in group], dtype=np.int64),
                    "ways": ways_,
                    "shots": shots_,
                    "queries": queries_,
                    "backbone": backbone.name,
                    "dummy": mode,
                }
                for metric in config.metrics:
                    columns[metric] = np.asarray(values[mode][metric], dtype=np.float64)
                columns["seconds_metrics"] = seconds / n / len(modes)
                frames.append(pd.DataFrame(columns))
    if not frames:
        table = pd.DataFrame(columns=[*SCORE_KEYS, *config.metrics])
    else:
        table = pd.concat(frames, ignore_index=True)
        table = table.sort_values(list(SCORE_KEYS), kind="stable", ignore_index=True)
    table.attrs["no_dummy"] = no_dummy_reasons(
        study_backbones, config.dummies, [ep.ways for ep in chosen]
    )
    return table


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
