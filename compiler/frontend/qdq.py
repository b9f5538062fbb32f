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
    dtype_info,
    uint8_shift,
)

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["dequantize_linear", "quantize_linear"]

logger = logging.getLogger(__name__)


def quantize_linear(im: Importer, node: onnx.NodeProto) -> None:
    scale, zero, model_dtype = im.qparams(node, 1, 2)
    source = im.values.get(node.input[0])
    out = node.output[0]
    device = isinstance(source, FloatInput) or (isinstance(source, Act) and source.is_float_view)
    if device and model_dtype not in ("int8", "uint8"):
        raise Skip(f"activations of type {model_dtype} are not supported (int8/uint8)")
    if isinstance(source, FloatInput):
        _quantize_input(im, node, source, out, scale, zero, model_dtype)
    elif isinstance(source, Pending):
        im.finalize(source, out, scale, zero, model_dtype)
    elif isinstance(source, HostValue):
        host_op(im, source, out, scale, zero, model_dtype)
    elif isinstance(source, Act) and source.is_float_view:
        _requantize_view(im, node, im.tensors[source.tensor], out, scale, zero, model_dtype)
    elif isinstance(source, np.ndarray):
        axis = attributes(node).get("axis", 1)
        info = dtype_info(model_dtype)
        real = source.astype(np.float32) / along(scale, axis, source.ndim)
        q = np.clip(np.rint(real) + along(zero, axis, source.ndim), info.min, info.max)
        im.values[out] = QConst(q.astype(np.int64), scale, zero, axis)
    else:
        raise Skip(f"input '{node.input[0]}' is not something that can be quantized")


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
    if (float(scale.item()), int(zero.item()) - shift) == (source.scale, source.zero_point):
        # The same quantization: the value is the source's, in the source's model type.
        target = replace(source, name=out)
        im.add_tensor(target, im.model_dtype[source.name])
    else:
        target = im.new_tensor(out, source.shape, model_dtype, float(scale.item()), zero.item())
    full = (target.dtype.qmin, target.dtype.qmax)
    im.emit(builders.rescale(node.name or out, source, target, full))
    im.values[out] = Act(out)


def dequantize_linear(im: Importer, node: onnx.NodeProto) -> None:
    scale, zero, model_dtype = im.qparams(node, 1, 2)
    source = im.values.get(node.input[0])
    out = node.output[0]
    if isinstance(source, np.ndarray):
        axis = attributes(node).get("axis", 1)
        if source.ndim and axis < 0:
            axis += source.ndim
        im.values[out] = QConst(source, scale, zero, axis)
    elif isinstance(source, Act) and not source.steps:
        tensor = im.tensors[source.tensor]
        if scale.size != 1:
            raise Skip("per-channel dequantization of an activation is not supported")
        step = ir.Dequantize(
            scale=float(scale.item()), zero_point=int(zero.item()) - uint8_shift(model_dtype)
        )
        if tensor.scale is not None and not np.isclose(step.scale, tensor.scale, rtol=1e-6):
            logger.debug("%s dequantizes %s with another scale", node.name, tensor.name)
        im.values[out] = Act(source.tensor, (step,))
    elif isinstance(source, Act):
        step = ir.Dequantize(scale=float(scale.item()), zero_point=int(zero.item()))
        im.values[out] = Act(source.tensor, (*source.steps, step))
    else:
        raise Skip(f"input '{node.input[0]}' is not a quantized value")
