"""cocotb bench: runs Programs on the Verilated core (`CoreTop`), with Python out of the cycle
loop.

The pytest side (`verdigris.sim.rtl.core_runner`) writes a jobs file (.npz) and points
VERDIGRIS_CORE_JOBS at it. For each job the bench writes the instruction words and the whole
main-memory image through the host port, pulses `run`, waits for `done` under a watchdog,
then reads back the requested main-memory ranges and every counter, and writes them to
VERDIGRIS_CORE_RESULTS (.npz). The protocol is `verdigris.arch.host_port`'s.

Layer boundaries: while the core runs, the bench sleeps until a completion counter changes
(or `done` rises) and then checks the next boundary's targets (`boundary_reached`); when a
boundary is reached it copies every counter, in that very cycle. So Python wakes once per
completing instruction at most, never once per cycle.
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer

from verdigris.arch.counters import COMPLETION_COUNTERS, COUNTERS
from verdigris.arch.host_port import boundary_reached
from verdigris.hw.core_top import INPUT_LATENCY

PERIOD_NS = 10


async def _write(dut, addr_port, data_port, enable_port, words) -> None:
    """Write `words` (address -> int) through a host write port, one per cycle."""
    await FallingEdge(dut.clk)
    for addr, value in words:
        addr_port.value = addr
        data_port.value = value
        enable_port.value = 1
        await FallingEdge(dut.clk)
    enable_port.value = 0


async def _read(dut, first: int, count: int) -> list[int]:
    """Read `count` main-memory words from `first` (after the input registers, one cycle of
    memory latency each)."""
    values = []
    for addr in range(first, first + count):
        await FallingEdge(dut.clk)
        dut.main_addr.value = addr
        await ClockCycles(dut.clk, INPUT_LATENCY + 1)
        await ReadOnly()
        values.append(int(dut.main_rdata.value))
    return values


def _counters(dut, names) -> dict[str, int]:
    return {name: int(getattr(dut, name).value) for name in names}


async def _sleep(cycles: int) -> None:
    await Timer(PERIOD_NS * cycles, unit="ns")


async def _run(dut, targets: list[list[int]], watchdog) -> tuple[bool, list[dict[str, int]]]:
    """From the cycle after the `run` strobe to `done` (True, in the ReadOnly phase of the
    cycle `done` is seen) or the watchdog (False), with a snapshot of every counter in each
    boundary's cycle (docs/host-port.md)."""
    snapshots = []
    changes = [getattr(dut, name).value_change for name in COMPLETION_COUNTERS]
    # Called between the edge that registered the `run` strobe and the next one: the core
    # sees it INPUT_LATENCY edges later, and the state after that edge is cycle 0.
    for _ in range(INPUT_LATENCY):
        await RisingEdge(dut.clk)
    await ReadOnly()
    while True:  # in the ReadOnly phase of a cycle of the run
        if dut.done.value:
            return True, snapshots  # stopped early (an error): no boundary comes any more
        completed = _counters(dut, COMPLETION_COUNTERS)
        while len(snapshots) < len(targets) and boundary_reached(
            completed, targets[len(snapshots)]
        ):
            snapshots.append(_counters(dut, COUNTERS))
        if len(snapshots) == len(targets):
            break
        woke = await First(*changes, RisingEdge(dut.done), watchdog.complete)
        if woke is watchdog.complete:
            return False, snapshots
        await ReadOnly()
    woke = await First(RisingEdge(dut.done), watchdog.complete)
    if woke is watchdog.complete:
        return False, snapshots
    await ReadOnly()
    return True, snapshots


@cocotb.test()
async def run_jobs(dut):
    jobs = np.load(os.environ["VERDIGRIS_CORE_JOBS"], allow_pickle=False)
    manifest = json.loads(str(jobs["manifest"]))
    word_bytes = manifest["dma_bytes"]
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    for port in (dut.run, dut.main_we, dut.imem_we, dut.main_addr, dut.imem_addr):
        port.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    results = {}
    for index, job in enumerate(manifest["jobs"]):
        instructions = jobs[f"instructions_{index}"].reshape(-1, 16)
        await _write(
            dut,
            dut.imem_addr,
            dut.imem_wdata,
            dut.imem_we,
            ((i, int.from_bytes(w.tobytes(), "little")) for i, w in enumerate(instructions)),
        )
        image = jobs[f"memory_{index}"].reshape(-1, word_bytes)
        await _write(
            dut,
            dut.main_addr,
            dut.main_wdata,
            dut.main_we,
            ((a, int.from_bytes(w.tobytes(), "little")) for a, w in enumerate(image)),
        )
        dut.run.value = 1
        await FallingEdge(dut.clk)
        dut.run.value = 0
        watchdog = cocotb.start_soon(_sleep(job["watchdog_cycles"]))
        began = time.perf_counter()
        finished, snapshots = await _run(dut, job["boundaries"], watchdog)
        seconds = time.perf_counter() - began
        if not finished:
            raise AssertionError(f"job {index}: no done within {job['watchdog_cycles']} cycles")
        watchdog.cancel()
        counters = _counters(dut, COUNTERS)
        counters["error"] = int(dut.error.value)
        counters["seconds"] = seconds
        counters["snapshots"] = snapshots
        results[f"counters_{index}"] = np.array(json.dumps(counters))
        if counters["error"]:
            # An error is fatal until the host resets the core (memories keep their data).
            await FallingEdge(dut.clk)
            dut.rst.value = 1
            await ClockCycles(dut.clk, 2)
            dut.rst.value = 0
            continue
        for number, (first, count) in enumerate(job["read"]):
            words = await _read(dut, first, count)
            results[f"read_{index}_{number}"] = np.frombuffer(
                b"".join(w.to_bytes(word_bytes, "little") for w in words), np.uint8
            )
    np.savez(os.environ["VERDIGRIS_CORE_RESULTS"], **results)
