"""metaleep: transferability metrics for meta-learned models.

LEEP (Nguyen et al., ICML 2020) and its baselines (NCE, H-score, LogME, N-LEEP) scored per
few-shot episode, and the study that correlates them with post-adaptation accuracy.

Importing :mod:`metaleep` is cheap: torch, learn2learn and matplotlib are imported by the
submodules that use them, when they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

__all__ = ["__version__", "score"]


def __getattr__(name: str) -> Any:
    # ``metaleep.score`` without importing torch and pandas on ``import metaleep``.
    if name == "score":
        from metaleep.study.scores import score

        return score
    raise AttributeError(f"module 'metaleep' has no attribute {name!r}")
