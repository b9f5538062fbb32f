"""Exact rational arithmetic that the integer requantizers are checked against."""

from fractions import Fraction


def round_half_even(value: Fraction) -> int:
    """`value` rounded to the nearest integer, ties to the even one."""
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor
