"""The SoC's UART in Amaranth's simulator: the transmitter's line bit by bit, and the
receiver on a line with a glitch, a framing error and a clock 3% off."""

import random

import pytest
from amaranth.sim import Simulator

from verdigris.boards.uart import UartReceiver, UartTransmitter, baud_divisor

DIVISOR = 8


def _line_bits(byte: int, stop: int = 1) -> list[int]:
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


def test_the_transmitter_sends_8n1_lsb_first():
    dut = UartTransmitter(DIVISOR)
    data = [0x00, 0xFF, 0x56, 0xA5, 0x01]
    line = []

    async def bench(ctx):
        queue = list(data)
        for _ in range(10 * DIVISOR * len(data) + 3 * DIVISOR):
            ctx.set(dut.valid, bool(queue))
            if queue:
                ctx.set(dut.data, queue[0])
                if ctx.get(dut.ready):
                    queue.pop(0)
            await ctx.tick()
            line.append(ctx.get(dut.tx))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Back to back: a bit every DIVISOR cycles, from the cycle after the byte is taken.
    expected = [bit for byte in data for bit in _line_bits(byte) for _ in range(DIVISOR)]
    assert line[: len(expected)] == expected
    assert all(line[len(expected) :])  # idle high after


def _receive(line: list[int]) -> list[int]:
    dut = UartReceiver(DIVISOR)
    got = []

    async def bench(ctx):
        for level in line:
            ctx.set(dut.rx, level)
            await ctx.tick()
            if ctx.get(dut.valid):
                got.append(ctx.get(dut.data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_the_receiver_takes_bytes_and_drops_glitches_and_framing_errors():
    rng = random.Random(0)
    data = [rng.randrange(256) for _ in range(20)]
    line = [1] * 5
    for byte in data:
        line += [bit for bit in _line_bits(byte) for _ in range(DIVISOR)] + [1] * rng.randrange(3)
    line += [0, 0, 1] + [1] * 2 * DIVISOR  # a glitch shorter than half a bit: no byte
    line += [bit for bit in _line_bits(0x5A, stop=0) for _ in range(DIVISOR)]  # stop bit low
    line += [1] * 2 * DIVISOR
    assert _receive(line) == data


@pytest.mark.parametrize("off", [-0.03, 0.03])
def test_the_receiver_tolerates_a_sender_clock_3_percent_off(off):
    data = [0x00, 0xFF, 0x55, 0xAA, 0x81]
    bit_time = DIVISOR * 4 * (1 + off)  # simulated with 4 samples a receiver cycle
    levels = [1] * 40
    for byte in data:
        levels += [bit for bit in _line_bits(byte) for _ in range(round(bit_time))]
    line = levels[::4] + [1] * 3 * DIVISOR
    assert _receive(line) == data


def test_baud_divisors():
    assert baud_divisor(25e6, 115_200) == 217
    assert baud_divisor(48e6, 3_000_000) == 16
    with pytest.raises(ValueError, match="cannot be made from a 25 MHz clock"):
        baud_divisor(25e6, 3_000_000)  # 8.33 cycles a bit
