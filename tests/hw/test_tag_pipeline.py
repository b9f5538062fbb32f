# amaranth: UnusedElaboratable=no
"""The compute unit's tag pipeline in Amaranth's simulator, against a list of entries."""

import random
import re

import pytest
from amaranth.sim import Simulator

from verdigris.hw.compute_unit import TagPipeline


def _run(row_bits: int, latency: int, rows):
    """Present `rows` (one per cycle: None or (row, accumulate)) and return, per cycle, the
    (next, out) outputs: None or (row, accumulate)."""
    dut = TagPipeline(row_bits, latency)
    seen = []

    async def testbench(ctx):
        for entry in [*rows, *[None] * (latency + 1)]:
            ctx.set(dut.valid, entry is not None)
            ctx.set(dut.row, 0 if entry is None else entry[0])
            ctx.set(dut.accumulate, 0 if entry is None else entry[1])
            following = (ctx.get(dut.next_row), ctx.get(dut.next_accumulate))
            leaving = (ctx.get(dut.out_row), ctx.get(dut.out_accumulate))
            seen.append(
                (
                    following if ctx.get(dut.next_valid) else None,
                    leaving if ctx.get(dut.out_valid) else None,
                )
            )
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return seen


@pytest.mark.parametrize(("row_bits", "latency"), [(1, 2), (4, 3), (10, 7), (6, 31)])
def test_each_tag_comes_out_latency_cycles_later(row_bits, latency):
    rng = random.Random(row_bits * 100 + latency)
    rows = [
        (rng.randrange(1 << row_bits), rng.randrange(2)) if rng.random() < 0.7 else None
        for _ in range(200)
    ]
    seen = _run(row_bits, latency, rows)
    padded = [*[None] * latency, *rows, *[None] * (latency + 2)]
    for cycle, (following, leaving) in enumerate(seen):
        assert following == padded[cycle + 1], f"cycle {cycle}"
        assert leaving == padded[cycle], f"cycle {cycle}"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 3), "row_bits must be a positive integer, not 0"),
        ((4, 1), "latency must be an integer of at least 2, not 1"),
    ],
)
def test_rejects_bad_parameters(arguments, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        TagPipeline(*arguments)
