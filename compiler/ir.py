"""The integer IR: what a quantized network computes, in integers only.

A `Graph` is a topologically ordered tuple of ops over named integer tensors, plus the
host-side steps at its edges (quantizing float inputs, dequantizing and post-processing
outputs). Every op and tensor is a frozen dataclass; passes build new ones instead of
mutating. Exact integer semantics of each op are defined by `verdigris.sim.golden` and
documented in docs/quantization.md.

Conventions:
- Activations are int8 (or narrower) with a per-tensor scale and zero point. uint8
  activations from a model are re-expressed as int8 with zero point - 128.
- Weights are stored with their zero point already subtracted (`w - w_zero_point`), as
  plain integers of `weight_bits` bits, with per-output-channel scales.
- Biases are int32 and already include the input zero-point correction
  (`b - x_zero_point * sum(w)`), so the array only multiplies and adds.
- Tensor shapes are full ONNX shapes, batch first; layout NCHW.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

# The host side of a model (its inputs, outputs and host steps) and the tensor type are the
# Program's (verdigris.arch.host_steps): one definition, which a Program stores and the
# host-op runtime runs without the compiler. A graph input is a HostInput, an output a
# HostOutput.
from verdigris.arch.host_steps import (
    Compute,
    Dequantize,
    HostCompute,
    HostNode,
    HostStep,
    IntType,
    Tensor,
)
from verdigris.arch.host_steps import HostInput as GraphInput
from verdigris.arch.host_steps import HostOutput as GraphOutput

__all__ = [
    "INT8",
    "INT32",
    "Add",
    "AvgPool",
    "Compute",
    "Concat",
    "Conv",
    "Dequantize",
    "Graph",
    "GraphInput",
    "GraphOutput",
    "HostCompute",
    "HostNode",
    "HostOp",
    "HostStep",
    "IntType",
    "MatMul",
    "MaxPool",
    "Mul",
    "Op",
    "Requant",
    "Requantize",
    "Reshape",
    "Tensor",
    "format_graph",
]


INT8 = IntType(8)
INT32 = IntType(32)


@dataclass(frozen=True, eq=False)
class Requant:
    """Integer requantization of an accumulator to an output type (the arithmetic:
    verdigris.arch.arithmetic.requantize, docs/quantization.md).

    out = clamp(round_half_even(acc * multiplier / 2**shift) + zero_point, qmin, qmax)

    `multiplier` and `shift` have one entry per output channel, or one for all channels.
    The clamp range also carries fused ReLU / ReLU6. A `table` (int64, (1, 256) or
    (channels, 256)) then maps each int8 result y to table[c][y + 128]: an element-wise
    function fused into the op (compiler/passes/lookups.py), run by the store's lookup
    tables (docs/isa.md, STORE).
    """

    multiplier: np.ndarray  # int64 values in [0, 2**31)
    shift: np.ndarray  # int64 values in [1, 63]
    zero_point: int
    qmin: int
    qmax: int
    table: np.ndarray | None = None

    @property
    def per_channel(self) -> bool:
        return self.multiplier.size > 1

    def describe(self) -> str:
        kind = f"per-channel x{self.multiplier.size}" if self.per_channel else "per-tensor"
        first = f"m={int(self.multiplier.flat[0])} >>{int(self.shift.flat[0])}"
        text = f"requant {kind} ({first}) z={self.zero_point} clamp[{self.qmin},{self.qmax}]"
        if self.table is not None:
            tables = "per-channel" if len(self.table) > 1 else "per-tensor"
            text += f" then lookup ({tables})"
        return text


@dataclass(frozen=True, eq=False)
class Op:
    """Base of all device ops: one output tensor, named inputs, a source node name."""

    name: str
    inputs: tuple[str, ...]
    output: str

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, eq=False)
class Conv(Op):
    """2-D convolution, NCHW. acc = conv(pad(x, input_zero_point), weight) + bias.

    weight: (out_channels, in_channels / groups, kh, kw); pads: (top, left, bottom, right).
    Padding uses the input zero point (a real zero), which the bias correction expects.
    `requant` None means the output is the raw int32 accumulator (ConvInteger).
    """

    weight: np.ndarray
    weight_bits: int
    bias: np.ndarray  # int64 (out_channels,)
    input_zero_point: int
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    groups: int
    requant: Requant | None
    weight_scale: np.ndarray | None = None  # float, per output channel (for reports)

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weight.shape[2], self.weight.shape[3]


@dataclass(frozen=True, eq=False)
class MatMul(Op):
    """Matrix product with a constant weight: acc = x @ weight + bias (numpy broadcasting).

    weight: (..., K, N); bias: (N,). Covers Gemm (with transposition and alpha/beta folded
    in), MatMul, QLinearMatMul, MatMulInteger and QGemm.
    """

    weight: np.ndarray
    weight_bits: int
    bias: np.ndarray  # int64 (N,), already corrected for the input zero point
    input_zero_point: int
    requant: Requant | None
    weight_scale: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class MaxPool(Op):
    """Max pooling; padding uses the type's minimum, so it never wins. Same quantization
    in and out."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int] = (1, 1)
    ceil_mode: bool = False


@dataclass(frozen=True, eq=False)
class AvgPool(Op):
    """Average pooling: acc = tap_multiplier * sum over the window of (x - input_zero_point)
    + bias, padding counted as zeros; out = requant(acc) with the 1/(kh*kw) divisor folded
    into the multiplier. Global average pooling is the case kernel == input spatial size.
    A QONNX Trunc (a floor of the sum) doubles the sum and adds an odd bias, so that the
    requantizer's rounding is a floor (docs/quantization.md, "Trunc")."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    input_zero_point: int
    requant: Requant
    ceil_mode: bool = False
    tap_multiplier: int = 1
    bias: int = 0


@dataclass(frozen=True, eq=False)
class Add(Op):
    """Element-wise add of two quantized tensors with rescale (same shape).

    acc = (a - a_zero_point) * a_multiplier + (b - b_zero_point) * b_multiplier, then
    requant with multiplier 1: out = clamp(round_shift(acc, shift) + zero_point).
    """

    a_zero_point: int
    b_zero_point: int
    a_multiplier: int
    b_multiplier: int
    requant: Requant  # multiplier [1]; shift, zero point and clamp of the output


@dataclass(frozen=True, eq=False)
class Mul(Op):
    """Per-channel gate: the element-wise product of x (N, C, H, W) and a gate g (N, C, 1, 1)
    broadcast over the pixels (a squeeze-excitation block's x * sigmoid(...)).

    acc = (x - x_zero_point) * (g - g_zero_point), then requant.
    """

    x_zero_point: int
    g_zero_point: int
    requant: Requant


@dataclass(frozen=True, eq=False)
class Requantize(Op):
    """Rescale one tensor to another scale/zero point: out = requant(x - input_zero_point).
    Inserted where ops need equal quantization (Concat inputs, MaxPool, standalone ReLU)."""

    input_zero_point: int
    requant: Requant


@dataclass(frozen=True, eq=False)
class Concat(Op):
    """Concatenation along `axis`; every input has the output's quantization."""

    axis: int


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """Reshape in ONNX (row-major, NCHW) order to `shape` (batch dimension first)."""

    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class HostOp(Op):
    """Ops of the model the device cannot run, computed on the host between device segments:
    the device tensors `inputs` in, the device tensor `output` out (`compute` says how,
    docs/frontend.md "Device and host"). `reason` says why it is not on the device."""

    compute: HostCompute
    reason: str = ""


@dataclass(frozen=True, eq=False)
class Graph:
    name: str
    inputs: tuple[GraphInput, ...]
    nodes: tuple[Op, ...]
    outputs: tuple[GraphOutput, ...]
    tensors: dict[str, Tensor] = field(default_factory=dict)  # every device tensor
    dynamic_batch: bool = True

    def ops(self, kind: type[Op]) -> Iterator[Op]:
        return (node for node in self.nodes if isinstance(node, kind))


def macs(node: Op, graph: Graph) -> int:
    """Multiply-accumulates of one op for one batch as shaped in the graph."""
    out = graph.tensors[node.output]
    if isinstance(node, Conv):
        kh, kw = node.kernel
        return int(np.prod(out.shape)) * (node.weight.shape[1] * kh * kw)
    if isinstance(node, MatMul):
        return int(np.prod(out.shape)) * node.weight.shape[-2]
    return 0


def _attributes(node: Op) -> str:
    parts = []
    if isinstance(node, Conv):
        kh, kw = node.kernel
        parts.append(f"k={kh}x{kw} s={node.strides[0]},{node.strides[1]}")
        if any(node.pads):
            parts.append(f"pad={','.join(map(str, node.pads))}")
        if node.dilations != (1, 1):
            parts.append(f"dil={node.dilations[0]},{node.dilations[1]}")
        if node.groups != 1:
            parts.append(f"groups={node.groups}")
        parts.append(f"w=int{node.weight_bits}{list(node.weight.shape)}")
    elif isinstance(node, MatMul):
        parts.append(f"w=int{node.weight_bits}{list(node.weight.shape)}")
    elif isinstance(node, MaxPool | AvgPool):
        parts.append(f"k={node.kernel[0]}x{node.kernel[1]} s={node.strides[0]},{node.strides[1]}")
        if any(node.pads):
            parts.append(f"pad={','.join(map(str, node.pads))}")
        if isinstance(node, AvgPool) and (node.tap_multiplier, node.bias) != (1, 0):
            parts.append(f"acc={node.tap_multiplier}*sum{node.bias:+d}")
    elif isinstance(node, Concat):
        parts.append(f"axis={node.axis}")
    elif isinstance(node, Reshape):
        parts.append(f"shape={list(node.shape)}")
    elif isinstance(node, Add):
        parts.append(f"ma={node.a_multiplier} mb={node.b_multiplier}")
    elif isinstance(node, HostOp):
        ops = " -> ".join(n.op_type for n in node.compute.nodes)
        parts.append(f"on the host: {ops} ({node.reason})")
    requant = getattr(node, "requant", None)
    if requant is not None:
        parts.append(requant.describe())
    return " ".join(parts)


def format_graph(graph: Graph) -> str:
    """The graph as readable text: inputs, one line per op with its output tensor, outputs."""
    lines = [f"graph {graph.name}" + (" (dynamic batch)" if graph.dynamic_batch else "")]
    for graph_input in graph.inputs:
        lines.append(
            f"  input  {graph_input.name} ({graph_input.onnx_dtype}) -> "
            f"{graph_input.tensor.describe()}"
        )
    for node in graph.nodes:
        lines.append(f"  {node.kind:<10} {node.name}: ({', '.join(node.inputs)})")
        lines.append(f"             -> {graph.tensors[node.output].describe()}")
        attributes = _attributes(node)
        if attributes:
            lines.append(f"             {attributes}")
    for graph_output in graph.outputs:
        steps = " -> ".join(step.kind for step in graph_output.steps) or "raw"
        lines.append(f"  output {graph_output.name} <- {graph_output.tensor.name} [{steps}]")
    return "\n".join(lines)
