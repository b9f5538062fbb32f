# amaranth: UnusedElaboratable=no
"""The store unit alone in Amaranth's simulator, driven and checked by `StoreUnitDriver` (the
port contract, cycle by cycle): random STOREs (requantized and raw, unaligned addresses,
strides, partial rows) and NOPs from random accumulator rows and requant entries. Main
memory must end as the instruction simulator leaves it, and every instruction must keep the
unit busy exactly as long as the cycle model says."""

import random

import pytest

from tests.support.store_unit import (
    CONFIG,
    DIM,
    ERROR_CASES,
    GOOD,
    LOADS,
    OUT_AT,
    FaultyStoreUnit,
    SwappedStoreBytes,
    check_store_run,
    isasim_run,
    random_program,
    setup,
)
from verdigris.arch.isa import Deps, Store
from verdigris.sim.isasim import IsaError
from verdigris.verify.protocol import UnitProtocolError
from verdigris.verify.store_unit import simulate_store_unit


@pytest.mark.parametrize("seed", range(5))
def test_random_stores_match_the_instruction_simulator(seed):
    memory, acc, req = setup(seed)
    program = random_program(random.Random(seed), 10)
    check_store_run(program, memory, simulate_store_unit(CONFIG, program, acc, req, memory))


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ERROR_CASES)
def test_errors_stop_the_unit(bad):
    """The driver checks the illegal instruction raises `error` in the next cycle and
    touches nothing; isasim rejects the same one."""
    memory, acc, req = setup(4)
    program = [GOOD, bad, GOOD]
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit") as raised:
        simulate_store_unit(CONFIG, program, acc, req, memory)
    assert raised.value.index == 1
    with pytest.raises(IsaError) as reference:
        isasim_run(program, memory)
    assert reference.value.index == len(LOADS) + 1


def test_a_shift_out_of_range_stops_the_unit_while_it_runs():
    memory, acc, req = setup(4, bad_shift=True)
    program = [GOOD, Store(Deps(), False, 0, 2, DIM, OUT_AT, DIM, 1), GOOD]
    with pytest.raises(IsaError, match=r"^instruction 1: the store unit") as raised:
        simulate_store_unit(CONFIG, program, acc, req, memory)
    assert raised.value.index == 1
    with pytest.raises(IsaError, match="has shift 0") as reference:
        isasim_run(program, memory)
    assert reference.value.index == len(LOADS) + 1


# ------------------------------------------------------------------- the tests can fail


class NoPushes(FaultyStoreUnit):
    """Never pushes a token."""

    TAMPERED = frozenset({"control__push_prev"})

    def tamper(self, m, inner):
        pass


@pytest.mark.parametrize(
    ("variant", "error", "message"),
    [
        (SwappedStoreBytes, AssertionError, "memory"),
        (NoPushes, UnitProtocolError, r"push_prev is 0 in the completion cycle, not 1$"),
    ],
)
def test_a_broken_unit_fails(variant, error, message):
    memory, acc, req = setup(3)
    program = random_program(random.Random(3), 10)
    run = simulate_store_unit(CONFIG, program, acc, req, memory, dut=FaultyStoreUnit(CONFIG))
    check_store_run(program, memory, run)  # wrapping alone is fine
    with pytest.raises(error, match=message):
        run = simulate_store_unit(CONFIG, program, acc, req, memory, dut=variant(CONFIG))
        check_store_run(program, memory, run)
