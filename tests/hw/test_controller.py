# amaranth: UnusedElaboratable=no
"""The controller in Amaranth's simulator, with its instruction memory (`ControllerWithImem`)
and the units played by `ControllerDriver` as docs/isa.md's busy/latency table has them:
every instruction must start in the same cycle as in the instruction simulator, and the
cycle, busy, stall and instruction counts must equal its Activity. An illegal instruction
must stop the controller with `error`."""

import random
from dataclasses import replace

import numpy as np
import pytest

from verdigris.arch.isa import Buffer, Deps, Finish, Gemm, Load, Nop, Unit, Vector
from verdigris.hw.controller import Controller
from verdigris.sim.amaranth_sim import simulate_controller
from verdigris.sim.drivers import UnitProtocolError
from verdigris.sim.isasim import run_instructions

from ..sim.test_isasim import CONFIG, memory_with, random_instruction, serial
from .faults import faulty


def expected(program):
    """isasim's start cycle of every instruction, and its Activity."""
    timeline = np.full((len(program), 2), -1, np.int64)
    _, activity = run_instructions(CONFIG, program, memory_with(), timeline=timeline)
    return {i: int(start) for i, (start, _) in enumerate(timeline) if start >= 0}, activity


def random_program(seed: int) -> list:
    rng = random.Random(seed)
    program = [random_instruction(rng) for _ in range(rng.randint(1, 24))]
    if rng.random() < 0.75:
        program = serial(program)
    return [*program, Finish(Deps())]


def check_controller_run(program, run) -> None:
    """Assert a ControllerRun's starts and counters equal the instruction simulator's."""
    starts, activity = expected(program)
    assert not run.error, "error"
    assert run.starts == starts, "starts"
    assert run.cycles == activity.cycles, "cycles"
    assert run.busy == activity.busy, "busy"
    assert run.stall == activity.stall, "stall"
    assert run.instructions == activity.instructions, "instructions"


@pytest.mark.parametrize("seed", range(12))
def test_starts_and_counters_match_the_instruction_simulator(seed):
    program = random_program(seed)
    check_controller_run(program, simulate_controller(CONFIG, program))


def test_finish_only_takes_one_cycle():
    assert simulate_controller(CONFIG, [Finish(Deps())]).cycles == 1


HAZARDS = [
    Gemm(Deps(), True, False, 0, 0, 0, 1),
    Gemm(Deps(), True, True, 0, 0, 0, 1),
    Vector(Deps(), 1, 0, 0, 2),
    Nop(Deps(push_next=True), Unit.COMPUTE),
    Finish(Deps()),
]


def test_weight_swap_and_vector_hazards():
    check_controller_run(HAZARDS, simulate_controller(CONFIG, HAZARDS))


# -------------------------------------------------------------------------------- errors

START = [Nop(Deps(), Unit.LOAD), Gemm(Deps(), True, False, 0, 0, 0, 2)]


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


_Wrapped = faulty(Controller)


class ShallowQueues(_Wrapped):
    """Queues of two entries where the config says four: fetch stalls sooner."""

    def inner_config(self):
        return replace(self.config, queue_depth=2)


class IgnoresComputeReady(_Wrapped):
    """Starts compute instructions whenever the unit is free, hazards or not."""

    TAMPERED = frozenset({"compute_ready"})

    def tamper(self, m, inner):
        m.d.comb += inner.compute_ready.eq(self.compute_free)


@pytest.mark.parametrize(
    ("variant", "program", "error", "message"),
    [
        (ShallowQueues, random_program(5), AssertionError, r"^starts"),
        (IgnoresComputeReady, HAZARDS, UnitProtocolError, "compute started while its ready"),
    ],
)
def test_a_broken_controller_fails(variant, program, error, message):
    run = simulate_controller(CONFIG, program, controller=_Wrapped(CONFIG))
    check_controller_run(program, run)  # wrapping alone is fine
    with pytest.raises(error, match=message):
        check_controller_run(
            program, simulate_controller(CONFIG, program, controller=variant(CONFIG))
        )
