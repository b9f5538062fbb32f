"""Cycle-by-cycle drivers for the controller and the load, compute and store units, independent
of the simulator that runs them: Amaranth's (`verdigris.sim.amaranth_sim`) or Verilator under
cocotb (`verdigris.sim.rtl.load_bench`, `compute_bench`, `store_bench`, `controller_bench`), so both
executors see the same stimulus and make the same checks.

A driver plays everything around its block: the buffers and main memory a unit reads and
writes, or the three units the controller starts. It checks the port contract of
docs/microarchitecture.md ("The unit interface") as it goes and raises UnitProtocolError
(naming the cycle) when it is broken; it records what the block did, and `result()` returns
it for the tests to compare with the instruction simulator.

Each cycle an executor, with `read(port) -> int` giving a port's bits as an unsigned int:

1. applies `inputs(read)` (port -> value), which reads only registered outputs;
2. lets the combinational logic settle and applies `late_inputs(read)`: the inputs that
   answer this cycle's combinational outputs (`start` after the compute unit's `ready`);
3. calls `outputs(read)` to record this cycle's outputs, with every input applied;

then the clock ticks. It stops when `done`. `INPUTS` lists every input port (zero during
reset). `to_case()` and `from_case()` carry a driver's arguments across processes as JSON,
`snapshot()` and `restore()` its outcome.
"""

from verdigris.sim.drivers.compute import ComputeRun, ComputeUnitDriver
from verdigris.sim.drivers.controller import ControllerDriver, ControllerRun
from verdigris.sim.drivers.load import LoadUnitDriver
from verdigris.sim.drivers.protocol import UnitDriver, UnitProtocolError, run_case_with_cocotb
from verdigris.sim.drivers.store import StoreRun, StoreUnitDriver

__all__ = [
    "ComputeRun",
    "ComputeUnitDriver",
    "ControllerDriver",
    "ControllerRun",
    "LoadUnitDriver",
    "StoreRun",
    "StoreUnitDriver",
    "UnitDriver",
    "UnitProtocolError",
    "run_case_with_cocotb",
]
