"""cocotb bench: runs Programs on the Verilated core (`CoreTop`), with Python out of the cycle
loop.

The pytest side (`verdigris.sim.rtl.core_runner`) writes a jobs file (.npz) and points
VERDIGRIS_CORE_JOBS at it. For each job the bench writes the instruction words and the whole
main-memory image through the host port, pulses `run`, waits for `done` under a watchdog
(no Python runs while the core computes), then reads back the requested main-memory ranges
and every counter, and writes them to VERDIGRIS_CORE_RESULTS (.npz).
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer

from verdigris.hw.core import COUNTERS
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
        watchdog = Timer(PERIOD_NS * job["watchdog_cycles"], unit="ns")
        began = time.perf_counter()
        finished = await First(RisingEdge(dut.done), watchdog)
        seconds = time.perf_counter() - began
        if finished is watchdog:
            raise AssertionError(f"job {index}: no done within {job['watchdog_cycles']} cycles")
        await ReadOnly()
        counters = {name: int(getattr(dut, name).value) for name in COUNTERS}
        counters["error"] = int(dut.error.value)
        counters["seconds"] = seconds
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
