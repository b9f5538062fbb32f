"""What the compute unit's tests in Amaranth's simulator (tests/hw) and on Verilator
(tests/rtl) share: the config, random programs and buffers, the ISA semantics of GEMM and
VECTOR, the check of a run against them and the instruction simulator, error cases and a
faulty unit."""

import random
from dataclasses import replace

import numpy as np
from amaranth.hdl import Cat

from tests.support.faults import faulty
from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import PACKED_MAC_COUNTERS
from verdigris.arch.isa import Deps, Finish, Gemm, Nop, Unit, Vector, VectorOp
from verdigris.hw.compute_unit import ComputeUnit
from verdigris.sim.golden import wrap_int32
from verdigris.sim.isasim import run_instructions
from verdigris.verify.pe import operand_product, zero_operand

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
# The same unit with PEs that also multiply packed int4 and int2 operands.
NARROW = replace(CONFIG, name="cu_int1", operand_bits=1)


def reference(program, inp, wgt, acc):
    """The ISA semantics of GEMM and VECTOR, applied in program order: (accumulator,
    zero_macs). The scale registers start zero, as after reset."""
    acc = acc.copy()
    tile = np.zeros((DIM, DIM), np.int64)
    scale = np.zeros(DIM, np.int64)
    zero_macs = 0
    for ins in program:
        if isinstance(ins, Gemm):
            if ins.load_weights:
                tile = wgt[ins.wgt_row : ins.wgt_row + DIM].copy()
            for i in range(ins.rows):
                a = inp[ins.inp_row + i]
                zero_macs += sum(
                    zero_operand(a[r], tile[r, c], ins.pack) for r in range(DIM) for c in range(DIM)
                )
                product = np.array(
                    [
                        sum(operand_product(a[r], tile[r, c], ins.pack) for r in range(DIM))
                        for c in range(DIM)
                    ]
                )
                row = ins.acc_row + i
                acc[row] = wrap_int32(acc[row] + product) if ins.accumulate else wrap_int32(product)
        elif isinstance(ins, Vector):
            if ins.op == VectorOp.SCALE:
                scale = inp[ins.inp_row] - ins.zero
                continue
            multiplier = scale if ins.lane_scale else ins.multiplier
            for i in range(ins.rows):
                value = wrap_int32((inp[ins.inp_row + i] - ins.zero) * multiplier)
                row = ins.acc_row + i
                if ins.op == VectorOp.WRITE:
                    acc[row] = value
                elif ins.op == VectorOp.ADD:
                    acc[row] = wrap_int32(acc[row] + value)
                else:
                    acc[row] = np.maximum(acc[row], value)
    return acc, zero_macs


def _random_deps(rng: random.Random) -> Deps:
    """Pushes only: the unit runs alone, so nothing would push the tokens a pop waits for."""
    return Deps(push_prev=rng.random() < 0.3, push_next=rng.random() < 0.3)


def random_program(rng: random.Random, count: int, max_pack: int = 0):
    """`count` random GEMMs (with packs up to `max_pack`), VECTORs and NOPs."""
    program = []
    for _ in range(count):
        kind = rng.random()
        rows = rng.randint(0, 6)
        if kind < 0.55:
            program.append(
                Gemm(
                    _random_deps(rng),
                    rng.random() < 0.5,
                    rng.random() < 0.5,
                    rng.randint(0, CONFIG.wgt_rows - DIM),
                    rng.randint(0, 16 - rows),
                    rng.randint(0, 16 - rows),
                    rows,
                    pack=rng.randint(0, max_pack),
                )
            )
        elif kind < 0.85:
            op = rng.randrange(len(VectorOp))
            zero = rng.randint(-256, 255)  # the whole field: scale registers to +-383
            if op == VectorOp.SCALE:
                # One row; its acc_row is not used, so any value is legal.
                scale = Vector(
                    _random_deps(rng), op, rng.randint(0, 15), rng.randrange(2**16), 1, zero
                )
                program.append(scale)
                continue
            program.append(
                Vector(
                    _random_deps(rng),
                    op,
                    rng.randint(0, 16 - rows),
                    rng.randint(0, 16 - rows),
                    rows,
                    zero,
                    rng.randint(0, 2**22 - 1),
                    lane_scale=rng.random() < 0.5,
                )
            )
        else:
            program.append(Nop(_random_deps(rng), Unit.COMPUTE))
    return program


def scale_program():
    """(program, (inp, wgt, acc)): a lane_scale VECTOR before any scale (the registers are
    zero after reset: it writes zeros to acc rows 12 and 13), a scale that waits for a GEMM
    to drain and whose acc_row is past the accumulator's end (unused), a lane_scale VECTOR
    in the first cycle the hazard rule allows after it, in every op, a GEMM, a second scale
    with negative scales down to -383, and a VECTOR by the multiplier field again."""
    push = Deps(push_prev=True, push_next=True)
    program = [
        Vector(Deps(), VectorOp.WRITE, 0, 12, 2, 3, 9, lane_scale=True),
        Gemm(push, True, False, 0, 0, 0, 3),
        Vector(push, VectorOp.SCALE, 5, 2**16 - 1, 1, -200),
        Vector(push, VectorOp.WRITE, 0, 0, 4, 17, 2**22 - 1, lane_scale=True),
        Vector(Deps(), VectorOp.ADD, 4, 0, 4, -256, 1, lane_scale=True),
        Vector(Deps(), VectorOp.MAX, 8, 4, 4, 255, 0, lane_scale=True),
        Gemm(push, True, True, 4, 6, 8, 3),
        Vector(Deps(), VectorOp.SCALE, 9, 0, 1, 255),
        Vector(push, VectorOp.ADD, 2, 8, 4, -1, 5, lane_scale=True),
        Vector(Deps(), VectorOp.WRITE, 3, 14, 2, 7, 3),
        Nop(push, Unit.COMPUTE),
    ]
    inp, wgt, acc = random_buffers(4)
    inp[5] = [127, -128, 0, 55]  # scales 327, 72, 200, 255
    inp[9] = [-128, 127, 0, 1]  # scales -383, -128, -255, -254
    return program, (inp, wgt, acc)


def random_buffers(seed: int):
    """(inp, wgt, acc), with some zero operands for the zero-MAC counter."""
    rng = np.random.default_rng(seed)
    inp = rng.integers(-128, 128, (CONFIG.inp_rows, DIM))
    wgt = rng.integers(-128, 128, (CONFIG.wgt_rows, DIM))
    inp[rng.random(inp.shape) < 0.15] = 0
    wgt[rng.random(wgt.shape) < 0.15] = 0
    acc = rng.integers(-(2**31), 2**31, (CONFIG.acc_rows, DIM))
    return inp, wgt, acc


def isasim_timeline(program, config=CONFIG) -> np.ndarray:
    timeline = np.full((len(program) + 1, 2), -1, np.int64)
    run_instructions(
        config,
        [*program, Finish(Deps())],
        np.zeros(config.main_memory_bytes, np.uint8),
        timeline=timeline,
    )
    return timeline[:-1]


def check_compute_run(program, inp, wgt, acc, run, config=CONFIG) -> None:
    """Assert a ComputeRun's accumulator, counters and timeline equal the models'."""
    want, zero_macs = reference(program, inp, wgt, acc)
    np.testing.assert_array_equal(run.acc, want, err_msg="acc")
    gemms = [i for i in program if isinstance(i, Gemm)]
    assert run.macs == sum(i.rows for i in gemms) * DIM * DIM
    assert run.packed_macs == {
        name: sum(i.rows for i in gemms if i.pack == pack) * DIM * DIM
        for pack, name in PACKED_MAC_COUNTERS.items()
    }
    assert run.zero_macs == zero_macs
    # isasim counts from the first fetch; the unit here starts one cycle earlier.
    timeline = isasim_timeline(program, config)
    np.testing.assert_array_equal(run.timeline + 1, timeline, err_msg="timeline")


ERROR_CASES = [
    Gemm(Deps(), False, False, 0, 14, 0, 3),  # inp rows past the end
    Gemm(Deps(), True, False, 13, 0, 0, 1),  # weight rows past the end
    Vector(Deps(), VectorOp.ADD, 0, 15, 2),  # acc rows past the end
    Vector(Deps(), VectorOp.SCALE, 0, 0, 2),  # a scale of two rows
    Vector(Deps(), VectorOp.SCALE, 0, 0, 0),  # a scale of no row
    Vector(Deps(), VectorOp.SCALE, 0, 0, 1, lane_scale=True),  # a scale by the scales
    Vector(Deps(), VectorOp.SCALE, 16, 0, 1),  # the inp row past the end
]


FaultyComputeUnit = faulty(ComputeUnit)


class IgnoresLaneScale(FaultyComputeUnit):
    """Sees every VECTOR without its lane_scale bit: multiplies by the multiplier field."""

    TAMPERED = frozenset({"control__instr"})

    def tamper(self, m, inner):
        (low,) = (low for name, low, *_ in Vector.LAYOUT if name == "lane_scale")
        word = self.control.instr
        m.d.comb += inner.control.instr.eq(Cat(word[:low], 0, word[low + 1 :]))


class SwappedLanes(FaultyComputeUnit):
    """Reads inp rows with lanes 0 and 1 swapped."""

    TAMPERED = frozenset({"inp__data"})

    def tamper(self, m, inner):
        data = self.inp.data.as_value()
        m.d.comb += inner.inp.data.eq(Cat(data[8:16], data[0:8], data[16:]))
