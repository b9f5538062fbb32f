"""The compute unit's verification (`verdigris.hw.compute_unit.ComputeUnit`):
`ComputeUnitDriver`, which drives it (GEMM and VECTOR) and checks it against the
instruction simulator; `simulate_compute_unit` (Amaranth's simulator); `run_compute_bench`
(Verilator under cocotb) and the cocotb test it runs, in this module (see
`verdigris.verify.protocol`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import PACKED_MAC_COUNTERS
from verdigris.arch.cycle_model import ComputeHazards
from verdigris.arch.isa import (
    Buffer,
    Gemm,
    Vector,
    VectorOp,
    element_bits,
    encode,
    row_bits,
)
from verdigris.hw.compute_unit import ComputeUnit
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
    unpack_signed_lanes,
    words_hex,
)

__all__ = ["ComputeRun", "ComputeUnitDriver", "run_compute_bench", "simulate_compute_unit"]


@dataclass(frozen=True)
class ComputeRun:
    """What a compute unit did: the final accumulator (acc_rows, dim) int64, each
    instruction's (start, completion) cycle from the unit's first cycle (the completion as
    the cycle model gives it, which the driver checked against the unit's pushes, in_flight
    and writes), and its MAC counters (`packed_macs` by name, PACKED_MAC_COUNTERS)."""

    acc: np.ndarray
    timeline: np.ndarray
    macs: int
    zero_macs: int
    packed_macs: dict[str, int]


class ComputeUnitDriver(UnitDriver):
    """Runs `instructions` (GEMM, VECTOR, NOP) on a ComputeUnit from reset, each started in
    the first cycle in which `ready` is high for it, with the inp and wgt buffers holding
    `inp` and `wgt` and the accumulator starting as `acc` ((rows, dim) int arrays; data one
    cycle after its read request, a poison pattern otherwise; the accumulator's read port
    sees a write in the same cycle, as Core's does).

    Checks, from the cycle model's busy and latency (docs/isa.md) of each instruction
    started in cycle s: `ready` only while `free` or where the early weight load lets a GEMM
    that loads weights start (`ComputeHazards.free_for`); `free` exactly from s+busy on;
    push counts exactly in the completion cycle s+busy+latency; `in_flight` exactly while a
    started instruction completes later; every buffer read and accumulator write exactly the
    rows the ISA names, once each, in program order, between the start and the completion of
    its instruction (a VECTOR scale reads its inp row and no acc row, and writes none: its
    scale registers are inside the unit, seen through the later lane_scale VECTORs' acc
    writes). An illegal instruction must raise `error` in the cycle after its start and
    touch nothing; the unit is then watched until what it started before has completed, and
    `result` raises IsaError naming the instruction.
    """

    INPUTS = (
        "control__start",
        "control__instr",
        "clear",
        "inp__data",
        "wgt__data",
        "acc_read__data",
    )

    def __init__(self, config: AccelConfig, instructions, inp, wgt, acc):
        dim = config.dim
        arrays = {"inp": (inp, config.inp_rows), "wgt": (wgt, config.wgt_rows)}
        arrays["acc"] = (acc, config.acc_rows)
        for name, (values, rows) in arrays.items():
            if np.shape(values) != (rows, dim):
                raise ValueError(f"{name} must have shape {(rows, dim)}, not {np.shape(values)}")
        self.config, self.instructions = config, list(instructions)
        self.inp, self.wgt = np.array(inp, np.int64), np.array(wgt, np.int64)
        self.acc = np.array(acc, np.int64)
        self.words = [encode(i) for i in self.instructions]
        self.plans, problems = plan_each(config, self.instructions)
        self.illegal = min(problems, default=None)  # the unit stops at the first
        self.problem = problems.get(self.illegal)
        runs = self.instructions[: self.illegal]  # what runs
        reads = {"inp row": [], "wgt row": [], "acc row read": []}
        writes = []
        for index, ins in enumerate(runs):
            if isinstance(ins, Gemm):
                if ins.load_weights:
                    reads["wgt row"] += [(index, ins.wgt_row + k) for k in range(dim)]
                rows = [(index, r) for r in range(ins.acc_row, ins.acc_row + ins.rows)]
                if ins.accumulate:
                    reads["acc row read"] += rows
            elif isinstance(ins, Vector):
                # A scale reads its inp row into the scale registers and no acc row.
                rows = [(index, r) for r in range(ins.acc_row, ins.acc_row + ins.rows)]
                if ins.op == VectorOp.SCALE:
                    rows = []
                if ins.op in (VectorOp.ADD, VectorOp.MAX):
                    reads["acc row read"] += rows
            else:
                continue
            reads["inp row"] += [(index, ins.inp_row + i) for i in range(ins.rows)]
            writes += rows
        self.reads = {name: AccessSequence(name, expected) for name, expected in reads.items()}
        self.writes = AccessSequence("acc row write", writes)
        self.timeline = np.full((len(self.instructions), 2), -1, np.int64)
        # Even one instruction at a time, the run ends within this many cycles.
        self.limit = 32 + sum(p.busy + p.latency + 4 for p in self.plans.values())
        self.poison = poison(row_bits(config, Buffer.INP))
        self.acc_poison = poison(row_bits(config, Buffer.ACC))
        self.pending: dict[str, int] = {}  # port -> row read in the previous cycle
        self.next_index = 0
        self.free_at = 0  # the cycle `free` is due again
        self.hazards = ComputeHazards(config.dim)  # for the early weight load
        self.error_index = None
        self.quiet = 0
        self.macs = self.zero_macs = 0
        self.packed_macs = dict.fromkeys(PACKED_MAC_COUNTERS.values(), 0)
        self.idle = 0  # cycles in a row with everything started (or stopped) and completed
        self.cycle = 0
        self.done = False

    # -- JSON across processes

    def to_case(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "instructions": words_hex(self.instructions),
            "inp": self.inp.tolist(),
            "wgt": self.wgt.tolist(),
            "acc": self.acc.tolist(),
        }

    @classmethod
    def from_case(cls, case: dict) -> ComputeUnitDriver:
        config = AccelConfig.from_dict(case["config"])
        instructions = from_hex(case["instructions"])
        return cls(config, instructions, case["inp"], case["wgt"], case["acc"])

    def snapshot(self) -> dict:
        return {
            "acc": self.acc.tolist(),
            "timeline": self.timeline.tolist(),
            "macs": self.macs,
            "zero_macs": self.zero_macs,
            "packed_macs": self.packed_macs,
            "error_index": self.error_index,
        }

    def restore(self, snapshot: dict) -> None:
        self.acc = np.array(snapshot["acc"], np.int64)
        self.timeline = np.array(snapshot["timeline"], np.int64).reshape(-1, 2)
        self.macs, self.zero_macs = snapshot["macs"], snapshot["zero_macs"]
        self.packed_macs = snapshot["packed_macs"]
        self.error_index = snapshot["error_index"]

    def result(self) -> ComputeRun:
        if self.error_index is not None:
            raise unit_error("compute", self.error_index)
        return ComputeRun(
            self.acc.copy(), self.timeline.copy(), self.macs, self.zero_macs, self.packed_macs
        )

    # -- the cycle

    def _started(self):
        """(index, plan, start, completion) of every legal instruction started so far."""
        for index in range(self.next_index):
            plan = self.plans.get(index)
            if plan is not None:
                start = int(self.timeline[index, 0])
                yield index, plan, start, start + plan.busy + plan.latency

    def _window(self, index: int) -> bool:
        start, completion = self.timeline[index]
        return index < self.next_index and start <= self.cycle < completion

    def inputs(self, read) -> dict[str, int]:
        t = self.cycle
        if t > self.limit:
            self._broken(f"the compute unit did not finish within {self.limit} cycles")
        free, in_flight = read("control__free"), read("control__in_flight")
        error = read("control__error")
        pushes = [0, 0]
        later = False
        for index, plan, start, completion in self._started():
            if completion == t:
                deps = plan.instruction.deps
                pushes[0] += deps.push_prev
                pushes[1] += deps.push_next
                self.running = index
                for sequence in (*self.reads.values(), self.writes):
                    if not sequence.finished(index):
                        self._broken(f"completed before its last {sequence.name}")
                self.running = None
            later |= start < t < completion
        got = [read("control__push_prev"), read("control__push_next")]
        if got != pushes:
            self._broken(f"push_prev, push_next are {got}, not {pushes}")
        if bool(in_flight) != later:
            self._broken(f"in_flight is {in_flight}")
        if bool(free) != (t >= self.free_at):
            self._broken(f"free is {free}, but the unit is busy until cycle {self.free_at}")
        last = self.next_index - 1
        if self.error_index is None:
            if error:
                if last < 0 or last != self.illegal or self.timeline[last, 0] != t - 1:
                    self._broken("error without an illegal instruction started in the last cycle")
                self.error_index = last
            elif last >= 0 and last == self.illegal:
                self._broken(f"no error for illegal instruction {last} ({self.problem})")
        elif not error:
            self._broken("error is low again")
        finished = (self.error_index is not None or self.next_index == len(self.instructions)) and (
            not later and t >= self.free_at
        )
        self.idle = self.idle + 1 if finished else 0
        # The counters are read a cycle after the last completion, as the core reads them at
        # `done`: the last row's zero count arrives in that cycle.
        if self.idle > 1:
            self.macs, self.zero_macs = read("macs"), read("zero_macs")
            self.packed_macs = {name: read(name) for name in self.packed_macs}
            self.done = self.error_index is None or self.quiet >= self.QUIET_CYCLES
        offering = self.error_index is None and self.next_index < len(self.instructions)
        data = {}
        operands = (("inp__data", "inp", Buffer.INP), ("wgt__data", "wgt", Buffer.WGT))
        for port, name, buffer in operands:
            row = self.pending.get(name)
            values, width = getattr(self, name), element_bits(self.config, buffer)
            data[port] = self.poison if row is None else pack_lanes(values[row], width)
        row = self.pending.get("acc")
        acc_bits = element_bits(self.config, Buffer.ACC)
        acc_row = self.acc_poison if row is None else pack_lanes(self.acc[row], acc_bits)
        data["acc_read__data"] = acc_row
        return {
            "control__instr": self.words[self.next_index] if offering else 0,
            "clear": 0,
            **data,
        }

    def late_inputs(self, read) -> dict[str, int]:
        ready = read("control__ready")
        offering = self.error_index is None and self.next_index < len(self.instructions)
        plan = self.plans.get(self.next_index) if offering else None
        allowed = self.free_at
        if plan is not None:
            allowed = self.hazards.free_for(plan, self.free_at)
        elif offering and _starts_early(self.instructions[self.next_index]):
            allowed = self.free_at - self.hazards.overlap  # an illegal one may start early too
        if ready and self.cycle < allowed:
            self._broken(f"ready in cycle {self.cycle}, but the unit is busy until {self.free_at}")
        if not (offering and ready):
            return {"control__start": 0}
        index, t = self.next_index, self.cycle
        self.timeline[index, 0] = t
        if plan is not None:
            self.timeline[index, 1] = t + plan.busy + plan.latency
            self.free_at = t + plan.busy
            self.hazards.started(plan, t)
        self.next_index += 1
        return {"control__start": 1}

    def outputs(self, read) -> None:
        self.pending = {}
        for name, enable, address, sequence in (
            ("inp", "inp__en", "inp__addr", self.reads["inp row"]),
            ("wgt", "wgt__en", "wgt__addr", self.reads["wgt row"]),
            ("acc", "acc_read__en", "acc_read__addr", self.reads["acc row read"]),
        ):
            if read(enable):
                row = read(address)
                sequence.take(self, row, self._window)
                self.pending[name] = row
        if read("acc_write__en"):
            row = read("acc_write__addr")
            self.writes.take(self, row, self._window)
            acc_bits = element_bits(self.config, Buffer.ACC)
            self.acc[row] = unpack_signed_lanes(read("acc_write__data"), acc_bits, self.config.dim)
        if self.error_index is not None:
            self.quiet += 1
        self.cycle += 1


def _starts_early(instruction) -> bool:
    """Whether the unit may start `instruction` early (the early weight load) by its fields
    alone, as it does before it finds an illegal one."""
    return isinstance(instruction, Gemm) and bool(instruction.load_weights and instruction.rows)


def simulate_compute_unit(config: AccelConfig, instructions, inp, wgt, acc, *, dut=None):
    """Run `instructions` (GEMM, VECTOR, NOP) on a ComputeUnit from reset, driven and checked
    by `ComputeUnitDriver` with buffers `inp`, `wgt` and `acc` ((rows, dim) int arrays).
    Return a ComputeRun (final accumulator, timeline of start and completion cycles,
    counters); raise IsaError naming the instruction when the unit raised its error status,
    UnitProtocolError when it broke the port contract. `dut` replaces the default
    `ComputeUnit(config)` (a variant with the same ports)."""
    driver = ComputeUnitDriver(config, instructions, inp, wgt, acc)
    drive_in_amaranth(ComputeUnit(config) if dut is None else dut, driver)
    return driver.result()


def run_compute_bench(
    config: AccelConfig,
    instructions,
    inp,
    wgt,
    acc,
    *,
    dut=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> ComputeRun:
    """Run this module's cocotb test on the Verilated `dut` (default: `ComputeUnit(config)`):
    `instructions` on buffers `inp`, `wgt` and `acc`, driven and checked by
    `ComputeUnitDriver` exactly as `simulate_compute_unit` does. Return a ComputeRun as that
    function does; raise UnitProtocolError or IsaError as it does, RtlError when the bench
    could not run."""
    driver = ComputeUnitDriver(config, instructions, inp, wgt, acc)  # checks the buffers
    dut = ComputeUnit(config) if dut is None else dut
    top = f"{type(dut).__name__.lower().lstrip('_')}_{config.dim}x{config.acc_rows}"
    return run_driver_bench(driver, dut, top, __name__, build_root, results_dir).result()


@cocotb.test()
async def compute_unit_runs_the_case(dut):
    """The Verilated ComputeUnit driven by `ComputeUnitDriver`; the case comes from
    UNIT_CASE (`ComputeUnitDriver.to_case`), the snapshot or protocol violation goes to
    UNIT_RESULT."""
    await run_case_with_cocotb(dut, ComputeUnitDriver)
