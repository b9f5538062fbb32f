# amaranth: UnusedElaboratable=no
"""The compute unit alone in Amaranth's simulator: random GEMM / VECTOR / NOP sequences on
random buffers. The accumulator must end as the ISA's semantics say, and every instruction
must start and complete in the cycle the instruction simulator gives it."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import Deps, Finish, Gemm, Nop, Unit, Vector, VectorOp, encode
from verdigris.hw.compute_unit import ComputeUnit
from verdigris.sim.isasim import run_instructions

CONFIG = AccelConfig(
    name="cu",
    rows=4,
    cols=4,
    inp_rows=16,
    wgt_rows=16,
    acc_rows=16,
    req_rows=2,
    main_memory_bytes=1024,
    instruction_capacity=256,
    dma_bytes=4,
    queue_depth=4,
)
DIM = CONFIG.dim


def _wrap(values):
    return ((np.asarray(values, np.int64) + 2**31) % 2**32) - 2**31


def _reference(program, inp, wgt, acc):
    """The ISA semantics of GEMM and VECTOR, applied in program order."""
    acc = acc.copy()
    tile = np.zeros((DIM, DIM), np.int64)
    for ins in program:
        if isinstance(ins, Gemm):
            if ins.load_weights:
                tile = wgt[ins.wgt_row : ins.wgt_row + DIM].copy()
            for i in range(ins.rows):
                product = inp[ins.inp_row + i] @ tile
                row = ins.acc_row + i
                acc[row] = _wrap(acc[row] + product) if ins.accumulate else _wrap(product)
        elif isinstance(ins, Vector):
            for i in range(ins.rows):
                value = _wrap((inp[ins.inp_row + i] - ins.zero) * ins.multiplier)
                row = ins.acc_row + i
                if ins.op == VectorOp.WRITE:
                    acc[row] = value
                elif ins.op == VectorOp.ADD:
                    acc[row] = _wrap(acc[row] + value)
                else:
                    acc[row] = np.maximum(acc[row], value)
    return acc


def _random_program(rng: random.Random, count: int):
    program = []
    for _ in range(count):
        kind = rng.random()
        rows = rng.randint(0, 6)
        if kind < 0.55:
            program.append(
                Gemm(
                    Deps(),
                    rng.random() < 0.5,
                    rng.random() < 0.5,
                    rng.randint(0, CONFIG.wgt_rows - DIM),
                    rng.randint(0, 16 - rows),
                    rng.randint(0, 16 - rows),
                    rows,
                )
            )
        elif kind < 0.85:
            program.append(
                Vector(
                    Deps(),
                    rng.randrange(3),
                    rng.randint(0, 16 - rows),
                    rng.randint(0, 16 - rows),
                    rows,
                    rng.randint(-128, 127),
                    rng.randint(0, 2**21),
                )
            )
        else:
            program.append(Nop(Deps(), Unit.COMPUTE))
    return program


def simulate(program, inp, wgt, acc):
    """Run `program` through the unit, starting each instruction as soon as `ready`; return
    the final accumulator and each instruction's start cycle."""
    dut = ComputeUnit(CONFIG)
    memories = {"inp": inp.copy(), "wgt": wgt.copy(), "acc": acc.copy()}
    starts = []

    async def testbench(ctx):
        index, t = 0, 0
        pending_reads = {}
        while index < len(program) or ctx.get(dut.in_flight) or not ctx.get(dut.free):
            assert t < 3000
            # Memory read data requested in the previous cycle.
            for name, row in pending_reads.items():
                port = {"inp": dut.inp_data, "wgt": dut.wgt_data, "acc": dut.acc_rdata}[name]
                ctx.set(port, [int(v) for v in memories[name][row]])
            if index < len(program):
                ctx.set(dut.instr, encode(program[index]))
            start = index < len(program) and ctx.get(dut.ready)
            ctx.set(dut.start, start)
            if start:
                starts.append(t)
                index += 1
            # Sample this cycle's requests and writes (comb outputs after start is set).
            reads = {}
            if ctx.get(dut.inp_en):
                reads["inp"] = ctx.get(dut.inp_addr)
            if ctx.get(dut.wgt_en):
                reads["wgt"] = ctx.get(dut.wgt_addr)
            if ctx.get(dut.acc_ren):
                reads["acc"] = ctx.get(dut.acc_raddr)
            write = None
            if ctx.get(dut.acc_wen):
                write = (ctx.get(dut.acc_waddr), [int(v) for v in ctx.get(dut.acc_wdata)])
            await ctx.tick()
            ctx.set(dut.start, 0)
            if write is not None:
                memories["acc"][write[0]] = write[1]
            # Data of this cycle's reads, presented next cycle; the acc port is transparent
            # to the unit's writes, so a read sees a write to its row in the same cycle.
            pending_reads = reads
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return memories["acc"], starts


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences_match_the_isa(seed):
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    program = _random_program(rng, 14)
    inp = np_rng.integers(-128, 128, (CONFIG.inp_rows, DIM))
    wgt = np_rng.integers(-128, 128, (CONFIG.wgt_rows, DIM))
    acc = np_rng.integers(-(2**31), 2**31, (CONFIG.acc_rows, DIM))
    final, starts = simulate(program, inp, wgt, acc)
    np.testing.assert_array_equal(final, _reference(program, inp, wgt, acc))
    timeline = np.full((len(program) + 1, 2), -1, np.int64)
    run_instructions(
        CONFIG,
        [*program, Finish(Deps())],
        np.zeros(CONFIG.main_memory_bytes, np.uint8),
        timeline=timeline,
    )
    # isasim counts from the first fetch; the unit here starts one cycle earlier.
    assert [s + 1 for s in starts] == timeline[:-1, 0].tolist()
