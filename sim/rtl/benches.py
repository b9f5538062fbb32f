"""Entry points that build a block's Verilog once and run its cocotb bench."""

from __future__ import annotations

from pathlib import Path

from verdigris.hw.pe import ProcessingElement
from verdigris.sim.rtl.verilator import build_verilator, generate_verilog, run_cocotb

__all__ = ["run_pe_bench"]


def run_pe_bench(
    pe: ProcessingElement | None = None,
    *,
    vectors: int = 2000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run `pe_bench` on the Verilated `pe` (default: int8 x int8 -> int32); return
    (tests run, tests failed)."""
    pe = pe or ProcessingElement()
    operand_width, acc_width = pe.operand_width, pe.acc_width
    top = f"{type(pe).__name__.lower()}_{operand_width}x{operand_width}_{acc_width}"
    build = build_verilator(generate_verilog(pe, top), top, build_root=build_root)
    env = {
        "PE_OPERAND_WIDTH": str(operand_width),
        "PE_ACC_WIDTH": str(acc_width),
        "PE_VECTORS": str(vectors),
        "PE_SEED": str(seed),
    }
    return run_cocotb(build, "verdigris.sim.rtl.pe_bench", env=env, results_dir=results_dir)
