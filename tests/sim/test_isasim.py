"""The instruction simulator against docs/isa.md: semantics, exact cycles, errors, Activity.

Buffers are only observable through main memory, so every test ends in a STORE: raw for the
accumulator, through a GEMM with an identity operand for the inp and wgt buffers.
"""

import itertools
import random
import struct
from collections import Counter, defaultdict, deque
from dataclasses import replace

import numpy as np
import pytest

from tests.support.programs import (
    CONFIG,
    DIM,
    NO,
    OUT,
    deps,
    fill,
    gemm,
    load,
    memory_with,
    random_instruction,
    serial,
)
from verdigris.arch.isa import (
    Buffer,
    Finish,
    Gemm,
    Instruction,
    Load,
    Nop,
    Store,
    Unit,
    Vector,
    VectorOp,
)
from verdigris.arch.program import Binding, Program, Segment
from verdigris.arch.timing import gemm_latency
from verdigris.compiler import ir
from verdigris.sim.golden import requantize, wrap_int32
from verdigris.sim.isasim import IsaError, run_instructions, run_program

EYE = np.eye(DIM, dtype=np.int8)


def run(instructions: list[Instruction], memory: np.ndarray | None = None):
    memory = memory_with() if memory is None else memory
    return run_instructions(CONFIG, [*instructions, Finish(NO)], memory)


def run_serial(instructions: list[Instruction], memory: np.ndarray | None = None):
    return run(serial(instructions), memory)


def read_int32(memory: np.ndarray, addr: int, rows: int, cols: int = DIM) -> np.ndarray:
    return memory[addr : addr + 4 * rows * cols].view("<i4").reshape(rows, cols).astype(np.int64)


def store_raw(acc_row: int, rows: int, addr: int = OUT, elems: int = DIM, **kw) -> Store:
    return Store(kw.pop("deps", NO), True, acc_row, rows, elems, addr, 4 * elems, **kw)


def req_entries(bias, multiplier, shift, zero_point, qmin, qmax) -> np.ndarray:
    """Requant entries as their 12-byte records in main memory (docs/isa.md)."""
    records = b"".join(
        struct.pack("<iiBbbb", int(b), int(m), int(s), zero_point, qmin, qmax)
        for b, m, s in zip(bias, multiplier, shift, strict=True)
    )
    return np.frombuffer(records, np.uint8)


# --------------------------------------------------------------------------- LOAD


def test_load_acc_strided_partial_rows_are_zero_padded():
    values = np.arange(-20, 20, dtype="<i4")
    memory, _ = run_serial(
        [load(Buffer.ACC, 5, 3, 3, 100, 20), store_raw(5, 3)], memory_with((100, values))
    )
    expected = np.zeros((3, DIM), np.int64)
    for i in range(3):  # row i starts 20 bytes = 5 int32 further on
        expected[i, :3] = values[5 * i : 5 * i + 3]
    np.testing.assert_array_equal(read_int32(memory, OUT, 3), expected)


def test_load_fill_sign_extends_into_acc_and_stride_zero_repeats_a_row():
    row = np.array([7, -8, 9, -10], "<i4")
    memory, activity = run_serial(
        [
            fill(Buffer.ACC, 0, 2, -5),
            load(Buffer.ACC, 2, 3, DIM, 64, 0),
            store_raw(0, 5),
        ],
        memory_with((64, row)),
    )
    np.testing.assert_array_equal(read_int32(memory, OUT, 5), [[-5] * DIM] * 2 + [row] * 3)
    # The fill reads no main memory; the strided load reads 1 aligned 16-byte row 3 times.
    assert activity.main_read_bytes == 3 * 16


def test_load_inp_unaligned_partial_through_an_identity_gemm():
    activations = np.arange(1, 16, dtype=np.int8) * np.int8(-8)
    memory, _ = run_serial(
        [
            load(Buffer.WGT, 4, DIM, DIM, 0, DIM),
            load(Buffer.INP, 10, 3, 3, 201, 5),
            gemm(4, 10, 0, 3),
            store_raw(0, 3),
        ],
        memory_with((0, EYE), (201, activations)),
    )
    expected = np.zeros((3, DIM), np.int64)
    for i in range(3):
        expected[i, :3] = activations[5 * i : 5 * i + 3]
    np.testing.assert_array_equal(read_int32(memory, OUT, 3), expected)


def test_load_wgt_and_fill_wgt_through_an_identity_gemm():
    weights = np.arange(-8, 8, dtype=np.int8).reshape(DIM, DIM)
    memory, _ = run_serial(
        [
            load(Buffer.INP, 0, DIM, DIM, 0, DIM),
            load(Buffer.WGT, 8, DIM, DIM, 64, DIM),
            fill(Buffer.WGT, 10, 2, -3),  # overwrite rows 2 and 3 of the tile
            gemm(8, 0, 0, DIM),
            store_raw(0, DIM),
        ],
        memory_with((0, EYE), (64, weights)),
    )
    expected = weights.astype(np.int64)
    expected[2:] = -3
    np.testing.assert_array_equal(read_int32(memory, OUT, DIM), expected)


# --------------------------------------------------------------------------- GEMM


def test_gemm_load_weights_and_accumulate_match_numpy():
    rng = np.random.default_rng(1)
    a1, a2 = rng.integers(-128, 128, (2, 6, DIM), dtype=np.int8)
    weights = rng.integers(-128, 128, (DIM, DIM), dtype=np.int8)
    other = rng.integers(-128, 128, (DIM, DIM), dtype=np.int8)
    memory, _ = run_serial(
        [
            load(Buffer.INP, 0, 6, DIM, 0, DIM),
            load(Buffer.INP, 6, 6, DIM, 24, DIM),
            load(Buffer.WGT, 0, DIM, DIM, 48, DIM),
            load(Buffer.WGT, DIM, DIM, DIM, 64, DIM),
            gemm(0, 0, 10, 6),
            gemm(DIM, 6, 10, 6, load_weights=False, acc=True),  # keeps the array's tile
            gemm(DIM, 6, 20, 6, acc=False),  # loads the other tile, overwrites
            store_raw(10, 6),
            store_raw(20, 6, addr=OUT + 96),
        ],
        memory_with((0, a1), (24, a2), (48, weights), (64, other)),
    )
    a1, a2, w, o = (x.astype(np.int64) for x in (a1, a2, weights, other))
    np.testing.assert_array_equal(read_int32(memory, OUT, 6), a1 @ w + a2 @ w)
    np.testing.assert_array_equal(read_int32(memory, OUT + 96, 6), a2 @ o)


def test_gemm_accumulate_wraps_to_int32():
    start = np.array([2**31 - 3, -(2**31) + 1, 0, 5], "<i4")
    memory, _ = run_serial(
        [
            load(Buffer.ACC, 0, 1, DIM, 0, 16),
            fill(Buffer.INP, 0, 1, 100),
            fill(Buffer.WGT, 0, DIM, -100),  # p = 4 * 100 * -100 per lane
            load(Buffer.WGT, 0, 1, DIM, 16, DIM),  # row 0 of the tile: +100
            gemm(0, 0, 0, 1, acc=True),
            store_raw(0, 1),
        ],
        memory_with((0, start), (16, np.full(DIM, 100, np.int8))),
    )
    product = 100 * 100 - 3 * 100 * 100  # -20000
    expected = wrap_int32(start.astype(np.int64) + product)
    np.testing.assert_array_equal(read_int32(memory, OUT, 1)[0], expected)


def test_gemm_of_zero_rows_only_loads_weights():
    weights = np.arange(16, dtype=np.int8).reshape(DIM, DIM)
    memory, _ = run_serial(
        [
            load(Buffer.WGT, 0, DIM, DIM, 0, DIM),
            load(Buffer.INP, 0, DIM, DIM, 16, DIM),
            gemm(0, 0, 0, 0),
            fill(Buffer.WGT, 0, DIM, 0),  # the array keeps its tile
            gemm(0, 0, 0, DIM, load_weights=False),
            store_raw(0, DIM),
        ],
        memory_with((0, weights), (16, EYE)),
    )
    np.testing.assert_array_equal(read_int32(memory, OUT, DIM), weights)


# --------------------------------------------------------------------------- VECTOR


def test_vector_write_add_max_match_numpy():
    rng = np.random.default_rng(2)
    inputs = rng.integers(-128, 128, (3, DIM), dtype=np.int8)
    start = np.array([[2**31 - 10, -5, 0, 7]] * 3, "<i4")
    memory, _ = run_serial(
        [
            load(Buffer.INP, 0, 3, DIM, 0, DIM),
            load(Buffer.ACC, 0, 3, DIM, 16, 16),
            load(Buffer.ACC, 3, 3, DIM, 16, 16),
            Vector(NO, VectorOp.WRITE, 0, 6, 3, zero=-256, multiplier=2**21 + 3),
            Vector(NO, VectorOp.ADD, 0, 0, 3, zero=5, multiplier=7),
            Vector(NO, VectorOp.MAX, 0, 3, 3, zero=255, multiplier=1000),
            store_raw(0, 9),
        ],
        memory_with((0, inputs), (16, start)),
    )
    x = inputs.astype(np.int64)
    acc = start.astype(np.int64)
    expected = np.concatenate(
        [
            wrap_int32(acc + (x - 5) * 7),
            np.maximum(acc, (x - 255) * 1000),
            (x + 256) * (2**21 + 3),
        ]
    )
    np.testing.assert_array_equal(read_int32(memory, OUT, 9), expected)


# --------------------------------------------------------------------------- STORE


def test_store_requant_matches_the_golden_requantizer():
    rng = np.random.default_rng(3)
    rows = 40
    acc = rng.integers(-(2**31), 2**31, (rows, DIM), dtype=np.int64)
    acc[:10] = rng.integers(-64, 64, (10, DIM))  # small values with small shifts: ties
    bias = rng.integers(-(2**31), 2**31, DIM)
    multiplier = np.array([1, 2**30, rng.integers(0, 2**31), 2**31 - 1])
    shift = np.array([1, 31, 45, 62])
    entries = req_entries(bias, multiplier, shift, -3, -100, 90)
    memory, _ = run_serial(
        [
            load(Buffer.ACC, 0, rows, DIM, 0, 16),
            load(Buffer.REQ, 2, 1, DIM, 1024, 0),
            Store(NO, False, 0, rows, DIM, OUT, DIM, req_row=2),
        ],
        memory_with((0, acc.astype("<i4")), (1024, entries)),
    )
    requant = ir.Requant(multiplier, shift, -3, -100, 90)
    expected = requantize(wrap_int32(acc + bias), requant, 1)
    got = memory[OUT : OUT + rows * DIM].view(np.int8).reshape(rows, DIM)
    np.testing.assert_array_equal(got, expected)


def test_store_requant_rounds_half_to_even_and_clamps_per_entry():
    acc = np.array([1, 3, -1, -3], "<i4")  # / 2: 0.5, 1.5, -0.5, -1.5
    entries = np.concatenate(
        [req_entries([0, 0], [1, 1], [1, 1], 0, -128, 127), req_entries([0], [1], [1], 10, 0, 11)]
    )
    memory, _ = run_serial(
        [
            load(Buffer.ACC, 0, 1, DIM, 0, 16),
            load(Buffer.REQ, 0, 1, 3, 64, 0),
            Store(NO, False, 0, 1, 3, OUT, 3),
        ],
        memory_with((0, acc), (64, entries)),
    )
    # Third entry: round(-0.5) = 0, + 10, clamped to [0, 11]. Byte 3 is not written.
    assert memory[OUT : OUT + 4].view(np.int8).tolist() == [0, 2, 10, 0]


def test_store_rows_that_overlap_in_memory_write_in_order():
    memory, _ = run_serial(
        [
            fill(Buffer.ACC, 0, 1, 1),
            fill(Buffer.ACC, 1, 1, 2),
            store_raw(0, 2, elems=2),
            Store(NO, True, 0, 2, 2, OUT + 64, 0),
        ],
        memory_with(),
    )
    assert read_int32(memory, OUT, 1, 4)[0].tolist() == [1, 1, 2, 2]
    assert read_int32(memory, OUT + 64, 1, 2)[0].tolist() == [2, 2]  # stride 0: last row wins


# --------------------------------------------------------------------------- cycles


def test_cycles_of_aligned_and_unaligned_loads():
    _, aligned = run([load(Buffer.INP, 0, 2, DIM, 0, DIM)])
    # Fetch LOAD in cycle 0, FINISH in 1. LOAD starts in 1: 2 rows x 1 word + 2 = busy 4,
    # latency 0: completes in 5, which is the cycle count.
    assert aligned.cycles == 5
    assert aligned.busy == {"load": 4, "compute": 0, "store": 0}
    assert aligned.main_read_bytes == 2 * 4
    _, unaligned = run([load(Buffer.INP, 0, 2, DIM, 2, 5)])
    # Row 0 at 2: ceil((2 + 4) / 4) = 2 words; row 1 at 7: ceil((3 + 4) / 4) = 2 words.
    # busy 2 + 2 + 2 = 6, starts in 1, completes in 7.
    assert unaligned.cycles == 7
    assert unaligned.main_read_bytes == 4 * 4


def test_cycles_of_an_unaligned_store():
    _, activity = run([Store(NO, True, 0, 2, 3, 2, 13)])
    # 12 bytes per row. Row 0 at 2: ceil((2 + 12) / 4) = 4; row 1 at 15: ceil((3 + 12) / 4)
    # = 4. busy 8 + 6 = 14 (STORE_OVERHEAD), starts in 1, completes in 15.
    assert activity.cycles == 15
    assert activity.main_write_bytes == 8 * 4
    assert activity.acc_read_bytes == 2 * 4 * DIM


def test_a_program_of_only_finish_takes_one_cycle():
    assert run([])[1].cycles == 1


def test_cycles_of_a_token_round_trip_between_load_and_compute():
    _, activity = run(
        [
            load(Buffer.INP, 0, 2, DIM, 0, DIM, deps=deps("push_next")),  # A
            Gemm(deps("pop_prev", "push_prev"), False, False, 0, 0, 0, 2),  # B
            load(Buffer.INP, 0, 2, DIM, 0, DIM, deps=deps("pop_next")),  # C
        ]
    )
    # Fetch: A 0, B 1, C 2, FINISH 3.
    # A starts 1, busy 2*1+2 = 4: completes 5 and pushes l2c in 5.
    # B may start from 2; waits 2, 3, 4 (3 stall cycles); pops l2c in 5 (the push is seen
    # in its own cycle); busy 0 + 2 = 2, latency 2*4 + 1 = 9: completes in 16, pushes c2l.
    # C heads the load queue once A starts; the unit is busy until 5; waits 5..15 (11);
    # pops c2l in 16, busy 4, completes in 20 = the cycle count.
    assert activity.cycles == 20
    assert activity.stall == {"load": 11, "compute": 3, "store": 0}
    assert activity.busy == {"load": 8, "compute": 2, "store": 0}
    assert activity.instructions == {"load": 2, "compute": 1, "store": 0}


def test_cycles_when_fetch_stalls_on_a_full_queue():
    _, activity = run(
        [load(Buffer.INP, 0, DIM, DIM, 0, DIM)] + [Nop(NO, Unit.LOAD)] * 5 + [gemm(0, 0, 0, DIM)]
    )
    # Cycle 0: fetch LOAD. 1: NOP1 (queue 1 -> 2), LOAD starts (busy 4 + 2 = 6, free at 7).
    # 2, 3, 4: NOP2..4, the queue is at 4 = queue_depth. 5, 6: fetch stalls on NOP5.
    # 7: NOP1 starts, its slot is free for fetch from 8; fetch still stalls in 7.
    # 8: fetch NOP5. 9: fetch GEMM. 10: fetch FINISH; the GEMM starts in 10,
    # busy 4 + 4 = 8, latency 9: completes in 27. (NOPs end in 12.)
    assert activity.cycles == 27
    assert activity.stall == {"load": 0, "compute": 0, "store": 0}


def test_cycles_of_the_vector_hazard_and_of_back_to_back_gemms():
    _, hazard = run([gemm(0, 0, 0, 2, load_weights=False), Vector(NO, VectorOp.ADD, 0, 0, 2)])
    # GEMM: starts 1, busy 2, free at 3, completes 3 + 9 = 12. VECTOR (fetched in 1) waits
    # in 3..11 for the pipeline to drain (9 stall cycles), starts in 12, busy 2, latency 2:
    # completes in 16.
    assert hazard.cycles == 16
    assert hazard.stall["compute"] == 9
    _, gemms = run([gemm(0, 0, 0, 2, load_weights=False), gemm(0, 0, 4, 2, load_weights=False)])
    # The second GEMM starts as soon as the unit is free (3) and completes in 3 + 2 + 9 = 14.
    assert gemms.cycles == 14
    assert gemms.stall["compute"] == 0


def test_operands_are_read_at_start_so_a_nop_can_release_inp_early():
    memory, activity = run(
        [
            fill(Buffer.INP, 0, 1, 1),
            Load(deps("push_next"), Buffer.WGT, True, 0, DIM, 0, fill_value=1),
            Gemm(deps("pop_prev", "push_next"), True, False, 0, 0, 0, 1),
            Nop(deps("push_prev"), Unit.COMPUTE),  # inp row 0 is free once the GEMM ran
            Load(deps("pop_next"), Buffer.INP, True, 0, 1, 0, fill_value=2),
            store_raw(0, 1, deps=deps("pop_prev")),
        ]
    )
    # Fills: inp 1..2, wgt 2..6 (pushes l2c in 6). GEMM starts 6, busy 4 + 1 = 5, completes
    # 6 + 5 + 9 = 20. NOP 11..12 pushes c2l; the second inp fill runs 12..13, before the GEMM
    # completes, but the GEMM read its row in 6. STORE 20..30 (4 words + 6).
    assert activity.cycles == 30
    assert read_int32(memory, OUT, 1)[0].tolist() == [DIM] * DIM  # 1 * 1 summed over 4 rows


def test_a_vector_sees_the_results_of_the_gemms_before_it():
    memory, _ = run_serial(
        [
            fill(Buffer.INP, 0, 2, 3),
            fill(Buffer.WGT, 0, DIM, 2),
            gemm(0, 0, 0, 2),
            gemm(0, 0, 0, 2, load_weights=False, acc=True),
            Vector(NO, VectorOp.ADD, 0, 0, 2, zero=1, multiplier=5),
            store_raw(0, 2),
        ]
    )
    assert read_int32(memory, OUT, 2).tolist() == [[2 * DIM * 6 + 10] * DIM] * 2


# A second, cycle-by-cycle model of the timing rules, written straight from docs/isa.md with
# no event skipping, to check the simulator's jumps on random programs. It is an independent
# oracle: it restates on purpose the token topology (arch/isa.py's TOKEN_COUNTERS, tied to
# docs/isa.md by tests/arch/test_isa.py) and the element sizes instead of importing them.
_POPS = {
    Unit.LOAD: {"pop_next": "c2l"},
    Unit.COMPUTE: {"pop_prev": "l2c", "pop_next": "s2c"},
    Unit.STORE: {"pop_prev": "c2s"},
}
_PUSHES = {
    Unit.LOAD: {"push_next": "l2c"},
    Unit.COMPUTE: {"push_prev": "c2l", "push_next": "c2s"},
    Unit.STORE: {"push_prev": "s2c"},
}


def _words(addr: int, stride: int, rows: int, nbytes: int) -> int:
    d = CONFIG.dma_bytes
    return sum(-(-((addr + i * stride) % d + nbytes) // d) for i in range(rows))


def _busy_latency(ins: Instruction) -> tuple[int, int]:
    if isinstance(ins, Load):
        e = {Buffer.INP: 1, Buffer.WGT: 1, Buffer.ACC: 4, Buffer.REQ: 12}[ins.buffer]
        words = _words(ins.dram_addr, ins.dram_stride, ins.rows, ins.elems * e)
        busy, latency = (ins.rows if ins.fill else words + 2), 0
    elif isinstance(ins, Gemm):
        busy, latency = (DIM if ins.load_weights else 0) + ins.rows, gemm_latency(DIM)
    elif isinstance(ins, Vector):
        busy, latency = ins.rows, 2
    elif isinstance(ins, Store):
        nbytes = ins.elems * (4 if ins.raw else 1)
        busy, latency = _words(ins.dram_addr, ins.dram_stride, ins.rows, nbytes) + 6, 0
    else:
        busy, latency = 1, 0
    return max(1, busy), latency


def cycle_by_cycle(instructions: list[Instruction]) -> tuple[int, dict[str, int]]:
    queues: dict[Unit, deque] = {unit: deque() for unit in Unit}
    free = dict.fromkeys(Unit, 0)
    stall = dict.fromkeys(("load", "compute", "store"), 0)
    counters: Counter = Counter()
    completions: defaultdict[int, list[Instruction]] = defaultdict(list)
    pc, finished, drained, last = 0, None, 0, 0
    early = 0  # the early weight load: a GEMM that loads weights may start this much early
    for t in itertools.count():
        for ins in completions.pop(t, []):
            counters.update(_PUSHES[ins.unit][f] for f in _PUSHES[ins.unit] if getattr(ins.deps, f))
        if finished is not None and finished < t and not any(queues.values()) and last <= t:
            return t, stall
        lengths = {unit: len(queue) for unit, queue in queues.items()}
        if finished is None:
            ins = instructions[pc]
            if isinstance(ins, Finish):
                finished = t
            elif lengths[ins.unit] < CONFIG.queue_depth:
                queues[ins.unit].append((ins, t))
                pc += 1
        for unit, queue in queues.items():
            if not queue or queue[0][1] >= t:
                continue
            ins = queue[0][0]
            loads_weights = isinstance(ins, Gemm) and ins.load_weights
            if free[unit] - (early if loads_weights and ins.rows else 0) > t:
                continue
            pops = [_POPS[unit][f] for f in _POPS[unit] if getattr(ins.deps, f)]
            if any(counters[p] == 0 for p in pops) or (isinstance(ins, Vector) and drained > t):
                stall[unit.name.lower()] += free[unit] <= t
                continue
            queue.popleft()
            counters.subtract(pops)
            busy, latency = _busy_latency(ins)
            free[unit] = t + busy
            completions[t + busy + latency].append(ins)
            last = max(last, t + busy + latency)
            if isinstance(ins, Gemm | Vector):
                drained = t + busy + latency
            if unit == Unit.COMPUTE:
                early = min(CONFIG.dim, ins.rows) if isinstance(ins, Gemm) else 0
    raise AssertionError("unreachable")


def test_the_event_driven_timing_matches_a_cycle_by_cycle_model():
    rng = random.Random(5)
    for _ in range(300):
        program = [random_instruction(rng) for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.7:  # a token at every change of unit, else none at all
            program = serial(program)
        _, activity = run(program)
        assert (activity.cycles, activity.stall) == cycle_by_cycle([*program, Finish(NO)])


# --------------------------------------------------------------------------- Activity


def test_activity_of_a_small_gemm():
    weights = np.array([[1, 0, 2, 0], [0, 0, 0, 0], [3, -1, 0, 2], [1, 1, 1, 1]], np.int8)
    activations = np.array([[0, 1, 2, 3], [4, 0, 0, 5], [0, 0, 0, 0]], np.int8)
    memory, activity = run(
        [
            load(Buffer.WGT, 0, DIM, DIM, 0, DIM),
            load(Buffer.INP, 0, 3, DIM, 16, DIM, deps=deps("push_next")),
            Gemm(deps("pop_prev", "push_next"), True, False, 0, 0, 0, 3),
            store_raw(0, 3, addr=256, deps=deps("pop_prev")),
        ],
        memory_with((0, weights), (16, activations)),
    )
    np.testing.assert_array_equal(
        read_int32(memory, 256, 3), activations.astype(np.int64) @ weights
    )
    zero = sum(
        activations[i, r] == 0 or weights[r, c] == 0
        for i in range(3)
        for r in range(DIM)
        for c in range(DIM)
    )
    # Fetch 0..4. LOAD wgt 1..7 (busy 4 + 2), LOAD inp 7..12 (busy 3 + 2), pushes l2c in 12.
    # GEMM can start from 3, waits 3..11 (9), runs 12..19 (busy 4 + 3), completes 28.
    # STORE can start from 4, waits 4..27 (24), busy 3 rows x 4 words + 6 = 18: ends 46.
    assert activity.to_dict() == {
        "cycles": 46,
        "busy": {"load": 11, "compute": 7, "store": 18},
        "stall": {"load": 0, "compute": 9, "store": 24},
        "instructions": {"load": 2, "compute": 1, "store": 1},
        "instruction_fetches": 5,  # the four and FINISH
        "macs": 3 * DIM * DIM,
        "macs_int4": 0,
        "macs_int2": 0,
        "macs_int1": 0,
        "zero_macs": zero,
        "main_read_bytes": (4 + 3) * 4,
        "main_write_bytes": 12 * 4,
        "inp_read_bytes": 3 * DIM,
        "wgt_read_bytes": DIM * DIM,
        "acc_read_bytes": 3 * 4 * DIM,  # the STORE; the GEMM does not accumulate
        "acc_write_bytes": 3 * 4 * DIM,
        "inp_write_bytes": 3 * DIM,
        "wgt_write_bytes": 4 * DIM,
        "acc_load_bytes": 0,
        "req_write_bytes": 0,
        "req_read_bytes": 3 * 12 * DIM,  # the STORE's req row, once per row
        "lut_write_bytes": 0,
        "lut_read_bytes": 0,
    }


def test_activity_counts_accumulate_and_vector_acc_reads():
    _, activity = run(
        [
            fill(Buffer.ACC, 0, 2, 0),
            gemm(0, 0, 0, 2, load_weights=False, acc=True),
            Vector(NO, VectorOp.WRITE, 0, 0, 3),
            Vector(NO, VectorOp.MAX, 0, 0, 5),
        ]
    )
    assert activity.acc_read_bytes == (2 + 5) * 4 * DIM
    assert activity.acc_write_bytes == (2 + 3 + 5) * 4 * DIM
    assert activity.acc_load_bytes == 2 * 4 * DIM
    assert activity.inp_write_bytes == activity.wgt_write_bytes == activity.req_write_bytes == 0
    assert activity.req_read_bytes == 0
    assert activity.instruction_fetches == 5
    assert activity.main_read_bytes == 0
    assert activity.zero_macs == activity.macs == 2 * DIM * DIM


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("instruction", "message"),
    [
        (Load(deps("pop_prev"), Buffer.INP, False, 0, 1, 1), "pop_prev is illegal on the load"),
        (Load(deps("push_prev"), Buffer.INP, True, 0, 1, 1), "push_prev is illegal on the load"),
        (Store(deps("pop_next"), True, 0, 1, 1, 0, 0), "pop_next is illegal on the store"),
        (Store(deps("push_next"), True, 0, 1, 1, 0, 0), "push_next is illegal on the store"),
        (Nop(deps("push_next"), Unit.STORE), "push_next is illegal on the store"),
        (Nop(NO, 3), "NOP target 3 is not a unit"),
        (load(Buffer.INP, 62, 3, 1, 0, 1), r"inp rows \[62, 65\) run past the end of the inp"),
        (fill(Buffer.ACC, 64, 1, 0), r"acc rows \[64, 65\) run past the end of the acc"),
        (load(Buffer.REQ, 3, 2, 1, 0, 12), r"req rows \[3, 5\) run past the end of the req"),
        (gemm(29, 0, 0, 1), r"wgt rows \[29, 33\) run past the end of the wgt buffer \(32"),
        (gemm(0, 60, 0, 5), r"inp rows \[60, 65\)"),
        (gemm(0, 0, 63, 2), r"acc rows \[63, 65\)"),
        (Vector(NO, VectorOp.ADD, 0, 62, 3), r"acc rows \[62, 65\)"),
        (Vector(NO, VectorOp.SCALE, 0, 0, 2), r"VECTOR scale takes one row \(rows 1\)"),
        (
            Vector(NO, VectorOp.SCALE, 0, 0, 1, lane_scale=True),
            "VECTOR scale takes one row .* and no lane_scale",
        ),
        (Store(NO, False, 0, 1, 1, 0, 1, req_row=4), r"req rows \[4, 5\)"),
        (load(Buffer.INP, 0, 1, 0, 0, 0), "elems 0 is outside 1..4"),
        (load(Buffer.WGT, 0, 1, 5, 0, 0), "elems 5 is outside 1..4"),
        (Store(NO, True, 0, 1, 0, 0, 0), "elems 0 is outside 1..4"),
        (load(Buffer.ACC, 0, 1, 4, 4090, 0), r"main-memory range \[4090, 4106\) runs past"),
        (load(Buffer.INP, 0, 2, 4, 0, 4093), r"main-memory range \[0, 4097\) runs past"),
        (Store(NO, True, 0, 3, 4, 10, 2040), r"main-memory range \[10, 4106\)"),
        (Store(NO, False, 0, 1, 4, 4093, 0), r"main-memory range \[4093, 4097\)"),
        (Load(NO, Buffer.REQ, True, 0, 1, 1), "a fill of the req table is illegal"),
        (gemm(0, 0, 0, 70000), "rows = 70000 does not fit 16 bits"),
    ],
)
def test_illegal_instructions_name_the_instruction_and_problem(instruction, message):
    program = [Nop(NO, Unit.LOAD), instruction]
    with pytest.raises(IsaError, match=message) as caught:
        run(program)
    assert caught.value.index == 1
    assert str(caught.value).startswith("instruction 1 (")


def test_ranges_that_end_exactly_at_the_end_are_legal():
    run(
        [
            load(Buffer.INP, 62, 2, 4, 0, 4092),  # rows 62, 63; bytes [0, 4) and [4092, 4096)
            gemm(CONFIG.wgt_rows - DIM, 0, 0, 0),
            Store(NO, True, 63, 1, 4, 4080, 0),
        ]
    )


def test_finish_with_flags_is_illegal():
    with pytest.raises(IsaError, match=r"instruction 0 .*FINISH takes no dependency flags"):
        run_instructions(CONFIG, [Finish(deps("push_next"))], memory_with())


def test_a_requant_entry_with_a_bad_shift_stops_the_store():
    with pytest.raises(IsaError, match=r"instruction 0 .*req\[0\]\[0\] has shift 0, outside"):
        run([Store(NO, False, 0, 1, 2, OUT, 2)])
    memory = memory_with((0, req_entries([0, 0], [1, 1], [62, 63], 0, -128, 127)))
    load_entries = load(Buffer.REQ, 1, 1, 2, 0, 0)
    with pytest.raises(IsaError, match=r"instruction 2 .*req\[1\]\[1\] has shift 63") as caught:
        run_serial([load_entries, Store(NO, False, 0, 1, 2, OUT, 2, req_row=1)], memory)
    assert caught.value.index == 2  # serial() put a NOP at 1
    # Entries past elems, a raw store and a store of no rows use no entry.
    run_serial([load_entries, Store(NO, False, 0, 1, 1, OUT, 1, req_row=1)], memory)
    run([Store(NO, False, 0, 0, 1, OUT, 1)])
    run([store_raw(0, 1)])


def test_program_errors():
    with pytest.raises(IsaError, match="program without FINISH") as caught:
        run_instructions(CONFIG, [Nop(NO, Unit.LOAD)], memory_with())
    assert caught.value.index is None
    too_long = [Nop(NO, Unit.LOAD)] * 256 + [Finish(NO)]
    with pytest.raises(IsaError, match="257 instructions exceeds the instruction capacity"):
        run_instructions(CONFIG, too_long, memory_with())
    with pytest.raises(ValueError, match="uint8 array of 4096 bytes"):
        run_instructions(CONFIG, [Finish(NO)], np.zeros(100, np.uint8))


def test_instructions_after_finish_are_not_run_or_checked():
    program = [fill(Buffer.ACC, 0, 1, 9), Finish(NO), Nop(NO, 3), store_raw(0, 1)]
    memory, activity = run_instructions(CONFIG, program, memory_with())
    assert activity.instructions["load"] == 1 and activity.instructions["store"] == 0
    assert not memory.any()


def test_deadlock_names_the_waiting_instructions_and_counters():
    program = [
        fill(Buffer.INP, 0, 1, 1),
        Gemm(deps("pop_prev"), False, False, 0, 0, 0, 1),
        Store(deps("pop_prev"), True, 0, 1, 1, 0, 4),
    ]
    with pytest.raises(IsaError) as caught:
        run(program)
    message = str(caught.value)
    assert caught.value.index == 1
    assert "deadlock at cycle 3" in message
    assert "the compute unit waits at instruction 1 (gemm" in message
    assert "for l2c" in message
    assert "the store unit waits at instruction 2 (store" in message
    assert "for c2s" in message
    assert "l2c=0, c2l=0, c2s=0, s2c=0" in message


def test_deadlock_with_fetch_stalled_behind_a_full_queue():
    waiting = Gemm(deps("pop_next"), False, False, 0, 0, 0, 1)  # s2c: nothing pushes it
    program = [waiting] * 5 + [Store(deps("push_prev"), True, 0, 1, 1, 0, 4)]
    with pytest.raises(IsaError, match="fetch stalls at instruction 4: the compute queue is full"):
        run(program)


def test_tokens_pushed_before_they_are_popped_carry_over():
    program = [
        Nop(deps("push_next"), Unit.LOAD),
        Nop(deps("push_next"), Unit.LOAD),
        Nop(deps("pop_prev"), Unit.COMPUTE),
        Nop(deps("pop_prev"), Unit.COMPUTE),
    ]
    assert run(program)[1].instructions == {"load": 2, "compute": 2, "store": 0}


# --------------------------------------------------------------------------- Program


def _program() -> tuple[Program, np.ndarray]:
    """x (2, 3, DIM) int8 in, y = (x as 6 rows) @ W out, with y's logical tensor (DIM, 6)
    stored transposed, as the 6 x DIM accumulator rows come out."""
    weights = np.arange(-8, 8, dtype=np.int8).reshape(DIM, DIM)
    x = Binding("x", 512, "int8", (2, 3, DIM), (2, 3, DIM), (0, 1, 2))
    y = Binding("y", 1024, "int32", (DIM, 6), (DIM, 6), (1, 0))
    instructions = (
        *serial(
            [
                load(Buffer.WGT, 0, DIM, DIM, 0, DIM),
                load(Buffer.INP, 0, 6, DIM, 512, DIM),
                gemm(0, 0, 0, 6),
                store_raw(0, 6, addr=1024),
            ]
        ),
        Finish(NO),
    )
    program = Program(CONFIG, instructions, (Segment(0, weights.tobytes()),), (x,), (y,))
    return program, weights


def test_run_program_places_inputs_and_reads_outputs():
    program, weights = _program()
    x = np.random.default_rng(4).integers(-128, 128, (2, 3, DIM))
    outputs, activity = run_program(program, {"x": x})
    expected = x.reshape(6, DIM) @ weights.astype(np.int64)
    np.testing.assert_array_equal(outputs["y"], expected.T)
    assert activity.macs == 6 * DIM * DIM


def test_run_program_rejects_wrong_inputs():
    program, _ = _program()
    with pytest.raises(ValueError, match="do not match the program's inputs"):
        run_program(program, {"z": np.zeros((2, 3, DIM))})
    with pytest.raises(ValueError, match="outside the int8 range"):
        run_program(program, {"x": np.full((2, 3, DIM), 128)})
    with pytest.raises(ValueError, match="shape"):
        run_program(program, {"x": np.zeros((3, 2, DIM), np.int64)})


def test_cycles_of_weight_loads_back_to_back():
    # dim 4. GEMM A loads weights and streams 1 row: starts 1 (fetched at 0), streams from
    # 1 + 4 = 5, busy 5 (free at 6). GEMM B loads weights and may start 1 cycle early, at
    # A's stream start 5: its weight phase beside A's row. Busy 5, completes 5 + 5 + 9 = 19.
    _, activity = run([gemm(0, 0, 0, 1), gemm(0, 0, 0, 1)])
    assert activity.stall["compute"] == 0
    assert activity.cycles == 19
    assert activity.busy["compute"] == 9  # cycle 5 counted once


# --------------------------------------------------------------------------- packed operands

NARROW = replace(CONFIG, operand_bits=1)


def _operands(byte: int, width: int) -> list[int]:
    """The signed `width`-bit operands of one byte, lowest bits first, or binary (bit 1:
    +1, bit 0: -1) at width 1 (docs/isa.md)."""
    fields = [(byte >> shift) & ((1 << width) - 1) for shift in range(0, 8, width)]
    if width == 1:
        return [2 * f - 1 for f in fields]
    return [f - (1 << width) if f >> (width - 1) else f for f in fields]


@pytest.mark.parametrize("pack", [1, 2, 3])
def test_a_packed_gemm_multiplies_the_operands_of_each_byte(pack):
    rng = np.random.default_rng(pack)
    rows = 5
    weights = rng.integers(-128, 128, (DIM, DIM), dtype=np.int64).astype(np.int8)
    activations = rng.integers(-128, 128, (rows, DIM), dtype=np.int64).astype(np.int8)
    activations[0, :2] = 0
    memory, activity = run_instructions(
        NARROW,
        [
            load(Buffer.WGT, 0, DIM, DIM, 0, DIM),
            load(Buffer.INP, 0, rows, DIM, 16, DIM, deps=deps("push_next")),
            Gemm(deps("pop_prev", "push_next"), True, False, 0, 0, 0, rows, pack=pack),
            store_raw(0, rows, addr=256, deps=deps("pop_prev")),
            Finish(NO),
        ],
        memory_with((0, weights), (16, activations)),
    )
    width = 8 >> pack
    expected = [
        [
            sum(
                a * w
                for r in range(DIM)
                for a, w in zip(
                    _operands(int(activations[i, r]) & 0xFF, width),
                    _operands(int(weights[r, c]) & 0xFF, width),
                    strict=True,
                )
            )
            for c in range(DIM)
        ]
        for i in range(rows)
    ]
    np.testing.assert_array_equal(read_int32(memory, 256, rows), expected)
    counters = {"macs_int4": 0, "macs_int2": 0, "macs_int1": 0}
    counters[f"macs_int{width}"] = rows * DIM * DIM
    assert {name: getattr(activity, name) for name in counters} == counters
    assert activity.macs == rows * DIM * DIM
    # Zero slots are zero bytes: the two zero activation bytes of row 0, and zero weights;
    # a binary zero byte is eight -1.
    zero = sum(
        activations[i, r] == 0 or weights[r, c] == 0
        for i in range(rows)
        for r in range(DIM)
        for c in range(DIM)
    )
    assert activity.zero_macs == (0 if width == 1 else zero) and zero


# Rows (-1, 7, -8) and (-3, 1, 0) clamped to the width, low lanes in the low bits: int4
# nibbles f 7 | 8 and d 1 | 0; int2 (clamped to -2, 1, -2 and -2, 1, 0) 3 1 2 and 2 1 0;
# binary (not clamped: the signs) 0 1 0 and 0 1 1.
@pytest.mark.parametrize(
    ("pack", "expected"), [(1, [0x7F, 0x08, 0x1D, 0x00]), (2, [0x27, 0x06]), (3, [0x02, 0x06])]
)
def test_a_packed_store_writes_the_low_bits_of_each_value(pack, expected):
    width = 8 >> pack
    low, high = (-128, 127) if width == 1 else (-(1 << (width - 1)), (1 << (width - 1)) - 1)
    acc = np.array([[-1, 7, -8, 5], [-3, 1, 0, 5]], "<i4")  # lane 3 is not stored
    identity = req_entries([0] * DIM, [1 << 30] * DIM, [30] * DIM, 0, low, high)
    elems = 3
    row_bytes = len(expected) // 2
    memory, activity = run_instructions(
        NARROW,
        [
            *serial(
                [
                    load(Buffer.ACC, 0, 2, DIM, 0, 16),
                    load(Buffer.REQ, 0, 1, DIM, 64, 0),
                    Store(NO, False, 0, 2, elems, OUT, row_bytes, pack=pack),
                ]
            ),
            Finish(NO),
        ],
        memory_with((0, acc), (64, identity), (OUT, np.full(8, 0xAA, np.uint8))),
    )
    assert memory[OUT : OUT + 2 * row_bytes].tolist() == expected
    assert memory[OUT + 2 * row_bytes] == 0xAA  # nothing past the rows' bytes
    assert activity.main_write_bytes == 2 * CONFIG.dma_bytes  # one word per row


@pytest.mark.parametrize(
    ("config", "instruction", "problem"),
    [
        (
            CONFIG,
            Gemm(NO, True, False, 0, 0, 0, 1, pack=1),
            "pack 1 (int4 operands) is not a width this array computes: operand_bits 8 allows int8",
        ),
        (
            replace(CONFIG, operand_bits=2),
            Gemm(NO, True, False, 0, 0, 0, 1, pack=3),
            "pack 3 (int1 operands) is not a width this array computes: operand_bits 2 "
            "allows int8/int4/int2",
        ),
        (
            replace(CONFIG, operand_bits=4),
            Store(NO, False, 0, 1, DIM, OUT, DIM, pack=2),
            "pack 2 (int2 operands) is not a width this array computes: operand_bits 4 "
            "allows int8/int4",
        ),
        (
            NARROW,
            Store(NO, True, 0, 1, DIM, OUT, 4 * DIM, pack=1),
            "a raw STORE writes int32s: pack must be 0",
        ),
    ],
)
def test_a_pack_the_array_cannot_compute_is_an_error(config, instruction, problem):
    with pytest.raises(IsaError) as info:
        run_instructions(config, [instruction, Finish(NO)], memory_with())
    assert str(info.value).endswith(problem)
