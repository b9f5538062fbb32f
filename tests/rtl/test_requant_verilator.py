"""The requantizer's generated Verilog under Verilator, driven by cocotb."""

import pytest

from verdigris.hw.requant import Requantizer
from verdigris.verify.requant import run_requant_bench

pytestmark = pytest.mark.verilator


def test_verilated_requantizer_matches_model(rtl_build_root, tmp_path):
    # 4 lanes; random rows with gaps, raw rows, exact ties, wrap-around and every shift.
    run, failed = run_requant_bench(
        Requantizer(4), cycles=3000, seed=4, build_root=rtl_build_root, results_dir=tmp_path
    )
    assert (run, failed) == (1, 0)


def test_bench_catches_round_half_up(monkeypatch, rtl_build_root, tmp_path):
    monkeypatch.setattr("verdigris.hw.requant._round_up", lambda half, _sticky, _floor_odd: half)
    run, failed = run_requant_bench(
        Requantizer(4), cycles=300, build_root=rtl_build_root, results_dir=tmp_path
    )
    assert (run, failed) == (1, 1)
