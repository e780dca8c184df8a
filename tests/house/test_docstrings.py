"""One docstring style in ``metaleep/``: numpydoc sections, entries named ``name:``.

Sections are numpydoc's, a title underlined with dashes (``Parameters``, ``Returns``,
``Examples``, ...), never Google's ``Args:`` / ``Returns:`` lines; a Parameters or Attributes
entry is the name (or names) and a colon, its description indented below, its type in the
annotation (as :func:`metaleep.metrics.spec.define_metric` writes them), not ``name : type``; a
Returns entry is the returned type, its description indented below.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import metaleep

PACKAGE = Path(metaleep.__file__).parent

SECTIONS = {
    "Parameters",
    "Attributes",
    "Returns",
    "Yields",
    "Raises",
    "Warns",
    "Notes",
    "Examples",
    "See Also",
    "References",
}
"""numpydoc's section titles."""

GOOGLE = re.compile(
    r"^\s*(Args|Arguments|Keyword Args|Returns|Return|Raises|Yields|Examples?|Notes?|"
    r"Attributes|Parameters|See Also|References):\s*$"
)
TYPED_ENTRY = re.compile(r"^[\w*, ]+ : \S")


def _docstrings() -> list[tuple[str, str, str]]:
    """``(file, object, docstring)`` of every module, class and function of metaleep."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    out.append((rel, getattr(node, "name", "<module>"), doc))
    return out


def _problems(rel: str, name: str, doc: str) -> list[str]:
    lines = doc.splitlines()
    found = []
    section = None
    for i, line in enumerate(lines):
        underlined = i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip())
        if underlined and line.strip():
            section = line.strip()
            if section in SECTIONS and len(lines[i + 1].strip()) != len(section):
                found.append(f"{rel}:{name}: {section!r} underlined with another length")
            continue
        if GOOGLE.match(line) and not underlined:
            found.append(f"{rel}:{name}: Google-style section {line.strip()!r}")
        if section in ("Parameters", "Attributes") and TYPED_ENTRY.match(line):
            found.append(
                f"{rel}:{name}: entry {line.strip()!r} (write `name:`; the type is annotated)"
            )
        if section in ("Returns", "Yields") and line[:1].strip() and line.endswith(":"):
            found.append(f"{rel}:{name}: Returns entry {line!r} (write the type, then the text)")
    return found


def test_one_docstring_style() -> None:
    docs = _docstrings()
    assert len(docs) > 300
    problems = [p for doc in docs for p in _problems(*doc)]
    assert problems == []


def test_the_checks_find_the_other_styles() -> None:
    google = "Summary.\n\nArgs:\n    x: a value.\n\nReturns:\n    The value."
    assert [p.split(": ", 1)[1] for p in _problems("m.py", "f", google)] == [
        "Google-style section 'Args:'",
        "Google-style section 'Returns:'",
    ]
    typed = "Summary.\n\nParameters\n----------\nx : int\n    A value.\ny:\n    Another."
    assert _problems("m.py", "f", typed) == [
        "m.py:f: entry 'x : int' (write `name:`; the type is annotated)"
    ]
    assert _problems("m.py", "f", "Summary.\n\nNotes\n---\nShort rule.") == [
        "m.py:f: 'Notes' underlined with another length"
    ]
    returns = "Summary.\n\nReturns\n-------\n(mean, width):\n    The mean and the width."
    assert _problems("m.py", "f", returns) == [
        "m.py:f: Returns entry '(mean, width):' (write the type, then the text)"
    ]
