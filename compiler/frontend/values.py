"""What the importer knows about each ONNX value, and the quantization bookkeeping shared by
the op handlers.

Every ONNX value name maps to one of:

- `Act`: a device tensor, or the float view of one that a DequantizeLinear makes (steps
  `(Dequantize,)`);
- `QConst`: a quantized constant (weights, int32 biases) with its scales and zero points;
- `np.ndarray`: a plain constant (shapes, Clip bounds, float biases);
- `FloatInput`: a float model input, waiting for the QuantizeLinear that makes it a device
  tensor;
- `Pending`: the float result of a compute node in a QDQ graph, waiting for the
  QuantizeLinear that fixes its output type (a Relu/Clip in between narrows the clamp);
- `HostValue`: a float value computed by host nodes (`host_compute.py`), waiting for the
  QuantizeLinear that makes it a device tensor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from verdigris.compiler import ir

__all__ = [
    "ACTIVATION_DTYPES",
    "INCONSISTENT",
    "MS",
    "Act",
    "FloatInput",
    "HostValue",
    "Pending",
    "QConst",
    "Skip",
    "along",
    "bits_for",
    "check_qparams",
    "device_type",
    "dtype_name",
    "full_clamp",
    "inconsistent",
    "integers",
    "model_range",
    "narrowest_type",
    "per_channel",
    "transposed",
    "uint8_shift",
]

# The domain of onnxruntime's contrib ops (QLinearAdd, QGemm, ...).
MS = "com.microsoft"

ACTIVATION_DTYPES = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}


class Skip(Exception):
    """Abandons one node with a reason; the importer collects them all."""


# What a handler raises when a node's attributes or inputs contradict each other (a damaged
# file, or a hand-edited graph that the ONNX checker lets through): reported as a problem of
# that node, with the Python error, rather than as a crash.
INCONSISTENT = (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError)


def inconsistent(error: Exception) -> str:
    return (
        f"its attributes or inputs are inconsistent ({type(error).__name__}: {error}); "
        "the model may be damaged"
    )


@dataclass(frozen=True)
class Act:
    tensor: str  # IR device tensor
    steps: tuple[ir.HostStep, ...] = ()

    @property
    def is_float_view(self) -> bool:
        return len(self.steps) == 1 and isinstance(self.steps[0], ir.Dequantize)


@dataclass(frozen=True)
class FloatInput:
    """A float model input, possibly reshaped (Flatten/Reshape) before its QuantizeLinear."""

    input: str
    shape: tuple[int, ...]
    original_shape: tuple[int, ...]


@dataclass(frozen=True)
class QConst:
    values: np.ndarray  # raw integers as stored in the model
    scale: np.ndarray  # float64, per channel along `axis` or one
    zero_point: np.ndarray  # int64, same shape as scale
    axis: int

    def __post_init__(self):
        if not _is_integer(np.asarray(self.values).dtype):
            raise Skip(
                f"a quantized constant of type {np.asarray(self.values).dtype} (integers needed)"
            )
        shape = np.shape(self.values)
        for what, params in (("scales", self.scale), ("zero points", self.zero_point)):
            size = np.size(params)
            if size == 1:
                continue
            if not 0 <= self.axis < len(shape) or size != shape[self.axis]:
                raise Skip(
                    f"{size} {what} for a constant of shape {list(shape)} along axis {self.axis}"
                )

    def centred(self) -> np.ndarray:
        """values - zero_point, as int64, zero points broadcast along `axis`."""
        return self.values.astype(np.int64) - along(self.zero_point, self.axis, self.values.ndim)

    def real(self) -> np.ndarray:
        return self.centred() * along(self.scale, self.axis, self.values.ndim)


@dataclass(frozen=True)
class Pending:
    """A float compute result; `build(out, clamp)` emits the ops once its output type is
    known. `low`/`high` are fused activation bounds in real units. `affine(a, b)`, for a
    Conv or Gemm, is the same result with each output channel c made a[c] * y + b[c] (a
    BatchNormalization folded in)."""

    node: onnx.NodeProto
    build: Callable[[ir.Tensor, tuple[int, int]], list[ir.Op]]
    shape: tuple[int, ...]
    low: float | None = None
    high: float | None = None
    affine: Callable[[np.ndarray, np.ndarray], Pending] | None = None


@dataclass(frozen=True)
class HostValue:
    """A float value the host computes: `nodes` (in order) from the dequantized device
    tensors `inputs` and `constants`; `name` is the value among those nodes' outputs. `node`
    labels the ONNX node that made it, `reason` says why it is not on the device."""

    name: str
    shape: tuple[int, ...]
    node: str
    inputs: tuple[ir.Tensor, ...]
    nodes: tuple[ir.HostNode, ...]
    constants: tuple[tuple[str, np.ndarray], ...]
    reason: str


def check_qparams(scale: np.ndarray, zero: np.ndarray | None) -> None:
    """Skip unless scales are finite and positive and zero points integers."""
    if not np.issubdtype(scale.dtype, np.floating) and not np.issubdtype(scale.dtype, np.integer):
        raise Skip(f"a scale of type {scale.dtype} (float needed)")
    with np.errstate(invalid="ignore"):
        if scale.size == 0 or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
            raise Skip(f"scale {scale.reshape(-1)[:4].tolist()} is not finite and positive")
    if zero is not None and not _is_integer(zero.dtype):
        raise Skip(f"a zero point of type {zero.dtype} (an integer type needed)")


def along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """`values` shaped to broadcast along `axis` of an `ndim`-D array (a scalar if one)."""
    values = np.asarray(values)
    if values.size <= 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def bits_for(values: np.ndarray) -> int:
    """Signed bits needed for `values` (at least 8: the int8 weight path)."""
    low, high = int(values.min(initial=0)), int(values.max(initial=0))
    bits = 2
    while not (-(1 << (bits - 1)) <= low and high < (1 << (bits - 1))):
        bits += 1
    return max(bits, 8)


def uint8_shift(model_dtype: str) -> int:
    """What a zero point loses when the model's uint8 becomes the device's int8."""
    return 128 if model_dtype == "uint8" else 0


def full_clamp(tensor: ir.Tensor) -> tuple[int, int]:
    return tensor.dtype.qmin, tensor.dtype.qmax


def per_channel(scale: np.ndarray, channels: int) -> np.ndarray:
    scale = np.asarray(scale, np.float64).reshape(-1)
    if scale.size not in (1, channels):
        raise Skip(f"{scale.size} weight scales for {channels} output channels")
    return np.broadcast_to(scale, (channels,)).copy()


def transposed(weight: QConst) -> QConst:
    axis = weight.values.ndim - 1 - weight.axis if weight.values.ndim == 2 else weight.axis
    return QConst(weight.values.T, weight.scale, weight.zero_point, axis)


def dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).name


# An integer type's name: ONNX's 4-bit types (INT4, UINT4) arrive as ml_dtypes' int4 and
# uint4, which numpy does not count among its integer types.
_INTEGER_NAME = re.compile(r"(u?)int(\d+)")


def _is_integer(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.integer) or _INTEGER_NAME.fullmatch(np.dtype(dtype).name))


def integers(values: np.ndarray) -> np.ndarray:
    """`values` as int64 (from any integer type, the 4-bit ones included)."""
    return np.asarray(values).astype(np.int64)


def model_range(model_dtype: str) -> tuple[int, int]:
    """The integers of a model's integer type ('int8', 'uint4', 'int32', ...)."""
    match = _INTEGER_NAME.fullmatch(model_dtype)
    if match is None:
        raise Skip(f"type {model_dtype} is not an integer type")
    unsigned, bits = match[1] == "u", int(match[2])
    return (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def narrowest_type(low: int, high: int, *, signed: bool) -> str:
    """The model type of fewest bits that holds `low..high` ('uint4' for 0..15), signed
    if asked or if `low` is negative."""
    signed = signed or low < 0
    for bits in range(1, 33):
        name = f"{'' if signed else 'u'}int{bits}"
        type_low, type_high = model_range(name)
        if type_low <= low and high <= type_high:
            return name
    raise Skip(f"no integer type of 32 bits or fewer holds {low}..{high}")


def device_type(model_dtype: str) -> ir.IntType:
    """The device type of an activation the model stores as `model_dtype`: int8 for uint8
    (its values shifted by 128, `uint8_shift`), the model's own type for the narrower ones
    (uint4 stays 0..15: the device's int8 holds it as it is)."""
    low, high = model_range(model_dtype)
    bits = max(high - low, 1).bit_length()
    if model_dtype == "uint8":
        return ir.INT8
    if bits > 8:
        raise Skip(f"activations of type {model_dtype} are not supported (8 bits or fewer)")
    return ir.IntType(bits, signed=low < 0)
