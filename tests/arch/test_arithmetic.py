"""The shared integer arithmetic against exact rational arithmetic."""

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tests.support.exact import round_half_even
from verdigris.arch.arithmetic import SHIFT_RANGE, requantize, round_shift, wrap, wrap_int
from verdigris.arch.config import load_config
from verdigris.arch.isa import Buffer, address_bits, row_bits, row_bytes

INT32 = st.integers(-(2**31), 2**31 - 1)


@given(st.integers(-(2**70), 2**70), st.integers(1, 63))
def test_wrap_is_a_twos_complement_register(value, bits):
    wrapped = wrap_int(value, bits)
    assert -(2 ** (bits - 1)) <= wrapped < 2 ** (bits - 1)
    assert (wrapped - value) % 2**bits == 0
    if -(2**63) <= value < 2**63:
        assert int(wrap(np.array([value]), bits)[0]) == wrapped


@given(INT32, INT32, st.integers(*SHIFT_RANGE))
def test_round_shift_is_round_half_to_even(acc, multiplier, shift):
    product = acc * multiplier
    exact = round_half_even(Fraction(product, 2**shift))
    assert int(round_shift(np.array([product], np.int64), np.array([shift]))[0]) == exact


@given(INT32, INT32, st.integers(*SHIFT_RANGE), st.integers(-128, 127))
def test_requantize_clamps_after_the_zero_point(acc, multiplier, shift, zero_point):
    got = requantize(
        np.array([acc]),
        multiplier=np.array([multiplier]),
        shift=np.array([shift]),
        zero_point=zero_point,
        qmin=-128,
        qmax=127,
    )
    exact = round_half_even(Fraction(acc * multiplier, 2**shift)) + zero_point
    assert int(got[0]) == min(max(exact, -128), 127)


def test_widths_follow_the_config():
    config = load_config("default")
    dim = config.dim
    assert row_bits(config, Buffer.INP) == dim * config.operand_bits
    assert row_bits(config, Buffer.ACC) == dim * config.acc_bits
    assert row_bytes(config, Buffer.REQ) == 12 * dim
    assert [address_bits(depth) for depth in (1, 2, 3, 1024, 1025)] == [1, 1, 2, 10, 11]
