"""cocotb bench: the Verilated ControllerWithImem (a Controller and its instruction memory)
driven cycle by cycle by `ControllerDriver`, which loads the program and plays the units.

The same driver runs the block in Amaranth's simulator (`simulate_controller`), so both
executors see the same stimulus and make the same checks. Parameters come from the
environment (cocotb runs this module inside the simulator): UNIT_CASE, a JSON file with the
driver's arguments (`ControllerDriver.to_case`); UNIT_RESULT, where the bench writes the
driver's snapshot, or the protocol violation that failed it.
"""

import cocotb

from verdigris.sim.drivers import ControllerDriver, run_case_with_cocotb


@cocotb.test()
async def controller_runs_the_case(dut):
    await run_case_with_cocotb(dut, ControllerDriver)
