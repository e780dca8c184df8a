"""The meta-transfer study: adaptation of meta-trained backbones on few-shot episodes, the tidy
table of transferability scores and post-adaptation accuracies, and its correlations.

The names below are imported on first use, so ``import metaleep.study`` stays cheap.

>>> from metaleep.study import StudyConfig
>>> StudyConfig(episodes=10).episodes
10
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.study.config import Sampling, StudyConfig
    from metaleep.study.loading import load_backbones
    from metaleep.study.runner import StudyResult, run_study
    from metaleep.study.scores import rank_backbones, score, summarize_scores

_EXPORTS = {
    "StudyConfig": "metaleep.study.config",
    "Sampling": "metaleep.study.config",
    "rank_backbones": "metaleep.study.scores",
    "StudyBackbone": "metaleep.backbones.protocol",
    "score": "metaleep.study.scores",
    "summarize_scores": "metaleep.study.scores",
    "StudyResult": "metaleep.study.runner",
    "run_study": "metaleep.study.runner",
    "load_backbones": "metaleep.study.loading",
}

__all__ = [
    "Sampling",
    "StudyBackbone",
    "StudyConfig",
    "StudyResult",
    "load_backbones",
    "rank_backbones",
    "run_study",
    "score",
    "summarize_scores",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metaleep.study' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (lazy ones too) for dir() and tab completion.
    return sorted({*__all__, *(n for n in globals() if n.startswith("_"))})
