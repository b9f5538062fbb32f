"""Lookup tables on the whole core (docs/isa.md: the lut buffer, STORE's `lut`): LOADs into
the lut buffer (transfers, unaligned and strided, partial rows, fills) and STOREs through
every table (each lane its own column, partial rows, unaligned and strided rows of one and
of several words, back to back with plain and raw STOREs) leave main memory, the cycle
count and the Activity, per layer too, exactly as the instruction simulator does, on the
C++ harness and on the cocotb bench; illegal lookups stop the core with its error status."""

import struct
from dataclasses import replace

import numpy as np
import pytest

from tests.support.programs import NO, deps
from tests.support.rtl_results import assert_like_isasim
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.isa import (
    LUT_ENTRIES,
    Buffer,
    Finish,
    Load,
    Nop,
    Store,
    Unit,
    encode_program,
)
from verdigris.arch.program import Binding, LayerInfo, Program, Segment
from verdigris.sim.isasim import IsaError, run_program
from verdigris.sim.rtl.core_runner import run_fast, run_on_rtl

pytestmark = pytest.mark.verilator

OUT, OUT_BYTES = 16384, 1024  # where the STOREs write, all of it an output


def _data(config: AccelConfig, seed: int) -> tuple[bytes, dict[str, int]]:
    """Random lookup tables (each lane a function of its own), accumulators that requantize
    to every int8, valid requant entries; the bytes and where each part starts."""
    rng = np.random.default_rng(seed)
    dim = config.dim
    at = {"lut": 0}
    at["acc"] = config.lut_rows * dim + 64
    at["req"] = at["acc"] + 32 * dim * 4
    tables = rng.integers(0, 256, at["acc"], dtype=np.uint8).tobytes()
    acc = rng.integers(-(2**16), 2**16, 32 * dim).astype("<i4").tobytes()
    entries = b"".join(
        struct.pack(
            "<iiBbbb",
            int(rng.integers(-(2**10), 2**10)),  # bias
            int(rng.integers(2**29, 2**31)),  # multiplier
            int(rng.integers(36, 40)),  # shift: y about acc / 2**8
            int(rng.integers(-8, 8)),  # zero point
            int(rng.integers(-128, -60)),  # qmin
            int(rng.integers(60, 128)),  # qmax
        )
        for _ in range(2 * dim)
    )
    return tables + acc + entries, at


def lookup_program(config: AccelConfig, seed: int = 0, pause: int = 0) -> Program:
    """The lut buffer loaded four ways, then STOREs through every table interleaved with
    LOADs into the inp buffer. With `pause`, a fill of that many inp rows comes before the
    first STORE: it runs beside the STOREs and, completing `pause` cycles after the tables
    are loaded, ends a layer (with a layer per instruction) in that cycle, in the middle
    of a STORE for most values."""
    dim, dma = config.dim, config.dma_bytes
    tables = config.lut_rows // LUT_ENTRIES
    last = config.lut_rows - LUT_ENTRIES  # the last table's first row
    data, at = _data(config, seed)
    lut, acc, req = at["lut"], at["acc"], at["req"]
    instructions = [
        # layer "tables": every table but the last, row by row
        Load(NO, Buffer.LUT, False, 0, last, dim, lut, dim),
        # the last one from an unaligned address (rows of two words)
        Load(NO, Buffer.LUT, False, last, LUT_ENTRIES, dim, lut + last * dim + 3, dim),
        Load(NO, Buffer.LUT, True, last + 50, 10, 0, fill_value=-5),  # a fill
        Load(NO, Buffer.LUT, False, last + 100, 4, dim - 1, lut + 5, 2 * dim + 1),  # partial
        Load(NO, Buffer.ACC, False, 0, 32, dim, acc, 4 * dim),
        Load(deps("push_next"), Buffer.REQ, False, 0, 2, dim, req, 12 * dim),
        Nop(deps("pop_prev", "push_next"), Unit.COMPUTE),
        *([Load(NO, Buffer.INP, True, 100, pause, 0, fill_value=2)] if pause else []),
        # layer "first": lookups while the load unit fills the inp buffer
        Store(deps("pop_prev"), False, 0, 4, dim, OUT, dim, 0, 1),  # aligned
        Load(NO, Buffer.INP, False, 0, 5, dim, 64, dim),
        Store(NO, False, 4, 3, dim - 1, OUT + 101, 13, 1, tables),  # unaligned, partial
        Load(NO, Buffer.INP, False, 5, 9, dim, 64, dim),
        Store(NO, False, 7, 2, dim, OUT + 203, 3 * dma, 0, min(2, tables)),  # two words
        # layer "second": plain, overlapping, raw and empty STOREs among lookups
        Load(NO, Buffer.INP, True, 20, 3, 0, fill_value=1),
        Store(NO, False, 9, 2, dim, OUT + 300, dim, 1, 0),  # no lookup after one
        Store(NO, False, 11, 5, 3, OUT + 400, 0, 0, 1),  # one address five times
        Load(NO, Buffer.INP, False, 30, 11, dim, 7, dim + 1),
        # layer "third"
        Store(NO, True, 16, 1, dim, OUT + 512, 0, 1, 0),  # raw after a lookup
        Store(NO, False, 17, 0, dim, OUT, 0, 0, tables),  # no rows
        Store(NO, False, 17, 6, dim, OUT + 601, dim, 1, max(1, tables - 1)),
        Store(NO, False, 23, 8, 1, OUT + 700, 1, 0, 1),  # one lane: a lookup every cycle
        Finish(NO),
    ]
    k = 1 if pause else 0
    layers = (
        LayerInfo("tables", "Load", 0, 7 + k, 0),
        LayerInfo("first", "Sigmoid", 7 + k, 12 + k, 0),
        LayerInfo("second", "HardSwish", 12 + k, 16 + k, 0),
        LayerInfo("third", "Tanh", 16 + k, 20 + k, 0),
    )
    out = Binding("out", OUT, "int8", (OUT_BYTES,), (OUT_BYTES,), (0,))
    return Program(
        config, tuple(instructions), (Segment(0, data),), (), (out,), layers, name="lookups"
    )


def _each_instruction_a_layer(program: Program) -> Program:
    count = next(i for i, ins in enumerate(program.instructions) if isinstance(ins, Finish))
    layers = tuple(LayerInfo(f"i{k}", "Instruction", k, k + 1, 0) for k in range(count))
    return replace(program, layers=layers)


def _check(programs, results) -> None:
    for program, result in zip(programs, results, strict=True):
        activity = assert_like_isasim(program, {}, result)
        assert activity.lut_write_bytes > 0 and activity.lut_read_bytes > 0


def _programs(config: AccelConfig) -> list[Program]:
    program = lookup_program(config)
    return [program, _each_instruction_a_layer(program), lookup_program(config, seed=1)]


def test_lookups_on_the_harness(rtl_build_root):
    """The default preset: four tables. A layer boundary in every cycle of the first
    STOREs (one program per cycle) checks in which cycle each event counts."""
    config = load_config("default")
    assert config.lut_rows // LUT_ENTRIES == 4
    programs = _programs(config)
    programs += [
        _each_instruction_a_layer(lookup_program(config, pause=pause)) for pause in range(1, 48)
    ]
    expected = [run_program(p, {})[1].cycles for p in programs]
    results = run_fast(
        [(p, {}) for p in programs], expected_cycles=expected, build_root=rtl_build_root
    )
    _check(programs, results)


def test_lookups_on_cocotb(rtl_build_root, tmp_path):
    """The tiny preset: one table (so every STORE with a lookup uses it)."""
    config = load_config("tiny")
    programs = _programs(config)[:2]
    expected = [run_program(p, {})[1].cycles for p in programs]
    results = run_on_rtl(
        [(p, {}) for p in programs],
        expected_cycles=expected,
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    _check(programs, results)


def _illegal(config: AccelConfig, bad) -> Program:
    """A program whose fourth instruction is `bad`, after good loads."""
    good = lookup_program(config)
    instructions = (*good.instructions[:3], bad, Finish(NO))
    return Program(config, instructions, good.segments, (), (), name="illegal")


def _without(program: Program) -> Program:
    """`program` without its fourth instruction: what the host port plans the run from (it
    computes each instruction's events, which a LOAD `buffer` of 5..7 has none of); the
    core runs the real instructions (`raw_instructions`)."""
    instructions = program.instructions
    return replace(program, instructions=(*instructions[:3], *instructions[4:]))


ILLEGAL = {
    "raw with a lookup": Store(NO, True, 0, 1, 8, OUT, 0, 0, 1),
    "a table past lut_rows": Store(NO, False, 0, 1, 8, OUT, 0, 0, 5),
    "the last table number": Store(NO, False, 0, 0, 8, OUT, 0, 0, 127),
    "LOAD buffer 5": Load(NO, 5, False, 0, 1, 8, 0, 8),
    "LOAD buffer 7, a fill": Load(NO, 7, True, 0, 1, 0),
    "lut rows past the end": Load(NO, Buffer.LUT, True, 1020, 5, 0),
}


def test_illegal_lookups_stop_the_core(rtl_build_root):
    config = load_config("default")
    programs = [_illegal(config, bad) for bad in ILLEGAL.values()]
    for program in programs:
        with pytest.raises(IsaError, match=r"^instruction 3 "):
            run_program(program, {})
    results = run_fast(
        [(_without(p), {}) for p in programs],
        expected_cycles=[2000] * len(programs),
        raw_instructions=[encode_program(p.instructions) for p in programs],
        build_root=rtl_build_root,
    )
    assert [r.error for r in results] == [True] * len(programs)
