"""Programs for the per-layer Activity tests (tests/sim/test_layer_activity.py and
tests/rtl/test_layer_activity_rtl.py): hand-written programs whose instructions run across
layer boundaries, and the configs they run on."""

import numpy as np

from tests.support.programs import NO, deps
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.isa import (
    Buffer,
    Finish,
    Gemm,
    Load,
    Nop,
    Store,
    Unit,
    Vector,
    VectorOp,
)
from verdigris.arch.program import LayerInfo, Program, Segment


def configs(name: str) -> list[AccelConfig]:
    """A preset and its output-stationary variant."""
    config = load_config(name)
    os_config = AccelConfig.from_dict({**config.to_dict(), "name": f"{name}_os", "dataflow": "os"})
    return [config, os_config]


def _random_bytes(seed: int, size: int, zeros: float) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(-128, 128, size).astype(np.int8)
    data[rng.random(size) < zeros] = 0
    return data.tobytes()


def straddling_programs(config: AccelConfig) -> dict[str, tuple[Program, dict[str, int]]]:
    """Programs with instructions across layer boundaries, by name, each with the index of
    every instruction that must straddle a boundary (checked by `test_programs_straddle`)."""
    dim = config.dim
    data = Segment(0, _random_bytes(1, 4096, zeros=0.3))
    out = 8192
    row = 4 * dim  # bytes of a raw STORE row
    transfers = [
        # layer 0: a STORE, during which layer 1's LOAD starts
        Store(NO, True, 0, 10, dim, out, row),
        # layer 1: a long LOAD with rows of different word counts, a short STORE
        Load(NO, Buffer.INP, False, 0, 60, 3, 1, 5),
        Store(NO, True, 0, 2, dim, out + 1024, row),
        # layer 3 (2 is empty): a STORE that starts before the LOAD ends, and a LOAD
        Store(NO, True, 0, 20, dim - 1, out + 2048 + 2, row + 3),
        Load(NO, Buffer.WGT, False, 0, 10, dim, 7, dim),
        Finish(NO),
    ]
    transfer_layers = (
        LayerInfo("store0", "Conv", 0, 1, 0),
        LayerInfo("load1", "Conv", 1, 3, 0),
        LayerInfo("empty2", "Reshape", 3, 3, 0),
        LayerInfo("store3", "Conv", 3, 5, 0),
    )
    arrays = [
        # layer 0: accumulators cleared, weights and activations, then a GEMM (a core keeps
        # its buffers from one program to the next: every row read is written first)
        Load(NO, Buffer.ACC, True, 0, 128, 0),
        Load(NO, Buffer.WGT, False, 0, dim, dim, 0, dim),
        Load(deps("push_next"), Buffer.INP, False, 0, 64, dim, 64, dim),
        Gemm(deps("pop_prev"), True, False, 0, 0, 0, 16),
        # layer 1: a compute NOP that completes before the GEMM above, a long GEMM that
        # starts before the GEMM above completes, then a VECTOR add
        Nop(NO, Unit.COMPUTE),
        Gemm(NO, False, True, 0, 0, 16, 40),
        Vector(deps("push_next"), VectorOp.ADD, 20, 16, 10, 3, 5),
        # layer 2: the GEMM's rows out
        Store(deps("pop_prev"), True, 16, 8, dim, out, row),
        Load(NO, Buffer.WGT, False, dim, dim, dim, 512, dim),
        Gemm(NO, True, True, dim, 3, 40, 40),
        # layer 3: starts while the GEMM above streams
        Gemm(NO, False, False, 0, 7, 60, 12),
        Finish(NO),
    ]
    array_layers = (
        LayerInfo("gemm0", "Conv", 0, 4, 16 * dim * dim),
        LayerInfo("gemm1", "Gemm", 4, 7, 40 * dim * dim),
        LayerInfo("store2", "Conv", 7, 10, 40 * dim * dim),
        LayerInfo("gemm3", "MatMul", 10, 11, 12 * dim * dim),
    )
    return {
        "load_store": (
            Program(config, tuple(transfers), (data,), (), (), transfer_layers, name="ls"),
            {"load": 1, "store": 3},
        ),
        "gemm": (
            Program(config, tuple(arrays), (data,), (), (), array_layers, name="gemm"),
            {"gemm": 5, "gemm_weights": 9, "gemm_after": 10},
        ),
    }
