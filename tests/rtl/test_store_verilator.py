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
    random_program,
    setup,
)
from verdigris.arch.isa import Deps, Store
from verdigris.sim.isasim import IsaError
from verdigris.verify.store_unit import run_store_bench

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("seed", [0, 1])
def test_verilated_store_unit_matches_the_instruction_simulator(seed, rtl_build_root, tmp_path):
    memory, acc, req = setup(100 + seed)
    program = random_program(random.Random(100 + seed), 30)
    run = run_store_bench(
        CONFIG, program, acc, req, memory, build_root=rtl_build_root, results_dir=tmp_path
    )
    check_store_run(program, memory, run)


@pytest.mark.parametrize(
    ("bad", "bad_shift"),
    [
        (ERROR_CASES[0], False),  # acc rows past the end: at start
        (Store(Deps(), False, 0, 2, DIM, OUT_AT, DIM, 1), True),  # shift 0: while it runs
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
    run = run_store_bench(
        CONFIG,
        program,
        acc,
        req,
        memory,
        dut=SwappedStoreBytes(CONFIG),
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    with pytest.raises(AssertionError, match="memory"):
        check_store_run(program, memory, run)
