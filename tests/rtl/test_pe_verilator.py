"""The processing element's generated Verilog under Verilator, driven by cocotb."""

import pytest

from tests.support.pe import SignFlippedPE
from verdigris.verify.pe import run_pe_bench

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize(("operand_width", "acc_width"), [(8, 32), (4, 16)])
def test_verilated_pe_matches_model(operand_width, acc_width, rtl_build_root, tmp_path):
    from verdigris.hw.pe import ProcessingElement

    pe = ProcessingElement(operand_width=operand_width, acc_width=acc_width)
    run, failed = run_pe_bench(
        pe, vectors=3000, seed=operand_width, build_root=rtl_build_root, results_dir=tmp_path
    )
    assert (run, failed) == (1, 0)


def test_bench_catches_a_wrong_pe(rtl_build_root, tmp_path):
    run, failed = run_pe_bench(
        SignFlippedPE(), vectors=50, build_root=rtl_build_root, results_dir=tmp_path
    )
    assert (run, failed) == (1, 1)
