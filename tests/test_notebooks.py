"""The Colab notebooks' structure (cheap: reads the files, runs nothing).

Executing them is `make notebooks` (colab/execute_notebooks.py), its own CI
step after `make test`. Here: every notebook opens with the fixed install cell
(colab/install_cell.py), says what hardware its outputs come from and how long
the run took, announces its quick mode, is committed with its outputs, uses
only the public API, and is linked from README's "Notebooks" section with a
Colab badge of the repository declared in pyproject.toml.
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
NOTEBOOKS = sorted(COLAB.glob("*.ipynb"))
INSTALL_CELL = (COLAB / "install_cell.py").read_text()
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]

# A private module or name of jaxcnn: jaxcnn.functional._checks, from jaxcnn.x import _y.
PRIVATE = re.compile(r"\bjaxcnn(\.\w+)*\._\w*|\bfrom\s+jaxcnn(\.\w+)*\s+import\s+[^\n]*\b_\w+")
HARDWARE = re.compile(r"\b(CPU|GPU|TPU)s?\b")
DURATION = re.compile(r"\b\d+(\.\d+)?\s*(s|sec|seconds|min|minutes)\b")


def _cells(path: pathlib.Path, kind: str) -> list[dict]:
    notebook = json.loads(path.read_text())
    return [cell for cell in notebook["cells"] if cell["cell_type"] == kind]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def test_there_are_notebooks():
    names = [path.name for path in NOTEBOOKS]
    assert {"01_functional_tour.ipynb", "02_train_lenet5.ipynb"} <= set(names)


def test_the_install_cell_installs_from_the_declared_repository():
    assert f'"jaxcnn @ git+{REPOSITORY}"' in INSTALL_CELL


def _run_install_cell(monkeypatch, *, importable: bool) -> list[list[str]]:
    """Execute the install cell with pip replaced by a recorder; returns the commands it ran."""
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *args: (find_spec(name, *args) if importable or name != "jaxcnn" else None),
    )
    exec(compile(INSTALL_CELL, "colab/install_cell.py", "exec"), {})  # noqa: S102 - our own cell
    return commands


def test_install_cell_is_a_no_op_where_jaxcnn_is_importable(monkeypatch):
    assert _run_install_cell(monkeypatch, importable=True) == []


def test_install_cell_installs_an_uploaded_wheel_else_the_repository(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert _run_install_cell(monkeypatch, importable=False) == [pip + [f"jaxcnn @ git+{REPOSITORY}"]]
    (tmp_path / "jaxcnn-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert _run_install_cell(monkeypatch, importable=False) == [pip + ["jaxcnn-0.1.0-py3-none-any.whl"]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_first_code_cell_is_the_install_cell(path):
    first = _source(_cells(path, "code")[0])
    assert first.rstrip("\n") == INSTALL_CELL.rstrip("\n"), (
        f"{path.name}: the first code cell must be colab/install_cell.py verbatim"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_opening_cell_says_hardware_and_run_time(path):
    notebook = json.loads(path.read_text())
    opening = notebook["cells"][0]
    assert opening["cell_type"] == "markdown", f"{path.name}: opens with a markdown cell"
    text = _source(opening)
    assert HARDWARE.search(text) and DURATION.search(text), (
        f"{path.name}: the opening cell must say what hardware the outputs were last run on "
        "and how long the run took (e.g. '2-core CPU, quick mode, 95 s')"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_quick_mode_is_read_from_the_environment(path):
    code = "\n".join(_source(cell) for cell in _cells(path, "code"))
    assert "JAXCNN_NOTEBOOK_QUICK" in code, f"{path.name}: quick mode must follow JAXCNN_NOTEBOOK_QUICK"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_with_outputs(path):
    unexecuted = [
        index for index, cell in enumerate(_cells(path, "code")) if cell.get("execution_count") is None
    ]
    assert not unexecuted, (
        f"{path.name}: code cells {unexecuted} have no outputs; run "
        "`python colab/execute_notebooks.py --write` before committing"
    )
    errors = [
        output for cell in _cells(path, "code") for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: committed with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_plots_are_in_the_outputs(path):
    """A notebook that plots keeps its figures (executed with the inline backend, not plain Agg)."""
    cells = _cells(path, "code")
    plotting = [index for index, cell in enumerate(cells) if "plt.show()" in _source(cell)]
    without_figure = [
        index for index in plotting
        if not any("image/png" in output.get("data", {}) for output in cells[index].get("outputs", []))
    ]
    assert not without_figure, f"{path.name}: code cells {without_figure} call plt.show() but hold no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_uses_only_the_public_api(path):
    for cell in _cells(path, "code"):
        match = PRIVATE.search(_source(cell))
        assert match is None, f"{path.name}: private jaxcnn name {match.group(0)!r}"


def test_private_pattern_catches_private_names():
    assert PRIVATE.search("from jaxcnn.functional._checks import as_tuple")
    assert PRIVATE.search("from jaxcnn.functional.conv import _unfold_nd")
    assert PRIVATE.search("x = jaxcnn.train._runner")
    assert not PRIVATE.search("from jaxcnn.train.config import TrainConfig\nimport jaxcnn.functional as F")


def test_readme_links_every_notebook_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Notebooks", 1)[1].split("\n## ", 1)[0]
    repository = REPOSITORY.removeprefix("https://github.com/")
    badges = re.findall(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/colab/([\w.-]+\.ipynb)", section)
    assert badges and {repo for repo, _ in badges} == {repository}
    # Notebooks written in other branches may be listed before they land; every one here is listed.
    missing = {path.name for path in NOTEBOOKS} - {name for _, name in badges}
    assert not missing, f"README's Notebooks section does not list {sorted(missing)}"
