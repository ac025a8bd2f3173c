"""The Colab notebooks run top to bottom on a CPU.

Each notebook is executed with nbclient in a fresh kernel of this interpreter,
with JAXCNN_NOTEBOOK_QUICK=1 so the training notebook uses a subset of MNIST.
Cells hold their own asserts (values, not just "it ran"); any exception in a
cell fails the test with the cell's traceback.
"""
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = sorted(COLAB.glob("*.ipynb"))


def test_there_are_notebooks():
    assert [path.name for path in NOTEBOOKS] == ["01_functional_tour.ipynb", "02_train_lenet5.ipynb", "09_nnx_lenet5.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.setenv("JAXCNN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # The kernel must be this interpreter (the venv with jaxcnn installed), not
    # whatever "python3" a global Jupyter install would pick.
    _kernel_is_this_python(monkeypatch)
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors


def _kernel_is_this_python(monkeypatch):
    """Point the python3 kernel spec at sys.executable for the rest of the test."""
    from jupyter_client import kernelspec

    original = kernelspec.KernelSpecManager.get_kernel_spec

    def get_kernel_spec(manager, name):
        spec = original(manager, name)
        if name == "python3":
            spec.argv = [sys.executable, *spec.argv[1:]]
        return spec

    monkeypatch.setattr(kernelspec.KernelSpecManager, "get_kernel_spec", get_kernel_spec)
