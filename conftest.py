"""Collection settings for the doctests under metaleep/ (tests/conftest.py holds the rest)."""

from __future__ import annotations

import importlib.util

collect_ignore: list[str] = []
if importlib.util.find_spec("ray") is None:  # the optional `ray` extra is not installed
    collect_ignore.append("metaleep/study/ray_executor.py")
