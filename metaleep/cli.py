"""The ``metaleep`` command line: a thin typer layer, one library call per command.

Each subpackage owns its commands in a ``cli`` module; this module only assembles them, each
under the one convention of :mod:`metaleep._cli` (exit 2 for a usage or configuration error,
1 for a failure, 130 for an interruption; options named as flags).
"""

from __future__ import annotations

import typer

from metaleep import __version__
from metaleep._cli import command
from metaleep.backbones import cli as backbones_cli
from metaleep.data import cli as data_cli
from metaleep.episodes import cli as episodes_cli
from metaleep.study import cli as study_cli
from metaleep.study import grid_cli

app = typer.Typer(
    name="metaleep",
    help="Transferability metrics (LEEP, NCE, H-score, LogME, N-LEEP) for meta-learned models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"metaleep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Transferability metrics for meta-learned models."""


app.add_typer(episodes_cli.app, name="episodes")
app.add_typer(data_cli.app, name="data")
app.command(name="run")(command("run")(study_cli.run))
app.command(name="score")(command("score")(study_cli.score))
app.command(name="rank")(command("rank")(study_cli.rank))
app.command(name="grid")(command("grid")(grid_cli.grid))
app.command(name="export")(command("export")(backbones_cli.export))
app.command(name="train")(command("train")(backbones_cli.train))


def main() -> None:
    """Entry point of the ``metaleep`` console script."""
    app()
