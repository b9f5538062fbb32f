"""Ops that run on the host after the device: Softmax and ArgMax on a dequantized output,
and QLinearSoftmax (dequantize, softmax, quantize). They add host steps to a graph output;
the device computes nothing for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import onnx

from verdigris.compiler import ir
from verdigris.compiler.frontend.onnx_file import attributes
from verdigris.compiler.frontend.values import Act, Skip, uint8_shift

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["arg_max", "qlinear_softmax", "softmax"]


def softmax(im: Importer, node: onnx.NodeProto) -> None:
    _host_step(im, node, ir.Softmax(axis=attributes(node).get("axis", -1)))


def arg_max(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    _host_step(
        im, node, ir.ArgMax(axis=attrs.get("axis", 0), keepdims=bool(attrs.get("keepdims", 1)))
    )


def _host_step(im: Importer, node, step: ir.HostStep) -> None:
    value = im.values.get(node.input[0])
    if not (isinstance(value, Act) and value.steps):
        raise Skip(
            f"{node.op_type} runs on the host and needs a dequantized input "
            f"('{node.input[0]}' is not one)"
        )
    im.values[node.output[0]] = Act(value.tensor, (*value.steps, step))


def qlinear_softmax(im: Importer, node: onnx.NodeProto) -> None:
    value = im.values.get(node.input[0])
    if not isinstance(value, Act):
        raise Skip(f"input '{node.input[0]}' is not a quantized value")
    x_scale, x_zero, x_dtype = im.qparams(node, 1, 2)
    y_scale, y_zero, y_dtype = im.qparams(node, 3, 4)
    attrs = attributes(node)
    axis = attrs.get("axis", -1 if attrs.get("opset", 13) >= 13 else 1)
    # A device tensor holds uint8 shifted to int8; a host Quantize result does not.
    shift = uint8_shift(x_dtype) if not value.steps else 0
    steps = (
        ir.Dequantize(scale=float(x_scale.item()), zero_point=int(x_zero.item()) - shift),
        ir.Softmax(axis=axis),
        ir.Quantize(scale=float(y_scale.item()), zero_point=int(y_zero.item()), dtype=y_dtype),
    )
    im.values[node.output[0]] = Act(value.tensor, (*value.steps, *steps))
