"""Golden model: numpy execution of the integer IR. This file is the arithmetic spec.

Every executor (instruction simulator, RTL, board) must reproduce these results bit for bit.
The rules, also written out in docs/quantization.md:

- Accumulators are int32 and wrap modulo 2**32. Products are exact.
- Conv / MatMul: acc = sum(x * w) + bias, with x padded by the input zero point, w already
  zero-point-free and bias already holding -x_zero_point * sum(w).
- Requantization: out = clamp(round_half_even((acc * m) / 2**n) + z, qmin, qmax), with
  a 64-bit product, m < 2**31 and 1 <= n <= 62, per output channel where the weights are
  per channel. In integers: (p + 2**(n-1) - 1 + ((p >> n) & 1)) >> n with an arithmetic
  shift. Ties to even match ONNX's QuantizeLinear, which matters where ties are common
  (an average of 4 values is a tie half the time).
- AvgPool: acc = sum of (x - z_in) over the window (padding counts as zero), then requant.
- Add: acc = (a - z_a) * m_a + (b - z_b) * m_b in int32, then requant (multiplier 1).
- MaxPool, Concat, Reshape move values and do not change them.
- Host: a float input is quantized with round-half-to-even and saturation, computed in
  float32 (as onnxruntime does); outputs are dequantized as (q - z) * scale in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from verdigris.compiler import ir

__all__ = ["GoldenError", "requantize", "run_device", "run_graph", "wrap_int32"]

logger = logging.getLogger(__name__)

# Integers below this bound are exact in float64, which lets the MACs use BLAS.
_FLOAT64_EXACT = 2**53


class GoldenError(ValueError):
    """Inputs that do not fit the graph (names, shapes, dtypes)."""


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """`values` modulo 2**32 in the signed range, as int64."""
    return ((values.astype(np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def requantize(acc: np.ndarray, requant: ir.Requant, channel_axis: int) -> np.ndarray:
    """The requantizer: int32 `acc` to the output type (see the module docstring)."""
    shape = [1] * acc.ndim
    if requant.per_channel:
        shape[channel_axis] = -1
    multiplier = requant.multiplier.reshape(shape).astype(np.int64)
    shift = requant.shift.reshape(shape).astype(np.int64)
    product = acc.astype(np.int64) * multiplier  # |acc| < 2**31, m < 2**31: fits int64
    # Round half to even: add half, less one when the kept part is even, then shift.
    kept_odd = (product >> shift) & 1
    rounded = (product + (np.int64(1) << (shift - 1)) - 1 + kept_odd) >> shift
    return np.clip(rounded + requant.zero_point, requant.qmin, requant.qmax)


def _exact_matmul(a: np.ndarray, b: np.ndarray, terms: int) -> np.ndarray:
    """Integer a @ b through float64 BLAS, exact because every partial sum is < 2**53."""
    bound = int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0)) * max(terms, 1)
    if bound >= _FLOAT64_EXACT:
        return np.matmul(a.astype(np.int64), b.astype(np.int64))
    return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)


def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value: int) -> np.ndarray:
    top, left, bottom, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of the sliding windows of padded NCHW `x`."""
    kh, kw = kernel
    span_h, span_w = dilations[0] * (kh - 1) + 1, dilations[1] * (kw - 1) + 1
    view = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1], :: dilations[0], :: dilations[1]]


def _ceil_pads(
    shape: tuple[int, ...], node: ir.MaxPool | ir.AvgPool, dilations=(1, 1)
) -> tuple[int, int, int, int]:
    """Pads plus the extra bottom/right rows that ceil_mode needs for its last window."""
    top, left, bottom, right = node.pads
    if not node.ceil_mode:
        return node.pads
    extra = []
    for size, k, s, d, lo, hi in zip(
        shape[2:], node.kernel, node.strides, dilations, (top, left), (bottom, right), strict=True
    ):
        span = d * (k - 1) + 1
        out = -(-(size + lo + hi - span) // s) + 1
        if (out - 1) * s >= size + lo:  # ONNX drops a last window starting in the padding
            out -= 1
        extra.append(max(0, (out - 1) * s + span - (size + lo + hi)))
    return top, left, bottom + extra[0], right + extra[1]


def _conv(node: ir.Conv, x: np.ndarray) -> np.ndarray:
    n, c = x.shape[:2]
    out_channels = node.weight.shape[0]
    g = node.groups
    kh, kw = node.kernel
    windows = _windows(
        _pad(x, node.pads, node.input_zero_point), (kh, kw), node.strides, node.dilations
    )
    oh, ow = windows.shape[2:4]
    # (N, g, OH*OW, C/g*kh*kw) @ (g, C/g*kh*kw, O/g)
    cols = windows.reshape(n, g, c // g, oh * ow, kh * kw).transpose(0, 1, 3, 2, 4)
    cols = cols.reshape(n, g, oh * ow, (c // g) * kh * kw)
    weight = node.weight.reshape(g, out_channels // g, -1).transpose(0, 2, 1)
    acc = _exact_matmul(cols, weight, cols.shape[-1])  # (N, g, OH*OW, O/g)
    acc = acc.transpose(0, 1, 3, 2).reshape(n, out_channels, oh, ow)
    acc = wrap_int32(acc + node.bias.reshape(1, -1, 1, 1))
    return acc if node.requant is None else requantize(acc, node.requant, 1)


def _matmul(node: ir.MatMul, x: np.ndarray) -> np.ndarray:
    acc = _exact_matmul(x, node.weight, node.weight.shape[-2])
    acc = wrap_int32(acc + node.bias)
    return acc if node.requant is None else requantize(acc, node.requant, -1)


def _maxpool(node: ir.MaxPool, x: np.ndarray) -> np.ndarray:
    lowest = np.iinfo(np.int64).min
    padded = _pad(x, _ceil_pads(x.shape, node, node.dilations), lowest)
    return _windows(padded, node.kernel, node.strides, node.dilations).max(axis=(4, 5))


def _avgpool(node: ir.AvgPool, x: np.ndarray) -> np.ndarray:
    centred = x - node.input_zero_point
    padded = _pad(centred, _ceil_pads(x.shape, node), 0)
    acc = _windows(padded, node.kernel, node.strides).sum(axis=(4, 5))
    return requantize(wrap_int32(acc), node.requant, 1)


def _add(node: ir.Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        raise GoldenError(f"Add {node.name}: input shapes differ: {a.shape} and {b.shape}")
    acc = (a - node.a_zero_point) * node.a_multiplier + (b - node.b_zero_point) * node.b_multiplier
    return requantize(wrap_int32(acc), node.requant, 1)


def _execute(node: ir.Op, args: list[np.ndarray]) -> np.ndarray:
    match node:
        case ir.Conv():
            return _conv(node, args[0])
        case ir.MatMul():
            return _matmul(node, args[0])
        case ir.MaxPool():
            return _maxpool(node, args[0])
        case ir.AvgPool():
            return _avgpool(node, args[0])
        case ir.Add():
            return _add(node, args[0], args[1])
        case ir.Requantize():
            return requantize(wrap_int32(args[0] - node.input_zero_point), node.requant, 1)
        case ir.Concat():
            return np.concatenate(args, axis=node.axis)
        case ir.Reshape():
            return args[0].reshape((args[0].shape[0], *node.shape[1:]))
    raise GoldenError(f"the golden model has no rule for op {node.kind} ({node.name})")


def run_device(graph: ir.Graph, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the device ops on integer inputs (device tensor name -> int array); return every
    tensor computed, by name, as int64 arrays."""
    env = {name: np.asarray(value, dtype=np.int64) for name, value in values.items()}
    for node in graph.nodes:
        env[node.output] = _execute(node, [env[name] for name in node.inputs])
    return env


def quantize_input(graph_input: ir.GraphInput, value: np.ndarray) -> np.ndarray:
    """Host step before the device: float -> device integers, or uint8 -> int8."""
    tensor = graph_input.tensor
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        if tensor.scale is None:
            raise GoldenError(f"input {graph_input.name} is integer; got {value.dtype} data")
        scaled = np.rint(value.astype(np.float32) / np.float32(tensor.scale))
        return np.clip(scaled + tensor.zero_point, tensor.dtype.qmin, tensor.dtype.qmax).astype(
            np.int64
        )
    if graph_input.onnx_dtype == "uint8":
        return value.astype(np.int64) - 128
    return value.astype(np.int64)


def finish_output(graph_output: ir.GraphOutput, value: np.ndarray, *, raw: bool) -> np.ndarray:
    """Host step after the device: the model's integer type (`raw`) or its float output."""
    if raw or not graph_output.steps:
        if graph_output.onnx_int_dtype == "uint8":
            return (value + 128).astype(np.uint8)
        return value.astype(np.dtype(graph_output.onnx_int_dtype))
    result: np.ndarray = value
    for step in graph_output.steps:
        match step:
            case ir.Dequantize():
                centred = result.astype(np.int64) - step.zero_point
                result = centred.astype(np.float32) * np.float32(step.scale)
            case ir.Quantize():
                info = np.iinfo(np.dtype(step.dtype))
                scaled = np.rint(result.astype(np.float32) / np.float32(step.scale))
                result = np.clip(scaled + step.zero_point, info.min, info.max).astype(step.dtype)
            case ir.Softmax():
                shifted = result - result.max(axis=step.axis, keepdims=True)
                exp = np.exp(shifted.astype(np.float32))
                result = exp / exp.sum(axis=step.axis, keepdims=True)
            case ir.ArgMax():
                result = np.argmax(result, axis=step.axis)
                if step.keepdims:
                    result = np.expand_dims(result, step.axis)
                result = result.astype(np.int64)
            case ir.Flatten():
                result = result.reshape(int(np.prod(result.shape[: step.axis])), -1)
    return result


def run_graph(
    graph: ir.Graph, feeds: Mapping[str, np.ndarray], *, raw: bool = False
) -> dict[str, np.ndarray]:
    """Run a whole model as ONNX would: feeds by ONNX input name, outputs by ONNX output name.

    A model with a fixed batch of 1 given a larger batch runs the samples one at a time.
    """
    missing = [i.name for i in graph.inputs if i.name not in feeds]
    if missing:
        raise GoldenError(f"missing input(s) {missing}; the model takes {_input_list(graph)}")
    batches = {np.shape(feeds[i.name])[0] for i in graph.inputs if np.ndim(feeds[i.name])}
    fixed = {i.tensor.shape[0] for i in graph.inputs if i.tensor.shape}
    if not graph.dynamic_batch and fixed == {1} and batches and max(batches) > 1:
        logger.info("model batch is fixed at 1: running %d samples in turn", max(batches))
        per_sample = [
            run_graph(graph, {k: v[j : j + 1] for k, v in feeds.items()}, raw=raw)
            for j in range(max(batches))
        ]
        return {k: np.concatenate([r[k] for r in per_sample]) for k in per_sample[0]}
    for graph_input in graph.inputs:
        expected = graph_input.tensor.shape
        got = np.shape(feeds[graph_input.name])
        trailing_ok = tuple(got[1:]) == tuple(expected[1:])
        if (
            len(got) != len(expected)
            or not trailing_ok
            or (not graph.dynamic_batch and got[:1] != expected[:1])
        ):
            raise GoldenError(
                f"input {graph_input.name} has shape {got}; the model expects {expected}"
                + (" (any batch size)" if graph.dynamic_batch else "")
            )
    device_inputs = {i.tensor.name: quantize_input(i, feeds[i.name]) for i in graph.inputs}
    env = run_device(graph, device_inputs)
    return {o.name: finish_output(o, env[o.tensor.name], raw=raw) for o in graph.outputs}


def _input_list(graph: ir.Graph) -> str:
    return ", ".join(f"{i.name}{list(i.tensor.shape)}" for i in graph.inputs)
