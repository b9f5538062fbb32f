"""The requantizer's verification (`verdigris.hw.requant.Requantizer`): its model
(`RequantModel`, written from the block's docstring contract and the STORE rule of
docs/isa.md) and stimulus (`random_requant_rows`), `simulate_requantizer` (Amaranth's
simulator), `run_requant_bench` (Verilator under cocotb) and the cocotb test it runs,
`requantizer_matches_model`, which compares the Verilated requantizer with the model cycle
by cycle. The test reads its parameters from the environment (cocotb runs this module
inside the simulator): RQ_LANES, RQ_ACC_WIDTH, RQ_LATENCY, RQ_CYCLES (number of input
cycles, gaps included), RQ_SEED.
"""

from __future__ import annotations

import os
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from verdigris.arch.arithmetic import round_shift, wrap_int
from verdigris.hw.requant import Requantizer
from verdigris.verify.protocol import (
    pack_lanes,
    run_block_bench,
    run_testbench,
    unpack_signed_lanes,
)

__all__ = [
    "RequantLane",
    "RequantModel",
    "RequantOutputs",
    "RequantRow",
    "random_requant_rows",
    "requant_lane",
    "run_requant_bench",
    "simulate_requantizer",
]

_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT8 = (-128, 127)


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
    """(y, x) of one lane: docs/isa.md's STORE arithmetic (`verdigris.arch.arithmetic`) with
    Python integers, so that any `acc_width` and shift stay exact.

    For `shift` 1..63 this is the ISA formula; shift 0 is the exact product (no rounding).
    """
    x = wrap_int(lane.acc + lane.bias, acc_width)
    p = x * lane.multiplier
    q = p if lane.shift == 0 else round_shift(p, lane.shift)
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
        acc = wrap_int(x - bias, 32)
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
        magnitude = abs(wrap_int(acc + bias, acc_width) * multiplier).bit_length()
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


def simulate_requantizer(
    dut: Requantizer, stimulus: list[RequantRow | None]
) -> list[RequantOutputs]:
    """Apply `stimulus` (a row, or None for a cycle without one) to `dut` one cycle each in
    Amaranth's simulator, then enough idle cycles to drain; return the outputs after every
    clock edge."""
    outputs: list[RequantOutputs] = []
    fields = ("acc", "bias", "multiplier", "shift", "zero_point", "qmin", "qmax")

    async def testbench(ctx):
        for row in stimulus + [None] * dut.LATENCY:
            ctx.set(dut.valid, row is not None)
            if row is not None:
                ctx.set(dut.raw, row.raw)
                for name in fields:
                    ctx.set(getattr(dut, name), [getattr(lane, name) for lane in row.lanes])
            await ctx.tick()
            outputs.append(
                RequantOutputs(
                    bool(ctx.get(dut.result_valid)),
                    tuple(ctx.get(dut.result)),
                    tuple(ctx.get(dut.raw_result)),
                )
            )

    run_testbench(dut, testbench)
    return outputs


def run_requant_bench(
    requantizer: Requantizer | None = None,
    *,
    cycles: int = 2000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run `requantizer_matches_model` on the Verilated `requantizer` (default: 4 lanes,
    int32 accumulators): `cycles` input cycles of random rows with gaps, raw rows, rounding
    ties and wrap-around, each cycle against `RequantModel`. Return (tests run, tests
    failed)."""
    requantizer = requantizer or Requantizer(4)
    lanes, acc_width = requantizer.lanes, requantizer.acc_width
    top = f"{type(requantizer).__name__.lower().lstrip('_')}_{lanes}x{acc_width}"
    env = {
        "RQ_LANES": str(lanes),
        "RQ_ACC_WIDTH": str(acc_width),
        "RQ_LATENCY": str(requantizer.LATENCY),
        "RQ_CYCLES": str(cycles),
        "RQ_SEED": str(seed),
    }
    return run_block_bench(requantizer, top, __name__, env, build_root, results_dir)


# --- The cocotb test (run inside the simulator by `run_requant_bench`) ---------------------


def _unpack(value: int, lanes: int, width: int) -> tuple[int, ...]:
    return tuple(unpack_signed_lanes(value, width, lanes))


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
                getattr(dut, name).value = pack_lanes(values, width or acc_width)
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
