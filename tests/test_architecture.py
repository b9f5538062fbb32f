"""Who may import whom: the table of the architecture brief (README, "Where things live"),
checked on every import statement of every module, including those inside functions; and in
tests/, that test modules share code only through tests/support."""

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


def _test_imports(path: Path) -> set[str]:
    """Every module under `tests` that `path` (a module under ROOT/tests) imports, relative
    imports resolved; for `from a import b`, a.b (b may be a module)."""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in names if name == "tests" or name.startswith("tests.")}


def _outside_support(names: set[str]) -> set[str]:
    return {name for name in names if not name.startswith("tests.support.")}


def test_test_modules_import_only_tests_support():
    """No test module imports another (nor conftest.py): what tests share lives in
    tests/support, which imports nothing else of tests/ either."""
    problems = set()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for name in sorted(_outside_support(_test_imports(path))):
            problems.add(f"{path.relative_to(ROOT)} imports {name}")
    assert not problems, "\n".join(sorted(problems))


def test_the_test_import_check_sees_imports_of_test_modules(tmp_path, monkeypatch):
    folder = tmp_path / "tests" / "rtl"
    folder.mkdir(parents=True)
    module = folder / "test_m.py"
    module.write_text(
        "from ..hw.test_pe import BrokenPE\n"
        "from .test_other import CASES\n"
        "from tests.compiler import tiny\n"
        "import tests.exact\n"
        "from tests.support.pe import PE_MAIN\n"
        "from ..support import faults\n"
        "def f():\n    from tests.hw.test_array import X\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert _outside_support(_test_imports(module)) == {
        "tests.hw.test_pe.BrokenPE",
        "tests.rtl.test_other.CASES",
        "tests.compiler.tiny",
        "tests.exact",
        "tests.hw.test_array.X",
    }
