"""The notebooks: committed with the outputs of ``make notebooks`` (tools/run_notebooks.py),
free of warnings and machine paths, and still run top to bottom on a small configuration."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", ROOT / "tools" / "run_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_notebooks"] = module
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_committed_with_clean_outputs_of_the_script(tool):
    assert {p.name for p in NOTEBOOKS} >= {
        "quickstart.ipynb",
        "source_selection.ipynb",
        "your_model.ipynb",
    }
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata.get("metaleep") == {"executed_by": tool.EXECUTED_BY}, path.name
        code = [c for c in notebook.cells if c.cell_type == "code"]
        # run top to bottom in one kernel: every code cell, in order
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), path.name
        assert sum(bool(c.outputs) for c in code) >= len(code) // 2, path.name
        assert tool.problems(notebook) == [], path.name


def test_the_checks_catch_warnings_stderr_and_machine_paths(tool):
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="TqdmWarning: IProgress not found"),
        nbformat.v4.new_output("stream", name="stdout", text="saved to /home/me/runs/x.csv"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "'/tmp/abc'"}),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    found = tool.problems(notebook)
    assert any("writes to stderr" in f for f in found)
    assert any("warning text 'Warning'" in f for f in found)
    assert sum("absolute path" in f for f in found) == 2
    root = nbformat.v4.new_output("stream", name="stdout", text=f"{ROOT}/runs/x/report.html")
    cell.outputs = [root]
    assert tool.problems(tool.portable(notebook)) == []
    assert cell.outputs[0]["text"] == "runs/x/report.html"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tiny_backbones, tmp_path, tool):
    notebook = nbformat.read(path, as_version=4)
    parameters = notebook.cells[1]
    assert parameters.source.startswith("# Parameters"), "cell 1 must hold the parameters"
    names = ("maml", "supervised") if path.stem == "quickstart" else tuple(tiny_backbones)
    if path.stem == "your_model":
        names = ("maml", "supervised")
    parameters.source = (
        f'SUITE = "glyphs-smoke"\nBACKBONES = {tuple(tiny_backbones[n] for n in names)!r}\n'
        f"EPISODES = 10\nOUT = {str(tmp_path / 'study')!r}\nTRAIN_STEPS = 3\n"
    )
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    # no error, nothing on stderr, no warning (the paths here are the test's own)
    found = [f for f in tool.problems(notebook) if "absolute path" not in f]
    assert found == []
    figures = [
        i
        for i, c in enumerate(notebook.cells)
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    # quickstart: contact sheet, forest plot and scatter plots; selection: the selection plot
    assert len(figures) >= (3 if path.stem == "quickstart" else 1), figures
    assert (tmp_path / "study" / "report.html").is_file()
