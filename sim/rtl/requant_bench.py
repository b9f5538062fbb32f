"""cocotb bench: the Verilated Requantizer against `RequantModel`, cycle by cycle.

The model (written from the docstring contract of `verdigris.hw.requant.Requantizer` and the
STORE rule of docs/isa.md) and the stimulus generator live here, next to the bench, and the
Amaranth-simulator tests use them too.

Parameters come from the environment (cocotb runs this module inside the simulator):
RQ_LANES, RQ_ACC_WIDTH, RQ_LATENCY, RQ_CYCLES (number of input cycles, gaps included), RQ_SEED.
"""

from __future__ import annotations

import os
import random
from collections import deque
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

__all__ = [
    "RequantLane",
    "RequantModel",
    "RequantOutputs",
    "RequantRow",
    "random_requant_rows",
    "requant_lane",
]

_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT8 = (-128, 127)


def _wrap(value: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((value + half) % (1 << bits)) - half


@dataclass(frozen=True)
class RequantLane:
    """One lane's inputs: an accumulator and its requant entry."""

    acc: int = 0
    bias: int = 0
    multiplier: int = 0
    shift: int = 1
    zero_point: int = 0
    qmin: int = -128
    qmax: int = 127


@dataclass(frozen=True)
class RequantRow:
    """One row presented with `valid` high; `raw` asks for x only."""

    lanes: tuple[RequantLane, ...]
    raw: bool = False


@dataclass(frozen=True)
class RequantOutputs:
    result_valid: bool
    result: tuple[int, ...]
    raw_result: tuple[int, ...]


def requant_lane(lane: RequantLane, *, acc_width: int = 32) -> tuple[int, int]:
    """(y, x) of one lane: docs/isa.md's STORE arithmetic with Python integers.

    For `shift` 1..63 this is the ISA formula; shift 0 is the exact product (no rounding).
    """
    x = _wrap(lane.acc + lane.bias, acc_width)
    p = x * lane.multiplier
    n = lane.shift
    q = p if n == 0 else (p + (1 << (n - 1)) - 1 + ((p >> n) & 1)) >> n
    return min(max(q + lane.zero_point, lane.qmin), lane.qmax), x


class RequantModel:
    """Cycle model of the Requantizer's ports; `step` applies one clock edge.

    A row leaves `latency` edges after it entered; `raw_result` takes x for every valid
    row, `result` takes y for valid rows that are not raw, and both hold otherwise.
    """

    def __init__(self, lanes: int, *, latency: int, acc_width: int = 32):
        self.acc_width = acc_width
        self._pipe: deque[RequantRow | None] = deque([None] * (latency - 1))
        self.outputs = RequantOutputs(False, (0,) * lanes, (0,) * lanes)

    def step(self, row: RequantRow | None) -> RequantOutputs:
        """Apply one clock edge with `row` (None: `valid` low) held before it."""
        self._pipe.append(row)
        leaving = self._pipe.popleft()
        result, raw_result = self.outputs.result, self.outputs.raw_result
        if leaving is not None:
            values = [requant_lane(lane, acc_width=self.acc_width) for lane in leaving.lanes]
            raw_result = tuple(x for _, x in values)
            if not leaving.raw:
                result = tuple(y for y, _ in values)
        self.outputs = RequantOutputs(leaving is not None, result, raw_result)
        return self.outputs


def _random_lane(rng: random.Random, acc_width: int) -> RequantLane:
    """A lane biased toward the cases that go wrong: rounding ties, results inside the clamp
    range, wrap-around of acc + bias, extreme operands, and full random ranges."""
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    zero_point = rng.randint(*_INT8)
    qmin, qmax = sorted((rng.randint(*_INT8), rng.randint(*_INT8)))
    if rng.random() < 0.3:
        qmin, qmax = _INT8
    bias = rng.randint(lo, hi)
    kind = rng.random()
    if kind < 0.3 and acc_width == 32:  # a tie: x * m = (2r + 1) * 2**(n-1), |r| <= 300
        shift = rng.randint(1, 62)
        power = rng.randint(max(0, shift - 31), min(shift - 1, 31))
        multiplier = -(1 << 31) if power == 31 else rng.choice((1, -1)) * (1 << power)
        step = 1 << (shift - power)  # x = step / 2 + r * step, inside int32
        r_lo = max(-300, -(((1 << 31) + step // 2) // step))
        r_hi = min(300, ((1 << 31) - 1 - step // 2) // step)
        x = step // 2 + rng.randint(r_lo, r_hi) * step
        acc = _wrap(x - bias, 32)
        return RequantLane(acc, bias, multiplier, shift, zero_point, qmin, qmax)
    multiplier = rng.choice(
        (rng.randint(*_INT32), rng.randint(1 << 30, (1 << 31) - 1), rng.randint(-300, 300))
    )
    if rng.random() < 0.1:
        multiplier = rng.choice((0, 1, -1, _INT32[0], _INT32[1]))
    acc = rng.randint(lo, hi)
    if rng.random() < 0.2:  # acc + bias near or past the wrap-around
        acc = rng.choice((lo, hi, lo + 1, hi - 1))
        bias = rng.choice((lo, hi, -1, 1, rng.randint(lo, hi)))
    if kind < 0.7:  # a shift that leaves q near the clamp range
        magnitude = abs(_wrap(acc + bias, acc_width) * multiplier).bit_length()
        shift = min(63, max(0, magnitude - rng.randint(-2, 11)))
    else:
        shift = rng.randint(0, 63)
    return RequantLane(acc, bias, multiplier, shift, zero_point, qmin, qmax)


def random_requant_rows(
    seed: int, count: int, lanes: int, *, acc_width: int = 32, gaps: float = 0.2
) -> list[RequantRow | None]:
    """`count` input cycles: None (valid low) with probability `gaps`, raw rows 15% of the
    rest, and lanes from `_random_lane`."""
    rng = random.Random(seed)
    rows: list[RequantRow | None] = []
    for _ in range(count):
        if rng.random() < gaps:
            rows.append(None)
            continue
        row_lanes = tuple(_random_lane(rng, acc_width) for _ in range(lanes))
        rows.append(RequantRow(row_lanes, raw=rng.random() < 0.15))
    return rows


_FIELDS = (
    ("acc", None),
    ("bias", None),
    ("multiplier", 32),
    ("shift", 6),
    ("zero_point", 8),
    ("qmin", 8),
    ("qmax", 8),
)


def _pack(values, width: int) -> int:
    """Lane values as one flat port value, lane i in bits [i*width, (i+1)*width)."""
    mask = (1 << width) - 1
    return sum((value & mask) << (i * width) for i, value in enumerate(values))


def _unpack(value: int, lanes: int, width: int) -> tuple[int, ...]:
    return tuple(_wrap((value >> (i * width)) & ((1 << width) - 1), width) for i in range(lanes))


@cocotb.test()
async def requantizer_matches_model(dut):
    lanes = int(os.environ.get("RQ_LANES", "4"))
    acc_width = int(os.environ.get("RQ_ACC_WIDTH", "32"))
    latency = int(os.environ["RQ_LATENCY"])
    cycles = int(os.environ.get("RQ_CYCLES", "2000"))
    seed = int(os.environ.get("RQ_SEED", "0"))

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    dut.raw.value = 0
    for name, _ in _FIELDS:
        getattr(dut, name).value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    model = RequantModel(lanes, latency=latency, acc_width=acc_width)
    stimulus = random_requant_rows(seed, cycles, lanes, acc_width=acc_width)
    stimulus += [None] * latency  # drain the pipeline
    checked = 0
    for cycle, row in enumerate(stimulus):
        dut.valid.value = int(row is not None)
        if row is not None:
            dut.raw.value = int(row.raw)
            for name, width in _FIELDS:
                values = [getattr(lane, name) for lane in row.lanes]
                getattr(dut, name).value = _pack(values, width or acc_width)
        await RisingEdge(dut.clk)
        want = model.step(row)
        await ReadOnly()
        got = RequantOutputs(
            bool(dut.result_valid.value),
            _unpack(dut.result.value.to_unsigned(), lanes, 8),
            _unpack(dut.raw_result.value.to_unsigned(), lanes, acc_width),
        )
        assert got == want, f"cycle {cycle} (seed {seed}): got {got}, want {want}"
        checked += want.result_valid
        await FallingEdge(dut.clk)
    dut._log.info("%d cycles, %d rows matched the model (seed %d)", len(stimulus), checked, seed)
