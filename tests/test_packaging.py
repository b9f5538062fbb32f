"""The one `verdigris` namespace: every folder installs under it, and nothing generic leaks."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["arch", "compiler", "hw", "sim", "energy", "boards", "verify"]


def _python(code: str) -> subprocess.CompletedProcess:
    # Run outside the repository, so the working directory cannot make a folder importable.
    return subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=False
    )


def test_namespace_imports():
    names = ", ".join(f"verdigris.{name}" for name in SUBPACKAGES)
    result = _python(f"import {names}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_no_generic_top_level_module(name):
    result = _python(f"import {name}")
    assert "ModuleNotFoundError" in result.stderr


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {folder: package for package, folder in config["package-dir"].items()}
    found = set()
    for folder, package in folders.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *relative)))
    assert found == listed
