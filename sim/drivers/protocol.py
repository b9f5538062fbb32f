"""What every block driver shares: the cycle protocol (`UnitDriver`), ordered access
checks, and the cocotb loop that runs any driver on a Verilated block."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    Deps,
    Finish,
    Instruction,
    decode,
    encode,
)
from verdigris.sim.isasim import IsaError, _plan_program


class UnitProtocolError(RuntimeError):
    """A block broke the port contract of docs/microarchitecture.md ("The unit interface")."""


_POISON_BYTE = 0xA5  # what a read port shows in a cycle after no request


def poison(bits: int) -> int:
    return int.from_bytes(bytes([_POISON_BYTE]) * (bits // 8), "little")


def pack_lanes(values, width: int) -> int:
    """Lane i of `values` at bits [i*width, (i+1)*width), as an array port holds it."""
    mask = (1 << width) - 1
    return sum((int(v) & mask) << (i * width) for i, v in enumerate(values))


def unpack_signed_lanes(bits: int, width: int, lanes: int) -> list[int]:
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    return [(((bits >> (i * width)) & mask) ^ sign) - sign for i in range(lanes)]


def plan_each(config: AccelConfig, instructions) -> tuple[dict, dict]:
    """The instruction simulator's plan (unit, busy, latency, tokens) of each instruction
    (not FINISH) on its own, or its reason to reject it: ({index: plan}, {index: problem})."""
    plans, problems = {}, {}
    for index, instruction in enumerate(instructions):
        if isinstance(instruction, Finish):
            problems[index] = f"instruction {index} is a FINISH, which no unit runs"
            continue
        try:
            [plan] = _plan_program(config, [instruction, Finish(Deps())])
        except IsaError as error:
            problems[index] = str(error).replace("instruction 0", f"instruction {index}", 1)
        else:
            plans[index] = replace(plan, index=index)
    return plans, problems


def words_hex(instructions) -> list[str]:
    return [f"{encode(i):x}" for i in instructions]


def from_hex(words) -> list[Instruction]:
    return [decode(int(word, 16)) for word in words]


class UnitDriver:
    """What every driver shares; see the module docstring for the protocol."""

    INPUTS: tuple[str, ...] = ()
    QUIET_CYCLES = 4  # cycles a unit is watched after it raised `error`

    cycle: int  # cycles since reset
    done: bool
    running: int | None = None  # the instruction a message names, if any

    def inputs(self, read) -> dict[str, int]:
        """This cycle's inputs that depend on registered outputs only."""
        raise NotImplementedError

    def late_inputs(self, read) -> dict[str, int]:  # noqa: ARG002 (overrides read it)
        """This cycle's inputs that answer its combinational outputs (none by default)."""
        return {}

    def outputs(self, read) -> None:
        """Record and check this cycle's outputs; the clock then ticks."""
        raise NotImplementedError

    def to_case(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_case(cls, case: dict) -> UnitDriver:
        raise NotImplementedError

    def snapshot(self) -> dict:
        raise NotImplementedError

    def restore(self, snapshot: dict) -> None:
        raise NotImplementedError

    def _broken(self, message: str):
        where = "" if self.running is None else f" (instruction {self.running})"
        raise UnitProtocolError(f"cycle {self.cycle}{where}: {message}")


class AccessSequence:
    """The accesses a port must see, in order, each tagged with the instruction making it:
    (instruction index, row or word). `take` checks the next one."""

    def __init__(self, name: str, expected: list[tuple[int, int]]):
        self.name, self.expected, self.position = name, expected, 0
        self.ends: dict[int, int] = {}  # index -> position after its last access
        for position, (index, _) in enumerate(expected):
            self.ends[index] = position + 1

    def take(self, driver: UnitDriver, value: int, window) -> int:
        """The index of the instruction whose access `value` is; `window(index)` says whether
        that instruction may access now."""
        if self.position == len(self.expected):
            driver._broken(f"{self.name} {value} accessed with no access left to make")
        index, want = self.expected[self.position]
        if value != want:
            driver._broken(f"{self.name} {value} accessed, not {want} (instruction {index})")
        if not window(index):
            driver._broken(f"{self.name} {value} of instruction {index} outside its run")
        self.position += 1
        return index

    def finished(self, index: int) -> bool:
        return self.position >= self.ends.get(index, 0)


async def run_case_with_cocotb(dut, driver_class: type[UnitDriver]) -> None:
    """The body of a cocotb bench: a `driver_class` from the JSON case in $UNIT_CASE drives
    `dut` from reset (a 10 ns clock on `clk`, `rst` high for the first cycle); its snapshot, or
    the protocol violation that stopped it, goes to $UNIT_RESULT."""
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

    case = json.loads(Path(os.environ["UNIT_CASE"]).read_text())
    result = Path(os.environ["UNIT_RESULT"])
    driver = driver_class.from_case(case)
    handles = {}

    def handle(name):
        if name not in handles:
            handles[name] = getattr(dut, name)
        return handles[name]

    def read(name: str) -> int:
        return int(handle(name).value)

    def apply(values: dict[str, int]) -> None:
        for name, value in values.items():
            handle(name).value = value

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    apply(dict.fromkeys(driver.INPUTS, 0))
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    try:
        # Registered outputs are settled at the falling edge; the inputs applied there reach
        # the combinational outputs 1 ns later, and the late inputs by ReadOnly.
        while not driver.done:
            apply(driver.inputs(read))
            await Timer(1, unit="ns")
            apply(driver.late_inputs(read))
            await ReadOnly()
            driver.outputs(read)
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
    except UnitProtocolError as error:
        result.write_text(json.dumps({"protocol_error": str(error)}))
        raise
    result.write_text(json.dumps(driver.snapshot()))
    dut._log.info("%s: %d cycles", driver_class.__name__, driver.cycle)
