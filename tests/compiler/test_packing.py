"""Packed operands (compiler/backend/packing.py, docs/quantization.md "Packed operands"): on
an array that computes int4 or int2 (AccelConfig.operand_bits), low-bit activations are
stored two or four to a byte and the convs and MatMuls that read them multiply packed
bytes, with exactly the golden model's integers, in fewer cycles and bytes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.support.lowbit_models import binary_chain_model, conv_chain_model
from verdigris.api import compile_model, load_model, run, run_program
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.isa import Gemm, Store, unpack_operands
from verdigris.compiler import ir
from verdigris.compiler.backend.packing import Packed, pack_codes, plan_packing
from verdigris.compiler.frontend import import_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _config(name: str, operand_bits: int) -> AccelConfig:
    return dataclasses.replace(load_config(name), operand_bits=operand_bits)


def _isasim(graph: ir.Graph, config: AccelConfig, feeds: dict):
    return run_program(compile_model(graph, config), feeds, backend="isasim", raw=True)


@pytest.mark.parametrize("bits", [4, 2])
def test_packed_codes_unpack_to_the_values(bits):
    rng = np.random.default_rng(bits)
    values = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(3, 7, 5))
    codes = pack_codes(values, bits, axis=1)
    per_byte = 8 // bits
    assert codes.shape == (3, -(-7 // per_byte), 5)
    assert codes.min() >= -128 and codes.max() <= 127
    pack = {4: 1, 2: 2}[bits]
    lanes = np.moveaxis(unpack_operands(codes, pack), -1, 2).reshape(3, -1, 5)
    np.testing.assert_array_equal(lanes[:, :7], values)
    np.testing.assert_array_equal(lanes[:, 7:], 0)  # the last byte's spare lanes


CHAINS = {  # (weight bits, activation bits, signed activations)
    "w4a4": (4, 4, False),
    "w2a2": (2, 2, False),
    "w4a4-signed": (4, 4, True),
    "w2a3": (2, 3, False),
}


@pytest.mark.parametrize("config", ["tiny", "default"])
@pytest.mark.parametrize("operand_bits", [4, 2])
@pytest.mark.parametrize("chain", CHAINS)
def test_convs_on_packed_activations_are_exact(chain, operand_bits, config):
    """Convs with padding on both axes, a stride, and 5 or 6 channels (not whole bytes of
    operands) reading packed activations: the golden model's integers."""
    weight_bits, act_bits, signed = CHAINS[chain]
    graph = import_model(conv_chain_model(weight_bits, act_bits, signed=signed))
    x = np.random.default_rng(1).random((1, 3, 7, 7), dtype=np.float32) * 2 - 0.5
    expected = run(graph, {"x": x}, raw=True)["y"]
    assert len(np.unique(expected)) > 5  # not a constant output
    outputs, activity = _isasim(graph, _config(config, operand_bits), {"x": x})
    np.testing.assert_array_equal(outputs["y"], expected)
    width = max(operand_bits, weight_bits, 4 if act_bits > 2 else 2)
    packed = activity.macs_int4 if width == 4 else activity.macs_int2
    assert packed > 0 and activity.macs_int4 + activity.macs_int2 == packed


def test_eight_bit_weights_keep_their_input_unpacked():
    """A conv whose weights need 8 bits multiplies int8: its 4-bit input is not packed for
    it (the array multiplies both operands at one width)."""
    graph = import_model(conv_chain_model(8, 4))
    readers = {node.inputs[0] for node in graph.nodes if isinstance(node, ir.Conv)}
    packing = plan_packing(graph, _config("default", 2))
    assert not readers & set(packing)


LOWBIT = ("w4a4_qonnx", "w4a4_qcdq", "w2a2_qonnx", "w1a1_qonnx", "mixed_qonnx", "w8a8_qonnx")


@pytest.fixture(scope="module")
def digits():
    return np.load(EXAMPLES / "digits_test.npz")["x"][:6].reshape(6, 1, 8, 8)


@pytest.mark.parametrize("name", LOWBIT)
def test_the_shipped_lowbit_models_run_packed_as_golden_in_fewer_cycles(name, digits):
    graph = load_model(EXAMPLES / "models" / f"lenet_{name}.onnx")
    expected = run(graph, {"input": digits}, raw=True)["output"]
    runs = {}
    for bits in (8, 4, 2, 1):
        outputs, activity = _isasim(graph, _config("default", bits), {"input": digits})
        np.testing.assert_array_equal(outputs["output"], expected, err_msg=f"int{bits}")
        runs[bits] = activity
    if name == "w8a8_qonnx":  # nothing to pack: the same program
        assert runs[1].cycles == runs[2].cycles == runs[4].cycles == runs[8].cycles
        return
    for narrow in (4, 2, 1):
        assert runs[narrow].cycles < runs[8].cycles
        assert runs[narrow].main_read_bytes < runs[8].main_read_bytes
    # Two-bit activations and weights (w2a2; w1a1's ±1) pack four to a byte at int2.
    if name in ("w2a2_qonnx", "w1a1_qonnx"):
        assert runs[2].cycles < runs[4].cycles and runs[2].macs_int2 > 0
    # w1a1's fc1 reads its binary input eight to a byte (its convs pad theirs: int2).
    if name == "w1a1_qonnx":
        assert runs[1].cycles < runs[2].cycles and runs[1].macs_int1 > 0
    else:
        assert runs[1].cycles == runs[2].cycles and runs[1].macs_int1 == 0


BINARY_CHAINS = [(5, 11, 6), (8, 64, 9), (16, 20, 70)]


@pytest.mark.parametrize("config", ["default", "large"])
@pytest.mark.parametrize("channels", BINARY_CHAINS, ids=str)
def test_binary_layers_are_exact(channels, config):
    """Binary convs (unrolled and windowed, a stride, channels that are not whole bytes) and
    Gemms on binary activations stored eight to a byte: every tile runs, and the bias takes
    off what the -1 lanes past K add. The golden model's integers, in fewer cycles than
    the same layers at int2."""
    graph = import_model(binary_chain_model(channels))
    x = np.random.default_rng(1).random((3, 3, 9, 9), dtype=np.float32) * 2 - 0.5
    expected = run(graph, {"x": x}, raw=True)["y"]
    assert len(np.unique(expected)) > 5
    binary = _config(config, 1)
    assert {packed.bits for packed in plan_packing(graph, binary).values()} == {1}
    outputs, activity = _isasim(graph, binary, {"x": x})
    np.testing.assert_array_equal(outputs["y"], expected)
    _, int2 = _isasim(graph, _config(config, 2), {"x": x})
    assert activity.macs_int1 > 0 and activity.macs_int2 == 0
    assert activity.cycles < int2.cycles and activity.main_read_bytes < int2.main_read_bytes


def test_binary_needs_unpadded_readers_binary_weights_and_whole_bytes():
    """A binary tensor is stored as int2 where a reader pads it, where a reader's weights
    are not binary (ternary here), and where a block of `dim` values is not whole bytes
    (tiny: 4)."""
    graph = import_model(binary_chain_model())
    assert set(plan_packing(graph, _config("tiny", 1)).values()) == {Packed(2)}
    convs = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    padded = dataclasses.replace(
        graph,
        nodes=tuple(
            dataclasses.replace(n, pads=(1, 1, 1, 1)) if n is convs[1] else n for n in graph.nodes
        ),
    )
    weights = dataclasses.replace(
        graph,
        nodes=tuple(
            dataclasses.replace(n, weight=np.where(n.weight > 0, n.weight, 0))
            if n is convs[2]
            else n
            for n in graph.nodes
        ),
    )
    for changed, tensor in ((padded, convs[1].inputs[0]), (weights, convs[2].inputs[0])):
        packing = plan_packing(changed, _config("default", 1))
        assert packing[tensor] == Packed(2)
        assert sum(p == Packed(1) for p in packing.values()) >= 2  # the others stay binary


def test_what_is_packed():
    """w2a2: the pooled activations (uint2, read by conv2 and fc1) are packed; uint2 fits
    signed int4 as it is and int2 less 2; conv1's output (read by a MaxPool), the input and
    the logits are not."""
    graph = load_model(EXAMPLES / "models" / "lenet_w2a2_qonnx.onnx")
    pools = [node.output for node in graph.nodes if isinstance(node, ir.MaxPool)]
    assert plan_packing(graph, _config("default", 8)) == {}
    at = {bits: plan_packing(graph, _config("default", bits)) for bits in (4, 2)}
    for bits, offset in ((4, 0), (2, 2)):
        assert all(at[bits][pool] == Packed(bits, offset) for pool in pools)
    convs = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    kept = {convs[0].output, graph.inputs[0].tensor.name, graph.outputs[0].tensor.name}
    assert not kept & set(at[2])
    # A block of dim = 2 channels at int2 is half a byte: a STORE writes whole bytes, so a
    # 2x2 array packs them at int4.
    two = dataclasses.replace(_config("default", 2), rows=2, cols=2, wgt_rows=512)
    assert {packed.bits for packed in plan_packing(graph, two).values()} == {4}


def test_packed_programs_pack_their_stores_and_gemms():
    graph = load_model(EXAMPLES / "models" / "lenet_w2a2_qonnx.onnx")
    program = compile_model(graph, _config("default", 2))
    gemms = [ins.pack for ins in program.instructions if isinstance(ins, Gemm)]
    stores = [ins.pack for ins in program.instructions if isinstance(ins, Store)]
    assert set(gemms) == {0, 2} and set(stores) == {0, 2}
