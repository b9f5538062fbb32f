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
- **`inp_read_bytes`** counts GEMM and VECTOR reads (an inp row's bytes per row each).
- **`instruction_fetches`** counts every fetched instruction, FINISH included (so it is
  Σ `instructions` + 1), in its fetch cycle.
- **Activity per layer.** `run_program` splits the Activity into the layers' time windows
  of docs/isa.md ("Activity per layer"): `cycles`, `busy` and `stall` by time,
  `instructions` in the start cycle, `instruction_fetches` in the fetch cycle, the other
  counters by each instruction's event schedule (`verdigris.arch.cycle_model`),
  zero-operand MACs per PE.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verdigris.arch.activity import UNITS, Activity, LayerActivity
from verdigris.arch.arithmetic import SHIFT_RANGE, requantize, wrap
from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import LOAD_WRITE_COUNTERS, PACKED_MAC_COUNTERS
from verdigris.arch.cycle_model import (
    ComputeHazards,
    IsaError,
    Plan,
    gemm_row_entries,
    instruction_error,
    instruction_events,
    layer_ends,
    plan_program,
    window_index,
    zero_mac_offsets,
)
from verdigris.arch.isa import (
    BINARY_PACK,
    LUT_ENTRIES,
    TOKEN_COUNTERS,
    Buffer,
    Gemm,
    Instruction,
    Load,
    Nop,
    Store,
    Unit,
    Vector,
    VectorOp,
    decode_elements,
    disassemble,
    element_bits,
    operand_width,
    pack_elements,
    row_bytes,
    transfer_bytes,
    unpack_operands,
)
from verdigris.arch.memory import check_memory_image
from verdigris.arch.program import DeviceStage, LayerInfo, Program, pack_tensor, unpack_tensor
from verdigris.sim.host import run_stages

__all__ = ["IsaError", "run_instructions", "run_program"]

logger = logging.getLogger(__name__)

# Dependency-token counters are kept in a list, in the order of TOKEN_COUNTERS.
TOKEN_NAMES = tuple(counter.name for counter in TOKEN_COUNTERS)

# The req table holds each entry as these six int64 fields (last axis).
_BIAS, _MULTIPLIER, _SHIFT, _ZERO_POINT, _QMIN, _QMAX = range(6)


_Effect = Callable[[], None]


# --------------------------------------------------------------------------- semantics


@dataclass
class _State:
    """Everything an instruction reads or writes."""

    config: AccelConfig
    memory: np.ndarray  # uint8, main memory
    buffers: dict[Buffer, np.ndarray]  # int64; the req table has a last axis of 6 fields
    weights: np.ndarray  # the dim x dim tile held in the array
    activity: Activity
    scale: np.ndarray  # the lanes' scale registers (VECTOR scale)
    # Per GEMM (program index), when asked for: which activations and weights were zero,
    # to split its zero-operand MACs per PE between layer windows.
    zero_flags: dict[int, tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def reset(cls, config: AccelConfig, memory: np.ndarray) -> _State:
        dim = config.dim
        buffers = {
            Buffer.INP: np.zeros((config.inp_rows, dim), np.int64),
            Buffer.WGT: np.zeros((config.wgt_rows, dim), np.int64),
            Buffer.ACC: np.zeros((config.acc_rows, dim), np.int64),
            Buffer.REQ: np.zeros((config.req_rows, dim, 6), np.int64),
            Buffer.LUT: np.zeros((config.lut_rows, dim), np.int64),
        }
        return cls(
            config,
            memory,
            buffers,
            np.zeros((dim, dim), np.int64),
            Activity(),
            np.zeros(dim, np.int64),
        )


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


def _start_load(state: _State, plan: Plan) -> _Effect:
    ins = plan.instruction
    buffer = Buffer(ins.buffer)
    target = state.buffers[buffer]
    data = np.zeros((ins.rows, *target.shape[1:]), np.int64)
    if ins.fill:
        data[:] = ins.fill_value
    elif ins.rows:
        nbytes = transfer_bytes(state.config, ins)
        raw = _read_rows(state.memory, ins.dram_addr, ins.dram_stride, ins.rows, nbytes)
        data[:, : ins.elems] = decode_elements(raw, buffer)

    def complete() -> None:
        target[ins.buf_row : ins.buf_row + ins.rows] = data

    return complete


def _start_gemm(state: _State, plan: Plan) -> _Effect:
    ins = plan.instruction
    dim = state.config.dim
    if ins.load_weights:
        state.weights = state.buffers[Buffer.WGT][ins.wgt_row : ins.wgt_row + dim].copy()
    activations = state.buffers[Buffer.INP][ins.inp_row : ins.inp_row + ins.rows]
    # Exact in int64 (|p| <= 32 * 128 * 128), and so already in the int32 range. Packed
    # bytes multiply as the dot product of their operands: K is dim * 2**pack operands.
    if ins.pack:
        operands = unpack_operands(activations, ins.pack)  # (rows, dim, 2**pack)
        weights = unpack_operands(state.weights, ins.pack)  # (dim, dim, 2**pack)
        k = dim << ins.pack  # operands of K in a row
        products = operands.reshape(ins.rows, k) @ weights.transpose(0, 2, 1).reshape(k, dim)
    else:
        products = activations @ state.weights
    bits = state.config.acc_bits
    # A zero byte is a zero operand, except at BINARY_PACK (eight -1s).
    counted = ins.pack != BINARY_PACK
    zero_activations = (activations == 0) & counted
    zero_weights = (state.weights == 0) & counted
    state.activity.zero_macs += _zero_macs((zero_activations, zero_weights))
    if state.zero_flags is not None and ins.rows:
        state.zero_flags[plan.index] = (zero_activations, zero_weights)
    acc = state.buffers[Buffer.ACC]
    rows = slice(ins.acc_row, ins.acc_row + ins.rows)

    def complete() -> None:
        acc[rows] = wrap(acc[rows] + products, bits) if ins.accumulate else products

    return complete


def _start_vector(state: _State, plan: Plan) -> _Effect:
    ins = plan.instruction
    inputs = state.buffers[Buffer.INP][ins.inp_row : ins.inp_row + ins.rows]
    op = VectorOp(ins.op)
    if op is VectorOp.SCALE:
        scale = inputs[0] - ins.zero

        def latch() -> None:
            state.scale = scale

        return latch
    bits = state.config.acc_bits
    multiplier = state.scale if ins.lane_scale else ins.multiplier
    values = wrap((inputs - ins.zero) * multiplier, bits)
    acc = state.buffers[Buffer.ACC]
    rows = slice(ins.acc_row, ins.acc_row + ins.rows)

    def complete() -> None:
        if op is VectorOp.WRITE:
            acc[rows] = values
        elif op is VectorOp.ADD:
            acc[rows] = wrap(acc[rows] + values, bits)
        else:
            acc[rows] = np.maximum(acc[rows], values)

    return complete


def _requantize(biased: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """acc + bias, wrapped, (rows, elems) through entries (elems, 6): the requantizer of
    `verdigris.arch.arithmetic`, which the golden model uses too."""
    return requantize(
        biased,
        multiplier=entries[:, _MULTIPLIER],
        shift=entries[:, _SHIFT],
        zero_point=entries[:, _ZERO_POINT],
        qmin=entries[:, _QMIN],
        qmax=entries[:, _QMAX],
    )


def _check_shifts(plan: Plan, entries: np.ndarray) -> None:
    ins = plan.instruction
    shifts = entries[:, _SHIFT]
    low, high = SHIFT_RANGE
    bad = np.flatnonzero((shifts < low) | (shifts > high))
    if bad.size:
        c = int(bad[0])
        raise instruction_error(
            plan.index,
            ins,
            f"requant entry req[{ins.req_row}][{c}] has shift {int(shifts[c])}, "
            f"outside {low}..{high}",
        )


def _start_store(state: _State, plan: Plan) -> _Effect:
    ins = plan.instruction
    acc = state.buffers[Buffer.ACC][ins.acc_row : ins.acc_row + ins.rows, : ins.elems]
    entries = state.buffers[Buffer.REQ][ins.req_row, : ins.elems]
    config = state.config
    biased = wrap(acc + entries[:, _BIAS], config.acc_bits)
    if ins.raw:  # acc + bias, wrapped, as an accumulator (docs/isa.md)
        data = pack_elements(biased, element_bits(config, Buffer.ACC))
    else:
        if ins.rows:
            _check_shifts(plan, entries)
        values = _requantize(biased, entries)
        if ins.lut:  # y -> lut[table row y + 128][lane]
            first = (ins.lut - 1) * LUT_ENTRIES + LUT_ENTRIES // 2
            table = state.buffers[Buffer.LUT]
            values = table[first + values, np.arange(ins.elems)]
        data = pack_elements(values, operand_width(ins.pack))
    memory = state.memory

    def complete() -> None:
        _write_rows(memory, ins.dram_addr, ins.dram_stride, data)

    return complete


def _no_effect() -> None:
    """A NOP's completion: only its tokens."""


def _start_nop(state: _State, plan: Plan) -> _Effect:  # noqa: ARG001 (every starter takes both)
    return _no_effect


_STARTERS: dict[type[Instruction], Callable[[_State, Plan], _Effect]] = {
    Load: _start_load,
    Gemm: _start_gemm,
    Vector: _start_vector,
    Store: _start_store,
    Nop: _start_nop,
}


def _row_bytes(config: AccelConfig) -> dict[Buffer, int]:
    """Bytes of a full row of each buffer (looked up per instruction, so computed once)."""
    return {buffer: row_bytes(config, buffer) for buffer in Buffer}


def _count_static(plan: Plan, config: AccelConfig, rows: dict, activity: Activity) -> None:
    """The Activity counters that follow from the instruction alone (`rows`: _row_bytes)."""
    unit = UNITS[plan.unit]
    activity.busy[unit] += plan.busy
    activity.instructions[unit] += 1
    _count_events(plan, config, rows, activity)


def _count_events(plan: Plan, config: AccelConfig, rows: dict, activity: Activity) -> None:
    """The counters of `verdigris.arch.cycle_model.EVENT_COUNTERS`, in total."""
    dim = config.dim
    ins = plan.instruction
    inp_row_bytes, acc_row_bytes = rows[Buffer.INP], rows[Buffer.ACC]
    if isinstance(ins, Load):
        buffer = Buffer(ins.buffer)
        counter = LOAD_WRITE_COUNTERS[buffer]
        setattr(activity, counter, getattr(activity, counter) + ins.rows * rows[buffer])
        activity.main_read_bytes += plan.words * config.dma_bytes
    elif isinstance(ins, Gemm):
        activity.macs += ins.rows * dim * dim
        if ins.pack:
            counter = PACKED_MAC_COUNTERS[ins.pack]
            setattr(activity, counter, getattr(activity, counter) + ins.rows * dim * dim)
        activity.inp_read_bytes += ins.rows * inp_row_bytes
        activity.wgt_read_bytes += dim * rows[Buffer.WGT] if ins.load_weights else 0
        activity.acc_read_bytes += ins.rows * acc_row_bytes if ins.accumulate else 0
        activity.acc_write_bytes += ins.rows * acc_row_bytes
    elif isinstance(ins, Vector):
        activity.inp_read_bytes += ins.rows * inp_row_bytes
        reads_acc = ins.op in (VectorOp.ADD, VectorOp.MAX)
        activity.acc_read_bytes += ins.rows * acc_row_bytes if reads_acc else 0
        activity.acc_write_bytes += ins.rows * acc_row_bytes if ins.op != VectorOp.SCALE else 0
    elif isinstance(ins, Store):
        activity.acc_read_bytes += ins.rows * acc_row_bytes
        activity.req_read_bytes += ins.rows * rows[Buffer.REQ]
        activity.lut_read_bytes += ins.rows * rows[Buffer.LUT] if ins.lut else 0
        activity.main_write_bytes += plan.words * config.dma_bytes


# ----------------------------------------------------------------------------- timing


# How many instructions a progress report waits for.
_PROGRESS_EVERY = 8192


class _Machine:
    """The cycle model: fetch, three in-order units, token counters, in-flight completions.

    `run` visits only event cycles; between two of them nothing can start, complete or be
    fetched, so stalls accrue for the whole gap."""

    def __init__(
        self,
        plans: list[Plan],
        state: _State,
        timeline: np.ndarray | None = None,
        stalls: list[tuple[int, int, int]] | None = None,
        fetches: list[int] | None = None,
    ):
        self.plans = plans
        self.timeline = timeline  # (start, completion) per instruction, when asked for
        self.stalls = stalls  # (unit, first, end) of each stretch of stall, when asked for
        self.fetches = fetches  # the fetch cycle of each fetch (FINISH's last), when asked for
        self.state = state
        self.depth = state.config.queue_depth
        self.queues: list[deque[tuple[Plan, int]]] = [deque() for _ in Unit]  # (plan, fetched)
        self.free_at = [0] * len(Unit)
        self.counters = [0] * len(TOKEN_NAMES)
        # (completion cycle, program index, plan, effect): the index breaks ties in
        # program order and keeps the tuples from comparing the rest.
        self.pending: list[tuple[int, int, Plan, _Effect]] = []
        self.hazards = ComputeHazards(state.config.dim)  # the VECTOR hazard, early loads
        self.pc = 0
        self.finish_cycle: int | None = None
        self.last_completion = 0
        self.progress: Callable[[int], None] | None = None  # hears `pc` now and then
        self.next_report = _PROGRESS_EVERY

    def run(self) -> int:
        """Simulate to the end; the cycle count."""
        t = 0
        stall = self.state.activity.stall
        while True:
            self._complete(t)
            self._fetch(t)
            if self.progress is not None and self.pc >= self.next_report:
                self.progress(self.pc)
                self.next_report = self.pc + _PROGRESS_EVERY
            blocked = [unit for unit in Unit if self._try_start(unit, t)]
            following = self._next_event(t)
            if following is None:
                if self.finish_cycle is not None and not any(self.queues) and not self.pending:
                    return max(self.finish_cycle + 1, self.last_completion)
                raise self._deadlock(t)
            for unit in blocked:
                stall[UNITS[unit]] += following - t
                if self.stalls is not None:
                    self.stalls.append((unit, t, following))
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
            self._fetched(t)
            return
        plan = self.plans[self.pc]
        queue = self.queues[plan.unit]
        if len(queue) < self.depth:
            queue.append((plan, t))
            self.pc += 1
            self._fetched(t)

    def _fetched(self, t: int) -> None:
        self.state.activity.instruction_fetches += 1
        if self.fetches is not None:
            self.fetches.append(t)

    def _try_start(self, unit: Unit, t: int) -> bool:
        """Start the head of `unit`'s queue if it can; True when it stalls instead."""
        queue = self.queues[unit]
        if not queue:
            return False
        plan, fetched = queue[0]
        free_at = self.free_at[unit]
        if self.hazards.free_for(plan, free_at) > t:
            return False
        if fetched >= t:  # fetched this cycle: it can start from the next one
            return False
        counters = self.counters
        if any(counters[c] == 0 for c in plan.pops) or self.hazards.waits(plan, t):
            return free_at <= t  # a stall only once the unit is free
        queue.popleft()
        for counter in plan.pops:
            counters[counter] -= 1
        effect = _STARTERS[type(plan.instruction)](self.state, plan)
        # An early weight load's cycles beside the previous stream count once as busy.
        self.state.activity.busy[UNITS[unit]] -= max(0, free_at - t)
        self.free_at[unit] = t + plan.busy
        self.hazards.started(plan, t)
        done = t + plan.busy + plan.latency
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
            plan, fetched = queue[0]
            free_for = self.hazards.free_for(plan, self.free_at[unit])
            if free_for > t:
                candidates.append(free_for)
            elif fetched >= t:
                candidates.append(t + 1)
            else:
                if self.free_at[unit] > t:
                    # An early weight load: it may start from the next cycle (this cycle
                    # may have started the instruction before it), and waits as a stall
                    # only once the unit is free; a few cycles at most.
                    candidates.append(t + 1)
                # Otherwise it waits for tokens or the VECTOR hazard: a completion frees it.
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
    final main memory (a new array) and the Activity (no layers: a bare instruction list
    has none). IsaError when the machine would stop with an error status. `timeline`, an
    int64 array of shape (len(instructions), 2), receives each instruction's start and
    completion cycle (FINISH and unexecuted rows are left)."""
    return _execute(config, instructions, memory, timeline=timeline)


def _execute(
    config: AccelConfig,
    instructions: Sequence[Instruction],
    memory: np.ndarray,
    *,
    timeline: np.ndarray | None = None,
    layers: Sequence[LayerInfo] = (),
    in_place: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, Activity]:
    """`run_instructions`, and with `layers` the Activity's per-layer breakdown. With
    `in_place`, `memory` itself is changed and returned (a copy of a large main memory
    costs more than a small program's run)."""
    memory = check_memory_image(config, memory)
    began = time.perf_counter()
    plans = plan_program(config, instructions)
    state = _State.reset(config, memory if in_place else memory.copy())
    stalls = fetches = None
    if layers:
        state.zero_flags = {}
        stalls, fetches = [], []
        if timeline is None:
            timeline = np.zeros((len(plans), 2), np.int64)
    rows = _row_bytes(config)
    for plan in plans:
        _count_static(plan, config, rows, state.activity)
    machine = _Machine(plans, state, timeline, stalls, fetches)
    machine.progress = progress
    state.activity.cycles = machine.run()
    if layers:
        state.activity.layers = _layer_activities(plans, state, timeline, stalls, fetches, layers)
        state.activity.check_layers()
    logger.debug(
        "isasim: %d instructions, %d cycles in %.3f s",
        len(plans),
        state.activity.cycles,
        time.perf_counter() - began,
    )
    return state.memory, state.activity


# ------------------------------------------------------------------------ per layer


def _time_in_windows(intervals: np.ndarray, cuts: list[int], count: int, total: int) -> np.ndarray:
    """Cycles of the half-open intervals (first, end) rows in each of `count` windows."""
    first, end = intervals[:, 0], intervals[:, 1]
    # before(x): the intervals' cycles before x, at each window's bounds.
    bounds = [0, *cuts, max(total, int(end.max(initial=0)))]
    before = [int(np.clip(x - first, 0, end - first).sum()) for x in bounds]
    return np.diff(before)[:count]


def _layer_activities(
    plans: list[Plan],
    state: _State,
    timeline: np.ndarray,
    stalls: list[tuple[int, int, int]],
    fetches: list[int],
    layers: Sequence[LayerInfo],
) -> tuple[LayerActivity, ...]:
    """The Activity of each layer's window (docs/isa.md, "Activity per layer")."""
    config, total = state.config, state.activity.cycles
    count = len(layers)
    times = timeline[: len(plans)]
    starts, completions = times[:, 0], times[:, 1]
    cuts = layer_ends([layer.last for layer in layers], completions)[:-1]
    parts = [Activity() for _ in layers]
    bounds = [0, *cuts, total]
    for part, low, high in zip(parts, bounds[:-1], bounds[1:], strict=True):
        part.cycles = high - low
    units = np.array([plan.unit for plan in plans], np.int64)
    busy = np.array([plan.busy for plan in plans], np.int64)
    start_window = window_index(starts, cuts)
    end_window = window_index(completions, cuts)
    stall_rows = np.array(stalls, np.int64).reshape(-1, 3)
    for unit in Unit:
        name = UNITS[unit]
        mine = units == unit
        ends = starts[mine] + busy[mine]
        # An early weight load's cycles beside the previous stream are busy once.
        firsts = np.maximum(starts[mine], np.concatenate([[0], ends[:-1]]))
        spans = np.stack([firsts, ends], axis=1)
        stalled = stall_rows[stall_rows[:, 0] == unit][:, 1:]
        started = np.bincount(start_window[mine], minlength=count)
        for i, (b, st) in enumerate(
            zip(
                _time_in_windows(spans, cuts, count, total),
                _time_in_windows(stalled, cuts, count, total),
                strict=True,
            )
        ):
            parts[i].busy[name] = int(b)
            parts[i].stall[name] = int(st)
            parts[i].instructions[name] = int(started[i])
    fetched = np.bincount(window_index(np.array(fetches, np.int64), cuts), minlength=count)
    for part, number in zip(parts, fetched, strict=True):
        part.instruction_fetches = int(number)
    dim, dataflow, rows = config.dim, config.dataflow, _row_bytes(config)
    for plan, start, first, last in zip(plans, starts, start_window, end_window, strict=True):
        flags = state.zero_flags.get(plan.index)
        if first == last:  # every increment in one window
            _count_events(plan, config, rows, parts[first])
            if flags is not None:
                parts[first].zero_macs += _zero_macs(flags)
            continue
        for events in instruction_events(plan.instruction, config):
            windows = window_index(int(start) + events.offsets, cuts)
            for window, hits in _histogram(windows):
                part = parts[window]
                value = getattr(part, events.counter) + events.amount * hits
                setattr(part, events.counter, value)
        if flags is not None:  # per PE: the cycle each zero-operand MAC is counted
            zero_activation, zero_weight = flags
            entries = int(start) + gemm_row_entries(plan.instruction, dim)
            cycles = entries[:, None, None] + zero_mac_offsets(dim, dataflow)[None]
            zero = zero_activation[:, :, None] | zero_weight[None]
            for window, hits in _histogram(window_index(cycles[zero], cuts)):
                parts[window].zero_macs += hits
    return tuple(
        LayerActivity(layer.name, layer.kind, part)
        for layer, part in zip(layers, parts, strict=True)
    )


def _histogram(windows: np.ndarray) -> list[tuple[int, int]]:
    """(window, how many) for each window in `windows`."""
    found, counts = np.unique(windows, return_counts=True)
    return list(zip(found.tolist(), counts.tolist(), strict=True))


def _zero_macs(flags: tuple[np.ndarray, np.ndarray]) -> int:
    """A GEMM's zero-operand MAC slots (row, r, c) from its zero flags: of the activations
    inp[row][r] ((rows, dim)) and of the weights W[r][c] ((dim, dim))."""
    zero_activation, zero_weight = flags
    dim = zero_weight.shape[1]
    with_zero_weight_only = (~zero_activation).astype(np.int64) @ zero_weight.sum(axis=1)
    return int(zero_activation.sum()) * dim + int(with_zero_weight_only.sum())


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
    program: Program,
    inputs: Mapping[str, np.ndarray],
    *,
    timeline: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], Activity]:
    """Run a compiled Program on device inputs (logical integer tensors by binding name);
    the output tensors by binding name and the Activity with one LayerActivity per
    `program.layers` entry (and the `timeline`, see `run_instructions`; with host calls,
    each device segment's cycles count from the segment's start). Host calls run between
    the device segments (`verdigris.sim.host.run_stages`). `progress(done, total)` hears,
    now and then, how many of the instructions have been fetched."""
    memory = program.memory_image()
    _place_inputs(program, inputs, memory)

    def segment(stage: DeviceStage, memory: np.ndarray) -> tuple[np.ndarray, Activity]:
        part = stage.program
        end = stage.first + len(part.instructions)
        rows = None if timeline is None else timeline[stage.first : end]
        total = len(program.instructions)
        return _execute(
            part.config,
            part.instructions,
            memory,
            timeline=rows,
            layers=part.layers,
            in_place=True,  # the memory is this run's own
            progress=None if progress is None else lambda pc: progress(stage.first + pc, total),
        )

    memory, activity = run_stages(program, memory, segment)
    outputs = {
        binding.name: unpack_tensor(
            binding, memory[binding.dram_addr : binding.dram_addr + binding.nbytes]
        )
        for binding in program.outputs
    }
    return outputs, activity
