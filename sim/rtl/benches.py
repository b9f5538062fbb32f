"""Entry points that build a block's Verilog once and run its cocotb bench."""

from __future__ import annotations

import json
from pathlib import Path

from verdigris.hw.array import SystolicArray
from verdigris.hw.compute_unit import ComputeUnit
from verdigris.hw.controller import ControllerWithImem
from verdigris.hw.load_unit import LoadUnit
from verdigris.hw.pe import ProcessingElement
from verdigris.hw.requant import Requantizer
from verdigris.hw.store_unit import StoreUnit
from verdigris.sim.drivers import (
    ComputeUnitDriver,
    ControllerDriver,
    LoadUnitDriver,
    StoreUnitDriver,
    UnitProtocolError,
)
from verdigris.sim.rtl.verilator import (
    RtlError,
    build_verilator,
    generate_verilog,
    run_cocotb,
    scratch_folder,
)

__all__ = [
    "run_array_bench",
    "run_compute_bench",
    "run_controller_bench",
    "run_load_bench",
    "run_pe_bench",
    "run_requant_bench",
    "run_store_bench",
]


def run_pe_bench(
    pe: ProcessingElement | None = None,
    *,
    vectors: int = 2000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run `pe_bench` on the Verilated `pe` (default: int8 x int8 -> int32); return
    (tests run, tests failed)."""
    pe = pe or ProcessingElement()
    operand_width, acc_width = pe.operand_width, pe.acc_width
    top = f"{type(pe).__name__.lower()}_{operand_width}x{operand_width}_{acc_width}"
    build = build_verilator(generate_verilog(pe, top), top, build_root=build_root)
    env = {
        "PE_OPERAND_WIDTH": str(operand_width),
        "PE_ACC_WIDTH": str(acc_width),
        "PE_VECTORS": str(vectors),
        "PE_SEED": str(seed),
    }
    return run_cocotb(build, "verdigris.sim.rtl.pe_bench", env=env, results_dir=results_dir)


def run_array_bench(
    array: SystolicArray | None = None,
    *,
    gemms: int = 40,
    cycles: int = 1000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run `array_bench` on the Verilated `array` (default: 4x4, int8 x int8 -> int32): a
    compiler-like sequence of `gemms` GEMMs and `cycles` cycles of unconstrained random
    inputs, each against `ArrayModel`. Return (tests run, tests failed)."""
    array = array or SystolicArray(4)
    dim, operand_width, acc_width = array.dim, array.operand_width, array.acc_width
    top = f"{type(array).__name__.lower()}_{dim}x{dim}_{operand_width}_{acc_width}"
    build = build_verilator(generate_verilog(array, top), top, build_root=build_root)
    env = {
        "ARRAY_DIM": str(dim),
        "ARRAY_OPERAND_WIDTH": str(operand_width),
        "ARRAY_ACC_WIDTH": str(acc_width),
        "ARRAY_GEMMS": str(gemms),
        "ARRAY_CYCLES": str(cycles),
        "ARRAY_SEED": str(seed),
    }
    return run_cocotb(build, "verdigris.sim.rtl.array_bench", env=env, results_dir=results_dir)


def run_load_bench(
    config,
    instructions,
    memory,
    *,
    dut=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
):
    """Run `load_bench` on the Verilated `dut` (default: `LoadUnit(config)`): `instructions`
    on main memory `memory`, driven and checked by `LoadUnitDriver` exactly as
    `verdigris.sim.amaranth_sim.simulate_load_unit` does. Return (buffers, timeline) as that
    function does; raise UnitProtocolError or IsaError as it does, RtlError when the bench
    could not run."""

    driver = LoadUnitDriver(config, instructions, memory)  # checks the memory image
    dut = LoadUnit(config) if dut is None else dut
    top = f"{type(dut).__name__.lower().lstrip('_')}_{config.dim}x{config.dma_bytes}"
    return _run_driver_bench(driver, dut, top, "load_bench", build_root, results_dir).result()


def run_requant_bench(
    requantizer=None,
    *,
    cycles: int = 2000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run `requant_bench` on the Verilated `requantizer` (default: 4 lanes, int32
    accumulators): `cycles` input cycles of random rows with gaps, raw rows, rounding ties and
    wrap-around, each cycle against `RequantModel`. Return (tests run, tests failed)."""

    requantizer = requantizer or Requantizer(4)
    lanes, acc_width = requantizer.lanes, requantizer.acc_width
    top = f"{type(requantizer).__name__.lower().lstrip('_')}_{lanes}x{acc_width}"
    build = build_verilator(generate_verilog(requantizer, top), top, build_root=build_root)
    env = {
        "RQ_LANES": str(lanes),
        "RQ_ACC_WIDTH": str(acc_width),
        "RQ_LATENCY": str(requantizer.LATENCY),
        "RQ_CYCLES": str(cycles),
        "RQ_SEED": str(seed),
    }
    return run_cocotb(build, "verdigris.sim.rtl.requant_bench", env=env, results_dir=results_dir)


def _run_driver_bench(driver, dut, top: str, bench: str, build_root, results_dir):
    """Build `dut`'s Verilog (module `top`) once, run the cocotb bench module `bench` with
    `driver`'s case, and return the driver restored to the bench's outcome. Raise
    UnitProtocolError as the driver did, RtlError when the bench could not run."""

    build = build_verilator(generate_verilog(dut, top), top, build_root=build_root)
    # A temporary results folder is removed after a pass and kept (and named) on a failure.
    with scratch_folder(results_dir, f"verdigris-{bench}-") as scratch:
        results = scratch.path
        case, result = results / f"{bench}_case.json", results / f"{bench}_result.json"
        result.unlink(missing_ok=True)
        case.write_text(json.dumps(driver.to_case()))
        env = {"UNIT_CASE": str(case), "UNIT_RESULT": str(result)}
        run, failed = run_cocotb(build, f"verdigris.sim.rtl.{bench}", env=env, results_dir=results)
        outcome = json.loads(result.read_text()) if result.exists() else {}
        # A protocol error is the bench's answer (the driver's exception), not its failure.
        if "protocol_error" not in outcome and ((run, failed) != (1, 0) or not outcome):
            raise RtlError(f"{bench} on {top}: {failed} of {run} tests failed (see {results})")
    if "protocol_error" in outcome:
        raise UnitProtocolError(outcome["protocol_error"])
    driver.restore(outcome)
    return driver


def run_compute_bench(
    config,
    instructions,
    inp,
    wgt,
    acc,
    *,
    dut=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
):
    """Run `compute_bench` on the Verilated `dut` (default: `ComputeUnit(config)`):
    `instructions` on buffers `inp`, `wgt` and `acc`, driven and checked by
    `ComputeUnitDriver` exactly as `verdigris.sim.amaranth_sim.simulate_compute_unit` does.
    Return a ComputeRun as that function does; raise UnitProtocolError or IsaError as it
    does, RtlError when the bench could not run."""

    driver = ComputeUnitDriver(config, instructions, inp, wgt, acc)  # checks the buffers
    dut = ComputeUnit(config) if dut is None else dut
    top = f"{type(dut).__name__.lower().lstrip('_')}_{config.dim}x{config.acc_rows}"
    return _run_driver_bench(driver, dut, top, "compute_bench", build_root, results_dir).result()


def run_store_bench(
    config,
    instructions,
    acc,
    req,
    memory,
    *,
    dut=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
):
    """Run `store_bench` on the Verilated `dut` (default: `StoreUnit(config)`):
    `instructions` with accumulator `acc`, req table `req` and main memory `memory`, driven
    and checked by `StoreUnitDriver` exactly as `simulate_store_unit` (in
    `verdigris.sim.amaranth_sim`) does. Return a StoreRun as that function does; raise
    UnitProtocolError or IsaError as it does, RtlError when the bench could not run."""

    driver = StoreUnitDriver(config, instructions, acc, req, memory)  # checks the arrays
    dut = StoreUnit(config) if dut is None else dut
    top = f"{type(dut).__name__.lower().lstrip('_')}_{config.dim}x{config.dma_bytes}"
    return _run_driver_bench(driver, dut, top, "store_bench", build_root, results_dir).result()


def run_controller_bench(
    config,
    program,
    *,
    controller=None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
):
    """Run `controller_bench` on the Verilated `ControllerWithImem` around `controller`
    (default: `Controller(config)`): `program` loaded through the host port and run, the
    units played by `ControllerDriver` exactly as `simulate_controller` (in
    `verdigris.sim.amaranth_sim`) does. Return a ControllerRun as that function does; raise
    UnitProtocolError as it does, RtlError when the bench could not run."""

    driver = ControllerDriver(config, program)  # checks the program fits
    dut = ControllerWithImem(config, controller)
    name = type(dut.controller).__name__.lower().lstrip("_")
    top = f"{name}_imem_q{config.queue_depth}x{config.instruction_capacity}"
    return _run_driver_bench(driver, dut, top, "controller_bench", build_root, results_dir).result()
