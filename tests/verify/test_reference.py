"""verdigris.verify.reference: onnx.reference plus contrib kernels, checked against onnxruntime."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from verdigris.verify.reference import (
    MS_DOMAIN,
    QLinearConv,
    ReferenceRunError,
    run_onnx_reference,
    run_onnxruntime,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ONNX_TYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, list[int]]],
    outputs: dict[str, int],
    constants: dict[str, np.ndarray],
) -> onnx.ModelProto:
    """An opset-13 model (so Q/DQ need the converter) that may use com.microsoft ops."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, t, shape) for n, (t, shape) in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()],
        initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in constants.items()],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(MS_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets)


def random_q(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def cpu_has_vnni() -> bool:
    """Whether onnxruntime's x86 uint8 x int8 kernels are exact here: without VNNI they add
    pairs of products in saturating 16-bit arithmetic (seen off by up to 67 LSB)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in cpuinfo or "avx_vnni" in cpuinfo


def int7_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """int8 weights in [-64, 63]: two uint8 x weight products then fit in int16, so
    onnxruntime's result does not depend on whether the CPU has VNNI."""
    return rng.integers(-64, 64, shape).astype(np.int8)


def assert_within_one_lsb(ours: np.ndarray, theirs: np.ndarray, min_identical: float = 0.99):
    """The architecture's contract with onnxruntime, which requantizes in float: at most one
    LSB apart on a small fraction of elements."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    difference = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
    assert difference.max() <= 1
    assert np.mean(difference == 0) >= min_identical


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_qgemm_is_bit_exact_with_onnxruntime(dtype, per_column, trans_b):
    rng = np.random.default_rng(1)
    m, k, n = 5, 40, 12
    info = np.iinfo(dtype)
    constants = {
        "sa": np.float32(0.02),
        "za": np.array(info.min + 9, dtype),
        "w": int7_weights(rng, (n, k) if trans_b else (k, n)),
        "sw": rng.uniform(1e-3, 1e-2, n).astype(np.float32) if per_column else np.float32(4e-3),
        "zw": np.zeros(n, np.int8) if per_column else np.array(0, np.int8),
        "c": rng.integers(-3000, 3000, n).astype(np.int32),
        "sy": np.float32(0.05),
        "zy": np.array(info.min + 60, dtype),
    }
    node = helper.make_node("QGemm", ["a", *constants], ["y"], domain=MS_DOMAIN, transB=trans_b)
    onnx_type = ONNX_TYPE[np.dtype(dtype)]
    model = make_model([node], {"a": (onnx_type, [m, k])}, {"y": onnx_type}, constants)
    feeds = {"a": random_q(rng, dtype, (m, k))}
    ours, theirs = run_onnx_reference(model, feeds)["y"], run_onnxruntime(model, feeds)["y"]
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_qgemm_without_output_quantization_returns_float():
    rng = np.random.default_rng(2)
    constants = {
        "sa": np.float32(0.02),
        "za": np.array(128, np.uint8),
        "w": int7_weights(rng, (8, 16)),
        "sw": np.float32(0.01),
        "zw": np.array(0, np.int8),
        "c": rng.integers(-500, 500, 8).astype(np.int32),
    }
    node = helper.make_node("QGemm", ["a", *constants], ["y"], domain=MS_DOMAIN, transB=1)
    model = make_model(
        [node], {"a": (TensorProto.UINT8, [3, 16])}, {"y": TensorProto.FLOAT}, constants
    )
    feeds = {"a": random_q(rng, np.uint8, (3, 16))}
    ours, theirs = run_onnx_reference(model, feeds)["y"], run_onnxruntime(model, feeds)["y"]
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("op_type", ["QLinearAdd", "QLinearMul"])
def test_qlinear_binary_ops_match_onnxruntime(dtype, op_type):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    constants = {
        "sa": np.float32(0.04),
        "za": np.array(info.min + 30, dtype),
        "sb": np.float32(0.07),
        "zb": np.array(info.min + 140, dtype),
        "sc": np.float32(0.09),
        "zc": np.array(info.min + 100, dtype),
    }
    node = helper.make_node(
        op_type, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"], domain=MS_DOMAIN
    )
    onnx_type = ONNX_TYPE[np.dtype(dtype)]
    inputs = {"a": (onnx_type, [4, 3, 37]), "b": (onnx_type, [3, 1])}  # broadcasting
    model = make_model([node], inputs, {"c": onnx_type}, constants)
    feeds = {"a": random_q(rng, dtype, (4, 3, 37)), "b": random_q(rng, dtype, (3, 1))}
    assert_within_one_lsb(run_onnx_reference(model, feeds)["c"], run_onnxruntime(model, feeds)["c"])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_pooling_and_softmax_match_onnxruntime(dtype):
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    onnx_type = ONNX_TYPE[np.dtype(dtype)]
    constants = {
        "sx": np.float32(0.05),
        "zx": np.array(info.min + 20, dtype),
        "sy": np.float32(0.03),
        "zy": np.array(info.min + 100, dtype),
        "sp": np.float32(1 / 256),
        "zp": np.array(info.min, dtype),
    }
    quantized = ["x", "sx", "zx", "sy", "zy"]
    concatenated = ["sy", "zy", "x", "sx", "zx", "x2", "sy", "zy"]
    specs = [
        ("QLinearGlobalAveragePool", quantized, "gap", {"channels_last": 0}),
        ("QLinearAveragePool", quantized, "avg", {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ("QLinearLeakyRelu", quantized, "leaky", {"alpha": 0.1}),
        ("QLinearSoftmax", ["l", "sx", "zx", "sp", "zp"], "soft", {"axis": 1, "opset": 13}),
        ("QLinearConcat", concatenated, "cat", {"axis": 1}),
    ]
    nodes = [
        helper.make_node(op, names, [out], domain=MS_DOMAIN, **attrs)
        for op, names, out, attrs in specs
    ]
    inputs = {
        "x": (onnx_type, [2, 3, 6, 6]),
        "x2": (onnx_type, [2, 4, 6, 6]),
        "l": (onnx_type, [32, 10]),
    }
    outputs = dict.fromkeys(["gap", "avg", "leaky", "soft", "cat"], onnx_type)
    model = make_model(nodes, inputs, outputs, constants)
    feeds = {name: random_q(rng, dtype, tuple(shape)) for name, (_, shape) in inputs.items()}
    ours, theirs = run_onnx_reference(model, feeds), run_onnxruntime(model, feeds)
    # Same arithmetic as onnxruntime's kernel (integer sum, one float factor): identical.
    np.testing.assert_array_equal(ours["gap"], theirs["gap"])
    for name in ("avg", "leaky", "soft", "cat"):
        assert_within_one_lsb(ours[name], theirs[name], min_identical=0.95)


def test_small_qoperator_graph_with_qdq_at_opset_13():
    """Float in, QuantizeLinear, two QGemm branches joined by QLinearAdd, DequantizeLinear out:
    onnx.reference needs the opset conversion for DequantizeLinear here."""
    rng = np.random.default_rng(5)
    constants = {
        "sx": np.float32(1 / 255),
        "zx": np.array(0, np.uint8),
        "w1": int7_weights(rng, (8, 16)),
        "w2": int7_weights(rng, (8, 16)),
        "sw": np.float32(0.01),
        "zw": np.array(0, np.int8),
        "c1": rng.integers(-500, 500, 8).astype(np.int32),
        "s1": np.float32(0.02),
        "z1": np.array(120, np.uint8),
        "s2": np.float32(0.03),
        "z2": np.array(130, np.uint8),
        "s3": np.float32(0.04),
        "z3": np.array(128, np.uint8),
    }
    gemm = ["q", "sx", "zx", "w1", "sw", "zw", "c1", "s1", "z1"]
    gemm_without_bias = ["q", "sx", "zx", "w2", "sw", "zw", "", "s2", "z2"]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["q"]),
        helper.make_node("QGemm", gemm, ["h1"], domain=MS_DOMAIN, transB=1),
        helper.make_node("QGemm", gemm_without_bias, ["h2"], domain=MS_DOMAIN, transB=1),
        helper.make_node(
            "QLinearAdd", ["h1", "s1", "z1", "h2", "s2", "z2", "s3", "z3"], ["s"], domain=MS_DOMAIN
        ),
        helper.make_node("DequantizeLinear", ["s", "s3", "z3"], ["y"]),
    ]
    outputs = {"y": TensorProto.FLOAT, "h1": TensorProto.UINT8, "h2": TensorProto.UINT8}
    model = make_model(nodes, {"x": (TensorProto.FLOAT, [4, 16])}, outputs, constants)
    feeds = {"x": rng.uniform(0, 1, (4, 16)).astype(np.float32)}
    ours, theirs = run_onnx_reference(model, feeds), run_onnxruntime(model, feeds)
    for name in outputs:
        # Bit-exact here, including an exact tie in QLinearAdd (52.5 before the zero point).
        np.testing.assert_array_equal(ours[name], theirs[name])


@pytest.mark.parametrize(
    ("group", "strides", "per_channel"), [(1, [1, 1], True), (6, [2, 2], True), (2, [1, 2], False)]
)
def test_fast_qlinearconv_equals_the_specification_kernel(group, strides, per_channel):
    rng = np.random.default_rng(6)
    c_in = 6
    c_out = c_in if group == c_in else 4
    w_scale = rng.uniform(1e-3, 1e-2, c_out).astype(np.float32)
    constants = {
        "sx": np.float32(0.02),
        "zx": np.array(17, np.uint8),
        "w": random_q(rng, np.int8, (c_out, c_in // group, 3, 3)),
        "sw": w_scale if per_channel else w_scale[0],
        "zw": np.zeros(c_out, np.int8) if per_channel else np.array(0, np.int8),
        "sy": np.float32(0.03),
        "zy": np.array(128, np.uint8),
        "b": rng.integers(-900, 900, c_out).astype(np.int32),
    }
    node = helper.make_node(
        "QLinearConv",
        ["x", *constants],
        ["y"],
        group=group,
        strides=strides,
        pads=[1, 1, 1, 1],
        kernel_shape=[3, 3],
    )
    model = make_model(
        [node], {"x": (TensorProto.UINT8, [2, c_in, 7, 6])}, {"y": TensorProto.UINT8}, constants
    )
    feeds = {"x": random_q(rng, np.uint8, (2, c_in, 7, 6))}
    (fast,) = ReferenceEvaluator(model, new_ops=[QLinearConv]).run(None, feeds)
    (spec,) = ReferenceEvaluator(model).run(None, feeds)
    assert fast.dtype == spec.dtype == np.uint8
    np.testing.assert_array_equal(fast, spec)


@pytest.mark.parametrize("name", ["lenet_qop", "resnet_qop", "mobilenet_qdq_u8", "resnet_qdq"])
def test_shipped_models_agree_with_onnxruntime(name):
    if name.endswith("_qop") and not cpu_has_vnni():
        # QDQ models run float kernels with graph optimizations off; QLinearConv does not.
        pytest.skip("onnxruntime's uint8 x int8 QLinearConv saturates on CPUs without VNNI")
    model = onnx.load(EXAMPLES / "models" / f"{name}.onnx")
    feeds = {"input": np.load(EXAMPLES / "digits_samples.npy")}
    ours = run_onnx_reference(model, feeds)["output"]
    theirs = run_onnxruntime(model, feeds)["output"]
    np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    # Both end in DequantizeLinear: compare the integers behind the floats.
    final = next(node for node in model.graph.node if node.output[0] == "output")
    scale = next(i for i in model.graph.initializer if i.name == final.input[1])
    lsb = np.abs(ours - theirs) / numpy_helper.to_array(scale)
    assert np.rint(lsb).max() <= 1


@pytest.mark.parametrize("domain", [MS_DOMAIN, "example.custom"])
def test_unknown_operator_raises_naming_it(domain):
    node = helper.make_node("FrobnicateLinear", ["x"], ["y"], domain=domain)
    model = make_model([node], {"x": (TensorProto.FLOAT, [2])}, {"y": TensorProto.FLOAT}, {})
    model.opset_import.append(helper.make_opsetid("example.custom", 1))
    feeds = {"x": np.zeros(2, np.float32)}
    for runner in (run_onnx_reference, run_onnxruntime):
        with pytest.raises(ReferenceRunError, match="FrobnicateLinear") as raised:
            runner(model, feeds)
        assert raised.value.op_type == "FrobnicateLinear"
