"""Optional dependencies: imported where used, with an install hint when missing.

learn2learn (the ``l2l`` extra) is needed only to build learn2learn's own architectures
(``omniglot-cnn``, ``cnn4``, ``resnet12``); metrics, studies, training of metaleep's own
architectures and the CLI work without it. It imports gym, which prints a notice about NumPy 2
to stderr on import: :func:`require_learn2learn` drops that notice (nothing else), and
:func:`without_gym_notice` does the same around a user's module that imports learn2learn.

ipywidgets makes tqdm's notebook bar work; without it ``tqdm.auto`` warns "IProgress not
found" in a notebook, so :func:`progress_bar` takes the text bar there instead.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

__all__ = ["L2L_HINT", "progress_bar", "require_learn2learn", "without_gym_notice"]

_GYM_NOTICE = "Gym has been unmaintained"
"""How gym's import-time notice (from the ``gym_notices`` package) begins."""


def progress_bar(*args: Any, **kwargs: Any) -> Any:
    """A tqdm bar: the notebook bar where it can be drawn (ipywidgets installed), else the
    text bar; arguments as :class:`tqdm.tqdm`'s.

    Examples
    --------
    >>> bar = progress_bar(total=3, disable=True)
    >>> bar.update(3); bar.close()
    """
    try:
        importlib.import_module("ipywidgets")
    except ImportError:
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(*args, **kwargs)


@contextlib.contextmanager
def without_gym_notice() -> Iterator[None]:
    """Run the block with gym's NumPy-2 notice and gym's deprecation warnings left out (an
    import of learn2learn, or of a user's module that imports it); any other text the block
    writes to stderr is passed on when it ends.
    """
    caught = io.StringIO()
    try:
        with contextlib.redirect_stderr(caught), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"gym(\.|$)")
            warnings.filterwarnings("ignore", message=".*np.bool8.*", category=DeprecationWarning)
            yield
    finally:  # on the real stderr again
        text = caught.getvalue()
        if text and not text.startswith(_GYM_NOTICE):
            sys.stderr.write(text)


def _quiet_import(name: str) -> ModuleType:
    """``import name`` :func:`without_gym_notice`."""
    with without_gym_notice():
        return importlib.import_module(name)


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
        return _quiet_import("learn2learn")
    except ImportError as err:
        raise ImportError(
            f"{what} needs learn2learn, which could not be imported ({err}). {L2L_HINT}."
        ) from err
