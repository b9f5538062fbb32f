"""The public Python API: load a model into the IR, run it, read and write tensors.

>>> graph = verdigris.load_model("examples/models/lenet_qdq.onnx")
>>> outputs = verdigris.run(graph, {"input": images})         # golden, float outputs
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verdigris.arch.activity import Activity, pe_utilization
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.program import Program
from verdigris.arch.tensor_files import read_named_arrays
from verdigris.energy.table import EnergyTable
from verdigris.files import UserFileError, check_output_file, has_suffix

# Running a Program needs no compiler (`verdigris run M.vgp` works without it): the
# compiler is imported where a model is loaded or compiled, the RTL runner (Amaranth,
# Verilator helpers) where it runs.
if TYPE_CHECKING:
    from verdigris.compiler import ir
    from verdigris.energy.model import EnergyReport
    from verdigris.energy.sweep import SweepTask
    from verdigris.sim.rtl.verilator import BuildProgress

__all__ = [
    "ACTIVITY_SUFFIXES",
    "BACKENDS",
    "EnergyRun",
    "LayerSummary",
    "TensorFileError",
    "compile_model",
    "energy_report_of",
    "layer_summaries",
    "load_model",
    "output_names",
    "program_report",
    "program_utilization",
    "read_inputs",
    "run",
    "run_program",
    "sweep_point",
    "write_activity_json",
    "write_outputs",
]

logger = logging.getLogger(__name__)

# Executors: the golden model, the instruction simulator, the Verilated RTL, a board over
# a serial port and the simulated board.
BACKENDS = ("golden", "isasim", "rtl", "board", "board-sim")
# The backends that run a Program (golden runs the model's graph).
PROGRAM_BACKENDS = BACKENDS[1:]
DEFAULT_BAUD = 115_200


class TensorFileError(UserFileError):
    """An input or output tensor file that cannot be read or written as asked."""


def load_model(
    path: str | Path,
    *,
    calibrate: str | Path | np.ndarray | Mapping[str, np.ndarray] | None = None,
    per_channel: bool = True,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
) -> ir.Graph:
    """Import a quantized ONNX model, or quantize a float one first with calibration data:
    a .npy/.npz file, one array (a single-input model) or arrays by input name.
    `input_shapes` fixes inputs with symbolic or unknown dimensions, by name
    (`{"x": (1, 3, 224, 224)}`, the CLI's `--input-shape x=1,3,224,224`); `batch` sets
    every input's first dimension, also where the model fixes it (the CLI's `--batch`):
    the compiler folds the batch into the rows that share each weight tile."""
    from verdigris.compiler.frontend import import_model, load_onnx
    from verdigris.compiler.frontend.calibrate import (
        check_float_model,
        load_calibration,
        quantize_float_model,
    )

    path = Path(path)
    shapes = dict(input_shapes or {})
    if calibrate is None:
        return import_model(path, input_shapes=shapes, batch=batch)
    model = load_onnx(path)
    check_float_model(model, path)
    names = [
        v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}
    ]
    data = load_calibration(calibrate, names)
    quantized = quantize_float_model(path, data, per_channel=per_channel)
    return import_model(quantized, name=path.stem, input_shapes=shapes, batch=batch)


def compile_model(
    model: str | Path | ir.Graph,
    config: str | Path | AccelConfig = "default",
    *,
    calibrate: str | Path | np.ndarray | Mapping[str, np.ndarray] | None = None,
    dump_dir: str | Path | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Program:
    """Compile an ONNX model (or an imported graph) into a Program for `config` (a preset
    name, a TOML path or an AccelConfig). `input_shapes` and `batch` as for `load_model`;
    `progress(done, total)` hears each op compiled (a large model takes seconds)."""
    from verdigris.compiler import ir
    from verdigris.compiler.backend import compile_graph
    from verdigris.sim.host import run_host_compute

    if isinstance(model, ir.Graph):
        graph = model
    else:
        graph = load_model(model, calibrate=calibrate, input_shapes=input_shapes, batch=batch)
    if not isinstance(config, AccelConfig):
        config = load_config(config)
    # The host-op runtime computes the lookup tables of element-wise host ops.
    return compile_graph(
        graph, config, dump_dir=dump_dir, progress=progress, host_runtime=run_host_compute
    )


def run_program(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    *,
    backend: str = "isasim",
    raw: bool = False,
    progress: BuildProgress | None = None,
    trace: str | Path | None = None,
    simulation_progress: Callable[[int, int], None] | None = None,
    port: str | None = None,
    baud: int = DEFAULT_BAUD,
    load_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], Activity]:
    """Run a Program on an executor: float (or the model's integer) inputs in, outputs as the
    model returns them (or the device's integers with `raw`), plus the Activity. A batch
    larger than the one compiled runs one sample at a time; the Activity is the total.
    `progress` hears how the RTL core's build goes (backend rtl, first run of a config);
    `simulation_progress(done, total)` how many instructions of all the samples the
    instruction simulator has fetched (backend isasim: a large model takes minutes).

    `trace` (backend rtl only) names an .fst file that gets a waveform of the whole run,
    every sample one after the other (a separately built, slower traced core; outputs and
    Activity are the same as without it). A bad name is refused before anything runs.

    Backend `board` runs on the board at serial `port` (`baud`), `board-sim` on the
    simulated board (the Verilated SoC behind a pseudo-terminal; `progress` hears its
    build); `load_progress(done, total)` hears the bytes of each job as they load. A board
    counts the layers with the SoC's layer tracker (a Program of more layers than it holds
    gets the total only)."""
    from verdigris.sim.host import (
        InputError,
        check_batches,
        check_input,
        finish_output,
        quantize_input,
    )

    if backend not in PROGRAM_BACKENDS:
        raise ValueError(
            f"backend {backend!r} cannot run a Program; use {', '.join(PROGRAM_BACKENDS)}"
        )
    if (backend == "board") != (port is not None):
        raise ValueError("a serial port is given with backend 'board', and only then")
    if trace is not None:
        trace = _check_trace(trace, backend)
    from verdigris.sim.isasim import run_program as isasim_run

    graph_inputs, graph_outputs = program.host.inputs, program.host.outputs
    given = check_batches(graph_inputs, inputs)
    compiled = {b.name: b for b in program.inputs}
    batch = compiled[graph_inputs[0].tensor.name].shape[0]
    checked: dict[str, np.ndarray] = {}
    for graph_input in graph_inputs:
        expected = compiled[graph_input.tensor.name].shape
        got = np.shape(inputs[graph_input.name])
        if tuple(got[1:]) != tuple(expected[1:]) or given % batch:
            raise InputError(
                f"input {graph_input.name} has shape {got}; the program expects {expected}"
                + (f" or a multiple of {batch} samples" if batch > 1 else " (any batch size)")
            )
        checked[graph_input.name] = check_input(graph_input, inputs[graph_input.name])
    results: dict[str, list[np.ndarray]] = {o.name: [] for o in graph_outputs}
    total = Activity()
    runs = []
    for start in range(0, given, batch):
        device_inputs = {}
        for graph_input in graph_inputs:
            value = checked[graph_input.name][start : start + batch]
            binding = compiled[graph_input.tensor.name]
            device_inputs[binding.name] = quantize_input(graph_input, value)
        runs.append(device_inputs)
    if backend == "isasim":
        count = len(program.instructions)
        executed = []
        for index, device_inputs in enumerate(runs):
            heard = None
            if simulation_progress is not None:  # this sample's share of all the samples
                heard = _shifted(simulation_progress, index * count, len(runs) * count)
            executed.append(isasim_run(program, device_inputs, progress=heard))
        if simulation_progress is not None:
            simulation_progress(len(runs) * count, len(runs) * count)
    elif backend == "rtl":
        executed = _run_rtl(program, runs, progress, trace)
    else:
        executed = _run_board(program, runs, port, baud, progress, load_progress)
    for outputs, activity in executed:
        total = total + activity
        for graph_output in graph_outputs:
            value = outputs[graph_output.tensor.name]
            results[graph_output.name].append(finish_output(graph_output, value, raw=raw))
    return {k: np.concatenate(v) for k, v in results.items()}, total


def _shifted(
    progress: Callable[[int, int], None], before: int, total: int
) -> Callable[[int, int], None]:
    """`progress` for one part of a larger job: `before` done already, `total` in all."""
    return lambda done, _part: progress(before + done, total)


# What a waveform file may be called: Verilator writes FST (the harness's --trace-fst build).
TRACE_SUFFIXES = (".fst",)


def _check_trace(trace: str | Path, backend: str) -> Path:
    """`trace` as a waveform file name that may be written, for a backend that can trace;
    else ValueError (UserFileError for the name) saying what to do."""
    if backend != "rtl":
        raise ValueError(f"a waveform (trace) needs backend 'rtl', not {backend!r}")
    return check_output_file(trace, TRACE_SUFFIXES, "waveform")


def _run_rtl(
    program: Program,
    runs: list[dict[str, np.ndarray]],
    progress: BuildProgress | None,
    trace: Path | None = None,
):
    """Every run on the Verilated core through the C++ harness (built once per config and
    cached; a traced harness when `trace` names a waveform file)."""
    from verdigris.sim.rtl.core_runner import run_fast
    from verdigris.sim.rtl.verilator import RtlError

    logger.info("running %d sample(s) on the RTL (the first run builds the core)", len(runs))
    if trace is not None:
        logger.info("writing the waveform of the run to %s (traced core: slower)", trace)
    results = run_fast([(program, r) for r in runs], progress=progress, trace=trace)
    if any(r.error for r in results):
        raise RtlError("the RTL core stopped with its error status")
    return [(r.outputs, r.activity) for r in results]


def _run_board(
    program: Program,
    runs: list[dict[str, np.ndarray]],
    port: str | None,
    baud: int,
    progress: BuildProgress | None,
    load_progress: Callable[[int, int], None] | None,
):
    """Every run on the board at `port`, or (without a port) on the simulated board."""
    from verdigris.board_runs import SIM_BAUD, run_on_board, simulated_board
    from verdigris.sim.rtl.verilator import RtlError

    jobs = [(program, r) for r in runs]
    if port is None:
        with simulated_board(program.config, progress=progress) as sim_port:
            results = run_on_board(jobs, sim_port, baud=SIM_BAUD, progress=load_progress)
    else:
        results = run_on_board(jobs, port, baud=baud, progress=load_progress)
    if any(r.error for r in results):
        raise RtlError("the board's core stopped with its error status")
    return [(r.outputs, r.activity) for r in results]


# What an Activity record may be called (`verdigris run --activity-json`).
ACTIVITY_SUFFIXES = (".json",)


def write_activity_json(path: str | Path, activity: Activity, config: str) -> Path:
    """Write the Activity of a run, in total and per layer, as the JSON record of
    `Activity.to_report` (docs/isa.md, "Activity per layer") for the config named `config`;
    missing folders are made. The caller checks the name first (`check_output_file` with
    ACTIVITY_SUFFIXES). Returns the path."""
    import json

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(activity.to_report(config), indent=1) + "\n")
    except OSError as error:
        raise UserFileError(f"{path}: cannot write the activity record: {error.strerror}") from None
    return path


def run(
    graph: ir.Graph,
    inputs: Mapping[str, np.ndarray],
    *,
    backend: str = "golden",
    raw: bool = False,
) -> dict[str, np.ndarray]:
    """Run `graph` on float (or the model's integer) inputs; outputs as the model returns them,
    or the device's integer tensors with `raw`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "golden":
        outputs, _ = run_program(compile_model(graph), inputs, backend=backend, raw=raw)
        return outputs
    from verdigris.sim.golden import run_graph

    return run_graph(graph, inputs, raw=raw)


def input_names(model: ir.Graph | Program) -> list[str]:
    if isinstance(model, Program):
        return [i.name for i in model.host.inputs]
    return [i.name for i in model.inputs]


def output_names(model: ir.Graph | Program) -> list[str]:
    if isinstance(model, Program):
        return [o.name for o in model.host.outputs]
    return [o.name for o in model.outputs]


def program_utilization(program: Program, activity: Activity, samples: int) -> float:
    """PE utilization of running `samples` samples of `program` (the Activity of that run)."""
    batch = program.inputs[0].shape[0] if program.inputs else 1
    macs = sum(layer.macs for layer in program.layers) * (samples // batch)
    return pe_utilization(macs, activity.cycles, program.config.pe_count)


def read_inputs(path: str | Path, model: ir.Graph | Program) -> dict[str, np.ndarray]:
    """Inputs from .npy (a single-input model) or .npz (arrays named after the inputs)."""
    return read_named_arrays(path, input_names(model), TensorFileError, "input")


def check_output_path(
    path: str | Path, output_names: list[str], *, protect: tuple[Path, ...] = ()
) -> Path:
    """`path` as a place to write the outputs `output_names`: .npy for one output, .npz for
    any number; never one of the files in `protect` (such as the inputs). Checked before a
    run, so that a long run does not end in a path error."""
    path = check_output_file(path, (".npy", ".npz"), "output", protect=protect)
    if has_suffix(path, ".npy") and len(output_names) != 1:
        raise TensorFileError(
            f"{path}: the model has {len(output_names)} outputs ({', '.join(output_names)}); "
            "use .npz"
        )
    return path


def write_outputs(
    path: str | Path, outputs: Mapping[str, np.ndarray], *, protect: tuple[Path, ...] = ()
) -> Path:
    """Write one output as .npy or several as .npz, atomically (a temporary file renamed into
    place), refusing to overwrite any file in `protect` (such as the inputs)."""
    path = check_output_path(path, list(outputs), protect=protect)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            if has_suffix(path, ".npy"):
                np.save(stream, next(iter(outputs.values())))
            else:
                np.savez(stream, **outputs)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class LayerSummary:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    macs: int  # per sample
    parameter_bytes: int  # weights at their bit width, biases and requant tables
    activation_bytes: int  # output tensor, per sample
    host_reason: str = ""  # why a host op is not on the device ("" for a device op)


def layer_summaries(graph: ir.Graph) -> list[LayerSummary]:
    """Per op: output shape, MACs, parameter and activation sizes (batch of one), and for a
    host op why it is not on the device."""
    from verdigris.compiler import ir

    rows = []
    for node in graph.nodes:
        out = graph.tensors[node.output]
        batch = out.shape[0] if out.shape else 1
        parameters = 0
        weight = getattr(node, "weight", None)
        if weight is not None:
            parameters += (weight.size * node.weight_bits + 7) // 8 + 4 * node.bias.size
        requant = getattr(node, "requant", None)
        if requant is not None:
            parameters += 8 * requant.multiplier.size  # 32-bit multiplier + shift per channel
            if requant.table is not None:
                parameters += requant.table.size  # an int8 entry per value (and channel)
        element_bytes = (out.dtype.bits + 7) // 8
        rows.append(
            LayerSummary(
                node.name,
                node.kind,
                out.shape,
                ir.macs(node, graph) // max(batch, 1),
                parameters,
                int(np.prod(out.shape[1:])) * element_bytes,
                node.reason if isinstance(node, ir.HostOp) else "",
            )
        )
    return rows


@dataclass(frozen=True)
class LayerCycles:
    name: str
    kind: str
    instructions: int
    cycles: int  # the layer's window: from the previous layer's end to its own (the last
    # layer's to the end of the run)
    macs: int  # useful MACs
    ideal_cycles: int  # MACs / PEs: a perfectly used array
    utilization: float


@dataclass(frozen=True)
class ProgramReport:
    layers: tuple[LayerCycles, ...]
    cycles: int
    macs: int
    ideal_cycles: int
    utilization: float
    activity: Activity


def program_report(
    program: Program, *, progress: Callable[[int, int], None] | None = None
) -> ProgramReport:
    """Per-layer cycles and PE utilization of one run of `program` on the instruction
    simulator (cycles do not depend on the data; inputs are zeros). Host calls take no
    device cycles. `progress(done, total)` hears the instructions simulated."""
    from verdigris.sim.isasim import run_program as isasim_run

    inputs = {b.name: np.zeros(b.shape, np.int64) for b in program.inputs}
    _, activity = isasim_run(program, inputs, progress=progress)
    pes = program.config.pe_count
    rows = []
    for layer, measured in zip(program.layers, activity.layers, strict=True):
        cycles = measured.activity.cycles  # its window (docs/isa.md, "Activity per layer")
        rows.append(
            LayerCycles(
                layer.name,
                layer.kind,
                layer.last - layer.first,
                cycles,
                layer.macs,
                -(-layer.macs // pes),
                pe_utilization(layer.macs, cycles, pes),
            )
        )
    macs = sum(layer.macs for layer in program.layers)
    return ProgramReport(
        tuple(rows),
        activity.cycles,
        macs,
        -(-macs // pes),
        pe_utilization(macs, activity.cycles, pes),
        activity,
    )


@dataclass(frozen=True)
class EnergyRun:
    """An energy report and the run it prices: the Program that ran, its outputs and the
    Activity (total and per layer) the report was computed from."""

    report: EnergyReport
    program: Program
    activity: Activity
    outputs: dict[str, np.ndarray]


def energy_report_of(
    model: str | Path | ir.Graph | Program,
    inputs: str | Path | Mapping[str, np.ndarray],
    *,
    config: str | Path | AccelConfig | None = None,
    backend: str = "isasim",
    table: str | Path | EnergyTable = "asic-45nm",
    grid_intensity: float | None = None,
    dram: bool = False,
    calibrate: str | Path | np.ndarray | Mapping[str, np.ndarray] | None = None,
    progress: BuildProgress | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
    simulation_progress: Callable[[int, int], None] | None = None,
    port: str | None = None,
    baud: int = DEFAULT_BAUD,
    load_progress: Callable[[int, int], None] | None = None,
) -> EnergyRun:
    """Run `model` (an ONNX path, an imported graph, or a Program or .vgp path) on the
    user's `inputs` (arrays by input name, or a .npy/.npz file) on a Program backend
    (isasim, rtl, board or board-sim), and price the run's Activity with `table` (a shipped
    table's name, a TOML file or an EnergyTable): `energy_report` with the Program, so per
    layer with its floor.

    A model is compiled for `config` (default: `default`); a Program runs on its own config,
    which `config`, when given, must match. Every sample of the inputs is one inference:
    zero-operand MACs depend on the data, so the inputs should be real ones (constant
    inputs, such as all zeros, are logged as a warning). `grid_intensity` is gCO2 per
    kWh (default: Ember's 2023 world average, 480). `progress`, `simulation_progress`,
    `port`, `baud` and `load_progress` as for `run_program`."""
    from verdigris.energy import DEFAULT_GRID_INTENSITY, energy_report, load_table

    if backend not in PROGRAM_BACKENDS:
        raise ValueError(
            f"backend {backend!r} counts no cycles or bytes to price; use "
            f"{', '.join(PROGRAM_BACKENDS)}"
        )
    if not isinstance(table, EnergyTable):
        table = load_table(table)
    grid_intensity = DEFAULT_GRID_INTENSITY if grid_intensity is None else grid_intensity
    if not (grid_intensity >= 0 and np.isfinite(grid_intensity)):
        raise ValueError(f"grid intensity must be a finite number >= 0, not {grid_intensity}")
    program = _program_of(model, config, calibrate, input_shapes, batch)
    if not isinstance(inputs, Mapping):
        inputs = read_inputs(inputs, program)
    samples = {len(np.asarray(value)) for value in inputs.values()}
    if all(np.ptp(np.asarray(value)) == 0 for value in inputs.values() if np.size(value)):
        logger.warning(
            "the inputs are constant (every element the same): zero-operand MACs, and so the "
            "energy, depend on the data; give real inputs for a real figure"
        )
    outputs, activity = run_program(
        program,
        inputs,
        backend=backend,
        progress=progress,
        simulation_progress=simulation_progress,
        port=port,
        baud=baud,
        load_progress=load_progress,
    )
    program_batch = program.inputs[0].shape[0] if program.inputs else 1
    inferences = max(samples) if samples else program_batch
    report = energy_report(
        activity,
        program.config,
        table,
        program=program,
        runs=max(1, inferences // program_batch),
        inferences=inferences,
        dram=dram,
        grid_intensity=grid_intensity,
    )
    return EnergyRun(report, program, activity, outputs)


def _program_of(
    model: str | Path | ir.Graph | Program,
    config: str | Path | AccelConfig | None,
    calibrate: str | Path | np.ndarray | Mapping[str, np.ndarray] | None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
) -> Program:
    """The Program `model` is, or compiles into for `config` (default: `default`)."""
    from verdigris.arch.program import load_program

    if config is not None and not isinstance(config, AccelConfig):
        config = load_config(config)
    if isinstance(model, Program):
        if config is not None and model.config != config:
            raise ValueError(
                f"the program was compiled for config {model.config.name!r}, not "
                f"{config.name!r}; compile the model for that config"
            )
        return model
    if isinstance(model, str | Path) and has_suffix(model, ".vgp"):
        return load_program(model, config=config)
    return compile_model(
        model, config or "default", calibrate=calibrate, input_shapes=input_shapes, batch=batch
    )


# The errors a sweep point may meet that say something about the point (its config cannot
# be built or compiled for, the inputs do not fit it), not about Verdigris.
def _point_errors() -> tuple[type[Exception], ...]:
    from verdigris.arch.config import ConfigError
    from verdigris.compiler.backend import CompileError
    from verdigris.compiler.frontend.errors import ModelError
    from verdigris.energy import EnergyTableError
    from verdigris.sim.host import InputError

    return (ConfigError, CompileError, ModelError, InputError, EnergyTableError, UserFileError)


def code_digest() -> str:
    """A digest of the code that decides a sweep point's figures (the contract, compiler,
    executors and energy model, with their data files): a cached point is reused only by
    the very code that computed it."""
    import verdigris

    digest = hashlib.sha256(verdigris.__version__.encode())
    for package in ("arch", "compiler", "sim", "energy"):
        folder = Path(importlib.import_module(f"verdigris.{package}").__file__).parent
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".py", ".toml", ".cpp") and path.is_file():
                digest.update(str(path.relative_to(folder.parent)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def sweep_point(task: SweepTask) -> dict:
    """One point of a design-space sweep (`verdigris.energy.sweep`): compile the task's
    model for its config, run it on the instruction simulator on the task's inputs and
    price the run. Returns the point's record: `status` "ok" and its figures, or "failed"
    and the `reason` (a config that cannot be built or compiled for, inputs that do not
    fit); an unexpected error gives status "error" (not cached). Runs anywhere: the task
    carries the model, the inputs and a user's table as bytes."""
    from verdigris.energy.sweep import record_of

    with tempfile.TemporaryDirectory(prefix="verdigris-sweep-") as folder:
        model = Path(folder, task.model_name)
        model.write_bytes(task.model_data)
        inputs = Path(folder, task.input_name)
        inputs.write_bytes(task.input_data)
        table: str | Path = task.table
        if task.table_data is not None:
            table = Path(folder, task.table)
            table.write_bytes(task.table_data)
        try:
            config = AccelConfig(**task.config)
            run = energy_report_of(
                model,
                inputs,
                config=config,
                backend="isasim",
                table=table,
                grid_intensity=task.grid_intensity,
            )
        except _point_errors() as error:
            return {"status": "failed", "reason": str(error).replace(folder + os.sep, "")}
        except Exception as error:  # a bug, reported with the point rather than ending the sweep
            logger.exception("sweep point %s", task.label)
            return {"status": "error", "reason": f"internal error: {type(error).__name__}: {error}"}
    return record_of(run.report, config)
