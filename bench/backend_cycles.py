"""Compile time, cycles and PE utilization of every shipped model on every preset, per layer
and overall, beside the cycles an ideal array would need; and a 256x256x256 GEMM on the 8x8
`default` array (goal: at least 95% utilization, so loads hide behind compute).

Cycles come from the instruction simulator's cycle model (docs/isa.md). "ideal" is
MACs / PEs: every PE busy every cycle, no loads, no fill or drain.
"""

import sys
import time
from pathlib import Path

import numpy as np

from verdigris.api import program_report
from verdigris.arch.activity import pe_utilization
from verdigris.arch.config import load_config
from verdigris.compiler import ir
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.compiler.quantize import make_requant
from verdigris.sim.golden import run_device
from verdigris.sim.isasim import run_program

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PER_LAYER = "--totals" not in sys.argv


def gemm_graph(m: int, k: int, n: int) -> ir.Graph:
    rng = np.random.default_rng(0)
    x = ir.Tensor("x", (m, k), ir.INT8, 0.02, 3)
    y = ir.Tensor("y", (m, n), ir.INT8, 0.05, -2)
    weight = rng.integers(-128, 128, (k, n))
    bias = rng.integers(-1000, 1000, n) - 3 * weight.sum(axis=0)
    node = ir.MatMul(
        "gemm",
        ("x",),
        "y",
        weight,
        8,
        bias,
        3,
        make_requant(rng.uniform(1e-5, 1e-4, n), -2, (-128, 127)),
    )
    inputs = (ir.GraphInput("x", x, "int8"),)
    outputs = (ir.GraphOutput("y", y, "int8"),)
    return ir.Graph(f"gemm{m}x{k}x{n}", inputs, (node,), outputs, {"x": x, "y": y}, False)


def report_model(name: str, graph: ir.Graph, config_name: str) -> None:
    config = load_config(config_name)
    start = time.perf_counter()
    program = compile_graph(graph, config)
    compile_s = time.perf_counter() - start
    report = program_report(program)
    print(
        f"{name:<18} {config_name:<8} {compile_s * 1000:>8.1f} {len(program.instructions):>6} "
        f"{report.cycles:>10,} {report.ideal_cycles:>9,} {report.utilization:>6.1%}"
    )
    if PER_LAYER:
        for layer in report.layers:
            if layer.cycles:
                print(
                    f"    {layer.name[:34]:<34} {layer.kind:<9} {layer.cycles:>9,} "
                    f"{layer.ideal_cycles:>8,} {layer.utilization:>6.1%}"
                )


def main() -> None:
    print(
        f"{'model':<18} {'config':<8} {'compile ms':>10} {'instr':>6} {'cycles':>10} "
        f"{'ideal':>9} {'util':>6}"
    )
    for path in sorted((EXAMPLES / "models").glob("*_qdq.onnx")):
        graph = import_model(path)
        for config_name in ("tiny", "default", "large"):
            report_model(path.stem, graph, config_name)

    print("\n256x256x256 int8 GEMM:")
    graph = gemm_graph(256, 256, 256)
    for config_name in ("default", "large"):
        report_model("gemm256", graph, config_name)
    # Check the big GEMM is also bit-exact.
    program = compile_graph(graph, load_config("default"))
    x = np.random.default_rng(1).integers(-128, 128, (256, 256))
    outputs, activity = run_program(program, {"x": x})
    assert np.array_equal(outputs["y"], run_device(graph, {"x": x})["y"]), "GEMM mismatch"
    utilization = pe_utilization(256**3, activity.cycles, program.config.pe_count)
    verdict = "meets" if utilization >= 0.95 else "MISSES"
    print(
        f"gemm256 on default: {activity.cycles:,} cycles, ideal {256**3 // 64:,}, "
        f"utilization {utilization:.1%} ({verdict} the 95% goal), bit-exact with golden"
    )


if __name__ == "__main__":
    main()
