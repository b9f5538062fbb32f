"""Host compute: float32 numpy implementations of the ONNX ops a model runs on the host.

The accelerator runs integer layers; a model's float islands (verdigris.arch.host_steps,
`HostCompute`) are run here, node by node, on the op types of `HOST_OPS`. ONNX defines every
op's semantics (the operator spec, opset 13 and later); this module follows it, computing in
float32 as onnxruntime does, and accepts both forms of an op where opsets from 13 on differ
(an attribute that later became an input, Split's `num_outputs`, ...). A node that cannot
run (a bad attribute, a mode this module does not implement, shapes that do not fit) raises
HostOpError naming the node.

A linear Resize of an int8/uint8 tensor (a QOperator model's) computes as onnxruntime's
integer kernels do: float32 sums, truncated (see "Linear Resize" below).

Arithmetic stays in float32 because numpy 2 treats Python scalars (attribute values) as
"weak": float32 array * 0.2 is a float32 product, as in onnxruntime's kernels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from verdigris.arch.host_steps import HostNode

__all__ = ["RUNNERS", "HostOpError", "run_nodes"]

Inputs = list[np.ndarray | None]
Runner = Callable[[HostNode, Inputs], list[np.ndarray]]


class HostOpError(ValueError):
    """A host node that cannot run: its message names the node and the problem."""


def _error(node: HostNode, problem: str) -> HostOpError:
    output = node.outputs[0] if node.outputs else "?"
    return HostOpError(f"{node.op_type} node (output {output!r}): {problem}")


def _opt(inputs: Inputs, i: int) -> np.ndarray | None:
    """Input i, or None when the node omits it (absent optional inputs may be trailing)."""
    return inputs[i] if i < len(inputs) else None


def _ints(value) -> list[int] | None:
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def _ints_input_or_attribute(
    node: HostNode, inputs: Inputs, position: int, name: str
) -> list[int] | None:
    """Integers an opset gives as input `position` and an older one as attribute `name`."""
    values = _ints(_opt(inputs, position))
    return _ints(node.attribute(name)) if values is None else values


def _axis(node: HostNode, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _error(node, f"axis {axis} is out of range for rank {rank}")
    return axis % rank


# Elementwise ops.


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf; math.erf in float64, rounded once to float32, is exact to float32.
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    # log(1 + exp(x)) without overflow for large x.
    return np.logaddexp(x.dtype.type(0), x)


def _gelu(node: HostNode, x: np.ndarray) -> np.ndarray:
    approximate = node.attribute("approximate", "none")
    if approximate == "none":
        return 0.5 * x * (1 + _erf(x * np.float32(1 / math.sqrt(2))))
    if approximate == "tanh":
        inner = np.float32(math.sqrt(2 / math.pi)) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + np.tanh(inner))
    raise _error(node, f"approximate {approximate!r} is not 'none' or 'tanh'")


def _elu(node: HostNode, x: np.ndarray) -> np.ndarray:
    alpha = node.attribute("alpha", 1.0)
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def _selu(node: HostNode, x: np.ndarray) -> np.ndarray:
    alpha = node.attribute("alpha", 1.67326319217681884765625)
    gamma = node.attribute("gamma", 1.05070102214813232421875)
    return np.where(x > 0, gamma * x, gamma * (alpha * np.exp(x) - alpha))


def _hard_sigmoid(node: HostNode, x: np.ndarray) -> np.ndarray:
    alpha, beta = node.attribute("alpha", 0.2), node.attribute("beta", 0.5)
    return np.clip(alpha * x + beta, 0, 1)


# One-input ops with at most a few attributes: (node, x) -> y.
_UNARY: dict[str, Callable[[HostNode, np.ndarray], np.ndarray]] = {
    "Abs": lambda _n, x: np.abs(x),
    "Ceil": lambda _n, x: np.ceil(x),
    "Elu": _elu,
    "Erf": lambda _n, x: _erf(x),
    "Exp": lambda _n, x: np.exp(x),
    "Floor": lambda _n, x: np.floor(x),
    "Gelu": _gelu,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda _n, x: x * np.clip(x / 6 + 0.5, 0, 1),
    "Identity": lambda _n, x: x,
    "LeakyRelu": lambda n, x: np.where(x < 0, n.attribute("alpha", 0.01) * x, x),
    "Log": lambda _n, x: np.log(x),
    "Mish": lambda _n, x: x * np.tanh(_softplus(x)),
    "Neg": lambda _n, x: np.negative(x),
    "Reciprocal": lambda _n, x: np.reciprocal(x),
    "Relu": lambda _n, x: np.maximum(x, x.dtype.type(0)),
    "Selu": _selu,
    "Sigmoid": lambda _n, x: 1 / (1 + np.exp(-x)),
    "Softplus": lambda _n, x: _softplus(x),
    "Sqrt": lambda _n, x: np.sqrt(x),
    "Tanh": lambda _n, x: np.tanh(x),
}


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        # ONNX integer division truncates toward zero; numpy's // floors.
        quotient = np.abs(a) // np.abs(b)
        return np.where((a < 0) != (b < 0), -quotient, quotient).astype(a.dtype)
    return np.divide(a, b)


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # The exponent may have another type than the base; the result has the base's type.
    return np.power(a, b.astype(a.dtype)).astype(a.dtype)


# Two-input ops with numpy broadcasting, which is ONNX's multidirectional broadcasting.
_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Div": _divide,
    "MatMul": np.matmul,
    "Mul": np.multiply,
    "Pow": _pow,
    "PRelu": lambda x, slope: np.where(x < 0, slope * x, x),
    "Sub": np.subtract,
}

# Ops of any number of inputs, folded left to right with broadcasting.
_VARIADIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Max": np.maximum,
    "Min": np.minimum,
    "Sum": np.add,
}


def _unary(fn: Callable[[HostNode, np.ndarray], np.ndarray]) -> Runner:
    return lambda node, inputs: [fn(node, inputs[0])]


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Runner:
    return lambda _node, inputs: [fn(inputs[0], inputs[1])]


def _variadic(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Runner:
    return lambda _node, inputs: [functools.reduce(fn, inputs)]


def _mean(_node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    return [functools.reduce(np.add, inputs) / len(inputs)]


def _clip(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    # min and max are inputs from opset 11, attributes before; either may be absent.
    x, low, high = inputs[0], _opt(inputs, 1), _opt(inputs, 2)
    low = node.attribute("min") if low is None else low
    high = node.attribute("max") if high is None else high
    if low is not None:
        x = np.maximum(x, np.asarray(low, x.dtype))
    if high is not None:
        x = np.minimum(x, np.asarray(high, x.dtype))
    return [x]


# Normalization.


def _softmax(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    axis = _axis(node, node.attribute("axis", -1), x.ndim)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [e / e.sum(axis=axis, keepdims=True)]


def _log_softmax(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    # Opset 13's LogSoftmax, over `axis` alone (an older opset's is converted to opset 13
    # on import), as onnxruntime computes it: x - max - log(sum(exp(x - max))).
    x = inputs[0]
    axis = _axis(node, node.attribute("axis", -1), x.ndim)
    shifted = x - x.max(axis=axis, keepdims=True)
    return [shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))]


def _arg_max(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    axis = _axis(node, node.attribute("axis", 0), x.ndim)
    if node.attribute("select_last_index", 0):
        index = x.shape[axis] - 1 - np.argmax(np.flip(x, axis=axis), axis=axis)
    else:
        index = np.argmax(x, axis=axis)
    if node.attribute("keepdims", 1):
        index = np.expand_dims(index, axis)
    return [index.astype(np.int64)]


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """The shape that broadcasts a per-channel vector over x (channels on axis 1)."""
    return (-1,) + (1,) * (x.ndim - 2)


def _batch_normalization(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    if node.attribute("training_mode", 0):
        raise _error(node, "training_mode=1 is not supported (inference only)")
    x, scale, bias, mean, var = inputs[:5]
    shape = _channel_shape(x)
    epsilon = node.attribute("epsilon", 1e-5)
    inv_std = 1 / np.sqrt(var.reshape(shape) + epsilon)
    return [(x - mean.reshape(shape)) * inv_std * scale.reshape(shape) + bias.reshape(shape)]


def _instance_normalization(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x, scale, bias = inputs[:3]
    shape, spatial = _channel_shape(x), tuple(range(2, x.ndim))
    mean = x.mean(axis=spatial, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=spatial, keepdims=True)
    epsilon = node.attribute("epsilon", 1e-5)
    return [(x - mean) / np.sqrt(var + epsilon) * scale.reshape(shape) + bias.reshape(shape)]


def _lrn(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    size = node.attribute("size")
    if size is None or size < 1:
        raise _error(node, f"size must be a positive integer, got {size!r}")
    alpha, beta = node.attribute("alpha", 1e-4), node.attribute("beta", 0.75)
    bias = node.attribute("bias", 1.0)
    # Channel c sums the squares of channels c - floor((size-1)/2) .. c + ceil((size-1)/2).
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = np.pad(x * x, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    channels = x.shape[1]
    square_sum = sum(squares[:, i : i + channels] for i in range(size))
    return [x / (bias + (alpha / size) * square_sum) ** beta]


# Reductions.


def _reduce(fn: Callable[..., np.ndarray]) -> Runner:
    def run(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
        x = inputs[0]
        # axes is an input for ReduceSum from opset 13 and for the others from opset 18.
        axes = _ints_input_or_attribute(node, inputs, 1, "axes")
        if not axes:
            if node.attribute("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.ndim))
        axes = [_axis(node, a, x.ndim) for a in axes]
        return [fn(x, axis=tuple(axes), keepdims=bool(node.attribute("keepdims", 1)))]

    return run


def _global_pool(fn: Callable[..., np.ndarray]) -> Runner:
    return lambda _node, inputs: [
        fn(inputs[0], axis=tuple(range(2, inputs[0].ndim)), keepdims=True)
    ]


# Pooling.


def _pool_windows(node: HostNode, x: np.ndarray):
    """Every pooling window of x: (values, inside, in_pads). `values` has shape
    (N, C, out_1, k_1, out_2, k_2, ...); `inside` marks the taps on real input and `in_pads`
    the taps on input or its explicit pads (not the extra tail ceil_mode may add), both of
    shape (out_1, k_1, out_2, k_2, ...)."""
    spatial = x.ndim - 2
    kernel = _ints(node.attribute("kernel_shape"))
    if kernel is None or len(kernel) != spatial:
        raise _error(node, f"kernel_shape {kernel} does not fit {spatial} spatial axes")
    strides = _ints(node.attribute("strides")) or [1] * spatial
    dilations = _ints(node.attribute("dilations")) or [1] * spatial
    pads = _ints(node.attribute("pads")) or [0] * (2 * spatial)
    auto_pad = node.attribute("auto_pad", "NOTSET")
    ceil_mode = node.attribute("ceil_mode", 0)
    index, inside, in_pads = [], True, True
    for i in range(spatial):
        n, k, s, d = x.shape[2 + i], kernel[i], strides[i], dilations[i]
        span = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-n // s)
            total = max(0, (out - 1) * s + span - n)
            head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            tail = total - head
        elif auto_pad == "VALID":
            out, head, tail = (n - span) // s + 1, 0, 0
        elif auto_pad == "NOTSET":
            head, tail = pads[i], pads[spatial + i]
            room = n + head + tail - span
            out = -(-room // s) + 1 if ceil_mode else room // s + 1
            # With ceil_mode, a last window that would start in the tail pad is dropped.
            if ceil_mode and (out - 1) * s >= n + head:
                out -= 1
        else:
            raise _error(node, f"auto_pad {auto_pad!r} is not NOTSET, SAME_*, or VALID")
        if out < 1:
            raise _error(node, f"the window does not fit spatial axis {i} of size {n}")
        taps = np.arange(out)[:, None] * s - head + np.arange(k)[None, :] * d
        # Axis i's (out, k) grid goes on axes (2i, 2i + 1) of the window shape.
        grid = [1] * (2 * spatial)
        grid[2 * i : 2 * i + 2] = [out, k]
        index.append(np.clip(taps, 0, n - 1).reshape(grid))
        inside = inside & ((taps >= 0) & (taps < n)).reshape(grid)
        in_pads = in_pads & (taps < n + tail).reshape(grid)
    return x[(slice(None), slice(None), *index)], inside, in_pads


def _window_axes(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(3, 2 * x.ndim - 1, 2))


def _max_pool(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise _error(node, "the Indices output is not supported")
    x = inputs[0]
    values, inside, _ = _pool_windows(node, x)
    return [np.where(inside, values, -np.inf).max(axis=_window_axes(x))]


def _average_pool(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    values, inside, in_pads = _pool_windows(node, x)
    axes = _window_axes(x)
    counted = in_pads if node.attribute("count_include_pad", 0) else inside
    total = np.where(inside, values, x.dtype.type(0)).sum(axis=axes)
    count = counted.sum(axis=tuple(a - 2 for a in axes))
    return [total / count.astype(x.dtype)]


# ConvTranspose.


def _transpose_pads(node: HostNode, axis: int, n, k, s, d, adj, pads, shape) -> tuple[int, int]:
    """Spatial axis `axis` of a ConvTranspose: the padding cut from the head of the full
    result (of size (n - 1) * s + (k - 1) * d + 1 + adj) and the output's size, as the spec
    and onnxruntime define them. Given `output_shape`, or with auto_pad SAME_* (an output
    of n * s), the total padding is split in half, the odd one at the head unless auto_pad
    is SAME_UPPER; VALID pads nothing; otherwise the explicit `pads`."""
    full = (n - 1) * s + (k - 1) * d + 1 + adj
    auto_pad = node.attribute("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise _error(node, f"auto_pad {auto_pad!r} is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    if shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = shape[axis] if shape is not None else n * s
        total = max(0, full - out)
        return (total // 2 if auto_pad == "SAME_UPPER" else total - total // 2), out
    if auto_pad == "VALID":
        return 0, full
    spatial = len(pads) // 2
    return pads[axis], full - pads[axis] - pads[spatial + axis]


def _conv_transpose(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    """ONNX ConvTranspose (1-D, 2-D, ...), summed as onnxruntime's CPU kernel does: per
    kernel position a float32 product over the group's input channels, added into the
    output in the kernel's row-major order (its col2im), then the bias."""
    x, w, bias = inputs[0], inputs[1], _opt(inputs, 2)
    spatial = x.ndim - 2
    if spatial < 1 or w.ndim != x.ndim:
        raise _error(node, f"input of shape {x.shape} and weight of shape {w.shape} do not fit")
    group = node.attribute("group", 1)
    channels = x.shape[1]
    if not isinstance(group, int) or group < 1 or channels % group:
        raise _error(node, f"group {group!r} does not divide the {channels} input channels")
    if w.shape[0] != channels:
        raise _error(node, f"weight of shape {w.shape} is not for {channels} input channels")
    per_group = w.shape[1]
    kernel = list(w.shape[2:])

    def given(name: str, default: int) -> list[int]:
        values = _ints(node.attribute(name))
        if values is None:
            return [default] * spatial
        if len(values) != spatial or any(v < (1 if default else 0) for v in values):
            raise _error(node, f"{name} {values} does not fit {spatial} spatial axes")
        return values

    if _ints(node.attribute("kernel_shape")) not in (None, kernel):
        raise _error(node, f"kernel_shape {node.attribute('kernel_shape')} is not the weight's")
    strides, dilations = given("strides", 1), given("dilations", 1)
    adjust = given("output_padding", 0)
    pads = _ints(node.attribute("pads")) or [0] * (2 * spatial)
    if len(pads) != 2 * spatial or any(p < 0 for p in pads):
        raise _error(node, f"pads {pads} do not fit {spatial} spatial axes")
    shape = _ints(node.attribute("output_shape"))
    if shape is not None and len(shape) != spatial:
        raise _error(node, f"output_shape {shape} does not fit {spatial} spatial axes")
    heads, outs = [], []
    for i in range(spatial):
        n, k, s, d, adj = x.shape[2 + i], kernel[i], strides[i], dilations[i], adjust[i]
        if adj >= s:
            # The spec allows below strides or dilations; onnxruntime, below strides.
            raise _error(node, f"output_padding {adjust} must be below strides {strides}")
        head, out = _transpose_pads(node, i, n, k, s, d, adj, pads, shape)
        if out < 1:
            raise _error(node, f"the output of spatial axis {i} is empty ({out})")
        # onnxruntime takes an output_shape past the full result only within one stride.
        if shape is not None and out > (n - 1) * s + (k - 1) * d + 1 + adj + s - 1:
            raise _error(node, f"output_shape {shape} is too large for input size {n}")
        heads.append(head)
        outs.append(out)
    # The full result on a canvas large enough for the output window [head, head + out).
    canvas = [
        max((n - 1) * s + (k - 1) * d + 1, h + o)
        for n, k, s, d, h, o in zip(
            x.shape[2:], kernel, strides, dilations, heads, outs, strict=True
        )
    ]
    batch = x.shape[0]
    y = np.zeros((batch, per_group * group, *canvas), np.float32)
    xg = x.reshape(batch, group, channels // group, -1)
    wg = w.reshape(group, channels // group, per_group, -1).astype(np.float32)
    for position, offsets in enumerate(np.ndindex(*kernel)):
        # (group, out channels, in channels) @ (batch, group, in channels, pixels)
        part = np.matmul(wg[..., position].transpose(0, 2, 1), xg)
        part = part.reshape(batch, per_group * group, *x.shape[2:])
        window = tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, n, s in zip(offsets, dilations, x.shape[2:], strides, strict=True)
        )
        y[(slice(None), slice(None), *window)] += part
    y = y[(slice(None), slice(None), *(slice(h, h + o) for h, o in zip(heads, outs, strict=True)))]
    if bias is not None:
        y = y + bias.astype(np.float32).reshape(_channel_shape(y))
    return [y]


# Data movement.


def _transpose(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    perm = _ints(node.attribute("perm"))
    return [np.transpose(inputs[0], perm)]


def _reshape(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x, shape = inputs[0], _ints(inputs[1])
    if not node.attribute("allowzero", 0):
        # 0 copies the input's dimension unless allowzero says it means an empty axis.
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [x.reshape(shape)]


def _flatten(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    axis = node.attribute("axis", 1)
    if not -x.ndim <= axis <= x.ndim:
        raise _error(node, f"axis {axis} is out of range for rank {x.ndim}")
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def _squeeze(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    axes = _ints_input_or_attribute(node, inputs, 1, "axes")
    if axes is None:
        return [np.squeeze(x)]
    axes = [_axis(node, a, x.ndim) for a in axes]
    if any(x.shape[a] != 1 for a in axes):
        raise _error(node, f"cannot squeeze axes {axes} of shape {x.shape}")
    return [np.squeeze(x, axis=tuple(axes))]


def _unsqueeze(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    axes = _ints_input_or_attribute(node, inputs, 1, "axes")
    if axes is None:
        raise _error(node, "no axes")
    rank = x.ndim + len(axes)
    # Negative axes count from the end of the output, as numpy's expand_dims does.
    return [np.expand_dims(x, tuple(_axis(node, a, rank) for a in axes))]


def _concat(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    axis = _axis(node, node.attribute("axis", 0), inputs[0].ndim)
    return [np.concatenate(inputs, axis=axis)]


def _split(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    axis = _axis(node, node.attribute("axis", 0), x.ndim)
    n, parts = x.shape[axis], len(node.outputs)
    sizes = _ints_input_or_attribute(node, inputs, 1, "split")
    if sizes is None:
        if node.attribute("num_outputs") is not None:
            # Opset 18: equal chunks of ceil(n / parts), the last one smaller.
            chunk = -(-n // parts)
            sizes = [min(chunk, max(0, n - i * chunk)) for i in range(parts)]
        elif n % parts:
            raise _error(node, f"axis {axis} of size {n} does not split into {parts} equal parts")
        else:
            sizes = [n // parts] * parts
    if len(sizes) != parts or sum(sizes) != n:
        raise _error(node, f"split {sizes} does not cut axis {axis} of size {n} into {parts}")
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


_SLICE_TO_END = (2**31 - 1, 2**63 - 1)


def _slice(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = _ints(_opt(inputs, 3)) or list(range(len(starts)))
    steps = _ints(_opt(inputs, 4)) or [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step == 0:
            raise _error(node, "a step of 0")
        axis = _axis(node, axis, x.ndim)
        n = x.shape[axis]
        # Exporters pass INT_MAX as "to the end" in either direction (numpy's None), and
        # onnxruntime reads it so; clamping it as any other end would slice nothing backward.
        to_end = step < 0 and end in _SLICE_TO_END
        start, end = start + n if start < 0 else start, end + n if end < 0 else end
        # ONNX clamps to [0, n] stepping forward and to [0, n-1] / [-1, n-1] backward;
        # an end of -1 then means "before index 0", which a Python slice spells None.
        if step > 0:
            index[axis] = slice(min(max(start, 0), n), min(max(end, 0), n), step)
        else:
            end = -1 if to_end else min(max(end, -1), n - 1)
            index[axis] = slice(min(max(start, 0), n - 1), None if end < 0 else end, step)
    return [x[tuple(index)]]


_PAD_MODES = ("constant", "reflect", "edge", "wrap")  # the same names as numpy's


def _pad(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    mode = node.attribute("mode", "constant")
    if mode not in _PAD_MODES:
        raise _error(node, f"mode {mode!r} is not constant, reflect, edge or wrap")
    pads = _ints(_opt(inputs, 1))
    if pads is None:
        pads = _ints(node.attribute("pads"))
    if pads is None:
        raise _error(node, "no pads")
    value = _opt(inputs, 2)
    value = node.attribute("value", 0.0) if value is None or value.size == 0 else value.item()
    axes = _ints(_opt(inputs, 3))
    axes = list(range(x.ndim)) if axes is None else [_axis(node, a, x.ndim) for a in axes]
    if len(pads) != 2 * len(axes):
        raise _error(node, f"{len(pads)} pads for {len(axes)} axes")
    widths = [[0, 0] for _ in range(x.ndim)]
    for i, axis in enumerate(axes):
        widths[axis] = [pads[i], pads[len(axes) + i]]
    # Negative pads crop; crop first, then pad with what remains.
    x = x[tuple(slice(-min(b, 0), x.shape[a] + min(e, 0)) for a, (b, e) in enumerate(widths))]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        return [np.pad(x, widths, constant_values=np.asarray(value, x.dtype))]
    return [np.pad(x, widths, mode=mode)]


def _tile(_node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    return [np.tile(inputs[0], _ints(inputs[1]))]


def _gather(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x, indices = inputs[0], np.asarray(inputs[1], dtype=np.int64)
    axis = _axis(node, node.attribute("axis", 0), x.ndim)
    n = x.shape[axis]
    if indices.size and (indices.min() < -n or indices.max() >= n):
        raise _error(node, f"indices out of range [-{n}, {n - 1}]")
    return [np.take(x, indices, axis=axis)]


def _block_size(node: HostNode) -> int:
    block = node.attribute("blocksize")
    if not isinstance(block, int) or block < 1:
        raise _error(node, f"blocksize must be a positive integer, got {block!r}")
    return block


def _depth_to_space(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x, b = inputs[0], _block_size(node)
    n, c, h, w = x.shape
    if c % (b * b):
        raise _error(node, f"{c} channels are not divisible by blocksize² = {b * b}")
    mode = node.attribute("mode", "DCR")
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise _error(node, f"mode {mode!r} is not DCR or CRD")
    return [y.reshape(n, c // (b * b), h * b, w * b)]


def _space_to_depth(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x, b = inputs[0], _block_size(node)
    n, c, h, w = x.shape
    if h % b or w % b:
        raise _error(node, f"height {h} and width {w} are not divisible by blocksize {b}")
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return [y.reshape(n, c * b * b, h // b, w // b)]


# Resize.


def _source_coordinates(mode: str, n_in: int, n_out: int, scale: np.float32) -> np.ndarray:
    """Where each output index samples the input along one axis (float32, as onnxruntime)."""
    y = np.arange(n_out, dtype=np.float32)
    half = np.float32(0.5)
    if mode == "asymmetric":
        return y / scale
    if mode == "align_corners":
        if n_out == 1:
            return np.zeros(1, np.float32)
        return y * np.float32(n_in - 1) / np.float32(n_out - 1)
    if mode == "pytorch_half_pixel" and n_out == 1:
        return np.zeros(1, np.float32)
    if mode == "half_pixel_symmetric":
        adjustment = np.float32(n_out) / (scale * np.float32(n_in))
        offset = np.float32(n_in) / 2 * (1 - adjustment)
        # onnxruntime adds the half pixels in double and rounds the sum to float once.
        centred = (y.astype(np.float64) + 0.5) / np.float64(scale) - 0.5
        return (np.float64(offset) + centred).astype(np.float32)
    return (y + half) / scale - half  # half_pixel, pytorch_half_pixel


_COORDINATE_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
)


def _nearest(mode: str, x: np.ndarray) -> np.ndarray:
    floor = np.floor(x)
    if mode == "floor":
        return floor
    if mode == "ceil":
        return np.ceil(x)
    # Ties go down or up; anything else rounds to the nearest integer.
    tie = x - floor == 0.5
    if mode == "round_prefer_floor":
        return np.where(tie, floor, np.rint(x))
    return np.where(tie, floor + 1, np.rint(x))


_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _resize_sizes(node: HostNode, x: np.ndarray, axes: list[int], scales, sizes):
    """The output size and scale of each resized axis."""
    n_in = [x.shape[a] for a in axes]
    if scales is not None and scales.size:
        scales = [np.float32(s) for s in scales.reshape(-1)]
        if len(scales) != len(axes):
            raise _error(node, f"{len(scales)} scales for {len(axes)} axes")
        if any(s <= 0 for s in scales):
            raise _error(node, f"scales {scales} must be positive")
        return [int(np.float32(n) * s) for n, s in zip(n_in, scales, strict=True)], scales
    if sizes is None or not sizes.size:
        raise _error(node, "neither scales nor sizes is given")
    n_out = _ints(sizes)
    if len(n_out) != len(axes):
        raise _error(node, f"{len(n_out)} sizes for {len(axes)} axes")
    policy = node.attribute("keep_aspect_ratio_policy", "stretch")
    if policy in ("not_larger", "not_smaller"):
        ratios = [np.float32(o) / np.float32(n) for o, n in zip(n_out, n_in, strict=True)]
        scale = min(ratios) if policy == "not_larger" else max(ratios)
        # round() in the spec: halves away from zero.
        n_out = [int(np.floor(np.float32(n) * scale + 0.5)) for n in n_in]
        return n_out, [scale] * len(axes)
    if policy != "stretch":
        raise _error(node, f"keep_aspect_ratio_policy {policy!r} is not supported")
    return n_out, [np.float32(o) / np.float32(n) for o, n in zip(n_out, n_in, strict=True)]


# Linear Resize as onnxruntime's CPU kernels compute it (core/providers/cpu/tensor/
# upsample.h: UpsampleBilinear, NhwcUpsampleBilinear(Integer), UpsampleTrilinear), checked
# bit for bit against onnxruntime 1.32 (tests/sim/test_host_ops.py). Along each resized
# axis, the source coordinate is clamped to the axis, its neighbours are the index below it
# and the next (the last twice at the end, then weighted 0.5 each), and each neighbour
# weighs the float32 distance to the other. Each output element sums its 4 (bilinear) or 8
# (trilinear) neighbours in float32, each term (wx * wy [* wz]) * x, the innermost axis
# varying fastest; an int8/uint8 result is the sum truncated toward zero. onnxruntime
# resizes only the 2 or 3 innermost axes of a 2-D to 5-D tensor, or axes 1 and 2 of a 4-D
# one (channels-last), where int8/uint8 weights are 1/1024ths summed exactly in integers.

_LINEAR_INTEGERS = (np.dtype(np.int8), np.dtype(np.uint8))


def _linear_kernel(rank: int, scales: list) -> tuple[tuple[int, ...], bool] | None:
    """The axes onnxruntime interpolates (outer to inner) for a linear Resize of a rank-`rank`
    tensor with per-axis `scales`, and whether as channels-last (NHWC); None where it has
    no kernel."""
    if rank == 2:
        return (0, 1), False
    if rank == 3:
        return (0, 1, 2), False
    if rank == 4 and scales[0] == 1 and scales[1] == 1:
        return (2, 3), False
    if rank == 4 and scales[0] == 1 and scales[3] == 1:
        return (1, 2), True
    if rank == 5 and scales[0] == 1 and scales[1] == 1:
        return (2, 3, 4), False
    return None


def _linear_taps(mode: str, n_in: int, n_out: int, scale: np.float32):
    """Per output index along one axis: the input index below and above its source
    coordinate (clamped to the axis), the distance to each in float32 (the weight of the
    other), and the coordinate itself. Both weights are 0.5 where the indices coincide."""
    if scale == 1:
        source = np.arange(n_out, dtype=np.float32)
    else:
        source = _source_coordinates(mode, n_in, n_out, scale)
    source = np.minimum(np.maximum(source, np.float32(0)), np.float32(n_in - 1))
    low = np.minimum(source.astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    to_low = np.abs(source - low.astype(np.float32))
    to_high = np.abs(source - high.astype(np.float32))
    same = low == high
    to_low[same] = to_high[same] = np.float32(0.5)
    return low, high, to_low, to_high, source


def _along(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


def _corners(x: np.ndarray, axes, taps):
    """Each corner of the interpolation cells: its input values and which side (0 low,
    1 high) it takes on each axis, in onnxruntime's summation order (the innermost axis
    varying fastest)."""
    n = len(axes)
    for corner in range(1 << n):
        sides = [(corner >> (n - 1 - k)) & 1 for k in range(n)]
        values = x
        for k, axis in enumerate(axes):
            values = np.take(values, taps[k][sides[k]], axis=axis)
        yield values, sides


def _interpolate(x: np.ndarray, axes, taps, channels_last: bool) -> np.ndarray:
    """onnxruntime's (bi/tri)linear interpolation of `x` over `axes` (the comment above)."""
    integer = x.dtype.kind in "iu"
    if integer and channels_last:
        return _interpolate_fixed_point(x, axes, taps)
    values = x.astype(np.float32, copy=False)
    weights = []
    for k, axis in enumerate(axes):
        _, _, to_low, to_high, _ = taps[k]
        # The low sample weighs the distance to the high one, and the other way round.
        weights.append((_along(to_high, axis, x.ndim), _along(to_low, axis, x.ndim)))
    total = None
    for corner, sides in _corners(values, axes, taps):
        # Weights multiply from the innermost axis out, then the sample: (wx * wy) * X.
        weight = None
        for k in reversed(range(len(axes))):
            w = weights[k][sides[k]]
            weight = w if weight is None else weight * w
        term = weight * corner
        total = term if total is None else total + term
    if not integer:
        return total
    return np.trunc(total).astype(x.dtype)


def _interpolate_fixed_point(x: np.ndarray, axes, taps) -> np.ndarray:
    """onnxruntime's NHWC bilinear kernel for int8/uint8: weights in 1/1024ths (the source
    coordinate times 1024, truncated), their products summed exactly in integers and
    divided by 2**20, truncating toward zero."""
    weights = []
    for k, axis in enumerate(axes):
        low, high, _, _, source = taps[k]
        fixed = (source * np.float32(1 << 10)).astype(np.int64)
        to_low = np.abs(fixed - (low << 10))
        to_high = np.abs(fixed - (high << 10))
        same = low == high
        to_low[same] = to_high[same] = 1 << 9
        weights.append((_along(to_high, axis, x.ndim), _along(to_low, axis, x.ndim)))
    total = None
    for corner, sides in _corners(x.astype(np.int64), axes, taps):
        weight = np.ones((1,) * x.ndim, np.int64)
        for k in range(len(axes)):
            weight = weight * weights[k][sides[k]]
        term = weight * corner
        total = term if total is None else total + term
    quotient = np.abs(total) >> 20
    return (np.sign(total) * quotient).astype(x.dtype)


def _linear_resize(node: HostNode, x: np.ndarray, coordinates: str, axes, n_out, scales):
    """A linear Resize by onnxruntime's kernel for its rank and scales, or None (a float `x`
    onnxruntime has no kernel for)."""
    full = [np.float32(1)] * x.ndim
    shape = list(x.shape)
    for axis, size, scale in zip(axes, n_out, scales, strict=True):
        full[axis], shape[axis] = scale, size
    kernel = _linear_kernel(x.ndim, full)
    if kernel is None:
        if x.dtype.kind in "iu":
            raise _error(
                node,
                f"linear mode on {x.dtype} resizes only the 2 or 3 innermost axes of a 2-D "
                f"to 5-D tensor (onnxruntime's kernels); scales {[float(s) for s in full]}",
            )
        return None
    resized_axes, channels_last = kernel
    taps = [_linear_taps(coordinates, x.shape[a], shape[a], full[a]) for a in resized_axes]
    return _interpolate(x, resized_axes, taps, channels_last)


def _resize(node: HostNode, inputs: Inputs) -> list[np.ndarray]:
    x = inputs[0]
    mode = node.attribute("mode", "nearest")
    coordinates = node.attribute("coordinate_transformation_mode", "half_pixel")
    nearest_mode = node.attribute("nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear"):
        raise _error(node, f"mode {mode!r} is not supported (only nearest and linear)")
    if coordinates not in _COORDINATE_MODES:
        raise _error(node, f"coordinate_transformation_mode {coordinates!r} is not supported")
    if mode == "nearest" and nearest_mode not in _NEAREST_MODES:
        raise _error(node, f"nearest_mode {nearest_mode!r} is not supported")
    if node.attribute("antialias", 0):
        raise _error(node, "antialias=1 is not supported")
    if mode == "linear" and x.dtype.kind in "iu" and x.dtype not in _LINEAR_INTEGERS:
        raise _error(node, f"linear mode on {x.dtype} is not supported (float, int8, uint8)")
    axes = _ints(node.attribute("axes")) or list(range(x.ndim))
    axes = [_axis(node, a, x.ndim) for a in axes]
    n_out, scales = _resize_sizes(node, x, axes, _opt(inputs, 2), _opt(inputs, 3))
    if all(size == x.shape[axis] for axis, size in zip(axes, n_out, strict=True)):
        return [x.copy()]  # onnxruntime copies the input when no size changes
    if mode == "linear":
        resized = _linear_resize(node, x, coordinates, axes, n_out, scales)
        if resized is not None:
            return [resized]
    # Nearest and (multi)linear interpolation are separable: resize one axis at a time
    # (linear only on floats onnxruntime has no kernel for).
    for axis, size, scale in zip(axes, n_out, scales, strict=True):
        n_in = x.shape[axis]
        if size == n_in and scale == 1:
            continue
        source = _source_coordinates(coordinates, n_in, size, scale)
        if mode == "nearest":
            index = np.clip(_nearest(nearest_mode, source), 0, n_in - 1).astype(np.int64)
            x = np.take(x, index, axis=axis)
            continue
        source = np.clip(source, 0, n_in - 1)
        low = np.floor(source).astype(np.int64)
        high = np.minimum(low + 1, n_in - 1)
        shape = [1] * x.ndim
        shape[axis] = size
        weight = (source - low).astype(x.dtype).reshape(shape)
        x = np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight
    return [x]


RUNNERS: dict[str, Runner] = {
    **{op: _unary(fn) for op, fn in _UNARY.items()},
    **{op: _binary(fn) for op, fn in _BINARY.items()},
    **{op: _variadic(fn) for op, fn in _VARIADIC.items()},
    "ArgMax": _arg_max,
    "AveragePool": _average_pool,
    "BatchNormalization": _batch_normalization,
    "Clip": _clip,
    "Concat": _concat,
    "ConvTranspose": _conv_transpose,
    "DepthToSpace": _depth_to_space,
    "Flatten": _flatten,
    "Gather": _gather,
    "GlobalAveragePool": _global_pool(np.mean),
    "GlobalMaxPool": _global_pool(np.max),
    "InstanceNormalization": _instance_normalization,
    "LRN": _lrn,
    "LogSoftmax": _log_softmax,
    "MaxPool": _max_pool,
    "Mean": _mean,
    "Pad": _pad,
    "ReduceMax": _reduce(np.max),
    "ReduceMean": _reduce(np.mean),
    "ReduceMin": _reduce(np.min),
    "ReduceSum": _reduce(np.sum),
    "Reshape": _reshape,
    "Resize": _resize,
    "Slice": _slice,
    "Softmax": _softmax,
    "SpaceToDepth": _space_to_depth,
    "Split": _split,
    "Squeeze": _squeeze,
    "Tile": _tile,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
}


def run_nodes(nodes: Sequence[HostNode], values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run `nodes` in order over `values` (the inputs and constants, by name); return every
    value, the given ones and each node's outputs."""
    values = dict(values)
    for node in nodes:
        runner = RUNNERS.get(node.op_type)
        if runner is None:
            raise _error(node, "not a host op")
        missing = [name for name in node.inputs if name and name not in values]
        if missing:
            raise _error(node, f"input {missing[0]!r} has no value")
        inputs = [values[name] if name else None for name in node.inputs]
        try:
            # ONNX float ops follow IEEE 754 (1/0 = inf, log(-1) = nan), not errors.
            with np.errstate(all="ignore"):
                outputs = runner(node, inputs)
        except HostOpError:
            raise
        except (ValueError, IndexError) as error:  # shapes that do not fit the op
            raise _error(node, str(error)) from error
        extra = [name for name in node.outputs[len(outputs) :] if name]
        if extra:
            raise _error(node, f"output {extra[0]!r} is not supported (only the first)")
        for name, value in zip(node.outputs, outputs, strict=False):
            if name:
                values[name] = np.asarray(value)
    return values
