"""Shape inference for the ops the frontend imports: output shapes from input shapes and
ONNX attributes (NCHW, batch first)."""

from __future__ import annotations

import numpy as np

from verdigris.compiler.frontend.values import Skip

__all__ = ["conv_shape", "flatten_shape", "matmul_shape", "pool_shape", "reshape_shape"]


def conv_shape(x_shape, w_shape, attrs) -> tuple[int, ...]:
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    spatial = []
    for i in range(2):
        span = dilations[i] * (w_shape[2 + i] - 1) + 1
        spatial.append((x_shape[2 + i] + pads[i] + pads[i + 2] - span) // strides[i] + 1)
    return (x_shape[0], w_shape[0], *spatial)


def pool_shape(x_shape, attrs) -> tuple[int, ...]:
    kernel = attrs["kernel_shape"]
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    ceil = attrs.get("ceil_mode", 0)
    spatial = []
    for i in range(2):
        span = dilations[i] * (kernel[i] - 1) + 1
        room = x_shape[2 + i] + pads[i] + pads[i + 2] - span
        size = (-(-room // strides[i]) if ceil else room // strides[i]) + 1
        if ceil and (size - 1) * strides[i] >= x_shape[2 + i] + pads[i]:
            size -= 1
        spatial.append(size)
    return (x_shape[0], x_shape[1], *spatial)


def matmul_shape(x_shape, w_shape) -> tuple[int, ...]:
    if len(w_shape) == 2:
        return (*x_shape[:-1], w_shape[-1])
    batch = np.broadcast_shapes(tuple(x_shape[:-2]), tuple(w_shape[:-2]))
    return (*batch, x_shape[-2], w_shape[-1])


def flatten_shape(shape, axis) -> tuple[int, ...]:
    axis = axis + len(shape) if axis < 0 else axis
    return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))


def reshape_shape(shape, target: np.ndarray) -> tuple[int, ...]:
    dims = [shape[i] if d == 0 else int(d) for i, d in enumerate(target)]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(shape)) // known
    if int(np.prod(dims)) != int(np.prod(shape)):
        raise Skip(f"cannot reshape {list(shape)} to {target.tolist()}")
    return tuple(dims)
