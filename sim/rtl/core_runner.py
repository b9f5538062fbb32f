"""Run Programs on the Verilated core (through cocotb or a C++ harness) and return outputs
and Activity.

The core for a config is built once and cached under its identity (design class and
config) and the design's sources, so a cached core starts without generating Verilog; many
Programs then run in one simulator process (`core_bench.run_jobs`, or the harness).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verdigris.arch.activity import UNITS, Activity
from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import ELEMENT_BYTES, Buffer, Load, Store, encode_program
from verdigris.arch.program import Program, pack_tensor, unpack_tensor
from verdigris.hw.core import BYTE_COUNTERS, COUNTERS, Core
from verdigris.hw.core_top import INPUT_LATENCY, CoreTop
from verdigris.sim.rtl.verilator import (
    BuildProgress,
    RtlBuild,
    RtlError,
    _ending_signals_as_exception,
    build_harness,
    build_verilator,
    generate_verilog,
    run_cocotb,
    scratch_folder,
)

__all__ = ["RtlResult", "build_core", "run_fast", "run_on_rtl"]

HARNESS = Path(__file__).with_name("harness.cpp")
# Without an expected cycle count, a run may take this long before the watchdog stops it.
DEFAULT_WATCHDOG_CYCLES = 10_000_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RtlResult:
    outputs: dict[str, np.ndarray]
    activity: Activity
    error: bool
    seconds: float  # wall time from start to done (the simulator alone, no Python stepping)


def build_core(config: AccelConfig, *, build_root: Path | None = None) -> RtlBuild:
    """The core of `config` (`CoreTop`) built for cocotb, or the cached build."""
    top = f"core_{config.name}"
    verilog, identity = _core_design(config, top)
    return build_verilator(verilog, top, identity=identity, build_root=build_root)


def _core_design(
    config: AccelConfig, top: str, *, bare_core: bool = False
) -> tuple[Callable[[], str], str]:
    """How to generate the core's Verilog (called only when a build is needed), and what
    identifies it without generating it: the design's class and config."""
    design = Core if bare_core else CoreTop
    identity = {"design": f"{design.__module__}.{design.__qualname__}", **config.to_dict()}
    return lambda: generate_verilog(design(config), top), json.dumps(identity, sort_keys=True)


def _extent(program: Program) -> int:
    """One past the highest main-memory byte the program reads or writes."""
    ends = [segment.addr + len(segment.data) for segment in program.segments]
    ends += [b.dram_addr + b.nbytes for b in (*program.inputs, *program.outputs)]
    for ins in program.instructions:
        if isinstance(ins, Load) and not ins.fill and ins.rows:
            element = ELEMENT_BYTES[Buffer(ins.buffer)]
        elif isinstance(ins, Store) and ins.rows:
            element = 4 if ins.raw else 1
        else:
            continue
        ends.append(ins.dram_addr + (ins.rows - 1) * ins.dram_stride + ins.elems * element)
    return max(ends, default=0)


def _image(program: Program, inputs: dict[str, np.ndarray]) -> np.ndarray:
    memory = program.memory_image()
    for binding in program.inputs:
        data = np.frombuffer(pack_tensor(binding, np.asarray(inputs[binding.name])), np.uint8)
        memory[binding.dram_addr : binding.dram_addr + len(data)] = data
    return memory


@dataclass(frozen=True)
class _HostJob:
    """What the host port does for one job: instruction words, main-memory image, output
    ranges to read back (first word, word count) and the watchdog in cycles."""

    code: bytes
    memory: np.ndarray
    reads: list[tuple[int, int]]
    watchdog: int


def _host_jobs(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    expected_cycles: list[int] | None,
    raw_instructions: list[bytes | None] | None,
) -> list[_HostJob]:
    config = jobs[0][0].config
    if any(program.config != config for program, _ in jobs):
        raise RtlError("all programs of one RTL run must share a config")
    word = config.dma_bytes
    host_jobs = []
    # Main memory above this is still all zero on the core: the Verilated core starts with
    # zeros (its builds pass `--x-initial 0`; the Verilog has no initial value for it).
    dirty = 0
    for index, (program, inputs) in enumerate(jobs):
        code = (raw_instructions or [None] * len(jobs))[index]
        if code is None:
            code = encode_program(list(program.instructions))
        # Only the part of memory that this or an earlier job touched needs writing.
        dirty = max(dirty, _extent(program))
        memory = _image(program, inputs)[: -(-dirty // word) * word]
        reads = [_word_range(binding, word) for binding in program.outputs]
        host_jobs.append(_HostJob(code, memory, reads, _watchdog(expected_cycles, index)))
    return host_jobs


def _outputs(program: Program, chunks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The program's outputs from the main-memory words read back for each binding."""
    outputs = {}
    for binding, chunk in zip(program.outputs, chunks, strict=True):
        start = binding.dram_addr % program.config.dma_bytes
        outputs[binding.name] = unpack_tensor(binding, chunk[start : start + binding.nbytes])
    return outputs


def run_on_rtl(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    *,
    expected_cycles: list[int] | None = None,
    raw_instructions: list[bytes | None] | None = None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> list[RtlResult]:
    """Run each (program, device inputs) on the RTL core of their (common) config.

    `raw_instructions` may replace a job's instruction words with arbitrary bytes (16 per
    word), to test how the core handles words no Program can hold (illegal opcodes)."""
    host_jobs = _host_jobs(jobs, expected_cycles, raw_instructions)
    build = build_core(jobs[0][0].config, build_root=build_root)
    with scratch_folder(results_dir, "verdigris-core-") as scratch:
        return _run_bench(jobs, host_jobs, build, scratch.path)


def _run_bench(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    host_jobs: list[_HostJob],
    build: RtlBuild,
    folder: Path,
) -> list[RtlResult]:
    """`run_on_rtl`'s cocotb run in `folder`; raises RtlError (naming it) on a failure."""
    arrays = {}
    manifest = {"dma_bytes": jobs[0][0].config.dma_bytes, "jobs": []}
    for index, job in enumerate(host_jobs):
        arrays[f"instructions_{index}"] = np.frombuffer(job.code, np.uint8)
        arrays[f"memory_{index}"] = job.memory
        manifest["jobs"].append({"read": job.reads, "watchdog_cycles": job.watchdog})
    arrays["manifest"] = np.array(json.dumps(manifest))
    jobs_file = folder / "jobs.npz"
    results_file = folder / "results.npz"
    np.savez(jobs_file, **arrays)
    _, failed = run_cocotb(
        build,
        "verdigris.sim.rtl.core_bench",
        results_dir=folder,
        env={"VERDIGRIS_CORE_JOBS": str(jobs_file), "VERDIGRIS_CORE_RESULTS": str(results_file)},
    )
    if failed or not results_file.exists():
        raise RtlError(f"the RTL bench failed; see {folder}/core_bench.log")
    out = []
    with np.load(results_file, allow_pickle=False) as results:
        for index, (program, _) in enumerate(jobs):
            counters = json.loads(str(results[f"counters_{index}"]))
            if counters["error"]:
                outputs = {}  # the bench reads nothing back from a core that stopped on an error
            else:
                chunks = [results[f"read_{index}_{n}"] for n in range(len(program.outputs))]
                outputs = _outputs(program, chunks)
            error, seconds = bool(counters["error"]), counters["seconds"]
            out.append(RtlResult(outputs, _activity(counters), error, seconds))
    return out


def _activity(counters: dict[str, int]) -> Activity:
    return Activity(
        cycles=counters["cycles"],
        busy={u: counters[f"{u}_busy_cycles"] for u in UNITS},
        stall={u: counters[f"{u}_stall_cycles"] for u in UNITS},
        instructions={u: counters[f"{u}_instructions"] for u in UNITS},
        macs=counters["macs"],
        zero_macs=counters["zero_macs"],
        **{name: counters[name] for name in BYTE_COUNTERS},
    )


def run_fast(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    *,
    expected_cycles: list[int] | None = None,
    raw_instructions: list[bytes | None] | None = None,
    build_root: Path | None = None,
    bare_core: bool = False,
    progress: BuildProgress | None = None,
    trace: Path | None = None,
) -> list[RtlResult]:
    """Like `run_on_rtl`, through a C++ Verilator harness instead of cocotb: no VPI, so the
    model runs at full speed (the in-process RTL backend of the CLI). `progress` hears how
    the harness build goes, or that the harness came from the cache (see BuildProgress).

    `bare_core` runs `Core` without `CoreTop`'s input registers: the slower model that
    bench/rtl_speed.py measures as its baseline.

    `trace` names an FST file to write a waveform of every cycle of every job to (one clock
    period is 2 time units; harness.cpp says more); it runs a separately built, slower
    traced harness. The caller checks the name (`verdigris.files.check_output_file`); its
    folder is made here. Results are the same as without it, bit for bit and cycle for
    cycle."""
    host_jobs = _host_jobs(jobs, expected_cycles, raw_instructions)
    config = jobs[0][0].config
    top = f"core_{config.name}"
    verilog, identity = _core_design(config, top, bare_core=bare_core)
    binary = build_harness(
        verilog,
        top,
        HARNESS,
        {"DMA_BYTES": config.dma_bytes, "INPUT_LATENCY": 0 if bare_core else INPUT_LATENCY},
        identity=identity,
        build_root=build_root,
        progress=progress,
        trace=trace is not None,
    )
    word = config.dma_bytes
    # A traced run turns SIGTERM and SIGHUP into an exception (see `_run_traced`); outside
    # the temporary folder, so that it is removed before the signal ends the process.
    stoppable = _ending_signals_as_exception() if trace else contextlib.nullcontext()
    with stoppable, tempfile.TemporaryDirectory(prefix="verdigris-harness-") as folder:
        jobs_file, results_file = Path(folder, "jobs.bin"), Path(folder, "results.bin")
        parts = [struct.pack("<I", len(jobs))]
        for job in host_jobs:
            parts.append(
                struct.pack(
                    "<IIQI", len(job.code) // 16, job.memory.size, job.watchdog, len(job.reads)
                )
            )
            parts += [job.code, job.memory.tobytes()]
            parts += [struct.pack("<II", *r) for r in job.reads]
        jobs_file.write_bytes(b"".join(parts))
        command = [str(binary), str(jobs_file), str(results_file)]
        if trace is None:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        else:
            _prepare_trace(Path(trace))
            done = _run_traced([*command, str(trace)])
        if done.returncode != 0:
            raise RtlError(f"the RTL harness failed: {done.stderr.strip()[-2000:]}")
        if trace is not None and not _written(Path(trace)):
            # Verilator's FST writer does not report a file it could not open.
            raise RtlError(f"{trace}: the waveform could not be written (permissions? disk?)")
        data = results_file.read_bytes()
    results, offset = [], 0
    for (program, _), job in zip(jobs, host_jobs, strict=True):
        error, timed_out, seconds = struct.unpack_from("<IId", data, offset)
        offset += 16
        values = struct.unpack_from(f"<{len(COUNTERS)}Q", data, offset)
        offset += 8 * len(COUNTERS)
        if timed_out:
            seen = f"; the waveform is in {trace}" if trace is not None else ""
            raise RtlError(f"{program.name}: the core did not finish (watchdog){seen}")
        chunks = []
        for _, count in job.reads:
            chunks.append(np.frombuffer(data[offset : offset + count * word], np.uint8))
            offset += count * word
        outputs = {} if error else _outputs(program, chunks)
        activity = _activity(dict(zip(COUNTERS, values, strict=True)))
        results.append(RtlResult(outputs, activity, bool(error), seconds))
    return results


# How long a traced harness may take to close its waveform after Ctrl-C or SIGTERM.
_TRACE_CLOSE_SECONDS = 30.0


def _run_traced(command: list[str]) -> subprocess.CompletedProcess:
    """Run a traced harness to its end. Stopped early (Ctrl-C, or SIGTERM or SIGHUP to
    Python, which `run_fast` turns into an exception for a traced run), the harness is
    asked to stop (SIGINT: it stops at the next clock edge and closes its waveform) and
    given `_TRACE_CLOSE_SECONDS` to do so before it is killed; then the exception goes on
    (a signal then ends Python as it would have)."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            # Ctrl-C reached the harness too (same process group), a signal sent to Python
            # alone did not: send SIGINT either way, it only sets the harness's stop flag.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=_TRACE_CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _prepare_trace(path: Path) -> None:
    """Make the waveform's folder and remove an older file of that name, so that a file
    there after the run is this run's (see `_written`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    except OSError as error:
        raise RtlError(f"{path}: the waveform cannot be written: {error.strerror}") from None


def _written(path: Path) -> bool:
    """Whether `path` holds a file (its FST header block at least)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _watchdog(expected_cycles: list[int] | None, index: int) -> int:
    """Cycles a job may run: twice the expected count (plus slack), or the default."""
    if expected_cycles is None:
        return DEFAULT_WATCHDOG_CYCLES
    return 2 * expected_cycles[index] + 10_000


def _word_range(binding, word: int) -> tuple[int, int]:
    first = binding.dram_addr // word
    last = (binding.dram_addr + binding.nbytes + word - 1) // word
    return first, last - first
