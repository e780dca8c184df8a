"""metaleep: transferability metrics for meta-learned models.

LEEP (Nguyen et al., ICML 2020) and its baselines (NCE, H-score, LogME, N-LEEP) scored per
few-shot episode, and the study that correlates them with post-adaptation accuracy.

The common entries are here: :func:`score` and :func:`run_study` (the Python forms of
``metaleep score`` and ``metaleep run``, with the same options), :func:`rank_backbones`,
:func:`from_module` (any model as a backbone), :func:`load_data` (``--data`` specs) and
:class:`StudyConfig`; the subpackages hold the rest.

Importing :mod:`metaleep` is cheap: torch, learn2learn and matplotlib are imported by the
submodules that use them, when they are used.

>>> import metaleep
>>> {"score", "run_study", "from_module", "study"} <= set(dir(metaleep))
True
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import Any

_EXPORTS = {
    "score": "metaleep.study.scores",
    "rank_backbones": "metaleep.study.scores",
    "run_study": "metaleep.study.runner",
    "StudyConfig": "metaleep.study.config",
    "from_module": "metaleep.backbones.wrap",
    "load_data": "metaleep.data.spec",
}
_SUBPACKAGES = ("adapt", "analysis", "backbones", "data", "episodes", "metrics", "report", "study")

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    # The entries and subpackages without importing torch and pandas on ``import metaleep``.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"metaleep.{name}")
    raise AttributeError(f"module 'metaleep' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (lazy ones too) for dir() and tab completion.
    return sorted({*__all__, *_SUBPACKAGES, *(n for n in globals() if n.startswith("_"))})
