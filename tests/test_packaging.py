"""Packaging: pip keeps a runtime's JAX, the lower bounds are the tested ones, one repository URL.

The install-plan test asks pip what ``pip install <this repository>`` would do
in an environment that already holds a newer JAX than this repository tests
(jax/jaxlib 0.11.2 with the CUDA plugin, flax, optax and orbax-checkpoint of
later releases), as on Colab or a GPU machine: jaxcnn must be the only package
in the plan. The environment is a throwaway venv that sees this venv's
packages through a ``.pth`` file, with distribution metadata of the newer
releases in front of them; everything is installed already, so pip needs no
index (``--no-index``: offline, a few seconds). An upper bound on jax would
make the plan fail (no jax<0.11 to be found) or replace jax.
"""
from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint")

# What a GPU runtime may already have, newer than constraints.txt.
NEWER_RUNTIME = {
    "jax": ("0.11.2", ["jaxlib<=0.11.2,>=0.11.2"]),
    "jaxlib": ("0.11.2", []),
    "jax-cuda12-plugin": ("0.11.2", ["jax-cuda12-pjrt==0.11.2"]),
    "jax-cuda12-pjrt": ("0.11.2", []),
    "flax": ("0.13.1", ["jax>=0.11"]),
    "optax": ("0.3.0", ["jax>=0.11"]),
    "orbax-checkpoint": ("0.13.0", ["jax>=0.11"]),
}


def _dependencies() -> dict[str, Requirement]:
    requirements = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    return {requirement.name: requirement for requirement in requirements}


def _oldest_pins() -> dict[str, str]:
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r"^OLDEST_PINS := (.*)$", makefile, re.M).group(1)
    return dict(pin.split("==") for pin in line.split())


def repository_url() -> str:
    return PYPROJECT["project"]["urls"]["Repository"]


def test_runtime_packages_have_lower_bounds_only():
    dependencies = _dependencies()
    for name in (*RUNTIME_PACKAGES, "numpy"):
        operators = {spec.operator for spec in dependencies[name].specifier}
        assert operators == {">="}, f"{name}: {dependencies[name]} (an upper bound replaces a runtime's newer JAX)"


def test_lower_bounds_are_the_versions_make_test_oldest_installs():
    dependencies, pins = _dependencies(), _oldest_pins()
    assert set(pins) == set(RUNTIME_PACKAGES)
    for name, version in pins.items():
        lower = [spec.version for spec in dependencies[name].specifier if spec.operator == ">="]
        assert [Version(v) for v in lower] == [Version(version)], (
            f"{name}: {dependencies[name]}, but make test-oldest tests {version}"
        )


def test_repository_url_is_declared_once_and_used_by_the_install_cell():
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    cell = (ROOT / "colab" / "install_cell.py").read_text()
    assert f'"jaxcnn @ git+{url}"' in cell


def _fake_distribution(site_packages: pathlib.Path, name: str, version: str, requires: list[str]) -> None:
    info = site_packages / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs a virtual environment (make test's .venv)")
def test_install_plan_keeps_a_newer_jax_and_its_plugin(tmp_path):
    env = tmp_path / "runtime"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    env_python = env / "bin" / "python"
    env_site = pathlib.Path(
        subprocess.run(
            [str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )
    # This venv's packages (flax's and tfds's dependencies, setuptools for the build) ...
    (env_site / "this_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # ... behind the newer releases: the env's own site-packages comes first on sys.path.
    for name, (version, requires) in NEWER_RUNTIME.items():
        _fake_distribution(env_site, name, version, requires)

    report = tmp_path / "plan.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_python), "install", "--dry-run",
         "--no-index", "--no-build-isolation", "--quiet", "--report", str(report), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"pip could not plan the install:\n{result.stdout}\n{result.stderr}"
    plan = {item["metadata"]["name"]: item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}
    assert plan == {"jaxcnn": PYPROJECT["project"]["version"]}, plan


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs a virtual environment (make test's .venv)")
def test_the_wheel_for_colab_holds_the_package_and_declares_the_repository(tmp_path):
    """What `make wheel` builds (the file a notebook's install cell installs when it is uploaded)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("jaxcnn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"jaxcnn-{PYPROJECT['project']['version']}.dist-info/METADATA").decode()
    assert {"jaxcnn/__init__.py", "jaxcnn/train/loop.py", "jaxcnn/native/onednn_conv.cc"} <= names
    assert not any(name.startswith(("tests/", "colab/", "experiments/")) for name in names)
    assert f"Project-URL: Repository, {repository_url()}" in metadata
    assert "Requires-Dist: jax>=0.10\n" in metadata
