# amaranth: UnusedElaboratable=no
"""The requantizer in Amaranth's simulator, against exact rational rounding and the golden
model's requantizer, and cycle by cycle against its Python model."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.exact import round_half_even
from verdigris.compiler import ir
from verdigris.hw.requant import Requantizer
from verdigris.sim.golden import requantize
from verdigris.verify.requant import (
    RequantLane,
    RequantModel,
    RequantOutputs,
    RequantRow,
    random_requant_rows,
    requant_lane,
    simulate_requantizer,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT8 = st.integers(-128, 127)
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _exact(lane: RequantLane, acc_width: int = 32) -> tuple[int, int]:
    """(y, x) from the definition: wrap, exact product, round half to even, clamp."""
    half = 1 << (acc_width - 1)
    x = (lane.acc + lane.bias + half) % (2 * half) - half
    q = round_half_even(Fraction(x * lane.multiplier, 2**lane.shift))
    return min(max(q + lane.zero_point, lane.qmin), lane.qmax), x


def _requantized(dut: Requantizer, lanes: list[RequantLane]) -> list[tuple[int, int]]:
    """(y, x) of every lane in `lanes`, sent back to back as rows of `dut.lanes`."""
    width = dut.lanes
    padded = lanes + [RequantLane()] * (-len(lanes) % width)
    rows = [RequantRow(tuple(padded[i : i + width])) for i in range(0, len(padded), width)]
    outputs = [o for o in simulate_requantizer(dut, rows) if o.result_valid]
    pairs = [pair for o in outputs for pair in zip(o.result, o.raw_result, strict=True)]
    return pairs[: len(lanes)]


@st.composite
def _lanes(draw, shift_lo: int = 1, shift_hi: int = 62, acc_width: int = 32) -> RequantLane:
    """Any operands; half of the time a shift that puts q near the int8 range, where the
    rounding and the clamp bounds matter (uniform shifts mostly saturate)."""
    acc_range = st.integers(-(2 ** (acc_width - 1)), 2 ** (acc_width - 1) - 1)
    acc, bias, multiplier = draw(acc_range), draw(acc_range), draw(INT32)
    qmin, qmax = sorted((draw(INT8), draw(INT8)))
    shift = draw(st.integers(shift_lo, shift_hi))
    if draw(st.booleans()):
        x = _exact(RequantLane(acc, bias), acc_width)[1]
        near = abs(x * multiplier).bit_length() - draw(st.integers(-2, 11))
        shift = min(shift_hi, max(shift_lo, near))
    return RequantLane(acc, bias, multiplier, shift, draw(INT8), qmin, qmax)


@FEW
@given(st.lists(_lanes(), min_size=1, max_size=12))
def test_requantizer_is_exact_round_half_even(lanes):
    got = _requantized(Requantizer(1), lanes)
    assert got == [_exact(lane) for lane in lanes]
    for lane, (y, x) in zip(lanes, got, strict=True):
        if lane.multiplier >= 0:  # the golden model's multipliers are non-negative
            multiplier, shift = np.array([lane.multiplier]), np.array([lane.shift])
            requant = ir.Requant(multiplier, shift, lane.zero_point, lane.qmin, lane.qmax)
            assert y == int(requantize(np.array([x]), requant, 0)[0])


@settings(max_examples=500, deadline=None)
@given(st.data(), st.sampled_from([32, 16, 9]))
def test_bench_model_is_exact(data, acc_width):
    """The model that the Verilator bench checks against agrees with the definition,
    for every shift the hardware accepts."""
    lane = data.draw(_lanes(shift_lo=0, shift_hi=63, acc_width=acc_width))
    assert requant_lane(lane, acc_width=acc_width) == _exact(lane, acc_width)


def _tie_lanes() -> list[RequantLane]:
    """Exact ties and their neighbours, through the bias path; expected values by hand."""
    quarter = (2**30, 32)  # p / 2**32 = x / 4
    minus_half = (-(2**31), 32)  # p / 2**32 = -x / 2
    cases = [
        # x, (multiplier, shift), y
        (2, quarter, 0),  # 0.5
        (6, quarter, 2),  # 1.5
        (10, quarter, 2),  # 2.5
        (-2, quarter, 0),  # -0.5
        (-6, quarter, -2),  # -1.5
        (-10, quarter, -2),  # -2.5
        (3, quarter, 1),  # 0.75
        (-3, quarter, -1),  # -0.75
        (1, minus_half, 0),  # -0.5
        (3, minus_half, -2),  # -1.5
        (-3, minus_half, 2),  # 1.5
        (-(2**31), (-(2**31), 62), 1),  # 2**62 / 2**62
        (-(2**31), (-(2**31), 63), 0),  # 0.5, the shift the ISA leaves out
        (-(2**31), (-(2**31), 61), 2),
        (2**31 - 1, (2**30, 62), 0),  # just below one half
        (-5, (1, 0), -5),  # shift 0: no rounding
    ]
    return [
        (RequantLane(x - 1000, 1000, multiplier, shift), y) for x, (multiplier, shift), y in cases
    ]


def test_ties_go_to_even():
    lanes, want = zip(*_tie_lanes(), strict=True)
    got = _requantized(Requantizer(4), list(lanes))
    assert [y for y, _ in got] == list(want)
    assert got == [_exact(lane) for lane in lanes]


def test_every_shift_at_the_rounding_and_clamp_boundaries():
    """Products of one or two set bits, for every shift 0..63: the top bit just below, at
    and above the half bit (rounding, ties, sticky bits) and near q = +-256 (where the
    coarse window stops being exact), with every lower second bit; both signs."""
    lanes = []
    for shift in range(64):
        for top in (shift + d for d in (-1, 0, 1, 7, 8, 9, 10, 11, 12)):
            for low in range(max(0, top - 30), min(top, 31)):  # x = 2**(top-low) + 1 fits
                for sign in (1, -1):
                    x, multiplier = (1 << (top - low)) + 1, sign * (1 << low)
                    lanes.append(RequantLane(x, 0, multiplier, shift))
                    lanes.append(RequantLane(x, 0, multiplier, shift, 5, -20, 100))
        for bit in range(62):
            x = 1 << min(bit, 30)
            for multiplier in (1 << (bit - min(bit, 30)), -(1 << (bit - min(bit, 30)))):
                if -(2**31) <= multiplier < 2**31:
                    lanes.append(RequantLane(x, 0, multiplier, shift))
    got = _requantized(Requantizer(8), lanes)
    assert got == [_exact(lane) for lane in lanes]


@pytest.mark.parametrize("acc_width", [32, 16])
def test_acc_plus_bias_wraps(acc_width):
    low, high = -(2 ** (acc_width - 1)), 2 ** (acc_width - 1) - 1
    sums = [(high, 1, low), (low, -1, high), (high, high, -2), (low, low, 0), (-7, 3, -4)]
    lanes = [RequantLane(acc, bias, 1, 1) for acc, bias, _ in sums]
    got = _requantized(Requantizer(len(lanes), acc_width=acc_width), lanes)
    assert [x for _, x in got] == [wrapped for *_, wrapped in sums]
    assert got == [_exact(lane, acc_width) for lane in lanes]


def test_clamp_is_min_of_max():
    # qmin > qmax gives qmax, as min(max(v, qmin), qmax) does.
    lanes = [RequantLane(100, 0, 2**30, 31, 0, 10, -10), RequantLane(-100, 0, 2**30, 31, 5, 3, 9)]
    got = _requantized(Requantizer(2), lanes)
    assert [y for y, _ in got] == [-10, 3]


def test_raw_rows_hold_the_requantized_result():
    normal = RequantRow((RequantLane(40, 2, 2**30, 31, 1),))  # y = 21 + 1, x = 42
    ignored = RequantLane(-7, 2, -(2**31), 0, -128, 127, -128)  # its y would be -128
    raw = RequantRow((ignored,), raw=True)
    outputs = simulate_requantizer(Requantizer(1), [None, normal, raw, None, raw])
    latency = Requantizer.LATENCY
    assert outputs[:latency] == [RequantOutputs(False, (0,), (0,))] * latency
    assert outputs[latency] == RequantOutputs(True, (22,), (42,))
    assert outputs[latency + 1] == RequantOutputs(True, (22,), (-5,))
    assert outputs[latency + 2] == RequantOutputs(False, (22,), (-5,))
    assert outputs[latency + 3] == RequantOutputs(True, (22,), (-5,))


@pytest.mark.parametrize("lanes", [1, 4, 8])
def test_stream_with_gaps_matches_model(lanes):
    stimulus = random_requant_rows(lanes, 100 if lanes == 8 else 200, lanes)
    dut = Requantizer(lanes)
    outputs = simulate_requantizer(dut, stimulus)
    model = RequantModel(lanes, latency=dut.LATENCY)
    assert outputs == [model.step(row) for row in stimulus + [None] * dut.LATENCY]
    # Independently of the model: a row held before edge t is out after edge t + 3, rows
    # stay in order, and the values are exact.
    assert dut.LATENCY == 4
    sent = [edge for edge, row in enumerate(stimulus) if row is not None]
    came = [edge - 3 for edge, out in enumerate(outputs) if out.result_valid]
    assert came == sent
    for edge in sent:
        row, out = stimulus[edge], outputs[edge + 3]
        exact = [_exact(lane) for lane in row.lanes]
        assert out.raw_result == tuple(x for _, x in exact)
        if not row.raw:
            assert out.result == tuple(y for y, _ in exact)


def test_comparison_catches_round_half_up(monkeypatch):
    monkeypatch.setattr("verdigris.hw.requant._round_up", lambda half, _sticky, _floor_odd: half)
    lanes, want = zip(*_tie_lanes(), strict=True)
    got = [y for y, _ in _requantized(Requantizer(4), list(lanes))]
    # Half up differs at the ties with an even floor: 0.5, 2.5, -1.5 (twice) and 2**62 / 2**63.
    assert [i for i, (y, w) in enumerate(zip(got, want, strict=True)) if y != w] == [0, 2, 4, 9, 12]
    stimulus = random_requant_rows(7, 60, 4)
    model = RequantModel(4, latency=Requantizer.LATENCY)
    expected = [model.step(row) for row in stimulus + [None] * Requantizer.LATENCY]
    assert simulate_requantizer(Requantizer(4), stimulus) != expected


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, "lanes must be a positive integer, not 0"),
        ((-2,), {}, "lanes must be a positive integer, not -2"),
        (("4",), {}, "lanes must be a positive integer, not '4'"),
        ((True,), {}, "lanes must be a positive integer, not True"),
        ((4,), {"acc_width": 1}, "acc_width must be an integer from 2 to 32, not 1"),
        ((4,), {"acc_width": 33}, "acc_width must be an integer from 2 to 32, not 33"),
        ((4,), {"acc_width": 32.0}, "acc_width must be an integer from 2 to 32, not 32.0"),
    ],
)
def test_requantizer_rejects_bad_parameters(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Requantizer(*args, **kwargs)


@st.composite
def _narrow_lanes(draw, width: int) -> RequantLane:
    """Lanes for `width`-bit outputs: the zero point and bounds in that range, and half of
    the time a shift that puts q near it."""
    out = st.integers(-(2 ** (width - 1)), 2 ** (width - 1) - 1)
    acc, bias, multiplier = draw(INT32), draw(INT32), draw(INT32)
    qmin, qmax = sorted((draw(out), draw(out)))
    shift = draw(st.integers(1, 62))
    if draw(st.booleans()):
        x = _exact(RequantLane(acc, bias))[1]
        near = abs(x * multiplier).bit_length() - draw(st.integers(-2, width + 3))
        shift = min(62, max(1, near))
    return RequantLane(acc, bias, multiplier, shift, draw(out), qmin, qmax)


@pytest.mark.parametrize("width", [2, 4, 16])
def test_other_output_widths_round_and_clamp_exactly(width):
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_narrow_lanes(width), min_size=1, max_size=8))
    def check(lanes):
        dut = Requantizer(4, output_width=width)
        assert _requantized(dut, lanes) == [_exact(lane) for lane in lanes]

    check()


@pytest.mark.parametrize("width", [1, 17, "8"])
def test_requantizer_rejects_a_bad_output_width(width):
    message = f"output_width must be an integer from 2 to 16, not {width!r}"
    with pytest.raises(ValueError, match=f"^{message}$"):
        Requantizer(4, output_width=width)
