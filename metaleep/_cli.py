"""One convention for every ``metaleep`` command: exit codes, messages, options named as flags.

Exit status:

- :data:`USAGE` (2): the command line or a configuration is wrong -- an unknown option, a bad
  value, a missing file, a data set or model that does not fit (click's own usage errors exit
  2 too);
- :data:`FAILURE` (1): the work itself failed (a disk that fills up, a device that runs out of
  memory);
- :data:`INTERRUPTED` (130): interrupted (Ctrl-C), after saying so; what was stored stays.

Every message starts with the command (``metaleep score: ...``) and names options as flags:
library messages name the argument (`` `dummies` ``), and :func:`in_flags` rewrites each
argument the command has as an option into its flag (`` `--dummies` ``). :func:`command`
applies all of this to a command function; each ``cli`` module registers its commands through
it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import typer
from typer.exceptions import Abort, Exit, TyperException

__all__ = [
    "FAILURE",
    "INTERRUPTED",
    "USAGE",
    "command",
    "command_flags",
    "fail",
    "flag_names",
    "in_flags",
]

USAGE = 2
FAILURE = 1
INTERRUPTED = 130

USAGE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    ImportError,
)
"""Exceptions that mean the command was asked for something it cannot do (exit 2)."""

FAILURES: tuple[type[BaseException], ...] = (OSError, RuntimeError, MemoryError)
"""Exceptions that mean the work failed (exit 1)."""

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def flag_names(function: Callable[..., Any]) -> dict[str, str]:
    """``{parameter: flag}`` of a typer command: each option's first ``--`` declaration, or
    ``--name-with-dashes`` when it declares none (arguments are left out).

    Examples
    --------
    >>> from typing import Annotated
    >>> def f(n_boot: int = typer.Option(1), as_json: bool = typer.Option(False, "--json"),
    ...       out: Annotated[str, typer.Option("--out-dir")] = "x",
    ...       spec: str = typer.Argument(...)) -> None: ...
    >>> flag_names(f)
    {'n_boot': '--n-boot', 'as_json': '--json', 'out': '--out-dir'}
    """
    try:  # Annotated[..., typer.Option(...)] under `from __future__ import annotations`
        hints = typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    flags: dict[str, str] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        infos = [parameter.default, *getattr(hints.get(name), "__metadata__", ())]
        option = next((i for i in infos if isinstance(i, typer.models.OptionInfo)), None)
        if option is None:
            continue
        declarations = list(option.param_decls or ())
        if isinstance(option.default, str) and option.default.startswith("--"):
            declarations.insert(0, option.default)  # Annotated[..., typer.Option("--flag")]
        declared = [d for d in declarations if d.startswith("--")]
        flags[name] = declared[0].split("/")[0] if declared else "--" + name.replace("_", "-")
    return flags


def command_flags(function: Callable[..., Any]) -> dict[str, str]:
    """:func:`flag_names` of a command, with the library's name for an output folder,
    `` `out_dir` ``, written as the command's ``--out`` flag when it has one."""
    flags = flag_names(function)
    if "out" in flags:
        flags.setdefault("out_dir", flags["out"])
    return flags


def in_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with each `` `parameter` `` of ``flags`` written as its flag.

    Examples
    --------
    >>> in_flags("`dummies` must name from head, source; got x.", {"dummies": "--dummies"})
    '`--dummies` must name from head, source; got x.'
    """
    for name, flag in flags.items():
        message = message.replace(f"`{name}`", f"`{flag}`")
    return message


def fail(name: str, message: str, code: int = USAGE) -> typer.Exit:
    """Say ``metaleep NAME: MESSAGE`` on stderr; the :class:`typer.Exit` to raise with ``code``."""
    typer.echo(f"metaleep {name}: {message}", err=True)
    sys.stderr.flush()
    return typer.Exit(code)


def command(name: str) -> Callable[[F], F]:
    """Decorate a typer command function with the convention of this module.

    Usage errors (:data:`USAGE_ERRORS`) exit 2 and failures (:data:`FAILURES`) exit 1, each
    with a one-line message whose option names are flags; Ctrl-C exits 130 after saying so.
    Exits the command raises itself (``typer.Exit``, ``typer.BadParameter``) pass unchanged.
    """

    def decorate(function: F) -> F:
        flags = command_flags(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except (Exit, Abort, TyperException):  # the command's own exits and usage errors
                raise
            except KeyboardInterrupt as error:
                raise fail(name, "interrupted.", INTERRUPTED) from error
            except USAGE_ERRORS as error:
                raise fail(name, in_flags(str(error), flags), USAGE) from error
            except FAILURES as error:
                log.debug("metaleep %s failed", name, exc_info=True)
                raise fail(name, in_flags(str(error), flags), FAILURE) from error

        return wrapper  # type: ignore[return-value]

    return decorate
