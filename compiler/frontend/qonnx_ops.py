"""QONNX's quantizers (Brevitas and FINN export them): `Quant` (`IntQuant`) and
`BipolarQuant`, in the domains `qonnx.custom_op.general`, `finn.custom_op.general` and
`onnx.brevitas`.

A QONNX quantizer is a QuantizeLinear and a DequantizeLinear in one node: its output is the
float value of the integers it rounds to. On a constant it makes a quantized constant (the
weights and biases, any bit width, any rounding mode); on an activation it fixes the device
tensor's type (`int4`, `uint2`, ...: the device holds it in an int8) and leaves a float view
of it, which the next compute node reads as it reads a DequantizeLinear's. The arithmetic of
each node, and what the device does with it, is in docs/quantization.md ("Fewer than 8 bits").
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from verdigris.arch.isa import LUT_ENTRIES
from verdigris.compiler import ir
from verdigris.compiler.frontend.onnx_file import attributes
from verdigris.compiler.frontend.qdq import quantize
from verdigris.compiler.frontend.values import (
    Act,
    Pending,
    QConst,
    Skip,
    check_qparams,
    model_range,
    narrowest_type,
)
from verdigris.compiler.quantize import IDENTITY

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["ROUNDING_MODES", "bipolar_quant", "multi_threshold", "quant", "trunc"]


def _half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _half_toward(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.ceil(np.abs(x) - 0.5)


# QONNX's rounding modes (its IntQuant specification), as functions of float32 arrays.
ROUNDING_MODES = {
    "ROUND": np.rint,  # half to even
    "HALF_EVEN": np.rint,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),  # away from zero
    "DOWN": np.trunc,  # toward zero
    "ROUND_TO_ZERO": np.trunc,
    "HALF_UP": _half_away,
    "HALF_DOWN": _half_toward,
}


def _narrowed(model_dtype: str, narrow: bool) -> tuple[int, int]:
    """The integers of a QONNX quantizer: its type's, and with `narrow` one fewer (QONNX's
    min_int and max_int: signed 4 bits [-7, 7], unsigned [0, 14])."""
    low, high = model_range(model_dtype)
    if not narrow:
        return low, high
    return (low + 1, high) if low < 0 else (low, high - 1)


def quant(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    scale = _scale(im, node)
    zero = _integral(im.const(node.input[2], "the zero point"), "zero point")
    bits = _integral(im.const(node.input[3], "the bit width"), "bit width")
    if bits.size != 1 or not 1 <= int(bits.item()) <= 32:
        raise Skip(f"bit width {bits.reshape(-1)[:4].tolist()}: one number from 1 to 32 needed")
    bits = int(bits.item())
    model_dtype = f"{'' if attrs.get('signed', 1) else 'u'}int{bits}"
    low, high = _narrowed(model_dtype, bool(attrs.get("narrow", 0)))
    mode = _mode(attrs.get("rounding_mode", b"ROUND"))
    if mode not in ROUNDING_MODES:
        raise Skip(f"rounding_mode {mode!r} is not one of {sorted(ROUNDING_MODES)}")
    source = im.values.get(node.input[0])
    if isinstance(source, np.ndarray):
        axis = _channel_axis(scale, zero, source.shape)
        x = source.astype(np.float32)
        # QONNX clamps before it rounds; with integer bounds that is the same as after.
        q = ROUNDING_MODES[mode](x / scale.astype(np.float32) + zero.astype(np.float32))
        values = np.clip(q, low, high).astype(np.int64)
        im.values[node.output[0]] = _constant(values, scale, zero, axis)
        return
    if mode != "ROUND":
        raise Skip(
            f"rounding_mode {mode} on an activation: the device's requantizer rounds half to "
            "even (ROUND); quantize activations with ROUND"
        )
    if scale.size != 1 or zero.size != 1:
        raise Skip("per-channel activation quantization is not supported")
    out = node.output[0]
    quantize(im, node, source, out, scale.reshape(()), zero.reshape(()), model_dtype, (low, high))
    tensor = im.tensors[out]
    view = ir.Dequantize(scale=float(scale.item()), zero_point=tensor.zero_point)
    im.values[out] = Act(out, (view,))


def bipolar_quant(im: Importer, node: onnx.NodeProto) -> None:
    """BipolarQuant: +scale where x >= 0, else -scale. On a constant, binary weights. On an
    activation, the sign of the accumulator of the Conv or Gemm before it (or of a float
    view's integers): the requantizer passes the accumulator through unscaled, clamped to
    int8 (which keeps its sign), and a lookup table maps it to -1 or +1."""
    scale = _scale(im, node)
    source = im.values.get(node.input[0])
    out = node.output[0]
    if isinstance(source, np.ndarray):
        zero = np.zeros(scale.shape, np.int64)
        axis = _channel_axis(scale, zero, source.shape)
        values = np.where(source.astype(np.float32) >= 0, 1, -1).astype(np.int64)
        im.values[out] = _constant(values, scale, zero, axis)
        return
    if scale.size != 1:
        raise Skip("per-channel activation quantization is not supported")
    if isinstance(source, Pending) and source.node.op_type in _ACCUMULATING:
        if source.low is not None or source.high is not None:
            raise Skip(f"a Relu or Clip between {source.node.op_type} and a binary activation")
        tensor = im.new_tensor(out, source.shape, "int2", float(scale.item()), 0)
        im.emit_pending(source, tensor, (-1, 1), requant=_SIGN)
    elif isinstance(source, Act) and source.is_float_view:
        x = im.activation(node.input[0], float_view=True)
        tensor = im.new_tensor(out, x.shape, "int2", float(scale.item()), 0)
        im.emit(
            ir.Requantize(
                name=node.name or out,
                inputs=(x.name,),
                output=out,
                input_zero_point=x.zero_point,
                requant=_SIGN,
            )
        )
    else:
        after = source.node.op_type if isinstance(source, Pending) else "this input"
        raise Skip(
            f"a binary activation after {after} is not supported (after a Conv, Gemm or "
            "MatMul, or of a quantized tensor, it is)"
        )
    im.values[out] = Act(out, (ir.Dequantize(scale=float(scale.item()), zero_point=0),))


def _mode(value) -> str:
    """A rounding_mode attribute as an upper-case name."""
    return (value.decode(errors="replace") if isinstance(value, bytes) else str(value)).upper()


# Trunc's rounding modes, as the bias of an accumulator of twice the integer sum s: the
# requantizer's round half to even of (2s + bias) / 2**(k+1) is then floor(s / 2**k) (the
# numerator is odd, never a tie), ceil(s / 2**k), or s / 2**k rounded half to even.
_TRUNC_BIAS = {
    "FLOOR": lambda k: 1 - (1 << k),
    "CEIL": lambda k: (1 << k) - 1,
    "ROUND": lambda _k: 0,
}
_POOLS = frozenset({"AveragePool", "GlobalAveragePool"})


def trunc(im: Importer, node: onnx.NodeProto) -> None:
    """Trunc (QONNX v2; Brevitas' TruncAvgPool2d exports AveragePool -> Trunc) of an average
    pool of a quantized tensor: round(x / scale + zero) is the pool's window sum s plus the
    zero point, and the output is clamp(rounding_mode((s + zero) / 2**k)) at the output
    scale, k = log2(output_scale / scale) rounded. The AvgPool computes it exactly: its
    accumulator is 2s plus a bias (`_TRUNC_BIAS`; docs/quantization.md, "Trunc")."""
    if len(node.input) != 6:
        raise Skip(
            f"Trunc with {len(node.input)} inputs: QONNX's Trunc v2 (x, scale, zero point, "
            "input bit width, output scale, output bit width, as Brevitas exports it) is "
            "supported"
        )
    attrs = attributes(node)
    mode = _mode(attrs.get("rounding_mode", b"FLOOR"))
    if mode not in _TRUNC_BIAS:
        raise Skip(f"Trunc rounding_mode {mode!r} is not one of {sorted(_TRUNC_BIAS)}")
    source = im.values.get(node.input[0])
    if not (isinstance(source, Pending) and source.node.op_type in _POOLS):
        after = source.node.op_type if isinstance(source, Pending) else "this input"
        raise Skip(
            f"a Trunc after {after} is not supported (after an AveragePool or a "
            "GlobalAveragePool of a quantized tensor, it is)"
        )
    scale = _scale(im, node)
    zero = _integral(im.const(node.input[2], "the zero point"), "zero point")
    out_scale = im.const(node.input[4], "the output scale").astype(np.float64)
    check_qparams(out_scale, None)
    bits = _integral(im.const(node.input[5], "the output bit width"), "output bit width")
    if any(value.size != 1 for value in (scale, zero, out_scale, bits)):
        raise Skip("per-channel Trunc is not supported")
    if not 1 <= int(bits.item()) <= 8:
        raise Skip(f"Trunc output bit width {int(bits.item())}: 1 to 8 bits are supported")
    x = im.activation(source.node.input[0], float_view=True)
    pool = attributes(source.node)
    count = int(np.prod(pool["kernel_shape"] if "kernel_shape" in pool else x.shape[2:]))
    if not np.isclose(scale.item() * count, x.scale, rtol=1e-5):
        raise Skip(
            f"Trunc scale {scale.item():.6g} is not the pool's sum's ({x.scale:.6g} / {count}): "
            "only a Trunc of the window sum is supported"
        )
    k = int(np.round(np.log2(out_scale.item() / scale.item())))
    zero = int(zero.item())
    if k < 0 or zero % (1 << k):
        raise Skip(
            f"Trunc by 2**{k} with zero point {zero}: a right shift (an output scale at least "
            "the input's) with a zero point that is a multiple of it is supported"
        )
    model_dtype = f"{'' if attrs.get('signed', 1) else 'u'}int{int(bits.item())}"
    low, high = _narrowed(model_dtype, bool(attrs.get("narrow", 0)))
    out = im.new_tensor(
        node.output[0], source.shape, model_dtype, float(out_scale.item()), zero >> k
    )
    offset = out.zero_point - (zero >> k)  # the device's integer less the model's
    requant = ir.Requant(
        multiplier=np.array([1 << 30]),
        shift=np.array([31 + k]),
        zero_point=offset,
        qmin=low + offset,
        qmax=high + offset,
    )
    bias = 2 * zero + _TRUNC_BIAS[mode](k)
    im.emit_pending(
        source, out, (low + offset, high + offset), requant=requant, tap_multiplier=2, bias=bias
    )
    im.values[out.name] = Act(
        out.name, (ir.Dequantize(scale=out.scale, zero_point=out.zero_point),)
    )


def multi_threshold(im: Importer, node: onnx.NodeProto) -> None:
    """MultiThreshold (FINN's threshold activation): out_scale * (how many of its channel's
    thresholds x is at least) + out_bias. Of a quantized tensor, a lookup table on its
    integers; after a Conv, Gemm or MatMul, on its accumulator, whose thresholds are then
    integers: the requantizer passes the accumulator less the lowest of them, clamped to
    int8, and a per-channel table counts (docs/quantization.md, "MultiThreshold")."""
    attrs = attributes(node)
    layout = _mode(attrs.get("data_layout", b"NCHW"))
    thresholds = im.const(node.input[1], "the thresholds").astype(np.float64)
    out_scale = float(attrs.get("out_scale", 1.0))
    out_bias = float(attrs.get("out_bias", 0.0))
    source = im.values.get(node.input[0])
    accumulating = isinstance(source, Pending) and source.node.op_type in _ACCUMULATING
    shape = source.shape if accumulating else im.activation(node.input[0], float_view=True).shape
    if layout != "NCHW" and len(shape) == 4:
        raise Skip(f"MultiThreshold data_layout {layout}: NCHW is supported")
    channels = shape[1]
    if thresholds.ndim != 2 or thresholds.shape[0] not in (1, channels):
        raise Skip(
            f"thresholds of shape {list(thresholds.shape)}: (channels, steps) or (1, steps) "
            f"for {channels} channels"
        )
    steps = thresholds.shape[1]
    zero = -out_bias / out_scale
    if not (out_scale > 0 and zero == round(zero) and steps < LUT_ENTRIES):
        raise Skip(
            f"out_scale {out_scale:g} and out_bias {out_bias:g} with {steps} thresholds: a "
            "positive scale, a bias that is a whole number of it, at most 255 thresholds"
        )
    model_dtype = narrowest_type(0, steps, signed=False)
    out = im.new_tensor(node.output[0], shape, model_dtype, out_scale, int(zero))
    offset = out.zero_point - int(zero)
    levels = np.arange(LUT_ENTRIES) - LUT_ENTRIES // 2  # the int8 a table entry is for
    if accumulating:
        thresholds = np.broadcast_to(thresholds, (channels, steps))
        if source.low is not None or source.high is not None:
            raise Skip(f"a Relu or Clip between {source.node.op_type} and a MultiThreshold")
        op = source.build(out, (-128, 127))[-1]
        if op.weight_scale is None:
            raise Skip("a MultiThreshold after an op without weight scales")
        acc_scale = im.tensors[op.inputs[0]].scale * np.broadcast_to(op.weight_scale, (channels,))
        # The least accumulator at or above each threshold, as float64 sees it.
        limits = np.ceil(thresholds / acc_scale[:, None])
        limits += (limits - 1) * acc_scale[:, None] >= thresholds
        limits -= limits * acc_scale[:, None] < thresholds
        lowest, span = limits.min(axis=1), np.ptp(limits, axis=1)
        if span.max() > LUT_ENTRIES - 2:
            raise Skip(
                f"a channel's thresholds span {int(span.max())} accumulator steps; at most "
                f"{LUT_ENTRIES - 2} fit the int8 a lookup table reads"
            )
        shift = -(LUT_ENTRIES // 2 - 1) - lowest.astype(np.int64)  # lowest -> -127
        values = levels[None, :] - shift[:, None]  # per channel, the accumulator of each int8
        table = (values[:, :, None] >= limits[:, None, :]).sum(axis=2) + offset
        im.emit_pending(
            source, out, (-128, 127), requant=replace(IDENTITY, table=table), bias=op.bias + shift
        )
    else:
        x = im.activation(node.input[0], float_view=True)
        values = (levels - x.zero_point).astype(np.float32) * np.float32(x.scale)
        # One table per channel, or one for all where the thresholds are.
        table = (values[None, :, None] >= thresholds[:, None, :].astype(np.float32)).sum(axis=2)
        im.emit(
            ir.Requantize(
                name=node.name or out.name,
                inputs=(x.name,),
                output=out.name,
                input_zero_point=0,
                requant=replace(IDENTITY, table=table + offset),
            )
        )
    im.values[out.name] = Act(
        out.name, (ir.Dequantize(scale=out.scale, zero_point=out.zero_point),)
    )


# The compute nodes whose pending result is an accumulator (its sign is the value's).
_ACCUMULATING = frozenset({"Conv", "Gemm", "MatMul"})
# -1 where the int8 value is negative, else +1 (QONNX's BipolarQuant: x >= 0 is +1).
_SIGN = replace(
    IDENTITY,
    table=np.where(np.arange(LUT_ENTRIES) - LUT_ENTRIES // 2 >= 0, 1, -1)[None, :].astype(np.int64),
)


def _scale(im: Importer, node: onnx.NodeProto) -> np.ndarray:
    scale = im.const(node.input[1], "the scale")
    check_qparams(scale, None)  # QONNX's zero point is a float: `_integral` checks it
    return scale.astype(np.float64)


def _integral(value: np.ndarray, what: str) -> np.ndarray:
    """QONNX stores zero points and bit widths as floats: they must hold integers."""
    if not np.all(np.isfinite(value)) or not np.array_equal(value, np.round(value)):
        raise Skip(f"{what} {value.reshape(-1)[:4].tolist()} is not an integer")
    return np.round(value).astype(np.int64)


def _channel_axis(scale: np.ndarray, zero: np.ndarray, shape: tuple[int, ...]) -> int | None:
    """The axis QONNX's parameters vary along, for a constant of `shape`: they broadcast
    against it, one per channel (a Conv weight's (C, 1, 1, 1), a Gemm's (C, 1)), or are one
    for all (None)."""
    problem = Skip(
        f"scales of shape {list(np.shape(scale))} and zero points of shape "
        f"{list(np.shape(zero))} for a constant of shape {list(shape)}: one for all, or one "
        "per channel of one axis, needed"
    )
    try:
        params = np.broadcast_shapes(np.shape(scale), np.shape(zero))
    except ValueError:
        raise problem from None
    if int(np.prod(params)) == 1:
        return None
    padded = (1,) * (len(shape) - len(params)) + tuple(params)
    axes = [axis for axis, size in enumerate(padded) if size > 1]
    if len(padded) != len(shape) or len(axes) != 1 or padded[axes[0]] != shape[axes[0]]:
        raise problem
    return axes[0]


def _constant(values: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int | None) -> QConst:
    """A quantized constant from QONNX's parameters, per channel along `axis` or one."""
    scale, zero = np.broadcast_arrays(scale, zero)
    if axis is None:
        return QConst(values, scale.reshape(()), zero.reshape(()), 0)
    return QConst(values, scale.reshape(-1).copy(), zero.reshape(-1).copy(), axis)
