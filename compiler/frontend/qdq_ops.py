"""The float compute ops of a QDQ graph (DequantizeLinear -> op -> QuantizeLinear).

Each handler reads its inputs as float views of device tensors and leaves a `Pending`
result: the ops are built once the QuantizeLinear after it fixes the output type. A Relu or
Clip between the op and its QuantizeLinear narrows the pending result's bounds, so the
activation becomes the op's clamp (fused); on anything else it is a standalone rescale with
that clamp. MaxPool also takes a QOperator graph's integer tensor directly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from verdigris.compiler import ir
from verdigris.compiler.frontend import builders
from verdigris.compiler.frontend.onnx_file import attributes
from verdigris.compiler.frontend.qdq import clamp_tensor
from verdigris.compiler.frontend.shapes import (
    average_pool_pads,
    concat_shape,
    conv_output,
    explicit_pads,
    matmul_shape,
    pool_output,
)
from verdigris.compiler.frontend.values import (
    Act,
    Pending,
    QConst,
    Skip,
    along,
    model_range,
    narrowest_type,
    per_channel,
    transposed,
)

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = [
    "add",
    "average_pool",
    "batch_normalization",
    "clip",
    "concat",
    "conv",
    "gemm",
    "global_average_pool",
    "matmul",
    "max_pool",
    "relu",
]


def conv(im: Importer, node: onnx.NodeProto) -> None:
    x = im.activation(node.input[0], float_view=True)
    weight = im.weight(node.input[1])
    bias = im.optional_input(node, 2)
    attrs = explicit_pads(attributes(node), x.shape, weight.values.shape[2:])
    im.values[node.output[0]] = _conv_pending(node, x, weight, bias, attrs)


def _conv_pending(node, x: ir.Tensor, weight: QConst, bias, attrs: dict) -> Pending:
    def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
        return [builders.conv(node, x, weight, bias, attrs, out, clamp)]

    def affine(a: np.ndarray, b: np.ndarray) -> Pending:
        return _conv_pending(node, x, *_scaled_channels(weight, bias, a, b, axis=0), attrs)

    shape = conv_output(x.shape, weight.values.shape, attrs)
    return Pending(node, build, shape, affine=affine)


def gemm(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    _matmul_node(im, node, transpose_b=bool(attrs.get("transB", 0)), alpha=attrs.get("alpha", 1.0))


def matmul(im: Importer, node: onnx.NodeProto) -> None:
    _matmul_node(im, node, transpose_b=False, alpha=1.0)


def _matmul_node(im: Importer, node, *, transpose_b: bool, alpha: float) -> None:
    x = im.activation(node.input[0], float_view=True)
    weight = im.weight(node.input[1])
    bias = im.optional_input(node, 2)
    beta = attributes(node).get("beta", 1.0)
    weight = transposed(weight) if transpose_b else weight
    im.values[node.output[0]] = _matmul_pending(node, x, weight, bias, alpha, beta)


def _matmul_pending(node, x: ir.Tensor, weight: QConst, bias, alpha: float, beta: float) -> Pending:
    def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
        return [builders.matmul(node, x, weight, bias, out, clamp, alpha=alpha, beta=beta)]

    def affine(a: np.ndarray, b: np.ndarray) -> Pending:
        real_bias = None if bias is None else beta * _real(bias)
        scaled = _scaled_channels(weight, real_bias, a, b, axis=weight.values.ndim - 1)
        return _matmul_pending(node, x, *scaled, alpha, 1.0)

    return Pending(node, build, matmul_shape(x.shape, weight.values.shape), affine=affine)


def _real(bias) -> np.ndarray:
    """A bias's float values: a quantized constant's, or the float constant itself."""
    return bias.real() if isinstance(bias, QConst) else np.asarray(bias, np.float64)


def _scaled_channels(
    weight: QConst, bias, a: np.ndarray, b: np.ndarray, axis: int
) -> tuple[QConst, np.ndarray]:
    """The weight and float bias of the op whose output channel c is a[c] * y[c] + b[c], y
    the op's own: the weight's scales times |a| (its integers negated where a < 0, so that
    the requantizer's multiplier stays positive), the bias a * bias + b."""
    channels = weight.values.shape[axis]
    a, b = (np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (channels,)) for v in (a, b))
    if not np.all(np.isfinite(a)) or np.any(a == 0) or not np.all(np.isfinite(b)):
        raise Skip(f"a BatchNormalization whose scale is 0 or not finite ({a[:4].tolist()})")
    sign = np.where(a < 0, -1, 1)
    values = weight.values.astype(np.int64) * along(sign, axis, weight.values.ndim)
    zero = np.broadcast_to(np.asarray(weight.zero_point).reshape(-1), (channels,)) * sign
    scale = per_channel(weight.scale, channels) * np.abs(a)
    real_bias = 0.0 if bias is None else np.broadcast_to(_real(bias).reshape(-1), (channels,))
    return QConst(values, scale, zero, axis), a * real_bias + b


def batch_normalization(im: Importer, node: onnx.NodeProto) -> None:
    """Folded into the Conv or Gemm before it: y' = a * y + b per channel, with a = gamma /
    sqrt(var + epsilon) and b = beta - a * mean (in float64; ONNX's float32 evaluation can
    differ by a rounding tie). Elsewhere it runs on the host."""
    source = im.values.get(node.input[0])
    if not isinstance(source, Pending) or source.affine is None:
        raise Skip("a BatchNormalization is folded into a Conv or Gemm right before it")
    if source.low is not None or source.high is not None:
        raise Skip("a Relu or Clip between the Conv or Gemm and its BatchNormalization")
    gamma, beta, mean, var = (
        im.const(node.input[i], what).astype(np.float64)
        for i, what in enumerate(("the scale", "the bias", "the mean", "the variance"), 1)
    )
    epsilon = attributes(node).get("epsilon", 1e-5)
    a = gamma / np.sqrt(var + epsilon)
    im.values[node.output[0]] = source.affine(a, beta - a * mean)


def add(im: Importer, node: onnx.NodeProto) -> None:
    a = im.activation(node.input[0], float_view=True)
    b = im.activation(node.input[1], float_view=True)
    if a.shape != b.shape:
        raise Skip(f"Add of shapes {list(a.shape)} and {list(b.shape)} (no broadcasting)")

    def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
        return [builders.add(node, a, b, out, clamp)]

    im.values[node.output[0]] = Pending(node, build, a.shape)


def max_pool(im: Importer, node: onnx.NodeProto) -> None:
    """The pool runs on the integers: of a QOperator graph's tensor, or of a QDQ float view,
    since the max of dequantized values is the dequantized max. The result is a view in the
    input's quantization, whatever follows (a QuantizeLinear to another scale rescales it;
    in QONNX and QCDQ graphs often nothing does)."""
    attrs = attributes(node)
    value = im.values.get(node.input[0])
    if not (isinstance(value, Act) and (not value.steps or value.is_float_view)):
        raise Skip(f"input '{node.input[0]}' is not a quantized activation")
    x = im.tensors[value.tensor]
    attrs = explicit_pads(attrs, x.shape, attrs["kernel_shape"])
    out = im.new_tensor(
        node.output[0],
        pool_output(x.shape, attrs),
        im.model_dtype[x.name],
        x.scale,
        im.model_zero_point(x),
    )
    im.emit(builders.maxpool(node, x, out.name, attrs))
    im.values[out.name] = Act(out.name, value.steps)


def average_pool(im: Importer, node: onnx.NodeProto) -> None:
    x = im.activation(node.input[0], float_view=True)
    attrs = attributes(node)
    _avgpool_pending(im, node, x, average_pool_pads(attrs, x.shape))


def global_average_pool(im: Importer, node: onnx.NodeProto) -> None:
    x = im.activation(node.input[0], float_view=True)
    _avgpool_pending(im, node, x, {"kernel_shape": list(x.shape[2:])})


def _avgpool_pending(im: Importer, node, x: ir.Tensor, attrs: dict) -> None:
    def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
        return [builders.avgpool(node, x, out, attrs, clamp, x.scale)]

    im.values[node.output[0]] = Pending(node, build, pool_output(x.shape, attrs))


def concat(im: Importer, node: onnx.NodeProto) -> None:
    axis = attributes(node)["axis"]
    parts = [im.activation(name, float_view=True) for name in node.input]
    shape, axis = concat_shape([p.shape for p in parts], axis)

    def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
        ops, tensors = builders.concat(node, parts, out, clamp, axis)
        for tensor in tensors:
            im.add_tensor(tensor, "int8")
        return ops

    im.values[node.output[0]] = Pending(node, build, shape)


def relu(im: Importer, node: onnx.NodeProto) -> None:
    _activation_fn(im, node, 0.0, None)


def clip(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    low = im.opt_const(node, 1, "the Clip minimum")
    high = im.opt_const(node, 2, "the Clip maximum")
    source = im.values.get(node.input[0])
    if isinstance(source, np.ndarray | QConst) or (isinstance(source, Act) and not source.steps):
        _integer_clip(im, node, source, low, high)
        return
    low = float(low) if low is not None else attrs.get("min")
    high = float(high) if high is not None else attrs.get("max")
    _activation_fn(im, node, low, high)


def _integer_clip(im: Importer, node, source, low, high) -> None:
    """A Clip of integers: the middle of a QCDQ triple (QuantizeLinear -> Clip ->
    DequantizeLinear), which narrows a quantized tensor or constant to fewer bits, or a Clip
    of a stored integer constant."""
    if isinstance(source, np.ndarray):
        im.values[node.output[0]] = np.clip(source, low, high).astype(source.dtype)
        return
    if isinstance(source, QConst):
        values = np.clip(source.values, low, high)
        im.values[node.output[0]] = QConst(values, source.scale, source.zero_point, source.axis)
        return
    x = im.tensors[source.tensor]
    model_dtype = im.model_dtype[x.name]
    type_low, type_high = model_range(model_dtype)
    bounds = (
        type_low if low is None else max(type_low, int(low)),
        type_high if high is None else min(type_high, int(high)),
    )
    narrow = narrowest_type(*bounds, signed=type_low < 0)
    clamp_tensor(im, node, x, node.output[0], narrow, bounds)


def _activation_fn(im: Importer, node, low: float | None, high: float | None) -> None:
    source = im.values.get(node.input[0])
    if isinstance(source, Pending):  # fused: the op's clamp narrows
        new_low = low if source.low is None or low is None else max(low, source.low)
        new_high = high if source.high is None or high is None else min(high, source.high)
        if source.low is not None and low is None:
            new_low = source.low
        if source.high is not None and high is None:
            new_high = source.high
        im.values[node.output[0]] = replace(source, low=new_low, high=new_high)
        return
    x = im.activation(node.input[0], float_view=True)

    def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
        return [builders.rescale(node.name, x, out, clamp)]

    im.values[node.output[0]] = Pending(node, build, x.shape, low, high)
