"""Interruptions of a long command (Ctrl-C, SIGTERM): raised where the work is, said, and ended
as the signal would have ended the process.

SIGTERM (what ``kill``, a job scheduler or a container stop send) is turned into a
:class:`Terminated`, a ``KeyboardInterrupt``, for the duration of :func:`terminate_as_interrupt`,
so that a study or a grid stops like after Ctrl-C: at a chunk boundary, with every finished
chunk stored. :func:`exit_interrupted` then says how far the command got and how to resume,
and ends the process with status 130 (SIGINT) or by SIGTERM itself (143 in a shell).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import NoReturn

import typer

__all__ = ["Terminated", "exit_interrupted", "terminate_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops like after Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the previous handler after it."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_interrupted(command: str, error: KeyboardInterrupt) -> NoReturn:
    """Say how far an interrupted command got (``str(error)``, or that the same command
    resumes), then end as the signal would have: SIGTERM again by default, or status 130."""
    what = str(error) if str(error) else "interrupted; run the same command to resume."
    typer.echo(f"metaleep {command}: {what}", err=True)
    sys.stderr.flush()
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:  # the study's, then the grid's, wrapping
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, Terminated) for c in chain):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # exit status 143 (killed by SIGTERM), as before
    raise typer.Exit(130)
