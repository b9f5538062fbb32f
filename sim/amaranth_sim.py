"""Runs single hardware blocks in Amaranth's own simulator (fast, no C++ build)."""

from __future__ import annotations

from amaranth.sim import Simulator

from verdigris.hw.pe import ProcessingElement
from verdigris.sim.blockmodels import PEInputs, PEOutputs

__all__ = ["simulate_pe"]


def simulate_pe(
    inputs: list[PEInputs], *, operand_width: int = 8, acc_width: int = 32
) -> list[PEOutputs]:
    """Apply `inputs` to a ProcessingElement one per clock; return its outputs after each edge."""
    dut = ProcessingElement(operand_width=operand_width, acc_width=acc_width)
    outputs: list[PEOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            ctx.set(dut.a_in, step.a_in)
            ctx.set(dut.psum_in, step.psum_in)
            ctx.set(dut.w_in, step.w_in)
            ctx.set(dut.w_load, step.w_load)
            await ctx.tick()
            outputs.append(
                PEOutputs(
                    a_out=ctx.get(dut.a_out),
                    psum_out=ctx.get(dut.psum_out),
                    w_out=ctx.get(dut.w_out),
                    a_zero=bool(ctx.get(dut.a_zero)),
                )
            )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs
