"""Pure helpers of tools/build_glyph_bank.py (the build itself needs the fonts)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "build_glyph_bank.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("build_glyph_bank", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_spread_order(tool):
    order = tool.spread_order(16)
    assert sorted(order.tolist()) == list(range(16))
    assert order[:4].tolist() == [0, 8, 4, 12]  # every prefix is spread out
    assert tool.spread_order(0).size == 0 and tool.spread_order(1).tolist() == [0]


def test_design_family(tool):
    assert tool.design_family("DejaVu Sans Condensed") == "DejaVu Sans"
    assert tool.design_family("Noto Looped Lao UI Bold") == "Noto Looped Lao"
    assert tool.design_family("Noto Sans Tifinagh APT") == "Noto Sans Tifinagh APT"


def test_is_letter(tool):
    assert tool.is_letter(ord("a")) == "Latn"
    assert tool.is_letter(ord("A")) is None  # capitals of two-case scripts are dropped
    assert tool.is_letter(ord("é")) is None  # precomposed
    assert tool.is_letter(0xFB01) is None  # ligature fi: compatibility form
    assert tool.is_letter(ord("1")) is None
    assert tool.is_letter(ord("ሀ")) == "Ethi"


def test_clusters_are_cross_script_components(tool, monkeypatch):
    monkeypatch.setattr(tool, "CLUSTER_ACROSS", 0.9)
    sims = np.eye(5)
    sims[0, 1] = sims[1, 0] = 0.95  # Latn-Grek: linked
    sims[1, 2] = sims[2, 1] = 0.99  # Grek-Grek: same script, not a link
    sims[3, 4] = sims[4, 3] = 0.91  # Cyrl-Latn: linked
    ids = tool.clusters(["Latn", "Grek", "Grek", "Cyrl", "Latn"], sims)
    assert ids.tolist() == [0, 0, 1, 2, 2]
