"""cocotb bench: the Verilated ProcessingElement against `PEModel`, cycle by cycle.

Parameters come from the environment (cocotb runs this module inside the simulator):
PE_OPERAND_WIDTH, PE_ACC_WIDTH, PE_VECTORS (number of random input cycles), PE_SEED.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from verdigris.sim.blockmodels import PEModel, random_pe_inputs


@cocotb.test()
async def pe_matches_model(dut):
    operand_width = int(os.environ.get("PE_OPERAND_WIDTH", "8"))
    acc_width = int(os.environ.get("PE_ACC_WIDTH", "32"))
    vectors = int(os.environ.get("PE_VECTORS", "2000"))
    seed = int(os.environ.get("PE_SEED", "0"))

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in (dut.a_in, dut.psum_in, dut.w_in, dut.w_load):
        port.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    model = PEModel(operand_width=operand_width, acc_width=acc_width)
    stimulus = random_pe_inputs(seed, vectors, operand_width=operand_width, acc_width=acc_width)
    for cycle, inputs in enumerate(stimulus):
        dut.a_in.value = inputs.a_in
        dut.psum_in.value = inputs.psum_in
        dut.w_in.value = inputs.w_in
        dut.w_load.value = int(inputs.w_load)
        await RisingEdge(dut.clk)
        expected = model.step(inputs)
        await ReadOnly()
        got = (
            dut.a_out.value.to_signed(),
            dut.psum_out.value.to_signed(),
            dut.w_out.value.to_signed(),
            bool(dut.a_zero.value),
        )
        want = (expected.a_out, expected.psum_out, expected.w_out, expected.a_zero)
        assert got == want, f"cycle {cycle} (seed {seed}), inputs {inputs}: got {got}, want {want}"
        await FallingEdge(dut.clk)
    dut._log.info("%d random cycles matched the model (seed %d)", vectors, seed)
