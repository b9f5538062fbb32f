"""What every block's verification shares: the driver protocol (`UnitDriver`), its two
executors (`drive_in_amaranth` for Amaranth's simulator, `run_case_with_cocotb` inside a
cocotb bench on Verilator, started by `run_driver_bench`), ordered access checks and the
bit-level helpers the models use.

A driver is cycle-by-cycle and independent of the simulator that runs it, so both executors
see the same stimulus and make the same checks. It plays everything around its block: the
buffers and main memory a unit reads and writes, or the three units the controller starts.
It checks the port contract of docs/microarchitecture.md ("The unit interface") as it goes
and raises UnitProtocolError (naming the cycle) when it is broken; it records what the block
did, and `result()` returns it for the tests to compare with the instruction simulator.

Each cycle an executor, with `read(port) -> int` giving a port's bits as an unsigned int
(a port is named as in the generated Verilog: a member of a nested interface by its path
joined with "__", such as `control__start`):

1. applies `inputs(read)` (port -> value), which reads only registered outputs;
2. lets the combinational logic settle and applies `late_inputs(read)`: the inputs that
   answer this cycle's combinational outputs (`start` after the compute unit's `ready`);
3. calls `outputs(read)` to record this cycle's outputs, with every input applied;

then the clock ticks. It stops when `done`. `INPUTS` lists every input port (zero during
reset); ports a driver does not name (a block may have more outputs) are left alone.
`to_case()` and `from_case()` carry a driver's arguments across processes as JSON,
`snapshot()` and `restore()` its outcome.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from verdigris.arch.arithmetic import wrap_int as wrap_signed
from verdigris.arch.config import AccelConfig
from verdigris.arch.cycle_model import IsaError, plan_instruction
from verdigris.arch.isa import (
    Finish,
    Instruction,
    decode,
    encode,
)

__all__ = [
    "AccessSequence",
    "UnitDriver",
    "UnitProtocolError",
    "drive_in_amaranth",
    "pack_lanes",
    "run_block_bench",
    "run_case_with_cocotb",
    "run_driver_bench",
    "run_testbench",
    "unpack_signed_lanes",
    "wrap_signed",
]


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
    """The cycle model's plan (`verdigris.arch.cycle_model.Plan`: unit, busy, latency,
    tokens) of each instruction (not FINISH) on its own, or its reason to reject it:
    ({index: plan}, {index: problem})."""
    plans, problems = {}, {}
    for index, instruction in enumerate(instructions):
        if isinstance(instruction, Finish):
            problems[index] = f"instruction {index} is a FINISH, which no unit runs"
            continue
        try:
            plans[index] = plan_instruction(config, index, instruction)
        except IsaError as error:
            problems[index] = str(error)
    return plans, problems


def unit_error(unit: str, index: int) -> IsaError:
    """What a unit driver's `result` raises after the `unit` unit raised its error status
    at instruction `index`."""
    return IsaError(f"instruction {index}: the {unit} unit raised its error status", index)


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


def drive_in_amaranth(dut, driver: UnitDriver) -> None:
    """Run `driver` against the component `dut` in Amaranth's simulator, from reset until
    the driver is done."""
    from amaranth.hdl import Value

    # Port names as in the generated Verilog: a nested member's path joined by "__".
    ports = {
        "__".join(map(str, path)): Value.cast(value)
        for path, _member, value in dut.signature.flatten(dut)
    }

    async def testbench(ctx):
        def read(name):
            port = ports[name]
            return ctx.get(port) & ((1 << len(port)) - 1)

        def apply(values):
            for name, value in values.items():
                ctx.set(ports[name], value)

        while not driver.done:
            apply(driver.inputs(read))
            apply(driver.late_inputs(read))
            driver.outputs(read)
            await ctx.tick()

    run_testbench(dut, testbench)


def run_testbench(dut, testbench) -> None:
    """Run the async `testbench` (ctx -> None) against `dut` in Amaranth's simulator, with a
    10 ns clock on its default domain, until the testbench returns."""
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def run_block_bench(
    dut,
    top: str,
    bench: str,
    env: dict[str, str],
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Build `dut`'s Verilog (module `top`) once and run the cocotb tests of the module
    `bench` (an importable name) on it with the environment `env`; (tests run, tests
    failed)."""
    from verdigris.sim.rtl.verilator import build_verilator, generate_verilog, run_cocotb

    build = build_verilator(generate_verilog(dut, top), top, build_root=build_root)
    return run_cocotb(build, bench, env=env, results_dir=results_dir)


def run_driver_bench(
    driver: UnitDriver,
    dut,
    top: str,
    bench: str,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> UnitDriver:
    """Build `dut`'s Verilog (module `top`) once, run the cocotb tests of the module `bench`
    (an importable name such as `verdigris.verify.load_unit`, whose test calls
    `run_case_with_cocotb`) with `driver`'s case, and return the driver restored to the
    bench's outcome. Raise UnitProtocolError as the driver did, RtlError when the bench could
    not run."""
    from verdigris.sim.rtl.verilator import (
        RtlError,
        build_verilator,
        generate_verilog,
        run_cocotb,
        scratch_folder,
    )

    name = bench.rsplit(".", 1)[-1]
    build = build_verilator(generate_verilog(dut, top), top, build_root=build_root)
    # A temporary results folder is removed after a pass and kept (and named) on a failure.
    with scratch_folder(results_dir, f"verdigris-{name}-") as scratch:
        results = scratch.path
        case, result = results / f"{name}_case.json", results / f"{name}_result.json"
        result.unlink(missing_ok=True)
        case.write_text(json.dumps(driver.to_case()))
        env = {"UNIT_CASE": str(case), "UNIT_RESULT": str(result)}
        run, failed = run_cocotb(build, bench, env=env, results_dir=results)
        outcome = json.loads(result.read_text()) if result.exists() else {}
        # A protocol error is the bench's answer (the driver's exception), not its failure.
        if "protocol_error" not in outcome and ((run, failed) != (1, 0) or not outcome):
            raise RtlError(f"{name} on {top}: {failed} of {run} tests failed (see {results})")
    if "protocol_error" in outcome:
        raise UnitProtocolError(outcome["protocol_error"])
    driver.restore(outcome)
    return driver
