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
# Runs of each job through the harness; the best shows the simulator, not this shared machine.
REPEATS = 5


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
    run_fast(jobs, expected_cycles=cycles, build_root=build_root)
    print(f"C++ harness build (once) and a run: {time.perf_counter() - start:.1f} s")
    # The registered top and the bare core take turns, so that a change in this shared
    # machine's load hits both alike.
    fast, bare = [], []
    for _ in range(REPEATS):
        fast += run_fast(jobs, expected_cycles=cycles, build_root=build_root)
        bare += run_fast(jobs, expected_cycles=cycles, build_root=build_root, bare_core=True)
    slow = run_on_rtl(jobs, expected_cycles=cycles, build_root=build_root)
    ways = (
        ("C++ harness (--backend rtl)", fast),
        ("C++ harness, baseline: the bare Core, inputs not registered", bare),
        ("cocotb bench (VPI), one run", slow),
    )
    for way, results in ways:
        print(way)
        for index, (name, (outputs, activity)) in enumerate(zip(names, expected, strict=True)):
            runs = results[index :: len(jobs)]
            exact = all(np.array_equal(outputs[k], r.outputs[k]) for r in runs for k in outputs)
            same = all(r.activity == activity for r in runs)
            speeds = sorted(activity.cycles / r.seconds for r in runs)
            spread = f" (best of {len(runs)}; slowest {speeds[0]:,.0f})" if len(runs) > 1 else ""
            print(
                f"  {name:<12} {activity.cycles:>9,} cycles: {speeds[-1]:>10,.0f} cycles/s"
                f"{spread}; outputs {'bit-exact' if exact else 'DIFFER'}, counters "
                f"{'equal' if same else 'DIFFER'} to isasim"
            )
    for index, name in enumerate(names):
        pairs = zip(fast[index :: len(jobs)], bare[index :: len(jobs)], strict=True)
        ratios = sorted(b.seconds / f.seconds for f, b in pairs)
        print(
            f"registered host inputs (CoreTop) vs bare Core, {name}: "
            f"{ratios[len(ratios) // 2]:.2f}x (median of {len(ratios)} turns)"
        )


if __name__ == "__main__":
    main()
