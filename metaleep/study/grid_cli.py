"""``metaleep grid``: run a declared grid of transfer settings and print its wins table."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer


def grid(
    config: Annotated[
        str,
        typer.Option(
            "--config",
            help="Grid TOML file, or a shipped grid's name (default, quick). Copy "
            "metaleep/study/grids/default.toml to write your own.",
        ),
    ] = "",
    quick: bool = typer.Option(
        False, "--quick", help="The small shipped grid (under 3 minutes with cached backbones)."
    ),
    out: Annotated[
        Path | None,
        typer.Option(help="Grid folder (resumable); default runs/grid or runs/grid-quick."),
    ] = None,
    threads: int = typer.Option(
        1, help="torch intra-op threads (0: torch's default); 1 was fastest on 2 cores."
    ),
    overwrite: bool = typer.Option(
        False, help="Discard results of another grid configuration found in --out."
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
    trust_factory: bool = typer.Option(
        False,
        "--trust-factory",
        help="Let metaleep export files among the grid's sources run the factory (Python "
        "code) they record to build their model.",
    ),
) -> None:
    """Run (or resume) a grid of transfer settings: sources x dummy labels x transfer types x
    targets, one study per target; print how often each metric correlates best."""
    from metaleep.analysis.grid import wins_table
    from metaleep.study.grid import run_grid
    from metaleep.study.grid_config import load_grid
    from metaleep.study.out_dir import StoreError
    from metaleep.study.signals import exit_interrupted, terminate_as_interrupt

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if quick and config:
        typer.echo("metaleep grid: `--quick` must not be given with --config; got both.", err=True)
        raise typer.Exit(2)
    name = config or ("quick" if quick else "default")
    folder = out or Path("runs") / ("grid-quick" if name == "quick" else "grid")
    try:
        if threads < 0:
            raise ValueError(f"`--threads` must be >= 0 (0: torch's default); got {threads!r}.")
        if threads:
            import torch

            torch.set_num_threads(threads)
        grid_config = load_grid(name)
        words = ["metaleep grid"]
        if quick:
            words.append("--quick")
        elif config:
            words.append(f"--config {config}")
        if out is not None:
            words.append(f"--out {out}")
        with terminate_as_interrupt():
            result = run_grid(
                grid_config,
                folder,
                progress=progress,
                overwrite=overwrite,
                command=" ".join(words),
                trust_code=trust_factory,
            )
    except KeyboardInterrupt as error:
        exit_interrupted("grid", error)
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        typer.echo(f"metaleep grid: {str(error).replace('`config`', '`--config`')}", err=True)
        raise typer.Exit(2) from error
    import pandas as pd

    typer.echo(
        f"\n{len(result.analysis.settings)} settings, {len(result.table)} rows, "
        f"{result.seconds:.1f} s -> {result.out_dir}"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        typer.echo("\nBest in k of N settings (Pearson r with accuracy):")
        typer.echo(wins_table(result.analysis).to_string(index=False))
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.report is not None:
        typer.echo(f"\nreport: {result.report}")
    sys.stdout.flush()
