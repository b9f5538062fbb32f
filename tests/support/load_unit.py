"""What the load unit's tests in Amaranth's simulator (tests/hw) and on Verilator (tests/rtl)
share: small configs, random programs and memory, an element-by-element model of docs/isa.md's
LOAD, the check of a run against it and the instruction simulator, and a faulty unit."""

import numpy as np
from amaranth.hdl import Cat

from tests.support.faults import faulty
from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import Buffer, Deps, Finish, Load, Nop, Unit, buffer_rows, elements_bytes
from verdigris.hw.load_unit import LoadUnit
from verdigris.sim.isasim import run_instructions

PUSH = Deps(push_next=True)


def small_config(dim: int, dma_bytes: int, **overrides) -> AccelConfig:
    fields = {
        "inp_rows": 32,
        "wgt_rows": 32,
        "acc_rows": 16,
        "req_rows": 8,
        "lut_rows": 256,
        "main_memory_bytes": 1024,
    } | overrides
    return AccelConfig(
        name=f"load{dim}x{dma_bytes}", rows=dim, cols=dim, dma_bytes=dma_bytes, **fields
    )


def random_memory(config: AccelConfig, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, config.main_memory_bytes, dtype=np.uint8)


def model_buffers(config: AccelConfig, instructions, memory) -> dict:
    """docs/isa.md's LOAD, written out element by element (independent of isasim)."""
    dim = config.dim
    buffers = {b: np.zeros((buffer_rows(config, b), dim), np.int64) for b in Buffer}
    buffers[Buffer.REQ] = np.zeros((config.req_rows, dim, 6), np.int64)
    for ins in instructions:
        if not isinstance(ins, Load):
            continue
        buffer = Buffer(ins.buffer)
        e = elements_bytes(config, buffer, 1)
        for i in range(ins.rows):
            row = buffers[buffer][ins.buf_row + i]
            row[...] = 0
            if ins.fill:
                row[...] = ins.fill_value
                continue
            for c in range(ins.elems):
                start = ins.dram_addr + i * ins.dram_stride + c * e
                data = bytes(memory[start : start + e])
                if buffer is Buffer.REQ:
                    row[c] = [
                        int.from_bytes(data[0:4], "little", signed=True),
                        int.from_bytes(data[4:8], "little", signed=True),
                        data[8],
                        int.from_bytes(data[9:10], "little", signed=True),
                        int.from_bytes(data[10:11], "little", signed=True),
                        int.from_bytes(data[11:12], "little", signed=True),
                    ]
                else:
                    row[c] = int.from_bytes(data, "little", signed=True)
    return buffers


def isasim_timeline(config: AccelConfig, instructions, memory) -> np.ndarray:
    timeline = np.full((len(instructions) + 1, 2), -1, np.int64)
    run_instructions(config, [*instructions, Finish(Deps())], memory, timeline=timeline)
    return timeline[:-1]


def check_results(config: AccelConfig, instructions, memory, buffers, timeline) -> None:
    """Assert a run's buffers and timeline equal the models'."""
    want = model_buffers(config, instructions, memory)
    for buffer in Buffer:
        np.testing.assert_array_equal(buffers[buffer], want[buffer], err_msg=buffer.name)
    # Back to back: each instruction starts in the completion cycle of the one before.
    assert timeline[0, 0] == 0
    np.testing.assert_array_equal(timeline[1:, 0], timeline[:-1, 1])
    reference = isasim_timeline(config, instructions, memory)
    np.testing.assert_array_equal(
        timeline[:, 1] - timeline[:, 0], reference[:, 1] - reference[:, 0], err_msg="busy"
    )
    np.testing.assert_array_equal(timeline - timeline[0, 0], reference - reference[0, 0])


def random_load(config: AccelConfig, rng: np.random.Generator) -> Load:
    dim, dma = config.dim, config.dma_bytes
    buffer = Buffer(int(rng.integers(len(Buffer))))
    rows = int(rng.integers(1, 7)) if rng.random() > 0.05 else 0
    buf_row = int(rng.integers(0, buffer_rows(config, buffer) - rows + 1))
    deps = PUSH if rng.random() < 0.5 else Deps()
    if buffer is not Buffer.REQ and rng.random() < 0.25:
        value = int(rng.integers(-128, 128))
        return Load(deps, buffer, True, buf_row, rows, int(rng.integers(0, 256)), 0, 0, value)
    elems = int(rng.integers(1, dim + 1))
    nbytes = elements_bytes(config, buffer, elems)
    stride = int(
        rng.choice(
            [
                0,
                nbytes,
                dma * int(rng.integers(1, 4)),
                int(rng.integers(1, 3 * nbytes + 2)),
            ]
        )
    )
    span = (max(rows, 1) - 1) * stride + nbytes
    if span > config.main_memory_bytes:  # wide rows, long stride: repeat one row instead
        stride, span = 0, nbytes
    addr = int(rng.integers(0, config.main_memory_bytes - span + 1))
    return Load(deps, buffer, False, buf_row, rows, elems, addr, stride)


def random_program(config: AccelConfig, seed: int, count: int) -> list:
    rng = np.random.default_rng(seed)
    program = []
    for _ in range(count):
        if rng.random() < 0.08:
            program.append(Nop(PUSH if rng.random() < 0.5 else Deps(), Unit.LOAD))
        else:
            program.append(random_load(config, rng))
    return program


FaultyLoadUnit = faulty(LoadUnit)


class SwappedBytes(FaultyLoadUnit):
    """Reads main-memory words with their two lowest bytes swapped."""

    TAMPERED = frozenset({"mem__data"})

    def tamper(self, m, inner):
        data = self.mem.data
        m.d.comb += inner.mem.data.eq(Cat(data[8:16], data[0:8], data[16:]))
