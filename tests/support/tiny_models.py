"""Tiny float ONNX graphs built in code, one per op, and their onnxruntime quantizations.

Each builder returns a float model with input "x" (N, C, H, W) or (N, K) and output "y".
`quantize` runs onnxruntime's static quantizer on random calibration data, the same way a
user's model is quantized, so the tests see the patterns real QDQ/QOperator models contain.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def _model(nodes, x_shape, initializers, extra_inputs=(), opset=OPSET) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape[1:]])]
    inputs += [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape[1:]])
        for name, shape in extra_inputs
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    # Give "y" its inferred type and shape, as an exporter would.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    inferred = onnx.shape_inference.infer_shapes(probe)
    y = next(v for v in inferred.graph.value_info if v.name == "y")
    model.graph.output[0].CopyFrom(y)
    onnx.checker.check_model(model, full_check=True)
    return model


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def conv(
    *,
    channels=4,
    out_channels=6,
    size=7,
    kernel=3,
    stride=1,
    pad=1,
    dilation=1,
    groups=1,
    bias=True,
    activation: str | None = None,
    seed=0,
) -> onnx.ModelProto:
    rng = _rng(seed)
    w = rng.normal(0, 0.4, (out_channels, channels // groups, kernel, kernel)).astype(np.float32)
    inits = {"w": w}
    inputs = ["x", "w"]
    if bias:
        inits["b"] = rng.normal(0, 0.3, out_channels).astype(np.float32)
        inputs.append("b")
    conv_out = "c" if activation else "y"
    nodes = [
        helper.make_node(
            "Conv",
            inputs,
            [conv_out],
            name="conv",
            strides=[stride, stride],
            pads=[pad] * 4,
            dilations=[dilation, dilation],
            group=groups,
        )
    ]
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["c"], ["y"], name="relu"))
    elif activation == "relu6":
        inits["lo"], inits["hi"] = np.array(0, np.float32), np.array(6, np.float32)
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="relu6"))
    return _model(nodes, (1, channels, size, size), inits)


def gemm(*, k=12, n=5, trans_b=True, relu=False, seed=0) -> onnx.ModelProto:
    rng = _rng(seed)
    w = rng.normal(0, 0.4, (n, k) if trans_b else (k, n)).astype(np.float32)
    b = rng.normal(0, 0.3, n).astype(np.float32)
    out = "g" if relu else "y"
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], [out], name="gemm", transB=int(trans_b))]
    if relu:
        nodes.append(helper.make_node("Relu", ["g"], ["y"], name="relu"))
    return _model(nodes, (1, k), {"w": w, "b": b})


def matmul(*, k=12, n=5, seed=0) -> onnx.ModelProto:
    w = _rng(seed).normal(0, 0.4, (k, n)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")]
    return _model(nodes, (1, k), {"w": w})


def _conv_then(op_nodes, inits=None, channels=4, size=8) -> onnx.ModelProto:
    """A 1x1 conv feeding `op_nodes` (reading "c", writing "y"), so that the op under test
    sees a quantized activation as real models do."""
    w = _rng(1).normal(0, 0.5, (channels, channels, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), *op_nodes]
    return _model(nodes, (1, channels, size, size), {"w": w, **(inits or {})})


def maxpool(*, kernel=2, stride=2, pad=0, ceil_mode=0) -> onnx.ModelProto:
    node = helper.make_node(
        "MaxPool",
        ["c"],
        ["y"],
        name="maxpool",
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
        ceil_mode=ceil_mode,
    )
    return _conv_then([node], size=7 if ceil_mode else 8)


def avgpool(*, kernel=2, stride=2, pad=0) -> onnx.ModelProto:
    node = helper.make_node(
        "AveragePool",
        ["c"],
        ["y"],
        name="avgpool",
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
        count_include_pad=1,
    )
    return _conv_then([node])


def global_avgpool() -> onnx.ModelProto:
    return _conv_then([helper.make_node("GlobalAveragePool", ["c"], ["y"], name="gap")])


def add() -> onnx.ModelProto:
    """Residual add: x + relu(conv(x)), with different scales on the two inputs."""
    w = _rng(2).normal(0, 0.5, (4, 4, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["x", "r"], ["y"], name="add"),
    ]
    return _model(nodes, (1, 4, 6, 6), {"w": w})


def concat() -> onnx.ModelProto:
    w1 = _rng(3).normal(0, 0.5, (3, 4, 1, 1)).astype(np.float32)
    w2 = _rng(4).normal(0, 2.0, (5, 4, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv_a"),
        helper.make_node("Conv", ["x", "w2"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["a", "b"], ["y"], name="concat", axis=1),
    ]
    return _model(nodes, (1, 4, 5, 5), {"w1": w1, "w2": w2})


def flatten_gemm(*, use_reshape=False) -> onnx.ModelProto:
    w = _rng(5).normal(0, 0.3, (7, 4 * 3 * 3)).astype(np.float32)
    conv_w = _rng(6).normal(0, 0.5, (4, 2, 3, 3)).astype(np.float32)
    inits = {"cw": conv_w, "w": w}
    if use_reshape:
        inits["shape"] = np.array([-1, 36], np.int64)
        flatten = helper.make_node("Reshape", ["c", "shape"], ["f"], name="reshape")
    else:
        flatten = helper.make_node("Flatten", ["c"], ["f"], name="flatten", axis=1)
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        flatten,
        helper.make_node("Gemm", ["f", "w"], ["y"], name="gemm", transB=1),
    ]
    return _model(nodes, (1, 2, 3, 3), inits)


def softmax_head() -> onnx.ModelProto:
    w = _rng(7).normal(0, 0.5, (10, 16)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["l"], name="gemm", transB=1),
        helper.make_node("Softmax", ["l"], ["y"], name="softmax", axis=1),
    ]
    return _model(nodes, (1, 16), {"w": w})


def host_sandwich() -> onnx.ModelProto:
    """conv -> softmax over the channels -> conv -> LRN -> conv, quantized (QDQ, int8): the
    device cannot run Softmax or LRN (neither is a function of one value), so it compiles
    into three device segments with two host calls between."""
    rng = _rng(3)
    weights = {f"w{i}": rng.normal(0, 0.5, (4, 4, 1, 1)).astype(np.float32) for i in range(3)}
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], name="conv0"),
        helper.make_node("Softmax", ["a"], ["b"], name="gate", axis=1),
        helper.make_node("Conv", ["b", "w1"], ["c"], name="conv1"),
        helper.make_node("LRN", ["c"], ["d"], name="norm", size=3),
        helper.make_node("Conv", ["d", "w2"], ["y"], name="conv2"),
    ]
    return quantize(_model(nodes, (1, 4, 5, 5), weights))


def mobile_block() -> onnx.ModelProto:
    """A MobileNetV3-style block, quantized (QDQ, int8): conv -> HardSwish -> depthwise conv
    -> SiLU (x * sigmoid(x)) -> squeeze-excitation (global average pool, 1x1 conv, ReLU, 1x1
    conv, HardSigmoid, x * gate) -> 1x1 conv. Its element-wise functions run as lookup
    tables and its gate as a lane-scaled VECTOR write: all of it on the device."""
    rng = _rng(11)
    c = 6
    weights = {
        "w0": rng.normal(0, 0.5, (c, 3, 3, 3)).astype(np.float32),
        "wd": rng.normal(0, 0.5, (c, 1, 3, 3)).astype(np.float32),
        "ws": rng.normal(0, 0.5, (2, c, 1, 1)).astype(np.float32),
        "we": rng.normal(0, 0.5, (c, 2, 1, 1)).astype(np.float32),
        "wp": rng.normal(0, 0.5, (5, c, 1, 1)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["a"], ["b"], name="hardswish"),
        helper.make_node("Conv", ["b", "wd"], ["d"], name="dw", pads=[1, 1, 1, 1], group=c),
        helper.make_node("Sigmoid", ["d"], ["ds"], name="sigmoid"),
        helper.make_node("Mul", ["d", "ds"], ["e"], name="silu"),
        helper.make_node("GlobalAveragePool", ["e"], ["p"], name="squeeze"),
        helper.make_node("Conv", ["p", "ws"], ["q"], name="reduce"),
        helper.make_node("Relu", ["q"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "we"], ["t"], name="expand"),
        helper.make_node("HardSigmoid", ["t"], ["g"], name="gate", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["e", "g"], ["f"], name="excite"),
        helper.make_node("Conv", ["f", "wp"], ["y"], name="project"),
    ]
    return quantize(_model(nodes, (1, 3, 7, 6), weights, opset=14))


# ---------------------------------------------------------------------- quantization

# The formats the tests quantize every tiny graph in: keyword arguments of `quantize`.
FORMATS = {
    "qdq-s8-perchannel": {"fmt": "qdq", "activations": "int8", "per_channel": True},
    "qdq-u8": {"fmt": "qdq", "activations": "uint8", "per_channel": False},
    "qop-u8": {"fmt": "qop", "activations": "uint8", "per_channel": False},
    "qop-s8-perchannel": {"fmt": "qop", "activations": "int8", "per_channel": True},
}


def quantize(
    model: onnx.ModelProto,
    *,
    fmt: str = "qdq",
    activations: str = "int8",
    per_channel: bool = True,
    samples: int = 32,
    seed: int = 0,
) -> onnx.ModelProto:
    """Quantize `model` with onnxruntime's static quantizer (MinMax calibration)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    data = calibration_inputs(shape, samples, seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": data[i : i + 1]} for i in range(samples)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder, "f.onnx"), Path(folder, "q.onnx")
        onnx.save(model, source)
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
        )
        return onnx.load(target)


def calibration_inputs(shape, count: int, seed: int) -> np.ndarray:
    return _rng(seed + 100).normal(0, 1, (count, *shape[1:])).astype(np.float32)


BUILDERS: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv": conv,
    "conv_relu": lambda: conv(activation="relu"),
    "conv_relu6": lambda: conv(activation="relu6"),
    "conv_stride2_pad0": lambda: conv(stride=2, pad=0),
    "conv_dilation2": lambda: conv(dilation=2, pad=2),
    "conv_groups2": lambda: conv(groups=2, channels=4, out_channels=6),
    "conv_depthwise": lambda: conv(groups=4, channels=4, out_channels=4),
    "conv_pointwise_nobias": lambda: conv(kernel=1, pad=0, bias=False),
    "gemm": gemm,
    "gemm_relu": lambda: gemm(relu=True),
    "gemm_no_transpose": lambda: gemm(trans_b=False),
    "matmul": matmul,
    "maxpool": maxpool,
    "maxpool_3x3_s1_pad1": lambda: maxpool(kernel=3, stride=1, pad=1),
    "maxpool_ceil": lambda: maxpool(ceil_mode=1),
    "avgpool": avgpool,
    "avgpool_3x3_pad1": lambda: avgpool(kernel=3, stride=1, pad=1),
    "global_avgpool": global_avgpool,
    "add": add,
    "concat": concat,
    "flatten_gemm": flatten_gemm,
    "reshape_gemm": lambda: flatten_gemm(use_reshape=True),
    "softmax_head": softmax_head,
}
