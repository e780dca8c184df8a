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
) -> None:
    """Run (or resume) a grid of transfer settings: sources x dummy labels x transfer types x
    targets, one study per target; print how often each metric correlates best."""
    from metaleep.analysis.grid import regime_table, wins_table
    from metaleep.study.grid import run_grid
    from metaleep.study.grid_config import load_grid
    from metaleep.study.store import StoreError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if quick and config:
        typer.echo("metaleep grid: `--quick` must not be given with --config; got both.", err=True)
        raise typer.Exit(2)
    name = config or ("quick" if quick else "default")
    folder = out or Path("runs") / ("grid-quick" if name == "quick" else "grid")
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        grid_config = load_grid(name)
        words = ["metaleep grid"]
        if quick:
            words.append("--quick")
        elif config:
            words.append(f"--config {config}")
        if out is not None:
            words.append(f"--out {out}")
        result = run_grid(
            grid_config,
            folder,
            progress=progress,
            overwrite=overwrite,
            command=" ".join(words),
        )
    except (ValueError, TypeError, FileNotFoundError, ImportError, StoreError) as error:
        typer.echo(f"metaleep grid: {error}", err=True)
        raise typer.Exit(2) from error
    import pandas as pd

    typer.echo(
        f"\n{len(result.analysis.settings)} settings, {len(result.table)} rows, "
        f"{result.seconds:.1f} s -> {result.out_dir}"
    )
    analysis = result.analysis
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for regime in analysis.wins_by_regime["regime"].unique():
            counts = analysis.counts[analysis.counts["regime"] == regime].iloc[0]
            typer.echo(
                f"\n{regime} episodes: best in k of N settings (Pearson r with accuracy within "
                f"cells, {int(counts['n_seeds'])} training seeds; "
                f"{int(counts['n_distinct_accuracy'])} distinct accuracy vectors on "
                f"{int(counts['n_targets'])} targets; significant: selection-aware test, "
                f"Benjamini-Hochberg q <= {analysis.alpha}):"
            )
            typer.echo(regime_table(analysis, str(regime)).to_string(index=False))
        typer.echo("\nEvery setting:")
        typer.echo(wins_table(analysis).to_string(index=False))
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.report is not None:
        typer.echo(f"\nreport: {result.report}")
    sys.stdout.flush()
