"""Instruction-level simulator: runs a Program bit-exactly with the cycle model of docs/isa.md.

`run_program` places the inputs in main memory, runs the instructions and returns the outputs
and the Activity record; `run_instructions` is the layer underneath (a raw instruction list on
a main-memory image). The simulator is event driven: it only visits cycles in which something
can change (a fetch, a unit becoming free, a completion), so its cost grows with the number of
instructions, not with the number of cycles.

Readings of docs/isa.md where the text is silent or ambiguous (each is the simplest one we
could see hardware implementing):

- **When operands are read.** Writes are applied at completion (the spec). Reads happen at
  start, after the completions of that cycle have been applied: a consumer that pops its
  producer's token in the completion cycle sees the producer's data. The one exception is
  the accumulator read of GEMM with `accumulate` and VECTOR add/max, which is a
  read-modify-write at completion: the adder sits at the end of the array pipeline, which is
  what lets accumulating GEMMs into the same rows follow each other back to back.
  LOAD reads main memory at start; STORE reads acc and the req table at start (and checks
  the requant shifts then); GEMM takes its weights (`load_weights`) and activations at start.
  Reading at start matches hardware that streams its operands during `busy`: a compute NOP
  after a GEMM may release the GEMM's inp rows (c2l) before the GEMM completes, and a LOAD
  that then overwrites them does not change the GEMM's result.
- **Ties in completion order.** Completions in one cycle are applied in program order. This
  cannot change the result of a race-free program: within a unit, effects complete in
  program order in distinct cycles (every busy is at least 1, GEMM latency 2*dim > VECTOR
  latency 2, the hazard rule orders VECTORs; a compute NOP may overtake a GEMM but has no
  effects), and across units a token orders its pusher's completion at `c` before the
  consumer's completion at `c + 1` or later. Two effects in one cycle on the same location
  are therefore a race that no token ordered, and no tie order is more right than another.
- **Busy of 0.** A GEMM with `rows` 0 and no `load_weights`, a fill or VECTOR of 0 rows
  would be busy for 0 cycles; a unit starts at most one instruction per cycle, so busy is at
  least 1 (this is also the value summed into `busy[unit]`).
- **"Has completed".** An instruction that completes in cycle `c` counts as completed in
  cycle `c` for the hazard rule and the end condition, as its token pushes do for pops.
- **End.** The cycle count is `max(FINISH fetch cycle + 1, last completion cycle)`: the
  first cycle whose *start* state has fetch stopped and everything drained. A program that
  is only FINISH takes 1 cycle.
- **Stall.** A unit stalls in cycle `t` if it is idle and the head of its queue was fetched
  before `t` (so could start in `t`) but lacks a token or waits for the hazard rule.
- **When errors are raised.** Static errors (flags, ranges, `elems`, fill of req, missing
  FINISH, capacity) are checked for every instruction up to the first FINISH before the run
  starts, in program order; instructions after FINISH are never fetched and not checked.
  The requant `shift` is checked when the STORE starts, for entries `c < elems` of
  `req_row`, and only when `rows > 0`. Deadlock is raised when no event can ever happen
  again, naming every waiting queue head and the counters.
- **Fields are checked only where used.** `elems` and the main-memory range are not checked
  for a fill, `wgt_row` only with `load_weights`. A buffer
  range is `row + rows <= depth` also for `rows` 0.
- **Values the encoding allows but the spec does not name** are illegal instructions: NOP
  `target` 3, VECTOR `op` 3, any flag on FINISH, and field values that do not fit their
  bits (instructions built in code are not range-checked by their dataclasses).
- **Requant entries.** `multiplier` is read as the int32 it is stored as; a negative value is
  not an error and multiplies as signed. `clamp(v, lo, hi)` is `min(max(v, lo), hi)`.
- **Overlapping rows.** A STORE whose rows overlap in main memory (`dram_stride` below the
  row's bytes, e.g. 0) writes them in order, so the last row wins.
- **Counters** are unbounded (the spec gives them no width).
- **`inp_read_bytes`** counts GEMM and VECTOR reads (`dim` bytes per row each).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verdigris.arch.activity import UNITS, Activity
from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    DEP_FLAGS,
    ELEMENT_BYTES,
    TOKEN_COUNTERS,
    Buffer,
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
    decode_elements,
    disassemble,
    encode,
    token_counter,
)
from verdigris.arch.program import Program, pack_tensor, unpack_tensor
from verdigris.arch.timing import LOAD_OVERHEAD, STORE_OVERHEAD, VECTOR_LATENCY, gemm_latency

__all__ = ["IsaError", "run_instructions", "run_program"]

logger = logging.getLogger(__name__)

# Dependency-token counters are kept in a list, in the order of TOKEN_COUNTERS.
TOKEN_NAMES = tuple(counter.name for counter in TOKEN_COUNTERS)


def _counter_index(unit: Unit, flag: str) -> int | None:
    counter = token_counter(unit, flag)
    return None if counter is None else TOKEN_COUNTERS.index(counter)


# The counter each flag (in DEP_FLAGS order) acts on, per unit; None where it is illegal.
_FLAG_COUNTERS: dict[Unit, tuple[int | None, ...]] = {
    unit: tuple(_counter_index(unit, flag) for flag in DEP_FLAGS) for unit in Unit
}

# The req table holds each entry as these six int64 fields (last axis).
_BIAS, _MULTIPLIER, _SHIFT, _ZERO_POINT, _QMIN, _QMAX = range(6)
_SHIFT_RANGE = (1, 62)


_Effect = Callable[[], None]


class IsaError(RuntimeError):
    """The executor stopped with an error status: an illegal instruction or program, or a
    deadlock. `index` is the instruction's index in the program, None for whole-program
    errors."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def _instruction_error(index: int, instruction: Instruction, problem: str) -> IsaError:
    return IsaError(f"instruction {index} ({disassemble(instruction).strip()}): {problem}", index)


@dataclass(frozen=True)
class _Plan:
    """An instruction after its static checks, with the timing the cycle model gives it."""

    index: int
    instruction: Instruction
    unit: Unit
    busy: int
    latency: int
    pops: tuple[int, ...]
    pushes: tuple[int, ...]
    words: int  # main-memory words moved (LOAD, STORE), summed over rows
    is_vector: bool  # waits for the array pipeline to drain (hazard rule)
    uses_array: bool  # GEMM or VECTOR: later VECTORs wait for its completion
    loads_weights: bool  # GEMM with load_weights: waits for the weight-swap rule
    streams: bool  # GEMM with rows > 0: streams activations (and swaps in a new tile)


# ------------------------------------------------------------------------- static checks


def _wrap32(values: np.ndarray) -> np.ndarray:
    """int64 values modulo 2**32 in the signed range (kept local: the simulator depends on
    the contract in verdigris.arch only, not on the compiler's golden model)."""
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _check_range(
    index: int, instruction: Instruction, buffer: Buffer, row: int, rows: int, depth: int
) -> None:
    if row + rows > depth:
        raise _instruction_error(
            index,
            instruction,
            f"{buffer.name.lower()} rows [{row}, {row + rows}) run past the end of the "
            f"{buffer.name.lower()} buffer ({depth} rows)",
        )


def _check_elems(index: int, instruction: Instruction, elems: int, dim: int) -> None:
    if not 1 <= elems <= dim:
        raise _instruction_error(index, instruction, f"elems {elems} is outside 1..{dim}")


def _check_memory(
    index: int,
    instruction: Instruction,
    transfer: tuple[int, int, int, int],
    size: int,
) -> None:
    addr, stride, rows, nbytes = transfer
    if rows == 0:
        return
    end = addr + (rows - 1) * stride + nbytes
    if end > size:
        raise _instruction_error(
            index,
            instruction,
            f"main-memory range [{addr}, {end}) runs past the end of main memory ({size} bytes)",
        )


def _words(addr: int, stride: int, rows: int, nbytes: int, dma_bytes: int) -> int:
    """Σ over rows of the dma_bytes-wide words a row touches (docs/isa.md `words`)."""
    if rows == 0:
        return 0
    if stride % dma_bytes == 0:  # every row starts at the same offset within a word
        return rows * (((addr % dma_bytes) + nbytes + dma_bytes - 1) // dma_bytes)
    offsets = (addr + stride * np.arange(rows, dtype=np.int64)) % dma_bytes
    return int(((offsets + nbytes + dma_bytes - 1) // dma_bytes).sum())


def _tokens(
    index: int, instruction: Instruction, unit: Unit
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    pops, pushes = [], []
    for name, counter in zip(DEP_FLAGS, _FLAG_COUNTERS[unit], strict=True):
        if not getattr(instruction.deps, name):
            continue
        if counter is None:
            raise _instruction_error(
                index, instruction, f"{name} is illegal on the {unit.name.lower()} unit"
            )
        (pops if name.startswith("pop_") else pushes).append(counter)
    return tuple(pops), tuple(pushes)


def _plan(
    index: int,
    instruction: Instruction,
    unit: Unit,
    timing: tuple[int, int],
    words: int = 0,
) -> _Plan:
    busy, latency = timing
    pops, pushes = _tokens(index, instruction, unit)
    return _Plan(
        index=index,
        instruction=instruction,
        unit=unit,
        # A unit starts at most one instruction per cycle, so nothing is busy for 0 cycles.
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


def _plan_load(index: int, ins: Load, config: AccelConfig) -> _Plan:
    buffer = Buffer(ins.buffer)
    _check_range(index, ins, buffer, ins.buf_row, ins.rows, buffer_rows(config, buffer))
    if ins.fill:
        if buffer is Buffer.REQ:
            raise _instruction_error(index, ins, "a fill of the req table is illegal")
        return _plan(index, ins, Unit.LOAD, (ins.rows, 0))
    _check_elems(index, ins, ins.elems, config.dim)
    nbytes = ins.elems * ELEMENT_BYTES[buffer]
    transfer = (ins.dram_addr, ins.dram_stride, ins.rows, nbytes)
    _check_memory(index, ins, transfer, config.main_memory_bytes)
    words = _words(*transfer, config.dma_bytes)
    return _plan(index, ins, Unit.LOAD, (words + LOAD_OVERHEAD, 0), words)


def _plan_gemm(index: int, ins: Gemm, config: AccelConfig) -> _Plan:
    dim = config.dim
    _check_range(index, ins, Buffer.INP, ins.inp_row, ins.rows, config.inp_rows)
    _check_range(index, ins, Buffer.ACC, ins.acc_row, ins.rows, config.acc_rows)
    if ins.load_weights:
        _check_range(index, ins, Buffer.WGT, ins.wgt_row, dim, config.wgt_rows)
    busy = (dim if ins.load_weights else 0) + ins.rows
    return _plan(index, ins, Unit.COMPUTE, (busy, gemm_latency(dim)))


def _plan_vector(index: int, ins: Vector, config: AccelConfig) -> _Plan:
    if ins.op not in tuple(VectorOp):
        raise _instruction_error(index, ins, f"VECTOR op {ins.op} is not write, add or max")
    _check_range(index, ins, Buffer.INP, ins.inp_row, ins.rows, config.inp_rows)
    _check_range(index, ins, Buffer.ACC, ins.acc_row, ins.rows, config.acc_rows)
    return _plan(index, ins, Unit.COMPUTE, (ins.rows, VECTOR_LATENCY))


def _plan_store(index: int, ins: Store, config: AccelConfig) -> _Plan:
    _check_range(index, ins, Buffer.ACC, ins.acc_row, ins.rows, config.acc_rows)
    _check_elems(index, ins, ins.elems, config.dim)
    # The req row is read for its biases even by a raw STORE.
    _check_range(index, ins, Buffer.REQ, ins.req_row, 1, config.req_rows)
    nbytes = ins.elems * (4 if ins.raw else 1)
    transfer = (ins.dram_addr, ins.dram_stride, ins.rows, nbytes)
    _check_memory(index, ins, transfer, config.main_memory_bytes)
    words = _words(*transfer, config.dma_bytes)
    return _plan(index, ins, Unit.STORE, (words + STORE_OVERHEAD, 0), words)


def _plan_nop(index: int, ins: Nop, _config: AccelConfig) -> _Plan:
    if ins.target not in tuple(Unit):
        raise _instruction_error(index, ins, f"NOP target {ins.target} is not a unit (0..2)")
    return _plan(index, ins, Unit(ins.target), (1, 0))


_PLANNERS: dict[type[Instruction], Callable[..., _Plan]] = {
    Load: _plan_load,
    Gemm: _plan_gemm,
    Vector: _plan_vector,
    Store: _plan_store,
    Nop: _plan_nop,
}


def _check_encodable(index: int, instruction: Instruction) -> None:
    try:
        encode(instruction)
    except IllegalInstruction as error:
        raise _instruction_error(index, instruction, str(error)) from None


def _plan_program(config: AccelConfig, instructions: Sequence[Instruction]) -> list[_Plan]:
    """Every instruction before the first FINISH, checked and timed; IsaError for a program
    the machine cannot run."""
    if len(instructions) > config.instruction_capacity:
        raise IsaError(
            f"program of {len(instructions)} instructions exceeds the instruction capacity "
            f"({config.instruction_capacity})"
        )
    plans = []
    for index, instruction in enumerate(instructions):
        if not isinstance(instruction, Instruction):
            raise IsaError(f"instruction {index} is a {type(instruction).__name__}", index)
        _check_encodable(index, instruction)
        if isinstance(instruction, Finish):
            if instruction.deps.bits():
                raise _instruction_error(index, instruction, "FINISH takes no dependency flags")
            return plans
        planner = _PLANNERS.get(type(instruction))
        if planner is None:
            raise IsaError(f"instruction {index} is a {type(instruction).__name__}", index)
        plans.append(planner(index, instruction, config))
    raise IsaError(
        f"program without FINISH: fetch would run past its {len(instructions)} instructions"
    )


# --------------------------------------------------------------------------- semantics


@dataclass
class _State:
    """Everything an instruction reads or writes."""

    config: AccelConfig
    memory: np.ndarray  # uint8, main memory
    buffers: dict[Buffer, np.ndarray]  # int64; the req table has a last axis of 6 fields
    weights: np.ndarray  # the dim x dim tile held in the array
    activity: Activity

    @classmethod
    def reset(cls, config: AccelConfig, memory: np.ndarray) -> _State:
        dim = config.dim
        buffers = {
            Buffer.INP: np.zeros((config.inp_rows, dim), np.int64),
            Buffer.WGT: np.zeros((config.wgt_rows, dim), np.int64),
            Buffer.ACC: np.zeros((config.acc_rows, dim), np.int64),
            Buffer.REQ: np.zeros((config.req_rows, dim, 6), np.int64),
        }
        return cls(config, memory, buffers, np.zeros((dim, dim), np.int64), Activity())


def _row_indices(addr: int, stride: int, rows: int, nbytes: int) -> np.ndarray:
    return (
        addr
        + stride * np.arange(rows, dtype=np.int64)[:, None]
        + np.arange(nbytes, dtype=np.int64)[None, :]
    )


def _read_rows(memory: np.ndarray, addr: int, stride: int, rows: int, nbytes: int) -> np.ndarray:
    if stride == nbytes:
        return memory[addr : addr + rows * nbytes].reshape(rows, nbytes).copy()
    return memory[_row_indices(addr, stride, rows, nbytes)]


def _write_rows(memory: np.ndarray, addr: int, stride: int, data: np.ndarray) -> None:
    rows, nbytes = data.shape
    if stride == nbytes:
        memory[addr : addr + rows * nbytes] = data.ravel()
    elif stride > nbytes or rows <= 1:
        memory[_row_indices(addr, stride, rows, nbytes)] = data
    else:
        # Rows overlap: numpy does not promise which duplicate index wins, the store unit
        # writes the rows one after another, so the last row must win.
        for i in range(rows):
            memory[addr + i * stride : addr + i * stride + nbytes] = data[i]


def _start_load(state: _State, plan: _Plan) -> _Effect:
    ins = plan.instruction
    buffer = Buffer(ins.buffer)
    target = state.buffers[buffer]
    data = np.zeros((ins.rows, *target.shape[1:]), np.int64)
    if ins.fill:
        data[:] = ins.fill_value
    elif ins.rows:
        nbytes = ins.elems * ELEMENT_BYTES[buffer]
        raw = _read_rows(state.memory, ins.dram_addr, ins.dram_stride, ins.rows, nbytes)
        data[:, : ins.elems] = decode_elements(raw, buffer)

    def complete() -> None:
        target[ins.buf_row : ins.buf_row + ins.rows] = data

    return complete


def _zero_macs(activations: np.ndarray, weights: np.ndarray) -> int:
    """MAC slots (row, r, c) with a zero activation inp[row][r] or a zero weight W[r][c]."""
    dim = weights.shape[1]
    zero_activation = activations == 0  # (rows, dim)
    zero_weights_in_row = (weights == 0).sum(axis=1)  # per r: zero weights among the dim c
    with_zero_activation = int(zero_activation.sum()) * dim
    with_zero_weight_only = int(((~zero_activation).astype(np.int64) @ zero_weights_in_row).sum())
    return with_zero_activation + with_zero_weight_only


def _start_gemm(state: _State, plan: _Plan) -> _Effect:
    ins = plan.instruction
    dim = state.config.dim
    if ins.load_weights:
        state.weights = state.buffers[Buffer.WGT][ins.wgt_row : ins.wgt_row + dim].copy()
    activations = state.buffers[Buffer.INP][ins.inp_row : ins.inp_row + ins.rows]
    # Exact in int64 (|p| <= 32 * 128 * 128), and so already in the int32 range.
    products = activations @ state.weights
    state.activity.zero_macs += _zero_macs(activations, state.weights)
    acc = state.buffers[Buffer.ACC]
    rows = slice(ins.acc_row, ins.acc_row + ins.rows)

    def complete() -> None:
        acc[rows] = _wrap32(acc[rows] + products) if ins.accumulate else products

    return complete


def _start_vector(state: _State, plan: _Plan) -> _Effect:
    ins = plan.instruction
    inputs = state.buffers[Buffer.INP][ins.inp_row : ins.inp_row + ins.rows]
    values = _wrap32((inputs - ins.zero) * ins.multiplier)
    acc = state.buffers[Buffer.ACC]
    rows = slice(ins.acc_row, ins.acc_row + ins.rows)
    op = VectorOp(ins.op)

    def complete() -> None:
        if op is VectorOp.WRITE:
            acc[rows] = values
        elif op is VectorOp.ADD:
            acc[rows] = _wrap32(acc[rows] + values)
        else:
            acc[rows] = np.maximum(acc[rows], values)

    return complete


def _requantize(acc: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """acc (rows, elems) through entries (elems, 6): the golden model's requantizer."""
    x = _wrap32(acc + entries[:, _BIAS])
    shift = entries[:, _SHIFT]
    product = x * entries[:, _MULTIPLIER]  # |x|, |m| <= 2**31: |p| <= 2**62
    kept_odd = (product >> shift) & 1
    rounded = (product + (np.int64(1) << (shift - 1)) - 1 + kept_odd) >> shift
    return np.minimum(
        np.maximum(rounded + entries[:, _ZERO_POINT], entries[:, _QMIN]), entries[:, _QMAX]
    )


def _check_shifts(plan: _Plan, entries: np.ndarray) -> None:
    ins = plan.instruction
    shifts = entries[:, _SHIFT]
    low, high = _SHIFT_RANGE
    bad = np.flatnonzero((shifts < low) | (shifts > high))
    if bad.size:
        c = int(bad[0])
        raise _instruction_error(
            plan.index,
            ins,
            f"requant entry req[{ins.req_row}][{c}] has shift {int(shifts[c])}, "
            f"outside {low}..{high}",
        )


def _start_store(state: _State, plan: _Plan) -> _Effect:
    ins = plan.instruction
    acc = state.buffers[Buffer.ACC][ins.acc_row : ins.acc_row + ins.rows, : ins.elems]
    entries = state.buffers[Buffer.REQ][ins.req_row, : ins.elems]
    if ins.raw:  # acc + bias, wrapped, as int32 (docs/isa.md)
        values = _wrap32(acc + entries[:, _BIAS])
        data = values.astype("<i4").view(np.uint8).reshape(ins.rows, 4 * ins.elems)
    else:
        if ins.rows:
            _check_shifts(plan, entries)
        data = (_requantize(acc, entries) & 0xFF).astype(np.uint8)
    memory = state.memory

    def complete() -> None:
        _write_rows(memory, ins.dram_addr, ins.dram_stride, data)

    return complete


def _no_effect() -> None:
    """A NOP's completion: only its tokens."""


def _start_nop(state: _State, plan: _Plan) -> _Effect:  # noqa: ARG001 (every starter takes both)
    return _no_effect


_STARTERS: dict[type[Instruction], Callable[[_State, _Plan], _Effect]] = {
    Load: _start_load,
    Gemm: _start_gemm,
    Vector: _start_vector,
    Store: _start_store,
    Nop: _start_nop,
}


def _count_static(plan: _Plan, config: AccelConfig, activity: Activity) -> None:
    """The Activity counters that follow from the instruction alone."""
    dim = config.dim
    ins = plan.instruction
    unit = UNITS[plan.unit]
    activity.busy[unit] += plan.busy
    activity.instructions[unit] += 1
    acc_row_bytes = 4 * dim
    if isinstance(ins, Load):
        activity.buffer_write_bytes += ins.rows * dim * ELEMENT_BYTES[Buffer(ins.buffer)]
        activity.main_read_bytes += plan.words * config.dma_bytes
    elif isinstance(ins, Gemm):
        activity.macs += ins.rows * dim * dim
        activity.inp_read_bytes += ins.rows * dim
        activity.wgt_read_bytes += dim * dim if ins.load_weights else 0
        activity.acc_read_bytes += ins.rows * acc_row_bytes if ins.accumulate else 0
        activity.acc_write_bytes += ins.rows * acc_row_bytes
    elif isinstance(ins, Vector):
        activity.inp_read_bytes += ins.rows * dim
        reads_acc = ins.op in (VectorOp.ADD, VectorOp.MAX)
        activity.acc_read_bytes += ins.rows * acc_row_bytes if reads_acc else 0
        activity.acc_write_bytes += ins.rows * acc_row_bytes
    elif isinstance(ins, Store):
        activity.acc_read_bytes += ins.rows * acc_row_bytes
        activity.main_write_bytes += plan.words * config.dma_bytes


# ----------------------------------------------------------------------------- timing


class _Machine:
    """The cycle model: fetch, three in-order units, token counters, in-flight completions.

    `run` visits only event cycles; between two of them nothing can start, complete or be
    fetched, so stalls accrue for the whole gap."""

    def __init__(self, plans: list[_Plan], state: _State, timeline: np.ndarray | None = None):
        self.plans = plans
        self.timeline = timeline  # (start, completion) per instruction, when asked for
        self.state = state
        self.depth = state.config.queue_depth
        self.queues: list[deque[tuple[_Plan, int]]] = [deque() for _ in Unit]  # (plan, fetched)
        self.free_at = [0] * len(Unit)
        self.counters = [0] * len(TOKEN_NAMES)
        # (completion cycle, program index, plan, effect): the index breaks ties in
        # program order and keeps the tuples from comparing the rest.
        self.pending: list[tuple[int, int, _Plan, _Effect]] = []
        self.array_drained_at = 0  # completion cycle of the latest started GEMM or VECTOR
        # Weight-swap rule: the stream start of the GEMM that last swapped a new tile in, and
        # whether a loaded tile still waits to be swapped in.
        self.dim = state.config.dim
        self.swapped_at = -(10**18)
        self.swap_pending = False
        self.pc = 0
        self.finish_cycle: int | None = None
        self.last_completion = 0

    def run(self) -> int:
        """Simulate to the end; the cycle count."""
        t = 0
        stall = self.state.activity.stall
        while True:
            self._complete(t)
            self._fetch(t)
            blocked = [unit for unit in Unit if self._try_start(unit, t)]
            following = self._next_event(t)
            if following is None:
                if self.finish_cycle is not None and not any(self.queues) and not self.pending:
                    return max(self.finish_cycle + 1, self.last_completion)
                raise self._deadlock(t)
            for unit in blocked:
                stall[UNITS[unit]] += following - t
            t = following

    def _complete(self, t: int) -> None:
        pending = self.pending
        while pending and pending[0][0] == t:
            _, _, plan, effect = heapq.heappop(pending)
            effect()
            for counter in plan.pushes:
                self.counters[counter] += 1

    def _fetch(self, t: int) -> None:
        if self.finish_cycle is not None:
            return
        if self.pc == len(self.plans):  # the FINISH that ends the plans
            self.finish_cycle = t
            return
        plan = self.plans[self.pc]
        queue = self.queues[plan.unit]
        if len(queue) < self.depth:
            queue.append((plan, t))
            self.pc += 1

    def _try_start(self, unit: Unit, t: int) -> bool:
        """Start the head of `unit`'s queue if it can; True when it stalls instead."""
        queue = self.queues[unit]
        if not queue or self.free_at[unit] > t:
            return False
        plan, fetched = queue[0]
        if fetched >= t:  # fetched this cycle: it can start from the next one
            return False
        counters = self.counters
        if any(counters[c] == 0 for c in plan.pops) or (
            plan.is_vector and self.array_drained_at > t
        ):
            return True
        if plan.loads_weights and t < self.swapped_at + self.dim:
            return True
        queue.popleft()
        for counter in plan.pops:
            counters[counter] -= 1
        effect = _STARTERS[type(plan.instruction)](self.state, plan)
        self.free_at[unit] = t + plan.busy
        if plan.streams and (plan.loads_weights or self.swap_pending):
            self.swapped_at = t + (self.dim if plan.loads_weights else 0)
            self.swap_pending = False
        elif plan.loads_weights:
            self.swap_pending = True
        done = t + plan.busy + plan.latency
        if plan.uses_array:
            self.array_drained_at = done
        self.last_completion = max(self.last_completion, done)
        if self.timeline is not None:
            self.timeline[plan.index] = (t, done)
        heapq.heappush(self.pending, (done, plan.index, plan, effect))
        return False

    def _next_event(self, t: int) -> int | None:
        """The next cycle in which anything can change; None when nothing ever can."""
        candidates = [self.pending[0][0]] if self.pending else []
        for unit, queue in enumerate(self.queues):
            if not queue:
                continue
            if self.free_at[unit] > t:
                candidates.append(self.free_at[unit])
            elif queue[0][1] >= t:
                candidates.append(t + 1)
            elif queue[0][0].loads_weights and self.swapped_at + self.dim > t:
                candidates.append(self.swapped_at + self.dim)
            # else the head waits for tokens or the hazard: only a completion frees it
        if self.finish_cycle is None and (
            self.pc == len(self.plans) or len(self.queues[self.plans[self.pc].unit]) < self.depth
        ):
            candidates.append(t + 1)
        return min(candidates) if candidates else None

    def _deadlock(self, t: int) -> IsaError:
        waiting = []
        for unit, queue in enumerate(self.queues):
            if queue:
                plan = queue[0][0]
                missing = [TOKEN_NAMES[c] for c in plan.pops if self.counters[c] == 0]
                waiting.append(
                    (
                        plan.index,
                        f"the {UNITS[unit]} unit waits at instruction {plan.index} "
                        f"({disassemble(plan.instruction).strip()}) for {', '.join(missing)}",
                    )
                )
        waiting.sort()
        parts = [text for _, text in waiting]
        if self.finish_cycle is None:
            plan = self.plans[self.pc]
            parts.append(
                f"fetch stalls at instruction {self.pc}: the {UNITS[plan.unit]} queue is full "
                f"({self.depth} entries)"
            )
        counters = ", ".join(
            f"{name}={value}" for name, value in zip(TOKEN_NAMES, self.counters, strict=True)
        )
        return IsaError(
            f"deadlock at cycle {t}: {'; '.join(parts)}; no instruction in flight can push "
            f"a token (counters {counters})",
            waiting[0][0] if waiting else None,
        )


# --------------------------------------------------------------------------------- API


def run_instructions(
    config: AccelConfig,
    instructions: Sequence[Instruction],
    memory: np.ndarray,
    *,
    timeline: np.ndarray | None = None,
) -> tuple[np.ndarray, Activity]:
    """Run `instructions` on a main-memory image (uint8, `main_memory_bytes` long); the
    final main memory (a new array) and the Activity. IsaError when the machine would stop
    with an error status. `timeline`, an int64 array of shape (len(instructions), 2), receives
    each instruction's start and completion cycle (FINISH and unexecuted rows are left)."""
    memory = np.asarray(memory)
    if memory.dtype != np.uint8 or memory.shape != (config.main_memory_bytes,):
        raise ValueError(
            f"main memory must be a uint8 array of {config.main_memory_bytes} bytes, not "
            f"{memory.dtype} {memory.shape}"
        )
    began = time.perf_counter()
    plans = _plan_program(config, instructions)
    state = _State.reset(config, memory.copy())
    for plan in plans:
        _count_static(plan, config, state.activity)
    state.activity.cycles = _Machine(plans, state, timeline).run()
    logger.debug(
        "isasim: %d instructions, %d cycles in %.3f s",
        len(plans),
        state.activity.cycles,
        time.perf_counter() - began,
    )
    return state.memory, state.activity


def _place_inputs(program: Program, inputs: Mapping[str, np.ndarray], memory: np.ndarray) -> None:
    names = {binding.name for binding in program.inputs}
    if set(inputs) != names:
        raise ValueError(
            f"inputs {sorted(inputs)} do not match the program's inputs {sorted(names)}"
        )
    for binding in program.inputs:
        values = np.asarray(inputs[binding.name])
        info = np.iinfo(binding.dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(
                f"input {binding.name}: values outside the {binding.dtype} range "
                f"[{info.min}, {info.max}]"
            )
        data = np.frombuffer(pack_tensor(binding, values), np.uint8)
        if binding.dram_addr + data.size > memory.size:
            raise ValueError(
                f"input {binding.name}: [{binding.dram_addr}, {binding.dram_addr + data.size})"
                f" runs past main memory ({memory.size} bytes)"
            )
        memory[binding.dram_addr : binding.dram_addr + data.size] = data


def run_program(
    program: Program, inputs: Mapping[str, np.ndarray], *, timeline: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], Activity]:
    """Run a compiled Program on device inputs (logical integer tensors by binding name);
    the output tensors by binding name and the Activity (and the `timeline`, see
    `run_instructions`)."""
    memory = program.memory_image()
    _place_inputs(program, inputs, memory)
    memory, activity = run_instructions(
        program.config, program.instructions, memory, timeline=timeline
    )
    outputs = {
        binding.name: unpack_tensor(
            binding, memory[binding.dram_addr : binding.dram_addr + binding.nbytes]
        )
        for binding in program.outputs
    }
    return outputs, activity
