"""``metaleep run``: the meta-transfer study from the command line (the main job)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from metaleep.data.spec import DATA_HELP
from metaleep.study.checks import check_adaptations
from metaleep.study.config import DEFAULT_METRICS, StudyConfig
from metaleep.study.out_dir import StoreError, StudyLock
from metaleep.study.signals import exit_interrupted, terminate_as_interrupt
from metaleep.study.store import STUDY_LAYOUT, SUITE_FILE

if TYPE_CHECKING:
    from metaleep.episodes.manifest import Suite
    from metaleep.study.runner import Executor

_DEFAULT_OUT = Path("runs/default")


_FLAGS = {
    "suite": "--suite",
    "backbones": "--backbones",
    "dummies": "--dummies",
    "adaptations": "--adaptations",
    "metrics": "--metrics",
    "episodes": "--episodes",
    "chunk_size": "--chunk-size",
    "temperature": "--temperature",
    "seed": "--seed",
    "device": "--device",
    "n_boot": "--n-boot",
    "trust_code": "--trust-factory",
    "out_dir": "--out",
}
"""Names of the configuration's fields (as library messages give them) -> their CLI options."""


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _in_flags(message: str) -> str:
    """A library message with `field` names replaced by the options that set them.

    >>> _in_flags("`n_boot` must be a positive integer; got -1.")
    '`--n-boot` must be a positive integer; got -1.'
    """
    for name, flag in _FLAGS.items():
        message = message.replace(f"`{name}`", f"`{flag}`")
    return message


def _check_options(
    suite: str | None,
    data: str | None,
    backbones: tuple[str, ...],
    threads: int,
    n_boot: int = 1,
) -> None:
    """The options the configuration does not check, checked before anything is loaded."""
    from metaleep.episodes.suites import STANDARD_SUITES
    from metaleep.study.loading import check_specs

    if suite is not None and suite not in STANDARD_SUITES and not Path(suite).is_file():
        raise ValueError(
            f"`--suite` must be a standard suite ({', '.join(STANDARD_SUITES)}; see "
            f"`metaleep episodes list`) or an existing manifest file; got {suite!r}."
        )
    if data is not None:
        from metaleep.data.spec import parse_data

        parse_data(data)
    check_specs(backbones)
    if threads < 0:
        raise ValueError(f"`--threads` must be >= 0 (0: torch's default); got {threads!r}.")
    if n_boot < 1:
        raise ValueError(f"`--n-boot` must be a positive integer; got {n_boot!r}.")


def _executor(kind: str, address: str, workers: int) -> Executor | None:
    """The chunk executor that ``--executor``, ``--ray-address`` and ``--workers`` ask for."""
    if kind not in ("local", "ray"):
        raise ValueError(f"`--executor` must be local or ray; got {kind!r}.")
    if workers < 0:
        raise ValueError(f"`--workers` must be >= 0; got {workers!r}.")
    if kind == "local":
        if address or workers:
            raise ValueError(
                "`--ray-address` and `--workers` must be used with --executor ray; got "
                f"--executor local with {'--ray-address' if address else '--workers'}."
            )
        return None
    from metaleep.study.ray_executor import RayExecutor

    return RayExecutor(address or None, num_workers=workers or None)


def _suite_option() -> Any:
    return typer.Option(
        None,
        help=f"Standard suite name (metaleep episodes list) or manifest path (default "
        f"{StudyConfig.suite}, or a suite sampled from --data).",
    )


def _backbones_option(default: str) -> Any:
    return typer.Option(
        default,
        help="Comma-separated backbones, each optionally NAME=SPEC: default backbones (maml, "
        "protonet, supervised; trained on glyphs, cross-domain elsewhere), "
        "checkpoints (metaleep train / metaleep export), or factories FILE.py:CALLABLE / "
        "package.module:CALLABLE, optionally @WEIGHTS.pt.",
    )


def _trust_option() -> Any:
    return typer.Option(
        False,
        "--trust-factory",
        help="Let metaleep export files in --backbones run the factory (Python code) they "
        "record to build their model. Without it such a file is refused unless you name the "
        "factory: FILE.py:CALLABLE@export.pt.",
    )


def _data_option() -> Any:
    return typer.Option(
        None, help=f"Target data NAME[:ROOT]: {DATA_HELP} Default: the suite's data."
    )


def resolve_suite(
    suite: str | None,
    data: str | None,
    *,
    ways: int,
    shots: int,
    queries: int,
    episodes: int,
    seed: int,
    out: Path,
    overwrite: bool = False,
    lock: StudyLock | None = None,
) -> tuple[str, int | None]:
    """The suite a study runs, and how many of its episodes (None: all).

    ``--suite`` names one; else ``--data`` without ``--suite`` samples ``--episodes``
    ``--ways``-way ``--shots``-shot episodes (seed ``--seed``) into ``OUT/suite.csv``, the
    study's own manifest; else the default suite. A ``suite.csv`` already there of the same
    recipe is kept when it is at least as long (episode i depends only on the seed and i) and
    replaced by the longer one otherwise, so a study extends to more episodes; one of another
    recipe or content is replaced only with ``overwrite`` (the study is then recomputed).
    ``lock``: the directory's lock when the caller holds it (else one is taken to write).
    """
    if suite is not None or data is None:
        return suite or StudyConfig.suite, episodes or None
    from metaleep.data.spec import load_data, parse_data
    from metaleep.episodes.manifest import ManifestError, read_manifest, write_manifest
    from metaleep.episodes.spec import EpisodeSpec
    from metaleep.episodes.suites import ALL_CLASSES, SuiteRecipe, build_suite

    parsed = parse_data(data)
    count = episodes or 600
    split, part = ("omniglot", "test") if parsed.name == "glyphs" else (ALL_CLASSES, ALL_CLASSES)
    spec = EpisodeSpec(ways=ways, shots=shots, queries=queries)
    recipe = SuiteRecipe(
        name=f"{parsed.name}-{spec.name}",
        episodes=count,
        spec=spec,
        seed=seed,
        split=split,
        part=part,
        dataset=parsed.text,
        description=f"{spec.name} episodes from {split}/{part} of {parsed.name}, sampled by "
        "metaleep run",
    )
    path = Path(out) / SUITE_FILE
    built = build_suite(recipe, load_data(parsed))
    # The caller's lock stays the caller's (held after this call); else one for the write.
    held_lock = contextlib.nullcontext(lock) if lock is not None else StudyLock(out, STUDY_LAYOUT)
    with held_lock as held:
        if os.path.lexists(path):
            try:
                stored = read_manifest(path)
            except ManifestError:
                if not overwrite:
                    raise
                stored = None
            if stored is not None and _extends(stored, built):
                if len(stored) >= len(built):
                    return str(path), count
            elif stored is not None and not overwrite:
                raise ValueError(
                    f"`--out` {out} holds a suite of other episodes ({path}: "
                    f"{_describe(stored)}; this command samples {_describe(built)}); use "
                    "--overwrite to replace it (its study is then recomputed), another --out, "
                    f"or --suite {path} to run that one."
                )
        assert held.outputs is not None
        held.outputs.record(SUITE_FILE)
        write_manifest(built, path)
    return str(path), count


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


def run(
    suite: str | None = _suite_option(),
    data: str | None = _data_option(),
    backbones: str = _backbones_option(",".join(StudyConfig.backbones)),
    ways: int = typer.Option(5, help="With --data and no --suite: N of the sampled episodes."),
    shots: int = typer.Option(5, help="With --data and no --suite: K of the sampled episodes."),
    queries: int = typer.Option(
        15, help="With --data and no --suite: query images per class of the sampled episodes."
    ),
    dummies: str = typer.Option(
        ",".join(StudyConfig.dummies), help="Dummy-label modes: head, source, prototypes."
    ),
    adaptations: str = typer.Option(
        ",".join(StudyConfig.adaptations),
        help="Adaptation methods: maml, anil, retrain_head, finetune, prototype.",
    ),
    metrics: str = typer.Option(",".join(DEFAULT_METRICS), help="Metrics to compute."),
    episodes: int = typer.Option(
        0,
        help="Evaluate only the first N episodes (0: all); with --data and no --suite, how many "
        "to sample (0: 600).",
    ),
    out: Annotated[Path, typer.Option(help="Study directory (resumable).")] = _DEFAULT_OUT,
    seed: int = typer.Option(StudyConfig.seed, help="Seed of the stochastic parts."),
    temperature: float = typer.Option(
        0.0, help="Temperature of the prototypes dummy labels (0: scale-free default)."
    ),
    chunk_size: int = typer.Option(StudyConfig.chunk_size, help="Episodes per stored chunk."),
    device: str = typer.Option(StudyConfig.device, help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(
        1,
        help="torch intra-op threads (0: torch's default). The study's ops are small: more "
        "threads slowed them down on a 2-core machine.",
    ),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for confidence intervals."),
    overwrite: bool = typer.Option(
        False,
        help="Discard metaleep's results (and their report) of another configuration or suite "
        "found in --out; files metaleep did not write are never touched.",
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
    executor: str = typer.Option(
        "local",
        help="Where chunks are evaluated: local (this process) or ray (Ray workers; needs "
        "pip install metaleep\\[ray]).",
    ),
    ray_address: str = typer.Option(
        "",
        help="With --executor ray: the cluster (auto, ray://host:10001 or host:6379); empty "
        "starts a private local instance.",
    ),
    workers: int = typer.Option(
        0, help="With --executor ray: worker processes (0: one per CPU of the cluster)."
    ),
    trust_factory: bool = _trust_option(),
) -> None:
    """Run (or resume) the meta-transfer study: metrics vs post-adaptation accuracy."""
    from metaleep.report.page import format_correlation_table
    from metaleep.study.runner import run_study

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _check_options(suite, data, _split(backbones), threads, n_boot)
        config = StudyConfig(
            suite=suite or StudyConfig.suite,
            data=data,
            backbones=_split(backbones),
            dummies=_split(dummies),
            adaptations=_split(adaptations),
            metrics=_split(metrics),
            episodes=episodes or None,
            chunk_size=chunk_size,
            temperature=temperature or None,
            seed=seed,
            device=device,
            trust_code=trust_factory,
        )
        config.resolved_device()
        check_adaptations(config.adaptations, flag="--adaptations")
        chunk_executor = _executor(executor, ray_address, workers)
        # Only a valid configuration touches --out: checked, then the suite sampled into it.
        with StudyLock(out, STUDY_LAYOUT) as lock:
            suite_name, first = resolve_suite(
                suite,
                data,
                ways=ways,
                shots=shots,
                queries=queries,
                episodes=episodes,
                seed=seed,
                out=out,
                overwrite=overwrite,
                lock=lock,
            )
        config = replace(config, suite=suite_name, episodes=first)
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        typer.echo(f"metaleep run: {_in_flags(str(error))}", err=True)
        raise typer.Exit(2) from error
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        with terminate_as_interrupt():
            result = run_study(
                config,
                out_dir=out,
                progress=progress,
                overwrite=overwrite,
                n_boot=n_boot,
                executor=chunk_executor,
            )
    except KeyboardInterrupt as error:
        exit_interrupted("run", error)
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        typer.echo(f"metaleep run: {_in_flags(str(error))}", err=True)
        raise typer.Exit(2) from error
    table = result.table
    typer.echo(
        f"\n{table['episode'].nunique()} episodes, {len(table)} rows, "
        f"{result.seconds:.1f} s -> {result.out_dir / 'results.csv'}"
    )
    if result.correlations is not None:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 20):
            shown = format_correlation_table(result.correlations, methods=("pearson",))
            typer.echo("\nPearson r [95 % bootstrap CI] of each metric with query accuracy:")
            typer.echo(shown.to_string(index=False))
    if result.report is not None:
        typer.echo(f"\nreport: {result.report}")
    sys.stdout.flush()


def score(
    backbones: str = _backbones_option(",".join(StudyConfig.backbones)),
    suite: str | None = _suite_option(),
    data: str | None = _data_option(),
    ways: int = typer.Option(5, help="With --data and no --suite: N of the sampled episodes."),
    shots: int = typer.Option(5, help="With --data and no --suite: K of the sampled episodes."),
    queries: int = typer.Option(
        15, help="With --data and no --suite: query images per class of the sampled episodes."
    ),
    episodes: int = typer.Option(
        0,
        help="Score only the first N episodes (0: all); with --data and no --suite, how many to "
        "sample (0: 600).",
    ),
    dummies: str = typer.Option(
        ",".join(StudyConfig.dummies), help="Dummy-label modes: head, source, prototypes."
    ),
    metrics: str = typer.Option(",".join(DEFAULT_METRICS), help="Metrics to compute."),
    rank_by: str = typer.Option(
        "", help="Metric whose mean ranks the backbones (default: the first of --metrics)."
    ),
    out: Annotated[Path, typer.Option(help="Folder for scores.csv and summary.csv.")] = Path(
        "runs/scores"
    ),
    seed: int = typer.Option(StudyConfig.seed, help="Seed of the stochastic parts."),
    device: str = typer.Option(StudyConfig.device, help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(1, help="torch intra-op threads (0: torch's default)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    trust_factory: bool = _trust_option(),
) -> None:
    """Score backbones on a suite without adapting: per-episode metrics, summary, ranking."""
    import pandas as pd

    from metaleep.study.scores import SCORE_LAYOUT, summarize_scores, write_scores
    from metaleep.study.scores import score as score_backbones

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _check_options(suite, data, _split(backbones), threads)
        metric_names = _split(metrics)
        rank_by = rank_by or (metric_names[0] if metric_names else "")
        if rank_by not in metric_names:
            raise ValueError(
                f"`--rank-by` must be one of --metrics ({', '.join(metric_names)}); "
                f"got {rank_by!r}."
            )
        if threads:
            import torch

            torch.set_num_threads(threads)
        # --out checked before any work, and held: nothing foreign where the scores go.
        with StudyLock(out, SCORE_LAYOUT) as lock:
            suite_name, first = resolve_suite(
                suite,
                data,
                ways=ways,
                shots=shots,
                queries=queries,
                episodes=episodes,
                seed=seed,
                out=out,
                lock=lock,
            )
            table = score_backbones(
                list(_split(backbones)),
                suite_name,
                data=data,
                metrics=metric_names,
                dummies=_split(dummies),
                episodes=first,
                seed=seed,
                device=device,
                progress=progress,
                trust_code=trust_factory,
            )
            summary, ranking = summarize_scores(table, metrics=metric_names, rank_by=rank_by)
            assert lock.outputs is not None
            lock.outputs.publish(lambda folder: write_scores(folder, table, summary, ranking))
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        typer.echo(f"metaleep score: {_in_flags(str(error))}", err=True)
        raise typer.Exit(2) from error
    typer.echo(
        f"\n{table['episode'].nunique()} episodes, {table['backbone'].nunique()} backbones -> "
        f"{out / 'scores.csv'}, {out / 'summary.csv'}, {out / 'ranking.csv'}"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        shown = ranking.copy()
        shown[rank_by] = [
            f"{m:.4g} [{lo:.4g}, {hi:.4g}]"
            for m, lo, hi in zip(shown["mean"], shown["ci_low"], shown["ci_high"], strict=True)
        ]
        typer.echo(f"\nRanking by mean {rank_by} [95 % CI] over the episodes:")
        typer.echo(shown[["rank", "backbone", "dummy", rank_by, "episodes"]].to_string(index=False))
    sys.stdout.flush()
