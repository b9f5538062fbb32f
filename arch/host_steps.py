"""The host side of a Program: what the host does before and after the device.

Before the device, the host quantizes each model input (ONNX name and dtype) to its device
tensor; after it, the host turns each device output into what the ONNX model returns by
running the output's host steps in order (dequantize, softmax, argmax, ...). These types are
the one definition: the compiler's IR uses them for its graph inputs and outputs
(`verdigris.compiler.ir` re-exports them), a Program stores them (`Program.host`, written
into the .vgp header, docs/program-format.md) and the host-op runtime runs them
(`verdigris.sim.host`, whose semantics docs/quantization.md states).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HOST_STEPS",
    "ArgMax",
    "Dequantize",
    "Flatten",
    "HostInput",
    "HostOutput",
    "HostSide",
    "HostStep",
    "IntType",
    "Quantize",
    "Softmax",
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


# Host steps: float post-processing of a model output, run by the host after the device.


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


# Every host step by its kind (the name a .vgp header stores).
HOST_STEPS: dict[str, type[HostStep]] = {
    cls.__name__: cls for cls in (Dequantize, Quantize, Softmax, ArgMax, Flatten)
}


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
