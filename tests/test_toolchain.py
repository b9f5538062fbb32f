"""`verdigris doctor` and the Verilator shim."""

import os
import subprocess
import sys
from pathlib import Path

from verdigris.toolchain import install_verilator_shim

VENV_BIN = Path(sys.executable).parent


def _doctor(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "verdigris", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_doctor_passes_with_the_full_toolchain():
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = _doctor(env)
    assert result.returncode == 0, result.stdout
    for name in ("amaranth", "verilator", "cocotb", "nextpnr-ecp5", "ecppack", "openFPGALoader"):
        assert f" {name} " in result.stdout


def test_doctor_fails_clearly_without_verilator():
    # The system folders only: no venv bin, so neither the shim nor the cocotb scripts.
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = _doctor(env)
    assert result.returncode == 1
    verilator_line = next(line for line in result.stdout.splitlines() if " verilator " in line)
    assert verilator_line.lstrip().startswith("FAIL")
    assert "`verilator` is not on PATH" in result.stdout
    assert "make install" in result.stdout
    assert "a tool needed to compile or simulate is missing" in result.stdout


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
