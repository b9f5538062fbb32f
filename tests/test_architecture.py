"""Who may import whom: the table of the architecture brief (README, "Where things live"),
checked on every import statement of every module, including those inside functions."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Folder -> the verdigris packages its modules may import (their own included), and the
# third-party packages they must not import.
ALLOWED = {
    "arch": ({"arch"}, {"amaranth", "onnx", "onnxruntime"}),
    "compiler": ({"arch", "compiler"}, {"amaranth"}),
    "hw": ({"arch", "hw"}, {"onnx", "onnxruntime"}),
    "sim": ({"arch", "compiler.ir", "hw", "sim"}, {"onnxruntime"}),
    "energy": ({"arch", "sim", "energy"}, set()),
    "boards": ({"arch", "hw", "boards"}, {"onnx", "onnxruntime"}),
    "verify": ({"arch", "hw", "sim", "compiler", "verify"}, set()),
}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports; for `from a import b`, both a and a.b (b may be a
    module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _verdigris_package(name: str, allowed: set[str]) -> bool:
    """Whether `name` (verdigris.x.y...) lies inside one of the `allowed` packages. A bare
    parent (`verdigris.compiler` reached by `from verdigris.compiler import ir`) is allowed
    when a child of it is."""
    inner = name.removeprefix("verdigris.")
    return any(
        inner == package or inner.startswith(f"{package}.") or package.startswith(f"{inner}.")
        for package in allowed
    )


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_packages_import_only_what_the_architecture_allows(folder):
    allowed, forbidden = ALLOWED[folder]
    problems = set()
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in sorted(_imports(path)):
            top = name.split(".")[0]
            if name == "verdigris" or (
                name.startswith("verdigris.") and not _verdigris_package(name, allowed)
            ):
                problems.add(f"{path.relative_to(ROOT)} imports {name}")
            elif top in forbidden:
                problems.add(f"{path.relative_to(ROOT)} imports {top}")
    assert not problems, "\n".join(sorted(problems))


def test_the_check_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from verdigris.compiler.backend import compile_graph\n")
    names = _imports(module)
    assert "verdigris.compiler.backend.compile_graph" in names
    assert not _verdigris_package("verdigris.compiler.backend", {"arch", "compiler.ir"})
    assert _verdigris_package("verdigris.compiler", {"compiler.ir"})
