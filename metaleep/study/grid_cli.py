"""``metaleep grid``: run a declared grid of transfer settings and print its wins table."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from metaleep._cli import fail, flag_names, in_flags

if TYPE_CHECKING:
    from metaleep.study.grid import GridResult


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
    table: bool = typer.Option(
        False, "--table", help="Also print every setting's r per metric (settings.csv)."
    ),
    trust_factory: bool = typer.Option(
        False,
        "--trust-factory",
        help="Let metaleep export files among the grid's sources run the factory (Python "
        "code) they record to build their model.",
    ),
) -> None:
    """Run (or resume) a grid of transfer settings: sources x dummy labels x transfer types x
    targets, one study per target; print how often each metric correlates best."""
    from metaleep.study.grid import run_grid
    from metaleep.study.grid_config import load_grid
    from metaleep.study.out_dir import StoreError
    from metaleep.study.signals import exit_interrupted, terminate_as_interrupt

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if quick and config:
        raise fail("grid", "`--quick` must not be given with --config; got both.")
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
        message = in_flags(str(error), {**flag_names(grid), "out_dir": "--out"})
        raise fail("grid", message) from error
    _print_grid(result, full=table)


def _print_grid(result: GridResult, *, full: bool) -> None:
    """What a person reads after a grid: the headline, the wins, where everything is."""
    import shutil
    import textwrap

    import pandas as pd

    from metaleep.analysis.grid import regime_table
    from metaleep.report.grid_page import grid_headline, settings_frame

    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    analysis = result.analysis
    typer.echo(
        f"\n{len(analysis.settings)} settings, {len(result.table)} rows, "
        f"{result.seconds:.1f} s -> {result.out_dir}\n"
    )
    for sentence in grid_headline(analysis, markup=False):
        typer.echo(textwrap.fill(sentence, width=width) + "\n")
    with pd.option_context("display.width", 1000, "display.max_columns", 100):
        for regime in analysis.wins_by_regime["regime"].unique():
            typer.echo(f"{regime} episodes: best in k of N settings (Pearson r within cells):")
            typer.echo(regime_table(analysis, str(regime)).to_string(index=False) + "\n")
        if full:
            typer.echo("Every setting: accuracy and Pearson r [95 % CI]:")
            typer.echo(settings_frame(analysis).to_string(index=False))
    for note in result.notes:
        typer.echo(textwrap.fill(f"note: {note}", width=width, subsequent_indent="  "))
    typer.echo(
        "\n"
        + textwrap.fill(
            f"Tables in {result.out_dir}: table.csv, settings.csv, correlations.csv, wins.csv, "
            "leave_out.csv, selection.csv."
            + ("" if full else " --table prints every setting here."),
            width=width,
        )
    )
    if result.report is not None:
        typer.echo(f"report: {result.report}")
    sys.stdout.flush()
