"""Real architectures, measured: every model of the corpus (examples/make_corpus.py) in
every form (QDQ, QOperator, float + calibration), imported, compiled for `xl`, run on golden
against onnxruntime (graph optimizations off) on the calibration images, and on the
instruction simulator against golden.

One row per model and form: import and compile time, device and host ops (and the model's
host ops that run as lookup tables on the device), then golden
against onnxruntime (top-1 agreement, the share of outputs within one output LSB, the
largest difference in LSBs), the instruction simulator on the first image (bit-identical to
golden or not, cycles, PE utilization, its time) and onnxruntime's time for that image; or
the error that stopped it. Then the blockers, ranked by how many models (architectures) each
blocks. Errors are data: the project's typed errors (ModelError, CompileError, ...) are what
a user would see; any other exception is a finding of its own and is flagged `UNEXPECTED`.

    python bench/corpus.py [--models resnet50,squeezenet] [--corpus DIR] [--config xl]

Without the corpus it says how to build it and exits 0 (so `make bench` passes).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

CORPUS = Path.home() / ".cache" / "verdigris" / "corpus"
FORMS = ("qdq", "qop", "fp32")
# The preset with room for ImageNet-class models at 224x224.
CONFIG = "xl"


def typed_errors() -> tuple[type[Exception], ...]:
    """The errors a user can hit, as opposed to bugs."""
    from verdigris.arch.config import ConfigError
    from verdigris.compiler.backend import CompileError
    from verdigris.compiler.frontend.errors import ModelError
    from verdigris.files import UserFileError
    from verdigris.sim.host import InputError
    from verdigris.sim.host_ops import HostOpError

    return (ModelError, CompileError, ConfigError, InputError, HostOpError, UserFileError)


def first_line(error: BaseException, corpus: Path) -> str:
    """The error's first line, without the corpus folder; for a list of unsupported nodes,
    the op types and how many nodes of each."""
    from verdigris.compiler.frontend.errors import UnsupportedModelError

    text = str(error).replace(str(corpus) + "/", "").strip()
    line = text.splitlines()[0] if text else type(error).__name__
    if isinstance(error, UnsupportedModelError):
        counts: dict[str, int] = defaultdict(int)
        for problem in error.problems:
            counts[problem.op_type] += 1
        line += " " + ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))
    return line


def _general(text: str) -> str:
    """A message with its file name, numbers and quoted names blanked, so that one cause
    met in many models counts as one blocker."""
    text = re.sub(r"^[\w.-]+: ", "", text)  # the model's file or stem
    text = re.sub(r" in domain '[^']*'", "", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"\d[\d,._x]*", "N", text)


def blockers_of(error: BaseException, corpus: Path, expected: bool) -> list[str]:
    """What stopped a model: one entry per unsupported op type and reason, else the error."""
    from verdigris.compiler.frontend.errors import UnsupportedModelError

    if isinstance(error, UnsupportedModelError):  # QLinearMul blocks what Mul blocks
        return sorted(
            {
                f"{p.op_type.removeprefix('QLinear')}: "
                + _general(p.reason.replace(p.op_type, p.op_type.removeprefix("QLinear")))
                for p in error.problems
            }
        )
    kind = type(error).__name__ if expected else f"UNEXPECTED {type(error).__name__}"
    return [f"{kind}: {_general(first_line(error, corpus))}"]


def onnxruntime_outputs(model, images: np.ndarray, input_name: str) -> tuple[np.ndarray, float]:
    """The first output of `model` (path or ModelProto) on onnxruntime, one image at a time
    (the light models' batch is fixed at 1), graph optimizations off; and the seconds the
    first image took."""
    from verdigris.verify.reference import run_onnxruntime

    rows, first = [], 0.0
    for i in range(len(images)):
        start = time.perf_counter()
        rows.append(next(iter(run_onnxruntime(model, {input_name: images[i : i + 1]}).values())))
        first = first or time.perf_counter() - start
    return np.concatenate(rows), first


def compare(graph, model, images: np.ndarray, row: dict) -> None:
    """Golden against onnxruntime on the same quantized model: top-1 agreement, the share of
    outputs within one LSB of the output and the largest difference in LSBs."""
    from verdigris.api import run
    from verdigris.compiler import ir

    (graph_input,) = graph.inputs
    golden = next(iter(run(graph, {graph_input.name: images}).values()))
    reference, row["ort_s"] = onnxruntime_outputs(model, images, graph_input.name)
    golden = golden.reshape(len(images), -1).astype(np.float64)
    reference = reference.reshape(len(images), -1).astype(np.float64)
    steps = graph.outputs[0].steps
    lsb = next((s.scale for s in reversed(steps) if isinstance(s, ir.Dequantize)), 1.0)
    error = np.abs(golden - reference) / lsb
    row["top1"] = f"{int((golden.argmax(1) == reference.argmax(1)).sum())}/{len(images)}"
    row["within"] = float(np.mean(error <= 1 + 1e-3))
    row["max_lsb"] = float(error.max())


def layer_check(graph, model, image: np.ndarray, row: dict) -> None:
    """Each op on its own, fed onnxruntime's own integer inputs, against onnxruntime's
    output for it: the share of output elements that differ and the largest difference (in
    LSBs). Deep networks turn rare one-LSB differences (float noise at a rounding tie) into
    larger ones downstream; this shows what each op contributes."""
    import onnx
    from onnx import helper

    from verdigris.sim.golden import run_op
    from verdigris.verify.reference import run_onnxruntime

    model = onnx.load(model) if not isinstance(model, onnx.ModelProto) else model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = [
        name
        for node in model.graph.node
        for name in node.output
        if name in graph.tensors and name not in {o.name for o in model.graph.output}
    ]
    elem = {onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8"}
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.output)}
    wanted = [name for name in wanted if types.get(name) in elem]
    for name in wanted:
        probe.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
    (graph_input,) = graph.inputs
    values = run_onnxruntime(probe, {graph_input.name: image[None]})
    device = {  # uint8 tensors are int8 on the device (zero point - 128)
        name: values[name].astype(np.int64) - (128 if values[name].dtype == np.uint8 else 0)
        for name in wanted
    }
    differ = total = worst = 0
    for node in graph.nodes:
        if node.output not in device or any(name not in device for name in node.inputs):
            continue
        error = np.abs(run_op(node, [device[name] for name in node.inputs]) - device[node.output])
        differ, total = differ + int((error > 0).sum()), total + error.size
        worst = max(worst, int(error.max(initial=0)))
    row["layer_differ"] = differ / max(total, 1)
    row["layer_max"] = worst


def simulate(graph, program, image: np.ndarray, row: dict) -> None:
    """The instruction simulator on one image against golden (raw integers): bit-identical
    or not, cycles, PE utilization, seconds."""
    from verdigris.api import program_utilization, run, run_program

    (graph_input,) = graph.inputs
    feeds = {graph_input.name: image[None]}
    start = time.perf_counter()
    outputs, activity = run_program(program, feeds, backend="isasim", raw=True)
    row["isasim_s"] = time.perf_counter() - start
    golden = run(graph, feeds, raw=True)
    row["exact"] = all(np.array_equal(outputs[k], golden[k]) for k in golden)
    row["cycles"] = activity.cycles
    row["utilization"] = program_utilization(program, activity, 1)


def measure(name: str, form: str, corpus: Path, config: str) -> dict:
    """Import, compile, compare and simulate one model in one form; a row of the table."""
    from verdigris.api import compile_model, load_model
    from verdigris.arch.config import load_config
    from verdigris.compiler import ir
    from verdigris.compiler.frontend.calibrate import quantize_float_model
    from verdigris.compiler.passes import lookups_on_device
    from verdigris.sim.host import run_host_compute

    row = {"model": name, "form": form, "import": None, "compile": None}
    images = np.load(corpus / f"{name}_calib.npy")
    path = corpus / f"{name}_{form}.onnx"
    if not path.exists():
        row["status"] = f"missing {path.name} (make_corpus.py could not quantize it)"
        row["blockers"] = ["onnxruntime could not quantize the float model"]
        return row
    step, start = "import", time.perf_counter()
    try:
        graph = load_model(path, calibrate=images if form == "fp32" else None)
        row["import"] = time.perf_counter() - start
        # Where the compiled program runs each op: element-wise host ops become lookup
        # tables on the device as far as the config holds them.
        placed = lookups_on_device(graph, load_config(config), run_host_compute)
        hosted = sum(isinstance(node, ir.HostOp) for node in placed.nodes)
        tabled = sum(isinstance(node, ir.HostOp) for node in graph.nodes) - hosted
        row["ops"] = f"{len(placed.nodes) - hosted}/{hosted}/{tabled}"
        step = "compile"
        start = time.perf_counter()
        program = compile_model(graph, config)
        row["compile"] = time.perf_counter() - start
        step = "golden"
        reference = path
        if form == "fp32":  # onnxruntime runs the same quantized model that was imported
            (graph_input,) = graph.inputs
            reference = quantize_float_model(path, {graph_input.name: images})
        compare(graph, reference, images, row)
        layer_check(graph, reference, images[0], row)
        step = "isasim"
        simulate(graph, program, images[0], row)
        row["status"], row["blockers"] = "ok", []
    except typed_errors() as error:
        row["status"] = f"{step}: {first_line(error, corpus)}"
        row["blockers"] = blockers_of(error, corpus, expected=True)
    except Exception as error:  # a bug in Verdigris: a finding, reported with the rest
        row["status"] = f"{step}: UNEXPECTED {type(error).__name__}: {first_line(error, corpus)}"
        row["blockers"] = blockers_of(error, corpus, expected=False)
    if step in ("import", "compile"):  # the time it took to fail
        row[step] = time.perf_counter() - start
    return row


def result(row: dict) -> str:
    """A row's outcome: its measurements, or the error that stopped it."""
    if row["status"] != "ok":
        return row["status"]
    exact = "==" if row["exact"] else "!="
    return (
        f"{row['ops']:>10} {row['top1']:>5} {row['within']:>7.2%} {row['max_lsb']:>6.1f} "
        f"{row['layer_differ']:>8.4%} {row['layer_max']:>3} "
        f"{exact:>5} {row['cycles']:>12,} {row['utilization']:>6.1%} {row['isasim_s']:>8.2f} "
        f"{row['ort_s']:>6.3f}"
    )


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus cache")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--forms", default=",".join(FORMS), help="qdq,qop,fp32")
    parser.add_argument("--config", default=CONFIG, help="preset to compile for")
    args = parser.parse_args(argv)
    # onnxruntime's quantizer and the calibration log chatter on every model.
    logging.basicConfig(level=logging.ERROR, force=True)

    names = sorted(p.name.removesuffix("_calib.npy") for p in args.corpus.glob("*_calib.npy"))
    if not names:
        print(
            f"no corpus in {args.corpus}: build it (a few minutes, offline) with\n"
            f"    python examples/make_corpus.py --out {args.corpus}"
        )
        return 0
    if args.models:
        wanted = args.models.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"not in the corpus: {unknown}; it has {', '.join(names)}")
        names = wanted
    forms = args.forms.split(",")

    print(f"corpus {args.corpus}, compiled for {args.config!r}")
    print(
        "ops: device/host/lookups (host ops of the model run as lookup tables); top-1, "
        "within 1 LSB, max LSBs: golden vs onnxruntime on the "
        "calibration images; per op: each op fed onnxruntime's own inputs, the share of "
        "its outputs that differ and the largest difference; isasim: the first image, "
        "against golden (==: bit-identical)"
    )
    print(
        f"{'model':<14} {'form':<5} {'import s':>8} {'compile s':>9} {'ops':>10} {'top-1':>5} "
        f"{'1 LSB':>7} {'max':>6} {'per op':>8} {'max':>3} {'isa':>5} {'cycles':>12} "
        f"{'util':>6} {'isasim s':>8} {'ort s':>6}"
    )
    rows = []
    for name in names:
        for form in forms:
            row = measure(name, form, args.corpus, args.config)
            rows.append(row)
            print(
                f"{name:<14} {form:<5} {seconds(row['import']):>8} "
                f"{seconds(row['compile']):>9} {result(row)[:240]}",
                flush=True,
            )

    ok = sum(row["status"] == "ok" for row in rows)
    print(f"\n{ok} of {len(rows)} model/form pairs import, compile and run")
    blocked: dict[str, set[str]] = defaultdict(set)
    forms_blocked: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in rows:
        for blocker in row["blockers"]:
            blocked[blocker].add(row["model"])
            forms_blocked[blocker].add((row["model"], row["form"]))
    print("blockers, by the number of models (and model/form pairs) each blocks:")
    ranking = sorted(blocked, key=lambda b: (-len(blocked[b]), -len(forms_blocked[b]), b))
    if not ranking:
        print("  none")
    for blocker in ranking:
        models = ", ".join(sorted(blocked[blocker]))
        print(
            f"  {len(blocked[blocker]):>2} ({len(forms_blocked[blocker]):>2})  "
            f"{blocker[:140]}  [{models}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
