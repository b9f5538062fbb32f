"""Run Programs on the Verilated core (through cocotb) and return outputs and Activity.

The core for a config is generated and built once (cached by its Verilog hash); many
Programs then run in one simulator process (`core_bench.run_jobs`).
"""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verdigris.arch.activity import UNITS, Activity
from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import ELEMENT_BYTES, Buffer, Load, Store, encode_program
from verdigris.arch.program import Program, pack_tensor, unpack_tensor
from verdigris.hw.core import BYTE_COUNTERS, COUNTERS, Core
from verdigris.sim.rtl.verilator import (
    RtlBuild,
    RtlError,
    build_harness,
    build_verilator,
    generate_verilog,
    run_cocotb,
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
    top = f"core_{config.name}"
    return build_verilator(generate_verilog(Core(config), top), top, build_root=build_root)


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
    config = jobs[0][0].config
    if any(program.config != config for program, _ in jobs):
        raise RtlError("all programs of one RTL run must share a config")
    build = build_core(config, build_root=build_root)
    folder = Path(results_dir or tempfile.mkdtemp(prefix="verdigris-core-"))
    folder.mkdir(parents=True, exist_ok=True)
    word = config.dma_bytes
    arrays = {}
    manifest = {"dma_bytes": word, "jobs": []}
    dirty = 0  # main memory above this is still all zero on the core
    for index, (program, inputs) in enumerate(jobs):
        words = (raw_instructions or [None] * len(jobs))[index]
        if words is None:
            words = encode_program(list(program.instructions))
        arrays[f"instructions_{index}"] = np.frombuffer(words, np.uint8)
        # Only the part of memory that this or an earlier job touched needs writing.
        extent = max(dirty, _extent(program))
        dirty = extent
        arrays[f"memory_{index}"] = _image(program, inputs)[: -(-extent // word) * word]
        reads = [_word_range(binding, word) for binding in program.outputs]
        manifest["jobs"].append(
            {"read": reads, "watchdog_cycles": _watchdog(expected_cycles, index)}
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
    results = np.load(results_file, allow_pickle=False)
    out = []
    for index, (program, _) in enumerate(jobs):
        counters = json.loads(str(results[f"counters_{index}"]))
        outputs = {}
        for number, binding in enumerate(program.outputs):
            data = results[f"read_{index}_{number}"]
            offset = binding.dram_addr % word
            outputs[binding.name] = unpack_tensor(binding, data[offset : offset + binding.nbytes])
        out.append(
            RtlResult(outputs, _activity(counters), bool(counters["error"]), counters["seconds"])
        )
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
    build_root: Path | None = None,
) -> list[RtlResult]:
    """Like `run_on_rtl`, through a C++ Verilator harness instead of cocotb: no VPI, so the
    model runs at full speed (the in-process RTL backend of the CLI)."""
    config = jobs[0][0].config
    if any(program.config != config for program, _ in jobs):
        raise RtlError("all programs of one RTL run must share a config")
    top = f"core_{config.name}"
    binary = build_harness(
        generate_verilog(Core(config), top),
        top,
        HARNESS,
        {"DMA_BYTES": config.dma_bytes},
        build_root=build_root,
    )
    word = config.dma_bytes
    with tempfile.TemporaryDirectory(prefix="verdigris-harness-") as folder:
        jobs_file, results_file = Path(folder, "jobs.bin"), Path(folder, "results.bin")
        parts = [struct.pack("<I", len(jobs))]
        dirty = 0
        for index, (program, inputs) in enumerate(jobs):
            code = encode_program(list(program.instructions))
            dirty = max(dirty, _extent(program))
            memory = _image(program, inputs)[: -(-dirty // word) * word].tobytes()
            ranges = [_word_range(b, word) for b in program.outputs]
            watchdog = _watchdog(expected_cycles, index)
            parts.append(struct.pack("<IIQI", len(code) // 16, len(memory), watchdog, len(ranges)))
            parts += [code, memory, b"".join(struct.pack("<II", *r) for r in ranges)]
        jobs_file.write_bytes(b"".join(parts))
        done = subprocess.run(
            [str(binary), str(jobs_file), str(results_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RtlError(f"the RTL harness failed: {done.stderr.strip()[-2000:]}")
        data = results_file.read_bytes()
    results, offset = [], 0
    for program, _ in jobs:
        error, timed_out, seconds = struct.unpack_from("<IId", data, offset)
        offset += 16
        values = struct.unpack_from(f"<{len(COUNTERS)}Q", data, offset)
        offset += 8 * len(COUNTERS)
        if timed_out:
            raise RtlError(f"{program.name}: the core did not finish (watchdog)")
        outputs = {}
        for binding in program.outputs:
            _, count = _word_range(binding, word)
            chunk = np.frombuffer(data[offset : offset + count * word], np.uint8)
            offset += count * word
            start = binding.dram_addr % word
            outputs[binding.name] = unpack_tensor(binding, chunk[start : start + binding.nbytes])
        activity = _activity(dict(zip(COUNTERS, values, strict=True)))
        results.append(RtlResult(outputs, activity, bool(error), seconds))
    return results


def _watchdog(expected_cycles: list[int] | None, index: int) -> int:
    """Cycles a job may run: twice the expected count (plus slack), or the default."""
    if expected_cycles is None:
        return DEFAULT_WATCHDOG_CYCLES
    return 2 * expected_cycles[index] + 10_000


def _word_range(binding, word: int) -> tuple[int, int]:
    first = binding.dram_addr // word
    last = (binding.dram_addr + binding.nbytes + word - 1) // word
    return first, last - first
