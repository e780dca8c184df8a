"""Optional dependencies: imported where used, with an install hint when missing.

learn2learn (the ``l2l`` extra) is needed only to build learn2learn's own architectures
(``omniglot-cnn``, ``cnn4``, ``resnet12``); metrics, studies, training of metaleep's own
architectures and the CLI work without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["L2L_HINT", "require_learn2learn"]

L2L_HINT = (
    "learn2learn 0.2.0 (the `metaleep[l2l]` extra) has no wheel on PyPI and its sdist does not "
    "build on Python >= 3.11: in a clone of metaleep run `bash tools/install.sh` (it builds "
    "the learn2learn wheel from the sdist with Cython >= 3, caches it and installs metaleep with "
    "the l2l extra; its comments give the steps to do by hand)"
)
"""How to install learn2learn, in words that hold on every supported Python."""


def require_learn2learn(what: str) -> ModuleType:
    """``import learn2learn``, or an ImportError that says what needs it and how to install it.

    Parameters
    ----------
    what:
        What needs learn2learn, for the message (e.g. ``"arch 'omniglot-cnn'"``).

    Examples
    --------
    >>> import sys
    >>> from unittest import mock
    >>> with mock.patch.dict(sys.modules, {"learn2learn": None}):  # as if not installed
    ...     require_learn2learn("arch 'cnn4'")
    Traceback (most recent call last):
    ...
    ImportError: arch 'cnn4' needs learn2learn, which could not be imported (...). learn2learn ...
    """
    try:
        return importlib.import_module("learn2learn")
    except ImportError as err:
        raise ImportError(
            f"{what} needs learn2learn, which could not be imported ({err}). {L2L_HINT}."
        ) from err
