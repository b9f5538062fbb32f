"""Each supported op, in a tiny graph built in code, quantized by onnxruntime in every
format, imported, and run on the golden model against onnxruntime (graph optimizations off,
where it matches the ONNX reference exactly on QDQ models; see toolchain notes)."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tests.support.tiny_models import BUILDERS, FORMATS, calibration_inputs, quantize
from verdigris.compiler import ir
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_graph

# The IR ops each tiny graph must become: device ops, and HostOp for what the host runs (the
# float input's quantization and the output's dequantization are host steps).
EXPECTED_OPS = {
    "conv": ["Conv"],
    "conv_relu": ["Conv"],
    "conv_relu6": ["Conv"],
    "conv_stride2_pad0": ["Conv"],
    "conv_dilation2": ["Conv"],
    "conv_groups2": ["Conv"],
    "conv_depthwise": ["Conv"],
    "conv_pointwise_nobias": ["Conv"],
    "gemm": ["MatMul"],
    "gemm_relu": ["MatMul"],
    "gemm_no_transpose": ["MatMul"],
    "matmul": ["MatMul"],
    "maxpool": ["Conv", "MaxPool"],
    "maxpool_3x3_s1_pad1": ["Conv", "MaxPool"],
    "maxpool_ceil": ["Conv", "MaxPool"],
    "avgpool": ["Conv", "AvgPool"],
    "avgpool_3x3_pad1": ["Conv", "AvgPool"],
    "global_avgpool": ["Conv", "AvgPool"],
    "add": ["Conv", "Add"],
    "concat": ["Conv", "Conv", "Concat"],
    "flatten_gemm": ["Conv", "Reshape", "MatMul"],
    "reshape_gemm": ["Conv", "Reshape", "MatMul"],
    "softmax_head": ["MatMul", "HostOp"],  # a quantized Softmax
}

# onnxruntime averages dequantized floats in float32, so where the exact average is a
# rounding tie (a 2x2 average is one a quarter of the time) float noise picks the side.
# Our integer requantizer rounds ties to even; both are within one LSB.
TIE_PRONE = {("avgpool", "qdq-s8-perchannel"), ("avgpool", "qdq-u8")}


def _onnxruntime(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options)
    return session.run(None, {"x": x})[0]


def test_every_builder_has_an_expected_structure():
    assert set(EXPECTED_OPS) == set(BUILDERS)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", BUILDERS)
def test_op_matches_onnxruntime(name, fmt):
    model = quantize(BUILDERS[name](), **FORMATS[fmt])
    graph = import_model(model, name=name)
    # Requantize nodes appear where quantizers give Concat inputs different scales.
    kinds = [node.kind for node in graph.nodes if node.kind != "Requantize"]
    assert kinds == EXPECTED_OPS[name]

    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = calibration_inputs(shape, 48, seed=7)
    ours = run_graph(graph, {"x": x})["y"]
    reference = _onnxruntime(model, x)
    assert ours.shape == reference.shape and ours.dtype == reference.dtype

    output = graph.outputs[0]
    lsb = next((s.scale for s in reversed(output.steps) if isinstance(s, ir.Dequantize)), 1.0)
    error = np.abs(ours.astype(np.float64) - reference.astype(np.float64)) / lsb
    assert error.max() <= 1.0 + 1e-3
    identical = np.mean(error < 1e-3)
    assert identical >= (0.85 if (name, fmt) in TIE_PRONE else 1.0), identical


def test_fused_relu_narrows_the_clamp():
    graph = import_model(quantize(BUILDERS["conv_relu6"](), **FORMATS["qdq-s8-perchannel"]))
    conv = graph.nodes[0]
    out = graph.tensors[conv.output]
    assert conv.requant.qmin >= out.zero_point  # ReLU: nothing below real zero
    assert conv.requant.qmax <= round(6 / out.scale) + out.zero_point  # ReLU6


def test_per_channel_weights_give_per_channel_requant():
    graph = import_model(quantize(BUILDERS["conv"](), **FORMATS["qdq-s8-perchannel"]))
    assert graph.nodes[0].requant.multiplier.shape == (6,)
    graph = import_model(quantize(BUILDERS["conv"](), **FORMATS["qdq-u8"]))
    assert graph.nodes[0].requant.multiplier.shape == (1,)


def test_uint8_activations_become_int8_with_shifted_zero_point():
    model = quantize(BUILDERS["conv"](), **FORMATS["qdq-u8"])
    graph = import_model(model)
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    x_zero = int(initializers["x_zero_point"])
    assert graph.inputs[0].tensor.dtype == ir.INT8
    assert graph.inputs[0].tensor.zero_point == x_zero - 128


def test_concat_rescales_inputs_with_other_scales():
    graph = import_model(quantize(BUILDERS["concat"](), **FORMATS["qop-u8"]))
    concat = graph.nodes[-1]
    out = graph.tensors[concat.output]
    for name in concat.inputs:
        part = graph.tensors[name]
        assert (part.scale, part.zero_point) == (out.scale, out.zero_point)


def test_fixed_batch_of_one_runs_samples_in_turn():
    model = quantize(BUILDERS["conv_relu"](), **FORMATS["qdq-s8-perchannel"])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # fix the batch at 1
    graph = import_model(model)
    assert not graph.dynamic_batch
    x = calibration_inputs([1, 4, 7, 7], 5, seed=3)
    batch = run_graph(graph, {"x": x})["y"]
    one_by_one = np.concatenate([run_graph(graph, {"x": x[i : i + 1]})["y"] for i in range(5)])
    assert batch.shape[0] == 5
    np.testing.assert_array_equal(batch, one_by_one)
