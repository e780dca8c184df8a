"""The house stays as built: no import circle inside ``metaleep/`` and no module taking another
module's private name.

Every import counts, wherever it stands (top of the module, inside a function, under
``TYPE_CHECKING``): a lazy import hides a circle from Python, not from a reader. A package's
``__init__`` only names what its modules hold, so an import of ``metaleep.x`` is an arrow to
``metaleep/x/__init__.py`` and an import of ``metaleep.x.y`` one to ``y`` alone.

The top package ``metaleep/__init__.py`` is the public face (``metaleep.score``,
``metaleep.__version__``): modules may read it and it may name anything, so it is no room of the
house and its arrows are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import metaleep

PACKAGE = Path(metaleep.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return {name: path for name, path in found.items() if name != "metaleep"}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(modules: dict[str, Path]) -> dict[str, set[tuple[str, str | None]]]:
    """``{module: {(imported module, name taken from it or None)}}``, metaleep's own only."""
    out: dict[str, set[tuple[str, str | None]]] = {}
    for name, path in modules.items():
        found: set[tuple[str, str | None]] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update((a.name, None) for a in node.names if a.name.startswith("metaleep"))
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(node, name, path.name == "__init__.py")
                if not source.startswith("metaleep"):
                    continue
                for alias in node.names:
                    child = f"{source}.{alias.name}"
                    # ``from metaleep.study import runner`` imports the module runner
                    found.add((child, None) if child in modules else (source, alias.name))
        out[name] = found
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_inside_metaleep() -> None:
    modules = _modules()
    graph = {
        name: {target for target, _ in found if target in modules and target != name}
        for name, found in _imports(modules).items()
    }
    assert _cycles(graph) == []


def test_no_module_imports_another_modules_private_name() -> None:
    modules = _modules()
    crossings = sorted(
        f"{name} takes {taken} from {source}"
        for name, found in _imports(modules).items()
        for source, taken in found
        if taken is not None
        and taken.startswith("_")
        and not taken.startswith("__")
        and source != name
    )
    assert crossings == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_circle_finder_finds_circles(graph: dict[str, set[str]], expected: list) -> None:
    assert _cycles(graph) == expected


def test_the_import_reader_sees_lazy_private_and_type_checking_imports(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from metaleep.b import B\n"
        "def f():\n    from metaleep.c import _private\n"
        "from metaleep import d\n"
    )
    path = tmp_path / "a.py"
    path.write_text(source)
    fake = {"metaleep.a": path, "metaleep.d": path}
    found = _imports(fake)["metaleep.a"]
    assert found == {("metaleep.b", "B"), ("metaleep.c", "_private"), ("metaleep.d", None)}
