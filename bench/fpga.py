"""FPGA builds per board (`make bench-fpga`; slow: minutes per build, so not in `make bench`).

For each board (default: one of each ECP5 size with a serial port) and operand width, the
board's largest config (`verdigris.boards.fit.board_config`) is built with the open flow
(boards/build.py, seed 1), and the script prints per build: LUT4, FF, DSP and EBR used of
available, Fmax, the build's wall time, the peak GOPS at Fmax (two operations per product,
`8 / operand_bits` products per PE a cycle), and per shipped model the ECP5 energy estimate
per inference on that config (isasim's Activity on the first test image, the `ecp5`
table), or why it does not fit the board's memories.

    python bench/fpga.py [--boards ulx3s-25f,ulx3s-45f,ulx3s-85f] [--operand-bits 8,4]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from verdigris.api import compile_model, load_model, run_program
from verdigris.boards.build import BuildError, build_bitstream
from verdigris.boards.catalog import board
from verdigris.boards.fit import board_config
from verdigris.compiler.backend import CompileError
from verdigris.energy import energy_report, load_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lenet_qdq", "mlp_qdq", "mobilenet_qdq", "resnet_qdq")


def _energy(config, table, image) -> dict[str, str]:
    """µJ per inference of each shipped model on `config`, or why it cannot run there."""
    out = {}
    for name in MODELS:
        graph = load_model(ROOT / "examples" / "models" / f"{name}.onnx")
        try:
            program = compile_model(graph, config)
        except CompileError as error:
            out[name] = f"does not fit ({str(error).splitlines()[0][:60]})"
            continue
        _, activity = run_program(program, {graph.inputs[0].name: image}, backend="isasim")
        report = energy_report(activity, config, table, program=program, inferences=1)
        out[name] = f"{report.uj_per_inference:.3f} µJ"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="ulx3s-25f,ulx3s-45f,ulx3s-85f")
    parser.add_argument("--operand-bits", default="8")
    args = parser.parse_args()
    table = load_table("ecp5")
    failed = False
    image = np.load(ROOT / "examples" / "digits_samples.npy")[:1]
    for name in args.boards.split(","):
        target = board(name)
        for bits in map(int, args.operand_bits.split(",")):
            config = board_config(target, bits)
            folder = ROOT / "build" / "bench-fpga" / f"{name}-int{bits}"
            print(f"== {name} ({target.device}), {config.rows}x{config.cols} int{bits}", flush=True)
            start = time.monotonic()
            try:
                result = build_bitstream(target, config, folder, baud=115_200)
            except BuildError as error:
                print(f"   build failed after {time.monotonic() - start:.0f} s: {error}")
                failed = True
                continue
            for resource, (used, available) in result.used.items():
                print(f"   {resource:<5} {used:>7,} of {available:>7,}")
            products = config.rows * config.cols * (8 // bits)
            print(
                f"   Fmax {result.fmax_mhz:.1f} MHz (clock {result.clock_mhz:g} MHz), "
                f"built in {result.seconds:.0f} s, peak "
                f"{2 * products * result.fmax_mhz / 1e3:.2f} GOPS at Fmax"
            )
            for model, text in _energy(config, table, image).items():
                print(f"   {model:<14} {text}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
