"""The host-op runtime against onnxruntime: every op of HOST_OPS, one node at a time.

Each case builds a one-node ONNX model, runs it in onnxruntime (no graph optimizations, CPU)
and through run_nodes on the same seeded inputs; data movement and Resize (also linear, on
floats and on int8/uint8) must match exactly, other arithmetic to float32 rounding.
"""

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from verdigris.arch.host_steps import HOST_OPS, HostNode
from verdigris.sim.host_ops import RUNNERS, HostOpError, run_nodes

# Ops whose result is a selection or copy of input values (no rounding): compared exactly.
EXACT = {
    "Abs", "Ceil", "Concat", "DepthToSpace", "Flatten", "Floor", "Gather", "GlobalMaxPool",
    "Identity", "Max", "MaxPool", "Min", "Neg", "Pad", "Relu", "Reshape", "Slice",
    "SpaceToDepth", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze", "ReduceMax",
    "ReduceMin",
}  # fmt: skip

INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


class Const:
    """A constant input: an initializer of the ONNX model, a constant of run_nodes."""

    def __init__(self, value):
        self.value = np.asarray(value)


def ints(*values) -> Const:
    return Const(np.array(values, np.int64))


def floats(*values) -> Const:
    return Const(np.array(values, np.float32))


def rand(*shape, seed=0, low=None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.abs(x) + np.float32(low) if low is not None else x


def host_node(node: onnx.NodeProto) -> HostNode:
    """The HostNode the frontend would make of `node` (strings decoded, lists as tuples)."""
    attributes = []
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = tuple(value)
        attributes.append((attribute.name, value))
    return HostNode(node.op_type, tuple(node.input), tuple(node.output), tuple(attributes))


def build(op, inputs, attrs=None, opset=13, outputs=1):
    """A one-node model of `op` over `inputs` (float arrays become graph inputs, Const
    initializers, None an absent input), its node, feeds and constants."""
    names, feeds, constants, graph_inputs, initializers = [], {}, {}, [], []
    for i, value in enumerate(inputs):
        if value is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if isinstance(value, Const):
            initializers.append(numpy_helper.from_array(value.value, name))
            constants[name] = value.value
        else:
            feeds[name] = value
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape))
    out_names = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **(attrs or {}))
    graph = helper.make_graph(
        [node],
        op,
        graph_inputs,
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in out_names],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model, node, feeds, constants


def run_ort(model, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def case(op, *inputs, opset=13, outputs=1, id=None, **attrs):
    name = "-".join([id or "", *(f"{k}={v}" for k, v in attrs.items())]).strip("-")
    return pytest.param(op, inputs, attrs, opset, outputs, id=f"{op}-{name or 'default'}-{opset}")


X = rand(1, 4, 7, 9)
POSITIVE = rand(1, 4, 7, 9, low=0.1)

CASES = [
    # Elementwise, one input.
    case("Abs", X),
    case("Ceil", X * 3),
    case("Floor", X * 3),
    case("Neg", X),
    case("Relu", X),
    case("Identity", X),
    case("Exp", X),
    case("Log", POSITIVE),
    case("Sqrt", POSITIVE),
    case("Reciprocal", POSITIVE),
    case("Sigmoid", X * 4),
    case("Tanh", X),
    case("Erf", X * 2),
    case("Softplus", X * 4),
    case("Mish", X * 4, opset=18),
    case("Elu", X),
    case("Elu", X, alpha=0.5),
    case("Selu", X),
    case("Selu", X, alpha=1.5, gamma=1.1),
    case("LeakyRelu", X),
    case("LeakyRelu", X, alpha=0.2),
    case("HardSigmoid", X * 4),
    case("HardSigmoid", X * 4, alpha=0.3, beta=0.4),
    case("HardSwish", X * 4, opset=14),
    case("Gelu", X * 3, opset=20),
    case("Gelu", X * 3, opset=20, approximate="tanh"),
    # Elementwise, broadcast.
    *[case(op, X, rand(4, 1, 9, seed=1), id="broadcast") for op in ("Add", "Sub", "Mul")],
    *[case(op, X, Const(rand(9, seed=2)), id="const") for op in ("Add", "Sub", "Mul")],
    case("Div", X, rand(4, 1, 9, seed=1, low=0.5)),
    case("Div", X, floats(2.5), id="scalar"),
    case("Pow", POSITIVE, rand(4, 1, 1, seed=1)),
    case("Pow", X, floats(2.0), id="square"),
    case("Pow", X, Const(np.array(3, np.int64)), id="int_exponent"),
    case("PRelu", X, Const(rand(4, 1, 1, seed=3))),
    case("PRelu", X, floats(0.25), id="one_slope"),
    case("MatMul", rand(2, 3, 4, 5), rand(5, 6, seed=1)),
    case("MatMul", rand(4, 5), rand(2, 5, 3, seed=1), id="broadcast"),
    case("MatMul", rand(3, 5), rand(5, seed=1), id="vector"),
    *[case(op, X, id="one") for op in ("Sum", "Mean", "Max", "Min")],
    *[
        case(op, X, rand(4, 1, 9, seed=1), Const(rand(9, seed=2)), id="three")
        for op in ("Sum", "Mean", "Max", "Min")
    ],
    case("Clip", X, floats(-0.5), floats(0.7)),
    case("Clip", X, floats(-0.5), id="min_only"),
    case("Clip", X, None, floats(0.3), id="max_only"),
    case("Clip", X, id="no_bounds"),
    # Normalization.
    case("Softmax", X),
    case("Softmax", X, axis=1),
    case("Softmax", X * 10, axis=-2),
    case("Softmax", rand(3, 5) * 30, axis=0),
    case("LogSoftmax", X),
    case("LogSoftmax", X * 10, axis=1),
    case("LogSoftmax", X, axis=-2),
    case("LogSoftmax", X * 30, axis=0),
    case("LogSoftmax", rand(3, 5) * 30, axis=0),
    case("LogSoftmax", rand(2, 7, 37) * 5, axis=2),
    case("LogSoftmax", rand(11) * 20, axis=-1),
    case("LogSoftmax", rand(2, 3, 2, 4, 5), axis=3, opset=18),
    case(
        "BatchNormalization",
        X,
        Const(rand(4, seed=1)),
        Const(rand(4, seed=2)),
        Const(rand(4, seed=3)),
        Const(rand(4, seed=4, low=0.1)),
    ),
    case(
        "BatchNormalization",
        rand(2, 3, 5),
        Const(rand(3, seed=1)),
        Const(rand(3, seed=2)),
        Const(rand(3, seed=3)),
        Const(rand(3, seed=4, low=0.1)),
        epsilon=1e-3,
        opset=15,
    ),
    case("InstanceNormalization", X, Const(rand(4, seed=1)), Const(rand(4, seed=2))),
    case(
        "InstanceNormalization",
        rand(2, 3, 11),
        Const(rand(3, seed=1)),
        Const(rand(3, seed=2)),
        epsilon=0.01,
    ),
    case("LRN", X, size=3),
    case("LRN", X, size=5, alpha=0.01, beta=0.5, bias=2.0),
    case("LRN", rand(1, 6, 3, 3), size=7, alpha=0.1),
    # Reductions.
    case("ReduceSum", X, ints(1, 3)),
    case("ReduceSum", X, ints(-1), keepdims=0),
    case("ReduceSum", X, id="all"),
    case("ReduceSum", X, noop_with_empty_axes=1),
    *[case(op, X, axes=[2, 3]) for op in ("ReduceMean", "ReduceMax", "ReduceMin")],
    *[case(op, X, axes=[1], keepdims=0) for op in ("ReduceMean", "ReduceMax", "ReduceMin")],
    *[case(op, X, id="all") for op in ("ReduceMean", "ReduceMax", "ReduceMin")],
    *[
        case(op, X, ints(0, -2), opset=18, id="axes_input")
        for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")
    ],
    case("ReduceMean", X, opset=18, noop_with_empty_axes=1),
    case("ReduceMean", X, ints(2), opset=18, keepdims=0),
    # Pooling.
    case("GlobalAveragePool", X),
    case("GlobalMaxPool", X),
    case("GlobalAveragePool", rand(2, 3, 5), id="1d"),
    *[
        case(op, X, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=c, **extra)
        for op, extra in [
            ("MaxPool", {}),
            ("AveragePool", {"count_include_pad": 0}),
            ("AveragePool", {"count_include_pad": 1}),
        ]
        for c in (0, 1)
    ],
    *[
        case(op, X, kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1, **extra)
        for op, extra in [
            ("MaxPool", {}),
            ("AveragePool", {"count_include_pad": 0}),
            ("AveragePool", {"count_include_pad": 1}),
        ]
    ],
    *[
        case(op, X, kernel_shape=[3, 2], strides=[2, 2], auto_pad=pad, **extra)
        for op, extra in [
            ("MaxPool", {}),
            ("AveragePool", {"count_include_pad": 0}),
            ("AveragePool", {"count_include_pad": 1}),
        ]
        for pad in ("SAME_UPPER", "SAME_LOWER", "VALID")
    ],
    case("MaxPool", X, kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1], opset=12),
    case("MaxPool", X, kernel_shape=[3, 3], dilations=[2, 1], strides=[1, 2], ceil_mode=1),
    case("AveragePool", X, kernel_shape=[2, 2], dilations=[2, 2], opset=19),
    case(
        "AveragePool",
        X,
        kernel_shape=[3, 2],
        dilations=[2, 2],
        pads=[1, 1, 1, 1],
        count_include_pad=1,
        opset=19,
    ),
    case("MaxPool", rand(2, 3, 10), kernel_shape=[3], strides=[2], pads=[1, 1], id="1d"),
    case("AveragePool", rand(1, 2, 4, 5, 6), kernel_shape=[2, 2, 3], pads=[1, 0, 1, 0, 1, 1]),
    # Data movement.
    case("Transpose", X),
    case("Transpose", X, perm=[0, 2, 3, 1]),
    case("Reshape", X, ints(0, -1, 9)),
    case("Reshape", X, ints(4, 63)),
    case("Reshape", X, ints(1, 4, 63), allowzero=1, opset=14),
    case("Flatten", X),
    *[case("Flatten", X, axis=a) for a in (0, 2, 4, -1)],
    case("Squeeze", rand(1, 4, 1, 9), ints(0, -2)),
    case("Squeeze", rand(1, 4, 1, 9), id="all"),
    case("Unsqueeze", X, ints(0, -1)),
    case("Unsqueeze", rand(3, 4), ints(1, 3)),
    case("Concat", X, rand(1, 2, 7, 9, seed=1), Const(rand(1, 1, 7, 9, seed=2)), axis=1),
    case("Concat", X, rand(1, 4, 7, 2, seed=1), axis=-1),
    case("Split", X, ints(1, 3), axis=1, outputs=2),
    case("Split", X, ints(2, 2, 5), axis=-1, outputs=3),
    case("Split", X, axis=1, outputs=4, id="equal"),
    case("Split", X, axis=2, num_outputs=3, outputs=3, opset=18),
    case("Split", X, axis=1, num_outputs=2, outputs=2, opset=18),
    case("Slice", X, ints(1, 2), ints(3, -1), ints(1, 3)),
    case("Slice", X, ints(-2), ints(INT64_MAX), ints(2), id="to_end"),
    case("Slice", X, ints(-1, 8), ints(INT64_MIN, 1), ints(2, 3), ints(-1, -2), id="backward"),
    case("Slice", X, ints(0, 1), ints(7, 9), ints(2, -1), ints(2, 3), id="steps"),
    case("Slice", X, ints(100), ints(-100), ints(3), ints(-1), id="clamped"),
    case("Slice", X, ints(0, 0, 2, 1), ints(1, 4, 5, 8), id="all_axes"),
    case(
        "Slice", X, ints(-2, 5), ints(INT64_MAX, INT64_MAX), ints(1, 3), ints(-1, -2), id="max_back"
    ),
    case("Pad", X, ints(0, 1, 2, 0, 0, 0, 1, 3)),
    case("Pad", X, ints(0, 0, 2, 1, 0, 0, 1, 3), floats(1.5), id="value"),
    case("Pad", X, ints(0, 0, -2, 1, 0, 0, 1, -3), id="negative"),
    *[case("Pad", X, ints(0, 1, 2, 3, 0, 1, 3, 2), mode=m) for m in ("reflect", "edge")],
    case("Pad", X, ints(0, 1, 2, 3, 0, 1, 3, 2), mode="wrap", opset=19),
    case("Pad", X, ints(2, 1, 1, 3), floats(-1.0), ints(2, -1), opset=18, id="axes"),
    case("Pad", X, ints(1, 2, 3, 1), None, ints(1, 3), mode="reflect", opset=18, id="axes"),
    case("Tile", X, ints(1, 2, 1, 3)),
    case("Tile", rand(3), ints(4)),
    case("Gather", rand(5, 3), ints(0, -1, 2, -5)),
    case("Gather", X, Const(np.array([[1, -2], [3, 0]], np.int64)), axis=1),
    case("Gather", X, Const(np.array(-3, np.int64)), axis=-1, id="scalar"),
    case("DepthToSpace", rand(1, 8, 3, 4), blocksize=2),
    case("DepthToSpace", rand(1, 8, 3, 4), blocksize=2, mode="CRD"),
    case("DepthToSpace", rand(2, 18, 2, 3), blocksize=3, mode="DCR"),
    case("SpaceToDepth", rand(1, 3, 6, 4), blocksize=2),
    case("SpaceToDepth", rand(2, 2, 6, 9), blocksize=3),
]

# Resize: modes x coordinate transformations x scales or sizes.
COORDINATES = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
SCALES = [floats(1, 1, 2, 1.5), floats(1, 1, 0.6, 0.5), floats(1, 1, 3, 2)]
SIZES = [ints(1, 4, 14, 5), ints(1, 4, 5, 20), ints(1, 4, 1, 1)]


def label(const: Const) -> str:
    kind = "sizes" if const.value.dtype == np.int64 else "scales"
    return f"{kind}={const.value.tolist()}"


CASES += [
    case(
        "Resize",
        X,
        None,
        scales,
        id=label(scales),
        coordinate_transformation_mode=c,
        nearest_mode=n,
    )
    for c in COORDINATES
    for n in NEAREST
    for scales in SCALES[:2]
]
CASES += [
    case(
        "Resize",
        X,
        None,
        None,
        sizes,
        id=label(sizes),
        coordinate_transformation_mode=c,
        nearest_mode=n,
    )
    for c in COORDINATES
    for n in NEAREST[:2]
    for sizes in SIZES
]
CASES += [
    case(
        "Resize", X, None, scales, id=label(scales), mode="linear", coordinate_transformation_mode=c
    )
    for c in COORDINATES
    for scales in SCALES
]
CASES += [
    case(
        "Resize",
        X,
        None,
        None,
        sizes,
        id=label(sizes),
        mode="linear",
        coordinate_transformation_mode=c,
    )
    for c in COORDINATES
    for sizes in SIZES
]
CASES += [
    case("Resize", X, floats(), floats(1, 1, 2, 2), mode="linear", id="empty_roi"),
    case("Resize", X, None, floats(1, 1, 1.7, 0.8), opset=19, id="symmetric",
         coordinate_transformation_mode="half_pixel_symmetric"),
    case("Resize", X, None, None, ints(9, 4), axes=[3, 2], mode="linear", opset=18, id="axes"),
    *[
        case("Resize", X, None, None, ints(12, 12), axes=[2, 3], keep_aspect_ratio_policy=p,
             opset=18)
        for p in ("not_larger", "not_smaller")
    ],
    case("Resize", rand(2, 3, 5), None, floats(1, 1, 2.5), mode="linear", id="3d"),
]  # fmt: skip


# ConvTranspose: 1-D and 2-D, kernels 1 to 4, strides 1 to 3, each with four variants of
# (group, dilations, pads, output_padding): plain; 2 groups, dilated, padded, the largest
# output_padding onnxruntime takes (below the stride); depthwise (4 groups of one channel);
# 2 groups with asymmetric pads and dilations.
def conv_transpose(rank, kernel, stride, group, dilations, pads, adjust, bias=True, **extra):
    x = rand(2, 4, *((5, 6) if rank == 2 else (7,)), seed=kernel + stride)
    w = Const(rand(4, 6 // group if group < 4 else 1, *(kernel,) * rank, seed=10 + kernel))
    b = Const(rand(w.value.shape[1] * group, seed=20))
    attrs = {
        "strides": [stride] * rank,
        "dilations": list(dilations)[:rank],
        "group": group,
        "output_padding": [adjust] * rank,
        **extra,
    }
    if pads is not None:  # auto_pad excludes pads
        attrs["pads"] = [pads[0]] * rank + [pads[1]] * rank
    inputs = (x, w, b) if bias else (x, w)
    return case("ConvTranspose", *inputs, id=f"{rank}d-k{kernel}", **attrs)


CONV_TRANSPOSE_VARIANTS = [
    # group, dilations, (pads at the beginning, at the end), output_padding (max: stride - 1)
    (1, (1, 1), (0, 0), 0),
    (2, (2, 2), (1, 1), "max"),
    (4, (1, 1), (1, 0), "max"),
    (2, (2, 3), (0, 2), 0),
]

CASES += [
    conv_transpose(rank, k, s, group, dilations, pads, s - 1 if adjust == "max" else adjust)
    for rank in (1, 2)
    for k in (1, 2, 3, 4)
    for s in (1, 2, 3)
    for group, dilations, pads, adjust in CONV_TRANSPOSE_VARIANTS
]
CASES += [
    # No bias; auto_pad; output_shape (with the odd padding at the head or, SAME_UPPER, the
    # tail; one past the full result); 3-D; DBNet's 2x2 stride 2 and the 4x4 stride 2 pad 1.
    conv_transpose(2, 3, 2, 1, (1, 1), (0, 0), 1, bias=False),
    *[
        conv_transpose(2, 3, s, 1, (1, 1), None, 0, auto_pad=a)
        for s in (2, 3)
        for a in ("SAME_UPPER", "SAME_LOWER", "VALID")
    ],
    conv_transpose(2, 3, 2, 1, (1, 1), (0, 0), 0, output_shape=[10, 12]),
    conv_transpose(2, 3, 2, 1, (1, 1), None, 0, output_shape=[10, 12], auto_pad="SAME_UPPER"),
    conv_transpose(2, 3, 2, 1, (1, 1), None, 0, output_shape=[10, 12], auto_pad="SAME_LOWER"),
    conv_transpose(2, 3, 3, 2, (1, 1), (0, 0), 0, output_shape=[16, 17]),
    conv_transpose(1, 4, 2, 2, (2, 2), (0, 0), 1, output_shape=[15]),
    case("ConvTranspose", rand(1, 2, 3, 4, 5), Const(rand(2, 3, 2, 3, 2, seed=1)),
         strides=[2, 1, 2], id="3d"),
    case("ConvTranspose", rand(1, 8, 16, 16), Const(rand(8, 4, 2, 2, seed=2)),
         Const(rand(4, seed=3)), strides=[2, 2], kernel_shape=[2, 2], id="dbnet"),
    case("ConvTranspose", rand(1, 8, 9, 9), Const(rand(8, 4, 4, 4, seed=2)), strides=[2, 2],
         pads=[1, 1, 1, 1], id="4x4"),
]  # fmt: skip


def test_runners_are_the_host_ops():
    assert set(RUNNERS) == HOST_OPS


def test_every_host_op_is_tested():
    # ArgMax (an int64 result) has a test of its own, below.
    assert {param.values[0] for param in CASES} | {"ArgMax"} == set(RUNNERS)


@pytest.mark.parametrize(("op", "inputs", "attrs", "opset", "outputs"), CASES)
def test_matches_onnxruntime(op, inputs, attrs, opset, outputs):
    model, node, feeds, constants = build(op, inputs, attrs, opset, outputs)
    expected = run_ort(model, feeds)
    values = run_nodes([host_node(node)], {**feeds, **constants})
    # Resize computes onnxruntime's own float32 sums (linear) or picks values (nearest).
    exact = op in EXACT or op == "Resize"
    for name, want in zip(node.output, expected, strict=True):
        got = values[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        if exact:
            assert np.array_equal(got, want, equal_nan=True), name
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


# SAME pads in total (out - 1) * stride + (kernel - 1) * dilation + 1 - in (the spec), the odd
# one at the end (UPPER) or start (LOWER). onnxruntime leaves out the dilation there, so compare
# with the explicit pads: height 8 to 4 rows, 3 in all; width 9 to 5 columns, 4 in all.
@pytest.mark.parametrize(
    ("auto_pad", "pads"), [("SAME_UPPER", [1, 2, 2, 2]), ("SAME_LOWER", [2, 2, 1, 2])]
)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_same_padding_with_dilations_follows_the_spec(op, auto_pad, pads):
    x = rand(1, 2, 8, 9)
    attrs = {"kernel_shape": (3, 3), "dilations": (2, 2), "strides": (2, 2)}
    model, _, feeds, _ = build(op, [x], {**attrs, "pads": pads}, opset=19)
    same = HostNode(op, ("x",), ("y",), (*attrs.items(), ("auto_pad", auto_pad)))
    got = run_nodes([same], {"x": x})["y"]
    np.testing.assert_allclose(got, run_ort(model, feeds)[0], rtol=1e-6)


def test_integer_division_truncates():
    a, b = np.array([7, -7, 7, -7], np.int64), np.array([2, 2, -2, -2], np.int64)
    values = run_nodes([HostNode("Div", ("a", "b"), ("q",))], {"a": a, "b": b})
    assert values["q"].tolist() == [3, -3, -3, 3]


def test_run_nodes_chains_nodes_and_keeps_values():
    x = rand(2, 3)
    nodes = [
        HostNode("Relu", ("x",), ("r",)),
        HostNode("Add", ("r", "c"), ("s",)),
        HostNode("Softmax", ("s",), ("y",), (("axis", 0),)),
    ]
    c = np.float32(1.5) * np.ones(3, np.float32)
    values = run_nodes(nodes, {"x": x, "c": c})
    assert set(values) == {"x", "c", "r", "s", "y"}
    s = np.maximum(x, 0) + c
    e = np.exp(s - s.max(axis=0))
    np.testing.assert_allclose(values["y"], e / e.sum(axis=0), rtol=1e-6)


def test_ieee_results_are_not_errors():
    x = np.array([-1.0, 0.0, 1.0], np.float32)
    values = run_nodes([HostNode("Log", ("x",), ("y",))], {"x": x})
    assert np.isnan(values["y"][0]) and values["y"][1] == -math.inf


def error(node: HostNode, values: dict) -> str:
    with pytest.raises(HostOpError) as raised:
        run_nodes([node], values)
    message = str(raised.value)
    assert node.op_type in message and node.outputs[0] in message
    return message


def resize(**attrs) -> HostNode:
    return HostNode("Resize", ("x", "", "scales"), ("y",), tuple(attrs.items()))


RESIZE_VALUES = {"x": X, "scales": np.array([1, 1, 2, 2], np.float32)}


def conv_transpose_node(*attrs) -> HostNode:
    return HostNode("ConvTranspose", ("x", "w"), ("y",), attrs)


CONV_TRANSPOSE_VALUES = {"x": X, "w": rand(4, 3, 2, 2, seed=1)}


@pytest.mark.parametrize(
    ("node", "values", "problem"),
    [
        (resize(mode="cubic"), RESIZE_VALUES, "cubic"),
        (resize(coordinate_transformation_mode="tf_crop_and_resize"), RESIZE_VALUES, "tf_crop"),
        (resize(nearest_mode="nearest"), RESIZE_VALUES, "nearest_mode"),
        (resize(antialias=1), RESIZE_VALUES, "antialias"),
        (resize(), {"x": X, "scales": np.zeros(0, np.float32)}, "neither scales nor sizes"),
        (
            resize(mode="linear"),
            {"x": X.astype(np.int32), "scales": np.array([1, 1, 2, 2], np.float32)},
            "int32",
        ),
        (
            resize(mode="linear"),
            {"x": X.astype(np.int8), "scales": np.array([2, 2, 1, 1], np.float32)},
            "innermost axes",
        ),
        (HostNode("DepthToSpace", ("x",), ("y",), (("blocksize", 3),)), {"x": X}, "divisible"),
        (
            HostNode("DepthToSpace", ("x",), ("y",), (("blocksize", 2), ("mode", "XYZ"))),
            {"x": X},
            "XYZ",
        ),
        (HostNode("SpaceToDepth", ("x",), ("y",), (("blocksize", 2),)), {"x": X}, "divisible"),
        (HostNode("DepthToSpace", ("x",), ("y",)), {"x": X}, "blocksize"),
        (HostNode("Gelu", ("x",), ("y",), (("approximate", "erf"),)), {"x": X}, "erf"),
        (
            HostNode("Pad", ("x", "p"), ("y",), (("mode", "mirror"),)),
            {"x": X, "p": np.zeros(8, np.int64)},
            "mirror",
        ),
        (HostNode("Split", ("x",), ("a", "b"), (("axis", 2),)), {"x": X}, "equal"),
        (HostNode("Softmax", ("x",), ("y",), (("axis", 4),)), {"x": X}, "axis 4"),
        (HostNode("LogSoftmax", ("x",), ("y",), (("axis", -5),)), {"x": X}, "axis -5"),
        (
            conv_transpose_node(("strides", (2, 2)), ("output_padding", (2, 0))),
            CONV_TRANSPOSE_VALUES,
            "output_padding [2, 0] must be below strides [2, 2]",
        ),
        (
            conv_transpose_node(("auto_pad", "SAME")),
            CONV_TRANSPOSE_VALUES,
            "auto_pad 'SAME'",
        ),
        (conv_transpose_node(("group", 3)), CONV_TRANSPOSE_VALUES, "group 3"),
        (conv_transpose_node(("pads", (1, 1))), CONV_TRANSPOSE_VALUES, "pads [1, 1]"),
        (conv_transpose_node(("strides", (0, 1))), CONV_TRANSPOSE_VALUES, "strides [0, 1]"),
        (
            conv_transpose_node(("kernel_shape", (3, 3))),
            CONV_TRANSPOSE_VALUES,
            "kernel_shape (3, 3)",
        ),
        (
            conv_transpose_node(("output_shape", (1, 3, 10, 12))),
            CONV_TRANSPOSE_VALUES,
            "output_shape [1, 3, 10, 12]",
        ),
        (
            conv_transpose_node(("strides", (2, 2)), ("output_shape", (20, 12))),
            CONV_TRANSPOSE_VALUES,
            "output_shape [20, 12] is too large",
        ),
        (
            conv_transpose_node(("pads", (5, 5, 5, 5))),
            CONV_TRANSPOSE_VALUES,
            "is empty",
        ),
        (
            HostNode("MaxPool", ("x",), ("y", "i"), (("kernel_shape", (2, 2)),)),
            {"x": X},
            "Indices",
        ),
        (HostNode("MaxPool", ("x",), ("y",), (("kernel_shape", (2, 2, 2)),)), {"x": X}, "kernel"),
        (
            HostNode("AveragePool", ("x",), ("y",), (("kernel_shape", (2, 2)), ("auto_pad", "X"))),
            {"x": X},
            "auto_pad",
        ),
        (
            HostNode("BatchNormalization", tuple("xsbmv"), ("y",), (("training_mode", 1),)),
            {k: np.ones(4, np.float32) for k in "sbmv"} | {"x": X},
            "training_mode",
        ),
        (
            HostNode("Gather", ("x", "i"), ("y",)),
            {"x": X, "i": np.array([1], np.int64)},
            "out of range",
        ),
        (
            HostNode("Reshape", ("x", "s"), ("y",)),
            {"x": X, "s": np.array([5, -1], np.int64)},
            "reshape",
        ),
        (HostNode("Upsample", ("x",), ("y",)), {"x": X}, "not a host op"),
        (HostNode("Relu", ("nowhere",), ("y",)), {"x": X}, "'nowhere' has no value"),
    ],
    ids=lambda v: v.op_type if isinstance(v, HostNode) else "",
)
def test_nodes_that_cannot_run_raise_host_op_error(node, values, problem):
    assert problem in error(node, values)


# Linear Resize of int8/uint8 tensors (a QOperator model's): onnxruntime interpolates the
# integers in float32 and truncates toward zero; a channels-last 4-D tensor (scales
# [1, s, s, 1]) in 10-bit fixed point. Compared exactly, on random integers with runs of the
# type's extremes.
RESIZE_COORDINATES = (*COORDINATES, "half_pixel_symmetric")
INTEGER_RESIZES = [
    # NCHW: up, down, both, to one pixel, by sizes, and a scale that keeps every size.
    ((2, 3, 7, 9), floats(1, 1, 2, 2)),
    ((2, 3, 7, 9), floats(1, 1, 0.6, 0.5)),
    ((2, 3, 7, 9), floats(1, 1, 1.7, 0.6)),
    ((2, 3, 7, 9), ints(2, 3, 13, 4)),
    ((2, 3, 7, 9), ints(2, 3, 1, 1)),
    ((1, 2, 5, 6), floats(1, 1, 1.1, 1.1)),
    ((1, 2, 5, 6), floats(1, 1, 1, 2.5)),
    # 2-D, 3-D and 5-D (bilinear, trilinear), channels-last 4-D (fixed point).
    ((6, 7), floats(1.5, 0.7)),
    ((4, 5, 6), floats(2, 1.5, 0.7)),
    ((1, 2, 4, 5, 3), ints(1, 2, 7, 2, 8)),
    ((1, 5, 6, 3), floats(1, 2, 1.5, 1)),
    ((2, 5, 6, 4), ints(2, 3, 11, 4)),
]


def integers(dtype, shape, seed=0) -> np.ndarray:
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max, shape, endpoint=True)
    flat = x.reshape(-1)
    flat[:4], flat[4:8] = info.min, info.max
    flat[8:24:2], flat[9:24:2] = info.min, info.max
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
@pytest.mark.parametrize("coordinates", RESIZE_COORDINATES)
@pytest.mark.parametrize(
    ("shape", "target"),
    INTEGER_RESIZES,
    ids=[f"{'x'.join(map(str, shape))}-{label(t)}" for shape, t in INTEGER_RESIZES],
)
def test_integer_linear_resize_matches_onnxruntime(dtype, coordinates, shape, target):
    x = integers(dtype, shape, seed=len(shape) + len(coordinates))
    inputs = ["x", "", "scales"] if target.value.dtype == np.float32 else ["x", "", "", "sizes"]
    attrs = {"mode": "linear", "coordinate_transformation_mode": coordinates}
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [node],
        "resize",
        [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, None)],
        initializer=[numpy_helper.from_array(target.value, inputs[-1])],
    )
    opset = 19 if coordinates == "half_pixel_symmetric" else 13
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    [expected] = run_ort(model, {"x": x})
    got = run_nodes([host_node(node)], {"x": x, inputs[-1]: target.value})["y"]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected), np.argwhere(got != expected)[:5]


@pytest.mark.parametrize(
    "attrs",
    [{}, {"axis": 1}, {"axis": -1, "keepdims": 0}, {"axis": 3, "select_last_index": 1}],
)
def test_arg_max_matches_onnxruntime(attrs):
    # Ties (rounded values) tell first from last index apart.
    x = np.round(rand(2, 4, 3, 5) * 2).astype(np.float32)
    node = helper.make_node("ArgMax", ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "argmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    [expected] = run_ort(model, {"x": x})
    host = HostNode("ArgMax", ("x",), ("y",), tuple(attrs.items()))
    got = run_nodes([host], {"x": x})["y"]
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)
