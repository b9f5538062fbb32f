"""Low-bit models built in code, in the three forms exporters write: QONNX (`Quant` nodes, as
Brevitas' export_qonnx), QCDQ (QuantizeLinear -> Clip -> DequantizeLinear, as Brevitas'
export_onnx_qcdq) and ONNX's own 4-bit QuantizeLinear/DequantizeLinear (opset 21).

`lenet_like` is a small LeNet (Conv 3x3, ReLU, MaxPool 2, Flatten, Gemm) on (1, 2, 6, 6)
whose weights, activations and logits have the bit widths asked for. Its scales are powers of
two over a few bits, so that the float results QONNX computes are exact: the integer model
then has to give exactly the same outputs (no float rounding ties to argue about).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX = "qonnx.custom_op.general"


@dataclass(frozen=True)
class Bits:
    """Widths of the input, the conv's weights, the activation after its ReLU, the Gemm's
    weights and the logits; `narrow` narrows the signed weights (-7..7 at 4 bits)."""

    input: int = 8
    conv: int = 4
    act: int = 4
    fc: int = 4
    logits: int = 8
    narrow: bool = True


def _signed(bits: int, narrow: bool) -> tuple[int, int]:
    return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1


def _weights(rng, shape, bits: int, narrow: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights in range and one power-of-two scale per output channel (axis 0)."""
    low, high = _signed(bits, narrow)
    values = rng.integers(low, high + 1, size=shape)
    scale = 2.0 ** -rng.integers(3, 6, size=shape[0])
    return values, scale


@dataclass(frozen=True)
class Parameters:
    """A lenet_like model's quantization, the same for each of its forms."""

    bits: Bits
    conv_w: np.ndarray  # integers (8, 2, 3, 3)
    conv_scale: np.ndarray  # (8,)
    conv_bias: np.ndarray  # int32 in the accumulator's scale
    fc_w: np.ndarray  # integers (10, 72), Gemm transB=1
    fc_scale: np.ndarray  # (10,)
    fc_bias: np.ndarray
    in_scale: float = 2.0**-6
    act_scale: float = 2.0**-2
    out_scale: float = 2.0**-1


def parameters(bits: Bits, seed: int = 0) -> Parameters:
    rng = np.random.default_rng(seed)
    conv_w, conv_scale = _weights(rng, (8, 2, 3, 3), bits.conv, bits.narrow)
    fc_w, fc_scale = _weights(rng, (10, 72), bits.fc, bits.narrow)
    return Parameters(
        bits=bits,
        conv_w=conv_w,
        conv_scale=conv_scale,
        conv_bias=rng.integers(-300, 300, size=8),
        fc_w=fc_w,
        fc_scale=fc_scale,
        fc_bias=rng.integers(-300, 300, size=10),
    )


def _const(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _model(
    nodes, initializers, opsets, *, name="lowbit", x_shape=(1, 2, 6, 6), y_shape=(1, 10)
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _quant(name, x, scale, bits, *, signed, narrow=False, rounding="ROUND", out=None):
    """A QONNX Quant node and its constant inputs."""
    inputs = [f"{name}_scale", f"{name}_zero", f"{name}_bits"]
    initializers = [
        _const(inputs[0], scale),
        _const(inputs[1], np.zeros_like(np.asarray(scale))),
        _const(inputs[2], float(bits)),
    ]
    node = helper.make_node(
        "Quant",
        [x, *inputs],
        [out or name],
        name=name,
        domain=QONNX,
        signed=int(signed),
        narrow=int(narrow),
        rounding_mode=rounding,
    )
    return node, initializers


def qonnx_model(p: Parameters, *, act_signed: bool = False) -> onnx.ModelProto:
    """Quant(input) -> Conv(Quant(w), Quant(b)) -> Relu -> Quant(act) -> MaxPool -> Flatten
    -> Gemm(Quant(w), Quant(b)) -> Quant(logits). With `act_signed` there is no Relu and the
    activation is signed."""
    b = p.bits
    acc1 = p.in_scale * p.conv_scale
    acc2 = p.act_scale * p.fc_scale
    parts = [
        _quant("q_in", "x", p.in_scale, b.input, signed=True),
        _quant(
            "q_w1", "w1", p.conv_scale.reshape(8, 1, 1, 1), b.conv, signed=True, narrow=b.narrow
        ),
        _quant("q_b1", "b1", acc1, 32, signed=True),
        _quant("q_w2", "w2", p.fc_scale.reshape(10, 1), b.fc, signed=True, narrow=b.narrow),
        _quant("q_b2", "b2", acc2, 32, signed=True),
    ]
    act_in = "conv" if act_signed else "relu"
    parts.append(_quant("q_act", act_in, p.act_scale, b.act, signed=act_signed))
    parts.append(_quant("q_out", "gemm", p.out_scale, b.logits, signed=True, out="y"))
    nodes = [node for node, _ in parts[:5]]
    nodes.append(helper.make_node("Conv", ["q_in", "q_w1", "q_b1"], ["conv"], pads=[1, 1, 1, 1]))
    if not act_signed:
        nodes.append(helper.make_node("Relu", ["conv"], ["relu"]))
    nodes += [
        parts[5][0],
        helper.make_node("MaxPool", ["q_act"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "q_w2", "q_b2"], ["gemm"], transB=1),
        parts[6][0],
    ]
    initializers = [init for _, inits in parts for init in inits] + [
        # Float weights whose quantization gives back the integers: the exporter's form.
        _const("w1", p.conv_w * p.conv_scale.reshape(8, 1, 1, 1)),
        _const("b1", p.conv_bias * acc1),
        _const("w2", p.fc_w * p.fc_scale.reshape(10, 1)),
        _const("b2", p.fc_bias * acc2),
    ]
    return _model(nodes, initializers, [("", 13), (QONNX, 1)])


def _qdq(name, x, scale, zero, *, clip=None, axis=None, out=None):
    """QuantizeLinear -> [Clip] -> DequantizeLinear of x, as Brevitas' QCDQ export writes it."""
    dtype = np.asarray(zero).dtype
    initializers = [_const(f"{name}_s", scale), _const(f"{name}_z", zero, dtype)]
    extra = {} if axis is None else {"axis": axis}
    nodes = [
        helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"], **extra)
    ]
    source = f"{name}_q"
    if clip is not None:
        initializers += [_const(f"{name}_lo", clip[0], dtype), _const(f"{name}_hi", clip[1], dtype)]
        nodes.append(helper.make_node("Clip", [source, f"{name}_lo", f"{name}_hi"], [f"{name}_c"]))
        source = f"{name}_c"
    nodes.append(
        helper.make_node(
            "DequantizeLinear", [source, f"{name}_s", f"{name}_z"], [out or name], **extra
        )
    )
    return nodes, initializers


def qcdq_model(p: Parameters) -> onnx.ModelProto:
    """The QONNX model's network in QCDQ form (opset 13): 8-bit QuantizeLinear and Clips to
    the narrower ranges; weights stored as int8 integers, clipped, then dequantized."""
    b = p.bits
    act_high = (1 << b.act) - 1
    nodes, initializers = [], []

    def add(parts):
        nodes.extend(parts[0])
        initializers.extend(parts[1])

    add(_qdq("q_in", "x", p.in_scale, np.int8(0), clip=_signed(b.input, False)))
    add(_weight_qcdq("q_w1", "w1", p.conv_w, p.conv_scale, b.conv, b.narrow))
    add(_bias_dq("q_b1", "b1", p.conv_bias, p.in_scale * p.conv_scale))
    add(_weight_qcdq("q_w2", "w2", p.fc_w, p.fc_scale, b.fc, b.narrow))
    add(_bias_dq("q_b2", "b2", p.fc_bias, p.act_scale * p.fc_scale))
    nodes.append(helper.make_node("Conv", ["q_in", "q_w1", "q_b1"], ["conv"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["conv"], ["relu"]))
    add(_qdq("q_act", "relu", p.act_scale, np.uint8(0), clip=(0, act_high)))
    nodes += [
        helper.make_node("MaxPool", ["q_act"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "q_w2", "q_b2"], ["gemm"], transB=1),
    ]
    add(_qdq("q_out", "gemm", p.out_scale, np.int8(0), clip=_signed(b.logits, False), out="y"))
    return _model(nodes, initializers, [("", 13)])


def _weight_qcdq(name, stored, values, scale, bits, narrow):
    low, high = _signed(bits, narrow)
    initializers = [
        _const(stored, values, np.int8),
        _const(f"{name}_lo", low, np.int8),
        _const(f"{name}_hi", high, np.int8),
        _const(f"{name}_s", scale),
        _const(f"{name}_z", np.zeros(len(scale)), np.int8),
    ]
    nodes = [
        helper.make_node("Clip", [stored, f"{name}_lo", f"{name}_hi"], [f"{name}_c"]),
        helper.make_node(
            "DequantizeLinear", [f"{name}_c", f"{name}_s", f"{name}_z"], [name], axis=0
        ),
    ]
    return nodes, initializers


def _bias_dq(name, stored, values, scale):
    initializers = [
        _const(stored, values, np.int32),
        _const(f"{name}_s", scale),
        _const(f"{name}_z", np.zeros(len(scale)), np.int32),
    ]
    node = helper.make_node("DequantizeLinear", [stored, f"{name}_s", f"{name}_z"], [name], axis=0)
    return [node], initializers


def int4_qdq_model(p: Parameters) -> onnx.ModelProto:
    """The network with ONNX's own 4-bit types (opset 21): int4 weights stored packed, the
    activation after the ReLU uint4, the input and logits int8."""
    nodes, initializers = [], []

    def add(parts):
        nodes.extend(parts[0])
        initializers.extend(parts[1])

    def int4(name, stored, values, scale):
        initializers.extend(
            [
                helper.make_tensor(stored, TensorProto.INT4, values.shape, values.reshape(-1)),
                _const(f"{name}_s", scale),
                helper.make_tensor(f"{name}_z", TensorProto.INT4, [len(scale)], [0] * len(scale)),
            ]
        )
        nodes.append(
            helper.make_node("DequantizeLinear", [stored, f"{name}_s", f"{name}_z"], [name], axis=0)
        )

    add(_qdq("q_in", "x", p.in_scale, np.int8(0)))
    int4("q_w1", "w1", p.conv_w, p.conv_scale)
    add(_bias_dq("q_b1", "b1", p.conv_bias, p.in_scale * p.conv_scale))
    int4("q_w2", "w2", p.fc_w, p.fc_scale)
    add(_bias_dq("q_b2", "b2", p.fc_bias, p.act_scale * p.fc_scale))
    nodes.append(helper.make_node("Conv", ["q_in", "q_w1", "q_b1"], ["conv"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["conv"], ["relu"]))
    initializers += [
        _const("q_act_s", p.act_scale),
        helper.make_tensor("q_act_z", TensorProto.UINT4, [], [0]),
    ]
    nodes += [
        helper.make_node("QuantizeLinear", ["relu", "q_act_s", "q_act_z"], ["q_act_q"]),
        helper.make_node("DequantizeLinear", ["q_act_q", "q_act_s", "q_act_z"], ["q_act"]),
        helper.make_node("MaxPool", ["q_act"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "q_w2", "q_b2"], ["gemm"], transB=1),
    ]
    add(_qdq("q_out", "gemm", p.out_scale, np.int8(0), out="y"))
    return _model(nodes, initializers, [("", 21)])


def conv_chain_model(weight_bits: int, act_bits: int, *, signed: bool = False, seed: int = 0):
    """Quant(x) -> Conv 3x3 pad 1 (3 -> 5) -> Relu -> Quant(act) -> Conv 3x3 pad 1 stride 2
    (5 -> 6) -> Relu -> Quant(act) -> Conv 1x1 (6 -> 4) -> Quant(8 bits) on (1, 3, 7, 7):
    convs that read low-bit activations, with padding on both axes, a stride and channel
    counts that are not a multiple of a byte's operands. With `signed`, no Relus and signed
    activations. Power-of-two scales, as `parameters`."""
    rng = np.random.default_rng(seed)
    layers = [  # (weight shape, pads, strides)
        ((5, 3, 3, 3), [1, 1, 1, 1], [1, 1]),
        ((6, 5, 3, 3), [1, 1, 1, 1], [2, 2]),
        ((4, 6, 1, 1), [0, 0, 0, 0], [1, 1]),
    ]
    act_scale = 2.0**-2
    node, initializers = _quant("q_in", "x", 2.0**-5, 8, signed=True)
    nodes, source, source_scale = [node], "q_in", 2.0**-5
    for index, (shape, pads, strides) in enumerate(layers):
        values, scale = _weights(rng, shape, weight_bits, narrow=True)
        acc_scale = source_scale * scale
        w, b, conv = f"w{index}", f"b{index}", f"conv{index}"
        initializers += [
            _const(w, values * scale.reshape(-1, 1, 1, 1)),
            _const(b, rng.integers(-40, 40, size=shape[0]) * acc_scale),
        ]
        for quant in (
            _quant(f"q_{w}", w, scale.reshape(-1, 1, 1, 1), weight_bits, signed=True, narrow=True),
            _quant(f"q_{b}", b, acc_scale, 32, signed=True),
        ):
            nodes.append(quant[0])
            initializers += quant[1]
        inputs = [source, f"q_{w}", f"q_{b}"]
        nodes.append(helper.make_node("Conv", inputs, [conv], pads=pads, strides=strides))
        if index == len(layers) - 1:
            quant = _quant("q_out", conv, 2.0**-6, 8, signed=True, out="y")
        else:
            if not signed:
                nodes.append(helper.make_node("Relu", [conv], [f"relu{index}"]))
            act_in = conv if signed else f"relu{index}"
            quant = _quant(f"q_act{index}", act_in, act_scale, act_bits, signed=signed)
            source, source_scale = f"q_act{index}", act_scale
        nodes.append(quant[0])
        initializers += quant[1]
    opsets = [("", 13), (QONNX, 1)]
    return _model(
        nodes, initializers, opsets, name="conv_chain", x_shape=(1, 3, 7, 7), y_shape=(1, 4, 4, 4)
    )


def _bipolar(name: str, x: str, scale, out: str | None = None):
    """A QONNX BipolarQuant node (+scale where x >= 0, else -scale) and its scale."""
    node = helper.make_node(
        "BipolarQuant", [x, f"{name}_scale"], [out or name], name=name, domain=QONNX
    )
    return node, [_const(f"{name}_scale", scale)]


def binary_chain_model(channels: tuple[int, ...] = (5, 11, 6), hidden: int = 13, seed: int = 0):
    """A binary network on (1, 3, 9, 9), unpadded as binary layers are on the array (a padding
    value of 0 is not binary): Quant(x, 8 bits) -> Conv 3x3 (3 -> channels[0]) -> Conv 3x3
    stride 2 -> Conv 1x1 -> Flatten -> Gemm (hidden) -> Gemm (10) -> Quant(8 bits), every
    weight BipolarQuant (+-1/8: float32 is exact) and every activation but the output a
    BipolarQuant of its conv's or Gemm's result plus an integer bias."""
    rng = np.random.default_rng(seed)
    kernels = ((3, 1), (3, 2), (1, 1))  # (kernel, stride)
    node, initializers = _quant("q_in", "x", 2.0**-5, 8, signed=True)
    nodes, source, source_scale, previous, size = [node], "q_in", 2.0**-5, 3, 9
    weight_scale = 2.0**-3

    def layer(index: int, shape, op: str, **attributes) -> str:
        w, b, out = f"w{index}", f"b{index}", f"{op.lower()}{index}"
        acc_scale = source_scale * weight_scale
        initializers.extend(
            [
                _const(w, rng.standard_normal(shape)),
                _const(b, rng.integers(-6, 7, size=shape[0]) * acc_scale),
            ]
        )
        quant_w = _bipolar(f"q_{w}", w, weight_scale)
        quant_b = _quant(f"q_{b}", b, acc_scale, 32, signed=True)
        for quant in (quant_w, quant_b):
            nodes.append(quant[0])
            initializers.extend(quant[1])
        nodes.append(helper.make_node(op, [source, f"q_{w}", f"q_{b}"], [out], **attributes))
        return out

    for index, ((kernel, stride), count) in enumerate(zip(kernels, channels, strict=True)):
        shape = (count, previous, kernel, kernel)
        conv = layer(index, shape, "Conv", strides=[stride, stride])
        node, extra = _bipolar(f"a{index}", conv, 1.0)
        nodes.append(node)
        initializers.extend(extra)
        source, source_scale, previous = f"a{index}", 1.0, count
        size = (size - kernel) // stride + 1
    nodes.append(helper.make_node("Flatten", [source], ["flat"]))
    source = "flat"
    features = previous * size * size
    gemm = layer(3, (hidden, features), "Gemm", transB=1)
    node, extra = _bipolar("a3", gemm, 1.0)
    nodes.append(node)
    initializers.extend(extra)
    source, source_scale = "a3", 1.0
    logits = layer(4, (10, hidden), "Gemm", transB=1)
    quant = _quant("q_out", logits, 2.0**-2, 8, signed=True, out="y")
    nodes.append(quant[0])
    initializers.extend(quant[1])
    opsets = [("", 13), (QONNX, 1)]
    return _model(nodes, initializers, opsets, name="binary_chain", x_shape=(1, 3, 9, 9))


def _conv_head(rng, pads: list[int]) -> tuple[list, list, np.ndarray]:
    """Quant(x, 8 bits) -> Conv 3x3 (2 -> 6, 4-bit weights, an int32 bias) -> "conv": the
    nodes, initializers and accumulator scales (per channel) of the models below, with
    power-of-two scales."""
    node, initializers = _quant("q_in", "x", 2.0**-5, 8, signed=True)
    nodes = [node]
    w, w_scale = _weights(rng, (6, 2, 3, 3), 4, narrow=True)
    acc_scale = 2.0**-5 * w_scale
    initializers += [
        _const("w", w * w_scale.reshape(-1, 1, 1, 1)),
        _const("b", rng.integers(-40, 40, size=6) * acc_scale),
    ]
    for quant in (
        _quant("q_w", "w", w_scale.reshape(-1, 1, 1, 1), 4, signed=True, narrow=True),
        _quant("q_b", "b", acc_scale, 32, signed=True),
    ):
        nodes.append(quant[0])
        initializers += quant[1]
    nodes.append(helper.make_node("Conv", ["q_in", "q_w", "q_b"], ["conv"], pads=pads))
    return nodes, initializers, acc_scale


def _classifier(rng, source: str, features: int, scale: float) -> tuple[list, list]:
    """Flatten(`source`, of `features` values at `scale`) -> Gemm (10, 4-bit weights) ->
    Quant(8 bits) -> "y"."""
    fc, fc_scale = _weights(rng, (10, features), 4, narrow=True)
    initializers = [_const("fc", fc * fc_scale.reshape(-1, 1)), _const("fc_b", np.zeros(10))]
    nodes = [helper.make_node("Flatten", [source], ["flat"])]
    for quant in (
        _quant("q_fc", "fc", fc_scale.reshape(-1, 1), 4, signed=True, narrow=True),
        _quant("q_fc_b", "fc_b", scale * fc_scale, 32, signed=True),
    ):
        nodes.append(quant[0])
        initializers += quant[1]
    nodes.append(helper.make_node("Gemm", ["flat", "q_fc", "q_fc_b"], ["logits"], transB=1))
    quant = _quant("q_out", "logits", 2.0**-1, 8, signed=True, out="y")
    return [*nodes, quant[0]], initializers + quant[1]


def trunc_pool_model(
    mode: str = "FLOOR", *, kernel: int = 2, shift: int = 0, seed: int = 0
) -> onnx.ModelProto:
    """Brevitas' TruncAvgPool2d as it exports to QONNX (AveragePool -> Trunc v2): Quant(x,
    8 bits) -> Conv 3x3 pad 1 (2 -> 6) -> Relu -> Quant(4 bits, unsigned) -> AveragePool
    `kernel` -> Trunc(`mode`, 4 bits unsigned) -> Flatten -> Gemm -> Quant(8 bits), on
    (1, 2, 8, 8); power-of-two scales. The Trunc's input scale is the pool's sum's (the
    activation's over kernel**2), its output scale the activation's times 2**shift: the
    sum is divided by kernel**2 * 2**shift (with shift -1, the output clamps)."""
    rng = np.random.default_rng(seed)
    act_scale = 2.0**-2
    count = kernel * kernel
    nodes, initializers, _ = _conv_head(rng, [1, 1, 1, 1])
    nodes.append(helper.make_node("Relu", ["conv"], ["relu"]))
    quant = _quant("q_act", "relu", act_scale, 4, signed=False)
    nodes.append(quant[0])
    initializers += quant[1]
    nodes.append(
        helper.make_node(
            "AveragePool", ["q_act"], ["pool"], kernel_shape=[kernel] * 2, strides=[kernel] * 2
        )
    )
    in_bits = 4 + int(np.log2(count))
    initializers += [
        _const("t_scale", act_scale / count),
        _const("t_zero", 0.0),
        _const("t_in_bits", float(in_bits)),
        _const("t_out_scale", act_scale * 2.0**shift),
        _const("t_out_bits", 4.0),
    ]
    nodes.append(
        helper.make_node(
            "Trunc",
            ["pool", "t_scale", "t_zero", "t_in_bits", "t_out_scale", "t_out_bits"],
            ["trunc"],
            domain=QONNX,
            rounding_mode=mode,
            signed=0,
        )
    )
    size = 8 // kernel
    head = _classifier(rng, "trunc", 6 * size * size, act_scale * 2.0**shift)
    nodes += head[0]
    initializers += head[1]
    opsets = [("", 13), (QONNX, 2)]  # Trunc v2
    return _model(nodes, initializers, opsets, name="trunc_pool", x_shape=(1, 2, 8, 8))


def threshold_model(after: str, *, spread: int = 100, seed: int = 0) -> onnx.ModelProto:
    """FINN's MultiThreshold, on (1, 2, 6, 6): Quant(x, 8 bits) -> Conv 3x3 (2 -> 6, 4-bit
    weights) -> [Relu -> Quant(4 bits) when `after` is "act"] -> MultiThreshold -> Flatten
    -> Gemm -> Quant(8 bits). After the Conv, 7 thresholds per channel on its float result
    (some exactly on an accumulator value, the rest between two), out_scale 0.5 and
    out_bias -2 (accumulator values from -`spread` to `spread`); after the activation, 3
    thresholds for every channel, out_scale 1.
    Power-of-two scales: QONNX's float32 is exact."""
    rng = np.random.default_rng(seed)
    nodes, initializers, acc_scale = _conv_head(rng, [0, 0, 0, 0])
    if after == "act":
        nodes.append(helper.make_node("Relu", ["conv"], ["relu"]))
        quant = _quant("q_act", "relu", 2.0**-2, 4, signed=False)
        nodes.append(quant[0])
        initializers += quant[1]
        source, steps, out_scale, out_bias = "q_act", 3, 1.0, 0.0
        thresholds = np.sort(rng.integers(0, 16, size=(1, steps)) * 2.0**-2 - 2.0**-3, axis=1)
    else:
        source, steps, out_scale, out_bias = "conv", 7, 0.5, -2.0
        limits = np.sort(rng.integers(-spread, spread, size=(6, steps)), axis=1)
        halves = rng.random((6, steps)) < 0.5  # between two accumulator values
        thresholds = (limits - 0.5 * halves) * acc_scale[:, None]
    initializers.append(_const("thresholds", thresholds))
    nodes.append(
        helper.make_node(
            "MultiThreshold",
            [source, "thresholds"],
            ["thresholded"],
            domain=QONNX,
            out_dtype=f"UINT{int(steps).bit_length()}",
            out_scale=out_scale,
            out_bias=out_bias,
        )
    )
    head = _classifier(rng, "thresholded", 6 * 4 * 4, out_scale)
    nodes += head[0]
    initializers += head[1]
    return _model(nodes, initializers, [("", 13), (QONNX, 1)], name=f"threshold_{after}")
