"""The integer arithmetic every executor shares: wrap-around to a register width and the
requantizer (docs/quantization.md). Defined once here; the golden model, the instruction
simulator and the block models call these functions, and the RTL is checked against them.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SHIFT_RANGE",
    "requantize",
    "round_shift",
    "wrap",
    "wrap_int",
]

# The requantizer's right shift n: 1 <= n <= 62 keeps the rounding term and the 64-bit
# product exact (docs/quantization.md).
SHIFT_RANGE = (1, 62)


def wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """`values` (integers that fit int64) modulo 2**bits in the signed range, as int64: a
    two's-complement register of `bits` bits (1 <= bits <= 63)."""
    half = 1 << (bits - 1)
    # Unsigned arithmetic wraps modulo 2**64 without overflow warnings.
    unsigned = np.asarray(values).astype(np.int64).view(np.uint64)
    kept = (unsigned + np.uint64(half)) & np.uint64((1 << bits) - 1)
    return kept.astype(np.int64) - half


def wrap_int(value: int, bits: int) -> int:
    """`wrap` for one Python integer of any size."""
    half = 1 << (bits - 1)
    return ((value + half) % (1 << bits)) - half


def round_shift(product: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """round_half_even(product / 2**shift) in integers, for shift >= 1 (SHIFT_RANGE keeps
    int64 exact): add half, less one when the kept part is even, then shift arithmetically.
    Ties to even match ONNX's QuantizeLinear. Also takes Python integers of any size (the
    block models' per-lane arithmetic)."""
    kept_odd = (product >> shift) & 1
    return (product + (1 << (shift - 1)) - 1 + kept_odd) >> shift


def requantize(
    acc: np.ndarray,
    *,
    multiplier: np.ndarray,
    shift: np.ndarray,
    zero_point: np.ndarray,
    qmin: np.ndarray,
    qmax: np.ndarray,
) -> np.ndarray:
    """clamp(round_half_even(acc * multiplier / 2**shift) + zero_point, qmin, qmax) as
    int64, with int32 `acc` and `multiplier` (the 64-bit product is exact) and every
    parameter broadcast against `acc`."""
    product = np.asarray(acc).astype(np.int64) * np.asarray(multiplier).astype(np.int64)
    rounded = round_shift(product, np.asarray(shift).astype(np.int64))
    return np.minimum(np.maximum(rounded + zero_point, qmin), qmax)
