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
)
from verdigris.compiler.quantize import IDENTITY

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["ROUNDING_MODES", "bipolar_quant", "quant"]


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
    mode = attrs.get("rounding_mode", b"ROUND")
    mode = (mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)).upper()
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
