# amaranth: UnusedElaboratable=no
"""The LOAD unit in Amaranth's simulator: data against a model of docs/isa.md's LOAD, timing
against the instruction simulator's cycle model, errors, and the port contract."""

import re

import numpy as np
import pytest
from amaranth.hdl import Mux, Shape, Signal

from tests.support.load_unit import (
    PUSH,
    FaultyLoadUnit,
    SwappedBytes,
    check_results,
    model_buffers,
    random_memory,
    random_program,
    small_config,
)
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.cycle_model import plan_instruction
from verdigris.arch.isa import Buffer, Deps, Finish, Gemm, Load, Nop, Unit, elements_bytes
from verdigris.arch.timing import LOAD_OVERHEAD
from verdigris.hw.load_unit import LoadUnit
from verdigris.sim import isasim
from verdigris.sim.isasim import IsaError, run_instructions
from verdigris.verify.load_unit import simulate_load_unit
from verdigris.verify.protocol import UnitProtocolError

# ------------------------------------------------------------------------------ the models


def isasim_buffers(config: AccelConfig, instructions, memory) -> dict:
    """The reference's own LOAD semantics (isasim's start/complete of each LOAD, in order)."""
    state = isasim._State.reset(config, memory.copy())
    for index, ins in enumerate(instructions):
        if isinstance(ins, Load):
            isasim._start_load(state, plan_instruction(config, index, ins))()
    return state.buffers


def check_load_unit(config: AccelConfig, instructions, memory, dut=None) -> np.ndarray:
    """Run the unit and assert its buffers and timing equal the models'; its timeline."""
    buffers, timeline = simulate_load_unit(config, instructions, memory, dut=dut)
    check_results(config, instructions, memory, buffers, timeline)
    return timeline


def busy_of(config: AccelConfig, ins) -> int:
    """Busy from docs/isa.md's table, computed here from the definition of `words`."""
    if isinstance(ins, Nop):
        return 1
    if ins.fill:
        return max(1, ins.rows)
    nbytes, dma = elements_bytes(config, Buffer(ins.buffer), ins.elems), config.dma_bytes
    words = 0
    for i in range(ins.rows):
        offset = (ins.dram_addr + i * ins.dram_stride) % dma
        words += -(-(offset + nbytes) // dma)
    return words + LOAD_OVERHEAD


# ------------------------------------------------------------------------ random programs


CONFIGS = [(4, 4), (4, 8), (8, 4), (8, 8)]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("dim", "dma_bytes"), CONFIGS)
def test_random_loads_match_the_models(dim, dma_bytes, seed):
    config = small_config(dim, dma_bytes)
    memory = random_memory(config, dim * dma_bytes + seed)
    program = random_program(config, seed=100 * seed + dim + dma_bytes, count=80)
    timeline = check_load_unit(config, program, memory)
    busy = [busy_of(config, ins) for ins in program]
    np.testing.assert_array_equal(timeline[:, 1] - timeline[:, 0], busy)


@pytest.mark.parametrize(("dim", "dma_bytes"), CONFIGS)
def test_model_agrees_with_isasim(dim, dma_bytes):
    config = small_config(dim, dma_bytes)
    memory = random_memory(config, 7)
    program = random_program(config, seed=100 + dim + dma_bytes, count=200)
    want = isasim_buffers(config, program, memory)
    got = model_buffers(config, program, memory)
    for buffer in Buffer:
        np.testing.assert_array_equal(got[buffer], want[buffer], err_msg=buffer.name)


@pytest.mark.parametrize(
    ("dim", "dma_bytes", "overrides"),
    [
        (2, 64, {}),  # a word wider than any row
        (4, 1, {}),  # one byte per cycle
        (2, 16, {"main_memory_bytes": 1040}),  # not a power of two
    ],
)
def test_edge_configs(dim, dma_bytes, overrides):
    config = small_config(dim, dma_bytes, **overrides)
    memory = random_memory(config, 3)
    check_load_unit(config, random_program(config, seed=dma_bytes, count=25), memory)


def test_default_preset():
    config = load_config("default")
    memory = random_memory(config, 5)
    program = [
        Load(PUSH, Buffer.INP, False, 0, 2, config.dim, 3, 1000),
        Load(Deps(), Buffer.ACC, True, config.acc_rows - 2, 2, 0, fill_value=-1),
        Load(PUSH, Buffer.REQ, False, config.req_rows - 1, 1, config.dim, 5, 0),
        Load(Deps(), Buffer.WGT, False, 7, 3, 5, config.main_memory_bytes - 5, 0),
    ]
    check_load_unit(config, program, memory)


# ------------------------------------------------------------------------ directed timing


def _hand(config, instruction):
    memory = random_memory(config, 11)
    timeline = check_load_unit(config, [instruction], memory)
    return int(timeline[0, 1] - timeline[0, 0])


@pytest.mark.parametrize(
    ("instruction", "busy"),
    [
        (Nop(PUSH, Unit.LOAD), 1),
        (Load(PUSH, Buffer.INP, True, 0, 5, 0, fill_value=7), 5),
        (Load(PUSH, Buffer.ACC, True, 3, 1, 0, fill_value=-128), 1),
        (Load(PUSH, Buffer.WGT, True, 0, 0, 0), 1),  # a fill of 0 rows
        (Load(PUSH, Buffer.INP, False, 0, 0, 4, 0, 0), 2),  # a transfer of 0 rows
        (Load(PUSH, Buffer.INP, False, 0, 3, 4, 8, 4), 3 * 1 + 2),  # aligned, packed
        (Load(PUSH, Buffer.INP, False, 0, 3, 4, 9, 4), 3 * 2 + 2),  # unaligned
        (Load(PUSH, Buffer.INP, False, 0, 4, 4, 9, 0), 4 * 2 + 2),  # stride 0
        (Load(PUSH, Buffer.WGT, False, 0, 4, 2, 1, 1), 1 + 1 + 2 + 1 + 2),  # offsets 1 2 3 0
        (Load(PUSH, Buffer.ACC, False, 0, 2, 4, 0, 16), 2 * 4 + 2),
        (Load(PUSH, Buffer.ACC, False, 0, 2, 1, 2, 16), 2 * 2 + 2),
        (Load(PUSH, Buffer.REQ, False, 0, 2, 4, 0, 48), 2 * 12 + 2),
        (Load(PUSH, Buffer.REQ, False, 0, 1, 3, 3, 0), 10 + 2),
        (Load(PUSH, Buffer.LUT, False, 0, 3, 4, 8, 4), 3 * 1 + 2),  # a lookup table's rows
        (Load(PUSH, Buffer.LUT, False, 250, 6, 3, 3, 5), 2 + 1 + 1 + 2 + 2 + 1 + 2),
        (Load(PUSH, Buffer.LUT, True, 254, 2, 0, fill_value=-7), 2),
    ],
)
def test_busy_by_hand(instruction, busy):
    assert _hand(small_config(4, 4), instruction) == busy


def test_writes_are_done_before_completion_and_push_marks_it():
    """The harness checks every write lies in [start, completion) and push_next is exactly
    in the completion cycle; here the completion of one feeds the next back to back."""
    config = small_config(4, 4)
    program = [
        Load(PUSH, Buffer.INP, False, 0, 1, 4, 1, 0),
        Load(PUSH, Buffer.INP, True, 1, 1, 0, fill_value=5),
        Nop(Deps(), Unit.LOAD),
        Load(Deps(), Buffer.INP, False, 2, 2, 1, 3, 0),
        Nop(PUSH, Unit.LOAD),
    ]
    timeline = check_load_unit(config, program, random_memory(config, 1))
    assert timeline.tolist() == [[0, 4], [4, 5], [5, 6], [6, 10], [10, 11]]


# -------------------------------------------------------------------------------- errors

_ERROR_CASES = [
    # (instruction, the problem isasim names or None when only the unit checks it)
    (Load(Deps(), Buffer.INP, False, 30, 3, 4, 0, 4), "run past the end of the inp buffer"),
    (Load(Deps(), Buffer.ACC, True, 16, 1, 0), "run past the end of the acc buffer"),
    (Load(Deps(), Buffer.REQ, False, 9, 0, 4, 0, 0), "run past the end of the req buffer"),
    (Load(Deps(), Buffer.WGT, False, 0, 1, 0, 0, 0), "elems 0 is outside 1..4"),
    (Load(Deps(), Buffer.WGT, False, 0, 1, 5, 0, 0), "elems 5 is outside 1..4"),
    (Load(Deps(), Buffer.ACC, False, 0, 0, 255, 0, 0), "elems 255 is outside 1..4"),
    (Load(Deps(), Buffer.INP, False, 0, 1, 4, 1021, 0), "runs past the end of main memory"),
    (Load(Deps(), Buffer.INP, False, 0, 3, 4, 0, 511), "runs past the end of main memory"),
    (Load(Deps(), Buffer.ACC, False, 0, 2, 4, 0, 2**24 - 1), "runs past the end of main"),
    (Load(Deps(), Buffer.REQ, True, 0, 1, 4), "a fill of the req table is illegal"),
    (Load(Deps(), Buffer.LUT, False, 255, 2, 4, 0, 4), "run past the end of the lut buffer"),
    (Load(Deps(), Buffer.LUT, True, 256, 1, 0), "run past the end of the lut buffer"),
    # `buffer` is 3 bits wide; 5..7 name no buffer (and must not alias one).
    (Load(Deps(), 5, False, 0, 1, 4, 0, 4), "LOAD buffer 5 is not a buffer"),
    (Load(Deps(), 6, True, 0, 1, 0), "LOAD buffer 6 is not a buffer"),
    (Load(Deps(), 7, False, 0, 0, 4, 0, 0), "LOAD buffer 7 is not a buffer"),
    (Load(Deps(pop_prev=True), Buffer.INP, True, 0, 1, 0), "pop_prev is illegal"),
    (Load(Deps(push_prev=True), Buffer.INP, False, 0, 1, 4), "push_prev is illegal"),
    (Nop(Deps(push_prev=True), Unit.LOAD), "push_prev is illegal"),
    (Nop(Deps(), Unit.COMPUTE), None),  # not an instruction for this unit
    (Gemm(Deps(), False, False, 0, 0, 0, 1), None),
]


@pytest.mark.parametrize(("bad", "problem"), _ERROR_CASES)
def test_errors_stop_the_unit(bad, problem):
    config = small_config(4, 4)
    memory = random_memory(config, 2)
    good = Load(PUSH, Buffer.INP, False, 0, 2, 3, 1, 5)
    program = [good, bad, Load(PUSH, Buffer.INP, True, 0, 2, 0, fill_value=1)]
    # The harness checks that the illegal instruction wrote, read and pushed nothing and
    # that the unit stayed stopped; the third instruction never starts.
    with pytest.raises(IsaError, match=r"^instruction 1: the load unit") as raised:
        simulate_load_unit(config, program, memory)
    assert raised.value.index == 1
    if problem is not None:
        with pytest.raises(IsaError, match=problem) as reference:
            run_instructions(config, [*program, Finish(Deps())], memory)
        assert reference.value.index == 1


@pytest.mark.parametrize(
    "edge",
    [
        Load(PUSH, Buffer.INP, False, 29, 3, 4, 0, 4),  # ends at the buffer's last row
        Load(PUSH, Buffer.REQ, False, 8, 0, 4, 0, 0),  # 0 rows at the end
        Load(PUSH, Buffer.INP, False, 0, 1, 4, 1020, 0),  # ends at main memory's end
        Load(PUSH, Buffer.ACC, False, 0, 3, 4, 0, 504),  # 16 + 2 * 504 = 1024
        Load(PUSH, Buffer.ACC, False, 0, 0, 4, 2**24 - 1, 2**24 - 1),  # 0 rows: not checked
        Load(PUSH, Buffer.WGT, True, 0, 2, 0, 2**24 - 1, 2**24 - 1, -128),  # fill: unchecked
        Load(PUSH, Buffer.ACC, True, 0, 2, 255, fill_value=127),
        Nop(Deps(pop_next=True), Unit.LOAD),  # pop_next is legal (the controller's)
    ],
)
def test_legal_edges_do_not_raise(edge):
    config = small_config(4, 4)
    memory = random_memory(config, 4)
    buffers, _ = simulate_load_unit(config, [edge], memory)
    want = model_buffers(config, [edge], memory)
    for buffer in Buffer:
        np.testing.assert_array_equal(buffers[buffer], want[buffer])
    if not edge.deps.pop_next:  # isasim would wait for a c2l token forever
        check_load_unit(config, [edge], memory)


# ------------------------------------------------------------- the tests can fail, ports


class _OneCycleLate(FaultyLoadUnit):
    """Completes every instruction of busy 2 or more a cycle late, consistently (free,
    in_flight and push_next), so only the comparison with the cycle model can tell."""

    TAMPERED = frozenset({"control__free", "control__in_flight", "control__push_next"})

    def tamper(self, m, inner):
        outer, inner = self.control, inner.control
        was_in_flight = Signal()
        push_next = Signal.like(inner.push_next)
        m.d.sync += [was_in_flight.eq(inner.in_flight), push_next.eq(inner.push_next)]
        late, was_late = Signal(), Signal()
        m.d.sync += was_late.eq(late)
        m.d.comb += [
            late.eq(was_in_flight & ~inner.in_flight),
            outer.free.eq(inner.free & ~late),
            outer.in_flight.eq(inner.in_flight | late),
            outer.push_next.eq(Mux(was_late, push_next, Mux(late, 0, inner.push_next))),
        ]


class _LateWrites(FaultyLoadUnit):
    """Writes every buffer row a cycle late: right data, but the last row of an instruction
    lands in its completion cycle, when a consumer may already read it."""

    BUFFERS = ("inp", "wgt", "acc", "req", "lut")
    TAMPERED = frozenset(
        f"{buffer}__{member}" for buffer in BUFFERS for member in ("addr", "data", "en")
    )

    def tamper(self, m, inner):
        for buffer in self.BUFFERS:
            outer_port, inner_port = getattr(self, buffer), getattr(inner, buffer)
            for member in ("addr", "data", "en"):
                m.d.sync += getattr(outer_port, member).eq(getattr(inner_port, member))


@pytest.mark.parametrize(("variant", "message"), [(SwappedBytes, "INP"), (_OneCycleLate, "busy")])
def test_a_broken_unit_fails(variant, message):
    config = small_config(4, 4)
    memory = random_memory(config, 9)
    program = random_program(config, seed=3, count=12)
    check_load_unit(config, program, memory, dut=FaultyLoadUnit(config))  # wrapping alone is fine
    with pytest.raises(AssertionError, match=message):
        check_load_unit(config, program, memory, dut=variant(config))


def test_the_bench_catches_writes_at_completion():
    config = small_config(4, 4)
    program = random_program(config, seed=3, count=12)
    with pytest.raises(UnitProtocolError, match=r"^cycle \d+ \(instruction \d+\): wrote "):
        simulate_load_unit(config, program, random_memory(config, 9), dut=_LateWrites(config))


def test_ports():
    config = small_config(8, 4, main_memory_bytes=2048)
    members = LoadUnit(config).signature.members
    widths = {
        "__".join(path): (member.flow.name, Shape.cast(member.shape).width)
        for path, member in members.flatten()
        if member.is_port
    }
    assert widths == {
        "control__start": ("In", 1),
        "control__instr": ("In", 128),
        "control__ready": ("Out", 1),
        "control__free": ("Out", 1),
        "control__push_prev": ("Out", 2),
        "control__push_next": ("Out", 2),
        "control__in_flight": ("Out", 1),
        "control__error": ("Out", 1),
        "control__completed": ("Out", 2),
        "mem__addr": ("Out", 9),
        "mem__en": ("Out", 1),
        "mem__data": ("In", 32),
        "inp__addr": ("Out", 5),
        "inp__data": ("Out", 64),
        "inp__en": ("Out", 1),
        "wgt__addr": ("Out", 5),
        "wgt__data": ("Out", 64),
        "wgt__en": ("Out", 1),
        "acc__addr": ("Out", 4),
        "acc__data": ("Out", 256),
        "acc__en": ("Out", 1),
        "req__addr": ("Out", 3),
        "req__data": ("Out", 768),
        "req__en": ("Out", 1),
        "lut__addr": ("Out", 8),  # 256 rows: one lookup table
        "lut__data": ("Out", 64),
        "lut__en": ("Out", 1),
    }


def test_rejects_a_config_that_is_not_one():
    with pytest.raises(TypeError, match=r"^config must be an AccelConfig, not 'tiny'$"):
        LoadUnit("tiny")


def test_rejects_a_cycle_model_it_does_not_implement(monkeypatch):
    monkeypatch.setattr("verdigris.hw.load_unit.LOAD_OVERHEAD", 3)
    message = (
        "the cycle model's LOAD_OVERHEAD is 3, but LoadUnit's pipeline takes 2 cycles beyond "
        "one per word"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LoadUnit(small_config(4, 4))


def test_harness_rejects_a_wrong_memory_image():
    config = small_config(4, 4)
    message = "main memory must be a uint8 array of 1024 bytes, not int64 (1024,)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        simulate_load_unit(config, [], np.zeros(1024, np.int64))


# -------------------------------------------------------------------------- lookup tables


def test_lookup_table_rows_go_to_the_lut_port():
    """Transfers (unaligned, strided, partial rows, several words) and fills into the LUT
    buffer, against the model and isasim, next to loads into the other buffers."""
    config = small_config(4, 4)
    memory = random_memory(config, 21)
    program = [
        Load(PUSH, Buffer.LUT, False, 0, 5, 4, 1, 7),
        Load(Deps(), Buffer.INP, False, 0, 1, 4, 2, 0),
        Load(PUSH, Buffer.LUT, False, 128, 3, 2, 999, 0),  # stride 0: one row three times
        Load(Deps(), Buffer.LUT, True, 250, 6, 0, fill_value=-128),
        Load(PUSH, Buffer.LUT, False, 7, 2, 3, 6, 3),
    ]
    check_load_unit(config, program, memory)


@pytest.mark.parametrize(
    ("load", "problem"),
    [
        (Load(Deps(), Buffer.LUT, False, 0, 1, 4, 0, 0), "lut rows \\[0, 1\\) run past the end"),
        (Load(Deps(), Buffer.LUT, True, 0, 1, 0, fill_value=3), "run past the end of the lut"),
        (Load(PUSH, Buffer.LUT, False, 0, 0, 4, 0, 0), None),  # 0 rows: legal
        (Load(PUSH, Buffer.LUT, True, 0, 0, 0), None),
    ],
)
def test_without_lookup_tables(load, problem):
    """lut_rows = 0 still builds: every LUT row is out of range, 0 rows are legal."""
    config = small_config(4, 4, lut_rows=0)
    memory = random_memory(config, 2)
    program = [Load(PUSH, Buffer.INP, False, 0, 2, 3, 1, 5), load]
    if problem is None:
        check_load_unit(config, program, memory)
        return
    with pytest.raises(IsaError, match=r"^instruction 1: the load unit"):
        simulate_load_unit(config, program, memory)
    with pytest.raises(IsaError, match=problem):
        run_instructions(config, [*program, Finish(Deps())], memory)
