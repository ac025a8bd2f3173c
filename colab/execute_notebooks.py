"""Execute the Colab notebooks top to bottom in quick mode; exit 1 on the first cell that raises.

    python colab/execute_notebooks.py [--write] [NOTEBOOK ...]     (`make notebooks`)

Each notebook runs with nbclient in a fresh kernel of THIS interpreter (the
repository's venv, where jaxcnn is importable, so the install cell is a no-op),
in a temporary working directory, with ``JAXCNN_NOTEBOOK_QUICK=1`` and
``MPLBACKEND`` set to matplotlib-inline's backend: headless (it draws with Agg)
but, unlike plain ``Agg``, ``plt.show()`` puts each figure in the cell's outputs
as a PNG, so the committed notebooks show their plots. Cells hold their own asserts, so a wrong value fails the
run like an exception does. ``--write`` stores the executed notebook (with its
outputs, so it renders on GitHub) back in place; without it the files are left
untouched. Prints each notebook's wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import nbclient
import nbformat

COLAB = pathlib.Path(__file__).resolve().parent
KERNEL_NAME = "jaxcnn-venv"
# Per cell; quick mode is meant to take a few minutes per notebook on a 2-core CPU.
CELL_TIMEOUT_S = 900


def _kernel_spec_dir(root: pathlib.Path) -> pathlib.Path:
    """A kernel spec named KERNEL_NAME whose kernel is this interpreter; returns a JUPYTER_PATH entry."""
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (jaxcnn venv)",
        "language": "python",
    }))
    return root


def execute(path: pathlib.Path, *, write: bool) -> float:
    """Run one notebook; returns its wall time in seconds. Raises nbclient's CellExecutionError."""
    notebook = nbformat.read(path, as_version=4)
    kernelspec = notebook.metadata.get("kernelspec")
    with tempfile.TemporaryDirectory(prefix=f"{path.stem}-") as workdir:
        client = nbclient.NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": workdir}},
        )
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    if write:
        # Colab's kernel, not this machine's, is what the committed file should name.
        if kernelspec is not None:
            notebook.metadata["kernelspec"] = kernelspec
        nbformat.write(notebook, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path, help="default: every colab/*.ipynb")
    parser.add_argument("--write", action="store_true", help="store the outputs back in the notebooks")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(COLAB.glob("*.ipynb"))
    os.environ["JAXCNN_NOTEBOOK_QUICK"] = "1"
    # Not "Agg": with it plt.show() draws nothing into the notebook.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    with tempfile.TemporaryDirectory(prefix="jaxcnn-kernel-") as kernels:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            filter(None, [str(_kernel_spec_dir(pathlib.Path(kernels))), os.environ.get("JUPYTER_PATH")])
        )
        for path in paths:
            print(f"{path.name}: running", flush=True)
            try:
                seconds = execute(path, write=args.write)
            except nbclient.exceptions.CellExecutionError as error:
                print(f"{path.name}: FAILED\n{error}", flush=True)
                return 1
            print(f"{path.name}: ok in {seconds:.0f} s{' (outputs written)' if args.write else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
