"""Runs single hardware blocks in Amaranth's own simulator (fast, no C++ build)."""

from __future__ import annotations

from amaranth.sim import Simulator

from verdigris.hw.array import SystolicArray
from verdigris.hw.pe import ProcessingElement
from verdigris.sim.blockmodels import ArrayInputs, ArrayOutputs, PEInputs, PEOutputs

__all__ = [
    "drive_in_amaranth",
    "simulate_array",
    "simulate_compute_unit",
    "simulate_controller",
    "simulate_load_unit",
    "simulate_pe",
    "simulate_store_unit",
]


def simulate_pe(
    inputs: list[PEInputs], *, operand_width: int = 8, acc_width: int = 32
) -> list[PEOutputs]:
    """Apply `inputs` to a ProcessingElement one per clock; return its outputs after each edge."""
    dut = ProcessingElement(operand_width=operand_width, acc_width=acc_width)
    outputs: list[PEOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            ctx.set(dut.a_in, step.a_in)
            ctx.set(dut.psum_in, step.psum_in)
            ctx.set(dut.w_in, step.w_in)
            ctx.set(dut.w_load, step.w_load)
            await ctx.tick()
            outputs.append(
                PEOutputs(
                    a_out=ctx.get(dut.a_out),
                    psum_out=ctx.get(dut.psum_out),
                    w_out=ctx.get(dut.w_out),
                    a_zero=bool(ctx.get(dut.a_zero)),
                )
            )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs


def simulate_array(
    dim: int,
    inputs: list[ArrayInputs],
    *,
    operand_width: int = 8,
    acc_width: int = 32,
    dut: SystolicArray | None = None,
) -> list[ArrayOutputs]:
    """Apply `inputs[t]` to a SystolicArray in cycle t, from reset; return its outputs in each
    cycle (`p_data` only while `p_valid`, as `ArrayModel` gives them).

    `dut` replaces the default `SystolicArray(dim, ...)` (a variant with the same ports and
    parameters)."""
    if dut is None:
        dut = SystolicArray(dim, operand_width=operand_width, acc_width=acc_width)
    elif (dut.dim, dut.operand_width, dut.acc_width) != (dim, operand_width, acc_width):
        raise ValueError(
            f"dut has dim {dut.dim}, operand_width {dut.operand_width} and acc_width "
            f"{dut.acc_width}, not {dim}, {operand_width} and {acc_width}"
        )
    zeros = [0] * dim
    outputs: list[ArrayOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            ctx.set(dut.w_en, step.w_en)
            ctx.set(dut.w_row, step.w_row)
            ctx.set(dut.w_data, list(step.w_data) or zeros)
            ctx.set(dut.a_valid, step.a_valid)
            ctx.set(dut.a_data, list(step.a_data) or zeros)
            ctx.set(dut.a_swap, step.a_swap)
            # Every output is a register, so these are this cycle's values.
            p_valid = bool(ctx.get(dut.p_valid))
            p_data = ctx.get(dut.p_data)
            outputs.append(
                ArrayOutputs(
                    p_valid=p_valid,
                    p_data=tuple(p_data[c] for c in range(dim)) if p_valid else (),
                    zero_count=ctx.get(dut.zero_count),
                )
            )
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs


def drive_in_amaranth(dut, driver) -> None:
    """Run `driver` (a `verdigris.sim.drivers.UnitDriver`) against the component `dut`
    in Amaranth's simulator, from reset until the driver is done."""
    from amaranth.hdl import Value

    ports = {name: Value.cast(getattr(dut, name)) for name in dut.signature.members}

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

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def simulate_load_unit(config, instructions, memory, *, dut=None):
    """Run `instructions` (LOADs and NOPs for the load unit) on a LoadUnit from reset, each
    started in the first cycle in which `free` is high (the first in cycle 0), with
    `LoadUnitDriver` serving main memory (`memory`, uint8 of `main_memory_bytes`) and
    checking the port contract (UnitProtocolError when broken).

    Returns (buffers, timeline): the final buffers as `verdigris.sim.isasim` holds them, int64
    arrays keyed by `Buffer` of (rows, dim) for inp, wgt and acc and (rows, dim, 6) requant
    fields (bias, multiplier, shift, zero_point, qmin, qmax) for the req table; the timeline
    an int64 array (len(instructions), 2) of start and completion cycles. Raises IsaError
    naming the instruction when the unit raised its error status (and then stayed stopped).
    `dut` replaces the default `LoadUnit(config)` (a variant with the same ports).
    """
    from verdigris.hw.load_unit import LoadUnit
    from verdigris.sim.drivers import LoadUnitDriver

    driver = LoadUnitDriver(config, instructions, memory)
    drive_in_amaranth(LoadUnit(config) if dut is None else dut, driver)
    return driver.result()


def simulate_compute_unit(config, instructions, inp, wgt, acc, *, dut=None):
    """Run `instructions` (GEMM, VECTOR, NOP) on a ComputeUnit from reset, driven and checked
    by `ComputeUnitDriver` with buffers `inp`, `wgt` and `acc` ((rows, dim) int arrays).
    Return a ComputeRun (final accumulator, timeline of start and completion cycles,
    counters); raise IsaError naming the instruction when the unit raised its error status,
    UnitProtocolError when it broke the port contract. `dut` replaces the default
    `ComputeUnit(config)` (a variant with the same ports)."""
    from verdigris.hw.compute_unit import ComputeUnit
    from verdigris.sim.drivers import ComputeUnitDriver

    driver = ComputeUnitDriver(config, instructions, inp, wgt, acc)
    drive_in_amaranth(ComputeUnit(config) if dut is None else dut, driver)
    return driver.result()


def simulate_store_unit(config, instructions, acc, req, memory, *, dut=None):
    """Run `instructions` (STOREs and NOPs) on a StoreUnit from reset, driven and checked by
    `StoreUnitDriver` with the accumulator `acc` ((acc_rows, dim) int), the req table `req`
    ((req_rows, dim, 6) fields) and main memory `memory` (uint8). Return a StoreRun (final
    main memory, timeline); raise IsaError naming the instruction when the unit raised its
    error status, UnitProtocolError when it broke the port contract. `dut` replaces the
    default `StoreUnit(config)` (a variant with the same ports)."""
    from verdigris.hw.store_unit import StoreUnit
    from verdigris.sim.drivers import StoreUnitDriver

    driver = StoreUnitDriver(config, instructions, acc, req, memory)
    drive_in_amaranth(StoreUnit(config) if dut is None else dut, driver)
    return driver.result()


def simulate_controller(config, program, *, controller=None):
    """Load `program` (ending in FINISH) into a `ControllerWithImem`, run it, and play the
    three units with `ControllerDriver`. Return a ControllerRun (start cycle of every
    started instruction, counters, error); raise UnitProtocolError when the controller broke
    the contract. `controller` replaces the default `Controller(config)` (a variant with the
    same ports)."""
    from verdigris.hw.controller import ControllerWithImem
    from verdigris.sim.drivers import ControllerDriver

    driver = ControllerDriver(config, program)
    drive_in_amaranth(ControllerWithImem(config, controller), driver)
    return driver.result()
