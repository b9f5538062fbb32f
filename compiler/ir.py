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

__all__ = [
    "Add",
    "ArgMax",
    "AvgPool",
    "Concat",
    "Conv",
    "Dequantize",
    "Flatten",
    "Graph",
    "GraphInput",
    "GraphOutput",
    "HostStep",
    "IntType",
    "MatMul",
    "MaxPool",
    "Op",
    "Quantize",
    "Requant",
    "Requantize",
    "Reshape",
    "Softmax",
    "Tensor",
    "format_graph",
]


@dataclass(frozen=True)
class IntType:
    """An integer element type: `bits` wide, signed or not."""

    bits: int
    signed: bool = True

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"


INT8 = IntType(8)
INT32 = IntType(32)


@dataclass(frozen=True)
class Tensor:
    """An integer activation tensor. `scale` is None for raw int32 accumulators."""

    name: str
    shape: tuple[int, ...]
    dtype: IntType
    scale: float | None
    zero_point: int = 0

    def describe(self) -> str:
        shape = "x".join(str(d) for d in self.shape)
        quant = f" s={self.scale:.6g} z={self.zero_point}" if self.scale is not None else ""
        return f"{self.name}: {self.dtype}[{shape}]{quant}"


@dataclass(frozen=True, eq=False)
class Requant:
    """Integer requantization of an accumulator to an output type (spec: sim/golden.py).

    out = clamp(round_half_even(acc * multiplier / 2**shift) + zero_point, qmin, qmax)

    `multiplier` and `shift` have one entry per output channel, or one for all channels.
    The clamp range also carries fused ReLU / ReLU6.
    """

    multiplier: np.ndarray  # int64 values in [0, 2**31)
    shift: np.ndarray  # int64 values in [1, 63]
    zero_point: int
    qmin: int
    qmax: int

    @property
    def per_channel(self) -> bool:
        return self.multiplier.size > 1

    def describe(self) -> str:
        kind = f"per-channel x{self.multiplier.size}" if self.per_channel else "per-tensor"
        first = f"m={int(self.multiplier.flat[0])} >>{int(self.shift.flat[0])}"
        return f"requant {kind} ({first}) z={self.zero_point} clamp[{self.qmin},{self.qmax}]"


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
    """Average pooling: acc = sum over the window of (x - input_zero_point), padding counted
    as zeros; out = requant(acc) with the 1/(kh*kw) divisor folded into the multiplier.
    Global average pooling is the case kernel == input spatial size."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    input_zero_point: int
    requant: Requant
    ceil_mode: bool = False


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


# Host steps: float post-processing of a graph output, run by the host after the device.


@dataclass(frozen=True)
class HostStep:
    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Dequantize(HostStep):
    scale: float
    zero_point: int


@dataclass(frozen=True)
class Quantize(HostStep):
    """Float to the model's integer type (round half to even, saturate), for models that
    quantize a host-side result (e.g. a quantized Softmax)."""

    scale: float
    zero_point: int
    dtype: str  # "int8" or "uint8"


@dataclass(frozen=True)
class Softmax(HostStep):
    axis: int = -1


@dataclass(frozen=True)
class ArgMax(HostStep):
    axis: int = 0
    keepdims: bool = True


@dataclass(frozen=True)
class Flatten(HostStep):
    axis: int = 1


@dataclass(frozen=True)
class GraphInput:
    """A model input. The host quantizes a float input to `tensor`'s type
    (round half to even, saturate), or shifts a uint8 input to int8."""

    name: str  # the ONNX input name
    tensor: Tensor
    onnx_dtype: str  # "float32", "uint8", "int8", ...


@dataclass(frozen=True)
class GraphOutput:
    """A model output: the device tensor, then host steps that produce what ONNX returns.
    `onnx_int_dtype` is the integer type the model uses for `tensor` (uint8 or int8), so
    raw results can be given back in the model's own type."""

    name: str  # the ONNX output name
    tensor: Tensor
    onnx_int_dtype: str
    steps: tuple[HostStep, ...] = ()


@dataclass(frozen=True, eq=False)
class Graph:
    name: str
    inputs: tuple[GraphInput, ...]
    nodes: tuple[Op, ...]
    outputs: tuple[GraphOutput, ...]
    tensors: dict[str, Tensor] = field(default_factory=dict)  # every device tensor
    dynamic_batch: bool = True

    def node_by_output(self, name: str) -> Op | None:
        return next((node for node in self.nodes if node.output == name), None)

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
    elif isinstance(node, Concat):
        parts.append(f"axis={node.axis}")
    elif isinstance(node, Reshape):
        parts.append(f"shape={list(node.shape)}")
    elif isinstance(node, Add):
        parts.append(f"ma={node.a_multiplier} mb={node.b_multiplier}")
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
