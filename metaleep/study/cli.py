"""``metaleep run``: the meta-transfer study from the command line (the main job)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from metaleep._cli import command_flags, fail, in_flags
from metaleep.data.spec import DATA_HELP
from metaleep.study.config import DEFAULT_METRICS, DEFAULT_SUITE, Sampling, StudyConfig
from metaleep.study.out_dir import StoreError, StudyLock
from metaleep.study.signals import exit_interrupted, terminate_as_interrupt
from metaleep.study.store import STUDY_LAYOUT

if TYPE_CHECKING:
    from metaleep.study.runner import Executor, StudyResult

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
    "ways": "--ways",
    "shots": "--shots",
    "queries": "--queries",
    "min_images": "--min-images",
    "image_size": "--image-size",
    "bad_files": "--bad-files",
    "source_data": "--source-data",
    "trust_code": "--trust-factory",
    "out_dir": "--out",
}
"""Names of the configuration's fields (as library messages give them) -> their CLI options."""


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _source_pairs(entries: list[str]) -> list[tuple[str, str]]:
    """``--source-data NAME=SPEC`` entries as (NAME, SPEC), checked."""
    from metaleep.study.config import StudyConfig as Config

    checked = Config(source_data=tuple(entries)).source_data
    return [(e.partition("=")[0], e.partition("=")[2]) for e in checked]


def _in_flags(message: str) -> str:
    """A library message with `field` names replaced by the options that set them.

    >>> _in_flags("`n_boot` must be a positive integer; got -1.")
    '`--n-boot` must be a positive integer; got -1.'
    """
    return in_flags(message, _FLAGS)


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
        f"{DEFAULT_SUITE}, or a suite sampled from --data).",
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


def _queries_option() -> Any:
    return typer.Option(
        0,
        help="With --data and no --suite: query images per class of the sampled episodes (0: as "
        "many as every class allows beside the shots, at most 15).",
    )


def _min_images_option() -> Any:
    return typer.Option(
        0,
        help="With --data and no --suite: leave out classes with fewer images (0: keep all); "
        "the classes left out are recorded.",
    )


def _image_size_option() -> Any:
    return typer.Option(
        "",
        help="Load the data at this size: N (N x N) or HxW. Default: what a --suite file "
        "recorded; a folder sampled by this command loads at the largest input the backbones "
        "declare, else by its own rule (mixed sizes: the median height x width).",
    )


def _bad_files_option() -> Any:
    return typer.Option(
        "skip",
        help="imagefolder data: skip or refuse files that are not usable images (empty, "
        "truncated, corrupt, too many pixels, not images); listed in study.json either way.",
    )


_SOURCE_DATA = typer.Option(
    None,
    help="NAME=SPEC (repeatable): the data backbone NAME was trained on, a --data spec "
    "(benchmarks: their train split); every class of it is a source class, for the "
    "prototypes dummy labels (LEEP, NCE) of an embedding network.",
)


def run(
    suite: str | None = _suite_option(),
    data: str | None = _data_option(),
    backbones: str = _backbones_option(",".join(StudyConfig.backbones)),
    ways: int = typer.Option(5, help="With --data and no --suite: N of the sampled episodes."),
    shots: int = typer.Option(5, help="With --data and no --suite: K of the sampled episodes."),
    queries: int = _queries_option(),
    min_images: int = _min_images_option(),
    image_size: str = _image_size_option(),
    bad_files: str = _bad_files_option(),
    source_data: list[str] | None = _SOURCE_DATA,
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
    seeds: str = typer.Option(
        "0",
        help="Training seeds of the default backbones, e.g. 0,1,2 (shipped: 0, 1, 2): the "
        "study runs once per seed (OUT/seed-K) and analyses the seeds as replicates.",
    ),
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
    table: bool = typer.Option(
        False,
        "--table",
        help="Also print every correlation table (the CSVs in --out hold them too).",
    ),
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
    from metaleep.study.runner import run_study

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _check_options(suite, data, _split(backbones), threads, n_boot)
        config = StudyConfig(
            suite=suite,
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
            image_size=image_size or None,
            bad_files=bad_files,
            source_data=tuple(source_data or ()),
            trust_code=trust_factory,
        )
        sampling = Sampling(ways, shots, queries or None, min_images or None)
        config.resolved_device()
        from metaleep.study.seeds import SEEDED_LAYOUT, check_seeds

        try:
            parsed = [int(k) for k in _split(seeds)]
        except ValueError:
            raise ValueError(f"`--seeds` must be integers like 0,1,2; got {seeds!r}.") from None
        training_seeds = check_seeds(parsed, config.backbones, "--seeds")
        seeded = len(training_seeds) > 1 or training_seeds != (0,)
        chunk_executor = _executor(executor, ray_address, workers)
        # Only a valid configuration touches --out, and it is checked before any work.
        with StudyLock(out, SEEDED_LAYOUT if seeded else STUDY_LAYOUT):
            pass
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        typer.echo(f"metaleep run: {_in_flags(str(error))}", err=True)
        raise typer.Exit(2) from error
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        with terminate_as_interrupt():
            if seeded:
                from metaleep.study.seeds import run_seeded_study

                result = run_seeded_study(
                    config,
                    training_seeds,
                    out_dir=out,
                    sampling=sampling,
                    progress=progress,
                    overwrite=overwrite,
                    n_boot=n_boot,
                    executor=chunk_executor,
                )
            else:
                result = run_study(
                    config,
                    out_dir=out,
                    ways=sampling.ways,
                    shots=sampling.shots,
                    queries=sampling.queries,
                    min_images=sampling.min_images,
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
    _print_study(result, full=table)


def _wrapped(text: str, indent: str = "", hang: str = "") -> str:
    """``text`` wrapped to the terminal (at most 100 columns), its first line indented by
    ``indent``, the others by ``indent + hang``; a number stays with its unit (``5 %``)."""
    import shutil
    import textwrap

    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    text = text.replace(" %", "\N{NO-BREAK SPACE}%")
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=indent + hang)


def _print_study(result: StudyResult, *, full: bool) -> None:
    """What a person reads after a study: the answer per group and where everything is."""
    from metaleep.report.page import format_correlation_table, headline, verdict_sentences

    rows = result.table
    typer.echo(
        f"\n{rows['episode'].nunique()} episodes, {len(rows)} rows, {result.seconds:.1f} s "
        f"-> {result.out_dir}"
    )
    analysis = result.analysis
    if analysis is not None:
        typer.echo("\n" + _wrapped(headline(analysis, markup=False)) + "\n")
        for sentence in verdict_sentences(analysis, markup=False):
            typer.echo(_wrapped(sentence, indent="  ", hang="  "))
        if full:
            import pandas as pd

            methods = list(dict.fromkeys(analysis.correlations["method"]))
            with pd.option_context("display.width", 1000, "display.max_columns", 100):
                for method in methods:
                    shown = format_correlation_table(analysis.correlations, methods=[method])
                    typer.echo(f"\n{shown['method'].iloc[0]} [95 % bootstrap CI]:")
                    typer.echo(shown.drop(columns="method").to_string(index=False))
        names = ", ".join(sorted(analysis.tables()))
        typer.echo(
            "\n"
            + _wrapped(f"Tables in {result.out_dir}: results.csv, {names}.", hang="  ")
            + ("" if full else "\n" + _wrapped("--table prints every correlation table here."))
        )
    if result.report is not None:
        typer.echo(f"report: {result.report}")
    sys.stdout.flush()


def score(
    backbones: str = _backbones_option(",".join(StudyConfig.backbones)),
    suite: str | None = _suite_option(),
    data: str | None = _data_option(),
    ways: int = typer.Option(5, help="With --data and no --suite: N of the sampled episodes."),
    shots: int = typer.Option(5, help="With --data and no --suite: K of the sampled episodes."),
    queries: int = _queries_option(),
    min_images: int = _min_images_option(),
    image_size: str = _image_size_option(),
    bad_files: str = _bad_files_option(),
    source_data: list[str] | None = _SOURCE_DATA,
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
        "",
        help="Metric whose mean ranks the backbones (default: the first of --metrics that has "
        "values).",
    ),
    out: Annotated[Path, typer.Option(help="Folder for scores.csv and summary.csv.")] = Path(
        "runs/scores"
    ),
    study: Annotated[
        Path | None,
        typer.Option(
            help="A finished study of the same suite and backbones: rank the backbones by each "
            "metric beside their accuracy there (Spearman and Kendall across backbones)."
        ),
    ] = None,
    seed: int = typer.Option(StudyConfig.seed, help="Seed of the stochastic parts."),
    device: str = typer.Option(StudyConfig.device, help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(1, help="torch intra-op threads (0: torch's default)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    table: bool = typer.Option(
        False, "--table", help="Also print every metric's mean per backbone (summary.csv)."
    ),
    trust_factory: bool = _trust_option(),
) -> None:
    """Score backbones on a suite without adapting: per-episode metrics, summary, ranking."""
    import pandas as pd

    from metaleep.study.scores import (
        SCORE_LAYOUT,
        summarize_scores,
        write_ranking,
        write_scores,
    )
    from metaleep.study.scores import score as score_backbones

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _check_options(suite, data, _split(backbones), threads)
        metric_names = _split(metrics)
        chosen_rank = bool(rank_by)
        rank_by = rank_by or (metric_names[0] if metric_names else "")
        if rank_by not in metric_names:
            raise ValueError(
                f"`--rank-by` must be one of --metrics ({', '.join(metric_names)}); "
                f"got {rank_by!r}."
            )
        if threads:
            import torch

            torch.set_num_threads(threads)
        sources = dict(_source_pairs(source_data or []))
        # --out checked before any work, and held: nothing foreign where the scores go.
        with StudyLock(out, SCORE_LAYOUT) as lock:
            scores = score_backbones(
                list(_split(backbones)),
                suite,
                data=data,
                ways=ways,
                shots=shots,
                queries=queries or None,
                min_images=min_images or None,
                image_size=image_size or None,
                bad_files=bad_files,
                source_data=sources or None,
                metrics=metric_names,
                dummies=_split(dummies),
                episodes=episodes or None,
                seed=seed,
                device=device,
                out_dir=out,
                progress=progress,
                trust_code=trust_factory,
                lock=lock,
            )
            if not chosen_rank and not scores[rank_by].notna().any():
                # e.g. LEEP for embedding networks without dummy labels: rank by a metric they have
                rank_by = next((m for m in metric_names if scores[m].notna().any()), rank_by)
            summary, ranking = summarize_scores(scores, metrics=metric_names, rank_by=rank_by)
            against = None
            if study is not None:
                from metaleep.study.scores import attach_accuracy, rank_backbones

                results = study / "results.csv"
                if not results.is_file():
                    raise FileNotFoundError(
                        f"`--study` must be a finished study directory (with results.csv); "
                        f"got {str(study)!r}."
                    )
                against = rank_backbones(
                    attach_accuracy(scores, pd.read_csv(results)), metrics=metric_names
                )
            ranked = against

            def write(folder: Path) -> None:
                write_scores(folder, scores, summary, ranking)
                if ranked is not None:
                    write_ranking(folder, *ranked)

            lock.held_outputs.publish(write)
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        raise fail("score", in_flags(str(error), command_flags(score))) from error
    typer.echo(
        f"\n{scores['episode'].nunique()} episodes, {scores['backbone'].nunique()} backbones "
        f"-> {out}"
    )

    def with_ci(frame: pd.DataFrame) -> list[str]:
        return [
            f"{m:.4g} [{lo:.4g}, {hi:.4g}]"
            for m, lo, hi in zip(frame["mean"], frame["ci_low"], frame["ci_high"], strict=True)
        ]

    if len(ranking):
        top = ranking.iloc[0]
        typer.echo(
            "\n"
            + _wrapped(
                f"Top by mean {rank_by}: {top['backbone']} / {top['dummy']}, "
                f"{with_ci(ranking)[0]} over {top['episodes']} episodes (95 % CI)."
            )
        )
    with pd.option_context("display.width", 1000, "display.max_columns", 100):
        shown = ranking.assign(**{rank_by: with_ci(ranking)})
        typer.echo(f"\nRanking by mean {rank_by} [95 % CI], within each dummy mode:")
        if shown.empty:
            typer.echo(f"no backbone has {rank_by} values (see summary.csv's notes)")
        else:
            typer.echo(
                shown[["rank", "dummy", "backbone", rank_by, "episodes"]].to_string(index=False)
            )
        if table:
            wide = summary.assign(value=with_ci(summary)).pivot(
                index=["backbone", "dummy"], columns="metric", values="value"
            )
            typer.echo("\nMean of every metric [95 % CI]:")
            typer.echo(wide[list(metric_names)].reset_index().to_string(index=False))
    typer.echo(
        "\n"
        + _wrapped(f"Tables in {out}: scores.csv, summary.csv, ranking.csv.", hang="  ")
        + ("" if table else "\n" + _wrapped("--table prints every metric's mean here."))
    )
    if against is not None:
        _show_ranking(*against)
        typer.echo(f"\n-> {out / 'backbone_means.csv'}, {out / 'rank_agreement.csv'}")
    sys.stdout.flush()


def _show_ranking(per_backbone: Any, agreement: Any) -> None:
    """Print a ranking of backbones against their accuracy."""
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for adaptation, rows in per_backbone.groupby("adaptation", sort=True):
            wide = rows.pivot_table(
                index="backbone", columns=["metric", "dummy"], values="metric_mean", sort=False
            )
            wide.columns = [m if d == "any" else f"{m} ({d})" for m, d in wide.columns]
            accuracy = rows.groupby("backbone")["accuracy_mean"].first()
            wide.insert(0, "accuracy", accuracy)
            typer.echo(f"\nMean accuracy and mean metric per backbone ({adaptation}):")
            typer.echo(wide.sort_values("accuracy", ascending=False).to_string(float_format="%.4g"))
        shown = agreement.copy()
        for column in ("spearman", "kendall"):
            shown[column] = shown[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}")
        typer.echo("\nRank correlation of mean metric with mean accuracy across backbones:")
        columns = ["adaptation", "dummy", "metric", "backbones", "spearman", "kendall", "note"]
        typer.echo(shown[columns].to_string(index=False))


def rank(
    study: Annotated[Path, typer.Argument(help="A finished study directory (its results.csv).")],
    metrics: str = typer.Option("", help="Metrics to rank by (default: the study's)."),
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for backbone_means.csv and rank_agreement.csv (default: print)."),
    ] = None,
) -> None:
    """Rank a study's backbones: each one's mean metric beside its mean accuracy, with the
    Spearman and Kendall rank correlation across backbones, for every metric and adaptation
    (LEEP and NCE within one dummy mode)."""
    import json

    import pandas as pd

    from metaleep.study.scores import rank_backbones

    results = study / "results.csv"
    if not results.is_file():
        raise FileNotFoundError(
            f"STUDY must be a finished study directory (with results.csv); got {str(study)!r}."
        )
    table = pd.read_csv(results)
    names = list(_split(metrics))
    if not names and (study / "study.json").is_file():
        recorded = json.loads((study / "study.json").read_text()).get("config", {})
        names = [m for m in recorded.get("metrics", []) if m in table.columns]
    unknown = [m for m in names if m not in table.columns]
    if unknown:
        raise ValueError(
            f"`metrics` must name metric columns of the study's results.csv; got "
            f"{', '.join(unknown)}."
        )
    per_backbone, agreement = rank_backbones(table, metrics=names or None)
    if out is not None:
        from metaleep.study.scores import RANK_LAYOUT, write_ranking

        with StudyLock(out, RANK_LAYOUT) as lock:
            lock.held_outputs.publish(lambda folder: write_ranking(folder, per_backbone, agreement))
        typer.echo(f"\n-> {out / 'backbone_means.csv'}, {out / 'rank_agreement.csv'}")
    _show_ranking(per_backbone, agreement)
    sys.stdout.flush()
