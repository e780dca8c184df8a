"""Library messages in the words of the command line: `field` names become `--options`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def as_flags(message: str, names: Mapping[str, str] | Iterable[str]) -> str:
    """``message`` with each `` `name` `` replaced by its option (``--name-with-dashes`` unless
    ``names`` maps it to another).

    Examples
    --------
    >>> as_flags("`min_images` must be >= 1; got 0.", ["min_images"])
    '`--min-images` must be >= 1; got 0.'
    >>> as_flags("`n_boot` must be a positive integer.", {"n_boot": "--n-boot"})
    '`--n-boot` must be a positive integer.'
    """
    pairs = names.items() if isinstance(names, Mapping) else [(n, "") for n in names]
    for name, flag in pairs:
        message = message.replace(f"`{name}`", f"`{flag or '--' + name.replace('_', '-')}`")
    return message
