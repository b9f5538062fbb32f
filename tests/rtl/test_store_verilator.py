"""The STORE unit's generated Verilog under Verilator, driven by cocotb with the same driver
and checks as the Amaranth-simulator tests."""

import random

import pytest

from tests.support.store_unit import (
    CONFIG,
    DIM,
    ERROR_CASES,
    GOOD,
    OUT_AT,
    SwappedStoreBytes,
    check_store_run,
    lut_tables,
    random_program,
    setup,
)
from verdigris.arch.isa import Deps, Store
from verdigris.sim.isasim import IsaError
from verdigris.verify.store_unit import run_store_bench

pytestmark = pytest.mark.verilator


def _bench(program, memory, acc, req, rtl_build_root, tmp_path, **options):
    """`program` on the Verilated store unit with the lookup tables of `memory`."""
    return run_store_bench(
        CONFIG,
        program,
        acc,
        req,
        memory,
        lut=lut_tables(memory),
        build_root=rtl_build_root,
        results_dir=tmp_path,
        **options,
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_verilated_store_unit_matches_the_instruction_simulator(seed, rtl_build_root, tmp_path):
    memory, acc, req = setup(100 + seed)
    program = random_program(random.Random(100 + seed), 30)
    run = _bench(program, memory, acc, req, rtl_build_root, tmp_path)
    check_store_run(program, memory, run)


def test_verilated_store_unit_looks_up(rtl_build_root, tmp_path):
    """STOREs through both tables (the random programs have some too): partial, unaligned,
    strided rows, back to back with plain and raw ones."""
    memory, acc, req = setup(7)
    program = [
        Store(Deps(push_prev=True), False, 0, 3, DIM, OUT_AT, DIM, 0, 1),
        Store(Deps(), False, 3, 2, DIM - 1, OUT_AT + 17, 22, 1, 2),
        Store(Deps(), False, 5, 4, 3, OUT_AT + 63, 1, 0, 1),
        Store(Deps(), False, 9, 2, DIM, OUT_AT + 201, 0, 0, 0),
        Store(Deps(), False, 10, 6, 1, OUT_AT + 150, 1, 1, 2),
        Store(Deps(push_prev=True), True, 13, 1, DIM, OUT_AT + 230, 0, 1, 0),
        Store(Deps(), False, 14, 2, DIM, OUT_AT + 300, 4, 0, 2),
    ]
    run = _bench(program, memory, acc, req, rtl_build_root, tmp_path)
    check_store_run(program, memory, run)


@pytest.mark.parametrize(
    ("bad", "bad_shift"),
    [
        (ERROR_CASES[0], False),  # acc rows past the end: at start
        (Store(Deps(), False, 0, 2, DIM, OUT_AT, DIM, 1), True),  # shift 0: while it runs
        (Store(Deps(), False, 0, 2, DIM, OUT_AT, DIM, 1, 1), True),  # the same, with a lookup
        (ERROR_CASES[5], False),  # raw with a lookup
        (ERROR_CASES[6], False),  # a table past lut_rows
    ],
)
def test_verilated_store_unit_stops_on_an_error(bad, bad_shift, rtl_build_root, tmp_path):
    memory, acc, req = setup(4, bad_shift=bad_shift)
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit") as raised:
        run_store_bench(
            CONFIG,
            [GOOD, bad, GOOD],
            acc,
            req,
            memory,
            build_root=rtl_build_root,
            results_dir=tmp_path,
        )
    assert raised.value.index == 1


def test_bench_catches_a_wrong_store_unit(rtl_build_root, tmp_path):
    memory, acc, req = setup(3)
    program = random_program(random.Random(3), 10)
    run = _bench(program, memory, acc, req, rtl_build_root, tmp_path, dut=SwappedStoreBytes(CONFIG))
    with pytest.raises(AssertionError, match="memory"):
        check_store_run(program, memory, run)
