"""The store unit's verification (`verdigris.hw.store_unit.StoreUnit`): `StoreUnitDriver`,
which drives it (requantizing STOREs, with and without lookup tables, raw STOREs and NOPs)
and checks it against the instruction simulator; `simulate_store_unit` (Amaranth's
simulator); `run_store_bench` (Verilator under cocotb) and the cocotb test it runs, in this
module (see `verdigris.verify.protocol`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    LUT_ENTRIES,
    REQ_ENTRY,
    Buffer,
    Store,
    address_bits,
    element_bits,
    encode,
    row_bits,
    transfer_bytes,
)
from verdigris.arch.memory import check_memory_image
from verdigris.arch.timing import STORE_OVERHEAD
from verdigris.hw.store_unit import StoreUnit
from verdigris.verify.protocol import (
    AccessSequence,
    UnitDriver,
    drive_in_amaranth,
    from_hex,
    pack_lanes,
    plan_each,
    poison,
    run_case_with_cocotb,
    run_driver_bench,
    unit_error,
    words_hex,
)

__all__ = ["StoreRun", "StoreUnitDriver", "run_store_bench", "simulate_store_unit"]


@dataclass(frozen=True)
class StoreRun:
    """What a store unit did: main memory at the end (uint8) and each instruction's (start,
    completion) cycle from the unit's first cycle."""

    memory: np.ndarray
    timeline: np.ndarray


def _req_row_bits(entries: np.ndarray) -> int:
    """A req table row ((dim, 6) fields) as the bits of the unit's `req_data` port: the
    12-byte entries of docs/isa.md, lane 0 lowest."""
    records = np.zeros(len(entries), REQ_ENTRY)
    for k, name in enumerate(REQ_ENTRY.names):
        records[name] = entries[:, k]
    return int.from_bytes(records.tobytes(), "little")


class StoreUnitDriver(UnitDriver):
    """Runs `instructions` (STOREs and NOPs) on a StoreUnit from reset, each started in the
    first cycle in which `free` is high, with the accumulator holding `acc` ((acc_rows, dim)
    int), the req table `req` ((req_rows, dim, 6) fields, as the instruction simulator holds
    it; data one cycle after the read request, a poison pattern otherwise), the lookup
    tables `lut` ((lut_rows, dim) int8 values, zero if None; lane c's entry of its own
    address one cycle after the read, held until the next read as a memory read port holds
    it, a poison pattern before the first) and main memory starting as `memory` (uint8) and
    taking the unit's writes (byte enables honoured).

    Checks (latency 0: an instruction completes in the cycle `free` is high again): push_prev
    exactly in the completion cycle of an instruction with that flag, push_next never,
    in_flight exactly while `free` is low (a started STORE completes when `free` rises);
    each STORE reading its acc rows once each, in order, with its req row, and writing
    exactly the words its rows cover, with byte enables for exactly their bytes, in order,
    all between its start and its completion; a STORE with `lut` = t reading its lookup
    tables once per row, `STORE_OVERHEAD - 1` cycles after the row's acc read (as the row
    leaves the requantizer), every used lane (c < elems) at a row of table t - 1, and
    nothing else reading them. An instruction with a static error (the first
    the instruction simulator rejects) must raise `error` in the cycle after its start and
    touch nothing; a STORE whose requant shift is out of range raises it while it runs.
    After `error` nothing more starts; the unit is watched until idle, and `result` raises
    IsaError naming the instruction.
    """

    INPUTS = ("control__start", "control__instr", "acc__data", "req__data", "lut__data")

    def __init__(self, config: AccelConfig, instructions, acc, req, memory, lut=None):
        dim = config.dim
        memory = check_memory_image(config, memory)
        if np.shape(acc) != (config.acc_rows, dim):
            raise ValueError(f"acc must have shape {(config.acc_rows, dim)}, not {np.shape(acc)}")
        if np.shape(req) != (config.req_rows, dim, 6):
            raise ValueError(
                f"req must have shape {(config.req_rows, dim, 6)}, not {np.shape(req)}"
            )
        if lut is None:
            lut = np.zeros((config.lut_rows, dim), np.int64)
        if np.shape(lut) != (config.lut_rows, dim):
            raise ValueError(f"lut must have shape {(config.lut_rows, dim)}, not {np.shape(lut)}")
        self.config, self.instructions = config, list(instructions)
        self.acc, self.req = np.array(acc, np.int64), np.array(req, np.int64)
        self.lut = np.array(lut, np.int64)
        self.memory = memory.copy()
        self.words = [encode(i) for i in self.instructions]
        self.plans, problems = plan_each(config, self.instructions)
        self.illegal = min(problems, default=None)  # the unit stops at the first
        self.problem = problems.get(self.illegal)
        dma = config.dma_bytes
        reads, writes, lookups = [], [], []
        for index, ins in enumerate(self.instructions[: self.illegal]):
            if not isinstance(ins, Store):
                continue
            nbytes = transfer_bytes(config, ins)
            for i in range(ins.rows):
                reads.append((index, ins.acc_row + i))
                if ins.lut:
                    lookups.append((index, ins.lut))
                start = ins.dram_addr + i * ins.dram_stride
                for word in range(start // dma, (start + nbytes - 1) // dma + 1):
                    enables = sum(
                        1 << b for b in range(dma) if start <= word * dma + b < start + nbytes
                    )
                    writes.append((index, (word, enables)))
        self.reads = AccessSequence("acc row", reads)
        self.writes = AccessSequence("main-memory write (word, byte enables)", writes)
        self.lookups = AccessSequence("lookup table", lookups)
        self.lookup_due = []  # cycles in which the rows read so far must look up, in order
        self.lut_data = poison(row_bits(config, Buffer.LUT))  # what the lut port holds
        self.req_rows = [_req_row_bits(entries) for entries in self.req]
        self.timeline = np.full((len(self.instructions), 2), -1, np.int64)
        self.limit = 32 + sum(p.busy + 4 for p in self.plans.values())
        self.acc_poison = poison(row_bits(config, Buffer.ACC))
        self.req_poison = poison(row_bits(config, Buffer.REQ))
        self.pending = None  # (acc row, req row) read in the previous cycle
        self.next_index = 0
        self.running = None  # the instruction between its start and completion cycles
        self.error_index = None
        self.quiet = 0
        self.cycle = 0
        self.done = False

    # -- JSON across processes

    def to_case(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "instructions": words_hex(self.instructions),
            "acc": self.acc.tolist(),
            "req": self.req.tolist(),
            "lut": self.lut.tolist(),
            "memory": self.memory.tobytes().hex(),
        }

    @classmethod
    def from_case(cls, case: dict) -> StoreUnitDriver:
        config = AccelConfig.from_dict(case["config"])
        memory = np.frombuffer(bytes.fromhex(case["memory"]), np.uint8)
        instructions = from_hex(case["instructions"])
        lut = np.array(case["lut"], np.int64).reshape(config.lut_rows, config.dim)
        return cls(config, instructions, case["acc"], case["req"], memory, lut)

    def snapshot(self) -> dict:
        return {
            "memory": self.memory.tobytes().hex(),
            "timeline": self.timeline.tolist(),
            "error_index": self.error_index,
        }

    def restore(self, snapshot: dict) -> None:
        self.memory = np.frombuffer(bytes.fromhex(snapshot["memory"]), np.uint8).copy()
        self.timeline = np.array(snapshot["timeline"], np.int64).reshape(-1, 2)
        self.error_index = snapshot["error_index"]

    def result(self) -> StoreRun:
        if self.error_index is not None:
            raise unit_error("store", self.error_index)
        return StoreRun(self.memory.copy(), self.timeline.copy())

    # -- the cycle

    def inputs(self, read) -> dict[str, int]:
        t = self.cycle
        if t > self.limit:
            self._broken(f"the store unit did not finish within {self.limit} cycles")
        free, in_flight = read("control__free"), read("control__in_flight")
        error = read("control__error")
        push_prev, push_next = read("control__push_prev"), read("control__push_next")
        if push_next:
            self._broken(f"push_next is {push_next}")
        if bool(in_flight) == bool(free):
            self._broken(f"in_flight is {in_flight} while free is {free}")
        last = self.next_index - 1
        if self.error_index is None and error:
            if self.running is None:
                self._broken("error with nothing running")
            self.error_index = self.running
            if self.running == self.illegal:
                if self.timeline[last, 0] != t - 1:
                    self._broken("the illegal instruction raised error late")
                self.running = None  # it never runs
        elif self.error_index is None and last >= 0 and last == self.illegal:
            self._broken(f"no error for illegal instruction {last} ({self.problem})")
        elif self.error_index is not None and not error:
            self._broken("error is low again")
        running = self.running
        if free and running is not None:  # latency 0: free again means completed
            self.timeline[running, 1] = t
            for sequence in (self.reads, self.writes, self.lookups):
                if not sequence.finished(running):
                    self._broken(f"completed before its last {sequence.name}")
            flag = int(self.instructions[running].deps.push_prev)
            if push_prev != flag:
                self._broken(f"push_prev is {push_prev} in the completion cycle, not {flag}")
            self.running = None
        elif push_prev:
            self._broken(f"push_prev is {push_prev} outside a completion cycle")
        if not free and self.running is None:
            self._broken("not free with nothing running")
        start = free and self.error_index is None and self.next_index < len(self.instructions)
        if start:
            self.running, self.next_index = self.next_index, self.next_index + 1
            self.timeline[self.running, 0] = t
        elif self.running is None and (
            self.error_index is not None or self.next_index == len(self.instructions)
        ):
            self.done = self.error_index is None or self.quiet >= self.QUIET_CYCLES
        if self.pending is None:
            acc_data, req_data = self.acc_poison, self.req_poison
        else:
            acc_row, req_row = self.pending
            acc_bits = element_bits(self.config, Buffer.ACC)
            acc_data, req_data = pack_lanes(self.acc[acc_row], acc_bits), self.req_rows[req_row]
        return {
            "control__start": int(start),
            "control__instr": self.words[self.running] if start else 0,
            "acc__data": acc_data,
            "req__data": req_data,
            "lut__data": self.lut_data,
        }

    def _lookup(self, read) -> None:
        """Check this cycle's lookup-table read and take its entries for the next cycles."""
        config, dim = self.config, self.config.dim
        due = self.lookup_due[0] if self.lookup_due else None
        if not read("lut__en"):
            if due is not None and due <= self.cycle:
                self._broken(f"no lookup-table read in cycle {due}")
            return
        if due != self.cycle:
            self._broken(f"a lookup-table read, not due (the next is due in cycle {due})")
        self.lookup_due.pop(0)
        bits = address_bits(config.lut_rows)
        addresses = [(read("lut__addr") >> (c * bits)) & ((1 << bits) - 1) for c in range(dim)]
        table = addresses[0] // LUT_ENTRIES + 1
        index = self.lookups.take(self, table, self._window)
        for c, address in enumerate(addresses[: self.instructions[index].elems]):
            if address // LUT_ENTRIES + 1 != table:
                self._broken(f"lane {c} looks up row {address}, outside table {table - 1}")
        # A lane at or past elems may read any row; one past the tables reads poison.
        values = [self.lut[a, c] if a < config.lut_rows else -0x5B for c, a in enumerate(addresses)]
        self.lut_data = pack_lanes(values, element_bits(config, Buffer.LUT))

    def _window(self, index: int) -> bool:
        return index == self.running

    def outputs(self, read) -> None:
        self.pending = None
        if read("acc__en"):
            row = read("acc__addr")
            index = self.reads.take(self, row, self._window)
            req_row = self.instructions[index].req_row
            if not read("req__en") or read("req__addr") != req_row:
                self._broken(f"acc row {row} read without req row {req_row}")
            self.pending = (row, req_row)
            if self.instructions[index].lut:
                self.lookup_due.append(self.cycle + STORE_OVERHEAD - 1)
        elif read("req__en"):
            self._broken("req row read without an acc row")
        self._lookup(read)
        enables = read("mem__en")  # the byte enables of a write port
        if enables:
            word, data = read("mem__addr"), read("mem__data")
            self.writes.take(self, (word, enables), self._window)
            dma = self.config.dma_bytes
            for b in range(dma):
                if enables >> b & 1:
                    self.memory[word * dma + b] = (data >> (8 * b)) & 0xFF
        if self.error_index is not None:
            self.quiet += 1
        self.cycle += 1


def simulate_store_unit(config: AccelConfig, instructions, acc, req, memory, *, lut=None, dut=None):
    """Run `instructions` (STOREs and NOPs) on a StoreUnit from reset, driven and checked by
    `StoreUnitDriver` with the accumulator `acc` ((acc_rows, dim) int), the req table `req`
    ((req_rows, dim, 6) fields), the lookup tables `lut` ((lut_rows, dim) int8 values, zero
    if None) and main memory `memory` (uint8). Return a StoreRun (final main memory,
    timeline); raise IsaError naming the instruction when the unit raised its error status,
    UnitProtocolError when it broke the port contract. `dut` replaces the default
    `StoreUnit(config)` (a variant with the same ports)."""
    driver = StoreUnitDriver(config, instructions, acc, req, memory, lut)
    drive_in_amaranth(StoreUnit(config) if dut is None else dut, driver)
    return driver.result()


def run_store_bench(
    config: AccelConfig,
    instructions,
    acc,
    req,
    memory,
    *,
    lut=None,
    dut=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> StoreRun:
    """Run this module's cocotb test on the Verilated `dut` (default: `StoreUnit(config)`):
    `instructions` with accumulator `acc`, req table `req`, lookup tables `lut` and main
    memory `memory`, driven and checked by `StoreUnitDriver` exactly as
    `simulate_store_unit` does. Return a StoreRun as that function does; raise
    UnitProtocolError or IsaError as it does, RtlError when the bench could not run."""
    driver = StoreUnitDriver(config, instructions, acc, req, memory, lut)  # checks the arrays
    dut = StoreUnit(config) if dut is None else dut
    top = f"{type(dut).__name__.lower().lstrip('_')}_{config.dim}x{config.dma_bytes}"
    return run_driver_bench(driver, dut, top, __name__, build_root, results_dir).result()


@cocotb.test()
async def store_unit_runs_the_case(dut):
    """The Verilated StoreUnit driven by `StoreUnitDriver`; the case comes from UNIT_CASE
    (`StoreUnitDriver.to_case`), the snapshot or protocol violation goes to UNIT_RESULT."""
    await run_case_with_cocotb(dut, StoreUnitDriver)
