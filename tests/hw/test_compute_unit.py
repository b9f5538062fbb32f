# amaranth: UnusedElaboratable=no
"""The compute unit alone in Amaranth's simulator: random GEMM / VECTOR (scale and
lane_scale among them) / NOP sequences on random buffers, driven and checked by
`ComputeUnitDriver` (the port contract, cycle by cycle). The accumulator must end as the
ISA's semantics say, the MAC counters count what the instruction simulator counts, and
every instruction must start and complete in the cycle the instruction simulator gives
it."""

import random

import numpy as np
import pytest

from tests.support.compute_unit import (
    CONFIG,
    ERROR_CASES,
    NARROW,
    FaultyComputeUnit,
    IgnoresLaneScale,
    SwappedLanes,
    check_compute_run,
    random_buffers,
    random_program,
    scale_program,
)
from verdigris.arch.isa import Deps, Finish, Gemm, Nop, Unit, Vector, VectorOp
from verdigris.sim.isasim import IsaError, run_instructions
from verdigris.verify.compute_unit import simulate_compute_unit
from verdigris.verify.protocol import UnitProtocolError


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences_match_the_isa(seed):
    program = random_program(random.Random(seed), 14)
    inp, wgt, acc = random_buffers(seed)
    check_compute_run(program, inp, wgt, acc, simulate_compute_unit(CONFIG, program, inp, wgt, acc))


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_random_packed_sequences_match_the_isa(seed):
    """GEMMs of int8, packed int4, int2 and binary operands mixed, on PEs that compute all
    four."""
    program = random_program(random.Random(seed), 14, max_pack=3)
    assert {ins.pack for ins in program if isinstance(ins, Gemm)} >= {1, 2, 3}
    inp, wgt, acc = random_buffers(seed)
    run = simulate_compute_unit(NARROW, program, inp, wgt, acc)
    check_compute_run(program, inp, wgt, acc, run, NARROW)


def test_back_to_back_accumulation_and_hazards():
    """Accumulating GEMMs into the same rows back to back, a weight swap right after, and a
    VECTOR that must wait for the array to drain, each completing with its push."""
    push = Deps(push_prev=True, push_next=True)
    program = [
        Gemm(push, True, False, 0, 0, 0, 3),
        Gemm(push, False, True, 0, 3, 0, 3),
        Gemm(Deps(), True, True, 4, 6, 0, 3),
        Nop(push, Unit.COMPUTE),  # overtakes the GEMM: two completions may share a cycle
        Vector(push, VectorOp.ADD, 0, 0, 3, 5, 7),
    ]
    inp, wgt, acc = random_buffers(1)
    check_compute_run(program, inp, wgt, acc, simulate_compute_unit(CONFIG, program, inp, wgt, acc))


def test_scale_registers():
    """A scale waits for the array to drain and writes no acc row (its acc_row, past the
    accumulator's end, is not used); a lane_scale VECTOR right after it sees the new scales
    (`scale_program`)."""
    program, (inp, wgt, acc) = scale_program()
    run = simulate_compute_unit(CONFIG, program, inp, wgt, acc)
    check_compute_run(program, inp, wgt, acc, run)
    np.testing.assert_array_equal(run.acc[12:14], 0)


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ERROR_CASES)
def test_errors_stop_the_unit(bad):
    """The driver checks the illegal instruction raises `error` in the next cycle and
    touches nothing, while the GEMM before it drains normally; isasim names the same one."""
    program = [Gemm(Deps(push_next=True), True, False, 0, 0, 0, 4), bad, Nop(Deps(), Unit.COMPUTE)]
    inp, wgt, acc = random_buffers(2)
    with pytest.raises(IsaError, match=r"^instruction 1: the compute unit") as raised:
        simulate_compute_unit(CONFIG, program, inp, wgt, acc)
    assert raised.value.index == 1
    zeros = np.zeros(CONFIG.main_memory_bytes, np.uint8)
    with pytest.raises(IsaError) as reference_error:
        run_instructions(CONFIG, [*program, Finish(Deps())], zeros)
    assert reference_error.value.index == 1


# ------------------------------------------------------------------- the tests can fail


class IgnoresHazards(FaultyComputeUnit):
    """Ready whenever free: a VECTOR does not wait for the array to drain."""

    TAMPERED = frozenset({"control__ready"})

    def tamper(self, m, inner):
        m.d.comb += self.control.ready.eq(inner.control.free)


@pytest.mark.parametrize(
    ("variant", "error", "message"),
    [
        (SwappedLanes, AssertionError, "acc"),
        (IgnoresLaneScale, AssertionError, "acc"),
        # The VECTOR's first write comes while the GEMM before it still has rows to write.
        (IgnoresHazards, UnitProtocolError, r"^cycle \d+: acc row write \d+ accessed, not"),
    ],
)
def test_a_broken_unit_fails(variant, error, message):
    program = random_program(random.Random(3), 14)
    inp, wgt, acc = random_buffers(3)
    run = simulate_compute_unit(CONFIG, program, inp, wgt, acc, dut=FaultyComputeUnit(CONFIG))
    check_compute_run(program, inp, wgt, acc, run)  # wrapping alone is fine
    with pytest.raises(error, match=message):
        run = simulate_compute_unit(CONFIG, program, inp, wgt, acc, dut=variant(CONFIG))
        check_compute_run(program, inp, wgt, acc, run)
