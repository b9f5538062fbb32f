# amaranth: UnusedElaboratable=no
"""The load unit's row assembler in Amaranth's simulator, against slicing the byte stream."""

import random
import re

import pytest
from amaranth.sim import Simulator

from verdigris.hw.load_unit import RowAssembler


def _assemble(word_bytes: int, max_words: int, memory: bytes, rows, gaps: random.Random):
    """Feed each row (start byte, length) of `memory` word by word to a RowAssembler, with
    random idle cycles, and return the bytes of `row` in the cycle of each row's last word."""
    dut = RowAssembler(word_bytes, max_words)
    got = []

    async def testbench(ctx):
        for start, length in rows:
            first, last = start // word_bytes, (start + length - 1) // word_bytes
            for index, address in enumerate(range(first, last + 1)):
                while gaps.random() < 0.3:  # an idle cycle: nothing arrives
                    ctx.set(dut.valid, 0)
                    ctx.set(dut.word, int.from_bytes(b"\xa5" * word_bytes, "little"))
                    await ctx.tick()
                word = memory[address * word_bytes : (address + 1) * word_bytes]
                ctx.set(dut.valid, 1)
                ctx.set(dut.index, index)
                ctx.set(dut.last, address == last)
                ctx.set(dut.offset, start % word_bytes)
                ctx.set(dut.word, int.from_bytes(word, "little"))
                if address == last:
                    row = ctx.get(dut.row).to_bytes(len(dut.row) // 8, "little")
                    got.append(row[:length])
                await ctx.tick()
        ctx.set(dut.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize(("word_bytes", "max_words"), [(1, 3), (4, 2), (4, 5), (8, 7)])
def test_rows_are_the_bytes_of_the_stream(word_bytes, max_words):
    rng = random.Random(word_bytes * 100 + max_words)
    memory = bytes(rng.randrange(256) for _ in range(64 * word_bytes))
    rows = []
    for _ in range(60):
        start = rng.randrange(len(memory) - max_words * word_bytes)
        # At most max_words words touched: offset + length <= max_words * word_bytes.
        length = rng.randint(1, max_words * word_bytes - start % word_bytes)
        rows.append((start, length))
    got = _assemble(word_bytes, max_words, memory, rows, rng)
    assert got == [memory[start : start + length] for start, length in rows]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((3, 2), "word_bytes must be a power of two, not 3"),
        ((0, 2), "word_bytes must be a power of two, not 0"),
        ((4, 0), "max_words must be a positive integer, not 0"),
    ],
)
def test_rejects_bad_parameters(arguments, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RowAssembler(*arguments)
