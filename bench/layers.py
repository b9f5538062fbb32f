"""Single layers against SCALE-Sim: how busy Verdigris keeps its array, layer by layer.

Each layer is a one-op model with the shape of a row of SCALE-Sim's example topologies
(ResNet-18 and the MobileNet of the paper, `topologies/conv_nets/` in the SCALE-Sim
repository) or of LeNet-5, compiled for an 8x8 and a 16x16 array in both dataflows (`ws`,
`os`) and timed on the instruction simulator (the cycles the RTL takes too). As in SCALE-Sim
there is no padding: a 3x3 layer on 14x14 gives 12x12.

Printed per layer and array: Verdigris cycles, ideal cycles (MACs / PEs), PE utilization,
the cycles of SCALE-Sim's closed forms for the same array (`scalesim_cycles`), the ratio of
ours to the better of those two, and main-memory bytes read against the compulsory traffic
(input and weights once). Then, per array and dataflow, the geometric mean of the ratios.

    python bench/layers.py [--suite lenet,resnet18,mobilenet] [--arrays 8,16]

Issue #13 sets the goals: every layer below 1.0, the geometric mean at most 0.7, at most
1.2 times the compulsory reads on ResNet-18's convolutions.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from verdigris.api import program_report
from verdigris.arch.config import AccelConfig, load_config
from verdigris.compiler import ir
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.quantize import make_requant


@dataclass(frozen=True)
class Layer:
    """A convolution as SCALE-Sim's topology rows give it (an FC layer is 1x1 on 1x1);
    `depthwise`: one filter per channel (SCALE-Sim's rows give one channel of it)."""

    name: str
    height: int
    width: int
    kernel: int
    channels: int
    filters: int
    stride: int = 1
    depthwise: bool = False

    @property
    def out_pixels(self) -> int:
        rows = (self.height - self.kernel) // self.stride + 1
        cols = (self.width - self.kernel) // self.stride + 1
        return rows * cols

    @property
    def reduction(self) -> int:
        """K: the products summed into one output."""
        return self.kernel**2 * (1 if self.depthwise else self.channels)

    @property
    def macs(self) -> int:
        return self.out_pixels * self.reduction * self.filters


def _resnet18() -> list[Layer]:
    rows = [
        ("Conv1", 224, 7, 3, 64, 2),
        ("Conv2_1a", 56, 3, 64, 64, 1),
        ("Conv3_1a", 56, 3, 64, 128, 2),
        ("Conv3_1b", 28, 3, 128, 128, 1),
        ("Conv3_s", 56, 1, 64, 128, 2),
        ("Conv4_1a", 28, 3, 128, 256, 2),
        ("Conv4_1b", 14, 3, 256, 256, 1),
        ("Conv4_s", 28, 1, 128, 256, 2),
        ("Conv5_1a", 14, 3, 256, 512, 2),
        ("Conv5_1b", 7, 3, 512, 512, 1),
        ("Conv5_s", 14, 1, 256, 512, 2),
        ("FC", 1, 1, 512, 1000, 1),
    ]
    # Conv2_1b, 2_2a/b, 3_2a/b, 4_2a/b and 5_2a/b repeat the shapes of 2_1a, 3_1b, 4_1b, 5_1b.
    return [Layer(n, s, s, k, c, f, st) for n, s, k, c, f, st in rows]


def _mobilenet() -> list[Layer]:
    rows = [
        ("Conv1", 224, 3, 3, 32, 2, False),
        ("Conv2_dw", 112, 3, 32, 32, 1, True),
        ("Conv3", 112, 1, 32, 64, 1, False),
        ("Conv4_dw", 112, 3, 64, 64, 2, True),
        ("Conv5", 56, 1, 64, 128, 1, False),
        ("Conv9", 28, 1, 128, 256, 1, False),
        ("Conv10_dw", 28, 3, 256, 256, 1, True),
        ("Conv15", 14, 1, 512, 512, 1, False),
        ("Conv14_dw", 14, 3, 512, 512, 1, True),
        ("Conv19", 7, 1, 1024, 1024, 1, False),
        ("FC", 1, 1, 1024, 1000, 1, False),
    ]
    return [Layer(n, s, s, k, c, f, st, dw) for n, s, k, c, f, st, dw in rows]


def _lenet() -> list[Layer]:
    return [
        Layer("Conv1", 32, 32, 5, 1, 6),
        Layer("Conv2", 14, 14, 5, 6, 16),
        Layer("FC1", 1, 1, 1, 400, 120),
        Layer("FC2", 1, 1, 1, 120, 84),
        Layer("FC3", 1, 1, 1, 84, 10),
    ]


SUITES = {"lenet": _lenet, "resnet18": _resnet18, "mobilenet": _mobilenet}


def scalesim_cycles(layer: Layer, rows: int, cols: int) -> dict[str, int]:
    """SCALE-Sim 3.0's compute cycles for `layer` on a rows x cols array, in closed form:
    ws maps the reduction onto the rows and the filters onto the columns and streams the
    output pixels, folds x (T + 2R + C - 2); os maps output pixels onto the rows and filters
    onto the columns and streams the reduction, folds x (K + R + C - 2). A depthwise layer
    is its channels run one after another as single-filter convolutions."""
    pixels, k = layer.out_pixels, layer.reduction
    filters, repeat = (1, layer.channels) if layer.depthwise else (layer.filters, 1)
    ws = math.ceil(k / rows) * math.ceil(filters / cols) * (pixels + 2 * rows + cols - 2)
    os_ = math.ceil(pixels / rows) * math.ceil(filters / cols) * (k + rows + cols - 2)
    return {"ws": ws * repeat, "os": os_ * repeat}


def layer_graph(layer: Layer) -> ir.Graph:
    """The layer as a one-op int8 graph with seeded random weights (cycles do not depend on
    them): a Conv, or for an FC layer the MatMul that a model's Gemm imports as."""
    rng = np.random.default_rng(0)
    requant = make_requant(rng.uniform(1e-5, 1e-4, layer.filters), -2, (-128, 127))
    bias = rng.integers(-1000, 1000, layer.filters)
    if layer.height == 1 and layer.kernel == 1:
        x = ir.Tensor("x", (1, layer.channels), ir.INT8, 0.02, 3)
        y = ir.Tensor("y", (1, layer.filters), ir.INT8, 0.05, -2)
        weight = rng.integers(-128, 128, (layer.channels, layer.filters))
        node = ir.MatMul("layer", ("x",), "y", weight, 8, bias, 3, requant)
        return _one_op_graph(layer.name, node, x, y)
    in_channels = 1 if layer.depthwise else layer.channels
    out_hw = (layer.height - layer.kernel) // layer.stride + 1
    x = ir.Tensor("x", (1, layer.channels, layer.height, layer.width), ir.INT8, 0.02, 3)
    y = ir.Tensor("y", (1, layer.filters, out_hw, out_hw), ir.INT8, 0.05, -2)
    weight = rng.integers(-128, 128, (layer.filters, in_channels, layer.kernel, layer.kernel))
    groups = layer.channels if layer.depthwise else 1
    strides, pads, dilations = (layer.stride, layer.stride), (0, 0, 0, 0), (1, 1)
    node = ir.Conv(
        "layer", ("x",), "y", weight, 8, bias, 3, strides, pads, dilations, groups, requant
    )
    return _one_op_graph(layer.name, node, x, y)


def _one_op_graph(name: str, node: ir.Op, x: ir.Tensor, y: ir.Tensor) -> ir.Graph:
    inputs = (ir.GraphInput("x", x, "int8"),)
    outputs = (ir.GraphOutput("y", y, "int8"),)
    return ir.Graph(name, inputs, (node,), outputs, {"x": x, "y": y}, False)


def array_config(side: int, dataflow: str) -> AccelConfig:
    """`default` (8x8) or `large` (16x16) in the given dataflow, with main memory for the
    largest layer (ResNet-18's Conv1: 150 KB in, 800 KB out), room for its instructions,
    and a requant table for 1024 output channels (a layer's whole table is loaded at once)."""
    base = load_config({8: "default", 16: "large"}[side])
    return dataclasses.replace(
        base,
        name=f"{side}x{side}_{dataflow}",
        dataflow=dataflow,
        main_memory_bytes=8 * 2**20,
        instruction_capacity=2**22,
        req_rows=1024 // side,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="lenet,resnet18,mobilenet")
    parser.add_argument("--arrays", default="8,16")
    args = parser.parse_args()
    suites = args.suite.split(",")
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; known: {sorted(SUITES)}")
    arrays = [int(side) for side in args.arrays.split(",")]
    if any(side not in (8, 16) for side in arrays):
        parser.error("--arrays takes 8 and 16")
    print(
        f"{'layer':<20} {'array':<8} {'cycles':>11} {'ideal':>10} {'util':>6} "
        f"{'ss ws':>11} {'ss os':>11} {'ratio':>6} {'reads':>6}"
    )
    ratios: dict[str, list[float]] = {}
    for suite in suites:
        for layer in SUITES[suite]():
            graph = layer_graph(layer)
            for side in arrays:
                for dataflow in ("ws", "os"):
                    config = array_config(side, dataflow)
                    start = time.perf_counter()
                    report = program_report(compile_graph(graph, config))
                    seconds = time.perf_counter() - start
                    reference = scalesim_cycles(layer, side, side)
                    ratio = report.cycles / min(reference.values())
                    ratios.setdefault(config.name, []).append(ratio)
                    compulsory = layer.channels * layer.height * layer.width + (
                        layer.filters * layer.reduction
                    )
                    reads = report.activity.main_read_bytes / compulsory
                    print(
                        f"{suite[:8] + ' ' + layer.name:<20} {config.name:<8} "
                        f"{report.cycles:>11,} {report.ideal_cycles:>10,} "
                        f"{report.utilization:>6.1%} {reference['ws']:>11,} "
                        f"{reference['os']:>11,} {ratio:>6.2f} {reads:>5.1f}x"
                        f"  ({seconds:.1f} s)",
                        flush=True,
                    )
    print("\ngeometric mean of cycles / the better SCALE-Sim closed form:")
    for name, values in ratios.items():
        mean = math.exp(sum(math.log(v) for v in values) / len(values))
        print(f"  {name:<8} {mean:.2f} over {len(values)} layers (goal <= 0.7, each < 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
