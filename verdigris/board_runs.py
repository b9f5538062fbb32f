"""Programs on a board: over a serial port (`board`), or on the simulated SoC (`board-sim`),
the same host runtime either way (verdigris.boards.host).

The simulated board is the SoC (boards/soc.py: core, memories, UART bridge) Verilated with
boards/soc_sim.cpp, which serves a pseudo-terminal: the host runtime opens it as it opens a
board's /dev/ttyUSB0, and every byte crosses the UART at `SIM_DIVISOR` cycles a bit.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

import verdigris.boards
from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import activity_from_counters
from verdigris.arch.host_port import host_jobs, layer_activity, read_outputs
from verdigris.arch.program import Program
from verdigris.boards.host import BoardHost, BoardLink
from verdigris.boards.serial_port import SerialPort
from verdigris.boards.soc import Soc
from verdigris.sim.rtl.core_runner import RtlResult, run_staged
from verdigris.sim.rtl.verilator import BuildProgress, RtlError, build_harness, generate_verilog

__all__ = ["SIM_BAUD", "SIM_DIVISOR", "run_on_board", "simulated_board"]

SIM_DIVISOR = 4  # the simulated UART: 4 cycles a bit, 40 a byte
# The simulated bridge gives up a frame after this many quiet cycles: about 80 ms of an
# idle simulation (soc_sim.cpp runs 256 cycles a millisecond while it waits).
SIM_IDLE_CYCLES = 20_000
SIM_BAUD = 3_000_000  # what the host sets on the pseudo-terminal (which ignores it)
SOC_SIM = Path(verdigris.boards.__file__).with_name("soc_sim.cpp")

Jobs = list[tuple[Program, Mapping[str, np.ndarray]]]


def build_board_sim(
    config: AccelConfig, *, build_root: Path | None = None, progress: BuildProgress | None = None
) -> Path:
    """The simulated board of `config` (Verilated SoC and soc_sim.cpp), or the cached build."""
    top = f"soc_{config.name}"
    fields = {key: value for key, value in config.to_dict().items() if key != "clock_mhz"}
    identity = json.dumps(
        {"design": "verdigris.boards.soc:Soc", "divisor": SIM_DIVISOR, **fields}, sort_keys=True
    )
    boards_folder = Path(verdigris.boards.__file__).parent
    return build_harness(
        lambda: generate_verilog(
            Soc(config, divisor=SIM_DIVISOR, idle_cycles=SIM_IDLE_CYCLES), top
        ),
        top,
        SOC_SIM,
        {"DIVISOR": SIM_DIVISOR},
        identity=identity,
        build_root=build_root,
        progress=progress,
        extra_sources=sorted(boards_folder.glob("*.py")),
    )


@contextlib.contextmanager
def simulated_board(
    config: AccelConfig, *, build_root: Path | None = None, progress: BuildProgress | None = None
) -> Iterator[str]:
    """Runs the simulated board of `config` and gives the path of its serial port; the
    simulation stops when the block ends."""
    binary = build_board_sim(config, build_root=build_root, progress=progress)
    process = subprocess.Popen(
        [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        port = process.stdout.readline().decode().strip()
        if not port:
            raise RtlError(f"the simulated board did not start: {process.stderr.read().decode()}")
        yield port
    finally:
        process.stdin.close()  # the harness stops when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def run_on_board(
    jobs: Jobs,
    port: str,
    *,
    baud: int,
    timeout: float = 1.0,
    transport: Callable[[SerialPort], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[RtlResult]:
    """Run each (program, device inputs) on the board at serial `port`, one after another.
    Programs with host calls run stage by stage, as on the RTL. The Activity has its layers
    from the SoC's layer tracker (the total only for a Program of more layers than it
    holds). `transport` may wrap the
    serial port (the tests damage bytes with it); `progress(done, total)` hears the bytes
    loaded so far of all the jobs."""
    if any(program.host_calls for program, _ in jobs):
        return run_staged(
            jobs,
            lambda part: run_on_board(
                part, port, baud=baud, timeout=timeout, transport=transport, progress=progress
            ),
        )
    config = jobs[0][0].config
    port_jobs = host_jobs(jobs)
    results, before = [], 0
    with SerialPort(port, baud) as serial:
        line = transport(serial) if transport else serial
        host = BoardHost(BoardLink(line, timeout=timeout), config)
        total = host.load_bytes(port_jobs)
        for (program, _), job in zip(jobs, port_jobs, strict=True):
            start = time.monotonic()
            heard = None
            if progress is not None:  # this job's bytes after those of the jobs before it
                heard = lambda sent, before=before: progress(before + sent, total)  # noqa: E731
            before += host.load_bytes([job])
            done = host.run(job, progress=heard)
            if done.snapshots is None:  # the total only
                activity = activity_from_counters(done.counters)
            else:
                activity = layer_activity(program, done.counters, done.snapshots)
            outputs = {} if done.error else read_outputs(program, done.chunks)
            seconds = time.monotonic() - start
            results.append(RtlResult(outputs, activity, done.error, seconds, done.counters))
    return results
