"""Drives the load unit (LOADs, fills and NOPs), serving main memory, and checks the port
contract and what it writes; see `verdigris.sim.drivers`."""

from __future__ import annotations

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import ELEMENT_BYTES, Buffer, Load, buffer_rows, decode_elements, encode
from verdigris.sim.drivers.protocol import UnitDriver, from_hex, words_hex
from verdigris.sim.isasim import IsaError


class LoadUnitDriver(UnitDriver):
    """A cycle-by-cycle bench for a LoadUnit, independent of the simulator that runs it (the
    Amaranth simulator here, cocotb with Verilator in `verdigris.sim.rtl.load_bench`).

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

    It follows the protocol of `verdigris.sim.drivers`; its inputs depend on registered
    outputs only.
    """

    INPUTS = ("start", "instr", "mem_data")

    def __init__(self, config: AccelConfig, instructions, memory):
        memory = np.asarray(memory)
        if memory.dtype != np.uint8 or memory.shape != (config.main_memory_bytes,):
            raise ValueError(
                f"main memory must be a uint8 array of {config.main_memory_bytes} bytes, not "
                f"{memory.dtype} {memory.shape}"
            )
        self.config, self.instructions, self.memory = config, list(instructions), memory
        self.words = [encode(instruction) for instruction in self.instructions]
        self.ports = {Buffer.INP: "inp", Buffer.WGT: "wgt", Buffer.ACC: "acc", Buffer.REQ: "req"}
        self.raw = {buffer: {} for buffer in Buffer}  # row -> the row's bits as one int
        self.timeline = np.full((len(self.instructions), 2), -1, np.int64)
        self.expected = [
            [(Buffer(i.buffer), i.buf_row + r) for r in range(i.rows)]
            if isinstance(i, Load)
            else []
            for i in self.instructions
        ]
        self.written = [[] for _ in self.instructions]
        self.reads = [[] for _ in self.instructions]
        self.transfer = [isinstance(i, Load) and not i.fill for i in self.instructions]
        dma = config.dma_bytes
        self.expected_reads = []  # the words each row touches, rows in order
        for ins, transfer in zip(self.instructions, self.transfer, strict=True):
            reads = []
            for r in range(ins.rows if transfer else 0):
                start = ins.dram_addr + r * ins.dram_stride
                end = start + ins.elems * ELEMENT_BYTES[Buffer(ins.buffer)]
                reads.extend(range(start // dma, (end - 1) // dma + 1))
            self.expected_reads.append(reads)
        self.poison = int.from_bytes(b"\xa5" * dma, "little")
        row_words = -(-(dma - 1 + 12 * config.dim) // dma)
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
        free, in_flight, error = read("free"), read("in_flight"), read("error")
        push_next, push_prev = read("push_next"), read("push_prev")
        if self.error_index is not None or error:
            if self.error_index is None:
                if self.running is None:
                    self._broken("error without an instruction")
                if self.written[self.running] or self.request is not None:
                    self._broken("an illegal instruction wrote or read")
                self.error_index = self.running
            if free or push_next or push_prev or not error:
                self._broken("the unit did not stay stopped after its error")
            return {"mem_data": mem_data, "start": 0, "instr": 0}
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
            return {"mem_data": mem_data, "start": 0, "instr": 0}
        self.running, self.next_index = self.next_index, self.next_index + 1
        self.timeline[self.running, 0] = self.cycle
        return {"mem_data": mem_data, "start": 1, "instr": self.words[self.running]}

    def outputs(self, read) -> None:
        for buffer, prefix in self.ports.items():
            if read(f"{prefix}_en"):
                row = read(f"{prefix}_addr")
                if self.error_index is not None:
                    self._broken(f"{prefix} row {row} written after the error")
                if self.running is None:
                    self._broken(f"{prefix} row {row} written with nothing running")
                self.written[self.running].append((buffer, row))
                self.raw[buffer][row] = read(f"{prefix}_data")
        self.request = read("mem_addr") if read("mem_en") else None
        if self.request is not None:
            if self.error_index is not None:
                self._broken("main memory read after the error")
            if self.running is None or not self.transfer[self.running]:
                self._broken(f"main-memory word {self.request} read outside a transfer")
            if self.request >= self.config.main_memory_bytes // self.config.dma_bytes:
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
            index = self.error_index
            raise IsaError(f"instruction {index}: the load unit raised its error status", index)
        buffers = {}
        for buffer in Buffer:
            row_bytes = self.config.dim * ELEMENT_BYTES[buffer]
            data = np.zeros((buffer_rows(self.config, buffer), row_bytes), np.uint8)
            for row, bits in self.raw[buffer].items():
                data[row] = np.frombuffer(bits.to_bytes(row_bytes, "little"), np.uint8)
            buffers[buffer] = decode_elements(data, buffer)
        return buffers, self.timeline
