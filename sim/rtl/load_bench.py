"""cocotb bench: the Verilated LoadUnit driven cycle by cycle by `LoadUnitDriver`.

The same driver runs the unit in Amaranth's simulator (`simulate_load_unit`), so both
executors see the same stimulus and make the same checks. Parameters come from the
environment (cocotb runs this module inside the simulator): UNIT_CASE, a JSON file with the
driver's arguments (`LoadUnitDriver.to_case`); UNIT_RESULT, where the bench writes the
driver's snapshot, or the protocol violation that failed it.
"""

import cocotb

from verdigris.sim.drivers import LoadUnitDriver, run_case_with_cocotb


@cocotb.test()
async def load_unit_runs_the_case(dut):
    await run_case_with_cocotb(dut, LoadUnitDriver)
