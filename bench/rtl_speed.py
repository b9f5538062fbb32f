"""Verilated core: build time and simulation speed in cycles per second (config `default`).

Two ways to run the core: the C++ harness (no VPI; what `--backend rtl` uses; main memory and
the code memory in C++) and the cocotb bench (VPI makes every signal public, which slows the
model; the memories in block RAM inside the design). As a baseline, the harness also runs
the core without input registers (`CoreTop(registered=False)`; hw/core_top.py says why that
is slower). Neither steps the
clock from Python: the speed is cycles / wall time from start to done. Runs a 256x256x256
GEMM (about 270k cycles) and the shipped ResNet, and checks both against isasim. Last, the
wall time of the CLI command `verdigris run ... --backend rtl` on one image with the core
cached (goal: under 2 s).

Builds go to a temporary folder, removed at the end. Lines starting with "..." say what is
running while nothing else is printed.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from backend_cycles import gemm_graph  # bench/ is on sys.path when a script there runs

from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import build_core, run_fast, run_on_rtl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Runs of each job through the harness; the best shows the simulator, not this shared machine.
REPEATS = 5
# Runs of the CLI command with the core cached.
CLI_REPEATS = 3


def step(text: str) -> None:
    print(f"... {text}", flush=True)


class BuildSteps:
    """Prints a harness build's steps as they start (a BuildProgress)."""

    def __init__(self, what: str):
        self.what, self.last, self.start = what, None, time.perf_counter()

    def __call__(self, name: str, _done: int, _total: int) -> None:
        if name != self.last:
            seconds = time.perf_counter() - self.start
            step(f"{self.what}: {name} ({seconds:.0f} s)")
            self.last = name


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="verdigris-rtl-bench-") as folder:
        measure(Path(folder))


def measure(build_root: Path) -> None:
    config = load_config("default")
    step("building the 'default' core for cocotb (about a minute)")
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
    step("running the jobs on isasim")
    expected = [run_program(program, inputs) for program, inputs in jobs]
    cycles = [activity.cycles for _, activity in expected]
    start = time.perf_counter()
    progress = BuildSteps("C++ harness of the 'default' core")
    run_fast(jobs, expected_cycles=cycles, build_root=build_root, progress=progress)
    print(f"C++ harness build (once) and a run: {time.perf_counter() - start:.1f} s")
    # The registered top and the bare core take turns, so that a change in this shared
    # machine's load hits both alike.
    fast, bare = [], []
    progress = BuildSteps("C++ harness of the 'default' core without input registers")
    for turn in range(REPEATS):
        step(f"harness runs, turn {turn + 1} of {REPEATS}")
        fast += run_fast(jobs, expected_cycles=cycles, build_root=build_root)
        bare += run_fast(
            jobs, expected_cycles=cycles, build_root=build_root, bare_core=True, progress=progress
        )
    step("cocotb run (VPI; a few minutes)")
    slow = run_on_rtl(jobs, expected_cycles=cycles, build_root=build_root)
    ways = (
        ("C++ harness (--backend rtl)", fast),
        ("C++ harness, baseline: the core without input registers", bare),
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
            f"registered host inputs vs none, {name}: "
            f"{ratios[len(ratios) // 2]:.2f}x (median of {len(ratios)} turns)"
        )
    cli_run_cached(build_root)


def cli_run_cached(build_root: Path) -> None:
    """Wall time of `verdigris run MODEL --input IMAGE --backend rtl` with the `default`
    core in `build_root` (run_fast built it there), as a user runs it."""
    model = EXAMPLES / "models" / "lenet_qdq.onnx"
    image = build_root / "one_image.npy"
    np.save(image, np.load(EXAMPLES / "digits_samples.npy")[:1])
    command = [str(Path(sys.executable).parent / "verdigris"), "run", str(model)]
    command += ["--input", str(image), "--backend", "rtl"]
    env = {**os.environ, "VERDIGRIS_BUILD_DIR": str(build_root)}
    step(f"`verdigris run {model.name} --input <one image> --backend rtl`, {CLI_REPEATS} times")
    seconds = []
    for _ in range(CLI_REPEATS):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0 or "compiling" in done.stderr:  # failed, or built the core
            raise SystemExit(f"the CLI run failed or built the core:\n{done.stderr}")
    seconds.sort()
    print(
        f"verdigris run {model.name} --backend rtl, one image, core cached: "
        f"{seconds[len(seconds) // 2]:.2f} s wall (median of {CLI_REPEATS}; best "
        f"{seconds[0]:.2f} s; goal under 2 s)"
    )


if __name__ == "__main__":
    main()
