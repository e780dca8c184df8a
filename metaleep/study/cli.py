"""``metaleep run``: the meta-transfer study from the command line (the main job)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from metaleep.study.config import DEFAULT_METRICS, StudyConfig

if TYPE_CHECKING:
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


def _check_options(suite: str, backbones: tuple[str, ...], threads: int, n_boot: int) -> None:
    """The options the configuration does not check, checked before anything is loaded."""
    from metaleep.backbones.default import DEFAULT_CONFIGS
    from metaleep.episodes.suites import STANDARD_SUITES

    if suite not in STANDARD_SUITES and not Path(suite).is_file():
        raise ValueError(
            f"`--suite` must be a standard suite ({', '.join(STANDARD_SUITES)}; see "
            f"`metaleep episodes list`) or an existing manifest file; got {suite!r}."
        )
    unknown = [b for b in backbones if b not in DEFAULT_CONFIGS and not Path(b).exists()]
    if unknown:
        raise ValueError(
            f"`--backbones` must name default backbones ({', '.join(DEFAULT_CONFIGS)}) or "
            f"existing checkpoint paths; got {', '.join(unknown)}."
        )
    if threads < 0:
        raise ValueError(f"`--threads` must be >= 0 (0: torch's default); got {threads!r}.")
    if n_boot < 1:
        raise ValueError(f"`--n-boot` must be a positive integer; got {n_boot!r}.")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the study is, so that it stops like after Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _interrupted(error: KeyboardInterrupt) -> None:
    """Say how far an interrupted study got, then end as the signal would have."""
    import os
    import signal

    what = str(error) if str(error) else "interrupted; run the same command to resume."
    typer.echo(f"metaleep run: {what}", err=True)
    sys.stderr.flush()
    terminated = isinstance(error, _Terminated) or isinstance(error.__cause__, _Terminated)
    if terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # exit status 143 (killed by SIGTERM), as before
    raise typer.Exit(130)


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


def run(
    suite: str = typer.Option(
        StudyConfig.suite, help="Standard suite name (metaleep episodes list) or manifest path."
    ),
    backbones: str = typer.Option(
        ",".join(StudyConfig.backbones),
        help="Comma-separated default backbones (maml, protonet, supervised) or checkpoint paths.",
    ),
    dummies: str = typer.Option(
        ",".join(StudyConfig.dummies), help="Dummy-label modes: head, source, prototypes."
    ),
    adaptations: str = typer.Option(
        ",".join(StudyConfig.adaptations),
        help="Adaptation methods: maml, anil, retrain_head, finetune, prototype.",
    ),
    metrics: str = typer.Option(",".join(DEFAULT_METRICS), help="Metrics to compute."),
    episodes: int = typer.Option(0, help="Evaluate only the first N episodes (0: all)."),
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
        False, help="Discard results of a different configuration found in --out."
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
) -> None:
    """Run (or resume) the meta-transfer study: metrics vs post-adaptation accuracy."""
    from metaleep.study.report import format_correlation_table
    from metaleep.study.runner import run_study
    from metaleep.study.store import StoreError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _check_options(suite, _split(backbones), threads, n_boot)
        config = StudyConfig(
            suite=suite,
            backbones=_split(backbones),
            dummies=_split(dummies),
            adaptations=_split(adaptations),
            metrics=_split(metrics),
            episodes=episodes or None,
            chunk_size=chunk_size,
            temperature=temperature or None,
            seed=seed,
            device=device,
        )
        config.resolved_device()
    except (ValueError, TypeError) as error:
        typer.echo(f"metaleep run: {_in_flags(str(error))}", err=True)
        raise typer.Exit(2) from error
    try:
        chunk_executor = _executor(executor, ray_address, workers)
    except (ValueError, ImportError) as error:
        typer.echo(f"metaleep run: {error}", err=True)
        raise typer.Exit(2) from error
    if threads:
        import torch

        torch.set_num_threads(threads)
    import signal

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        result = run_study(
            config,
            out_dir=out,
            progress=progress,
            overwrite=overwrite,
            n_boot=n_boot,
            executor=chunk_executor,
        )
    except KeyboardInterrupt as error:
        _interrupted(error)
        raise  # not reached: _interrupted ends the process
    except (ValueError, TypeError, FileNotFoundError, StoreError) as error:
        typer.echo(f"metaleep run: {_in_flags(str(error))}", err=True)
        raise typer.Exit(2) from error
    finally:
        signal.signal(signal.SIGTERM, previous)
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
