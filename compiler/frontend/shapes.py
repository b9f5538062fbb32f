"""Shape inference for the ops the frontend imports: output shapes from input shapes and
ONNX attributes (NCHW, batch first)."""

from __future__ import annotations

import numpy as np

from verdigris.compiler.frontend.values import Skip

__all__ = [
    "average_pool_pads",
    "check_window",
    "concat_shape",
    "conv_output",
    "conv_shape",
    "explicit_pads",
    "flatten_shape",
    "matmul_shape",
    "pool_output",
    "pool_shape",
    "reshape_shape",
]

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def explicit_pads(attrs: dict, x_shape, kernel) -> dict:
    """`attrs` with `auto_pad` replaced by the explicit `pads` it means for an input of
    `x_shape` (NCHW) and a `kernel` of spatial sizes, as ONNX defines them: VALID pads
    nothing; SAME_* pad so that each output size is ceil(input / stride), the total pad being
    max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - input), split in half with the
    odd one at the end (SAME_UPPER) or at the beginning (SAME_LOWER). Attributes without
    auto_pad (or NOTSET) are returned unchanged."""
    auto_pad = attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "NOTSET":
        return attrs
    if auto_pad not in AUTO_PADS:
        raise Skip(f"auto_pad={auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    spatial = x_shape[2:]
    if len(kernel) != len(spatial):
        raise Skip(f"a {len(kernel)}-D kernel on an input of shape {list(x_shape)}")
    strides = list(attrs.get("strides", [1] * len(spatial)))
    dilations = list(attrs.get("dilations", [1] * len(spatial)))
    head, tail = [], []
    for size, k, stride, dilation in zip(spatial, kernel, strides, dilations, strict=True):
        if stride < 1 or dilation < 1:
            raise Skip(f"strides {strides} and dilations {dilations} must be positive")
        need = 0
        if auto_pad != "VALID":
            out = -(-size // stride)
            need = max(0, (out - 1) * stride + dilation * (k - 1) + 1 - size)
        first = (need + 1) // 2 if auto_pad == "SAME_LOWER" else need // 2
        head.append(first)
        tail.append(need - first)
    resolved = {name: value for name, value in attrs.items() if name != "auto_pad"}
    resolved["pads"] = head + tail
    return resolved


def average_pool_pads(attrs: dict, x_shape) -> dict:
    """`explicit_pads` for an AveragePool, which refuses what auto_pad padding means with
    count_include_pad=0 (the registry's check sees only explicit pads)."""
    resolved = explicit_pads(attrs, x_shape, attrs["kernel_shape"])
    if not resolved.get("count_include_pad", 0) and any(resolved.get("pads", [])):
        raise Skip(
            f"auto_pad={attrs['auto_pad']!r} pads this input {list(x_shape)} and "
            "count_include_pad=0 divides border windows by different counts; use "
            "count_include_pad=1 or no padding"
        )
    return resolved


# Larger window attributes than this are damage, not a model (and would make the compiler
# allocate for them).
_WINDOW_LIMIT = 1 << 16


def check_window(attrs: dict, kernel) -> None:
    """Skip unless a 2-D window's kernel, strides, dilations and pads are ONNX-valid."""
    if len(kernel) != 2:
        raise Skip(
            f"a {len(kernel)}-D window (kernel {list(kernel)}): only 2-D convolutions and "
            "pools are supported"
        )
    values = {
        "kernel_shape": list(kernel),
        "strides": list(attrs.get("strides", [1, 1])),
        "dilations": list(attrs.get("dilations", [1, 1])),
        "pads": list(attrs.get("pads", [0, 0, 0, 0])),
    }
    for name, value in values.items():
        rank = 4 if name == "pads" else 2
        low = 0 if name == "pads" else 1
        if len(value) != rank or not all(low <= v < _WINDOW_LIMIT for v in value):
            raise Skip(
                f"{name} {value} is not valid for a 2-D window ({rank} values, each at least {low})"
            )


def _check_output(shape: tuple[int, ...]) -> tuple[int, ...]:
    if any(d <= 0 for d in shape):
        raise Skip(f"the output shape {list(shape)} is empty: the window is larger than the input")
    return shape


def conv_output(x_shape, w_shape, attrs) -> tuple[int, ...]:
    """`conv_shape` of a node being imported: Skip where its window attributes are invalid
    or its output is empty."""
    check_window(attrs, w_shape[2:])
    return _check_output(conv_shape(x_shape, w_shape, attrs))


def pool_output(x_shape, attrs) -> tuple[int, ...]:
    """`pool_shape` of a node being imported, checked as `conv_output`."""
    check_window(attrs, attrs["kernel_shape"])
    return _check_output(pool_shape(x_shape, attrs))


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


def concat_shape(shapes, axis: int) -> tuple[tuple[int, ...], int]:
    """The output shape of a device Concat and its axis made non-negative; Skip where the
    inputs differ in rank or in a dimension other than `axis`, or where the axis is not the
    channels the device concatenates (the host runs those)."""
    rank = len(shapes[0])
    if not -rank <= axis < rank:
        raise Skip(f"axis {axis} is out of range for inputs of rank {rank}")
    axis = axis + rank if axis < 0 else axis
    for shape in shapes[1:]:
        if len(shape) != rank or any(
            a != b for i, (a, b) in enumerate(zip(shape, shapes[0], strict=True)) if i != axis
        ):
            raise Skip(
                f"inputs of shapes {[list(s) for s in shapes]} do not concatenate on axis {axis}"
            )
    if axis != 1 or rank not in (2, 4):
        raise Skip(
            f"Concat on axis {axis} of rank-{rank} tensors: the device concatenates channels "
            "(axis 1 of 2-D or 4-D tensors)"
        )
    out = list(shapes[0])
    out[axis] = sum(shape[axis] for shape in shapes)
    return tuple(out), axis


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
