"""cocotb bench: the Verilated LoadUnit driven cycle by cycle by `LoadUnitDriver`.

The same driver runs the unit in Amaranth's simulator (`simulate_load_unit`), so both
executors see the same stimulus and the same port-contract checks. Parameters come from the
environment (cocotb runs this module inside the simulator): LOAD_CASE, a JSON file with the
config (`AccelConfig.to_dict`), the instruction words (hex) and main memory (hex); LOAD_RESULT,
where the bench writes the driver's snapshot, or the protocol violation that failed it.
"""

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import decode
from verdigris.sim.amaranth_sim import LoadUnitDriver, UnitProtocolError


@cocotb.test()
async def load_unit_runs_the_case(dut):
    case = json.loads(Path(os.environ["LOAD_CASE"]).read_text())
    result = Path(os.environ["LOAD_RESULT"])
    config = AccelConfig.from_dict(case["config"])
    instructions = [decode(int(word, 16)) for word in case["instructions"]]
    memory = np.frombuffer(bytes.fromhex(case["memory"]), np.uint8)
    driver = LoadUnitDriver(config, instructions, memory)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in (dut.start, dut.instr, dut.mem_data):
        port.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    def read(name):
        return int(getattr(dut, name).value)

    try:
        # Registered outputs are settled at the falling edge; the inputs applied there
        # reach the combinational outputs by ReadOnly, before the next rising edge.
        while not driver.done:
            mem_data, start, instr = driver.inputs(read)
            dut.mem_data.value = mem_data
            dut.start.value = start
            dut.instr.value = instr
            await ReadOnly()
            driver.outputs(read)
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
    except UnitProtocolError as error:
        result.write_text(json.dumps({"protocol_error": str(error)}))
        raise
    result.write_text(json.dumps(driver.snapshot()))
    dut._log.info("%d instructions in %d cycles", len(instructions), driver.cycle)
