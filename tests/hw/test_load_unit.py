# amaranth: UnusedElaboratable=no
"""The LOAD unit in Amaranth's simulator: data against a model of docs/isa.md's LOAD, timing
against the instruction simulator's cycle model, errors, and the port contract."""

import re

import numpy as np
import pytest
from amaranth.hdl import Cat, Mux, Shape, Signal

from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.isa import Buffer, Deps, Finish, Gemm, Load, Nop, Unit, buffer_rows
from verdigris.arch.timing import LOAD_OVERHEAD
from verdigris.hw.load_unit import LoadUnit
from verdigris.sim import isasim
from verdigris.sim.amaranth_sim import simulate_load_unit
from verdigris.sim.drivers import UnitProtocolError
from verdigris.sim.isasim import IsaError, run_instructions

from .faults import faulty

ELEMENT_BYTES = {Buffer.INP: 1, Buffer.WGT: 1, Buffer.ACC: 4, Buffer.REQ: 12}
PUSH = Deps(push_next=True)


def small_config(dim: int, dma_bytes: int, **overrides) -> AccelConfig:
    fields = {
        "inp_rows": 32,
        "wgt_rows": 32,
        "acc_rows": 16,
        "req_rows": 8,
        "main_memory_bytes": 1024,
    } | overrides
    return AccelConfig(
        name=f"load{dim}x{dma_bytes}", rows=dim, cols=dim, dma_bytes=dma_bytes, **fields
    )


def random_memory(config: AccelConfig, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, config.main_memory_bytes, dtype=np.uint8)


# ------------------------------------------------------------------------------ the models


def model_buffers(config: AccelConfig, instructions, memory) -> dict:
    """docs/isa.md's LOAD, written out element by element (independent of isasim)."""
    dim = config.dim
    buffers = {b: np.zeros((buffer_rows(config, b), dim), np.int64) for b in Buffer}
    buffers[Buffer.REQ] = np.zeros((config.req_rows, dim, 6), np.int64)
    for ins in instructions:
        if not isinstance(ins, Load):
            continue
        buffer = Buffer(ins.buffer)
        e = ELEMENT_BYTES[buffer]
        for i in range(ins.rows):
            row = buffers[buffer][ins.buf_row + i]
            row[...] = 0
            if ins.fill:
                row[...] = ins.fill_value
                continue
            for c in range(ins.elems):
                start = ins.dram_addr + i * ins.dram_stride + c * e
                data = bytes(memory[start : start + e])
                if buffer is Buffer.REQ:
                    row[c] = [
                        int.from_bytes(data[0:4], "little", signed=True),
                        int.from_bytes(data[4:8], "little", signed=True),
                        data[8],
                        int.from_bytes(data[9:10], "little", signed=True),
                        int.from_bytes(data[10:11], "little", signed=True),
                        int.from_bytes(data[11:12], "little", signed=True),
                    ]
                else:
                    row[c] = int.from_bytes(data, "little", signed=True)
    return buffers


def isasim_buffers(config: AccelConfig, instructions, memory) -> dict:
    """The reference's own LOAD semantics (isasim's start/complete of each LOAD, in order)."""
    state = isasim._State.reset(config, memory.copy())
    for index, ins in enumerate(instructions):
        if isinstance(ins, Load):
            isasim._start_load(state, isasim._plan_load(index, ins, config))()
    return state.buffers


def isasim_timeline(config: AccelConfig, instructions, memory) -> np.ndarray:
    timeline = np.full((len(instructions) + 1, 2), -1, np.int64)
    run_instructions(config, [*instructions, Finish(Deps())], memory, timeline=timeline)
    return timeline[:-1]


def check_load_unit(config: AccelConfig, instructions, memory, dut=None) -> np.ndarray:
    """Run the unit and assert its buffers and timing equal the models'; its timeline."""
    buffers, timeline = simulate_load_unit(config, instructions, memory, dut=dut)
    check_results(config, instructions, memory, buffers, timeline)
    return timeline


def check_results(config: AccelConfig, instructions, memory, buffers, timeline) -> None:
    """Assert a run's buffers and timeline equal the models'."""
    want = model_buffers(config, instructions, memory)
    for buffer in Buffer:
        np.testing.assert_array_equal(buffers[buffer], want[buffer], err_msg=buffer.name)
    # Back to back: each instruction starts in the completion cycle of the one before.
    assert timeline[0, 0] == 0
    np.testing.assert_array_equal(timeline[1:, 0], timeline[:-1, 1])
    reference = isasim_timeline(config, instructions, memory)
    np.testing.assert_array_equal(
        timeline[:, 1] - timeline[:, 0], reference[:, 1] - reference[:, 0], err_msg="busy"
    )
    np.testing.assert_array_equal(timeline - timeline[0, 0], reference - reference[0, 0])


def busy_of(config: AccelConfig, ins) -> int:
    """Busy from docs/isa.md's table, computed here from the definition of `words`."""
    if isinstance(ins, Nop):
        return 1
    if ins.fill:
        return max(1, ins.rows)
    nbytes, dma = ins.elems * ELEMENT_BYTES[Buffer(ins.buffer)], config.dma_bytes
    words = 0
    for i in range(ins.rows):
        offset = (ins.dram_addr + i * ins.dram_stride) % dma
        words += -(-(offset + nbytes) // dma)
    return words + LOAD_OVERHEAD


# ------------------------------------------------------------------------ random programs


def random_load(config: AccelConfig, rng: np.random.Generator) -> Load:
    dim, dma = config.dim, config.dma_bytes
    buffer = Buffer(int(rng.integers(4)))
    rows = int(rng.integers(1, 7)) if rng.random() > 0.05 else 0
    buf_row = int(rng.integers(0, buffer_rows(config, buffer) - rows + 1))
    deps = PUSH if rng.random() < 0.5 else Deps()
    if buffer is not Buffer.REQ and rng.random() < 0.25:
        value = int(rng.integers(-128, 128))
        return Load(deps, buffer, True, buf_row, rows, int(rng.integers(0, 256)), 0, 0, value)
    elems = int(rng.integers(1, dim + 1))
    nbytes = elems * ELEMENT_BYTES[buffer]
    stride = int(
        rng.choice(
            [
                0,
                nbytes,
                dma * int(rng.integers(1, 4)),
                int(rng.integers(1, 3 * nbytes + 2)),
            ]
        )
    )
    span = (max(rows, 1) - 1) * stride + nbytes
    addr = int(rng.integers(0, config.main_memory_bytes - span + 1))
    return Load(deps, buffer, False, buf_row, rows, elems, addr, stride)


def random_program(config: AccelConfig, seed: int, count: int) -> list:
    rng = np.random.default_rng(seed)
    program = []
    for _ in range(count):
        if rng.random() < 0.08:
            program.append(Nop(PUSH if rng.random() < 0.5 else Deps(), Unit.LOAD))
        else:
            program.append(random_load(config, rng))
    return program


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


_Wrapped = faulty(LoadUnit)


class _SwappedBytes(_Wrapped):
    """Reads main-memory words with their two lowest bytes swapped."""

    TAMPERED = frozenset({"mem_data"})

    def tamper(self, m, inner):
        data = self.mem_data
        m.d.comb += inner.mem_data.eq(Cat(data[8:16], data[0:8], data[16:]))


class _OneCycleLate(_Wrapped):
    """Completes every instruction of busy 2 or more a cycle late, consistently (free,
    in_flight and push_next), so only the comparison with the cycle model can tell."""

    TAMPERED = frozenset({"free", "in_flight", "push_next"})

    def tamper(self, m, inner):
        was_in_flight = Signal()
        push_next = Signal.like(inner.push_next)
        m.d.sync += [was_in_flight.eq(inner.in_flight), push_next.eq(inner.push_next)]
        late, was_late = Signal(), Signal()
        m.d.sync += was_late.eq(late)
        m.d.comb += [
            late.eq(was_in_flight & ~inner.in_flight),
            self.free.eq(inner.free & ~late),
            self.in_flight.eq(inner.in_flight | late),
            self.push_next.eq(Mux(was_late, push_next, Mux(late, 0, inner.push_next))),
        ]


class _LateWrites(_Wrapped):
    """Writes every buffer row a cycle late: right data, but the last row of an instruction
    lands in its completion cycle, when a consumer may already read it."""

    TAMPERED = frozenset(
        f"{prefix}_{suffix}"
        for prefix in ("inp", "wgt", "acc", "req")
        for suffix in ("addr", "data", "en")
    )

    def tamper(self, m, inner):
        for name in self.TAMPERED:
            m.d.sync += getattr(self, name).eq(getattr(inner, name))


@pytest.mark.parametrize(("variant", "message"), [(_SwappedBytes, "INP"), (_OneCycleLate, "busy")])
def test_a_broken_unit_fails(variant, message):
    config = small_config(4, 4)
    memory = random_memory(config, 9)
    program = random_program(config, seed=3, count=12)
    check_load_unit(config, program, memory, dut=_Wrapped(config))  # wrapping alone is fine
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
        name: (member.flow.name, Shape.cast(member.shape).width) for name, member in members.items()
    }
    assert widths == {
        "start": ("In", 1),
        "instr": ("In", 128),
        "free": ("Out", 1),
        "push_prev": ("Out", 2),
        "push_next": ("Out", 2),
        "in_flight": ("Out", 1),
        "error": ("Out", 1),
        "mem_addr": ("Out", 9),
        "mem_en": ("Out", 1),
        "mem_data": ("In", 32),
        "inp_addr": ("Out", 5),
        "inp_data": ("Out", 64),
        "inp_en": ("Out", 1),
        "wgt_addr": ("Out", 5),
        "wgt_data": ("Out", 64),
        "wgt_en": ("Out", 1),
        "acc_addr": ("Out", 4),
        "acc_data": ("Out", 256),
        "acc_en": ("Out", 1),
        "req_addr": ("Out", 3),
        "req_data": ("Out", 768),
        "req_en": ("Out", 1),
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
