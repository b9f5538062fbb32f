"""What the store unit's tests in Amaranth's simulator (tests/hw) and on Verilator (tests/rtl)
share: the config, random programs, buffers and memory, the check of a run against the
instruction simulator, error cases and a faulty unit."""

import random
import struct
from dataclasses import replace

import numpy as np
from amaranth.hdl import Cat

from tests.support.faults import faulty
from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import LUT_ENTRIES, Buffer, Deps, Finish, Load, Nop, Store, Unit
from verdigris.hw.store_unit import StoreUnit
from verdigris.sim.isasim import run_instructions

CONFIG = AccelConfig(
    name="su",
    rows=4,
    cols=4,
    inp_rows=8,
    wgt_rows=8,
    acc_rows=16,
    req_rows=2,
    lut_rows=512,  # two lookup tables
    main_memory_bytes=4096,
    instruction_capacity=256,
    dma_bytes=4,
    queue_depth=4,
)


DIM = CONFIG.dim
# The same unit on an array whose outputs may be packed int4 and int2.
NARROW = replace(CONFIG, name="su_int1", operand_bits=1)


ACC_AT, REQ_AT, LUT_AT, OUT_AT = 1024, 1536, 2048, 0


# The stores must see the loaded buffers: load -> compute NOP -> store tokens.
LOADS = [
    Load(Deps(), Buffer.LUT, False, 0, CONFIG.lut_rows, DIM, LUT_AT, DIM),
    Load(Deps(), Buffer.ACC, False, 0, CONFIG.acc_rows, DIM, ACC_AT, 4 * DIM),
    Load(Deps(push_next=True), Buffer.REQ, False, 0, CONFIG.req_rows, DIM, REQ_AT, 12 * DIM),
    Nop(Deps(pop_prev=True, push_next=True), Unit.COMPUTE),
]


def setup(seed: int, *, bad_shift: bool = False):
    """(memory, acc, req): main memory holding random acc rows, requant entries and lookup
    tables (the LOADS put them into the buffers for the instruction simulator; `lut_tables`
    gives the tables) and the acc rows and entries as the buffers hold them. With
    `bad_shift`, entry req[1][0] has shift 0."""
    rng = np.random.default_rng(seed)
    memory = np.zeros(CONFIG.main_memory_bytes, np.uint8)
    # Every lane of every table its own function of y (random bytes).
    tables = np.random.default_rng(seed + 1000).integers(0, 256, CONFIG.lut_rows * DIM)
    memory[LUT_AT : LUT_AT + tables.size] = tables
    acc = rng.integers(-(2**31), 2**31, (CONFIG.acc_rows, DIM))
    memory[ACC_AT : ACC_AT + acc.size * 4] = np.frombuffer(acc.astype("<i4").tobytes(), np.uint8)
    records = b""
    entries = []
    for _ in range(CONFIG.req_rows * DIM):
        entry = (
            int(rng.integers(-(2**20), 2**20)),
            int(rng.integers(0, 2**31)),
            int(rng.integers(20, 45)),
            int(rng.integers(-128, 128)),
            int(rng.integers(-128, 0)),
            int(rng.integers(0, 128)),
        )
        if bad_shift and len(entries) == DIM:
            entry = (*entry[:2], 0, *entry[3:])
        entries.append(entry)
        records += struct.pack("<iiBbbb", *entry)
    memory[REQ_AT : REQ_AT + len(records)] = np.frombuffer(records, np.uint8)
    return memory, acc, np.array(entries, np.int64).reshape(CONFIG.req_rows, DIM, 6)


def lut_tables(memory) -> np.ndarray:
    """The lookup tables `setup` put into `memory`, (lut_rows, dim) int8 values."""
    tables = memory[LUT_AT : LUT_AT + CONFIG.lut_rows * DIM].view(np.int8)
    return tables.astype(np.int64).reshape(CONFIG.lut_rows, DIM)


def random_program(rng: random.Random, count: int, max_pack: int = 0) -> list:
    """`count` random STOREs (requantized ones packed up to `max_pack`) and NOPs."""
    program = []
    for _ in range(count):
        deps = Deps(push_prev=rng.random() < 0.3)
        if rng.random() < 0.1:
            program.append(Nop(deps, Unit.STORE))
            continue
        raw = rng.random() < 0.3
        rows = rng.randint(0, 4)
        elems = rng.randint(1, DIM)
        stride = rng.choice([0, elems * (4 if raw else 1), rng.randint(1, 40)])
        tables = CONFIG.lut_rows // LUT_ENTRIES
        program.append(
            Store(
                deps,
                raw,
                rng.randint(0, CONFIG.acc_rows - rows),
                rows,
                elems,
                OUT_AT + rng.randint(0, 300),
                stride,
                rng.randint(0, 1),
                0 if raw or rng.random() < 0.4 else rng.randint(1, tables),
                pack=0 if raw else rng.randint(0, max_pack),
            )
        )
    return program


def isasim_run(program, memory, config=CONFIG):
    """The instruction simulator's final memory and the program's timeline, after LOADS;
    the first instruction pops the token that says the buffers are loaded."""
    first = replace(program[0], deps=replace(program[0].deps, pop_prev=True))
    full = [*LOADS, first, *program[1:], Finish(Deps())]
    timeline = np.full((len(full), 2), -1, np.int64)
    final, _ = run_instructions(config, full, memory, timeline=timeline)
    return final, timeline[len(LOADS) : -1]


def check_store_run(program, memory, run, config=CONFIG) -> None:
    """Assert a StoreRun's memory and timeline equal the instruction simulator's."""
    want, reference = isasim_run(program, memory, config)
    np.testing.assert_array_equal(run.memory, want, err_msg="memory")
    # Back to back: each instruction starts in the completion cycle of the one before.
    timeline = run.timeline
    np.testing.assert_array_equal(timeline[1:, 0], timeline[:-1, 1])
    np.testing.assert_array_equal(timeline - timeline[0, 0], reference - reference[0, 0])


GOOD = Store(Deps(push_prev=True), False, 0, 2, DIM, OUT_AT, DIM)


ERROR_CASES = [
    Store(Deps(), False, 15, 2, DIM, OUT_AT, DIM),  # acc rows past the end
    Store(Deps(), True, 0, 1, 0, OUT_AT, 0),  # elems 0
    Store(Deps(), False, 0, 1, DIM + 1, OUT_AT, 0),  # elems past dim
    Store(Deps(), False, 0, 1, DIM, OUT_AT, 0, 2),  # no req row 2
    Store(Deps(), True, 0, 2, DIM, CONFIG.main_memory_bytes - 8, 8),  # past main memory's end
    Store(Deps(), True, 0, 1, DIM, OUT_AT, 0, 0, 1),  # raw with a lookup
    Store(Deps(), False, 0, 1, DIM, OUT_AT, 0, 0, 3),  # table 2 is past the 512 rows
    Store(Deps(), False, 0, 0, DIM, OUT_AT, 0, 1, 127),  # table 126, even of 0 rows
    Store(Deps(pop_next=True), False, 0, 1, DIM, OUT_AT, 0),  # the store unit has no next
    Store(Deps(), False, 0, 1, DIM, OUT_AT, 0, pack=1),  # int4 outputs on an int8 array
    Nop(Deps(push_next=True), Unit.STORE),
]


FaultyStoreUnit = faulty(StoreUnit)


class SwappedStoreBytes(FaultyStoreUnit):
    """Writes main-memory words with their two lowest bytes swapped."""

    TAMPERED = frozenset({"mem__data"})

    def tamper(self, m, inner):
        data = inner.mem.data
        m.d.comb += self.mem.data.eq(Cat(data[8:16], data[0:8], data[16:]))
