"""Bad input gets one clear error that names the problem."""

import contextlib
import gc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support.tiny_models import BUILDERS, quantize
from verdigris.arch.tensor_files import read_named_arrays
from verdigris.compiler.frontend import (
    ModelError,
    ModelFileError,
    UnsupportedModelError,
    import_model,
)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"missing\.onnx: no such file"):
        import_model(tmp_path / "missing.onnx")


def test_truncated_file(tmp_path):
    data = quantize(BUILDERS["conv"]()).SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.onnx: not a readable ONNX model"):
        import_model(path)


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are not the weights you are looking for\n" * 20)
    with pytest.raises(ModelFileError, match=r"notes\.onnx"):
        import_model(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="the file is empty"):
        import_model(path)


def test_float_model_asks_for_calibration():
    with pytest.raises(ModelError, match=r"float model.*--calibrate"):
        import_model(BUILDERS["conv"]())


def test_every_unsupported_node_is_listed_before_any_work():
    model = quantize(BUILDERS["conv"]())
    # Add blockers of three kinds after the (supported) quantized conv: ops neither the
    # device nor the host runs, attributes the registry refuses (of an op the host does not
    # run), and a node only the import walk refuses (its weight is not a constant): all are
    # reported at once.
    model.graph.node.extend(
        [
            helper.make_node("NonZero", ["y"], ["s"], name="gate"),
            helper.make_node("LSTM", ["s", "W", "R"], ["h"], name="memory"),
            helper.make_node("Gemm", ["y", "y"], ["p"], name="dense", transA=1),
            helper.make_node("Conv", ["y", "x"], ["c"], name="input_weight"),
        ]
    )
    with pytest.raises(UnsupportedModelError) as raised:
        import_model(model, name="bad")
    message = str(raised.value)
    assert "4 node(s) cannot be imported" in message
    assert "node 'gate' (NonZero): op NonZero is not supported" in message
    assert "node 'memory' (LSTM): op LSTM is not supported" in message
    assert "node 'dense' (Gemm): transA=1 is not supported" in message
    assert "node 'input_weight' (Conv): weight 'x' must be a quantized constant" in message
    assert [p.node for p in raised.value.problems] == ["gate", "memory", "dense", "input_weight"]


def test_dynamic_quantization_is_rejected_with_advice():
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dq"),
        helper.make_node("MatMulInteger", ["xq", "w", "xz"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 3])],
        [numpy_helper.from_array(np.ones((4, 3), np.uint8), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedModelError, match="dynamically quantized"):
        import_model(model)


def test_unquantized_output_names_the_node():
    model = quantize(BUILDERS["gemm"]())
    # Cut the final QuantizeLinear/DequantizeLinear so the Gemm's float result is the output.
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    keep = [n for n in model.graph.node if n.op_type != "QuantizeLinear" or n.input[0] != "y"]
    keep = [n for n in keep if n.output[0] != "y"]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    gemm_out = gemm.output[0]
    model.graph.output[0].name = gemm_out
    with pytest.raises(UnsupportedModelError, match="never quantized"):
        import_model(model)


def test_symbolic_non_batch_dimension_is_named():
    model = quantize(BUILDERS["gemm"]())
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    with pytest.raises(
        ModelError, match=r"dimension 1 symbolic \('features'\).*--input-shape x=N,"
    ):
        import_model(model)


def test_checker_failure_is_reported_with_the_file(tmp_path):
    model = quantize(BUILDERS["conv"]())
    model.graph.node[0].input[0] = "nowhere"
    path = tmp_path / "broken.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelFileError, match=r"broken\.onnx: the ONNX checker rejects"):
        import_model(path)


class _ArrayFileError(ValueError):
    pass


@pytest.mark.parametrize("name", ["digits_samples.npy", "digits_test.npz"])
def test_damaged_array_files_are_one_typed_error_and_closed(tmp_path, name):
    """Every truncation and byte flip of a .npy header or across a (compressed) .npz gives
    the caller's error type; numpy's header parser and zlib errors included, and the file
    is closed (an unclosed one is a ResourceWarning, an error under pytest here)."""
    data = (Path(__file__).resolve().parents[2] / "examples" / name).read_bytes()
    path = tmp_path / name
    for cut in [*range(0, 128), *range(128, len(data), 97)]:
        for content in (data[:cut], data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1 :]):
            path.write_bytes(content)
            with contextlib.suppress(_ArrayFileError):
                read_named_arrays(path, ["x"], _ArrayFileError, "input")
    gc.collect()
