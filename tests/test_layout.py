"""The package map of README.md's "Layout" section: no module imports upward.

Every ``import``/``from ... import`` of a ``jaxcnn`` module, at module level or
inside a function (lazy imports count too), is checked against the packages
its own package may use.
"""
import ast
from pathlib import Path

import pytest

import jaxcnn

ROOT = Path(jaxcnn.__file__).parent
PACKAGES = ("functional", "nn", "nnx", "models", "data", "train", "summary", "bench", "native",
            "cli")

# What each package may import from jaxcnn (itself always). The arrows of README's map.
ALLOWED = {
    "native": set(),
    "functional": {"native"},
    "nn": {"functional"},
    "nnx": {"functional", "nn", "models", "native"},
    "models": {"nn", "functional"},
    "data": {"functional"},
    "train": {"functional", "nn", "nnx", "models", "data", "native"},
    "summary": {"functional", "nn", "nnx", "models"},
    "bench": {"functional", "nn", "nnx", "models", "data", "train", "summary", "native"},
    "cli": {"train", "summary", "bench", "native", "models", "data", "functional", "nn", "nnx"},
}


def _package_of(path: Path) -> str | None:
    parts = path.relative_to(ROOT).parts
    if parts[0] in PACKAGES:
        return parts[0]
    if parts == ("cli.py",):
        return "cli"
    return None  # jaxcnn/__init__.py, __main__.py: the top, may use anything


def _imported_packages(source: str, package: str | None) -> set[str]:
    """The jaxcnn packages ``source`` imports (absolute and relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the importing package
                module = f"jaxcnn.{package}.{node.module or ''}" if package else "jaxcnn"
            else:
                module = node.module or ""
            if module == "jaxcnn":  # from jaxcnn import data, models
                names = [f"jaxcnn.{alias.name}" for alias in node.names]
            else:
                names = [module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "jaxcnn" and len(parts) > 1:
                found.add("cli" if parts[1] == "cli" else parts[1])
    return found


def _violations(source: str, package: str) -> set[str]:
    used = _imported_packages(source, package) & set(PACKAGES)
    return used - ALLOWED[package] - {package}


def test_no_module_imports_upward():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        package = _package_of(path)
        if package is None:
            continue
        for bad in sorted(_violations(path.read_text(), package)):
            problems.append(f"{path.relative_to(ROOT.parent)} ({package}) imports jaxcnn.{bad}")
    assert not problems, "upward imports:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, package, upward", [
    ("from jaxcnn.nn import Conv", "functional", {"nn"}),
    ("def f():\n    from jaxcnn import models, data\n", "functional", {"models", "data"}),
    ("import jaxcnn.train.loop", "nn", {"train"}),
    ("from jaxcnn.train import steps", "models", {"train"}),
    ("from jaxcnn.data import load", "models", {"data"}),
    ("from jaxcnn.cli import main", "train", {"cli"}),
    ("from jaxcnn import models", "data", {"models"}),
    ("from jaxcnn.functional import conv", "nn", set()),
    ("from . import filters", "functional", set()),
])
def test_the_check_catches_upward_imports(source, package, upward):
    assert _violations(source, package) == upward


def test_every_package_is_in_the_map():
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | {"cli"}
    assert on_disk <= set(PACKAGES), on_disk - set(PACKAGES)
