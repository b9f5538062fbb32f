"""What the controller's tests in Amaranth's simulator (tests/hw) and on Verilator (tests/rtl)
share: random programs, the hazard program, the check of a run against the instruction
simulator and a faulty controller."""

import random
from dataclasses import replace

import numpy as np

from tests.support.faults import faulty
from tests.support.programs import CONFIG, memory_with, random_instruction, serial
from verdigris.arch.isa import Deps, Finish, Gemm, Nop, Unit, Vector
from verdigris.hw.controller import Controller
from verdigris.sim.isasim import run_instructions


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


HAZARDS = [
    Gemm(Deps(), True, False, 0, 0, 0, 1),
    Gemm(Deps(), True, True, 0, 0, 0, 1),
    Vector(Deps(), 1, 0, 0, 2),
    Nop(Deps(push_next=True), Unit.COMPUTE),
    Finish(Deps()),
]


START = [Nop(Deps(), Unit.LOAD), Gemm(Deps(), True, False, 0, 0, 0, 2)]


FaultyController = faulty(Controller)


class ShallowQueues(FaultyController):
    """Queues of two entries where the config says four: fetch stalls sooner."""

    def inner_config(self):
        return replace(self.config, queue_depth=2)
