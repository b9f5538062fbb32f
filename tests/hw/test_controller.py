# amaranth: UnusedElaboratable=no
"""The controller in Amaranth's simulator, with the units played by a testbench that follows
docs/isa.md's busy/latency table: every instruction must start in the same cycle as in the
instruction simulator, and the cycle, busy and stall counts must equal its Activity."""

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from verdigris.arch.isa import Deps, Finish, Gemm, Nop, Unit, Vector, encode
from verdigris.hw.controller import UNIT_NAMES, Controller
from verdigris.sim.isasim import _plan_program, run_instructions

from ..sim.test_isasim import CONFIG, memory_with, random_instruction, serial


class _Top(Elaboratable):
    """Controller plus an instruction memory holding `program`."""

    def __init__(self, program):
        self.controller = Controller(CONFIG)
        words = [encode(i) for i in program]
        self.memory = Memory(shape=128, depth=CONFIG.instruction_capacity, init=words)

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = ctl = self.controller
        m.submodules.imem = self.memory
        port = self.memory.read_port()
        m.d.comb += [
            port.addr.eq(ctl.imem_addr),
            port.en.eq(ctl.imem_en),
            ctl.imem_data.eq(port.data),
        ]
        return m


def simulate(program):
    """Run `program` (ending in FINISH) on the controller; (starts, cycles, busy, stall)."""
    plans = _plan_program(CONFIG, program)
    by_unit = {unit: [p for p in plans if p.unit == unit] for unit in Unit}
    top = _Top(program)
    ctl = top.controller
    result = {}

    async def testbench(ctx):
        ctx.set(ctl.run, 1)
        await ctx.tick()
        ctx.set(ctl.run, 0)
        started = {unit: 0 for unit in Unit}
        free_at = dict.fromkeys(Unit, 0)
        completions: dict[int, list] = {}
        drained_at = 0
        swapped_at, swap_pending = -(10**9), False
        starts = {}
        t = 0
        while not ctx.get(ctl.done):
            assert t < 5000, "the controller did not finish"
            pushes = {(u, f): 0 for u in Unit for f in ("prev", "next")}
            for plan in completions.get(t, []):
                deps = plan.instruction.deps
                pushes[(plan.unit, "prev")] += deps.push_prev
                pushes[(plan.unit, "next")] += deps.push_next
            for unit, name in zip(Unit, UNIT_NAMES, strict=True):
                free = free_at[unit] <= t
                ready = free
                if unit == Unit.COMPUTE and started[unit] < len(by_unit[unit]) and free:
                    head = by_unit[unit][started[unit]]
                    if isinstance(head.instruction, Vector) and drained_at > t:
                        ready = False
                    if head.loads_weights and t < swapped_at + CONFIG.dim:
                        ready = False
                ctx.set(getattr(ctl, f"{name}_free"), free)
                ctx.set(getattr(ctl, f"{name}_ready"), ready)
                ctx.set(getattr(ctl, f"{name}_push_prev"), pushes[(unit, "prev")])
                ctx.set(getattr(ctl, f"{name}_push_next"), pushes[(unit, "next")])
                in_flight = any(
                    c > t and any(p.unit == unit for p in ps) for c, ps in completions.items()
                )
                ctx.set(getattr(ctl, f"{name}_in_flight"), in_flight)
            for unit, name in zip(Unit, UNIT_NAMES, strict=True):
                if ctx.get(getattr(ctl, f"{name}_start")):
                    plan = by_unit[unit][started[unit]]
                    assert ctx.get(getattr(ctl, f"{name}_instr")) == encode(plan.instruction)
                    started[unit] += 1
                    starts[plan.index] = t
                    free_at[unit] = t + plan.busy
                    done = t + plan.busy + plan.latency
                    completions.setdefault(done, []).append(plan)
                    if plan.uses_array:
                        drained_at = done
                    if plan.streams and (plan.loads_weights or swap_pending):
                        swapped_at = t + (CONFIG.dim if plan.loads_weights else 0)
                        swap_pending = False
                    elif plan.loads_weights:
                        swap_pending = True
            await ctx.tick()
            t += 1
        result["starts"] = starts
        result["cycles"] = ctx.get(ctl.cycles)
        result["error"] = ctx.get(ctl.error)
        result["busy"] = {n: ctx.get(getattr(ctl, f"{n}_busy_cycles")) for n in UNIT_NAMES}
        result["stall"] = {n: ctx.get(getattr(ctl, f"{n}_stall_cycles")) for n in UNIT_NAMES}

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result


def _expected(program):
    """isasim's start cycle of every instruction, and its Activity."""
    timeline = np.full((len(program), 2), -1, np.int64)
    _, activity = run_instructions(CONFIG, program, memory_with(), timeline=timeline)
    return {i: int(start) for i, (start, _) in enumerate(timeline) if start >= 0}, activity


@pytest.mark.parametrize("seed", range(12))
def test_starts_and_counters_match_the_instruction_simulator(seed):
    rng = random.Random(seed)
    program = [random_instruction(rng) for _ in range(rng.randint(1, 24))]
    if rng.random() < 0.75:
        program = serial(program)
    program = [*program, Finish(Deps())]
    starts, activity = _expected(program)
    got = simulate(program)
    assert not got["error"]
    assert got["starts"] == starts
    assert got["cycles"] == activity.cycles
    assert got["busy"] == activity.busy
    assert got["stall"] == activity.stall


def test_finish_only_takes_one_cycle():
    assert simulate([Finish(Deps())])["cycles"] == 1


def test_weight_swap_and_vector_hazards():
    program = [
        Gemm(Deps(), True, False, 0, 0, 0, 1),
        Gemm(Deps(), True, True, 0, 0, 0, 1),
        Vector(Deps(), 1, 0, 0, 2),
        Nop(Deps(push_next=True), Unit.COMPUTE),
        Finish(Deps()),
    ]
    starts, activity = _expected(program)
    got = simulate(program)
    assert got["starts"] == starts and got["cycles"] == activity.cycles
