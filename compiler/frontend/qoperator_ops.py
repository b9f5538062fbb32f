"""QOperator ops (QLinearConv, QGemm, QLinearAdd, ...) and the integer-only ConvInteger and
MatMulInteger: each states its inputs' and output's quantization, so it becomes IR ops at
once."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from verdigris.compiler import ir
from verdigris.compiler.frontend import builders
from verdigris.compiler.frontend.onnx_file import attributes
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
    QConst,
    Skip,
    check_qparams,
    full_clamp,
    transposed,
    uint8_shift,
)

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = [
    "conv_integer",
    "matmul_integer",
    "qgemm",
    "qlinear_add",
    "qlinear_average_pool",
    "qlinear_concat",
    "qlinear_conv",
    "qlinear_global_average_pool",
    "qlinear_matmul",
]


def qlinear_conv(im: Importer, node: onnx.NodeProto) -> None:
    x = _quantized_input(im, node, 0, 1, 2)
    weight = _qconst_from(im, node, 3, 4, 5, axis=0)
    attrs = explicit_pads(attributes(node), x.shape, weight.values.shape[2:])
    shape = conv_output(x.shape, weight.values.shape, attrs)
    out = _quantized_output(im, node, 6, 7, shape)
    bias = _int32_bias(im, node, 8)
    im.emit(builders.conv(node, x, weight, bias, attrs, out, full_clamp(out)))
    im.values[out.name] = Act(out.name)


def conv_integer(im: Importer, node: onnx.NodeProto) -> None:
    x = _integer_input(im, node)
    weight = _qconst_from(im, node, 1, None, 3, axis=0)
    attrs = explicit_pads(attributes(node), x.shape, weight.values.shape[2:])
    shape = conv_output(x.shape, weight.values.shape, attrs)
    out = im.new_tensor(node.output[0], shape, "int32", None, 0)
    im.emit(builders.conv(node, x, weight, None, attrs, out, None))
    im.values[out.name] = Act(out.name)


def qlinear_matmul(im: Importer, node: onnx.NodeProto) -> None:
    x = _quantized_input(im, node, 0, 1, 2)
    weight = _qconst_from(im, node, 3, 4, 5, axis=-1)
    out = _quantized_output(im, node, 6, 7, matmul_shape(x.shape, weight.values.shape))
    im.emit(builders.matmul(node, x, weight, None, out, full_clamp(out)))
    im.values[out.name] = Act(out.name)


def matmul_integer(im: Importer, node: onnx.NodeProto) -> None:
    x = _integer_input(im, node)
    weight = _qconst_from(im, node, 1, None, 3, axis=-1)
    shape = matmul_shape(x.shape, weight.values.shape)
    out = im.new_tensor(node.output[0], shape, "int32", None, 0)
    im.emit(builders.matmul(node, x, weight, None, out, None))
    im.values[out.name] = Act(out.name)


def qgemm(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    x = _quantized_input(im, node, 0, 1, 2)
    weight = _qconst_from(im, node, 3, 4, 5, axis=0 if attrs.get("transB", 0) else -1)
    weight = transposed(weight) if attrs.get("transB", 0) else weight
    bias = _int32_bias(im, node, 6)
    if len(node.input) <= 7 or not node.input[7]:
        raise Skip("QGemm without y_scale (float output) is not supported")
    out = _quantized_output(im, node, 7, 8, matmul_shape(x.shape, weight.values.shape))
    alpha = attrs.get("alpha", 1.0)
    im.emit(builders.matmul(node, x, weight, bias, out, full_clamp(out), alpha=alpha))
    im.values[out.name] = Act(out.name)


def qlinear_add(im: Importer, node: onnx.NodeProto) -> None:
    a = _quantized_input(im, node, 0, 1, 2)
    b = _quantized_input(im, node, 3, 4, 5)
    if a.shape != b.shape:
        raise Skip(f"Add of shapes {list(a.shape)} and {list(b.shape)} (no broadcasting)")
    out = _quantized_output(im, node, 6, 7, a.shape)
    im.emit(builders.add(node, a, b, out, full_clamp(out)))
    im.values[out.name] = Act(out.name)


def qlinear_global_average_pool(im: Importer, node: onnx.NodeProto) -> None:
    x = _quantized_input(im, node, 0, 1, 2)
    _qlinear_pool(im, node, x, {"kernel_shape": list(x.shape[2:])})


def qlinear_average_pool(im: Importer, node: onnx.NodeProto) -> None:
    x = _quantized_input(im, node, 0, 1, 2)
    attrs = attributes(node)
    _qlinear_pool(im, node, x, average_pool_pads(attrs, x.shape))


def _qlinear_pool(im: Importer, node, x: ir.Tensor, attrs: dict) -> None:
    out = _quantized_output(im, node, 3, 4, pool_output(x.shape, attrs))
    im.emit(builders.avgpool(node, x, out, attrs, full_clamp(out), x.scale))
    im.values[out.name] = Act(out.name)


def qlinear_concat(im: Importer, node: onnx.NodeProto) -> None:
    parts = []
    for position in range(2, len(node.input), 3):
        parts.append(_quantized_input(im, node, position, position + 1, position + 2))
    if not parts:
        raise Skip("QLinearConcat without inputs to concatenate")
    shape, axis = concat_shape([p.shape for p in parts], attributes(node)["axis"])
    out = _quantized_output(im, node, 0, 1, shape)
    ops, tensors = builders.concat(node, parts, out, full_clamp(out), axis)
    for tensor in tensors:
        im.add_tensor(tensor, "int8")
    for op in ops:
        im.emit(op)
    im.values[out.name] = Act(out.name)


def _quantized_input(im: Importer, node, value_pos: int, scale_pos: int, zp_pos: int) -> ir.Tensor:
    """A QOperator input: the device tensor with the quantization this node states."""
    x = im.activation(node.input[value_pos], float_view=False)
    if x.dtype != ir.INT8:
        raise Skip(f"input '{x.name}' is int{x.dtype.bits}, not an int8/uint8 activation")
    scale, zero, model_dtype = im.qparams(node, scale_pos, zp_pos)
    shift = uint8_shift(model_dtype)
    return replace(x, scale=float(scale.item()), zero_point=int(zero.item()) - shift)


def _quantized_output(
    im: Importer, node, scale_pos: int, zp_pos: int, shape: tuple[int, ...]
) -> ir.Tensor:
    """A QOperator output: a new device tensor of `shape` with the quantization this node
    states."""
    scale, zero, model_dtype = im.qparams(node, scale_pos, zp_pos)
    if model_dtype not in ("int8", "uint8"):
        raise Skip(f"activations of type {model_dtype} are not supported (int8/uint8)")
    return im.new_tensor(node.output[0], shape, model_dtype, float(scale.item()), int(zero.item()))


def _int32_bias(im: Importer, node, position: int) -> QConst | None:
    """A QOperator bias: int32 in accumulator units (no scale of its own), or None."""
    bias = im.opt_const(node, position, "the bias")
    return None if bias is None else QConst(bias, np.array([np.nan]), np.zeros(1), 0)


def _integer_input(im: Importer, node) -> ir.Tensor:
    """The input of ConvInteger / MatMulInteger with its zero point (input 2)."""
    x = im.activation(node.input[0], float_view=False)
    zero = im.opt_const(node, 2, "the input zero point")
    shift = uint8_shift(im.model_dtype[x.name])
    if zero is None:
        return replace(x, zero_point=0 - shift)
    if zero.size != 1:
        raise Skip("a per-row input zero point is not supported")
    return replace(x, zero_point=int(zero.item()) - shift)


def _qconst_from(im: Importer, node, value_pos, scale_pos, zp_pos, axis: int) -> QConst:
    values = im.const(node.input[value_pos], "the weight")
    if scale_pos is None:
        scale = np.array([np.nan])  # integer-only op: no scale
    else:
        scale = im.const(node.input[scale_pos], "the weight scale")
        check_qparams(scale, None)
        scale = scale.astype(np.float64)
    zero = im.opt_const(node, zp_pos, "the weight zero point")
    if zero is not None:
        check_qparams(np.ones(1), zero)
    zero = np.zeros(1, np.int64) if zero is None else zero.astype(np.int64)
    axis = axis + values.ndim if axis < 0 else axis
    return QConst(values, scale.reshape(-1), zero.reshape(-1), axis)
