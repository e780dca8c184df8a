"""Text read from a file, made inert before it is shown.

A study directory, an export or a manifest is a file anyone can edit: a string read from one
(an owner record's command, a factory name, a chunk's binding) may hold terminal escape
sequences, line breaks or right-to-left overrides that would clear a screen, change a window
title or forge another line when printed. :func:`printable` shows every such character as its
Python escape and bounds the length.
"""

from __future__ import annotations

__all__ = ["printable"]

_SHOWN = 300
"""Characters of a text shown at most (the rest is counted)."""


def printable(text: object, limit: int = _SHOWN) -> str:
    """``text`` (any value, as ``str()``) with control and format characters escaped, at most
    ``limit`` characters of it.

    Examples
    --------
    >>> printable("python -m metaleep run\\x1b[2J\\x1b]0;owned\\x07")
    'python -m metaleep run\\\\x1b[2J\\\\x1b]0;owned\\\\x07'
    >>> printable("a\\nb\\u202ec"), printable("x" * 5, limit=3)
    ('a\\\\nb\\\\u202ec', 'xxx... (2 more characters)')
    """
    value = str(text)
    extra = len(value) - limit
    if extra > 0:
        value = value[:limit]
    shown = "".join(
        c if c == " " or c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in value
    )
    return f"{shown}... ({extra} more characters)" if extra > 0 else shown
