"""The LOAD unit's generated Verilog under Verilator, driven by cocotb with the same driver
and checks as the Amaranth-simulator tests."""

import pytest

from tests.support.load_unit import (
    SwappedBytes,
    check_results,
    random_memory,
    random_program,
    small_config,
)
from verdigris.arch.isa import Buffer, Deps, Load
from verdigris.sim.isasim import IsaError
from verdigris.verify.load_unit import run_load_bench

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize(("dim", "dma_bytes"), [(4, 4), (8, 8)])
def test_verilated_load_unit_matches_the_models(dim, dma_bytes, rtl_build_root, tmp_path):
    config = small_config(dim, dma_bytes)
    memory = random_memory(config, dim)
    program = random_program(config, seed=dim * dma_bytes, count=120)
    buffers, timeline = run_load_bench(
        config, program, memory, build_root=rtl_build_root, results_dir=tmp_path
    )
    check_results(config, program, memory, buffers, timeline)


def test_verilated_load_unit_stops_on_an_error(rtl_build_root, tmp_path):
    config = small_config(4, 4)
    program = [
        Load(Deps(push_next=True), Buffer.INP, False, 0, 2, 3, 1, 5),
        Load(Deps(), Buffer.INP, False, 0, 3, 4, 0, 511),  # past the end of main memory
    ]
    with pytest.raises(IsaError, match=r"^instruction 1: the load unit") as raised:
        run_load_bench(
            config,
            program,
            random_memory(config, 2),
            build_root=rtl_build_root,
            results_dir=tmp_path,
        )
    assert raised.value.index == 1


def test_bench_catches_a_wrong_load_unit(rtl_build_root, tmp_path):
    config = small_config(4, 4)
    memory = random_memory(config, 9)
    program = random_program(config, seed=3, count=12)
    buffers, timeline = run_load_bench(
        config,
        program,
        memory,
        dut=SwappedBytes(config),
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    with pytest.raises(AssertionError, match="INP"):
        check_results(config, program, memory, buffers, timeline)
