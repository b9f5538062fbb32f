"""QuantizeLinear and DequantizeLinear: where values enter and leave the integer domain.

A QuantizeLinear fixes the type of what it quantizes: a float model input becomes a device
input, a pending QDQ compute result gets its ops built, a dequantized activation is
rescaled (`elide_identity_rescales` removes the rescales that change nothing), and a
constant becomes a quantized constant. A DequantizeLinear makes a float view of an
activation, or a quantized constant of stored integers.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from verdigris.compiler import ir
from verdigris.compiler.frontend import builders
from verdigris.compiler.frontend.host_compute import host_op
from verdigris.compiler.frontend.onnx_file import attributes
from verdigris.compiler.frontend.values import (
    Act,
    FloatInput,
    HostValue,
    Pending,
    QConst,
    Skip,
    along,
    device_type,
    integers,
    model_range,
    uint8_shift,
)

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["clamp_tensor", "dequantize_linear", "quantize", "quantize_linear"]

logger = logging.getLogger(__name__)


def quantize_linear(im: Importer, node: onnx.NodeProto) -> None:
    scale, zero, model_dtype = im.qparams(node, 1, 2)
    source = im.values.get(node.input[0])
    out = node.output[0]
    if isinstance(source, np.ndarray):
        axis = attributes(node).get("axis", 1)
        low, high = model_range(model_dtype)
        real = source.astype(np.float32) / along(scale, axis, source.ndim)
        q = np.clip(np.rint(real) + along(zero, axis, source.ndim), low, high)
        im.values[out] = QConst(q.astype(np.int64), scale, zero, axis)
    else:
        quantize(im, node, source, out, scale, zero, model_dtype)


def quantize(
    im: Importer,
    node: onnx.NodeProto,
    source: object,
    out: str,
    scale: np.ndarray,
    zero: np.ndarray,
    model_dtype: str,
    clamp: tuple[int, int] | None = None,
) -> None:
    """`source` (a float input, a compute result, a host value or a float view) quantized to
    the device tensor `out` of the model's type `model_dtype`. `clamp` narrows the type's
    range (in the model's integers: QONNX's narrow range, or the Clip of a QCDQ triple); it
    becomes a clamp-only rescale, which the pass `fold_clamps` merges into the op before."""
    if isinstance(source, FloatInput | Act):
        device_type(model_dtype)  # Skip for a type the device cannot hold
    full = model_range(model_dtype)
    narrowed = clamp is not None and tuple(clamp) != full
    wide = f"{out}__unclamped" if narrowed else out
    if isinstance(source, FloatInput):
        _quantize_input(im, node, source, wide, scale, zero, model_dtype)
    elif isinstance(source, Pending):
        im.finalize(source, wide, scale, zero, model_dtype)
    elif isinstance(source, HostValue):
        host_op(im, source, wide, scale, zero, model_dtype)
    elif isinstance(source, Act) and source.is_float_view:
        _requantize_view(im, node, im.tensors[source.tensor], wide, scale, zero, model_dtype)
    else:
        raise Skip(f"input '{node.input[0]}' is not something that can be quantized")
    if narrowed:
        clamp_tensor(im, node, im.tensors[wide], out, model_dtype, clamp)


def clamp_tensor(
    im: Importer,
    node: onnx.NodeProto,
    source: ir.Tensor,
    out: str,
    model_dtype: str,
    clamp: tuple[int, int],
) -> ir.Tensor:
    """The device tensor `out`: `source`'s values clamped to `clamp` (the model's integers of
    `model_dtype`, the type `out` has), in `source`'s scale and zero point."""
    low, high = (int(bound) for bound in clamp)
    if source.scale is None:
        raise Skip(f"'{source.name}' has no scale: an integer model input cannot be clamped")
    if low > high:
        raise Skip(f"the clamp range [{low}, {high}] is empty")
    zero = im.model_zero_point(source)
    target = im.new_tensor(out, source.shape, model_dtype, source.scale, zero)
    shift = uint8_shift(model_dtype)
    bounds = (max(low - shift, target.dtype.qmin), min(high - shift, target.dtype.qmax))
    im.emit(builders.rescale(f"{node.name or out}__clamp", source, target, bounds))
    im.values[out] = Act(out)
    return target


def _quantize_input(im: Importer, node, source: FloatInput, out, scale, zero, model_dtype):
    if scale.size != 1:
        raise Skip("a model input must be quantized per tensor")
    if any(i.name == source.input for i in im.inputs):
        raise Skip(f"input '{source.input}' is quantized twice")
    reshaped = source.shape != source.original_shape
    name = f"{source.input}__quantized" if reshaped else out
    tensor = im.new_tensor(
        name, source.original_shape, model_dtype, float(scale.item()), int(zero.item())
    )
    im.inputs.append(ir.GraphInput(name=source.input, tensor=tensor, onnx_dtype="float32"))
    if reshaped:  # quantizing is element-wise, so reshaping after it is the same
        im.new_tensor(out, source.shape, model_dtype, tensor.scale, int(zero.item()))
        im.emit(
            ir.Reshape(name=f"{node.name}__reshape", inputs=(name,), output=out, shape=source.shape)
        )
    im.values[out] = Act(out)


def _requantize_view(im: Importer, node, source: ir.Tensor, out, scale, zero, model_dtype):
    """DequantizeLinear followed by QuantizeLinear: a rescale (an identity one when the
    quantization is the same, which a pass removes)."""
    shift = uint8_shift(model_dtype)
    quantization = (float(scale.item()), int(zero.item()) - shift, device_type(model_dtype))
    if quantization == (source.scale, source.zero_point, source.dtype):
        # The same quantization: the value is the source's, in the source's model type.
        target = replace(source, name=out)
        im.add_tensor(target, im.model_dtype[source.name])
    else:
        target = im.new_tensor(out, source.shape, model_dtype, float(scale.item()), zero.item())
    full = (target.dtype.qmin, target.dtype.qmax)
    im.emit(builders.rescale(node.name or out, source, target, full))
    im.values[out] = Act(out)


def dequantize_linear(im: Importer, node: onnx.NodeProto) -> None:
    scale, zero, _ = im.qparams(node, 1, 2)
    source = im.values.get(node.input[0])
    out = node.output[0]
    if isinstance(source, np.ndarray):
        axis = attributes(node).get("axis", 1)
        if source.ndim and axis < 0:
            axis += source.ndim
        im.values[out] = QConst(integers(source), scale, zero, axis)
    elif isinstance(source, Act) and not source.steps:
        tensor = im.tensors[source.tensor]
        if scale.size != 1:
            raise Skip("per-channel dequantization of an activation is not supported")
        # The zero point in the tensor's device integers: shifted if the tensor holds a
        # uint8 as int8 (not if a QCDQ Clip narrowed it to uint4, which the device holds as
        # it is, whatever the DequantizeLinear's own type).
        shift = uint8_shift(im.model_dtype[tensor.name])
        step = ir.Dequantize(scale=float(scale.item()), zero_point=int(zero.item()) - shift)
        if tensor.scale is not None and not np.isclose(step.scale, tensor.scale, rtol=1e-6):
            logger.debug("%s dequantizes %s with another scale", node.name, tensor.name)
        im.values[out] = Act(source.tensor, (step,))
    elif isinstance(source, QConst):
        # A constant quantized in the model (QuantizeLinear, or a QCDQ Clip of one): its
        # float value is the quantized constant's, if the parameters agree.
        if not (np.allclose(scale, source.scale) and np.array_equal(zero, source.zero_point)):
            raise Skip(f"'{node.input[0]}' is dequantized with other parameters than it has")
        im.values[out] = source
    elif isinstance(source, Act):
        step = ir.Dequantize(scale=float(scale.item()), zero_point=int(zero.item()))
        im.values[out] = Act(source.tensor, (*source.steps, step))
    else:
        raise Skip(f"input '{node.input[0]}' is not a quantized value")
