"""The notebooks in notebooks/ run from top to bottom without errors, at their small size
(``MLCSC_NOTEBOOK_QUICK=1``: each under two minutes on 2 CPU cores)."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("MLCSC_NOTEBOOK_QUICK", "1")  # the kernel inherits the environment
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute(
        cwd=str(path.parent)
    )
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors


def test_the_lecture_notebooks_are_there():
    names = {path.name for path in NOTEBOOKS}
    expected = {"01_sparseland.ipynb", "02_csc.ipynb", "03_ml_csc.ipynb", "04_training.ipynb"}
    assert expected <= names, f"missing: {sorted(expected - names)}"
