"""VECTOR scale and lane_scale on the whole core (docs/isa.md, "Semantics", VECTOR): a scale
that waits for the array to drain and whose acc_row is not used, a lane_scale VECTOR in the
first cycle the hazard rule allows after it, every op with lane_scale, scales between
GEMMs (and a GEMM starting while a scale is still in flight), scales at the ends of the
10-bit range, and the multiplier field again after them, leave main memory, the cycle
count and the Activity, per layer too, exactly as the instruction simulator does, on the
C++ harness (both dataflows) and on the cocotb bench. A program that uses lane_scale
without a scale of its own sees zero scales even after one that set them (a run starts
from zero scale registers, as the simulator's does); an illegal scale stops the core with
its error status."""

from dataclasses import replace

import numpy as np
import pytest

from tests.support.layer_programs import configs
from tests.support.programs import NO, deps
from tests.support.rtl_results import assert_like_isasim
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.isa import Buffer, Finish, Gemm, Load, Store, Vector, VectorOp
from verdigris.arch.program import Binding, LayerInfo, Program, Segment
from verdigris.sim.isasim import IsaError, run_program
from verdigris.sim.rtl.core_runner import run_fast, run_on_rtl

pytestmark = pytest.mark.verilator

X_ROWS = 48  # activations, inp rows 0..47
S_ROWS = 4  # scale rows, inp rows 48..51
OUT_ROWS = 36  # acc rows stored raw
OUT = 16384  # where the STOREs write


def _data(dim: int, seed: int) -> bytes:
    """Activations with some zeros, scale rows whose first lanes reach the ends of the
    scale range with the zeros used below (127 - (-256) = 383, -128 - 255 = -383), and two
    weight tiles."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (X_ROWS, dim))
    x[rng.random(x.shape) < 0.2] = 0
    s = rng.integers(-128, 128, (S_ROWS, dim))
    s[:, :2] = [[127, -128], [-128, 127], [0, 1], [127, 127]]
    w = rng.integers(-128, 128, (2 * dim, dim))
    return np.concatenate([x, s, w]).astype(np.int8).tobytes()


def _out(rows: int, dim: int) -> Binding:
    return Binding("out", OUT, "int32", (rows, dim), (rows, dim), (0, 1))


def scale_program(config: AccelConfig, seed: int = 0) -> Program:
    """Scales and lane_scale VECTORs among GEMMs, every acc row they write stored raw; a
    LOAD runs beside the compute unit so that layer windows cut through its rows."""
    dim = config.dim
    s_addr, w_addr = X_ROWS * dim, (X_ROWS + S_ROWS) * dim
    s0 = X_ROWS  # the first scale row
    instructions = [
        # layer "load"
        Load(NO, Buffer.INP, False, 0, X_ROWS, dim, 0, dim),
        Load(NO, Buffer.INP, False, s0, S_ROWS, dim, s_addr, dim),
        Load(deps("push_next"), Buffer.WGT, False, 0, 2 * dim, dim, w_addr, dim),
        # layer "gemm0"
        Gemm(deps("pop_prev"), True, False, 0, 0, 0, 8),
        # layer "scale0": the scale waits for the GEMM to drain, its acc_row is unused; a
        # lane_scale add starts the cycle it completes; then write and max by the scales
        Vector(NO, VectorOp.SCALE, s0, 2**16 - 1, 1, -256),
        Vector(NO, VectorOp.ADD, 8, 0, 8, 17, 0, lane_scale=True),
        Vector(NO, VectorOp.WRITE, 16, 8, 8, -256, 3, lane_scale=True),
        Vector(NO, VectorOp.MAX, 24, 8, 8, 255, 0, lane_scale=True),
        Load(NO, Buffer.INP, False, 100, 30, dim, 5, dim + 3),  # beside the compute unit
        # layer "between": scales between GEMMs, one GEMM starting while a scale is in
        # flight, GEMMs accumulating onto lane_scale results
        Gemm(NO, True, True, dim, 0, 8, 8),
        Vector(NO, VectorOp.SCALE, s0 + 1, 0, 1, 255),  # scales down to -383
        Gemm(NO, False, False, 0, 32, 16, 8),
        Vector(NO, VectorOp.WRITE, 40, 24, 8, 0, 0, lane_scale=True),
        Vector(NO, VectorOp.SCALE, s0 + 2, 3, 1, 0),
        Gemm(NO, True, True, 0, 16, 24, 8),
        # layer "tail": a max by the third scales, a write by the field again, and a scale
        # that is the last compute instruction (nothing ever reads it)
        Vector(NO, VectorOp.MAX, 0, 24, 8, -3, 0, lane_scale=True),
        Vector(NO, VectorOp.WRITE, 4, 32, 4, 5, 2**22 - 1),
        Vector(deps("push_next"), VectorOp.SCALE, s0 + 3, 0, 1, 7),
        # layer "out"
        Store(deps("pop_prev"), True, 0, OUT_ROWS, dim, OUT, 4 * dim),
        Finish(NO),
    ]
    layers = (
        LayerInfo("load", "Load", 0, 3, 0),
        LayerInfo("gemm0", "Conv", 3, 4, 8 * dim * dim),
        LayerInfo("scale0", "Mul", 4, 9, 0),
        LayerInfo("between", "Conv", 9, 15, 24 * dim * dim),
        LayerInfo("tail", "Mul", 15, 18, 0),
        LayerInfo("out", "Store", 18, 19, 0),
    )
    segment = Segment(0, _data(dim, seed))
    return Program(
        config,
        tuple(instructions),
        (segment,),
        (),
        (_out(OUT_ROWS, dim),),
        layers,
        name=f"scale{seed}",
    )


def unscaled_program(config: AccelConfig) -> Program:
    """lane_scale VECTORs without a scale: with zero scale registers a write gives 0, an add
    leaves the acc rows' fill (-9) and a max gives 0 (the acc rows are filled first, so
    nothing left from an earlier run shows but the scale registers)."""
    dim = config.dim
    instructions = [
        Load(NO, Buffer.ACC, True, 0, 8, 0, fill_value=-9),
        Load(deps("push_next"), Buffer.INP, False, 0, 8, dim, 0, dim),
        Vector(deps("pop_prev"), VectorOp.WRITE, 0, 0, 4, -100, 7, lane_scale=True),
        Vector(NO, VectorOp.ADD, 4, 4, 2, 3, 7, lane_scale=True),
        Vector(deps("push_next"), VectorOp.MAX, 6, 6, 2, 3, 7, lane_scale=True),
        Store(deps("pop_prev"), True, 0, 8, dim, OUT, 4 * dim),
        Finish(NO),
    ]
    layers = (LayerInfo("load", "Load", 0, 2, 0), LayerInfo("mul", "Mul", 2, 6, 0))
    segment = Segment(0, _data(dim, 5))
    return Program(
        config, tuple(instructions), (segment,), (), (_out(8, dim),), layers, name="unscaled"
    )


def _each_instruction_a_layer(program: Program) -> Program:
    count = next(i for i, ins in enumerate(program.instructions) if isinstance(ins, Finish))
    layers = tuple(LayerInfo(f"i{k}", "Instruction", k, k + 1, 0) for k in range(count))
    return replace(program, layers=layers)


def _programs(config: AccelConfig) -> list[Program]:
    """Two scale programs, one with a boundary after every instruction, and (after them,
    on the same core) the unscaled program."""
    program = scale_program(config)
    return [
        program,
        _each_instruction_a_layer(program),
        scale_program(config, seed=1),
        unscaled_program(config),
    ]


def _check(programs, results) -> None:
    for program, result in zip(programs, results, strict=True):
        assert_like_isasim(program, {}, result)
    # The programs test something: the scales change the results, and none survives a run.
    scaled, unscaled = run_program(programs[0], {})[0]["out"], run_program(programs[-1], {})[0]
    assert np.count_nonzero(scaled[8:16]) > scaled[8:16].size // 2
    want = np.zeros_like(unscaled["out"])
    want[4:6] = -9  # the adds keep the fill
    np.testing.assert_array_equal(unscaled["out"], want)


@pytest.mark.parametrize(
    "config", [*configs("tiny"), load_config("default")], ids=lambda config: config.name
)
def test_vector_scale_on_the_harness(config, rtl_build_root):
    programs = _programs(config)
    expected = [run_program(p, {})[1].cycles for p in programs]
    results = run_fast(
        [(p, {}) for p in programs], expected_cycles=expected, build_root=rtl_build_root
    )
    _check(programs, results)


def test_vector_scale_on_cocotb(rtl_build_root, tmp_path):
    config = load_config("tiny")
    programs = [scale_program(config), unscaled_program(config)]
    expected = [run_program(p, {})[1].cycles for p in programs]
    results = run_on_rtl(
        [(p, {}) for p in programs],
        expected_cycles=expected,
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    _check(programs, results)


ILLEGAL = {
    "a scale of two rows": Vector(NO, VectorOp.SCALE, 0, 0, 2),
    "a scale of no row": Vector(NO, VectorOp.SCALE, 0, 0, 0),
    "a scale with lane_scale": Vector(NO, VectorOp.SCALE, 0, 0, 1, lane_scale=True),
}


@pytest.mark.parametrize("bad", ILLEGAL.values(), ids=ILLEGAL.keys())
def test_an_illegal_scale_stops_the_core(bad, rtl_build_root):
    """After a scale program, a program whose fourth instruction is an illegal scale stops
    with the error status; after the host's reset the next program runs as the instruction
    simulator says."""
    config = load_config("tiny")
    good = scale_program(config)
    instructions = (*good.instructions[:3], bad, Finish(NO))
    illegal = Program(config, instructions, good.segments, (), (), name="illegal")
    with pytest.raises(IsaError, match=r"^instruction 3 .*scale takes one row"):
        run_program(illegal, {})
    after = unscaled_program(config)
    programs = [good, illegal, after]
    results = run_fast(
        [(p, {}) for p in programs],
        expected_cycles=[run_program(good, {})[1].cycles, 2000, run_program(after, {})[1].cycles],
        build_root=rtl_build_root,
    )
    assert [r.error for r in results] == [False, True, False]
    _check([good, after], [results[0], results[2]])
