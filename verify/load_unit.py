"""The load unit's verification (`verdigris.hw.load_unit.LoadUnit`): `LoadUnitDriver`,
which drives it (LOADs, fills and NOPs into every buffer, the lookup tables included),
serving main memory, and checks the port contract
and what it writes; `simulate_load_unit`, which runs it in Amaranth's simulator;
`run_load_bench`, which runs it on Verilator under cocotb; and the cocotb test that does, in
this module (see `verdigris.verify.protocol`)."""

from __future__ import annotations

from pathlib import Path

import cocotb
import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    Buffer,
    Load,
    buffer_rows,
    decode_elements,
    encode,
    row_bytes,
    transfer_bytes,
)
from verdigris.arch.memory import check_memory_image, main_memory_words
from verdigris.hw.load_unit import LoadUnit
from verdigris.verify.protocol import (
    UnitDriver,
    drive_in_amaranth,
    from_hex,
    run_case_with_cocotb,
    run_driver_bench,
    unit_error,
    words_hex,
)

__all__ = ["LoadUnitDriver", "run_load_bench", "simulate_load_unit"]


class LoadUnitDriver(UnitDriver):
    """A cycle-by-cycle bench for a LoadUnit, independent of the simulator that runs it (the
    Amaranth simulator in `simulate_load_unit`, cocotb with Verilator in `run_load_bench`).

    It serves main memory (`memory`, uint8, one `dma_bytes` word in the cycle after each
    request, a poison pattern otherwise), starts `instructions` one after another, each in
    the first cycle in which `free` is high, keeps the buffers (zero at reset) from the write
    ports, and checks the port contract as it goes, raising UnitProtocolError when it is
    broken: `push_next` exactly in the completion cycle (the cycle `free` is high again, the
    latency being 0) of an instruction with that flag, `push_prev` never, `in_flight` exactly
    while an instruction is between its start and completion cycles, a transfer reading
    exactly the words its rows touch, once each, in order (nothing read otherwise), and every
    instruction writing rows buf_row .. buf_row+rows-1 of its buffer once each, in order, from
    its start cycle to the cycle before its completion. After the unit
    raises `error`, it checks for a few cycles that the unit stays stopped (nothing written,
    read or pushed, not free); `result` then raises IsaError naming the instruction.

    It follows the protocol of `verdigris.verify.protocol`; its inputs depend on registered
    outputs only.
    """

    INPUTS = ("control__start", "control__instr", "mem__data")

    def __init__(self, config: AccelConfig, instructions, memory):
        memory = check_memory_image(config, memory)
        self.config, self.instructions, self.memory = config, list(instructions), memory
        self.words = [encode(instruction) for instruction in self.instructions]
        self.ports = {buffer: buffer.name.lower() for buffer in Buffer}  # write port names
        self.raw = {buffer: {} for buffer in Buffer}  # row -> the row's bits as one int
        self.timeline = np.full((len(self.instructions), 2), -1, np.int64)
        # A LOAD whose `buffer` names none (5..7) is illegal: it must write and read nothing.
        named = [isinstance(i, Load) and i.buffer in tuple(Buffer) for i in self.instructions]
        self.expected = [
            [(Buffer(i.buffer), i.buf_row + r) for r in range(i.rows)] if ok else []
            for i, ok in zip(self.instructions, named, strict=True)
        ]
        self.written = [[] for _ in self.instructions]
        self.reads = [[] for _ in self.instructions]
        self.transfer = [ok and not i.fill for i, ok in zip(self.instructions, named, strict=True)]
        dma = config.dma_bytes
        self.expected_reads = []  # the words each row touches, rows in order
        for ins, transfer in zip(self.instructions, self.transfer, strict=True):
            reads = []
            for r in range(ins.rows if transfer else 0):
                start = ins.dram_addr + r * ins.dram_stride
                end = start + transfer_bytes(config, ins)
                reads.extend(range(start // dma, (end - 1) // dma + 1))
            self.expected_reads.append(reads)
        self.poison = int.from_bytes(b"\xa5" * dma, "little")
        widest = max(row_bytes(config, buffer) for buffer in Buffer)
        row_words = -(-(dma - 1 + widest) // dma)
        self.limit = 16 + sum(
            (i.rows if isinstance(i, Load) else 1) * (row_words + 1) + 4 for i in self.instructions
        )
        self.cycle = 0
        self.running = None  # the instruction between its start and completion cycles
        self.next_index = 0
        self.request = None  # word address read in the previous cycle
        self.error_index = None
        self.quiet = 0  # cycles checked since the error
        self.done = False

    # -- JSON across processes

    def to_case(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "instructions": words_hex(self.instructions),
            "memory": self.memory.tobytes().hex(),
        }

    @classmethod
    def from_case(cls, case: dict) -> LoadUnitDriver:
        memory = np.frombuffer(bytes.fromhex(case["memory"]), np.uint8)
        return cls(AccelConfig.from_dict(case["config"]), from_hex(case["instructions"]), memory)

    # -- the cycle

    def _mem_data(self):
        if self.request is None:
            return self.poison
        dma = self.config.dma_bytes
        return int.from_bytes(self.memory[self.request * dma : (self.request + 1) * dma], "little")

    def inputs(self, read) -> dict[str, int]:
        if self.cycle > self.limit:
            self._broken(f"the load unit did not finish within {self.limit} cycles")
        mem_data = self._mem_data()
        free, in_flight = read("control__free"), read("control__in_flight")
        error = read("control__error")
        push_next, push_prev = read("control__push_next"), read("control__push_prev")
        if self.error_index is not None or error:
            if self.error_index is None:
                if self.running is None:
                    self._broken("error without an instruction")
                if self.written[self.running] or self.request is not None:
                    self._broken("an illegal instruction wrote or read")
                self.error_index = self.running
            if free or push_next or push_prev or not error:
                self._broken("the unit did not stay stopped after its error")
            return {"mem__data": mem_data, "control__start": 0, "control__instr": 0}
        if push_prev:
            self._broken(f"push_prev is {push_prev}")
        running = self.running
        if free and running is not None:  # latency 0: free again means completed
            self.timeline[running, 1] = self.cycle
            if self.written[running] != self.expected[running]:
                self._broken(f"wrote {self.written[running]}, not {self.expected[running]}")
            if self.reads[running] != self.expected_reads[running]:
                self._broken(
                    f"read words {self.reads[running]}, not {self.expected_reads[running]}"
                )
            flag = int(self.instructions[running].deps.push_next)
            if push_next != flag:
                self._broken(f"push_next is {push_next} in the completion cycle, not {flag}")
            self.running = None
        elif push_next:
            self._broken(f"push_next is {push_next} outside a completion cycle")
        if not free and self.running is None:
            self._broken("not free with nothing running")
        if bool(in_flight) != (self.running is not None):
            self._broken(f"in_flight is {in_flight}")
        if not free or self.next_index == len(self.instructions):
            self.done = self.running is None
            return {"mem__data": mem_data, "control__start": 0, "control__instr": 0}
        self.running, self.next_index = self.next_index, self.next_index + 1
        self.timeline[self.running, 0] = self.cycle
        word = self.words[self.running]
        return {"mem__data": mem_data, "control__start": 1, "control__instr": word}

    def outputs(self, read) -> None:
        for buffer, prefix in self.ports.items():
            if read(f"{prefix}__en"):
                row = read(f"{prefix}__addr")
                if self.error_index is not None:
                    self._broken(f"{prefix} row {row} written after the error")
                if self.running is None:
                    self._broken(f"{prefix} row {row} written with nothing running")
                self.written[self.running].append((buffer, row))
                self.raw[buffer][row] = read(f"{prefix}__data")
        self.request = read("mem__addr") if read("mem__en") else None
        if self.request is not None:
            if self.error_index is not None:
                self._broken("main memory read after the error")
            if self.running is None or not self.transfer[self.running]:
                self._broken(f"main-memory word {self.request} read outside a transfer")
            if self.request >= main_memory_words(self.config):
                self._broken(f"main-memory word {self.request} is past the end")
            self.reads[self.running].append(self.request)
        if self.error_index is not None:
            self.quiet += 1
            self.done = self.quiet > self.QUIET_CYCLES
        self.cycle += 1

    def snapshot(self) -> dict:
        """What `result` needs, as JSON-compatible values (to carry a run across processes)."""
        return {
            "raw": {
                int(b): {str(r): f"{v:x}" for r, v in rows.items()} for b, rows in self.raw.items()
            },
            "timeline": self.timeline.tolist(),
            "error_index": self.error_index,
        }

    def restore(self, snapshot: dict) -> None:
        """Take the state of a `snapshot` (of a driver for the same run)."""
        self.raw = {
            Buffer(int(b)): {int(r): int(v, 16) for r, v in rows.items()}
            for b, rows in snapshot["raw"].items()
        }
        self.timeline = np.array(snapshot["timeline"], np.int64).reshape(-1, 2)
        self.error_index = snapshot["error_index"]

    def result(self):
        """(buffers, timeline) as `simulate_load_unit` returns them; IsaError after an error."""
        if self.error_index is not None:
            raise unit_error("load", self.error_index)
        buffers = {}
        for buffer in Buffer:
            size = row_bytes(self.config, buffer)
            data = np.zeros((buffer_rows(self.config, buffer), size), np.uint8)
            for row, bits in self.raw[buffer].items():
                data[row] = np.frombuffer(bits.to_bytes(size, "little"), np.uint8)
            buffers[buffer] = decode_elements(data, buffer)
        return buffers, self.timeline


def simulate_load_unit(config: AccelConfig, instructions, memory, *, dut=None):
    """Run `instructions` (LOADs and NOPs for the load unit) on a LoadUnit from reset, each
    started in the first cycle in which `free` is high (the first in cycle 0), with
    `LoadUnitDriver` serving main memory (`memory`, uint8 of `main_memory_bytes`) and
    checking the port contract (UnitProtocolError when broken).

    Returns (buffers, timeline): the final buffers as `verdigris.sim.isasim` holds them, int64
    arrays keyed by `Buffer` of (rows, dim) for inp, wgt, acc and lut and (rows, dim, 6) requant
    fields (bias, multiplier, shift, zero_point, qmin, qmax) for the req table; the timeline
    an int64 array (len(instructions), 2) of start and completion cycles. Raises IsaError
    naming the instruction when the unit raised its error status (and then stayed stopped).
    `dut` replaces the default `LoadUnit(config)` (a variant with the same ports).
    """
    driver = LoadUnitDriver(config, instructions, memory)
    drive_in_amaranth(LoadUnit(config) if dut is None else dut, driver)
    return driver.result()


def run_load_bench(
    config: AccelConfig,
    instructions,
    memory,
    *,
    dut=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
):
    """Run this module's cocotb test on the Verilated `dut` (default: `LoadUnit(config)`):
    `instructions` on main memory `memory`, driven and checked by `LoadUnitDriver` exactly as
    `simulate_load_unit` does. Return (buffers, timeline) as that function does; raise
    UnitProtocolError or IsaError as it does, RtlError when the bench could not run."""
    driver = LoadUnitDriver(config, instructions, memory)  # checks the memory image
    dut = LoadUnit(config) if dut is None else dut
    top = f"{type(dut).__name__.lower().lstrip('_')}_{config.dim}x{config.dma_bytes}"
    return run_driver_bench(driver, dut, top, __name__, build_root, results_dir).result()


@cocotb.test()
async def load_unit_runs_the_case(dut):
    """The Verilated LoadUnit driven by `LoadUnitDriver`. Parameters come from the environment
    (cocotb runs this module inside the simulator): UNIT_CASE, a JSON file with the driver's
    arguments (`LoadUnitDriver.to_case`); UNIT_RESULT, where the bench writes the driver's
    snapshot, or the protocol violation that failed it."""
    await run_case_with_cocotb(dut, LoadUnitDriver)
