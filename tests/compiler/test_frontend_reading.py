"""Files onnxruntime reads, the frontend reads too: auto_pad, old opsets, dynamic dimensions
fixed with input shapes, external data. Each imported graph runs on the golden model
against onnxruntime (graph optimizations off)."""

import logging
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support.tiny_models import _model, calibration_inputs, quantize
from verdigris.api import load_model
from verdigris.arch.program import load_program
from verdigris.compiler import ir
from verdigris.compiler.frontend import ModelError, ModelFileError, import_model
from verdigris.compiler.frontend.calibrate import quantize_float_model
from verdigris.compiler.frontend.onnx_file import MIN_OPSET
from verdigris.compiler.frontend.shapes import explicit_pads
from verdigris.sim.golden import run_graph

FORMATS = {
    "qdq-s8": {"fmt": "qdq", "activations": "int8", "per_channel": True},
    "qop-u8": {"fmt": "qop", "activations": "uint8", "per_channel": False},
}


def _onnxruntime(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options)
    return session.run(None, {"x": x})[0]


def _matches_onnxruntime(model, graph, size):
    x = calibration_inputs((1, 3, size, size), 8, seed=5)
    ours = run_graph(graph, {"x": x})["y"]
    reference = _onnxruntime(model, x)
    assert ours.shape == reference.shape
    lsb = next(s.scale for s in reversed(graph.outputs[0].steps) if isinstance(s, ir.Dequantize))
    assert np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max() / lsb < 1e-3


def _conv_auto_pad(auto_pad, *, size=9, kernel=3, stride=2, dilation=1):
    w = np.random.default_rng(0).normal(0, 0.4, (4, 3, kernel, kernel)).astype(np.float32)
    node = helper.make_node(
        "Conv",
        ["x", "w"],
        ["y"],
        name="conv",
        auto_pad=auto_pad,
        strides=[stride, stride],
        dilations=[dilation, dilation],
    )
    return _model([node], (1, 3, size, size), {"w": w})


def _pool_auto_pad(op, auto_pad, *, size=9, kernel=3, stride=2, **extra):
    w = np.random.default_rng(1).normal(0, 0.5, (3, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node(
            op,
            ["c"],
            ["y"],
            name="pool",
            auto_pad=auto_pad,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            **extra,
        ),
    ]
    return _model(nodes, (1, 3, size, size), {"w": w})


@pytest.mark.parametrize(
    ("auto_pad", "size", "kernel", "stride", "dilation", "pads"),
    [
        ("SAME_UPPER", 9, 3, 2, 1, [1, 1, 1, 1]),
        ("SAME_UPPER", 8, 3, 2, 1, [0, 0, 1, 1]),  # the odd pad at the end
        ("SAME_LOWER", 8, 3, 2, 1, [1, 1, 0, 0]),  # ... or at the beginning
        ("SAME_UPPER", 7, 2, 1, 1, [0, 0, 1, 1]),
        ("SAME_UPPER", 7, 3, 1, 2, [2, 2, 2, 2]),  # dilation widens the kernel
        ("SAME_UPPER", 5, 1, 3, 1, [0, 0, 0, 0]),  # stride > kernel: never negative
        ("VALID", 9, 3, 2, 1, [0, 0, 0, 0]),
    ],
)
def test_explicit_pads_follow_onnx(auto_pad, size, kernel, stride, dilation, pads):
    attrs = {"auto_pad": auto_pad.encode(), "strides": [stride] * 2, "dilations": [dilation] * 2}
    resolved = explicit_pads(attrs, (1, 3, size, size), (kernel, kernel))
    assert resolved["pads"] == pads
    assert "auto_pad" not in resolved


def test_notset_keeps_the_attributes():
    attrs = {"pads": [1, 2, 3, 4]}
    assert explicit_pads(attrs, (1, 1, 5, 5), (3, 3)) is attrs


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("auto_pad", "size", "stride"),
    [("SAME_UPPER", 9, 2), ("SAME_UPPER", 8, 2), ("SAME_LOWER", 8, 2), ("VALID", 9, 2)],
)
def test_conv_auto_pad_matches_onnxruntime(fmt, auto_pad, size, stride):
    model = quantize(_conv_auto_pad(auto_pad, size=size, stride=stride), **FORMATS[fmt])
    graph = import_model(model, name="conv")
    _matches_onnxruntime(model, graph, size)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("auto_pad", ["SAME_LOWER", "SAME_UPPER"])
def test_max_pool_auto_pad_matches_onnxruntime(fmt, auto_pad):
    model = quantize(_pool_auto_pad("MaxPool", auto_pad, size=8), **FORMATS[fmt])
    _matches_onnxruntime(model, import_model(model, name="pool"), 8)


def test_average_pool_same_lower_counting_pads_matches_onnxruntime():
    float_model = _pool_auto_pad("AveragePool", "SAME_LOWER", size=8, count_include_pad=1)
    model = quantize(float_model, **FORMATS["qdq-s8"])
    graph = import_model(model, name="pool")
    pool = next(node for node in graph.nodes if node.kind == "AvgPool")
    assert pool.pads == (1, 1, 0, 0)
    x = calibration_inputs((1, 3, 8, 8), 8, seed=5)
    ours = run_graph(graph, {"x": x})["y"]
    reference = _onnxruntime(model, x)
    lsb = next(s.scale for s in reversed(graph.outputs[0].steps) if isinstance(s, ir.Dequantize))
    # Rounding ties of the average may fall either way (see test_ops.py).
    assert np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max() / lsb <= 1.001


def test_average_pool_same_padding_without_counting_pads_runs_on_the_host():
    float_model = _pool_auto_pad("AveragePool", "SAME_UPPER", size=8)
    model = quantize(float_model, **FORMATS["qdq-s8"])
    graph = import_model(model, name="pool")
    [pool] = [node for node in graph.nodes if node.kind == "HostOp"]
    assert "count_include_pad=0" in pool.reason
    x = calibration_inputs((1, 3, 8, 8), 8, seed=5)
    ours, reference = run_graph(graph, {"x": x})["y"], _onnxruntime(model, x)
    lsb = next(s.scale for s in reversed(graph.outputs[0].steps) if isinstance(s, ir.Dequantize))
    # The conv before it requantizes in integers, onnxruntime in float: one LSB apart at most.
    assert np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max() / lsb <= 1.001


def test_unknown_auto_pad_is_a_problem():
    model = quantize(_conv_auto_pad("VALID"), **FORMATS["qdq-s8"])
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    next(a for a in conv.attribute if a.name == "auto_pad").s = b"SAME_MIDDLE"
    with pytest.raises(Exception, match=r"auto_pad='SAME_MIDDLE' is not one of"):
        import_model(model, name="conv")


# ---- old opsets


def _opset10_qdq_conv_clip() -> onnx.ModelProto:
    """A QDQ conv with a ReLU6 as opset 10 writes it: Clip with min and max attributes,
    per-tensor QuantizeLinear/DequantizeLinear."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8)
    scalar = {
        "xs": np.array(0.02, np.float32),
        "xz": np.array(0, np.int8),
        "ws": np.array(0.01, np.float32),
        "wz": np.array(0, np.int8),
        "ys": np.array(0.03, np.float32),
        "yz": np.array(-128, np.int8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="qx"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dqw"),
        helper.make_node("Conv", ["xf", "wf"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c"], ["r"], name="relu6", min=0.0, max=6.0),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"], name="qy"),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"], name="dqy"),
    ]
    inits = [numpy_helper.from_array(w, "w")]
    inits += [numpy_helper.from_array(value, name) for name, value in scalar.items()]
    graph = helper.make_graph(
        nodes,
        "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 5
    onnx.checker.check_model(model)
    return model


def test_old_opset_is_converted_and_matches_onnxruntime(tmp_path, caplog):
    model = _opset10_qdq_conv_clip()
    path = tmp_path / "old.onnx"
    onnx.save(model, path)
    with caplog.at_level(logging.INFO, logger="verdigris.compiler.frontend.onnx_file"):
        graph = import_model(path)
    assert "converted from opset 10 to opset 13" in caplog.text
    assert [node.kind for node in graph.nodes] == ["Conv"]
    x = calibration_inputs((1, 3, 6, 6), 1, seed=2)
    ours = run_graph(graph, {"x": x})["y"]
    error = np.abs(ours - _onnxruntime(model, x)) / 0.03  # in output LSBs
    assert error.max() <= 1.001 and np.mean(error < 1e-3) >= 0.99


def test_a_float_model_at_an_old_opset_calibrates_per_channel(tmp_path):
    """onnxruntime's quantizer lifts an old model only to opset 11, where per-channel
    DequantizeLinear has no axis: calibration quantizes at the importer's opset."""
    rng = np.random.default_rng(5)
    weights = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "old_float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    path = tmp_path / "old_float.onnx"
    onnx.save(model, path)
    samples = rng.normal(0, 1, (8, 3, 8, 8)).astype(np.float32)
    quantized = quantize_float_model(path, {"x": samples})
    assert {o.domain: o.version for o in quantized.opset_import}[""] >= MIN_OPSET
    graph = load_model(path, calibrate=samples)
    assert [node.kind for node in graph.nodes] == ["Conv"]
    assert graph.nodes[0].requant.per_channel


def test_old_opset_that_cannot_be_converted_names_the_opset():
    model = _opset10_qdq_conv_clip()
    # An op that opset 10 does not define: the converter cannot adapt it.
    model.graph.node.append(helper.make_node("Upsample", ["y"], ["u"], mode="bogus"))
    model.opset_import[0].version = 6
    with pytest.raises(ModelError, match=r"opset 6 is older than 13.*re-export"):
        import_model(model, name="old")


# ---- dynamic dimensions


def _dynamic_conv(fmt="qdq-s8"):
    model = quantize(_conv_auto_pad("SAME_UPPER", size=9), **FORMATS[fmt])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    return model


def test_a_dynamic_input_asks_for_input_shape():
    with pytest.raises(ModelError, match=r"--input-shape x=N,3,height,width"):
        import_model(_dynamic_conv(), name="dyn")


@pytest.mark.parametrize("fmt", FORMATS)
def test_input_shape_fixes_a_dynamic_input(fmt):
    model = _dynamic_conv(fmt)
    graph = import_model(model, name="dyn", input_shapes={"x": (1, 3, 9, 9)})
    _matches_onnxruntime(model, graph, 9)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"image": (1, 3, 9, 9)}, r"names 'image', which is not an input.*'x'"),
        ({"x": (1, 3, 9)}, r"input 'x' has 4 dimensions \(N,3,height,width\); .* gives 3"),
        ({"x": (1, 4, 9, 9)}, r"dimension 1 fixed at 3; --input-shape gives 4"),
        ({"x": (1, 3, 0, 9)}, r"is not a shape"),
    ],
)
def test_bad_input_shapes_are_model_errors(shapes, message):
    with pytest.raises(ModelError, match=message):
        import_model(_dynamic_conv(), name="dyn", input_shapes=shapes)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x=", r"--input-shape x: '' is not a shape"),
        ("x=1,3,-9,9", r"every dimension must be positive"),
        ("x=1,3,a,9", r"give whole numbers"),
        ("=1,3", r"give NAME=DIMS"),
        ("x=1,3,9", r"has 4 dimensions"),
        ("image=1,3,9,9", r"not an input of the model"),
    ],
)
def test_bad_input_shape_options_are_one_line_errors(tmp_path, capsys, value, message):
    from verdigris.cli import main

    path = tmp_path / "dyn.onnx"
    onnx.save(_dynamic_conv(), path)
    assert main(["inspect", str(path), "--input-shape", value]) != 0
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err


def test_inspect_with_input_shape(tmp_path, capsys):
    from verdigris.cli import main

    path = tmp_path / "dyn.onnx"
    onnx.save(_dynamic_conv(), path)
    assert main(["inspect", str(path), "--input-shape", "x=1,3,9,9"]) == 0
    assert "4x5x5" in capsys.readouterr().out


# ---- --batch


def _fixed_batch_conv(tail, fmt="qdq-s8"):
    """A conv model, then `tail` (from "c" to "y"), its input batch fixed at 1, as most
    exports are."""
    w = np.random.default_rng(0).normal(0, 0.4, (4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), tail]
    initializers = {"w": w}
    if tail.op_type == "Reshape":
        initializers["shape"] = np.array([1, -1], np.int64)
    model = quantize(_model(nodes, (1, 3, 9, 9), initializers), **FORMATS[fmt])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    return model


@pytest.mark.parametrize("fmt", FORMATS)
def test_batch_sets_every_inputs_first_dimension_also_a_fixed_one(fmt):
    model = _fixed_batch_conv(helper.make_node("Relu", ["c"], ["y"]), fmt)
    single, batched = import_model(model, name="b1"), import_model(model, name="b4", batch=4)
    assert batched.inputs[0].tensor.shape == (4, 3, 9, 9)
    x = calibration_inputs((1, 3, 9, 9), 4, seed=3)
    each = [run_graph(single, {"x": x[i : i + 1]})["y"] for i in range(4)]
    assert np.array_equal(run_graph(batched, {"x": x})["y"], np.concatenate(each))


def test_bad_batches_are_model_errors():
    reshaped = _fixed_batch_conv(helper.make_node("Reshape", ["c", "shape"], ["y"]))
    with pytest.raises(ModelError, match=r"--batch 4: output 'y' has shape \(1, 784\).*fixes"):
        import_model(reshaped, name="r", batch=4)
    with pytest.raises(ModelError, match=r"not fixed; give its whole shape with --input-shape x=4"):
        import_model(_dynamic_conv(), name="dyn", batch=4)
    with pytest.raises(ModelError, match=r"--input-shape x gives batch 1, --batch 4"):
        import_model(_dynamic_conv(), name="dyn", batch=4, input_shapes={"x": (1, 3, 9, 9)})
    graph = import_model(_dynamic_conv(), name="dyn", batch=2, input_shapes={"x": (2, 3, 9, 9)})
    assert graph.inputs[0].tensor.shape == (2, 3, 9, 9)


def test_compile_inspect_and_run_with_batch(tmp_path, capsys):
    from verdigris.cli import main

    path = tmp_path / "fixed.onnx"
    onnx.save(_fixed_batch_conv(helper.make_node("Relu", ["c"], ["y"])), path)
    inputs = tmp_path / "x.npy"
    np.save(inputs, calibration_inputs((1, 3, 9, 9), 4, seed=1))
    assert main(["compile", str(path), "--batch", "4"]) == 0
    assert load_program(tmp_path / "fixed.vgp").inputs[0].shape == (4, 3, 9, 9)
    assert main(["inspect", str(path), "--batch", "4"]) == 0
    assert "int8[4x3x9x9]" in capsys.readouterr().out
    assert main(["run", str(path), "--input", str(inputs), "--batch", "4"]) == 0
    with pytest.raises(SystemExit):
        main(["compile", str(path), "--batch", "0"])
    assert "--batch: must be at least 1, not 0" in capsys.readouterr().err


def test_a_name_that_is_not_utf8_is_a_damaged_file(tmp_path):
    model = quantize(_conv_auto_pad("VALID"), **FORMATS["qdq-s8"])
    model.graph.node[0].name = "NODENAME1"
    path = tmp_path / "damaged.onnx"
    path.write_bytes(model.SerializeToString().replace(b"NODENAME1", b"NODE\x90AME1"))
    with pytest.raises(ModelFileError, match=r"node 0 has a name that is not UTF-8 text"):
        import_model(path)


# ---- external data


def _save_external(tmp_path):
    model = quantize(_conv_auto_pad("VALID"), **FORMATS["qdq-s8"])
    path = tmp_path / "external.onnx"
    saved = onnx.ModelProto()
    saved.CopyFrom(model)  # onnx.save moves the data of what it saves out of the proto
    onnx.save(saved, path, save_as_external_data=True, location="external.data", size_threshold=0)
    assert (tmp_path / "external.data").is_file()
    return model, path


def test_external_data_next_to_the_model_loads(tmp_path):
    model, path = _save_external(tmp_path)
    graph = import_model(path)
    _matches_onnxruntime(model, graph, 9)


def test_a_missing_external_data_file_is_named(tmp_path):
    _, path = _save_external(tmp_path)
    (tmp_path / "external.data").unlink()
    with pytest.raises(ModelFileError, match=r"'external\.data', which is missing"):
        import_model(path)


def test_a_truncated_external_data_file_is_named(tmp_path):
    _, path = _save_external(tmp_path)
    data = tmp_path / "external.data"
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ModelFileError, match=r"external\.onnx"):
        import_model(path)


def test_compile_and_run_with_input_shape(tmp_path, capsys):
    from verdigris.cli import main

    path = tmp_path / "dyn.onnx"
    onnx.save(_dynamic_conv(), path)
    inputs = tmp_path / "x.npy"
    np.save(inputs, calibration_inputs((1, 3, 9, 9), 2, seed=1))
    assert main(["compile", str(path), "--input-shape", "x=1,3,9,9"]) == 0
    assert (tmp_path / "dyn.vgp").is_file()
    assert main(["run", str(path), "--input", str(inputs), "--input-shape", "x=1,3,9,9"]) == 0
    assert main(["run", str(path), "--input", str(inputs)]) != 0
    assert "--input-shape x=N,3,height,width" in capsys.readouterr().err


def test_a_1d_convolution_is_a_problem_not_a_traceback():
    w = np.random.default_rng(0).normal(0, 0.4, (4, 3, 3)).astype(np.float32)
    float_model = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1d")], (1, 3, 9), {"w": w}
    )
    with pytest.raises(ModelError, match=r"node 'conv1d' \(Conv\): a 1-D window"):
        import_model(quantize(float_model, **FORMATS["qdq-s8"]), name="c1")
