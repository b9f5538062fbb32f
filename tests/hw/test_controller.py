# amaranth: UnusedElaboratable=no
"""The controller in Amaranth's simulator, with its instruction memory (`ControllerWithImem`)
and the units played by `ControllerDriver` as docs/isa.md's busy/latency table has them:
every instruction must start in the same cycle as in the instruction simulator, and the
cycle, busy, stall and instruction counts must equal its Activity. An illegal instruction
must stop the controller with `error`."""

import pytest

from tests.support.controller import (
    HAZARDS,
    START,
    FaultyController,
    ShallowQueues,
    check_controller_run,
    random_program,
)
from tests.support.programs import CONFIG
from verdigris.arch.isa import Buffer, Deps, Finish, Load, Nop, Unit
from verdigris.verify.controller import simulate_controller
from verdigris.verify.protocol import UnitProtocolError


@pytest.mark.parametrize("seed", range(12))
def test_starts_and_counters_match_the_instruction_simulator(seed):
    program = random_program(seed)
    check_controller_run(program, simulate_controller(CONFIG, program))


def test_finish_only_takes_one_cycle():
    assert simulate_controller(CONFIG, [Finish(Deps())]).cycles == 1


def test_weight_swap_and_vector_hazards():
    check_controller_run(HAZARDS, simulate_controller(CONFIG, HAZARDS))


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [Nop(Deps(), 3), Finish(Deps(push_next=True))])
def test_an_illegal_word_stops_fetch(bad):
    """The driver checks the word never starts and `done` comes with `error`."""
    run = simulate_controller(CONFIG, [*START, bad, Nop(Deps(), Unit.STORE), Finish(Deps())])
    assert run.error
    assert set(run.starts) <= {0, 1}


def test_a_unit_error_stops_the_controller():
    """The load unit raises `error` for a LOAD past the end of the inp buffer in the cycle
    after its start; the driver checks `done` and `error` follow in the next cycle. In the
    cycle the error rises the controller may still start (here the NOP behind the LOAD, as
    the modelled unit stays free), never later."""
    bad = Load(Deps(), Buffer.INP, True, CONFIG.inp_rows - 1, 2, 0)
    program = [*START, bad, Nop(Deps(), Unit.LOAD), Nop(Deps(), Unit.LOAD), Finish(Deps())]
    run = simulate_controller(CONFIG, program)
    assert run.error
    assert run.starts == {0: 1, 1: 2, 2: 3, 3: 4}


# ------------------------------------------------------------------- the tests can fail


class IgnoresComputeReady(FaultyController):
    """Starts compute instructions whenever the unit is free, hazards or not."""

    TAMPERED = frozenset({"compute__ready"})

    def tamper(self, m, inner):
        m.d.comb += inner.compute.ready.eq(self.compute.free)


@pytest.mark.parametrize(
    ("variant", "program", "error", "message"),
    [
        (ShallowQueues, random_program(5), AssertionError, r"^starts"),
        (IgnoresComputeReady, HAZARDS, UnitProtocolError, "compute started while its ready"),
    ],
)
def test_a_broken_controller_fails(variant, program, error, message):
    run = simulate_controller(CONFIG, program, controller=FaultyController(CONFIG))
    check_controller_run(program, run)  # wrapping alone is fine
    with pytest.raises(error, match=message):
        check_controller_run(
            program, simulate_controller(CONFIG, program, controller=variant(CONFIG))
        )
