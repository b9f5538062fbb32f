"""Shared test configuration."""

import os

import pytest


@pytest.fixture(scope="session")
def rtl_build_root(tmp_path_factory):
    """Where Verilator builds go: $VERDIGRIS_BUILD_DIR when set (reused across sessions,
    keyed by the Verilog hash), else a fresh folder for this session."""
    if "VERDIGRIS_BUILD_DIR" in os.environ:
        return None  # the harness reads the variable itself
    return tmp_path_factory.mktemp("rtl")
