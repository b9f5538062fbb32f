# amaranth: UnusedElaboratable=no
"""The store unit alone in Amaranth's simulator: random STOREs (requantized and raw,
unaligned addresses, strides, partial rows) from random accumulator rows and requant
entries. Main memory must end as the instruction simulator leaves it, and every STORE must
keep the unit busy exactly as long as the cycle model says."""

import itertools
import random
import struct
from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import Buffer, Deps, Finish, Load, Nop, Store, Unit, encode
from verdigris.hw.store_unit import StoreUnit
from verdigris.sim.isasim import _plan_program, run_instructions

CONFIG = AccelConfig(
    name="su",
    rows=4,
    cols=4,
    inp_rows=8,
    wgt_rows=8,
    acc_rows=16,
    req_rows=2,
    main_memory_bytes=2048,
    instruction_capacity=256,
    dma_bytes=4,
    queue_depth=4,
)
DIM = CONFIG.dim
ACC_AT, REQ_AT, OUT_AT = 1024, 1536, 0


def _setup(rng: np.random.Generator):
    """Main memory holding random acc rows and requant entries, and the LOADs that put them
    into the buffers (for the instruction simulator)."""
    memory = np.zeros(CONFIG.main_memory_bytes, np.uint8)
    acc = rng.integers(-(2**31), 2**31, (CONFIG.acc_rows, DIM))
    memory[ACC_AT : ACC_AT + acc.size * 4] = np.frombuffer(acc.astype("<i4").tobytes(), np.uint8)
    records = b""
    entries = []
    for _ in range(CONFIG.req_rows * DIM):
        entry = (
            int(rng.integers(-(2**20), 2**20)),
            int(rng.integers(0, 2**31)),
            int(rng.integers(20, 45)),
            int(rng.integers(-128, 128)),
            int(rng.integers(-128, 0)),
            int(rng.integers(0, 128)),
        )
        entries.append(entry)
        records += struct.pack("<iiBbbb", *entry)
    memory[REQ_AT : REQ_AT + len(records)] = np.frombuffer(records, np.uint8)
    # The stores must see the loaded buffers: load -> compute NOP -> store tokens.
    loads = [
        Load(Deps(), Buffer.ACC, False, 0, CONFIG.acc_rows, DIM, ACC_AT, 4 * DIM),
        Load(Deps(push_next=True), Buffer.REQ, False, 0, CONFIG.req_rows, DIM, REQ_AT, 12 * DIM),
        Nop(Deps(pop_prev=True, push_next=True), Unit.COMPUTE),
    ]
    return memory, acc, entries, loads


def _random_stores(rng: random.Random, count: int) -> list[Store]:
    stores = []
    for _ in range(count):
        raw = rng.random() < 0.3
        rows = rng.randint(0, 4)
        elems = rng.randint(1, DIM)
        stride = rng.choice([0, elems * (4 if raw else 1), rng.randint(1, 40)])
        stores.append(
            Store(
                Deps(),
                raw,
                rng.randint(0, CONFIG.acc_rows - rows),
                rows,
                elems,
                OUT_AT + rng.randint(0, 300),
                stride,
                rng.randint(0, 1),
            )
        )
    return stores


def simulate(stores, acc, entries):
    """Run `stores` through the unit with buffer models; (memory writes applied to a zero
    memory, start cycles)."""
    dut = StoreUnit(CONFIG)
    memory = np.zeros(CONFIG.main_memory_bytes, np.uint8)
    word = CONFIG.dma_bytes
    starts = []

    async def testbench(ctx):
        index, t, pending = 0, 0, None
        while index < len(stores) or not ctx.get(dut.free):
            assert t < 5000
            if pending is not None:
                acc_row, req_row = pending
                ctx.set(dut.acc_data, [int(v) for v in acc[acc_row]])
                ctx.set(
                    dut.req_data,
                    [
                        {
                            "bias": e[0],
                            "multiplier": e[1],
                            "shift": e[2],
                            "zero_point": e[3],
                            "qmin": e[4],
                            "qmax": e[5],
                        }
                        for e in entries[req_row * DIM : (req_row + 1) * DIM]
                    ],
                )
            if index < len(stores):
                ctx.set(dut.instr, encode(stores[index]))
            start = index < len(stores) and ctx.get(dut.free)
            ctx.set(dut.start, start)
            if start:
                starts.append(t)
                index += 1
            pending = None
            if ctx.get(dut.acc_en):
                pending = (ctx.get(dut.acc_addr), ctx.get(dut.req_addr))
            if ctx.get(dut.mem_en):
                addr, data, enables = (
                    ctx.get(dut.mem_addr),
                    ctx.get(dut.mem_data),
                    ctx.get(dut.mem_be),
                )
                for b in range(word):
                    if enables >> b & 1:
                        memory[addr * word + b] = (data >> (8 * b)) & 0xFF
            assert not ctx.get(dut.error)
            await ctx.tick()
            ctx.set(dut.start, 0)
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return memory, starts


@pytest.mark.parametrize("seed", range(5))
def test_random_stores_match_the_instruction_simulator(seed):
    np_rng = np.random.default_rng(seed)
    memory, acc, entries, loads = _setup(np_rng)
    stores = _random_stores(random.Random(seed), 8)
    got, starts = simulate(stores, acc, entries)
    first = replace(stores[0], deps=Deps(pop_prev=True))
    expected, _ = run_instructions(CONFIG, [*loads, first, *stores[1:], Finish(Deps())], memory)
    # Compare the output area (the inputs above it are untouched by the unit model).
    np.testing.assert_array_equal(got[:ACC_AT], expected[:ACC_AT])
    # Back to back: each STORE starts when the previous one's busy time is over.
    busy = [plan.busy for plan in _plan_program(CONFIG, [*stores, Finish(Deps())])]
    assert [b - a for a, b in itertools.pairwise(starts)] == busy[:-1]
