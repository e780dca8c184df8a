"""Every public import the README and the notebooks show still works.

The imports are read from the README's Python code blocks and from the notebooks' code cells
(``from metaleep... import ...`` and ``import metaleep...``, parsed with ``ast``), and every
name of metaleep the README's prose cites in backticks (```metaleep.metrics.METRICS```,
```metaleep.score(...)```): a module moved or a name renamed fails here, not in a reader's hands.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def _notebook_cells(path: Path) -> list[str]:
    notebook = json.loads(path.read_text())
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    sources = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells
    ]
    # IPython magics and shell escapes are not Python
    return [
        "\n".join(ln for ln in s.splitlines() if not ln.lstrip().startswith(("%", "!")))
        for s in sources
    ]


def _imports(code: str, where: str) -> set[tuple[str, str | None, str]]:
    """``{(module, name or None, where)}`` for every import of metaleep in ``code``."""
    found: set[tuple[str, str | None, str]] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("metaleep"):
            found.update((node.module or "", alias.name, where) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update((a.name, None, where) for a in node.names if a.name.startswith("metaleep"))
    return found


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _attribute_uses(code: str) -> set[str]:
    """``metaleep.x.y`` read in ``code`` after ``import metaleep`` (``metaleep.score(...)``)."""
    tree = ast.parse(code)
    if not any(
        isinstance(n, ast.Import) and any(a.name == "metaleep" and not a.asname for a in n.names)
        for n in ast.walk(tree)
    ):
        return set()
    found = {_dotted(node) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names = {n for n in found if n and n.startswith("metaleep.")}
    # a chain a.b.c also yields a.b: keep the longest, which resolves the others on the way
    return {n for n in names if not any(m.startswith(n + ".") for m in names)}


def _cited_names(markdown: str) -> set[str]:
    """Dotted names of metaleep cited in backticks in the prose (``metaleep.x.y``, calls too)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return set(re.findall(r"`(metaleep(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`", prose))


def documented_imports() -> list[tuple[str, str | None, str]]:
    found = set()
    for i, block in enumerate(_python_blocks(README.read_text())):
        found |= _imports(block, f"README.md python block {i + 1}")
    for path in NOTEBOOKS:
        for i, cell in enumerate(_notebook_cells(path)):
            found |= _imports(cell, f"{path.name} code cell {i + 1}")
    return sorted(found, key=lambda t: (t[0], t[1] or "", t[2]))


def _resolve(dotted: str) -> object:
    """The object ``dotted`` names: its longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def cited_names() -> list[str]:
    """Names cited in the README's prose, and read as ``metaleep.x.y`` in its code and the
    notebooks' cells."""
    found = _cited_names(README.read_text())
    for code in [*_python_blocks(README.read_text())] + [
        cell for path in NOTEBOOKS for cell in _notebook_cells(path)
    ]:
        found |= _attribute_uses(code)
    return sorted(found)


IMPORTS = documented_imports()
CITED = cited_names()


def test_the_documentation_is_read() -> None:
    """The extraction finds what the README and notebooks are known to show."""
    pairs = {(module, name) for module, name, _ in IMPORTS}
    assert {
        ("metaleep.study", "run_study"),
        ("metaleep.backbones", "from_module"),
        ("metaleep.metrics", "leep_score"),
        ("metaleep.report.plots", "scatter_metrics"),
    } <= pairs
    assert {"metaleep.score", "metaleep.metrics.spec.define_metric", "metaleep.adapt"} <= set(CITED)
    assert len(NOTEBOOKS) >= 3


def _check_import(module: str, name: str | None, where: str) -> None:
    imported = importlib.import_module(module)
    if name is None or name == "*" or hasattr(imported, name):
        return
    submodule = hasattr(imported, "__path__") and importlib.util.find_spec(f"{module}.{name}")
    assert submodule, f"{where}: `from {module} import {name}` fails"


def test_a_stale_name_is_caught() -> None:
    """The checks fail on what the house no longer has (the modules before issue 19's moves)."""
    text = (
        "Prose citing `metaleep.study.analysis.correlations`.\n\n```python\n"
        "from metaleep.study.plots import scatter_metrics\nimport metaleep\n"
        "metaleep.study.adaptation.retrain_head\nfrom metaleep.adapt.registry import nope\n```\n"
    )
    (block,) = _python_blocks(text)
    stale = sorted(_imports(block, "test"))
    assert [(m, n) for m, n, _ in stale] == [
        ("metaleep", None),
        ("metaleep.adapt.registry", "nope"),
        ("metaleep.study.plots", "scatter_metrics"),
    ]
    with pytest.raises(AssertionError, match=re.escape("import nope` fails")):
        _check_import(*stale[1])
    with pytest.raises(ModuleNotFoundError):
        _check_import(*stale[2])
    for dotted in (*_cited_names(text), *_attribute_uses(block)):
        with pytest.raises(AttributeError):
            _resolve(dotted)


@pytest.mark.parametrize(("module", "name", "where"), IMPORTS, ids=lambda v: str(v))
def test_documented_import_works(module: str, name: str | None, where: str) -> None:
    _check_import(module, name, where)


@pytest.mark.parametrize("dotted", CITED)
def test_name_cited_in_the_readme_exists(dotted: str) -> None:
    _resolve(dotted)
