"""A MobileNetV3-style block with all its element-wise functions and its squeeze-excitation
gate on the device (lookup tables on the store path, VECTOR scale and lane-scaled writes)
runs on the RTL core bit for bit and cycle for cycle against the instruction simulator,
layer by layer, and bit for bit against golden, which runs the model's host ops."""

import numpy as np
import pytest

from tests.support.rtl_results import assert_like_isasim
from tests.support.tiny_models import calibration_inputs, mobile_block
from verdigris.arch.config import load_config
from verdigris.arch.isa import Store, Vector, VectorOp
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_device
from verdigris.sim.host import quantize_input, run_host_compute
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import run_fast

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_lookups_and_gates_on_the_rtl(preset, rtl_build_root):
    graph = import_model(mobile_block(), name="mobile_block")
    program = compile_graph(graph, load_config(preset), host_runtime=run_host_compute)
    assert not program.host_calls
    instructions = program.instructions
    assert any(isinstance(i, Store) and i.lut for i in instructions)
    assert any(isinstance(i, Vector) and i.op == VectorOp.SCALE for i in instructions)
    (graph_input,) = graph.inputs
    jobs, cycles = [], []
    for seed in range(2):
        image = calibration_inputs(graph_input.tensor.shape, 1, seed=seed)
        inputs = {graph_input.tensor.name: quantize_input(graph_input, image)}
        outputs, activity = run_program(program, inputs)
        golden = run_device(graph, inputs)
        for name, value in outputs.items():
            np.testing.assert_array_equal(value, golden[name])
        jobs.append((program, inputs))
        cycles.append(activity.cycles)
    results = run_fast(jobs, expected_cycles=cycles, build_root=rtl_build_root)
    for (_, inputs), result in zip(jobs, results, strict=True):
        assert_like_isasim(program, inputs, result)
