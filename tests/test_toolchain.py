"""`verdigris doctor`, how tools are found, and the Verilator shim."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from verdigris import toolchain
from verdigris.sim.rtl import tools
from verdigris.toolchain import TOOLS, Status, Tool, check_tool, install_verilator_shim

VENV_BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The system folders only: neither the venv's bin (the shim, cocotb-config, yowasp-*) nor
# anything else a user may have put on PATH.
BARE_PATH = "/usr/bin:/bin"


def _verdigris(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The installed entry point, as a user without the venv activated runs it."""
    return subprocess.run(
        [str(VENV_BIN / "verdigris"), *args], capture_output=True, text=True, env=env, check=False
    )


def test_doctor_passes_with_the_full_toolchain():
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = _verdigris("doctor", env=env)
    assert result.returncode == 0, result.stdout
    for name in ("amaranth", "verilator", "cocotb", "nextpnr-ecp5", "ecppack", "openFPGALoader"):
        assert f" {name} " in result.stdout


def test_doctor_finds_the_venvs_tools_without_the_venv_on_path():
    result = _verdigris("doctor", env={**os.environ, "PATH": BARE_PATH})
    assert result.returncode == 0, result.stdout
    assert "on PATH" not in result.stdout
    verilator_line = next(line for line in result.stdout.splitlines() if " verilator " in line)
    assert verilator_line.lstrip().startswith("ok")
    assert str(VENV_BIN / "verilator") in verilator_line


def test_doctor_columns_align():
    result = _verdigris("doctor", env={**os.environ, "PATH": BARE_PATH})
    rows = [line for line in result.stdout.splitlines() if line[2:6] in ("ok  ", "WARN", "FAIL")]
    assert len(rows) == len(TOOLS)
    # The path (or "-") is the last column: it starts at the same place on every row.
    starts = {line.rindex(" ") for line in rows}
    assert len(starts) == 1, result.stdout


def test_a_long_version_line_is_cut_to_its_number():
    assert toolchain._short_version("g++ (Debian 12.2.0-14+deb12u1) 12.2.0") == "12.2.0"
    assert toolchain._short_version("GNU Make 4.3") == "4.3"
    assert len(toolchain._short_version("x" * 80)) == toolchain.VERSION_WIDTH


@pytest.fixture
def only_in(monkeypatch, tmp_path):
    """Tools are looked up in `tmp_path` (as the venv's scripts folder) and the system
    folders only."""
    monkeypatch.setattr(tools, "tool_folders", lambda: [tmp_path])
    monkeypatch.setenv("PATH", BARE_PATH)
    return tmp_path


def test_a_missing_verilator_fails_clearly(only_in):
    verilator = next(tool for tool in TOOLS if tool.name == "verilator")
    check = check_tool(verilator)
    assert check.status is Status.MISSING
    assert f"`verilator` is neither in {only_in} nor on PATH" == check.detail
    assert "make install" in check.fix


def _fake_tool(folder: Path, output: str, code: int) -> Tool:
    script = folder / "fake-tool"
    script.write_text(f"#!/bin/sh\necho '{output}' >&2\nexit {code}\n")
    script.chmod(0o755)
    return Tool("fake", "testing", False, None, ("fake-tool", "--Version"), "INSTALL", "LIBS")


def test_the_fix_matches_the_failure(only_in):
    missing = Tool("fake", "testing", False, None, ("no-such-tool", "--Version"), "INSTALL", "LIBS")
    assert (check_tool(missing).status, check_tool(missing).fix) == (Status.WARNING, "INSTALL")

    message = "fake: error while loading shared libraries: libusb-1.0.so.0: cannot open it"
    check = check_tool(_fake_tool(only_in, message, 127))
    assert check.status is Status.WARNING
    assert check.path == str(only_in / "fake-tool")
    assert check.detail == "installed, but cannot load the shared library libusb-1.0.so.0"
    assert check.fix == "LIBS"

    check = check_tool(_fake_tool(only_in, "something else broke", 3))
    assert (check.detail, check.fix) == ("something else broke", "INSTALL")
    assert check_tool(_fake_tool(only_in, "fake 1.2.3", 0)).fix == ""


def test_tool_env_puts_the_venvs_tools_first():
    env = tools.tool_env({"PATH": BARE_PATH, "HOME": "/home/x"})
    assert env["PATH"].split(os.pathsep)[0] == str(VENV_BIN)
    assert env["PATH"].endswith(BARE_PATH) and env["HOME"] == "/home/x"
    assert tools.find_tool("verilator") == str(VENV_BIN / "verilator")


@pytest.mark.verilator
def test_an_rtl_run_needs_no_venv_on_path(rtl_build_root, tmp_path):
    """`verdigris run --backend rtl` without the venv activated (building the core if this
    session has not yet: a test session builds each core once)."""
    root = rtl_build_root or Path(os.environ["VERDIGRIS_BUILD_DIR"])
    image = tmp_path / "one.npy"
    np.save(image, np.load(EXAMPLES / "digits_samples.npy")[:1])
    env = {**os.environ, "PATH": BARE_PATH, "VERDIGRIS_BUILD_DIR": str(root)}
    model = EXAMPLES / "models" / "lenet_qdq.onnx"
    result = _verdigris(
        "run", str(model), "--input", str(image), "--backend", "rtl", "--config", "tiny", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "rtl: 1 sample(s)" in result.stdout
    # Run again: the core is cached now, and the run time does not include a build.
    result = _verdigris(
        "run", str(model), "--input", str(image), "--backend", "rtl", "--config", "tiny", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "(cached core)" in result.stdout and "building" not in result.stderr


def test_verilator_shim_prints_a_version_number_and_runs_verilator(tmp_path):
    shim = install_verilator_shim(tmp_path)
    version = subprocess.run([shim, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[:2] == ["Verilator", "5.048"]
    # A real Verilator answers a lint-only run of a one-line module.
    source = tmp_path / "top.v"
    source.write_text("module top(input a, output b); assign b = a; endmodule\n")
    lint = subprocess.run(
        [shim, "--lint-only", str(source)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stderr
