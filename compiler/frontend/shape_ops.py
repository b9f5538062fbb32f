"""Ops that compute nothing: Constant and Identity (bookkeeping of values), Flatten and
Reshape (an IR Reshape of a device tensor, or a reshape of a float input before it is
quantized; any other Reshape runs on the host, `host_compute.py`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from verdigris.compiler import ir
from verdigris.compiler.frontend.onnx_file import attributes, tensor_array
from verdigris.compiler.frontend.shapes import flatten_shape, reshape_shape
from verdigris.compiler.frontend.values import Act, FloatInput, Skip

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["constant", "flatten", "identity", "reshape"]


def constant(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    if "value" not in attrs:
        raise Skip("only Constant nodes with a tensor 'value' are supported")
    im.values[node.output[0]] = tensor_array(attrs["value"], im.label)


def identity(im: Importer, node: onnx.NodeProto) -> None:
    im.values[node.output[0]] = im.values.get(node.input[0])


def flatten(im: Importer, node: onnx.NodeProto) -> None:
    axis = attributes(node).get("axis", 1)
    _reshape(im, node, lambda shape: flatten_shape(shape, axis))


def reshape(im: Importer, node: onnx.NodeProto) -> None:
    target = im.const(node.input[1], "the shape").astype(np.int64)
    _reshape(im, node, lambda shape: reshape_shape(shape, target))


def _reshape(im: Importer, node, new_shape) -> None:
    value = im.values.get(node.input[0])
    out = node.output[0]
    if isinstance(value, FloatInput):
        shape = new_shape(value.shape)
        if shape[0] != value.shape[0]:
            raise Skip(f"reshape {list(value.shape)} -> {list(shape)} changes the batch")
        im.values[out] = replace(value, shape=shape)
    elif isinstance(value, Act) and (not value.steps or value.is_float_view):
        x = im.tensors[value.tensor]
        shape = new_shape(x.shape)
        if shape[0] != x.shape[0]:
            raise Skip(f"reshape {list(x.shape)} -> {list(shape)} changes the batch size")
        name = out if not value.steps else f"{out}__int"
        tensor = im.new_tensor(name, shape, im.model_dtype[x.name], x.scale, im.model_zero_point(x))
        im.emit(
            ir.Reshape(name=node.name or out, inputs=(x.name,), output=tensor.name, shape=shape)
        )
        im.values[out] = Act(tensor.name, value.steps)
    else:
        raise Skip(f"input '{node.input[0]}' cannot be reshaped here")
