"""Verilated core: build time and simulation speed in cycles per second (config `default`).

Two ways to run the same Verilog: the C++ harness (no VPI; what `--backend rtl` uses) and
the cocotb bench (VPI makes every signal public, which slows the model). As a baseline, the
harness also runs the bare `Core`, whose host inputs are not registered (hw/core_top.py says
why that is slower). Neither steps the
clock from Python: the speed is cycles / wall time from start to done. Runs a 256x256x256
GEMM (about 270k cycles) and the shipped ResNet, and checks both against isasim.
"""

import tempfile
import time
from pathlib import Path

import numpy as np
from backend_cycles import gemm_graph  # bench/ is on sys.path when a script there runs

from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import quantize_input
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import build_core, run_fast, run_on_rtl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    config = load_config("default")
    build_root = Path(tempfile.mkdtemp(prefix="verdigris-rtl-bench-"))
    start = time.perf_counter()
    build_core(config, build_root=build_root)
    print(f"Verilator build of the 'default' core for cocotb: {time.perf_counter() - start:.1f} s")

    jobs, names = [], []
    gemm = gemm_graph(256, 256, 256)
    x = np.random.default_rng(0).integers(-128, 128, (256, 256))
    jobs.append((compile_graph(gemm, config), {"x": x}))
    names.append("gemm 256^3")
    resnet = import_model(EXAMPLES / "models" / "resnet_qdq.onnx")
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    jobs.append(
        (
            compile_graph(resnet, config),
            {resnet.inputs[0].tensor.name: quantize_input(resnet.inputs[0], sample)},
        )
    )
    names.append("resnet_qdq")
    expected = [run_program(program, inputs) for program, inputs in jobs]
    cycles = [activity.cycles for _, activity in expected]
    start = time.perf_counter()
    fast = run_fast(jobs, expected_cycles=cycles, build_root=build_root)
    print(f"C++ harness build (once) and run: {time.perf_counter() - start:.1f} s")
    bare = run_fast(jobs, expected_cycles=cycles, build_root=build_root, bare_core=True)
    slow = run_on_rtl(jobs, expected_cycles=cycles, build_root=build_root)
    ways = (
        ("C++ harness (--backend rtl)", fast),
        ("C++ harness, baseline: the bare Core, inputs not registered", bare),
        ("cocotb bench (VPI)", slow),
    )
    for way, results in ways:
        print(way)
        for name, (outputs, activity), result in zip(names, expected, results, strict=True):
            exact = all(np.array_equal(outputs[k], result.outputs[k]) for k in outputs)
            same = result.activity == activity
            print(
                f"  {name:<12} {result.activity.cycles:>9,} cycles in {result.seconds:6.2f} s = "
                f"{result.activity.cycles / result.seconds:>12,.0f} cycles/s; outputs "
                f"{'bit-exact' if exact else 'DIFFER'}, counters {'equal' if same else 'DIFFER'}"
                " to isasim"
            )
    for name, top, base in zip(names, fast, bare, strict=True):
        speedup = (top.activity.cycles / top.seconds) / (base.activity.cycles / base.seconds)
        print(f"registered host inputs (CoreTop) vs bare Core, {name}: {speedup:.2f}x")


if __name__ == "__main__":
    main()
