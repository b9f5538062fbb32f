"""The verification kit: what proves the executors and the hardware against the contract.

One module per hardware block, named as its hw/ module, each holding the block's model or
driver, its stimulus, its runner in Amaranth's simulator (`simulate_*`), its runner on
Verilator (`run_*_bench`) and the cocotb test that runner starts (cocotb imports the module
by name inside the simulator):

- `pe`: ProcessingElement against `PEModel`;
- `array`: SystolicArray against `ArrayModel`, with GEMM-sequence stimulus;
- `requant`: Requantizer against `RequantModel`;
- `load_unit`, `compute_unit`, `store_unit`: `*UnitDriver`, which serves the unit's
  memories, checks the port contract and returns what the unit did;
- `controller`: `ControllerDriver`, which plays the three units by the cycle model.

`protocol` holds what the drivers share (the cycle protocol, `UnitProtocolError`, the
Amaranth and cocotb loops); `reference` is the ONNX reference oracle. The whole-core RTL
executor and its cocotb bench are not here: they are an executor (`verdigris.sim.rtl`).
"""
