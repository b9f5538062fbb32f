"""The controller's verification (`verdigris.hw.controller.Controller` with its instruction
memory, `ControllerWithImem`, which `Core` also builds on): `ControllerDriver`, which loads
a program, plays the three units by the cycle model and checks the controller's starts and
counters against the instruction simulator; `simulate_controller` (Amaranth's simulator);
`run_controller_bench` (Verilator under cocotb) and the cocotb test it runs, in this module
(see `verdigris.verify.protocol`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cocotb

from verdigris.arch.config import AccelConfig
from verdigris.arch.cycle_model import ComputeHazards
from verdigris.arch.isa import (
    Finish,
    Instruction,
    Nop,
    Unit,
    encode,
)
from verdigris.hw.controller import UNIT_NAMES, ControllerWithImem
from verdigris.verify.protocol import (
    UnitDriver,
    UnitProtocolError,
    drive_in_amaranth,
    from_hex,
    plan_each,
    run_case_with_cocotb,
    run_driver_bench,
    words_hex,
)

__all__ = ["ControllerDriver", "ControllerRun", "run_controller_bench", "simulate_controller"]


@dataclass(frozen=True)
class ControllerRun:
    """What a controller did: each started instruction's start cycle by program index (cycle
    0 is the cycle after `run`), its counters when `done` rose, and `error`."""

    starts: dict[int, int]
    cycles: int
    busy: dict[str, int]
    stall: dict[str, int]
    instructions: dict[str, int]
    error: bool


def _unit_of(instruction: Instruction) -> Unit | None:
    """The unit whose queue an instruction goes to; None for FINISH and a NOP target 3."""
    if isinstance(instruction, Nop):
        return Unit(instruction.target) if instruction.target in tuple(Unit) else None
    return instruction.UNIT


_UNIT_INPUTS = ("ready", "free", "push_prev", "push_next", "in_flight", "error")


class ControllerDriver(UnitDriver):
    """Loads `program` (ending in FINISH) into a ControllerWithImem through its host port,
    one word per cycle, strobes `run`, and from the cycle after (cycle 0) plays the three
    units as docs/isa.md's cycle model has them: an instruction started in cycle s with busy
    b and latency l keeps its unit's `free` low until s+b and completes in s+b+l, its push
    counts on the unit's ports then; `in_flight` while a started one completes later; the
    compute unit's `ready` adds the hazard rule of `verdigris.arch.cycle_model.ComputeHazards`
    (a VECTOR waits until every GEMM and VECTOR has completed) and its early weight load (a
    GEMM that loads weights and streams may start up to min(`dim`, rows) cycles before the
    GEMM before it ends).

    Checks: nothing starts before cycle 0; a unit starts only while its `ready` is high, and
    then the next instruction of its own in program order, with that word on its `instr`.
    An instruction the instruction simulator rejects (a range, elems or flag error) makes
    its unit raise `error` from the cycle after its start, and the controller must stop
    (`done` with `error`) one cycle later. A word without a unit (NOP target 3, FINISH with
    flags) stops fetch: it must never start, and the controller must end with `error`.
    Without either, `done` must come without `error` and with every instruction started.
    `result` gives the starts and the counters read at `done`.
    """

    INPUTS = (
        "run",
        "imem_addr",
        "imem_wdata",
        "imem_we",
        *(f"{unit}__{port}" for unit in UNIT_NAMES for port in _UNIT_INPUTS),
    )

    def __init__(self, config: AccelConfig, program):
        self.config, self.program = config, list(program)
        if len(self.program) > config.instruction_capacity:
            raise ValueError(
                f"a program of {len(self.program)} instructions does not fit the instruction "
                f"memory ({config.instruction_capacity})"
            )
        self.words = [encode(i) for i in self.program]
        # What fetch queues: every instruction up to the first FINISH, or up to a word with
        # no unit (`fetch_error`), where fetch stops with `error`.
        self.queues = {unit: [] for unit in Unit}
        self.fetch_error = None
        for index, instruction in enumerate(self.program):
            unit = _unit_of(instruction)
            if unit is None:
                if instruction.deps.bits() or not isinstance(instruction, Finish):
                    self.fetch_error = index
                break
            self.queues[unit].append(index)
        else:
            raise ValueError("the program has no FINISH")
        self.plans, _ = plan_each(config, self.program[:index])  # no plan: illegal
        self.started = dict.fromkeys(Unit, 0)
        self.free_at = dict.fromkeys(Unit, 0)
        self.completions: list[tuple[int, object]] = []  # (cycle, plan)
        self.hazards = ComputeHazards(config.dim)
        self.ready = dict.fromkeys(Unit, False)
        self.starts: dict[int, int] = {}
        self.error_from = None  # the cycle a unit raised `error` in
        self.error_unit = None
        self.counters = {}
        self.base = len(self.words) + 1  # cycle 0: loading, then the `run` strobe
        self.limit = 64 + sum(p.busy + p.latency + 2 for p in self.plans.values())
        self.cycle = 0
        self.done = False

    # -- JSON across processes

    def to_case(self) -> dict:
        return {"config": self.config.to_dict(), "program": words_hex(self.program)}

    @classmethod
    def from_case(cls, case: dict) -> ControllerDriver:
        return cls(AccelConfig.from_dict(case["config"]), from_hex(case["program"]))

    def snapshot(self) -> dict:
        return {"starts": {str(i): t for i, t in self.starts.items()}, **self.counters}

    def restore(self, snapshot: dict) -> None:
        self.starts = {int(i): t for i, t in snapshot["starts"].items()}
        self.counters = {k: v for k, v in snapshot.items() if k != "starts"}

    def result(self) -> ControllerRun:
        return ControllerRun(starts=dict(self.starts), **self.counters)

    # -- the cycle

    def _broken(self, message: str):
        raise UnitProtocolError(f"cycle {self.cycle - self.base}: {message}")

    def _idle(self) -> dict[str, int]:
        return dict.fromkeys(self.INPUTS, 0)

    def inputs(self, read) -> dict[str, int]:
        values = self._idle()
        if self.cycle < len(self.words):
            values |= {
                "imem_we": 1,
                "imem_addr": self.cycle,
                "imem_wdata": self.words[self.cycle],
            }
            return values
        if self.cycle == len(self.words):
            return values | {"run": 1}
        t = self.cycle - self.base
        if read("done"):
            self._stopped(t, read)
            return values
        if t > self.limit:
            self._broken(f"the controller did not finish within {self.limit} cycles")
        if self.error_from is not None and t > self.error_from:
            self._broken(f"did not stop in the cycle after a unit raised error (in {t - 1})")
        for unit, name in zip(Unit, UNIT_NAMES, strict=True):
            free = self.free_at[unit] <= t
            ready = free
            queue = self.queues[unit]
            if unit == Unit.COMPUTE and self.started[unit] < len(queue):
                plan = self.plans.get(queue[self.started[unit]])
                if plan is not None:  # the hazard rules and the early weight load
                    early = self.hazards.free_for(plan, self.free_at[unit])
                    ready = t >= early and not self.hazards.waits(plan, t)
            self.ready[unit] = ready
            pushes = [0, 0]
            in_flight = False
            for completion, plan in self.completions:
                if plan.unit != unit:
                    continue
                if completion == t:
                    pushes[0] += plan.instruction.deps.push_prev
                    pushes[1] += plan.instruction.deps.push_next
                in_flight |= completion > t
            error = self.error_unit == unit and t >= self.error_from
            values |= {
                f"{name}__ready": int(ready),
                f"{name}__free": int(free),
                f"{name}__push_prev": pushes[0],
                f"{name}__push_next": pushes[1],
                f"{name}__in_flight": int(in_flight),
                f"{name}__error": int(error),
            }
        return values

    def _stopped(self, _t: int, read) -> None:
        error = bool(read("error"))
        if error and self.error_from is None and self.fetch_error is None:
            self._broken("error without an illegal instruction")
        if not error:
            if self.error_from is not None:
                self._broken("done without error after a unit raised error")
            if self.fetch_error is not None:
                index = self.fetch_error
                self._broken(f"done without error, but instruction {index} is illegal")
            left = [u.name for u in Unit if self.started[u] < len(self.queues[u])]
            if left:
                self._broken(f"done with instructions of {', '.join(left)} never started")
        self.counters = {
            "cycles": read("cycles"),
            "busy": {name: read(f"perf__{name}__busy_cycles") for name in UNIT_NAMES},
            "stall": {name: read(f"perf__{name}__stall_cycles") for name in UNIT_NAMES},
            "instructions": {name: read(f"perf__{name}__instructions") for name in UNIT_NAMES},
            "error": error,
        }
        self.done = True

    def outputs(self, read) -> None:
        t = self.cycle - self.base
        for unit, name in zip(Unit, UNIT_NAMES, strict=True):
            if self.done or not read(f"{name}__start"):
                continue
            if t < 0:
                self._broken(f"{name} started before run")
            if not self.ready[unit]:
                self._broken(f"{name} started while its ready is low")
            queue = self.queues[unit]
            if self.started[unit] == len(queue):
                self._broken(f"{name} started with no instruction of its own left")
            index = queue[self.started[unit]]
            word = read(f"{name}__instr")
            if word != self.words[index]:
                self._broken(f"{name} started {word:#x}, not instruction {index}")
            self.started[unit] += 1
            self.starts[index] = t
            plan = self.plans.get(index)
            if plan is None:  # its unit rejects it (and the controller stops)
                if self.error_from is None:
                    self.error_from, self.error_unit = t + 1, unit
                continue
            self.free_at[unit] = t + plan.busy
            completion = t + plan.busy + plan.latency
            self.completions.append((completion, plan))
            self.hazards.started(plan, t)
        self.cycle += 1


def simulate_controller(config: AccelConfig, program, *, controller=None) -> ControllerRun:
    """Load `program` (ending in FINISH) into a `ControllerWithImem`, run it, and play the
    three units with `ControllerDriver`. Return a ControllerRun (start cycle of every
    started instruction, counters, error); raise UnitProtocolError when the controller broke
    the contract. `controller` replaces the default `Controller(config)` (a variant with the
    same ports)."""
    driver = ControllerDriver(config, program)
    drive_in_amaranth(ControllerWithImem(config, controller), driver)
    return driver.result()


def run_controller_bench(
    config: AccelConfig,
    program,
    *,
    controller=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> ControllerRun:
    """Run this module's cocotb test on the Verilated `ControllerWithImem` around
    `controller` (default: `Controller(config)`): `program` loaded through the host port and
    run, the units played by `ControllerDriver` exactly as `simulate_controller` does. Return
    a ControllerRun as that function does; raise UnitProtocolError as it does, RtlError when
    the bench could not run."""
    driver = ControllerDriver(config, program)  # checks the program fits
    dut = ControllerWithImem(config, controller)
    name = type(dut.controller).__name__.lower().lstrip("_")
    top = f"{name}_imem_q{config.queue_depth}x{config.instruction_capacity}"
    return run_driver_bench(driver, dut, top, __name__, build_root, results_dir).result()


@cocotb.test()
async def controller_runs_the_case(dut):
    """The Verilated ControllerWithImem driven by `ControllerDriver`, which loads the program
    and plays the units; the case comes from UNIT_CASE (`ControllerDriver.to_case`), the
    snapshot or protocol violation goes to UNIT_RESULT."""
    await run_case_with_cocotb(dut, ControllerDriver)
