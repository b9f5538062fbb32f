"""Golden model: numpy execution of the integer IR, the truth every executor is checked
against. Its integer primitives (wrap-around, the requantizer) are arch/arithmetic.py's,
shared with the instruction simulator and the block models.

Every executor (instruction simulator, RTL, board) must reproduce these results bit for bit.
The rules, also written out in docs/quantization.md:

- Accumulators are int32 and wrap modulo 2**32. Products are exact.
- Conv / MatMul: acc = sum(x * w) + bias, with x padded by the input zero point, w already
  zero-point-free and bias already holding -x_zero_point * sum(w).
- Requantization: out = clamp(round_half_even((acc * m) / 2**n) + z, qmin, qmax), with
  a 64-bit product, m < 2**31 and 1 <= n <= 62, per output channel where the weights are
  per channel. In integers (`arch.arithmetic.round_shift`): (p + 2**(n-1) - 1 +
  ((p >> n) & 1)) >> n with an arithmetic shift. Ties to even match ONNX's
  QuantizeLinear, which matters where ties are common (an average of 4 values is a tie
  half the time).
- A requantization may end in a lookup table: out = table[c][y + 128] (a fused element-wise
  function; its entries are the host op's own results for each int8 value).
- AvgPool: acc = tap_multiplier * sum of (x - z_in) over the window (padding counts as
  zero) + bias, then requant.
- Add: acc = (a - z_a) * m_a + (b - z_b) * m_b in int32, then requant (multiplier 1).
- Mul (a per-channel gate): acc = (x - z_x) * (g - z_g), g broadcast over the pixels, then
  requant.
- MaxPool, Concat, Reshape move values and do not change them.
- Host ops (ir.HostOp): the model's own float ops on dequantized inputs, quantized back as
  QuantizeLinear does (verdigris.sim.host.run_host_compute).
- Host: a float input is quantized with round-half-to-even and saturation, computed in
  float32 (as onnxruntime does); outputs are dequantized as (q - z) * scale in float32.
  Those steps, and the rule for what an input may hold, are the host-op runtime's
  (verdigris.sim.host), which every executor shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from verdigris.arch import arithmetic
from verdigris.arch.arithmetic import wrap
from verdigris.arch.isa import LUT_ENTRIES
from verdigris.compiler import ir
from verdigris.sim.host import (
    InputError,
    check_batches,
    check_input,
    finish_output,
    quantize_input,
    run_host_compute,
)

__all__ = [
    "RULES",
    "GoldenError",
    "requantize",
    "run_device",
    "run_graph",
    "run_op",
    "wrap_int32",
]

logger = logging.getLogger(__name__)

# Integers below this bound are exact in float64, which lets the MACs use BLAS.
_FLOAT64_EXACT = 2**53


# Inputs that do not fit the graph (names, shapes, dtypes): the host-op runtime's error,
# so that one `except` catches a bad input whichever executor runs it.
GoldenError = InputError


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """`values` modulo 2**32 in the signed range, as int64: the IR's int32 accumulator."""
    return wrap(values, 32)


def requantize(acc: np.ndarray, requant: ir.Requant, channel_axis: int) -> np.ndarray:
    """The requantizer: int32 `acc` to the output type (see the module docstring), with
    per-channel parameters along `channel_axis`, then its lookup table, if any."""
    shape = [1] * acc.ndim
    if requant.per_channel:
        shape[channel_axis] = -1
    result = arithmetic.requantize(
        acc,
        multiplier=requant.multiplier.reshape(shape),
        shift=requant.shift.reshape(shape),
        zero_point=requant.zero_point,
        qmin=requant.qmin,
        qmax=requant.qmax,
    )
    if requant.table is None:
        return result
    index = result + LUT_ENTRIES // 2
    if len(requant.table) == 1:
        return requant.table[0][index]
    channels = [1] * acc.ndim
    channels[channel_axis] = -1
    channel = np.arange(len(requant.table)).reshape(channels)
    return requant.table[channel, index]


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
    return requantize(wrap_int32(acc * node.tap_multiplier + node.bias), node.requant, 1)


def _add(node: ir.Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        raise GoldenError(f"Add {node.name}: input shapes differ: {a.shape} and {b.shape}")
    acc = (a - node.a_zero_point) * node.a_multiplier + (b - node.b_zero_point) * node.b_multiplier
    return requantize(wrap_int32(acc), node.requant, 1)


def _mul(node: ir.Mul, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    acc = (x - node.x_zero_point) * (g - node.g_zero_point)  # g broadcasts over the pixels
    return requantize(wrap_int32(acc), node.requant, 1)


def _requantize_op(node: ir.Requantize, x: np.ndarray) -> np.ndarray:
    return requantize(wrap_int32(x - node.input_zero_point), node.requant, 1)


def _reshape(node: ir.Reshape, x: np.ndarray) -> np.ndarray:
    return x.reshape((x.shape[0], *node.shape[1:]))


# The rule of each IR device op: (node, argument arrays) -> result. The compiler's table of
# device ops (compiler/backend/device_ops.py) names the same ops; a test keeps them equal.
RULES: dict[type[ir.Op], Callable[[ir.Op, list[np.ndarray]], np.ndarray]] = {
    ir.Conv: lambda node, args: _conv(node, args[0]),
    ir.MatMul: lambda node, args: _matmul(node, args[0]),
    ir.MaxPool: lambda node, args: _maxpool(node, args[0]),
    ir.AvgPool: lambda node, args: _avgpool(node, args[0]),
    ir.Add: lambda node, args: _add(node, args[0], args[1]),
    ir.Mul: lambda node, args: _mul(node, args[0], args[1]),
    ir.Requantize: lambda node, args: _requantize_op(node, args[0]),
    ir.Concat: lambda node, args: np.concatenate(args, axis=node.axis),
    ir.Reshape: lambda node, args: _reshape(node, args[0]),
}


def run_op(node: ir.Op, args: list[np.ndarray]) -> np.ndarray:
    """One op of the graph on its (integer) arguments."""
    if isinstance(node, ir.HostOp):  # the host's ops: the host-op runtime's, as on every executor
        return run_host_compute(node.compute, args)
    rule = RULES.get(type(node))
    if rule is None:
        raise GoldenError(f"the golden model has no rule for op {node.kind} ({node.name})")
    return rule(node, args)


def run_device(graph: ir.Graph, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the device ops on integer inputs (device tensor name -> int array); return every
    tensor computed, by name, as int64 arrays."""
    env = {name: np.asarray(value, dtype=np.int64) for name, value in values.items()}
    for node in graph.nodes:
        env[node.output] = run_op(node, [env[name] for name in node.inputs])
    return env


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
