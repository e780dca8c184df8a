"""The notebooks run top to bottom on a small configuration (and are committed without outputs)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist_and_are_committed_without_outputs():
    assert {p.name for p in NOTEBOOKS} >= {
        "quickstart.ipynb",
        "source_selection.ipynb",
        "your_model.ipynb",
    }
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tiny_backbones, tmp_path):
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
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    figures = [
        i
        for i, c in enumerate(notebook.cells)
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    # quickstart: contact sheet + scatter plots; selection: the selection plot
    assert len(figures) >= (2 if path.stem == "quickstart" else 1), figures
    assert (tmp_path / "study" / "report.html").is_file()
