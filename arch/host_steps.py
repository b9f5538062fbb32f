"""The host side of a Program: what the host does before, between and after the device.

Before the device, the host quantizes each model input (ONNX name and dtype) to its device
tensor. Between device segments it runs the model's ops the device cannot (`HostCompute`:
float ONNX nodes on dequantized tensors, quantized back). After the device it turns each
device output into what the ONNX model returns by running the output's host steps in order
(dequantize, then any float ONNX nodes). These types are the one definition: the compiler's
IR uses them (`verdigris.compiler.ir` re-exports them), a Program stores them (written into
the .vgp header, docs/program-format.md) and the host-op runtime runs them
(`verdigris.sim.host` and `verdigris.sim.host_ops`; semantics in docs/quantization.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HOST_OPS",
    "HOST_STEPS",
    "AttributeValue",
    "Compute",
    "Dequantize",
    "HostCompute",
    "HostInput",
    "HostNode",
    "HostOutput",
    "HostSide",
    "HostStep",
    "IntType",
    "Tensor",
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


@dataclass(frozen=True)
class Tensor:
    """An integer activation tensor: name, full shape (batch first), element type and
    quantization (real = (q - zero_point) * scale). `scale` is None for raw int32
    accumulators."""

    name: str
    shape: tuple[int, ...]
    dtype: IntType
    scale: float | None
    zero_point: int = 0

    def describe(self) -> str:
        shape = "x".join(str(d) for d in self.shape)
        quant = f" s={self.scale:.6g} z={self.zero_point}" if self.scale is not None else ""
        return f"{self.name}: {self.dtype}[{shape}]{quant}"


# Host compute: the ONNX ops of a model that run on the host, in float32 as ONNX defines them,
# between device segments (docs/frontend.md, "Device and host"). The runtime
# (verdigris.sim.host_ops) implements exactly these op types (a test checks it).
HOST_OPS: frozenset[str] = frozenset(
    {
        "Abs", "Add", "ArgMax", "AveragePool", "BatchNormalization", "Ceil", "Clip", "Concat",
        "ConvTranspose", "DepthToSpace", "Div", "Elu", "Erf", "Exp", "Flatten", "Floor",
        "Gather", "Gelu", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish",
        "Identity", "InstanceNormalization", "LRN", "LeakyRelu", "Log", "LogSoftmax",
        "MatMul", "Max", "MaxPool", "Mean", "Min", "Mish", "Mul", "Neg", "PRelu", "Pad",
        "Pow", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu",
        "Reshape", "Resize", "Selu", "Sigmoid", "Slice", "Softmax", "Softplus",
        "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile",
        "Transpose", "Unsqueeze",
    }
)  # fmt: skip


def same_constants(
    ours: tuple[tuple[str, np.ndarray], ...], theirs: tuple[tuple[str, np.ndarray], ...]
) -> bool:
    """Whether two constant lists hold the same names, types, shapes and values, in order."""
    return len(ours) == len(theirs) and all(
        a == b and x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        for (a, x), (b, y) in zip(ours, theirs, strict=True)
    )


# An attribute of a host node: ONNX's INT, FLOAT, STRING, INTS and FLOATS.
AttributeValue = int | float | str | tuple[int, ...] | tuple[float, ...]


@dataclass(frozen=True)
class HostNode:
    """One ONNX node run on the host: its op type (one of HOST_OPS), the value names it
    reads ("" for an absent optional input) and writes, and its attributes."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: tuple[tuple[str, AttributeValue], ...] = ()

    def attribute(self, name: str, default: AttributeValue | None = None):
        return dict(self.attributes).get(name, default)


@dataclass(frozen=True, eq=False)
class HostCompute:
    """A float island of the model, computed on the host: dequantize each of `inputs`
    ((q - zero_point) * scale in float32, named by the tensor's name), run `nodes` in order
    over those values and `constants`, then quantize the value `result` to `output`'s type
    (round half to even, saturate), as a QuantizeLinear would."""

    inputs: tuple[Tensor, ...]
    output: Tensor
    nodes: tuple[HostNode, ...]
    result: str
    constants: tuple[tuple[str, np.ndarray], ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HostCompute):
            return NotImplemented
        same = (self.inputs, self.output, self.nodes, self.result)
        return same == (other.inputs, other.output, other.nodes, other.result) and (
            same_constants(self.constants, other.constants)
        )

    __hash__ = None  # type: ignore[assignment]  (constants are arrays)


# Host steps: what the host does to a model output after the device.


@dataclass(frozen=True)
class HostStep:
    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Dequantize(HostStep):
    """Integers to float32: (q - zero_point) * scale."""

    scale: float
    zero_point: int


@dataclass(frozen=True, eq=False)
class Compute(HostStep):
    """Float ONNX nodes run on the host (`HostNode`s, see HOST_OPS), reading the output's
    value so far as the value named `input` (and `constants`); the step's result is the
    value `result`. A model output computed by host ops ends so."""

    nodes: tuple[HostNode, ...]
    input: str
    result: str
    constants: tuple[tuple[str, np.ndarray], ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Compute):
            return NotImplemented
        same = (self.nodes, self.input, self.result)
        return same == (other.nodes, other.input, other.result) and (
            same_constants(self.constants, other.constants)
        )

    __hash__ = None  # type: ignore[assignment]  (constants are arrays)


# Every host step by its kind (the name a .vgp header stores).
HOST_STEPS: dict[str, type[HostStep]] = {cls.__name__: cls for cls in (Dequantize, Compute)}


@dataclass(frozen=True)
class HostInput:
    """A model input. The host quantizes a float input to `tensor`'s type
    (round half to even, saturate), or shifts a uint8 input to int8."""

    name: str  # the ONNX input name
    tensor: Tensor
    onnx_dtype: str  # "float32", "uint8", "int8", ...


@dataclass(frozen=True)
class HostOutput:
    """A model output: the device tensor, then host steps that produce what ONNX returns.
    `onnx_int_dtype` is the integer type the model uses for `tensor` (uint8 or int8), so
    raw results can be given back in the model's own type."""

    name: str  # the ONNX output name
    tensor: Tensor
    onnx_int_dtype: str
    steps: tuple[HostStep, ...] = ()


@dataclass(frozen=True)
class HostSide:
    """Everything the host does around the device for one Program: its inputs and outputs
    in ONNX order, and whether the model takes any batch size (`dynamic_batch`) or a fixed
    one."""

    inputs: tuple[HostInput, ...] = ()
    outputs: tuple[HostOutput, ...] = ()
    dynamic_batch: bool = True
