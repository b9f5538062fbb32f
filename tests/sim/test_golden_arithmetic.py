"""The requantizer arithmetic: integer results equal exact rational rounding."""

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tests.support.exact import round_half_even
from verdigris.compiler import ir
from verdigris.compiler.quantize import add_multipliers, quantize_multiplier
from verdigris.sim.golden import requantize, wrap_int32


@given(
    acc=st.integers(-(2**31), 2**31 - 1),
    multiplier=st.integers(0, 2**31 - 1),
    shift=st.integers(1, 62),
    zero_point=st.integers(-128, 127),
)
def test_requantize_is_exact_round_half_even(acc, multiplier, shift, zero_point):
    requant = ir.Requant(np.array([multiplier]), np.array([shift]), zero_point, -128, 127)
    got = int(requantize(np.array([acc]), requant, 0)[0])
    exact = round_half_even(Fraction(acc * multiplier, 2**shift)) + zero_point
    assert got == min(127, max(-128, exact))


def test_requantize_ties_go_to_even():
    requant = ir.Requant(np.array([2**30]), np.array([32]), 0, -128, 127)  # x / 4
    acc = np.array([2, 6, -2, -6, 10, 3])  # 0.5, 1.5, -0.5, -1.5, 2.5, 0.75
    np.testing.assert_array_equal(requantize(acc, requant, 0), [0, 2, 0, -2, 2, 1])


def test_requantize_per_channel_uses_the_channel_axis():
    requant = ir.Requant(np.array([2**30, 2**30]), np.array([30, 31]), 0, -128, 127)
    acc = np.full((1, 2, 1, 1), 10)
    assert requantize(acc, requant, 1).ravel().tolist() == [10, 5]


@given(st.floats(min_value=1e-9, max_value=2**29, allow_nan=False))
def test_quantize_multiplier_is_precise(real):
    multiplier, shift = quantize_multiplier(real)
    assert 0 <= multiplier[0] < 2**31 and 1 <= shift[0] <= 62
    approx = multiplier[0] / 2.0 ** shift[0]
    assert abs(approx - real) <= real * 2**-30 + 2.0**-63


def test_quantize_multiplier_zero_and_tiny():
    multiplier, shift = quantize_multiplier(np.array([0.0, 1e-30]))
    assert multiplier.tolist() == [0, 0] and shift.tolist() == [62, 62]


@given(st.floats(1e-4, 1e3), st.floats(1e-4, 1e3))
def test_add_multipliers_fit_int32(ratio_a, ratio_b):
    ma, mb, shift = add_multipliers(ratio_a, ratio_b)
    assert 0 <= ma < 2**21 and 0 <= mb < 2**21
    # |a - z| <= 255 for int8: the sum of both products stays inside int32.
    assert 255 * (ma + mb) < 2**31
    assert abs(ma / 2**shift - ratio_a) <= max(ratio_a, ratio_b) * 2**-19


def test_wrap_int32():
    values = np.array([2**31, -(2**31) - 1, 5])
    assert wrap_int32(values).tolist() == [-(2**31), 2**31 - 1, 5]
