"""metaleep.adapt is a floor below backbones/ and study/: cheap to import, importing neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import metaleep.adapt

PACKAGE = Path(metaleep.adapt.__file__).parent


def test_imports_nothing_above_it() -> None:
    imported = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.startswith("metaleep")}
    assert not {n for n in ours if n.startswith(("metaleep.backbones", "metaleep.study"))}
    assert "learn2learn" not in {name.split(".")[0] for name in imported}


def test_import_is_cheap_and_lazy() -> None:
    code = (
        "import sys, metaleep.adapt; cheap = 'torch' not in sys.modules; "
        "from metaleep.adapt import InnerLoop; print(cheap, InnerLoop.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "metaleep.adapt.inner_loop"]
