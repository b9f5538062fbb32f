"""The host-port protocol: how a host runs a Program on the core and reads back its outputs
and its Activity, in total and per layer (docs/host-port.md).

Every host speaks it: the cocotb bench and the C++ Verilator harness (sim/rtl), and a board's
host runtime over its UART bridge. A job is: write the instruction words into instruction
memory, write the main-memory image, pulse `run`, wait for `done` under a watchdog (taking a
snapshot of the counters at each layer boundary on the way), then read the output ranges of
main memory and the counters. This module holds what the protocol needs and nothing of any
one host: the job (`HostJob`, built by `host_jobs`), the
boundary targets of each layer and the per-layer Activity from counter snapshots. The
counter ports and the counters -> Activity map are in arch/counters.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verdigris.arch.activity import Activity, LayerActivity
from verdigris.arch.counters import ACTIVITY_COUNTERS, COMPLETION_COUNTERS, activity_from_counters
from verdigris.arch.isa import Finish, Load, Nop, Store, Unit, encode_program, transfer_bytes
from verdigris.arch.program import Binding, Program, pack_tensor, unpack_tensor

__all__ = [
    "DEFAULT_WATCHDOG_CYCLES",
    "HostJob",
    "boundary_reached",
    "boundary_targets",
    "host_jobs",
    "layer_activity",
    "memory_extent",
    "read_outputs",
    "snapshots_from_records",
]

# Without an expected cycle count, a run may take this long before the watchdog stops it.
DEFAULT_WATCHDOG_CYCLES = 10_000_000


@dataclass(frozen=True)
class HostJob:
    """What the host port does for one run: the instruction words (16 bytes each), the
    main-memory image written from address 0, the main-memory ranges read back after `done`
    (first word, word count; `dma_bytes` per word), the watchdog in cycles, and one
    boundary target per layer but the last (`boundary_targets`)."""

    code: bytes
    memory: np.ndarray
    reads: list[tuple[int, int]]
    watchdog: int
    boundaries: tuple[tuple[int, ...], ...] = ()


def boundary_targets(program: Program) -> tuple[tuple[int, ...], ...]:
    """Per layer boundary (after each layer but the last), the completion counts, in
    COMPLETION_COUNTERS order, that mark it: how many of the instructions [0, last) run on
    the load unit, on the compute unit (NOPs included), are compute NOPs, and run on the
    store unit (`last` the largest `LayerInfo.last` so far; FINISH and what follows it
    count for nothing)."""
    if len(program.layers) < 2:
        return ()
    # counts[k]: the four counts over instructions [0, k)
    counts = np.zeros((len(program.instructions) + 1, 4), np.int64)
    finished = False
    for index, ins in enumerate(program.instructions):
        row = counts[index].copy()
        finished = finished or isinstance(ins, Finish)
        # Nothing after FINISH runs; a NOP for no unit is illegal (the core stops).
        legal = not isinstance(ins, Nop) or ins.target in tuple(Unit)
        unit = ins.unit if legal and not finished else None
        if unit is Unit.LOAD:
            row[0] += 1
        elif unit is Unit.COMPUTE:
            row[1] += 1
            row[2] += isinstance(ins, Nop)
        elif unit is Unit.STORE:
            row[3] += 1
        counts[index + 1] = row
    targets, last = [], 0
    for layer in program.layers[:-1]:
        last = max(last, min(layer.last, len(program.instructions)))
        targets.append(tuple(int(v) for v in counts[last]))
    return tuple(targets)


def boundary_reached(counters: Mapping[str, int], target: Sequence[int]) -> bool:
    """Whether the completion counters have reached a boundary target: every instruction of
    [0, last) has completed. Load and store complete in order and so do the compute unit's
    GEMMs and VECTORs among themselves and its NOPs among themselves, but a NOP can complete
    before an earlier GEMM: so the compute unit is checked as two streams."""
    load, compute, nops, store = target
    return (
        counters["load_completed"] >= load
        and counters["store_completed"] >= store
        and counters["compute_nops_completed"] >= nops
        and counters["compute_completed"] - counters["compute_nops_completed"] >= compute - nops
    )


def layer_activity(
    program: Program,
    final: Mapping[str, int],
    snapshots: Sequence[Mapping[str, int]],
) -> Activity:
    """The Activity of a run with its layers, from the counters at `done` and their
    snapshots at each layer boundary (taken in the boundary cycle, before that cycle's
    increments): layer i is snapshot i minus snapshot i - 1, the last layer is what the
    final counters add to the last snapshot. Without a snapshot per boundary (a run that
    stopped on an error) the layers are left empty."""
    total = activity_from_counters(final)
    layers = program.layers
    if not layers or len(snapshots) != len(layers) - 1:
        return total
    points = [dict.fromkeys(ACTIVITY_COUNTERS, 0), *snapshots, final]
    parts = []
    for layer, low, high in zip(layers, points[:-1], points[1:], strict=True):
        window = {name: int(high[name]) - int(low[name]) for name in ACTIVITY_COUNTERS}
        parts.append(LayerActivity(layer.name, layer.kind, activity_from_counters(window)))
    total.layers = tuple(parts)
    total.check_layers()
    return total


def snapshots_from_records(
    targets: Sequence[Sequence[int]],
    final: Mapping[str, int],
    records: Sequence[Mapping[str, int]],
) -> list[dict[str, int]] | None:
    """The snapshot of each layer boundary (`targets`, from `boundary_targets`) from a layer
    tracker's records (boards/tracker.py: every counter's low 32 bits, one record a
    boundary, in the cycle it was detected), and the counters at `done`.

    The tracker compares one target a cycle, so boundaries reached in one cycle are
    recorded in the cycles after it; those records follow each other cycle by cycle, so the
    cycle a boundary was reached always has a record, and it is the first whose completion
    counters reach the boundary's target. None when the records cannot give every snapshot:
    too few records, or a counter that reached 2**32 (records hold 32 bits of each)."""
    names = [name for name in final if name in ACTIVITY_COUNTERS or name in COMPLETION_COUNTERS]
    if any(int(final[name]) >= 2**32 for name in names):
        return None
    snapshots = []
    for target in targets:
        found = next((r for r in records if boundary_reached(r, target)), None)
        if found is None:
            return None
        snapshots.append({name: int(found[name]) for name in names})
    return snapshots


def memory_extent(program: Program) -> int:
    """One past the highest main-memory byte the program (or one of its host calls) reads
    or writes."""
    ends = [segment.addr + len(segment.data) for segment in program.segments]
    calls = [b for call in program.host_calls for b in (*call.inputs, call.output)]
    ends += [b.dram_addr + b.nbytes for b in (*program.inputs, *program.outputs, *calls)]
    for ins in program.instructions:
        transfers = (isinstance(ins, Load) and not ins.fill) or isinstance(ins, Store)
        if transfers and ins.rows:
            nbytes = transfer_bytes(program.config, ins)
            ends.append(ins.dram_addr + (ins.rows - 1) * ins.dram_stride + nbytes)
    return max(ends, default=0)


def _image(program: Program, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    memory = program.memory_image()
    for binding in program.inputs:
        data = np.frombuffer(pack_tensor(binding, np.asarray(inputs[binding.name])), np.uint8)
        memory[binding.dram_addr : binding.dram_addr + len(data)] = data
    return memory


def _word_range(binding: Binding, word: int) -> tuple[int, int]:
    first = binding.dram_addr // word
    last = (binding.dram_addr + binding.nbytes + word - 1) // word
    return first, last - first


def _watchdog(expected_cycles: Sequence[int] | None, index: int) -> int:
    """Cycles a job may run: twice the expected count (plus slack), or the default."""
    if expected_cycles is None:
        return DEFAULT_WATCHDOG_CYCLES
    return 2 * expected_cycles[index] + 10_000


def host_jobs(
    jobs: Sequence[tuple[Program, Mapping[str, np.ndarray]]],
    expected_cycles: Sequence[int] | None = None,
    raw_instructions: Sequence[bytes | None] | None = None,
) -> list[HostJob]:
    """The host-port job of each (program, device inputs), run one after another on one
    core (so all share a config; ValueError if not). The memory image is cut after the
    highest byte this or an earlier job touched: the core starts with zeroed memory, so the
    rest is zero already. `raw_instructions` may replace a job's instruction words with any
    bytes (16 per word), to test words no Program can hold."""
    config = jobs[0][0].config
    if any(program.config != config for program, _ in jobs):
        raise ValueError("all programs of one run on a core must share a config")
    staged = next((program.name for program, _ in jobs if program.host_calls), None)
    if staged is not None:
        raise ValueError(
            f"program {staged} has host calls: run each device segment as a job of its own "
            "(Program.stages), with the host calls between them"
        )
    word = config.dma_bytes
    out = []
    dirty = 0
    for index, (program, inputs) in enumerate(jobs):
        code = (raw_instructions or [None] * len(jobs))[index]
        if code is None:
            code = encode_program(list(program.instructions))
        dirty = max(dirty, memory_extent(program))
        memory = _image(program, inputs)[: -(-dirty // word) * word]
        reads = [_word_range(binding, word) for binding in program.outputs]
        targets = boundary_targets(program)
        out.append(HostJob(code, memory, reads, _watchdog(expected_cycles, index), targets))
    return out


def read_outputs(program: Program, chunks: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The program's outputs from the main-memory words read back for each output binding
    (the `reads` of its HostJob, in order)."""
    outputs = {}
    for binding, chunk in zip(program.outputs, chunks, strict=True):
        start = binding.dram_addr % program.config.dma_bytes
        outputs[binding.name] = unpack_tensor(binding, chunk[start : start + binding.nbytes])
    return outputs
