"""The systolic array's generated Verilog under Verilator, driven by cocotb."""

import pytest

from tests.support.array import MisalignedColumnArray
from verdigris.hw.array import SystolicArray
from verdigris.verify.array import run_array_bench

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("dim", [4, 8])
def test_verilated_array_matches_model(dim, rtl_build_root, tmp_path):
    run, failed = run_array_bench(
        SystolicArray(dim),
        gemms=40,
        cycles=1500,
        seed=dim,
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    assert (run, failed) == (2, 0)


def test_bench_catches_a_wrong_array(rtl_build_root, tmp_path):
    run, failed = run_array_bench(
        MisalignedColumnArray(2),
        gemms=8,
        cycles=100,
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    assert (run, failed) == (2, 2)
