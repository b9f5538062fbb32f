"""The compute unit's generated Verilog under Verilator, driven by cocotb with the same
driver and checks as the Amaranth-simulator tests."""

import random

import pytest

from tests.support.compute_unit import (
    CONFIG,
    ERROR_CASES,
    SwappedLanes,
    check_compute_run,
    random_buffers,
    random_program,
    scale_program,
)
from verdigris.arch.isa import Deps, Gemm, Nop, Unit
from verdigris.sim.isasim import IsaError
from verdigris.verify.compute_unit import run_compute_bench

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("seed", [0, 1])
def test_verilated_compute_unit_matches_the_models(seed, rtl_build_root, tmp_path):
    program = random_program(random.Random(100 + seed), 40)
    inp, wgt, acc = random_buffers(100 + seed)
    run = run_compute_bench(
        CONFIG, program, inp, wgt, acc, build_root=rtl_build_root, results_dir=tmp_path
    )
    check_compute_run(program, inp, wgt, acc, run)


def test_verilated_scale_registers(rtl_build_root, tmp_path):
    program, (inp, wgt, acc) = scale_program()
    run = run_compute_bench(
        CONFIG, program, inp, wgt, acc, build_root=rtl_build_root, results_dir=tmp_path
    )
    check_compute_run(program, inp, wgt, acc, run)


@pytest.mark.parametrize("bad", [ERROR_CASES[0], ERROR_CASES[3]], ids=["inp_rows", "scale_rows"])
def test_verilated_compute_unit_stops_on_an_error(bad, rtl_build_root, tmp_path):
    program = [
        Gemm(Deps(push_next=True), True, False, 0, 0, 0, 4),
        bad,
        Nop(Deps(), Unit.COMPUTE),
    ]
    inp, wgt, acc = random_buffers(2)
    with pytest.raises(IsaError, match=r"^instruction 1: the compute unit") as raised:
        run_compute_bench(
            CONFIG, program, inp, wgt, acc, build_root=rtl_build_root, results_dir=tmp_path
        )
    assert raised.value.index == 1


def test_bench_catches_a_wrong_compute_unit(rtl_build_root, tmp_path):
    program = random_program(random.Random(3), 14)
    inp, wgt, acc = random_buffers(3)
    run = run_compute_bench(
        CONFIG,
        program,
        inp,
        wgt,
        acc,
        dut=SwappedLanes(CONFIG),
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    with pytest.raises(AssertionError, match="acc"):
        check_compute_run(program, inp, wgt, acc, run)
