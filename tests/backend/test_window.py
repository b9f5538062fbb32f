"""Conv input windows kept on chip (compiler/backend/window.py): exact results, each input
byte read about once per band and group, and the cases that keep one tap per step."""

import dataclasses
import math

import numpy as np
import pytest

from tests.support.graphs import conv_graph, random_inputs
from verdigris.arch.config import load_config
from verdigris.arch.isa import Buffer, Deps, Gemm, Load
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.backend.lower import _sliced
from verdigris.compiler.backend.window import window_plan
from verdigris.sim.golden import run_device
from verdigris.sim.isasim import run_program

# A 4x4 array with room for whole images and all output blocks in one group: M-tiles as
# long with windows as without, so the window path is chosen (it reads less).
CONFIG = dataclasses.replace(
    load_config("tiny"), name="window", inp_rows=2048, acc_rows=1024, wgt_rows=256
)


def _conv(seed=0, **shape):
    """A conv that does not unroll its kernel rows (compiler/backend/unroll.py)."""
    rng = np.random.default_rng(seed)
    args = dict(n=1, c=8, h=11, w=13, oc=9, kernel=(3, 3), stride=1, pad=(1, 1, 1, 1))
    args |= dict(dilation=1, groups=1, zero_point=7, relu=False) | shape
    return conv_graph(rng, **args)


def _input_elements_read(instructions) -> int:
    """Input elements the LOADs of `instructions` read from main memory (fills read none)."""
    return sum(
        i.rows * i.elems
        for i in instructions
        if isinstance(i, Load) and i.buffer == Buffer.INP and not i.fill
    )


@pytest.mark.parametrize(
    "shape",
    [
        {"n": 2},
        {"stride": 2},
        {"stride": (2, 1), "pad": (0, 2, 1, 0)},
        {"kernel": (1, 3), "stride": 2, "dilation": 2},
        {"kernel": (3, 2), "pad": (2, 0, 0, 1), "dilation": 2},
        {"c": 8, "oc": 8, "groups": 8},  # depthwise
        {"c": 12, "oc": 6, "groups": 2},
    ],
    ids=[
        "3x3-batch2",
        "stride2",
        "stride2x1-pads",
        "1x3-dilated",
        "3x2-dilated",
        "depthwise",
        "groups",
    ],
)
def test_a_windowed_conv_is_exact_and_reads_its_input_at_most_once(shape):
    graph = _conv(**shape)
    x = graph.tensors["x"]
    program = compile_graph(graph, CONFIG)
    gemms = [i for i in program.instructions if isinstance(i, Gemm)]
    # One GEMM per output row: the window path, not one tap per step.
    out_w = graph.tensors["y"].shape[3]
    assert {g.rows for g in gemms} == {out_w}
    inputs = random_inputs(np.random.default_rng(1), graph)
    outputs, activity = run_program(program, inputs)
    assert np.array_equal(outputs["y"], run_device(graph, inputs)["y"])
    input_reads = _input_elements_read(program.instructions)
    # The whole image is one band and the output blocks one group: each input element is
    # read at most once (one tap per step would read it up to once per tap).
    assert input_reads <= math.prod(x.shape)
    assert activity.cycles > 0


@pytest.mark.parametrize(
    "shape",
    [
        {"w": 1},
        {"w": 4, "stride": (1, 2)},
        {"n": 2, "w": 3, "kernel": (3, 2), "pad": (2, 0, 0, 1), "dilation": 2},
        {"w": 2, "c": 8, "oc": 8, "groups": 8},  # depthwise
    ],
    ids=["3x3-width1", "stride1x2", "3x2-dilated-batch2", "depthwise"],
)
def test_short_output_rows_run_one_gemm_per_tap_from_column_copies(shape):
    graph = _conv(**shape)
    x = graph.tensors["x"]
    _, _, out_h, out_w = graph.tensors["y"].shape
    program = compile_graph(graph, CONFIG)
    gemms = [i for i in program.instructions if isinstance(i, Gemm)]
    # The band is the whole image: one GEMM per tap and block streams all of it.
    assert {g.rows for g in gemms} == {out_h * out_w}
    inputs = random_inputs(np.random.default_rng(2), graph)
    outputs, _ = run_program(program, inputs)
    assert np.array_equal(outputs["y"], run_device(graph, inputs)["y"])
    input_reads = _input_elements_read(program.instructions)
    # Each kernel column's copy reads the input once.
    assert input_reads <= graph.nodes[0].kernel[1] * math.prod(x.shape)


def test_one_tap_per_step_where_nothing_is_reused_or_a_row_does_not_fit():
    kwargs = dict(dim=4, inp_half=256, acc_half=128, wgt_half=128, row_words=1.0, weight_tiles=9)
    pointwise = _conv(kernel=(1, 1), pad=(0, 0, 0, 0)).nodes[0]
    assert window_plan(pointwise, (1, 8, 8, 8), (1, 4, 8, 8), **kwargs) is None
    conv = _conv().nodes[0]
    assert window_plan(conv, (1, 8, 8, 8), (1, 4, 8, 8), **kwargs) is not None
    # Three input rows of 100 columns do not fit 256 buffer rows.
    assert window_plan(conv, (1, 8, 8, 100), (1, 4, 8, 100), **kwargs) is None


def test_a_load_is_sliced_into_runs_of_about_equal_rows():
    first = Load(
        deps=Deps(),
        buffer=Buffer.INP,
        fill=False,
        buf_row=10,
        rows=7,
        elems=4,
        dram_addr=100,
        dram_stride=12,
    )
    fill = dataclasses.replace(first, fill=True, buf_row=17, rows=3, dram_addr=0, fill_value=5)
    slices = _sliced([first, fill], 3)
    assert [sum(load.rows for load in part) for part in slices] == [4, 4, 2]
    flat = [load for part in slices for load in part]
    assert [(load.buf_row, load.rows, load.dram_addr) for load in flat] == [
        (10, 4, 100),
        (14, 3, 148),
        (17, 1, 0),
        (18, 2, 0),
    ]


@pytest.mark.parametrize("stride", [1, 2])
def test_an_unrolled_conv_loads_each_input_row_once_per_band(stride):
    # C = 3 with a 5x5 kernel unrolls its kernel rows (unroll.py); the band's input rows
    # stay on chip, split by row phase, so each is loaded once per chunk, not once per
    # kernel row that reads it.
    graph = _conv(c=3, h=15, w=15, oc=6, kernel=(5, 5), stride=stride, pad=(2, 2, 2, 2))
    program = compile_graph(graph, CONFIG)
    conv = next(layer for layer in program.layers if layer.name == "conv")
    _, _, out_h, out_w = graph.tensors["y"].shape
    input_rows = sum(
        i.rows
        for i in program.instructions[conv.first : conv.last]
        if isinstance(i, Load) and i.buffer == Buffer.INP
    )
    chunks = math.ceil(5 * 3 / CONFIG.dim)
    padded_rows = 15 + 4
    assert input_rows <= chunks * padded_rows * out_w < chunks * 5 * out_h * out_w
    inputs = random_inputs(np.random.default_rng(3), graph)
    outputs, _ = run_program(program, inputs)
    assert np.array_equal(outputs["y"], run_device(graph, inputs)["y"])
