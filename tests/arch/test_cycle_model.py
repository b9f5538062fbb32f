"""The cycle model's public API (arch/cycle_model.py): plans, their errors and the compute
unit's hazard rules, and the width helpers of arch/isa.py it uses."""

import numpy as np
import pytest

from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.cycle_model import (
    ComputeHazards,
    IsaError,
    plan_instruction,
    plan_program,
    transfer_words,
)
from verdigris.arch.isa import (
    Buffer,
    Deps,
    Finish,
    Gemm,
    Load,
    Store,
    Unit,
    Vector,
    VectorOp,
    elements_bytes,
    pack_elements,
    row_bytes,
    transfer_bytes,
)
from verdigris.arch.timing import LOAD_OVERHEAD, STORE_OVERHEAD, VECTOR_LATENCY, gemm_latency
from verdigris.sim import isasim

NO = Deps()
CONFIG = load_config("tiny")  # dim 4, dma_bytes 4


def test_isasim_raises_the_cycle_models_error_class():
    assert isasim.IsaError is IsaError


def test_plans_give_the_documented_busy_latency_and_words():
    program = [
        Load(NO, Buffer.ACC, False, 0, 2, 3, 1, 16),  # 12 bytes from offset 1: 4 words a row
        Gemm(Deps(push_next=True), True, False, 0, 0, 0, 5),
        Vector(NO, VectorOp.ADD, 0, 0, 3),
        Store(Deps(pop_prev=True), True, 0, 1, 4, 0, 16),  # raw: 16 bytes, 4 words
        Finish(NO),
        Store(NO, False, 0, 99999, 4, 0, 0),  # after FINISH: not checked
    ]
    load, gemm, vector, store = plan_program(CONFIG, program)
    assert (load.unit, load.busy, load.latency, load.words) == (Unit.LOAD, 8 + LOAD_OVERHEAD, 0, 8)
    assert (gemm.busy, gemm.latency, gemm.pushes, gemm.pops) == (4 + 5, gemm_latency(4), (2,), ())
    assert gemm.loads_weights and gemm.streams and gemm.uses_array and not gemm.is_vector
    assert (vector.busy, vector.latency, vector.is_vector) == (3, VECTOR_LATENCY, True)
    assert (store.busy, store.words, store.pops) == (4 + STORE_OVERHEAD, 4, (2,))


def test_plan_instruction_names_its_index():
    bad = Vector(NO, VectorOp.WRITE, 0, CONFIG.acc_rows, 1)
    with pytest.raises(IsaError) as info:
        plan_instruction(CONFIG, 7, bad)
    assert info.value.index == 7
    assert str(info.value).startswith("instruction 7 (vector ")
    assert str(info.value).endswith(f"run past the end of the acc buffer ({CONFIG.acc_rows} rows)")
    assert plan_instruction(CONFIG, 3, Vector(NO, VectorOp.WRITE, 0, 0, 1)).index == 3


def test_the_vector_hazard_waits_for_the_array_to_drain():
    hazards = ComputeHazards(4)
    [gemm, vector] = plan_program(
        CONFIG, [Gemm(NO, False, False, 0, 0, 0, 2), Vector(NO, 0, 0, 0, 1), Finish(NO)]
    )
    assert not hazards.waits(vector, 0)
    hazards.started(gemm, 1)  # completes in 1 + 2 + 9 = 12
    assert hazards.waits(vector, 11) and not hazards.waits(vector, 12)


@pytest.mark.parametrize("rows", [0, 1, 3, 4, 9])
def test_a_weight_load_never_starts_before_the_stream_start_before_it(rows):
    # The array's safe reuse (hw/array.py) needs a weight load to start no earlier than
    # the stream start of the GEMM before it; the early weight load guarantees that.
    hazards = ComputeHazards(4)
    first, load = plan_program(
        CONFIG,
        [Gemm(NO, True, False, 0, 0, 0, rows), Gemm(NO, True, False, 0, 0, 0, 1), Finish(NO)],
    )
    hazards.started(first, 10)
    stream_start = 10 + 4
    earliest = hazards.free_for(load, 10 + first.busy)
    assert earliest == stream_start + max(0, rows - 4)
    assert not hazards.waits(load, earliest)


def test_transfer_words_sums_the_words_of_each_row():
    assert transfer_words(1, 16, 2, 12, 4) == 8
    assert transfer_words(0, 3, 3, 3, 4) == 1 + 2 + 2
    assert transfer_words(5, 7, 0, 3, 4) == 0


@pytest.mark.parametrize("config", [load_config(name) for name in ("tiny", "default", "large")])
def test_element_widths_follow_the_config(config: AccelConfig):
    dim = config.dim
    assert row_bytes(config, Buffer.INP) == row_bytes(config, Buffer.WGT) == dim
    assert row_bytes(config, Buffer.ACC) == 4 * dim
    assert row_bytes(config, Buffer.REQ) == 12 * dim
    assert elements_bytes(config, Buffer.INP, 3) == 3
    assert transfer_bytes(config, Load(NO, Buffer.REQ, False, 0, 1, 2)) == 24
    assert transfer_bytes(config, Load(NO, Buffer.INP, True, 0, 1, 2)) == 0  # a fill
    assert transfer_bytes(config, Store(NO, False, 0, 1, 3, 0, 0)) == 3
    assert transfer_bytes(config, Store(NO, True, 0, 1, 3, 0, 0)) == 12


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16, 32])
def test_pack_elements_lays_lanes_out_little_endian(bits):
    rng = np.random.default_rng(bits)
    values = (
        rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(3, 5))
        if bits > 1
        else rng.choice([-1, 1], size=(3, 5))
    )
    packed = pack_elements(values, bits)
    assert packed.dtype == np.uint8 and packed.shape == (3, -(-5 * bits // 8))
    for row, data in zip(values, packed, strict=True):
        word = int.from_bytes(data.tobytes(), "little")
        mask = (1 << bits) - 1
        # two's complement, or binary: bit 1 for +1, 0 for -1
        codes = [int(v > 0) if bits == 1 else int(v) & mask for v in row]
        assert [(word >> (c * bits)) & mask for c in range(5)] == codes
        assert word >> (5 * bits) == 0  # the last byte's padding
