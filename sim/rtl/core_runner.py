"""Run Programs on the Verilated core (through cocotb or a C++ harness) and return outputs
and Activity, in total and per layer.

Under cocotb the core holds its memories in block RAM (`CoreTop(config, memories=True)`);
in the harness they are outside it, held in C++. The core for a config is built once and
cached under its identity (design and config) and the design's sources, so a cached core
starts without generating Verilog; many Programs then run in one simulator process
(`core_bench.run_jobs`, or the harness). Both speak the host-port protocol of
`verdigris.arch.host_port` (docs/host-port.md): the jobs, the counter ports and their
order, the layer boundaries' targets and the map from counters to an Activity come from
there.
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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from verdigris.arch.activity import Activity, in_sequence
from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import COUNTERS
from verdigris.arch.host_port import (
    HostJob,
    host_jobs,
    layer_activity,
    memory_extent,
    read_outputs,
)
from verdigris.arch.program import (
    Binding,
    DeviceStage,
    HostCall,
    Program,
    Segment,
    pack_tensor,
    unpack_tensor,
)
from verdigris.hw.core_memories import check_memories
from verdigris.hw.core_top import INPUT_LATENCY, CoreTop
from verdigris.sim.host import run_host_call
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

__all__ = ["RtlResult", "build_core", "run_fast", "run_on_rtl", "run_staged"]

HARNESS = Path(__file__).with_name("harness.cpp")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RtlResult:
    outputs: dict[str, np.ndarray]
    activity: Activity
    error: bool
    seconds: float  # wall time from start to done (the simulator alone, no Python stepping)
    # Every counter port's value at `done` (verdigris.arch.counters.COUNTERS)
    counters: dict[str, int] = field(default_factory=dict)


def build_core(config: AccelConfig, *, build_root: Path | None = None) -> RtlBuild:
    """The core of `config` with its memories inside (`CoreTop(config, memories=True)`),
    built for cocotb, or the cached build. RtlError if the memories are too large to hold
    inside (`check_memories`)."""
    try:
        check_memories(config)
    except ValueError as error:
        raise RtlError(str(error)) from None
    top = f"core_{config.name}"
    verilog, identity = _core_design(config, top, design="memories")
    return build_verilator(verilog, top, identity=identity, build_root=build_root)


# The designs a core is built as: `CoreTop` with its memories inside (cocotb), with its
# memories outside (the C++ harness), and without input registers (the harness's baseline).
_DESIGNS = {
    "memories": lambda config: CoreTop(config, memories=True),
    "top": CoreTop,
    "bare": lambda config: CoreTop(config, registered=False),
}


def _core_design(config: AccelConfig, top: str, *, design: str) -> tuple[Callable[[], str], str]:
    """How to generate the core's Verilog as `design` (a `_DESIGNS` key; called only when
    a build is needed), and what identifies it without generating it: the design and the
    config."""
    make = _DESIGNS[design]
    # The clock frequency does not change the design (a board's PLL reads it, not the RTL),
    # so it is not part of a simulated core's identity: another clock reuses the build.
    fields = {key: value for key, value in config.to_dict().items() if key != "clock_mhz"}
    identity = {"design": f"verdigris.hw.core_top:{design}", **fields}
    return lambda: generate_verilog(make(config), top), json.dumps(identity, sort_keys=True)


def _host_jobs(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    expected_cycles: list[int] | None,
    raw_instructions: list[bytes | None] | None,
) -> list[HostJob]:
    """The host-port jobs (`verdigris.arch.host_port.host_jobs`); RtlError for programs of
    different configs."""
    try:
        return host_jobs(jobs, expected_cycles, raw_instructions)
    except ValueError as error:
        raise RtlError(str(error)) from None


def run_on_rtl(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    *,
    expected_cycles: list[int] | None = None,
    raw_instructions: list[bytes | None] | None = None,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> list[RtlResult]:
    """Run each (program, device inputs) on the RTL core of their (common) config, under
    cocotb, with main memory and the code memory in block RAM inside the design
    (`CoreWithMemories`: RtlError for memories over 16 MiB; `run_fast` runs any size).

    `raw_instructions` may replace a job's instruction words with arbitrary bytes (16 per
    word), to test how the core handles words no Program can hold (illegal opcodes).
    Programs with host calls run stage by stage (device segments as jobs, the host calls
    between them; `expected_cycles` and `raw_instructions` do not apply to them)."""
    if any(program.host_calls for program, _ in jobs):
        return run_staged(
            jobs, lambda part: run_on_rtl(part, build_root=build_root, results_dir=results_dir)
        )
    port_jobs = _host_jobs(jobs, expected_cycles, raw_instructions)
    build = build_core(jobs[0][0].config, build_root=build_root)
    with scratch_folder(results_dir, "verdigris-core-") as scratch:
        return _run_bench(jobs, port_jobs, build, scratch.path)


def _run_bench(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    port_jobs: list[HostJob],
    build: RtlBuild,
    folder: Path,
) -> list[RtlResult]:
    """`run_on_rtl`'s cocotb run in `folder`; raises RtlError (naming it) on a failure."""
    arrays = {}
    manifest = {"dma_bytes": jobs[0][0].config.dma_bytes, "jobs": []}
    for index, job in enumerate(port_jobs):
        arrays[f"instructions_{index}"] = np.frombuffer(job.code, np.uint8)
        arrays[f"memory_{index}"] = job.memory
        manifest["jobs"].append(
            {
                "read": job.reads,
                "watchdog_cycles": job.watchdog,
                "boundaries": [list(target) for target in job.boundaries],
            }
        )
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
            snapshots = counters.pop("snapshots")
            if counters["error"]:
                outputs = {}  # the bench reads nothing back from a core that stopped on an error
            else:
                chunks = [results[f"read_{index}_{n}"] for n in range(len(program.outputs))]
                outputs = read_outputs(program, chunks)
            error, seconds = bool(counters["error"]), counters["seconds"]
            activity = _activity(program, counters, snapshots, error)
            final = {name: counters[name] for name in COUNTERS}
            out.append(RtlResult(outputs, activity, error, seconds, final))
    return out


def _activity(
    program: Program, final: dict[str, int], snapshots: list[dict[str, int]], error: bool
) -> Activity:
    """The run's Activity, per layer unless it stopped on an error (then the total only)."""
    if error:
        return layer_activity(program, final, [])
    expected = max(len(program.layers) - 1, 0)
    if len(snapshots) != expected:
        raise RtlError(
            f"{program.name}: the host saw {len(snapshots)} of the {expected} layer "
            "boundaries before `done` (the completion counters never reached the others)"
        )
    return layer_activity(program, final, snapshots)


def _harness_source(folder: Path) -> Path:
    """harness.cpp with the counter ports prepended (`VERDIGRIS_COUNTERS`, from the one
    definition in `verdigris.arch.counters.COUNTERS`), written into `folder`."""
    names = " ".join(f"X({name})" for name in COUNTERS)
    path = folder / "harness.cpp"
    path.write_text(
        "// VERDIGRIS_COUNTERS: generated by verdigris.sim.rtl.core_runner from "
        "verdigris.arch.counters.COUNTERS\n"
        f"#define VERDIGRIS_COUNTERS(X) {names}\n"
        '#line 1 "harness.cpp"\n' + HARNESS.read_text()
    )
    return path


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

    The harness holds main memory and the code memory (of any size: `xl` runs) and serves
    the core's memory interfaces. `bare_core` runs the core without `CoreTop`'s input
    registers: the slower model that bench/rtl_speed.py measures as its baseline.

    `trace` names an FST file to write a waveform of every cycle of every job to (one clock
    period is 2 time units; harness.cpp says more); it runs a separately built, slower
    traced harness. The caller checks the name (`verdigris.files.check_output_file`); its
    folder is made here. Results are the same as without it, bit for bit and cycle for
    cycle.

    Programs with host calls run stage by stage, as in `run_on_rtl`; a trace needs one
    device segment per program (host calls before or after it only), as each segment is a
    run of its own."""
    if any(program.host_calls for program, _ in jobs):
        segments = max(
            sum(isinstance(stage, DeviceStage) for stage in program.stages()) for program, _ in jobs
        )
        if trace is not None and segments > 1:
            raise RtlError(
                f"a waveform of a program with {segments} device segments (host ops between "
                "them) is not supported yet: each segment is a run of its own"
            )
        return run_staged(
            jobs,
            lambda part: run_fast(
                part, build_root=build_root, bare_core=bare_core, progress=progress, trace=trace
            ),
        )
    port_jobs = _host_jobs(jobs, expected_cycles, raw_instructions)
    config = jobs[0][0].config
    top = f"core_{config.name}"
    verilog, identity = _core_design(config, top, design="bare" if bare_core else "top")
    with tempfile.TemporaryDirectory(prefix="verdigris-harness-source-") as source:
        binary = build_harness(
            verilog,
            top,
            _harness_source(Path(source)),
            {
                "DMA_BYTES": config.dma_bytes,
                "INPUT_LATENCY": 0 if bare_core else INPUT_LATENCY,
                "MAIN_MEMORY_BYTES": config.main_memory_bytes,
                "INSTRUCTION_CAPACITY": config.instruction_capacity,
            },
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
        for job in port_jobs:
            parts.append(
                struct.pack(
                    "<IIQII",
                    len(job.code) // 16,
                    job.memory.size,
                    job.watchdog,
                    len(job.reads),
                    len(job.boundaries),
                )
            )
            parts += [job.code, job.memory.tobytes()]
            parts += [struct.pack("<II", *r) for r in job.reads]
            parts += [struct.pack("<4I", *target) for target in job.boundaries]
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
    for (program, _), job in zip(jobs, port_jobs, strict=True):
        error, timed_out, seconds = struct.unpack_from("<IId", data, offset)
        offset += 16
        values = struct.unpack_from(f"<{len(COUNTERS)}Q", data, offset)
        offset += 8 * len(COUNTERS)
        (taken,) = struct.unpack_from("<I", data, offset)
        offset += 4
        snapshots = []
        for _ in range(taken):
            snapshot = struct.unpack_from(f"<{len(COUNTERS)}Q", data, offset)
            offset += 8 * len(COUNTERS)
            snapshots.append(dict(zip(COUNTERS, snapshot, strict=True)))
        if timed_out:
            seen = f"; the waveform is in {trace}" if trace is not None else ""
            raise RtlError(f"{program.name}: the core did not finish (watchdog){seen}")
        chunks = []
        for _, count in job.reads:
            chunks.append(np.frombuffer(data[offset : offset + count * word], np.uint8))
            offset += count * word
        outputs = {} if error else read_outputs(program, chunks)
        final = dict(zip(COUNTERS, values, strict=True))
        activity = _activity(program, final, snapshots, error)
        results.append(RtlResult(outputs, activity, bool(error), seconds, final))
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


def run_staged(
    jobs: list[tuple[Program, dict[str, np.ndarray]]],
    runner: Callable[[list[tuple[Program, dict[str, np.ndarray]]]], list[RtlResult]],
) -> list[RtlResult]:
    """Run (program, device inputs) jobs whose programs have host calls, stage by stage
    (`Program.stages`): each job's next device segment is a job of `runner` (one run of
    `runner` for every job's segment at once), on the main memory the stages before it left,
    all of which is read back after it; the host calls between run on each job's memory
    (`verdigris.sim.host.run_host_call`). A job whose segment stops on the core's error
    status goes no further (error set, no outputs, the total Activity only)."""
    memories, wholes, pending = [], [], []
    for program, inputs in jobs:
        memory = program.memory_image()
        for binding in program.inputs:
            data = np.frombuffer(pack_tensor(binding, inputs[binding.name]), np.uint8)
            memory[binding.dram_addr : binding.dram_addr + data.size] = data
        memories.append(memory)
        extent = memory_extent(program)
        # The whole used memory as one int8 tensor: each segment's only output.
        wholes.append(Binding("main memory", 0, "int8", (extent,), (extent,), (0,)))
        pending.append(program.stages())
    parts: list[list[Activity]] = [[] for _ in jobs]
    seconds = [0.0] * len(jobs)
    counters = [dict.fromkeys(COUNTERS, 0) for _ in jobs]
    failed: set[int] = set()
    while True:
        for i, stages in enumerate(pending):
            while i not in failed and stages and isinstance(stages[0], HostCall):
                run_host_call(stages.pop(0), memories[i])
        going = [i for i, stages in enumerate(pending) if stages and i not in failed]
        if not going:
            break
        segments = []
        for i in going:
            stage, extent = pending[i].pop(0), wholes[i].shape[0]
            image = (Segment(0, memories[i][:extent].tobytes()),)
            part = replace(stage.program, segments=image, inputs=(), outputs=(wholes[i],))
            segments.append((part, {}))
        for i, result in zip(going, runner(segments), strict=True):
            seconds[i] += result.seconds
            for name, value in result.counters.items():
                counters[i][name] += value
            parts[i].append(result.activity)
            if result.error:
                failed.add(i)
                continue
            memory = result.outputs["main memory"].astype(np.int8).view(np.uint8)
            memories[i][: memory.size] = memory
    results = []
    for i, ((program, _), memory) in enumerate(zip(jobs, memories, strict=True)):
        outputs = {
            b.name: unpack_tensor(b, memory[b.dram_addr : b.dram_addr + b.nbytes])
            for b in program.outputs
        }
        activity = in_sequence(parts[i])
        if i in failed:
            outputs, activity.layers = {}, ()  # as a run that stops: the total only
        results.append(RtlResult(outputs, activity, i in failed, seconds[i], counters[i]))
    return results
