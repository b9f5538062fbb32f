"""The cycle model of docs/isa.md as a public API, in three parts:

- **Plans** (`plan_program`, `Plan`, `IsaError`): the static checks of every instruction
  and its timing (unit, busy, latency, tokens, main-memory words, hazard flags).
- **Hazards** (`ComputeHazards`): the compute unit's VECTOR hazard and early weight load.
- **Events** (`instruction_events` and the layer windows): in which cycle, relative to its
  start, each of an instruction's Activity counters increments.

The instruction simulator (sim/isasim.py) runs programs on these; the block drivers of
verify/ check the hardware against them. docs/isa.md ("Cycle model API") lists who uses what.

The event schedule is the hardware's (hw/load_unit.py, hw/compute_unit.py, hw/store_unit.py,
hw/array.py, hw/array_os.py and the byte counters of hw/core.py): a counter increment
"in cycle t" is one the RTL registers at the end of cycle t, so the counter shows it from
cycle t + 1. docs/isa.md ("Activity per layer") defines the windows; the instruction
simulator uses this module to split its Activity per layer, and the RTL's counters,
snapshotted at the same boundaries, must agree exactly (tests/rtl/test_layer_activity_rtl.py).

Every increment of an instruction falls in the cycles from its start to its completion
(`start + busy + latency`), both included; the last one can be the completion cycle itself
(the weight-stationary array's zero count of its last PE).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from verdigris.arch.counters import BYTE_COUNTERS, LOAD_WRITE_COUNTERS, PACKED_MAC_COUNTERS
from verdigris.arch.isa import (
    DEP_FLAGS,
    LUT_ENTRIES,
    OPERAND_WIDTHS,
    TOKEN_COUNTERS,
    Buffer,
    Deps,
    Finish,
    Gemm,
    IllegalInstruction,
    Instruction,
    Load,
    Nop,
    Store,
    Unit,
    Vector,
    VectorOp,
    buffer_rows,
    disassemble,
    encode,
    max_pack,
    operand_width,
    row_bytes,
    token_counter,
    transfer_bytes,
)
from verdigris.arch.timing import (
    LOAD_OVERHEAD,
    LUT_LATENCY,
    STORE_OVERHEAD,
    VECTOR_LATENCY,
    gemm_busy,
    gemm_latency,
)

__all__ = [
    "EVENT_COUNTERS",
    "ZERO_COUNT_DELAY",
    "ComputeHazards",
    "Increments",
    "IsaError",
    "Plan",
    "gemm_row_entries",
    "instruction_error",
    "instruction_events",
    "layer_ends",
    "plan_instruction",
    "plan_program",
    "row_words",
    "transfer_words",
    "window_index",
    "zero_mac_offsets",
]

# The Activity counters that follow an instruction's event schedule (the others: `cycles`,
# `busy` and `stall` split by time, `instructions` at the start cycle, `instruction_fetches`
# at the fetch cycle, before the start (every instruction's, FINISH's too), `zero_macs` per
# PE).
EVENT_COUNTERS = ("macs", *PACKED_MAC_COUNTERS.values(), *BYTE_COUNTERS)

# Cycles from a PE's MAC to the cycle its zero flag is counted, per dataflow: the
# weight-stationary PE registers its flag and the array registers the sum
# (`SystolicArray.zero_count_delay`), the output-stationary array registers the sum only
# (`OutputStationaryArray.zero_count_delay`); the compute unit adds `zero_count` into its
# counter in the cycle it is shown.
ZERO_COUNT_DELAY = {"ws": 2, "os": 1}

# Cycles from a GEMM row's read of the inp buffer to its entry into the array.
_ROW_ENTRY_AFTER_READ = 1


@dataclass(frozen=True)
class Increments:
    """`counter` (an Activity field) grows by `amount` in each cycle `start + offset`,
    for every offset in `offsets` (int64, ascending)."""

    counter: str
    amount: int
    offsets: np.ndarray

    @property
    def total(self) -> int:
        return self.amount * len(self.offsets)


def row_words(addr: int, stride: int, rows: int, nbytes: int, dma_bytes: int) -> np.ndarray:
    """The `dma_bytes`-wide main-memory words each row of a transfer touches (docs/isa.md
    `words`), one entry per row."""
    offsets = (addr + stride * np.arange(rows, dtype=np.int64)) % dma_bytes
    return (offsets + nbytes + dma_bytes - 1) // dma_bytes


def gemm_row_entries(instruction: Gemm, dim: int) -> np.ndarray:
    """Cycles after a GEMM's start at which each streamed row enters the array: after the
    weight phase (`dim` cycles with `load_weights`), one row per cycle, a cycle after its
    inp read (hw/compute_unit.py)."""
    weights = dim if instruction.load_weights else 0
    return weights + 1 + _ROW_ENTRY_AFTER_READ + np.arange(instruction.rows, dtype=np.int64)


def zero_mac_offsets(dim: int, dataflow: str) -> np.ndarray:
    """(dim, dim): cycles after a row's array entry in which the zero-operand MAC of PE
    (r, c) (activation element r, weight W[r][c]) is counted. Weight-stationary: PE (r, c)
    works on the row `r + c` cycles after entry; output-stationary: PE row slot's MAC of
    element r is `1 + r` cycles after entry, for every column c at once (hw/array_os.py).
    Then ZERO_COUNT_DELAY."""
    r = np.arange(dim, dtype=np.int64)[:, None]
    c = np.arange(dim, dtype=np.int64)[None, :]
    if dataflow == "ws":
        mac = r + c
    elif dataflow == "os":
        mac = 1 + r + 0 * c
    else:
        raise ValueError(f"dataflow must be 'ws' or 'os', not {dataflow!r}")
    return mac + ZERO_COUNT_DELAY[dataflow]


def _transfer_row_words(instruction: Load | Store, config) -> np.ndarray:
    """`row_words` of a LOAD transfer or a STORE."""
    return row_words(
        instruction.dram_addr,
        instruction.dram_stride,
        instruction.rows,
        transfer_bytes(config, instruction),
        config.dma_bytes,
    )


def _span(first: int, count: int) -> np.ndarray:
    return first + np.arange(count, dtype=np.int64)


def instruction_events(instruction: Instruction, config) -> tuple[Increments, ...]:
    """The schedule of every EVENT_COUNTERS increment of one (legal) instruction on an
    AccelConfig `config`, relative to its start cycle (zero-operand MACs depend on the data:
    `zero_mac_offsets`). Summed, the increments are the instruction's share of the totals
    of docs/isa.md's Activity table."""
    dim = config.dim
    acc_row = row_bytes(config, Buffer.ACC)
    events: list[Increments] = []

    def add(counter: str, amount: int, offsets: np.ndarray) -> None:
        if len(offsets):
            events.append(Increments(counter, amount, offsets))

    if isinstance(instruction, Load):
        if instruction.buffer not in tuple(Buffer):
            return ()  # illegal: the instruction stops the machine when it starts
        buffer = Buffer(instruction.buffer)
        written, counter = row_bytes(config, buffer), LOAD_WRITE_COUNTERS[buffer]
        if instruction.fill:  # one row written per cycle, the first in the start cycle
            add(counter, written, _span(0, instruction.rows))
        else:
            # One word read per cycle from the cycle after the start; a row is written in
            # the cycle its last word arrives, a cycle after that word's read.
            words = _transfer_row_words(instruction, config)
            add("main_read_bytes", config.dma_bytes, _span(1, int(words.sum())))
            add(counter, written, 1 + np.cumsum(words))
    elif isinstance(instruction, Gemm):
        if instruction.load_weights:  # one wgt row read per cycle after the start
            add("wgt_read_bytes", row_bytes(config, Buffer.WGT), _span(1, dim))
        entries = gemm_row_entries(instruction, dim)
        add("inp_read_bytes", row_bytes(config, Buffer.INP), entries - _ROW_ENTRY_AFTER_READ)
        add("macs", dim * dim, entries)
        if instruction.pack:
            add(PACKED_MAC_COUNTERS[instruction.pack], dim * dim, entries)
        # A row leaves the array 2*dim - 1 cycles after entry and is written then; the acc
        # row it accumulates onto is read a cycle before.
        leaves = entries + 2 * dim - 1
        if instruction.accumulate:
            add("acc_read_bytes", acc_row, leaves - 1)
        add("acc_write_bytes", acc_row, leaves)
    elif isinstance(instruction, Vector):
        reads = _span(1, instruction.rows)
        add("inp_read_bytes", row_bytes(config, Buffer.INP), reads)
        if instruction.op in (VectorOp.ADD, VectorOp.MAX):
            add("acc_read_bytes", acc_row, reads)
        if instruction.op != VectorOp.SCALE:
            add("acc_write_bytes", acc_row, reads + 1)
    elif isinstance(instruction, Store):
        # Row i's acc row and the req row are read when the words of the rows before it
        # have had their cycles; the words leave the requantizer one per cycle from
        # STORE_OVERHEAD on.
        words = _transfer_row_words(instruction, config)
        reads = 1 + np.cumsum(words) - words
        add("acc_read_bytes", acc_row, reads)
        add("req_read_bytes", row_bytes(config, Buffer.REQ), reads)
        # With a lookup, a row's table entries are read as it leaves the requantizer, and
        # the words leave a cycle later.
        first_write = STORE_OVERHEAD
        if instruction.lut:
            add("lut_read_bytes", row_bytes(config, Buffer.LUT), reads + STORE_OVERHEAD - 1)
            first_write += LUT_LATENCY
        add("main_write_bytes", config.dma_bytes, _span(first_write, int(words.sum())))
    return tuple(events)


def layer_ends(lasts: Sequence[int], completions: np.ndarray) -> list[int]:
    """E_i of docs/isa.md per layer, from each layer's `last` and each instruction's
    completion cycle: the cycle in which the last of the instructions [0, last) completes
    (a running maximum, so an empty layer's E is the previous one's; 0 before any
    completion)."""
    ends, end, done = [], 0, 0
    prefix = np.maximum.accumulate(completions) if len(completions) else completions
    for last in lasts:
        last = min(int(last), len(completions))
        if last > done:
            end = max(end, int(prefix[last - 1]))
            done = last
        ends.append(end)
    return ends


def window_index(cycles: np.ndarray | int, cuts: Sequence[int]) -> np.ndarray:
    """The window of each cycle: window i holds the cycles `cuts[i-1] <= t < cuts[i]`
    (`cuts` are E_0 .. E_{n-2}; window 0 starts at 0, the last one has no end)."""
    return np.searchsorted(np.asarray(cuts, np.int64), cycles, side="right")


# ------------------------------------------------------------------ the plan of a program
#
# `plan_program` is the static half of the cycle model: every check docs/isa.md ("Errors")
# makes before a program runs, and the busy, latency, tokens and main-memory words of each
# instruction. `ComputeHazards` is the dynamic half the compute unit adds: the VECTOR hazard
# and the early weight load. The instruction simulator (sim/isasim.py) runs programs on them
# and the block drivers of verify/ check the hardware against them.


class IsaError(RuntimeError):
    """The executor stopped with an error status: an illegal instruction or program, or a
    deadlock. `index` is the instruction's index in the program, None for whole-program
    errors. (Also importable as `verdigris.sim.isasim.IsaError`.)"""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def instruction_error(index: int, instruction: Instruction, problem: str) -> IsaError:
    """The IsaError of instruction `index`: "instruction {index} ({disassembly}): {problem}"."""
    return IsaError(f"instruction {index} ({disassemble(instruction).strip()}): {problem}", index)


@dataclass(frozen=True)
class Plan:
    """An instruction after its static checks, with the timing the cycle model gives it:
    started in cycle s, its unit is busy until s + busy and it completes (pushes its tokens,
    applies its writes) in s + busy + latency."""

    index: int  # in the program
    instruction: Instruction
    unit: Unit  # the unit that runs it (a NOP's target)
    busy: int  # at least 1: a unit starts at most one instruction per cycle
    latency: int
    pops: tuple[int, ...]  # indices into TOKEN_COUNTERS, popped at the start
    pushes: tuple[int, ...]  # indices into TOKEN_COUNTERS, pushed at the completion
    words: int  # main-memory words moved (LOAD, STORE), summed over rows
    is_vector: bool  # waits for the array pipeline to drain (VECTOR hazard)
    uses_array: bool  # GEMM or VECTOR: later VECTORs wait for its completion
    loads_weights: bool  # GEMM with load_weights: with `streams`, may start early
    streams: bool  # GEMM with rows > 0: streams activations (and swaps in a new tile)


def transfer_words(addr: int, stride: int, rows: int, nbytes: int, dma_bytes: int) -> int:
    """Σ over rows of the `dma_bytes`-wide words a row of `nbytes` touches (docs/isa.md
    `words`): the sum of `row_words`."""
    if rows == 0:
        return 0
    if stride % dma_bytes == 0:  # every row starts at the same offset within a word
        return rows * (((addr % dma_bytes) + nbytes + dma_bytes - 1) // dma_bytes)
    return int(row_words(addr, stride, rows, nbytes, dma_bytes).sum())


def _check_range(
    index: int, instruction: Instruction, buffer: Buffer, row: int, rows: int, depth: int
) -> None:
    if row + rows > depth:
        raise instruction_error(
            index,
            instruction,
            f"{buffer.name.lower()} rows [{row}, {row + rows}) run past the end of the "
            f"{buffer.name.lower()} buffer ({depth} rows)",
        )


def _check_elems(index: int, instruction: Instruction, elems: int, dim: int) -> None:
    if not 1 <= elems <= dim:
        raise instruction_error(index, instruction, f"elems {elems} is outside 1..{dim}")


def _check_pack(index: int, instruction: Gemm | Store, config) -> None:
    """A GEMM's or STORE's `pack` must give an operand width the array computes: one of
    OPERAND_WIDTHS, down to the config's operand_bits."""
    pack = instruction.pack
    allowed = "/".join(f"int{w}" for w in OPERAND_WIDTHS if w >= config.operand_bits)
    if pack > max_pack(config):
        raise instruction_error(
            index,
            instruction,
            f"pack {pack} (int{operand_width(pack)} operands) is not a width this array "
            f"computes: operand_bits {config.operand_bits} allows {allowed}",
        )


def _transfer_words(index: int, instruction: Load | Store, config) -> int:
    """The words of a LOAD or STORE transfer, after checking it stays in main memory."""
    addr, stride, rows = instruction.dram_addr, instruction.dram_stride, instruction.rows
    nbytes = transfer_bytes(config, instruction)
    size = config.main_memory_bytes
    end = addr + (rows - 1) * stride + nbytes
    if rows and end > size:
        raise instruction_error(
            index,
            instruction,
            f"main-memory range [{addr}, {end}) runs past the end of main memory ({size} bytes)",
        )
    return transfer_words(addr, stride, rows, nbytes, config.dma_bytes)


# The counter each flag (in DEP_FLAGS order) acts on, per unit; None where it is illegal.
_FLAG_COUNTERS: dict[Unit, tuple[int | None, ...]] = {
    unit: tuple(
        None if (counter := token_counter(unit, flag)) is None else TOKEN_COUNTERS.index(counter)
        for flag in DEP_FLAGS
    )
    for unit in Unit
}


def _tokens(
    index: int, instruction: Instruction, unit: Unit
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    pops, pushes = [], []
    for name, counter in zip(DEP_FLAGS, _FLAG_COUNTERS[unit], strict=True):
        if not getattr(instruction.deps, name):
            continue
        if counter is None:
            raise instruction_error(
                index, instruction, f"{name} is illegal on the {unit.name.lower()} unit"
            )
        (pops if name.startswith("pop_") else pushes).append(counter)
    return tuple(pops), tuple(pushes)


def _plan(
    index: int, instruction: Instruction, unit: Unit, busy: int, latency: int, words: int = 0
) -> Plan:
    pops, pushes = _tokens(index, instruction, unit)
    return Plan(
        index=index,
        instruction=instruction,
        unit=unit,
        busy=max(1, busy),
        latency=latency,
        pops=pops,
        pushes=pushes,
        words=words,
        is_vector=isinstance(instruction, Vector),
        uses_array=isinstance(instruction, Gemm | Vector),
        loads_weights=isinstance(instruction, Gemm) and bool(instruction.load_weights),
        streams=isinstance(instruction, Gemm) and instruction.rows > 0,
    )


def _plan_load(index: int, ins: Load, config) -> Plan:
    if ins.buffer not in tuple(Buffer):
        raise instruction_error(
            index, ins, f"LOAD buffer {ins.buffer} is not a buffer (0 inp .. 4 lut)"
        )
    buffer = Buffer(ins.buffer)
    _check_range(index, ins, buffer, ins.buf_row, ins.rows, buffer_rows(config, buffer))
    if ins.fill:
        if buffer is Buffer.REQ:
            raise instruction_error(index, ins, "a fill of the req table is illegal")
        return _plan(index, ins, Unit.LOAD, ins.rows, 0)
    _check_elems(index, ins, ins.elems, config.dim)
    words = _transfer_words(index, ins, config)
    return _plan(index, ins, Unit.LOAD, words + LOAD_OVERHEAD, 0, words)


def _plan_gemm(index: int, ins: Gemm, config) -> Plan:
    dim = config.dim
    _check_range(index, ins, Buffer.INP, ins.inp_row, ins.rows, config.inp_rows)
    _check_range(index, ins, Buffer.ACC, ins.acc_row, ins.rows, config.acc_rows)
    if ins.load_weights:
        _check_range(index, ins, Buffer.WGT, ins.wgt_row, dim, config.wgt_rows)
    _check_pack(index, ins, config)
    busy = gemm_busy(dim, ins.load_weights, ins.rows)
    return _plan(index, ins, Unit.COMPUTE, busy, gemm_latency(dim))


def _plan_vector(index: int, ins: Vector, config) -> Plan:
    if ins.op == VectorOp.SCALE:
        if ins.rows != 1 or ins.lane_scale:
            raise instruction_error(
                index, ins, "VECTOR scale takes one row (rows 1) and no lane_scale"
            )
        _check_range(index, ins, Buffer.INP, ins.inp_row, 1, config.inp_rows)
        return _plan(index, ins, Unit.COMPUTE, 1, VECTOR_LATENCY)
    _check_range(index, ins, Buffer.INP, ins.inp_row, ins.rows, config.inp_rows)
    _check_range(index, ins, Buffer.ACC, ins.acc_row, ins.rows, config.acc_rows)
    return _plan(index, ins, Unit.COMPUTE, ins.rows, VECTOR_LATENCY)


def _plan_store(index: int, ins: Store, config) -> Plan:
    _check_range(index, ins, Buffer.ACC, ins.acc_row, ins.rows, config.acc_rows)
    _check_elems(index, ins, ins.elems, config.dim)
    # The req row is read for its biases even by a raw STORE.
    _check_range(index, ins, Buffer.REQ, ins.req_row, 1, config.req_rows)
    _check_pack(index, ins, config)
    if ins.raw and ins.pack:
        raise instruction_error(index, ins, "a raw STORE writes int32s: pack must be 0")
    overhead = STORE_OVERHEAD
    if ins.lut:
        if ins.raw:
            raise instruction_error(index, ins, "a raw STORE cannot look up (lut must be 0)")
        first = (ins.lut - 1) * LUT_ENTRIES
        _check_range(index, ins, Buffer.LUT, first, LUT_ENTRIES, config.lut_rows)
        overhead += LUT_LATENCY
    words = _transfer_words(index, ins, config)
    return _plan(index, ins, Unit.STORE, words + overhead, 0, words)


def _plan_nop(index: int, ins: Nop, _config) -> Plan:
    if ins.target not in tuple(Unit):
        raise instruction_error(index, ins, f"NOP target {ins.target} is not a unit (0..2)")
    return _plan(index, ins, Unit(ins.target), 1, 0)


_PLANNERS: dict[type[Instruction], Callable[..., Plan]] = {
    Load: _plan_load,
    Gemm: _plan_gemm,
    Vector: _plan_vector,
    Store: _plan_store,
    Nop: _plan_nop,
}


def plan_program(config, instructions: Sequence[Instruction]) -> list[Plan]:
    """The Plan of every instruction before the first FINISH on an AccelConfig `config`,
    checked in program order; IsaError (naming the instruction, with its index) for the
    first one the machine cannot run, or for a program over the instruction capacity or
    without FINISH. Instructions after FINISH are never fetched and not checked."""
    if len(instructions) > config.instruction_capacity:
        raise IsaError(
            f"program of {len(instructions)} instructions exceeds the instruction capacity "
            f"({config.instruction_capacity})"
        )
    plans = []
    for index, instruction in enumerate(instructions):
        if not isinstance(instruction, Instruction):
            raise IsaError(f"instruction {index} is a {type(instruction).__name__}", index)
        try:
            encode(instruction)
        except IllegalInstruction as error:
            raise instruction_error(index, instruction, str(error)) from None
        if isinstance(instruction, Finish):
            if instruction.deps.bits():
                raise instruction_error(index, instruction, "FINISH takes no dependency flags")
            return plans
        planner = _PLANNERS.get(type(instruction))
        if planner is None:
            raise IsaError(f"instruction {index} is a {type(instruction).__name__}", index)
        plans.append(planner(index, instruction, config))
    raise IsaError(
        f"program without FINISH: fetch would run past its {len(instructions)} instructions"
    )


def plan_instruction(config, index: int, instruction: Instruction) -> Plan:
    """The Plan of one instruction (not FINISH) as instruction `index` of a program:
    `plan_program` of it alone, its errors naming `index`."""
    try:
        [plan] = plan_program(config, [instruction, Finish(Deps())])
    except IsaError as error:
        if error.index is None:
            raise
        message = str(error).replace("instruction 0", f"instruction {index}", 1)
        raise IsaError(message, index) from None
    return replace(plan, index=index)


class ComputeHazards:
    """The compute unit's hazard rule and early weight load (docs/isa.md, "Cycle model"),
    as state that follows the starts of compute instructions:

    - **VECTOR hazard.** A VECTOR starts only once every GEMM and VECTOR started before it
      has completed (the array pipeline has drained).
    - **Early weight load.** A GEMM with `load_weights` and rows may start up to `overlap`
      cycles before the unit is free, `overlap` being min(`dim`, `rows`) of the compute
      instruction started last if that was a GEMM with rows, else 0. Its weight phase then
      runs beside the end of that GEMM's stream, and its own stream, `dim` cycles after its
      start, follows that stream without a gap; its completion still comes after that
      GEMM's (a GEMM of no rows, which would complete with it, waits until the unit is
      free). It never starts before that GEMM's stream start, so the array's shadow tile
      is never rewritten before the swap has passed (hw/array.py, "Safe reuse").

    `waits(plan, t)` says whether a compute plan must wait in cycle t; `started(plan, t)`
    records that it started in t; `free_for(plan, free_at)` the first cycle the unit, busy
    until `free_at`, may start `plan`. Used by sim/isasim.py, verify/controller.py and
    verify/compute_unit.py."""

    def __init__(self, dim: int):
        self.dim = dim
        self.drained_at = 0  # completion cycle of the latest started GEMM or VECTOR
        self.overlap = 0  # how early a weight load may start (the early weight load)

    def free_for(self, plan: Plan, free_at: int) -> int:
        """The first cycle in which a compute unit that is busy until `free_at` may start
        `plan` (before tokens and the hazard rule)."""
        return free_at - self.overlap if plan.loads_weights and plan.streams else free_at

    def waits(self, plan: Plan, t: int) -> bool:
        """Whether `plan` (started in cycle t) would break the VECTOR hazard."""
        return plan.is_vector and self.drained_at > t

    def started(self, plan: Plan, t: int) -> None:
        """Record that `plan` started in cycle t."""
        if plan.uses_array:
            self.drained_at = t + plan.busy + plan.latency
        if plan.unit == Unit.COMPUTE:
            streamed = plan.instruction.rows if plan.streams else 0
            self.overlap = min(self.dim, streamed)
