"""From float quantization parameters to the integer ones the IR uses."""

from __future__ import annotations

import numpy as np

from verdigris.arch.arithmetic import SHIFT_RANGE
from verdigris.compiler.ir import IntType, Requant

__all__ = [
    "IDENTITY",
    "MAX_SHIFT",
    "QuantizationError",
    "activation_clamp",
    "add_multipliers",
    "make_requant",
    "quantize_multiplier",
]

# The requantizer multiplies an int32 accumulator by a 31-bit multiplier (a 62-bit product)
# and shifts right by 1..MAX_SHIFT bits (verdigris.arch.arithmetic.SHIFT_RANGE).
MAX_SHIFT = SHIFT_RANGE[1]
# Add scales each (x - z) (at most 9 bits for int8) by a multiplier below 2**21, so the sum
# of two terms stays inside int32.
ADD_MULTIPLIER_BITS = 21


# y = x exactly, clamped to int8: the requantizer in front of a lookup table that reads the
# accumulator (or x) itself.
IDENTITY = Requant(
    multiplier=np.array([1 << 30]), shift=np.array([30]), zero_point=0, qmin=-128, qmax=127
)


class QuantizationError(ValueError):
    """A scale ratio that the integer requantizer cannot represent."""


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (multiplier, shift) with multiplier / 2**shift ~= real, per element.

    multiplier is in [2**30, 2**31) for normal values (31 significant bits), shift in
    [1, MAX_SHIFT]. Values too small for that are represented with shift = MAX_SHIFT and a
    smaller multiplier (0 for real == 0).
    """
    real = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise QuantizationError(f"requantization scale must be finite and >= 0, got {real}")
    mantissa, exponent = np.frexp(real)  # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    multiplier = np.round(mantissa * 2.0**31).astype(np.int64)
    carry = multiplier == 1 << 31
    multiplier[carry] >>= 1
    exponent = exponent.astype(np.int64) + carry
    shift = 31 - exponent
    if np.any((shift < 1) & (real > 0)):
        raise QuantizationError(
            f"requantization scale {real.max():.6g} is too large (at most 2**30 is supported)"
        )
    small = (shift > MAX_SHIFT) | (real == 0)
    multiplier[small] = np.round(real[small] * 2.0**MAX_SHIFT).astype(np.int64)
    shift[small] = MAX_SHIFT
    return multiplier, shift


def activation_clamp(
    dtype: IntType, scale: float, zero_point: int, low: float | None, high: float | None
) -> tuple[int, int]:
    """The integer clamp range of `dtype`, narrowed by a fused activation's float bounds
    (ReLU: low=0; ReLU6 / Clip: low, high)."""
    qmin, qmax = dtype.qmin, dtype.qmax
    if low is not None:
        qmin = max(qmin, min(qmax, int(np.round(low / scale)) + zero_point))
    if high is not None:
        qmax = min(qmax, max(qmin, int(np.round(high / scale)) + zero_point))
    return qmin, qmax


def make_requant(
    real_scale: np.ndarray | float, zero_point: int, clamp: tuple[int, int]
) -> Requant:
    real_scale = np.atleast_1d(np.asarray(real_scale, np.float64))
    if np.all(real_scale == real_scale[0]):
        real_scale = real_scale[:1]  # per-tensor: one multiplier serves every channel
    multiplier, shift = quantize_multiplier(real_scale)
    return Requant(
        multiplier=multiplier,
        shift=shift,
        zero_point=int(zero_point),
        qmin=int(clamp[0]),
        qmax=int(clamp[1]),
    )


def add_multipliers(ratio_a: float, ratio_b: float) -> tuple[int, int, int]:
    """(a_multiplier, b_multiplier, shift) for out = (a*ratio_a + b*ratio_b), with both
    multipliers below 2**ADD_MULTIPLIER_BITS and as precise as that allows."""
    largest = max(ratio_a, ratio_b)
    if largest <= 0:
        raise QuantizationError("Add needs a positive scale on at least one input")
    shift = int(np.floor(np.log2((2**ADD_MULTIPLIER_BITS - 1) / largest)))
    if not 1 <= shift <= MAX_SHIFT:
        raise QuantizationError(
            f"Add scale ratios {ratio_a:.6g}, {ratio_b:.6g} are out of the supported range"
        )
    return int(np.round(ratio_a * 2.0**shift)), int(np.round(ratio_b * 2.0**shift)), shift
