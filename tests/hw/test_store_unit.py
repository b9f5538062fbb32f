# amaranth: UnusedElaboratable=no
"""The store unit alone in Amaranth's simulator, driven and checked by `StoreUnitDriver` (the
port contract, cycle by cycle): random STOREs (requantized and raw, unaligned addresses,
strides, partial rows) and NOPs from random accumulator rows and requant entries. Main
memory must end as the instruction simulator leaves it, and every instruction must keep the
unit busy exactly as long as the cycle model says."""

import random
from dataclasses import replace

import pytest
from amaranth.back import rtlil

from tests.support.store_unit import (
    CONFIG,
    DIM,
    ERROR_CASES,
    GOOD,
    LOADS,
    NARROW,
    OUT_AT,
    FaultyStoreUnit,
    SwappedStoreBytes,
    check_store_run,
    isasim_run,
    lut_tables,
    random_program,
    setup,
)
from verdigris.arch.isa import Deps, Finish, Nop, Store, Unit
from verdigris.hw.core import Core
from verdigris.sim.isasim import IsaError, run_instructions
from verdigris.verify.protocol import UnitProtocolError
from verdigris.verify.store_unit import simulate_store_unit


@pytest.mark.parametrize("seed", range(5))
def test_random_stores_match_the_instruction_simulator(seed):
    memory, acc, req = setup(seed)
    program = random_program(random.Random(seed), 10)
    check_store_run(
        program,
        memory,
        simulate_store_unit(CONFIG, program, acc, req, memory, lut=lut_tables(memory)),
    )


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_random_packed_stores_match_the_instruction_simulator(seed):
    """Requantized (and looked-up) outputs packed two, four or eight (binary: their signs)
    to a byte, rows of any elems at any address: the bytes and the busy cycles of the
    instruction simulator."""
    memory, acc, req = setup(seed)
    program = random_program(random.Random(seed), 12, max_pack=3)
    assert {ins.pack for ins in program if isinstance(ins, Store)} >= {1, 2, 3}
    run = simulate_store_unit(NARROW, program, acc, req, memory, lut=lut_tables(memory))
    check_store_run(program, memory, run, NARROW)


def test_a_packed_raw_store_stops_the_unit():
    memory, acc, req = setup(4)
    program = [GOOD, Store(Deps(), True, 0, 1, DIM, OUT_AT, 4 * DIM, pack=1), GOOD]
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit"):
        simulate_store_unit(NARROW, program, acc, req, memory, lut=lut_tables(memory))
    with pytest.raises(IsaError, match="a raw STORE writes int32s"):
        isasim_run(program, memory, NARROW)


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ERROR_CASES)
def test_errors_stop_the_unit(bad):
    """The driver checks the illegal instruction raises `error` in the next cycle and
    touches nothing; isasim rejects the same one."""
    memory, acc, req = setup(4)
    program = [GOOD, bad, GOOD]
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit") as raised:
        simulate_store_unit(CONFIG, program, acc, req, memory, lut=lut_tables(memory))
    assert raised.value.index == 1
    with pytest.raises(IsaError) as reference:
        isasim_run(program, memory)
    assert reference.value.index == len(LOADS) + 1


@pytest.mark.parametrize("table", [0, 1])
def test_a_shift_out_of_range_stops_the_unit_while_it_runs(table):
    memory, acc, req = setup(4, bad_shift=True)
    program = [GOOD, Store(Deps(), False, 0, 2, DIM, OUT_AT, DIM, 1, table), GOOD]
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit") as raised:
        simulate_store_unit(CONFIG, program, acc, req, memory, lut=lut_tables(memory))
    assert raised.value.index == 1
    with pytest.raises(IsaError, match="has shift 0") as reference:
        isasim_run(program, memory)
    assert reference.value.index == len(LOADS) + 1


# ------------------------------------------------------------------- the tests can fail


class NoPushes(FaultyStoreUnit):
    """Never pushes a token."""

    TAMPERED = frozenset({"control__push_prev"})

    def tamper(self, m, inner):
        pass


@pytest.mark.parametrize(
    ("variant", "error", "message"),
    [
        (SwappedStoreBytes, AssertionError, "memory"),
        (NoPushes, UnitProtocolError, r"push_prev is 0 in the completion cycle, not 1$"),
    ],
)
def test_a_broken_unit_fails(variant, error, message):
    memory, acc, req = setup(3)
    program = random_program(random.Random(3), 10)
    run = simulate_store_unit(
        CONFIG, program, acc, req, memory, lut=lut_tables(memory), dut=FaultyStoreUnit(CONFIG)
    )
    check_store_run(program, memory, run)  # wrapping alone is fine
    with pytest.raises(error, match=message):
        run = simulate_store_unit(
            CONFIG, program, acc, req, memory, lut=lut_tables(memory), dut=variant(CONFIG)
        )
        check_store_run(program, memory, run)


# -------------------------------------------------------------------------- lookup tables


def _lookups(seed, program):
    memory, acc, req = setup(seed)
    run = simulate_store_unit(CONFIG, program, acc, req, memory, lut=lut_tables(memory))
    check_store_run(program, memory, run)
    return run


def test_lookups_by_hand():
    """Both tables, every lane its own entries, partial rows, unaligned and strided rows of
    one and of several words, back to back with plain and raw STOREs and a NOP."""
    push = Deps(push_prev=True)
    program = [
        Store(push, False, 0, 3, DIM, OUT_AT, DIM, 0, 1),  # aligned: one word a row
        Store(Deps(), False, 3, 2, DIM, OUT_AT + 17, 22, 1, 2),  # unaligned: two words a row
        Store(push, False, 5, 4, 3, OUT_AT + 63, 1, 0, 1),  # overlapping, one or two words
        Store(Deps(), False, 9, 1, 2, OUT_AT + 102, 0, 1, 2),  # two lanes
        Store(push, False, 10, 2, DIM, OUT_AT + 201, 0, 0, 0),  # no lookup after a lookup
        Store(Deps(), False, 12, 2, 1, OUT_AT + 150, 5, 1, 2),  # a lookup after none
        Store(push, True, 13, 1, DIM, OUT_AT + 230, 0, 1, 0),  # raw after a lookup
        Store(push, False, 0, 0, DIM, OUT_AT, 0, 0, 1),  # 0 rows: the overhead, plus one
        Nop(push, Unit.STORE),
        Store(Deps(), False, 14, 2, DIM, OUT_AT + 300, 4, 0, 2),
    ]
    run = _lookups(5, program)
    busy = run.timeline[:, 1] - run.timeline[:, 0]
    # rows * words + STORE_OVERHEAD (6), plus LUT_LATENCY (1) with a lookup
    words = [3, 2 * 2, 2 + 1 + 1 + 2, 1, 2 * 2, 1 + 1, 5, 0, None, 2]
    lookup = [1, 1, 1, 1, 0, 1, 0, 1, None, 1]
    want = [1 if w is None else w + 6 + k for w, k in zip(words, lookup, strict=True)]
    assert busy.tolist() == want


@pytest.mark.parametrize("seed", range(3))
def test_random_lookups(seed):
    """Only STOREs with lookups, short rows (one word: a lookup every cycle)."""
    rng = random.Random(seed)
    program = [
        Store(
            Deps(push_prev=rng.random() < 0.5),
            False,
            rng.randint(0, 12),
            rng.randint(0, 4),
            rng.randint(1, DIM),
            OUT_AT + rng.randint(0, 200),
            rng.choice([0, 1, DIM, 7]),
            rng.randint(0, 1),
            rng.randint(1, 2),
        )
        for _ in range(8)
    ]
    _lookups(seed, program)


def test_without_lookup_tables():
    """lut_rows = 0 builds; every STORE with a lookup is then an error."""
    config = replace(CONFIG, lut_rows=0)
    memory, acc, req = setup(1)
    program = [GOOD, Store(Deps(), False, 0, 1, DIM, OUT_AT, 0, 0, 1)]
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit"):
        simulate_store_unit(config, program, acc, req, memory)
    with pytest.raises(IsaError, match=r"lut rows \[0, 256\) run past the end"):
        run_instructions(config, [*program, Finish(Deps())], memory)
    run = simulate_store_unit(config, [GOOD, GOOD], acc, req, memory)
    assert run.timeline.tolist() == [[0, 8], [8, 16]]


@pytest.mark.parametrize("lut_rows", [0, 768])
def test_the_core_builds_with_any_number_of_tables(lut_rows):
    """No tables (each lane keeps a one-entry memory) and a count of tables that is not a
    power of two: the core elaborates, with one lookup memory per lane."""
    config = replace(CONFIG, lut_rows=lut_rows)
    text = rtlil.convert(Core(config), name="core")
    for c in range(DIM):
        assert f"lut_{c}" in text
