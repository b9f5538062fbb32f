"""The controller's generated Verilog (with its instruction memory) under Verilator, driven
by cocotb with the same driver and checks as the Amaranth-simulator tests."""

import pytest

from tests.support.controller import (
    CONFIG,
    HAZARDS,
    START,
    ShallowQueues,
    check_controller_run,
    random_program,
)
from verdigris.arch.isa import Buffer, Deps, Finish, Load, Nop, Unit
from verdigris.verify.controller import run_controller_bench

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("seed", [0, 5, 6, 11])
def test_verilated_controller_matches_the_instruction_simulator(seed, rtl_build_root, tmp_path):
    program = random_program(seed)
    run = run_controller_bench(CONFIG, program, build_root=rtl_build_root, results_dir=tmp_path)
    check_controller_run(program, run)


def test_verilated_controller_honours_the_hazards(rtl_build_root, tmp_path):
    run = run_controller_bench(CONFIG, HAZARDS, build_root=rtl_build_root, results_dir=tmp_path)
    check_controller_run(HAZARDS, run)


@pytest.mark.parametrize(
    "bad",
    [
        Nop(Deps(), 3),  # no such unit: fetch stops
        Load(Deps(), Buffer.INP, True, CONFIG.inp_rows - 1, 2, 0),  # the load unit's error
    ],
)
def test_verilated_controller_stops_on_an_error(bad, rtl_build_root, tmp_path):
    program = [*START, bad, Nop(Deps(), Unit.STORE), Finish(Deps())]
    run = run_controller_bench(CONFIG, program, build_root=rtl_build_root, results_dir=tmp_path)
    assert run.error


def test_bench_catches_a_wrong_controller(rtl_build_root, tmp_path):
    program = random_program(5)
    run = run_controller_bench(
        CONFIG,
        program,
        controller=ShallowQueues(CONFIG),
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    with pytest.raises(AssertionError, match=r"^starts"):
        check_controller_run(program, run)
