"""Drives the store unit (requantizing STOREs and NOPs) and checks it against the
instruction simulator; see `verdigris.sim.drivers`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    REQ_ENTRY,
    Store,
    encode,
)
from verdigris.sim.drivers.protocol import (
    AccessSequence,
    UnitDriver,
    from_hex,
    pack_lanes,
    plan_each,
    poison,
    words_hex,
)
from verdigris.sim.isasim import IsaError


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
    it; data one cycle after the read request, a poison pattern otherwise) and main memory
    starting as `memory` (uint8) and taking the unit's writes (byte enables honoured).

    Checks (latency 0: an instruction completes in the cycle `free` is high again): push_prev
    exactly in the completion cycle of an instruction with that flag, push_next never,
    in_flight exactly while `free` is low (a started STORE completes when `free` rises);
    each STORE reading its acc rows once each, in order, with its req row, and writing
    exactly the words its rows cover, with byte enables for exactly their bytes, in order,
    all between its start and its completion. An instruction with a static error (the first
    the instruction simulator rejects) must raise `error` in the cycle after its start and
    touch nothing; a STORE whose requant shift is out of range raises it while it runs.
    After `error` nothing more starts; the unit is watched until idle, and `result` raises
    IsaError naming the instruction.
    """

    INPUTS = ("start", "instr", "acc_data", "req_data")

    def __init__(self, config: AccelConfig, instructions, acc, req, memory):
        dim = config.dim
        memory = np.asarray(memory)
        if memory.dtype != np.uint8 or memory.shape != (config.main_memory_bytes,):
            raise ValueError(
                f"main memory must be a uint8 array of {config.main_memory_bytes} bytes, not "
                f"{memory.dtype} {memory.shape}"
            )
        if np.shape(acc) != (config.acc_rows, dim):
            raise ValueError(f"acc must have shape {(config.acc_rows, dim)}, not {np.shape(acc)}")
        if np.shape(req) != (config.req_rows, dim, 6):
            raise ValueError(
                f"req must have shape {(config.req_rows, dim, 6)}, not {np.shape(req)}"
            )
        self.config, self.instructions = config, list(instructions)
        self.acc, self.req = np.array(acc, np.int64), np.array(req, np.int64)
        self.memory = memory.copy()
        self.words = [encode(i) for i in self.instructions]
        self.plans, problems = plan_each(config, self.instructions)
        self.illegal = min(problems, default=None)  # the unit stops at the first
        self.problem = problems.get(self.illegal)
        dma = config.dma_bytes
        reads, writes = [], []
        for index, ins in enumerate(self.instructions[: self.illegal]):
            if not isinstance(ins, Store):
                continue
            nbytes = ins.elems * (4 if ins.raw else 1)
            for i in range(ins.rows):
                reads.append((index, ins.acc_row + i))
                start = ins.dram_addr + i * ins.dram_stride
                for word in range(start // dma, (start + nbytes - 1) // dma + 1):
                    enables = sum(
                        1 << b for b in range(dma) if start <= word * dma + b < start + nbytes
                    )
                    writes.append((index, (word, enables)))
        self.reads = AccessSequence("acc row", reads)
        self.writes = AccessSequence("main-memory write (word, byte enables)", writes)
        self.req_rows = [_req_row_bits(entries) for entries in self.req]
        self.timeline = np.full((len(self.instructions), 2), -1, np.int64)
        self.limit = 32 + sum(p.busy + 4 for p in self.plans.values())
        self.acc_poison, self.req_poison = poison(32 * dim), poison(96 * dim)
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
            "memory": self.memory.tobytes().hex(),
        }

    @classmethod
    def from_case(cls, case: dict) -> StoreUnitDriver:
        config = AccelConfig.from_dict(case["config"])
        memory = np.frombuffer(bytes.fromhex(case["memory"]), np.uint8)
        instructions = from_hex(case["instructions"])
        return cls(config, instructions, case["acc"], case["req"], memory)

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
            index = self.error_index
            raise IsaError(f"instruction {index}: the store unit raised its error status", index)
        return StoreRun(self.memory.copy(), self.timeline.copy())

    # -- the cycle

    def inputs(self, read) -> dict[str, int]:
        t = self.cycle
        if t > self.limit:
            self._broken(f"the store unit did not finish within {self.limit} cycles")
        free, in_flight, error = read("free"), read("in_flight"), read("error")
        push_prev, push_next = read("push_prev"), read("push_next")
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
            for sequence in (self.reads, self.writes):
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
            acc_data, req_data = pack_lanes(self.acc[acc_row], 32), self.req_rows[req_row]
        return {
            "start": int(start),
            "instr": self.words[self.running] if start else 0,
            "acc_data": acc_data,
            "req_data": req_data,
        }

    def _window(self, index: int) -> bool:
        return index == self.running

    def outputs(self, read) -> None:
        self.pending = None
        if read("acc_en"):
            row = read("acc_addr")
            index = self.reads.take(self, row, self._window)
            req_row = self.instructions[index].req_row
            if not read("req_en") or read("req_addr") != req_row:
                self._broken(f"acc row {row} read without req row {req_row}")
            self.pending = (row, req_row)
        elif read("req_en"):
            self._broken("req row read without an acc row")
        if read("mem_en"):
            word, enables, data = read("mem_addr"), read("mem_be"), read("mem_data")
            self.writes.take(self, (word, enables), self._window)
            dma = self.config.dma_bytes
            for b in range(dma):
                if enables >> b & 1:
                    self.memory[word * dma + b] = (data >> (8 * b)) & 0xFF
        if self.error_index is not None:
            self.quiet += 1
        self.cycle += 1
