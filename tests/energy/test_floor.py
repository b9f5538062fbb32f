"""The physical floor (docs/energy.md, "The floor") from the layers' true tensor sizes: a
one-layer model's floor by hand from its tensor shapes, the sizes the compiler records, the
fall-back for program files written before those sizes, and every layer of the shipped
models at or above its floor on both shipped tables."""

import math
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.program_files import header_of, with_header
from tests.support.tiny_models import conv, gemm, quantize
from verdigris.arch.config import load_config
from verdigris.arch.program import parse_program, program_bytes
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.energy import energy_report, layer_floors, load_table
from verdigris.energy.prices import prices
from verdigris.sim.isasim import run_program

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"
REQ_ENTRY_BYTES = 12  # bias and multiplier (int32), shift, zero point, qmin, qmax (docs/isa.md)


def _compile(model: onnx.ModelProto, config: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "model.onnx")
        onnx.save(model, path)
        graph = import_model(path)
    return compile_graph(graph, load_config(config))


def _main_pj_per_byte_tiny() -> float:
    """asic-45nm SRAM per byte at tiny's 48 KiB main memory, by hand: 64-bit reads of 20 pJ
    at 32 KB and 100 pJ at 1 MB, log-log between them."""
    return 20.0 * (49152 / 32768) ** (math.log(5) / math.log(32)) / 8


# (model, MACs, input bytes, weight bytes, output bytes), from the tensor shapes alone.
ONE_LAYER = {
    # x (1, 12) @ w (12, 5): 60 MACs; 60 weight bytes and 5 requant entries.
    "gemm": (lambda: quantize(gemm(k=12, n=5)), 60, 12, 60 + 5 * REQ_ENTRY_BYTES, 5),
    # Depthwise 3x3 over (1, 4, 7, 7), pad 1: 196 outputs of 9 MACs; 4 x 1 x 3 x 3 weights
    # (not the 4 x 4 x 3 x 3 dense matrix the array multiplies) and 4 requant entries.
    "depthwise": (
        lambda: quantize(conv(channels=4, out_channels=4, groups=4, size=7)),
        196 * 9,
        196,
        36 + 4 * REQ_ENTRY_BYTES,
        196,
    ),
}


@pytest.mark.parametrize("name", ONE_LAYER)
def test_a_one_layer_floor_by_hand(name):
    make, macs, inputs, weights, outputs = ONE_LAYER[name]
    program = _compile(make(), "tiny")
    (layer,) = program.layers
    assert (layer.input_bytes, layer.weight_bytes, layer.output_bytes) == (
        inputs,
        weights,
        outputs,
    )
    (floor,) = layer_floors(program, load_table("asic-45nm"))
    assert (floor.macs, floor.input_bytes, floor.param_bytes, floor.output_bytes) == (
        macs,
        inputs,
        weights,
        outputs,
    )
    # an ungated 8-bit multiply (0.2 pJ) and 32-bit add (0.1 pJ) per MAC; main memory
    # (on-chip SRAM) the same per byte read or written
    main = _main_pj_per_byte_tiny()
    assert floor.energy_pj == pytest.approx(macs * 0.3 + (inputs + weights + outputs) * main)


@pytest.fixture(scope="module")
def shipped():
    """Each shipped QDQ model compiled for tiny and default, with the Activity of one run on
    random inputs."""
    runs = {}
    for path in sorted(MODELS.glob("*_qdq.onnx")):
        graph = import_model(path)
        for config in ("tiny", "default"):
            program = compile_graph(graph, load_config(config))
            (binding,) = program.inputs
            x = np.random.default_rng(0).integers(-128, 128, binding.shape)
            runs[path.stem, config] = program, run_program(program, {binding.name: x})[1]
    return runs


def test_the_sizes_are_the_ir_tensors(shipped):
    """LeNet on default: the sizes from the shapes, and below the compiled layout's bytes."""
    program, _ = shipped["lenet_qdq", "default"]
    # The first conv's input with its padding columns is a copy the backend adds: data
    # movement, with no useful MACs and no floor of its own.
    copy, *model = program.layers
    assert copy.name == f"pad_columns({model[0].name})"
    assert (copy.macs, copy.input_bytes, copy.weight_bytes, copy.output_bytes) == (0, 0, 0, 0)
    sizes = {layer.kind + str(i): layer for i, layer in enumerate(model)}
    conv0 = sizes["Conv0"]
    assert conv0.output_shape == (1, 8, 8, 8)
    # input (1, 1, 8, 8); weights (8, 1, 3, 3) and 8 requant entries; output (1, 8, 8, 8)
    assert (conv0.input_bytes, conv0.weight_bytes, conv0.output_bytes) == (64, 72 + 96, 512)
    pool = sizes["MaxPool1"]  # its identity requant table is not its own
    assert (pool.input_bytes, pool.weight_bytes, pool.output_bytes) == (512, 0, 128)
    flatten = sizes["Reshape4"]
    assert (flatten.input_bytes, flatten.output_bytes) == (64, 64)
    for layer in model:
        assert layer.output_bytes == math.prod(layer.output_shape)  # int8 outputs
    assert parse_program(program_bytes(program)).layers == program.layers  # saved with them


def test_an_add_reads_both_operands(shipped):
    program, _ = shipped["resnet_qdq", "default"]
    adds = [layer for layer in program.layers if layer.kind == "Add"]
    assert adds
    for layer in adds:
        assert layer.input_bytes == 2 * layer.output_bytes
        # per-tensor requant: one row of the table (dim entries), no weights
        assert layer.weight_bytes == program.config.dim * REQ_ENTRY_BYTES


def test_a_strided_conv_counts_only_the_input_it_covers(shipped):
    """ResNet's shortcut, a 1x1 Conv of stride 2 over (1, 16, 8, 8): its windows cover
    every other row and column, a quarter of the input (the energy model's run reads no
    more, so counting the whole input would put the floor above it with DRAM prices)."""
    program, _ = shipped["resnet_qdq", "default"]
    (shortcut,) = [layer for layer in program.layers if "shortcut" in layer.name]
    assert shortcut.input_bytes == 16 * 4 * 4
    # a 3x3 Conv of stride 2 and pad 1 over the same input covers all of it
    (conv,) = [layer for layer in program.layers if layer.name == "/3/conv1/conv1.0/Conv"]
    assert conv.input_bytes == 16 * 8 * 8


def test_a_reshape_has_a_zero_floor(shipped):
    program, _ = shipped["lenet_qdq", "default"]
    floors = layer_floors(program, load_table("asic-45nm"))
    (reshape,) = [f for f in floors if f.op == "Reshape"]
    assert reshape.energy_pj == 0 and reshape.input_bytes == reshape.output_bytes == 0


def test_a_file_without_the_sizes_falls_back_to_the_bytes_touched(shipped):
    """A program file from before the sizes: the floor counts the distinct main-memory bytes
    its LOADs and STOREs touch, the compiled layout with its padding, so at or above the
    true floor, and above it where weight tiles are padded."""
    program, _ = shipped["lenet_qdq", "default"]
    data = program_bytes(program)
    header = header_of(data)
    for layer in header["layers"]:
        for key in ("input_bytes", "weight_bytes", "output_bytes"):
            del layer[key]
    old = parse_program(with_header(data, header))
    assert not any(layer.sizes_known for layer in old.layers)
    table = load_table("asic-45nm")
    true, touched = layer_floors(program, table), layer_floors(old, table)
    for t, f in zip(true, touched, strict=True):
        assert f.macs == t.macs
        assert f.input_bytes >= t.input_bytes and f.param_bytes >= t.param_bytes
        if t.output_bytes:  # not the padded copy the backend adds (no floor of its own)
            assert f.output_bytes == t.output_bytes
    # the first Conv (after the copy) runs its kernel rows unrolled: 3 taps of its one
    # input channel in one weight tile of 8 x 8 per kernel row, and one row of 8 requant
    # entries
    assert (touched[1].param_bytes, true[1].param_bytes) == (3 * 64 + 96, 72 + 96)
    assert sum(f.energy_pj for f in touched) > sum(f.energy_pj for f in true)


@pytest.mark.parametrize("table_name", ["asic-45nm", "ecp5"])
@pytest.mark.parametrize("dram", [False, True])
def test_every_shipped_layer_is_at_or_above_its_floor(shipped, table_name, dram):
    table = load_table(table_name)
    for (model, config), (program, activity) in shipped.items():
        report = energy_report(activity, program.config, table, program=program, dram=dram)
        for layer in report.layers:
            where = f"{model} on {config}, {layer.name}"
            assert layer.floor_pj is not None, where
            assert layer.energy_pj_total >= layer.floor_pj, where
            if layer.op != "Reshape" and not layer.name.startswith("pad_columns("):
                assert layer.floor_pj > 0, where
        assert report.energy_pj_total >= report.floor_pj > 0


def test_a_packed_layer_floor_prices_its_macs_and_bytes_at_its_width():
    """w2a2 on PEs of int2: conv2 and the FCs multiply packed int2, so their floor MACs cost
    a quarter of an int2 slot and their packed weights a quarter of the bytes; conv1 (8-bit
    input) stays at the int8 MAC."""
    graph = import_model(Path(__file__).parents[2] / "examples/models/lenet_w2a2_qonnx.onnx")
    table = load_table("asic-45nm")
    floors = {}
    for bits in (8, 2):
        config = replace(load_config("default"), operand_bits=bits)
        program = compile_graph(graph, config)
        floors[bits] = {floor.name: floor for floor in layer_floors(program, table)}
    p = prices(replace(load_config("default"), operand_bits=2), table)
    wide, narrow = floors[8]["node_conv2d_1"], floors[2]["node_conv2d_1"]
    assert narrow.mac_pj == pytest.approx(narrow.macs * p.slot[2] / 4)
    assert wide.mac_pj == pytest.approx(wide.macs * p.mac) and narrow.mac_pj < wide.mac_pj
    assert narrow.param_bytes < wide.param_bytes
    assert floors[2]["node_conv2d"].mac_pj == floors[8]["node_conv2d"].mac_pj
