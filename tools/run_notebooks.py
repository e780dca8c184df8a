#!/usr/bin/env python
"""Execute the notebooks and store them with their outputs (``make notebooks``).

Each notebook in ``notebooks/`` runs top to bottom in a fresh kernel whose working folder is
the repository root (its studies write under ``runs/``, which git ignores). Its outputs are
then made portable -- the repository root, the cache folder and the home folder are written
as ``.``, ``$METALEEP_CACHE_DIR`` and ``~`` -- and checked: no error, nothing on stderr, no
warning text, no absolute path. A notebook is written back only when it is clean; otherwise the
script names the cell and what is wrong, leaves the file as it was and exits 1.

The test suite runs the same checks on the committed notebooks (``problems``) and executes
them on a small configuration.

Usage::

    make notebooks                                   # every notebook
    python tools/run_notebooks.py notebooks/quickstart.ipynb --timeout 1800
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED_BY = "tools/run_notebooks.py"

WARNING_TEXT = re.compile(r"Warning\b|warnings\.warn|Traceback \(most recent call last\)|IProgress")
"""Text that must not appear in an output: warnings, tracebacks, tqdm's notebook complaint."""

ABSOLUTE_PATH = re.compile(
    r"(?:^|[\s'\"(=:,\[])(/(?:root|home|tmp|Users|usr|opt|var|work|srv|mnt)/)"
)
"""An absolute path of a machine (a POSIX home, temporary or system folder)."""


def _output_texts(output: dict) -> Iterable[str]:
    """The text of an output: a stream's, an error's, and every text/* or JSON data entry."""
    if output.get("output_type") == "stream":
        yield str(output.get("text", ""))
    elif output.get("output_type") == "error":
        yield "\n".join([str(output.get("ename", "")), str(output.get("evalue", ""))])
    for kind, value in (output.get("data") or {}).items():
        if kind.startswith("text/") or kind.endswith("json"):
            yield value if isinstance(value, str) else "".join(value)


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What is wrong with a notebook's outputs, one line per problem (empty when clean)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            where = f"cell {index}"
            if output.get("output_type") == "error":
                found.append(f"{where}: error {output.get('ename')}: {output.get('evalue')}")
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                found.append(f"{where}: writes to stderr: {str(output.get('text'))[:200]!r}")
            for text in _output_texts(output):
                if match := WARNING_TEXT.search(text):
                    found.append(f"{where}: warning text {match.group(0)!r}")
                if match := ABSOLUTE_PATH.search(text):
                    found.append(f"{where}: absolute path {match.group(1)!r}...")
    return found


def _replacements() -> list[tuple[str, str]]:
    """Machine paths and what an output says instead, the longest first."""
    pairs = [(str(ROOT) + os.sep, ""), (str(ROOT), ".")]
    cache = os.environ.get("METALEEP_CACHE_DIR")
    if cache:
        pairs.append((str(Path(cache).expanduser().resolve()), "$METALEEP_CACHE_DIR"))
    pairs.append((str(Path.home()), "~"))
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def portable(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Outputs with machine paths replaced, and no per-run metadata (execution times)."""
    pairs = _replacements()

    def fix(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = fix(str(output["text"]))
            for kind, value in (output.get("data") or {}).items():
                if kind.startswith("text/"):
                    output["data"][kind] = fix(value if isinstance(value, str) else "".join(value))
    notebook.metadata.pop("widgets", None)
    notebook.metadata["metaleep"] = {"executed_by": EXECUTED_BY}
    return notebook


def execute(path: Path, *, timeout: int) -> nbformat.NotebookNode:
    """``path`` executed top to bottom in a fresh ``python3`` kernel from the repository root."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    return notebook


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="Notebooks to run (default: notebooks/*.ipynb)."
    )
    parser.add_argument("--timeout", type=int, default=1800, help="Seconds per cell.")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    failed = False
    for path in paths:
        started = time.perf_counter()
        try:
            notebook = portable(execute(path, timeout=args.timeout))
        except Exception as error:  # a cell raised: nbclient says which
            print(f"{path}: not run to the end: {error}", file=sys.stderr)
            failed = True
            continue
        found = problems(notebook)
        if found:
            print(f"{path}: not written:", *found, sep="\n  ", file=sys.stderr)
            failed = True
            continue
        nbformat.write(notebook, path)
        print(f"{path}: executed in {time.perf_counter() - started:.0f} s, outputs written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
