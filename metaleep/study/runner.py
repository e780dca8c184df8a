"""The study runner: every episode of a suite scored and adapted, once, into a tidy table.

For each backbone the runner computes features and dummy-label logits once for every distinct
image of the suite (:mod:`metaleep.study.outputs`), then works through the episodes in chunks:
the chunk's episodes of one shape are scored with the batched metrics and adapted with the
batched feature-based methods in one call each; whole-network methods (MAML, fine-tuning) get
them in one call too, and adapt episode by episode (MAML's lean inner loop on one copy of the
network on a CPU, ``vmap`` over episodes on a GPU; fine-tuning a fresh copy per episode).
Each finished chunk is stored at once (:mod:`metaleep.study.store`), so a rerun in the same
directory resumes where the last one stopped, and a rerun with more episodes of the same suite
computes only the new ones.

Only support images reach a metric: the metrics see ``episode.support`` rows and support labels,
never the query set.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from metaleep.backbones.protocol import StudyBackbone
from metaleep.episodes.spec import Episode
from metaleep.study.checks import check_study
from metaleep.study.config import Sampling, StudyConfig
from metaleep.study.outputs import (
    NO_DUMMY,
    BackboneOutputs,
    compute_outputs,
    dummy_modes,
    full_float32,
    no_dummy_reasons,
    parameter_dtype,
    source_prototypes,
)
from metaleep.study.store import STUDY_LAYOUT, ResultStore, StudyInterrupted, StudyLock

if TYPE_CHECKING:
    from metaleep.adapt.common import BatchAdaptationResult
    from metaleep.adapt.registry import AdaptationConfig, AdaptationSpec
    from metaleep.analysis.study import StudyAnalysis
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.manifest import Suite

log = logging.getLogger(__name__)

TABLE_KEYS = ("episode", "backbone", "dummy", "adaptation")
"""Columns that identify a row of the study table."""


@dataclass(eq=False)
class StudyResult:
    """What :func:`run_study` returns.

    Attributes
    ----------
    table:
        The tidy table: one row per (episode, backbone, dummy, adaptation).
    out_dir:
        The study directory (``study.json``, ``results/``, ``results.csv``, the report).
    correlations:
        Correlations of each metric with accuracy (None when ``analyse=False``).
    report:
        Path of ``report.html`` (None when ``analyse=False``).
    seconds:
        Wall time of this call.
    analysis:
        Everything the report shows (:class:`~metaleep.analysis.study.StudyAnalysis`; None
        when ``analyse=False``): ``analysis.verdict`` holds each group's best metric.
    """

    table: pd.DataFrame
    out_dir: Path
    correlations: pd.DataFrame | None
    report: Path | None
    seconds: float
    analysis: StudyAnalysis | None = None


def _chunks(n: int, size: int) -> dict[int, range]:
    return {c: range(start, min(start + size, n)) for c, start in enumerate(range(0, n, size))}


def planned_rows(
    config: StudyConfig, backbone: StudyBackbone, ways: int
) -> tuple[list[str], list[str]]:
    """The dummy modes and adaptations of ``backbone``'s rows on ``ways``-way episodes (both
    empty when no adaptation applies there; a backbone that offers none of the requested dummy
    modes gets rows of dummy ``none``, :func:`~metaleep.study.outputs.dummy_modes`)."""
    methods = [a for a in config.adaptations if backbone.offers_adaptation(a, ways)]
    return (dummy_modes(backbone, config.dummies, ways), methods) if methods else ([], [])


@functools.cache
def thread_pools() -> ThreadpoolController:
    """The thread pools scoring uses (scipy's BLAS, sklearn's OpenMP, torch's), loaded first.

    threadpoolctl controls only libraries already loaded; one controller, made once, since
    finding them (``threadpool_limits``) takes about 2 ms a call.
    """
    import scipy.linalg  # noqa: F401
    import sklearn.mixture  # noqa: F401

    return ThreadpoolController()


def _episode_seed(seed: int, episode: int) -> int:
    """A per-episode seed for stochastic metrics (N-LEEP), independent of chunking."""
    return int(np.random.SeedSequence(seed, spawn_key=(episode,)).generate_state(1)[0])


def score_episodes(
    metrics: Sequence[str],
    outputs: BackboneOutputs,
    episodes: Sequence[Episode],
    modes: Sequence[str],
    seed: int,
) -> tuple[dict[str, dict[str, np.ndarray]], float]:
    """Metric values per dummy mode for episodes of one shape: ``{mode: {metric: (E,)}}``.

    Feature metrics are computed once and shared by every mode; metrics of a label
    distribution (LEEP, NCE) are NaN in mode ``none`` (:data:`~metaleep.study.outputs.NO_DUMMY`).
    """
    from metaleep.metrics.registry import get_metric

    start = time.perf_counter()
    support = np.stack([ep.support for ep in episodes])
    labels = np.stack([ep.support_labels for ep in episodes])
    features = outputs.gather_features(support)
    by_feature: dict[str, np.ndarray] = {}
    # Stochastic metrics (N-LEEP) fit episode i with its own seed (seed, i), in one batched
    # call: the values do not depend on chunking.
    seeds = [_episode_seed(seed, ep.index) for ep in episodes]
    for name in metrics:
        spec = get_metric(name)
        if spec.input_kind != "features":
            continue
        options = spec.select_options({"seed": seeds})
        by_feature[name] = np.asarray(
            spec.score_batch(features, labels, **options), dtype=np.float64
        )
    # torch ops for LEEP and NCE, never their fused CPU kernel, which the metrics pick by input
    # size: it agrees with torch to ~1e-15 but not bit for bit, and the size of a call depends
    # on the chunk size. (On study-sized calls the kernel would save milliseconds, and loading
    # numba costs 0.4 s and 130 MB.)
    options = {"from_logits": True, "kernel": False}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for mode in modes:
        values = dict(by_feature)
        if mode == NO_DUMMY:
            for name in metrics:
                if get_metric(name).input_kind == "probs":
                    values[name] = np.full(len(episodes), np.nan)
            scores[mode] = values
            continue
        logits = outputs.gather_logits(mode, support)
        for name in metrics:
            spec = get_metric(name)
            if spec.input_kind == "probs":
                values[name] = np.asarray(
                    spec.score_batch(logits, labels, **spec.select_options(options)),
                    dtype=np.float64,
                )
        scores[mode] = values
    return scores, time.perf_counter() - start


_MODEL_BATCH_BYTES = 256 << 20
"""Images of at most this size go into one whole-network adaptation call (all of a 200-episode
chunk of 28x28 glyphs; 30 episodes of 100 84x84 RGB images)."""


ADAPTED_COLUMNS = ("accuracy", "loss", "support_loss", "start_logit_std")
"""The table's columns that one adaptation fills per episode."""


@dataclass(frozen=True)
class AdaptedEpisodes:
    """One adaptation's outcome on a group of E episodes of one shape.

    Attributes
    ----------
    accuracy, loss, support_loss, start_logit_std:
        float64 arrays (E,): the table's columns (:data:`ADAPTED_COLUMNS`; see
        :class:`~metaleep.adapt.common.AdaptationResult`).
    seconds:
        Wall time of adapting the E episodes.
    """

    accuracy: np.ndarray
    loss: np.ndarray
    support_loss: np.ndarray
    start_logit_std: np.ndarray
    seconds: float

    @classmethod
    def from_result(cls, result: BatchAdaptationResult, seconds: float) -> AdaptedEpisodes:
        """The columns of ``result`` as float64 arrays."""
        arrays = {c: np.asarray(getattr(result, c), dtype=np.float64) for c in ADAPTED_COLUMNS}
        return cls(**arrays, seconds=seconds)


def _adapt_episodes(
    adaptations: Sequence[str],
    outputs: BackboneOutputs,
    backbone: StudyBackbone,
    dataset: ImageDataset,
    episodes: Sequence[Episode],
    device: str,
) -> dict[str, AdaptedEpisodes]:
    """Every adaptation of ``adaptations`` on ``episodes`` (all of one shape), by name."""
    from metaleep.adapt.registry import backbone_config, get_adaptation

    out: dict[str, AdaptedEpisodes] = {}
    for name in adaptations:
        spec = get_adaptation(name)
        config = backbone_config(name, backbone.algorithm, backbone.inner)
        start = time.perf_counter()
        adapt = _adapt_model if spec.needs_model else _adapt_features
        result = adapt(spec, config, outputs, backbone, dataset, episodes, device)
        out[name] = AdaptedEpisodes.from_result(result, time.perf_counter() - start)
    return out


def _labels(episodes: Sequence[Episode], device: str) -> tuple[Any, Any]:
    import torch

    support = np.stack([ep.support_labels for ep in episodes])
    query = np.stack([ep.query_labels for ep in episodes])
    return torch.as_tensor(support, device=device), torch.as_tensor(query, device=device)


def _adapt_features(
    spec: AdaptationSpec,
    config: AdaptationConfig,
    outputs: BackboneOutputs,
    backbone: StudyBackbone,
    dataset: ImageDataset,
    episodes: Sequence[Episode],
    device: str,
) -> BatchAdaptationResult:
    """A feature-based adaptation of all ``episodes`` in one call, on the cached features."""
    import torch

    from metaleep.adapt.head import head_parameters

    ys, yq = _labels(episodes, device)
    sf = torch.as_tensor(outputs.gather_features(np.stack([ep.support for ep in episodes])))
    qf = torch.as_tensor(outputs.gather_features(np.stack([ep.query for ep in episodes])))
    head = None
    if spec.needs_head:
        weight, bias = head_parameters(backbone.model)
        head = (weight.detach().double().to(device), bias.detach().double().to(device))
    return spec.run_batch(
        sf.to(device), ys, qf.to(device), yq, ways=episodes[0].ways, config=config, head=head
    )


def _adapt_model(
    spec: AdaptationSpec,
    config: AdaptationConfig,
    outputs: BackboneOutputs,
    backbone: StudyBackbone,
    dataset: ImageDataset,
    episodes: Sequence[Episode],
    device: str,
) -> BatchAdaptationResult:
    """A whole-network adaptation of ``episodes``: many per call, one copy of the network for
    them (MAML: the lean inner loop on the CPU, vmap over episodes on a GPU), as many as fit in
    the image budget. The network starts from :meth:`StudyBackbone.with_head`: its own head
    when it fits the episodes, else a fresh zero one."""
    from metaleep.adapt.common import BatchAdaptationResult

    ways = episodes[0].ways
    model = backbone.with_head(ways, dataset).model.to(device)
    dtype = parameter_dtype(model)
    support = np.stack([ep.support for ep in episodes])
    query = np.stack([ep.query for ep in episodes])
    ys, yq = _labels(episodes, device)
    per_episode = (support.shape[1] + query.shape[1]) * int(np.prod(dataset.image_shape))
    per_call = max(1, _MODEL_BATCH_BYTES // (per_episode * dtype.itemsize))
    parts = []
    for lo in range(0, len(episodes), per_call):
        part = slice(lo, lo + per_call)
        s_idx, q_idx = support[part], query[part]
        images = dataset.batch(np.concatenate([s_idx.reshape(-1), q_idx.reshape(-1)]))
        images = images.to(device, dtype)
        sx = images[: s_idx.size].view(*s_idx.shape, *images.shape[1:])
        qx = images[s_idx.size :].view(*q_idx.shape, *images.shape[1:])
        parts.append(spec.run_batch(model, sx, ys[part], qx, yq[part], ways=ways, config=config))
    return BatchAdaptationResult.concat(parts)


def evaluate_chunk(
    config: StudyConfig,
    backbone: StudyBackbone,
    outputs: BackboneOutputs,
    dataset: ImageDataset,
    episodes: Sequence[Episode],
    *,
    suite_name: str,
    alphabets: Callable[[Episode], list[str]],
    device: str = "cpu",
) -> pd.DataFrame:
    """Rows of the study table for ``episodes`` and one backbone."""
    frames: list[pd.DataFrame] = []
    shapes: dict[tuple[int, int, int], list[Episode]] = {}
    for ep in episodes:
        shapes.setdefault((ep.ways, ep.shots, ep.queries), []).append(ep)
    for (ways, _, _), group in shapes.items():
        modes, methods = planned_rows(config, backbone, ways)
        if not methods:
            continue
        # Episode-sized matrices (N-LEEP's mixture, LogME's SVD) ran up to 170x slower with
        # 2 OpenBLAS threads than with 1 on a 2-core VM: hold BLAS and OpenMP to one thread.
        # threadpoolctl limits only libraries already loaded, so load them first.
        with thread_pools().limit(limits=1):
            scores, metric_seconds = score_episodes(
                config.metrics, outputs, group, modes, config.seed
            )
        adapted = _adapt_episodes(methods, outputs, backbone, backbone.view(dataset), group, device)
        frames.append(
            _group_rows(
                group,
                suite_name=suite_name,
                backbone=backbone.name,
                alphabets=alphabets,
                scores=scores,
                metric_seconds=metric_seconds,
                adapted=adapted,
                metrics=config.metrics,
            )
        )
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _group_rows(
    group: Sequence[Episode],
    *,
    suite_name: str,
    backbone: str,
    alphabets: Callable[[Episode], list[str]],
    scores: dict[str, dict[str, np.ndarray]],
    metric_seconds: float,
    adapted: dict[str, AdaptedEpisodes],
    metrics: Sequence[str],
) -> pd.DataFrame:
    """The table rows of one group of episodes of one shape: episode-major, then dummy mode,
    then adaptation (E x M x A rows), built column by column."""
    modes, methods = list(scores), list(adapted)
    n_ep, n_modes, n_methods = len(group), len(modes), len(methods)
    per_episode = n_modes * n_methods
    names = [alphabets(ep) for ep in group]
    first = group[0]

    def by_episode(values: Sequence[Any] | np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(values), per_episode)

    def by_episode_and_mode(table: np.ndarray) -> np.ndarray:  # (E, M) -> rows
        return np.repeat(table.reshape(-1), n_methods)

    def by_episode_and_method(table: np.ndarray) -> np.ndarray:  # (E, A) -> rows
        return np.broadcast_to(table[:, None, :], (n_ep, n_modes, n_methods)).reshape(-1)

    n_rows = n_ep * per_episode
    columns: dict[str, Any] = {
        "suite": np.full(n_rows, suite_name, dtype=object),
        "episode": by_episode([ep.index for ep in group]).astype(np.int64),
        "ways": np.full(n_rows, first.ways, dtype=np.int64),
        "shots": np.full(n_rows, first.shots, dtype=np.int64),
        "queries": np.full(n_rows, first.queries, dtype=np.int64),
        "alphabets": by_episode(np.array([";".join(a) for a in names], dtype=object)),
        "within_alphabet": by_episode([len(a) == 1 for a in names]).astype(bool),
        "backbone": np.full(n_rows, backbone, dtype=object),
        "dummy": np.tile(np.repeat(np.array(modes, dtype=object), n_methods), n_ep),
        "adaptation": np.tile(np.array(methods, dtype=object), n_ep * n_modes),
    }
    for name in metrics:
        table = np.stack([np.asarray(scores[m][name], dtype=np.float64) for m in modes], 1)
        columns[name] = by_episode_and_mode(table)
    for key in ADAPTED_COLUMNS:
        table = np.stack([getattr(adapted[a], key) for a in methods], 1)
        columns[key] = by_episode_and_method(table)
    columns["seconds_metrics"] = np.full(n_rows, metric_seconds / n_ep)
    seconds = np.array([adapted[a].seconds / n_ep for a in methods])
    columns["seconds_adapt"] = np.tile(seconds, n_ep * n_modes)
    return pd.DataFrame(columns)


class Executor(Protocol):
    """Evaluates chunks of a study somewhere and yields ``(chunk, rows)`` as each finishes."""

    def map_chunks(
        self, context: ChunkContext, chunks: Sequence[int]
    ) -> Iterator[tuple[int, pd.DataFrame]]: ...


@dataclass(eq=False)
class ChunkContext:
    """Everything needed to evaluate any chunk of a study (picklable for remote workers).

    ``outputs`` holds each backbone's features and dummy-label logits for every image of the
    study's episodes, computed once, in fixed batches over the sorted image indices, so that
    a chunk's rows do not depend on which other chunks are evaluated, where, or in what order.
    ``parts`` gives each chunk number the positions (in ``episodes``) of its episodes; ``None``:
    consecutive runs of ``config.chunk_size``.
    """

    config: StudyConfig
    dataset: ImageDataset
    suite_name: str
    episodes: Sequence[Episode]
    backbones: Sequence[StudyBackbone]
    outputs: dict[str, BackboneOutputs]
    device: str = "cpu"
    parts: Mapping[int, Sequence[int]] | None = None

    @property
    def chunks(self) -> Mapping[int, Sequence[int]]:
        """Episode positions of each chunk, by chunk number."""
        if self.parts is not None:
            return self.parts
        return _chunks(len(self.episodes), self.config.chunk_size)

    def evaluate(self, chunk: int) -> pd.DataFrame:
        """The table rows of chunk ``chunk`` (every backbone)."""
        part = [self.episodes[i] for i in self.chunks[chunk]]
        alphabets = _alphabet_lookup(self.dataset)
        with full_float32(self.device):
            frames = [
                evaluate_chunk(
                    self.config,
                    backbone,
                    self.outputs[backbone.name],
                    self.dataset,
                    part,
                    suite_name=self.suite_name,
                    alphabets=alphabets,
                    device=self.device,
                )
                for backbone in self.backbones
            ]
        return pd.concat(frames, ignore_index=True)


class InProcessExecutor:
    """The default executor: chunks one after another, in this process."""

    def map_chunks(
        self, context: ChunkContext, chunks: Sequence[int]
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(chunk, rows)`` for each of ``chunks``, in order."""
        for c in chunks:
            yield c, context.evaluate(c)


def prepare_chunks(
    config: StudyConfig,
    dataset: ImageDataset,
    suite_name: str,
    episodes: Sequence[Episode],
    backbones: Sequence[StudyBackbone],
    device: str = "cpu",
    *,
    support_only: bool = False,
    parts: Mapping[int, Sequence[int]] | None = None,
) -> ChunkContext:
    """Compute every backbone's outputs once over all images of ``episodes`` (only their
    support images with ``support_only``: what scoring without adapting needs); ``parts``: the
    chunks (see :class:`ChunkContext`)."""
    # Every reference, repeats included: compute_outputs runs each distinct image once and
    # records (and logs) how many references that serves.
    images = np.concatenate(
        [e.support if support_only else np.concatenate([e.support, e.query]) for e in episodes]
    )
    outputs = {}
    with full_float32(device):
        for backbone in backbones:
            modes = tuple(
                m for m in config.dummies if any(backbone.offers_dummy(m, e.ways) for e in episodes)
            )
            prototypes, scale = None, 1.0
            if "prototypes" in modes and backbone.source_data is not None:
                # The source classes' prototypes, on the data the backbone was trained on
                # (cross-domain: not the target data), brought to the backbone's input.
                prototypes, scale = source_prototypes(
                    backbone.model.to(device).eval(),
                    backbone.view(backbone.source_data),
                    backbone.source_classes,
                    device=device,
                )
            outputs[backbone.name] = compute_outputs(
                backbone.model,
                backbone.view(dataset),
                images,
                modes=modes,
                prototypes=prototypes,
                temperature=config.temperature or scale,
                device=device,
            )
    return ChunkContext(config, dataset, suite_name, episodes, backbones, outputs, device, parts)


def run_study(
    config: StudyConfig | None = None,
    *,
    out_dir: str | Path = "runs/study",
    dataset: ImageDataset | None = None,
    suite: Suite | None = None,
    backbones: Sequence[Any] | None = None,
    data: str | None = None,
    ways: int | None = None,
    shots: int | None = None,
    queries: int | None = None,
    min_images: int | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    image_size: int | tuple[int, int] | str | None = None,
    source_data: Mapping[str, Any] | None = None,
    analyse: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    n_boot: int = 1000,
    executor: Executor | None = None,
) -> StudyResult:
    """Run (or resume) a meta-transfer study and return its table, correlations and report.

    Parameters
    ----------
    config:
        What to evaluate (default: :class:`StudyConfig` ``()``, the main job's configuration).
    out_dir:
        Study directory; finished chunks found there (of the same configuration) are reused.
        One process at a time: the directory is locked for the whole call (a second process
        gets a :class:`~metaleep.study.store.StoreError` naming the first).
    dataset, suite:
        Supply these to bypass loading by name (tests, notebooks, data in memory).
    backbones:
        The backbones, instead of ``config.backbones``: specs as ``--backbones`` takes them
        (``"maml"``, checkpoint paths, ``FILE.py:CALLABLE``, ``NAME=SPEC``) and objects
        (``StudyBackbone``, trained ``Backbone``, ``nn.Module``), mixed in one list.
    data, episodes, seed, image_size:
        The options of ``metaleep run`` (they replace the configuration's): the target data
        ``NAME[:ROOT]``, the number of episodes (without a suite: how many to sample, 600 by
        default), the seed, and the size to load the data at.
    ways, shots, queries, min_images:
        With data and no suite: the episodes sampled into ``OUT/suite.csv`` (5-way 5-shot by
        default; ``queries`` None fits the data, at most 15; ``min_images`` leaves smaller
        classes out), by the function ``metaleep run --data`` uses.
    source_data:
        ``{backbone name: --data spec or ImageDataset}``: the data each was trained on (every
        class a source class), for ``prototypes`` dummy labels.
    analyse:
        Compute correlations and write the report.
    progress:
        Show progress bars.
    overwrite:
        Discard results of a different configuration found in ``out_dir``.
    n_boot:
        Bootstrap resamples for the confidence intervals.
    executor:
        Where chunks are evaluated: ``None`` evaluates them in this process, in order. Any
        object with ``map_chunks(context, chunks)`` yielding ``(chunk, rows)`` as chunks finish
        works (e.g. a Ray executor); results are stored as they arrive.

    Raises
    ------
    StudyInterrupted
        (a ``KeyboardInterrupt``) when interrupted while computing chunks; it says how many
        are stored.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"`n_boot` must be a positive integer; got {n_boot!r}.")
    from metaleep._optional import progress_bar as tqdm
    from metaleep.study.loading import load_study_inputs

    config, sampling = study_options(
        config,
        data=data,
        episodes=episodes,
        seed=seed,
        image_size=image_size,
        ways=ways,
        shots=shots,
        queries=queries,
        min_images=min_images,
    )
    device = config.resolved_device()  # a GPU asked for and missing: said before any loading
    with StudyLock(out_dir, STUDY_LAYOUT) as lock:
        started = time.perf_counter()
        inputs = load_study_inputs(
            config,
            dataset=dataset,
            suite=suite,
            backbones=backbones,
            source_data=source_data,
            sampling=sampling,
            out_dir=out_dir,
            progress=progress,
            overwrite=overwrite,
            lock=lock,
        )
        config, dataset, suite = inputs.config, inputs.dataset, inputs.suite
        chosen = inputs.episodes
        check_study(config, dataset, chosen, inputs.backbones)
        backbones = [b.on(device) for b in inputs.backbones]
        identity = study_identity(config, dataset, suite, backbones, inputs.facts)
        store = ResultStore(
            out_dir,
            identity,
            overwrite=overwrite,
            episodes=suite.episode_digests(),
            keys=TABLE_KEYS,
            rows=expected_rows(config, backbones, suite),
            lock=lock,
        )
        selected = [ep.index for ep in chosen]
        before = len({store.stored[e] for e in selected if e in store.stored})
        plan = store.plan(selected, config.chunk_size)
        todo = sum(len(part) for part in plan.values())
        if todo < len(selected):
            log.info(
                "resuming: %d of %d episodes already stored in %s",
                len(selected) - todo,
                len(selected),
                out_dir,
            )
        if plan:
            position = {e: i for i, e in enumerate(selected)}
            parts = {c: [position[e] for e in part] for c, part in plan.items()}
            context = prepare_chunks(
                config, dataset, suite.name, chosen, backbones, device, parts=parts
            )
            run = (executor or InProcessExecutor()).map_chunks
            bar = tqdm(
                total=len(selected),
                initial=len(selected) - todo,
                desc="episodes",
                disable=not progress,
            )
            written = 0
            try:
                for c, rows in run(context, list(plan)):
                    store.write_chunk(c, rows)
                    written += 1
                    bar.update(len(plan[c]))
            except KeyboardInterrupt as interrupt:
                raise StudyInterrupted(before + written, before + len(plan)) from interrupt
            bar.close()
        table = store.assemble(TABLE_KEYS, episodes=selected)
        analysis = report = None
        if analyse and not table.empty:
            from metaleep.study.summary import analyse_and_report

            # what study.json holds, and how many episodes ran and how they were sampled
            shown = {**identity, **inputs.facts, "episodes": len(selected)}
            analysis, written_report = store.outputs.publish(
                lambda folder: analyse_and_report(
                    table, folder, shown, metrics=config.metrics, n_boot=n_boot, seed=config.seed
                )
            )
            report = store.root / written_report.name
        return StudyResult(
            table=table,
            out_dir=store.root,
            correlations=None if analysis is None else analysis.correlations,
            report=report,
            seconds=time.perf_counter() - started,
            analysis=analysis,
        )


def study_options(
    config: StudyConfig | None,
    *,
    data: str | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    image_size: int | tuple[int, int] | str | None = None,
    ways: int | None = None,
    shots: int | None = None,
    queries: int | None = None,
    min_images: int | None = None,
) -> tuple[StudyConfig, Sampling]:
    """``config`` (default ``StudyConfig()``) with the given options in place of its own, and
    the sampling of a suite from the data: what ``run_study``'s and ``score``'s keywords mean.

    Examples
    --------
    >>> config, sampling = study_options(None, data="digits", ways=3, shots=1)
    >>> config.data, config.suite, (sampling.ways, sampling.shots, sampling.queries)
    ('digits', None, (3, 1, None))
    """
    config = config or StudyConfig()
    size = None
    if image_size is not None:
        from metaleep.data.folder import check_image_size, size_text

        size = size_text(check_image_size(image_size))
    given: dict[str, Any] = {"data": data, "episodes": episodes, "seed": seed, "image_size": size}
    config = replace(config, **{k: v for k, v in given.items() if v is not None})
    sampling = Sampling(
        ways=5 if ways is None else ways,
        shots=5 if shots is None else shots,
        queries=queries,
        min_images=min_images,
    )
    return config, sampling


def study_identity(
    config: StudyConfig,
    dataset: ImageDataset,
    suite: Suite,
    backbones: Sequence[StudyBackbone],
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a study's results are a function of: its ``study.json`` and the hash in each chunk.

    The configuration less how many episodes run, the chunk size and how backbones may be
    loaded (none of which changes a row); the data set's fingerprint; the suite's recipe
    (:meth:`~metaleep.episodes.manifest.Suite.recipe`; each chunk is bound to its episodes'
    content as well); the backbones that run, their weights' fingerprints, what they are and
    how each adaptation runs on them; how the data was loaded and a suite sampled from it
    (``facts``, less the number of episodes, so that a study extends); and which backbones have
    rows of dummy ``none``, and why.
    """
    from metaleep.adapt.registry import adaptation_settings

    settings = config.to_dict()
    for key in ("episodes", "chunk_size", "trust_code"):
        settings.pop(key)
    identity = {
        **settings,
        # The backbones that run (a caller's own, not the configuration's default names).
        "backbones": [b.name for b in backbones],
        "dataset": dataset.fingerprint,
        "suite_recipe": suite.recipe(),
        "backbone_fingerprints": {b.name: b.fingerprint for b in backbones},
        "backbone_info": {b.name: b.describe(dataset) for b in backbones},
        "adaptation_settings": adaptation_settings(config.adaptations, backbones),
        **_lasting(facts or {}),
    }
    reasons = no_dummy_reasons(backbones, config.dummies, [e.ways for e in suite.episodes])
    if reasons:  # backbones with rows of dummy none, and why
        identity["no_dummy"] = reasons
    return identity


def _lasting(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a study's inputs that do not change when it extends to more episodes."""
    out = dict(facts)
    sampling = out.get("sampling")
    if isinstance(sampling, Mapping):
        out["sampling"] = {k: v for k, v in sampling.items() if k not in ("episodes", "command")}
    return out


def expected_rows(
    config: StudyConfig, backbones: Sequence[StudyBackbone], suite: Suite
) -> Callable[[int], frozenset[tuple[str, str, str]]]:
    """``rows(episode)``: the (backbone, dummy, adaptation) keys of every row the study writes
    for an episode of ``suite`` (what :func:`evaluate_chunk` writes), to check stored chunks
    for completeness."""
    ways_of = {ep.index: ep.ways for ep in suite.episodes}
    by_ways: dict[int, frozenset[tuple[str, str, str]]] = {}

    def rows(episode: int) -> frozenset[tuple[str, str, str]]:
        ways = ways_of[episode]
        if ways not in by_ways:
            keys = set()
            for backbone in backbones:
                modes, methods = planned_rows(config, backbone, ways)
                keys |= {(backbone.name, m, a) for m in modes for a in methods}
            by_ways[ways] = frozenset(keys)
        return by_ways[ways]

    return rows


def _alphabet_lookup(dataset: ImageDataset) -> Callable[[Episode], list[str]]:
    if "alphabet" not in dataset.classes.columns:
        return lambda ep: []
    names = dataset.classes["alphabet"].astype(str).to_numpy()
    return lambda ep: sorted({str(names[c]) for c in ep.classes})
