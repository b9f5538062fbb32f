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

__all__ = [
    "GoldenError",
    "check_batches",
    "check_input",
    "quantize_input",
    "requantize",
    "run_device",
    "run_graph",
    "wrap_int32",
]

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


def check_input(graph_input: ir.GraphInput, value: np.ndarray) -> np.ndarray:
    """`value` as an array the host may quantize for `graph_input`, or a GoldenError that
    names the problem. The rule (docs/quantization.md, "Host"): a float model input takes
    floating-point data only (integers are refused, never taken as already quantized); an
    integer model input takes integers within its type's range; NaN is refused everywhere
    (infinities saturate, as in QuantizeLinear)."""
    value = np.asarray(value)
    name, expected = graph_input.name, graph_input.onnx_dtype
    kind = value.dtype.kind
    if graph_input.tensor.scale is not None:  # a float model input
        if kind != "f":
            raise GoldenError(
                f"input {name}: the model takes {expected} values; got {value.dtype} data. "
                f"Pass floats as the model expects them (for example "
                f"x.astype(np.float32), scaled as in training)"
            )
        if np.isnan(value).any():
            where = tuple(int(i) for i in np.argwhere(np.isnan(value))[0])
            raise GoldenError(f"input {name} contains NaN at index {where}")
        return value
    if kind not in "iu":
        raise GoldenError(f"input {name}: the model takes {expected} integers; got {value.dtype}")
    if value.size == 0:
        return value
    info = np.iinfo(np.dtype(expected))
    low, high = int(value.min()), int(value.max())
    if low < info.min or high > info.max:
        raise GoldenError(
            f"input {name}: values from {low} to {high} do not fit the model's {expected} "
            f"[{info.min}, {info.max}]"
        )
    return value


def check_batches(graph_inputs: list[ir.GraphInput], feeds: Mapping[str, np.ndarray]) -> int:
    """The number of samples in `feeds` (one per model input), after checking that every input
    is there and has the same, non-zero number of samples."""
    missing = [i.name for i in graph_inputs if i.name not in feeds]
    if missing:
        names = ", ".join(f"{i.name}{list(i.tensor.shape)}" for i in graph_inputs)
        raise GoldenError(f"missing input(s) {missing}; the model takes {names}")
    batches = {}
    for graph_input in graph_inputs:
        shape = np.shape(feeds[graph_input.name])
        if not shape:
            raise GoldenError(
                f"input {graph_input.name} is a scalar; the model expects shape "
                f"{graph_input.tensor.shape}"
            )
        if shape[0] == 0:
            raise GoldenError(f"input {graph_input.name}: no samples (shape {shape})")
        batches[graph_input.name] = shape[0]
    if len(set(batches.values())) > 1:
        sizes = ", ".join(f"{k}: {v}" for k, v in batches.items())
        raise GoldenError(f"batch sizes differ between the inputs ({sizes})")
    return next(iter(batches.values()))


def quantize_input(graph_input: ir.GraphInput, value: np.ndarray) -> np.ndarray:
    """Host step before the device: float -> device integers, or uint8 -> int8. `value`
    has passed `check_input` (run_graph and the API check a whole batch once, first)."""
    tensor = graph_input.tensor
    value = np.asarray(value)
    if tensor.scale is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # infinities saturate below
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
    batch = check_batches(list(graph.inputs), feeds)
    fixed = {i.tensor.shape[0] for i in graph.inputs if i.tensor.shape}
    one_at_a_time = not graph.dynamic_batch and fixed == {1} and batch > 1
    for graph_input in graph.inputs:
        expected = graph_input.tensor.shape
        got = np.shape(feeds[graph_input.name])
        batch_ok = graph.dynamic_batch or one_at_a_time or got[:1] == expected[:1]
        if len(got) != len(expected) or tuple(got[1:]) != tuple(expected[1:]) or not batch_ok:
            raise GoldenError(
                f"input {graph_input.name} has shape {got}; the model expects {expected}"
                + (" (any batch size)" if graph.dynamic_batch else "")
            )
    checked = {i.name: check_input(i, feeds[i.name]) for i in graph.inputs}
    if one_at_a_time:
        logger.info("model batch is fixed at 1: running %d samples in turn", batch)
        per_sample = [
            _run_checked(graph, {k: v[j : j + 1] for k, v in checked.items()}, raw)
            for j in range(batch)
        ]
        return {k: np.concatenate([r[k] for r in per_sample]) for k in per_sample[0]}
    return _run_checked(graph, checked, raw)


def _run_checked(
    graph: ir.Graph, feeds: Mapping[str, np.ndarray], raw: bool
) -> dict[str, np.ndarray]:
    """`run_graph` on feeds it has checked: host steps, device ops, host steps."""
    device_inputs = {i.tensor.name: quantize_input(i, feeds[i.name]) for i in graph.inputs}
    env = run_device(graph, device_inputs)
    return {o.name: finish_output(o, env[o.tensor.name], raw=raw) for o in graph.outputs}
