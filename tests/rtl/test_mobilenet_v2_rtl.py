"""MobileNetV2 at 224x224 (3.5 M weights, 300 M MACs) on the RTL core, bit for bit and cycle
for cycle against the instruction simulator, layer by layer, and bit for bit against golden.

The config is `xl` (256 MiB of main memory, 2**22 instructions): main memory and the code
memory are outside the core, in the C++ harness, so their size does not change the
Verilog. MobileNetV2 uses 6.9 MB of constants and activations and 142,434 instructions."""

import numpy as np
import pytest

from tests.support.mobilenet_v2 import SHAPE, mobilenet_v2
from tests.support.tiny_models import calibration_inputs, quantize
from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_device
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import run_fast

pytestmark = [pytest.mark.verilator, pytest.mark.slow]  # 85 s: `make test-all`

CONFIG = load_config("xl")


def test_mobilenet_v2_at_224_on_the_rtl(rtl_build_root):
    model = quantize(mobilenet_v2(), samples=2)
    graph = import_model(model, name="mobilenet_v2")
    program = compile_graph(graph, CONFIG)
    assert not program.host_calls  # every op on the device
    image = calibration_inputs(SHAPE, 1, seed=3)
    (graph_input,) = graph.inputs
    inputs = {graph_input.tensor.name: quantize_input(graph_input, image)}
    outputs, activity = run_program(program, inputs)
    golden = run_device(graph, inputs)
    for name, value in outputs.items():
        np.testing.assert_array_equal(value, golden[name])
    [result] = run_fast(
        [(program, inputs)], expected_cycles=[activity.cycles], build_root=rtl_build_root
    )
    assert not result.error
    for name, value in outputs.items():
        np.testing.assert_array_equal(result.outputs[name], value)
    assert [layer.name for layer in result.activity.layers] == [
        layer.name for layer in program.layers
    ]
    for mine, theirs in zip(activity.layers, result.activity.layers, strict=True):
        assert theirs == mine, mine.name
    assert result.activity == activity
