"""Without Verilator the `verilator` tests are skipped with the reason and the fix, not failed
(tests/conftest.py). Not marked `verilator` itself: it must run where Verilator is missing."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Loaded into the inner pytest with -p before tests/conftest.py: the tool finder then looks in
# an empty folder instead of the venv's scripts folder (where the `verilator` shim lives).
HIDE_VENV_TOOLS = """\
from pathlib import Path

from verdigris.sim.rtl import tools

tools.tool_folders = lambda: [Path(__file__).parent / "empty"]
"""


def test_verilator_tests_are_skipped_with_the_fix_when_verilator_is_missing(tmp_path):
    (tmp_path / "hide_venv_tools.py").write_text(HIDE_VENV_TOOLS)
    (tmp_path / "empty").mkdir()
    bin_dir = tmp_path / "bin"  # PATH has a C++ compiler and make, but no verilator
    bin_dir.mkdir()
    for name in ("g++", "make"):
        found = next(
            folder / name for folder in map(Path, ("/usr/bin", "/bin")) if (folder / name).exists()
        )
        (bin_dir / name).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": str(tmp_path)}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "hide_venv_tools"]
    result = subprocess.run(
        [*command, "tests/rtl/test_pe_verilator.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary and "failed" not in summary, summary
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons, result.stdout
    for line in reasons:
        assert f"`verilator` is neither in {tmp_path / 'empty'} nor on PATH" in line, line
        assert "run `make install`" in line, line
        assert "`g++`" not in line and "`make`" not in line, line  # only what is missing
