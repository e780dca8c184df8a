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
from metaleep.study.out_dir import Layout, StudyLock
from metaleep.study.outputs import DUMMY_MODES, dummy_modes, no_dummy_reasons
from metaleep.study.store import SUITE_FILE

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite

__all__ = [
    "ANY_DUMMY",
    "RANK_FILES",
    "RANK_LAYOUT",
    "SCORE_FILES",
    "SCORE_KEYS",
    "SCORE_LAYOUT",
    "attach_accuracy",
    "rank_backbones",
    "score",
    "summarize_scores",
    "write_ranking",
    "write_scores",
]

SCORE_KEYS = ("episode", "backbone", "dummy")
"""Columns that identify a row of the scores table."""
SCORE_FILES = ("scores.csv", "summary.csv", "ranking.csv")
"""What ``metaleep score`` writes in its ``--out``."""
RANK_FILES = ("backbone_means.csv", "rank_agreement.csv")
"""What :func:`rank_backbones`' tables are written as (``metaleep rank``, ``score --study``)."""
SCORE_LAYOUT = Layout(files=(*SCORE_FILES, *RANK_FILES, SUITE_FILE))
"""``metaleep score``'s output directory (:mod:`metaleep.study.out_dir`): the scores, the
ranking against a study's accuracy, and the suite it sampled."""
RANK_LAYOUT = Layout(files=RANK_FILES)
"""``metaleep rank --out``'s directory."""


def write_scores(
    folder: str | Path, table: pd.DataFrame, summary: pd.DataFrame, ranking: pd.DataFrame
) -> None:
    """Write ``scores.csv``, ``summary.csv`` and ``ranking.csv`` (:data:`SCORE_FILES`)."""
    from metaleep._io import atomic_write_bytes

    for name, frame in zip(SCORE_FILES, (table, summary, ranking), strict=True):
        atomic_write_bytes(Path(folder) / name, frame.to_csv(index=False).encode("utf-8"))


def write_ranking(folder: str | Path, per_backbone: pd.DataFrame, agreement: pd.DataFrame) -> None:
    """Write :func:`rank_backbones`' tables as ``backbone_means.csv`` and
    ``rank_agreement.csv`` (:data:`RANK_FILES`)."""
    from metaleep._io import atomic_write_bytes

    for name, frame in zip(RANK_FILES, (per_backbone, agreement), strict=True):
        atomic_write_bytes(Path(folder) / name, frame.to_csv(index=False).encode("utf-8"))


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
    trust_code: bool = False,
    lock: StudyLock | None = None,
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
    trust_code:
        Let ``metaleep export`` files among ``backbones`` run the factory they record
        (:attr:`~metaleep.study.config.StudyConfig.trust_code`).
    lock:
        ``out_dir``'s lock when the caller holds it (``metaleep score`` does, for its whole
        run); else a sampled suite's write takes one.

    Returns
    -------
    pandas.DataFrame
        One row per (episode, backbone, dummy): ``suite``, ``episode``, ``ways``, ``shots``,
        ``queries``, ``backbone``, ``dummy``, one column per metric, ``seconds_metrics``.
        ``attrs["no_dummy"]`` says why backbones with rows of dummy ``none`` have no label
        distribution.
    """
    from metaleep._optional import progress_bar as tqdm
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
            trust_code=trust_code,
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
        lock=lock,
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


_NOT_METRICS = (*SCORE_KEYS, "suite", "ways", "shots", "queries", "seconds_metrics")

ANY_DUMMY = "any"
"""The ``dummy`` of rankings by a feature metric: its values do not depend on the dummy mode,
so every backbone is ranked, whatever dummy labels it has."""


def _metric_columns(table: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        return list(metrics)
    skip = {*_NOT_METRICS, "adaptation", "accuracy", "loss", "support_loss", "start_logit_std"}
    skip |= {"alphabets", "within_alphabet", "seconds_adapt"}
    return [c for c in table.columns if c not in skip]


def _comparable(table: pd.DataFrame, metric: str) -> list[tuple[str, pd.DataFrame]]:
    """The groups of rows whose values of ``metric`` may be ranked against each other: one per
    dummy mode for a metric of a label distribution (rows of dummy ``none`` have none), and all
    rows, one per (episode, backbone), for a feature metric (:data:`ANY_DUMMY`)."""
    from metaleep.study.outputs import NO_DUMMY, needs_labels

    if needs_labels(metric):
        return [
            (str(dummy), group)
            for dummy, group in table.groupby("dummy", sort=True)
            if dummy != NO_DUMMY
        ]
    keys = [c for c in ("suite", "episode", "backbone", "adaptation") if c in table.columns]
    return [(ANY_DUMMY, table.drop_duplicates(keys))]


def summarize_scores(
    table: pd.DataFrame, *, metrics: Sequence[str] | None = None, rank_by: str = "leep"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (backbone, dummy): mean of each metric with a 95 % t confidence interval; and the
    backbones ranked by the mean of ``rank_by``, within comparable rows only.

    Rankings compare only rows of one dummy mode for a metric of a label distribution (LEEP,
    NCE: its label space is the mode's), and every backbone at once for a feature metric,
    whose values do not depend on the dummy mode (``dummy`` :data:`ANY_DUMMY`).

    Returns
    -------
    tuple[pandas.DataFrame, pandas.DataFrame]
        ``(summary, ranking)``. ``summary``: one row per (backbone, dummy, metric) with
        ``mean``, ``ci_low``,
        ``ci_high``, ``episodes`` and ``note`` (why a mean is missing). ``ranking``: per dummy
        mode, one row per backbone, best first, with ``rank`` and the mean and CI of
        ``rank_by`` (higher is better for every registry metric but those declared
        lower-is-better, whose order is reversed).
    """
    from scipy import stats

    from metaleep.metrics.registry import get_metric

    metrics = _metric_columns(table, metrics)
    if rank_by not in metrics:
        raise ValueError(
            f"`rank_by` must be one of the scored metrics ({', '.join(metrics)}); got {rank_by!r}."
        )
    reasons = table.attrs.get("no_dummy") or {}

    def describe(values: np.ndarray) -> dict[str, Any]:
        values = values[np.isfinite(values)]
        mean = float(values.mean()) if values.size else float("nan")
        if values.size > 1 and values.std() > 0:
            low, high = stats.t.interval(0.95, values.size - 1, loc=mean, scale=stats.sem(values))
        else:
            low = high = mean
        return {"mean": mean, "ci_low": float(low), "ci_high": float(high), "episodes": values.size}

    rows = []
    for (backbone, dummy), group in table.groupby(["backbone", "dummy"], sort=True):
        for metric in metrics:
            facts = describe(group[metric].to_numpy(dtype=np.float64))
            note = ""
            if not facts["episodes"]:
                note = str(reasons.get(backbone, "")) or "no finite value"
            rows.append(
                {"backbone": backbone, "dummy": dummy, "metric": metric, **facts, "note": note}
            )
    summary = pd.DataFrame(rows)
    higher = get_metric(rank_by).higher_is_better if rank_by in _registry() else True
    parts = []
    for dummy, group in _comparable(table, rank_by):
        ranked = pd.DataFrame(
            [
                {"dummy": dummy, "backbone": backbone, **describe(g[rank_by].to_numpy(float))}
                for backbone, g in group.groupby("backbone", sort=True)
            ]
        )
        ranked = ranked[ranked["episodes"] > 0].sort_values(
            ["mean", "backbone"], ascending=[not higher, True], ignore_index=True
        )
        ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
        parts.append(ranked)
    columns = ["rank", "dummy", "backbone", "mean", "ci_low", "ci_high", "episodes"]
    ranking = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return summary, ranking[columns]


def _registry() -> set[str]:
    from metaleep.metrics.registry import METRICS

    return set(METRICS)


def rank_backbones(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    target: str = "accuracy",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each backbone's mean metric beside its mean accuracy, and how well the metric ranks the
    backbones: the checkpoint-selection question, to the end.

    For every adaptation, every metric and every group of comparable rows (one dummy mode for
    LEEP and NCE, all rows for feature metrics; see :func:`summarize_scores`), each backbone's
    mean metric and mean ``target`` over the same rows (those where the metric is finite) are
    put side by side, and the rank correlation of the means across backbones is computed with
    :func:`scipy.stats.spearmanr` and :func:`scipy.stats.kendalltau` (tau-b). A metric declared
    lower-is-better is negated first, so a positive correlation always means "ranks the
    backbones as accuracy does".

    Parameters
    ----------
    table:
        A study table (``results.csv``), or scores with an accuracy column
        (:func:`attach_accuracy`).
    metrics:
        Metric columns (default: every metric column).
    target:
        The accuracy column.

    Returns
    -------
    tuple[pandas.DataFrame, pandas.DataFrame]
        ``(per_backbone, agreement)``. ``per_backbone``: ``adaptation``, ``dummy``, ``metric``,
        ``backbone``, ``episodes``, ``metric_mean``, ``accuracy_mean``, ``metric_rank``,
        ``accuracy_rank`` (1: best; ties share the mean rank). ``agreement``: ``adaptation``,
        ``dummy``, ``metric``, ``backbones``, ``spearman``, ``spearman_p``, ``kendall``,
        ``kendall_p`` and ``note`` (why a correlation is NaN: fewer than 3 backbones, or constant
        means).

    Examples
    --------
    >>> t = pd.DataFrame({"episode": [0, 1] * 3, "backbone": list("aabbcc"), "dummy": "source",
    ...                   "adaptation": "prototype", "logme": [1, 2, 3, 4, 5, 6],
    ...                   "accuracy": [0.5, 0.5, 0.6, 0.6, 0.9, 0.9]})
    >>> per_backbone, agreement = rank_backbones(t)
    >>> per_backbone[["backbone", "metric_mean", "accuracy_mean", "metric_rank"]]
      backbone  metric_mean  accuracy_mean  metric_rank
    0        c          5.5            0.9          1.0
    1        b          3.5            0.6          2.0
    2        a          1.5            0.5          3.0
    >>> agreement[["dummy", "backbones", "spearman", "kendall"]]
      dummy  backbones  spearman  kendall
    0   any          3       1.0      1.0
    """
    from scipy import stats

    from metaleep.analysis.tables import is_constant
    from metaleep.metrics.registry import higher_is_better

    missing = [c for c in ("backbone", "dummy", target) if c not in table.columns]
    if missing:
        raise ValueError(
            f"`table` must have the columns backbone, dummy and {target} (a study's "
            f"results.csv); got none of {', '.join(missing)}."
        )
    metrics = _metric_columns(table, metrics)
    orientation = higher_is_better(metrics)
    data = table if "adaptation" in table.columns else table.assign(adaptation="")
    per_backbone, agreement = [], []
    for adaptation, rows in data.groupby("adaptation", sort=True):
        for metric in metrics:
            sign = 1.0 if orientation[metric] else -1.0
            for dummy, group in _comparable(rows, metric):
                finite = group[np.isfinite(group[metric].to_numpy(float))]
                means = finite.groupby("backbone", sort=True).agg(
                    episodes=(metric, "size"),
                    metric_mean=(metric, "mean"),
                    accuracy_mean=(target, "mean"),
                )
                if means.empty:
                    continue
                means["metric_rank"] = (sign * means["metric_mean"]).rank(ascending=False)
                means["accuracy_rank"] = means["accuracy_mean"].rank(ascending=False)
                means = means.reset_index().sort_values(["metric_rank", "backbone"])
                per_backbone.append(means.assign(adaptation=adaptation, dummy=dummy, metric=metric))
                x = sign * means["metric_mean"].to_numpy(float)
                y = means["accuracy_mean"].to_numpy(float)
                result = {"spearman": np.nan, "spearman_p": np.nan, "kendall": np.nan}
                result["kendall_p"] = np.nan
                note = ""
                if len(means) < 3:
                    note = "fewer than 3 backbones"
                elif is_constant(x) or is_constant(y):  # up to rounding (H-score: C - 1)
                    note = "constant " + ("metric" if is_constant(x) else "accuracy") + " means"
                else:
                    rho = stats.spearmanr(x, y)
                    tau = stats.kendalltau(x, y)
                    result = {
                        "spearman": float(rho.statistic),
                        "spearman_p": float(rho.pvalue),
                        "kendall": float(tau.statistic),
                        "kendall_p": float(tau.pvalue),
                    }
                agreement.append(
                    {
                        "adaptation": adaptation,
                        "dummy": dummy,
                        "metric": metric,
                        "backbones": len(means),
                        **result,
                        "note": note,
                    }
                )
    columns = [
        "adaptation",
        "dummy",
        "metric",
        "backbone",
        "episodes",
        "metric_mean",
        "accuracy_mean",
        "metric_rank",
        "accuracy_rank",
    ]
    first = pd.concat(per_backbone, ignore_index=True)[columns] if per_backbone else None
    second = pd.DataFrame(
        agreement,
        columns=[
            "adaptation",
            "dummy",
            "metric",
            "backbones",
            "spearman",
            "spearman_p",
            "kendall",
            "kendall_p",
            "note",
        ],
    )
    return (first if first is not None else pd.DataFrame(columns=columns)), second


def attach_accuracy(scores: pd.DataFrame, study: pd.DataFrame) -> pd.DataFrame:
    """``scores`` (from :func:`score`) with the accuracy a finished study measured on the same
    episodes: one row per (episode, backbone, dummy, adaptation), for :func:`rank_backbones`.

    Raises
    ------
    ValueError
        When the study has no rows of the scores' suite, episodes and backbones.
    """
    keys = ["suite", "episode", "backbone"]
    missing = [c for c in [*keys, "adaptation", "accuracy"] if c not in study.columns]
    if missing:
        raise ValueError(
            f"`study` must be a study's results table; got one without {', '.join(missing)}."
        )
    accuracy = study[[*keys, "adaptation", "accuracy"]].drop_duplicates([*keys, "adaptation"])
    merged = scores.merge(accuracy, on=keys, how="inner")
    if merged.empty:
        suites = ", ".join(sorted(map(str, set(scores["suite"]))))
        names = ", ".join(sorted(map(str, set(scores["backbone"]))))
        raise ValueError(
            f"`study` must hold the scored episodes (suite {suites}, backbones {names}); got "
            "none of them: score the study's own suite (--suite STUDY/suite.csv) and backbones."
        )
    return merged
