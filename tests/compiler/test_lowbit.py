"""Low-bit models: QONNX's quantizers (Quant, BipolarQuant), the QCDQ form and ONNX's 4-bit
QuantizeLinear/DequantizeLinear, imported to tensors of the bits the model has, run on the
golden model exactly as QONNX's own executor runs them, and on the instruction simulator as
the golden model."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.support.lowbit_models import (
    QONNX,
    Bits,
    int4_qdq_model,
    parameters,
    qcdq_model,
    qonnx_model,
    threshold_model,
    trunc_pool_model,
)
from verdigris.api import compile_model, load_model, run, run_program
from verdigris.compiler import ir
from verdigris.compiler.frontend import UnsupportedModelError, import_model
from verdigris.compiler.frontend.errors import ModelFileError
from verdigris.compiler.frontend.onnx_file import load_onnx
from verdigris.verify.reference import run_onnx_reference, run_qonnx

WIDTHS = {
    "w8a8": Bits(conv=8, act=8, fc=8, narrow=False),
    "w4a4": Bits(),
    "w2a2": Bits(conv=2, act=2, fc=2),
    "w3a5w6": Bits(conv=3, act=5, fc=6, narrow=False),
    "in4-out4": Bits(input=4, logits=4),
}


def _inputs(count: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 1, 2, 6, 6), dtype=np.float32) * 2 - 0.5


def _qonnx(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    """QONNX's executor on (count, 1, 2, 6, 6) images."""
    return run_qonnx(model, {"x": images[:, 0]})["y"]


def _golden(graph: ir.Graph, images: np.ndarray) -> np.ndarray:
    return np.concatenate([run(graph, {"x": image})["y"] for image in images])


def _activation(graph: ir.Graph) -> ir.Tensor:
    """The tensor after the conv (its ReLU's quantization)."""
    (conv,) = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    return graph.tensors[conv.output]


@pytest.mark.parametrize("name", WIDTHS)
def test_golden_is_qonnx_execution(name):
    """Powers-of-two scales make QONNX's float results exact, so the integer model must
    give the same outputs, element for element."""
    bits = WIDTHS[name]
    model = qonnx_model(parameters(bits))
    graph = import_model(model)
    images = _inputs()
    expected = _qonnx(model, images)
    np.testing.assert_array_equal(_golden(graph, images), expected)
    assert len(np.unique(expected)) > 5  # not a constant output
    # uint8 is held as int8 shifted by 128, as ever; a narrower unsigned type as it is.
    shift = 128 if bits.act == 8 else 0
    expected_type = ir.INT8 if bits.act == 8 else ir.IntType(bits.act, signed=False)
    assert _activation(graph).dtype == expected_type
    (conv,) = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    assert (conv.requant.qmin, conv.requant.qmax) == (-shift, (1 << bits.act) - 1 - shift)


def test_signed_narrow_activation():
    """A signed activation without a ReLU, narrow: -7..7 at 4 bits."""
    p = parameters(Bits(), seed=3)
    model = _with_attribute(qonnx_model(p, act_signed=True), "q_act", narrow=1)
    graph = import_model(model)
    images = _inputs()
    np.testing.assert_array_equal(_golden(graph, images), _qonnx(model, images))
    (conv,) = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    assert (conv.requant.qmin, conv.requant.qmax) == (-7, 7)
    assert _activation(graph).dtype == ir.IntType(4)


@pytest.mark.parametrize("name", ["w4a4", "w2a2"])
def test_qcdq_and_int4_forms_import_as_qonnx_does(name):
    """The same network as QONNX, QCDQ (QuantizeLinear -> Clip -> DequantizeLinear) and,
    for 4 bits, ONNX's int4/uint4 types: the same integer ops, the same outputs."""
    p = parameters(WIDTHS[name])
    forms = {"qonnx": qonnx_model(p), "qcdq": qcdq_model(p)}
    if name == "w4a4":
        forms["int4"] = int4_qdq_model(p)
    graphs = {form: import_model(model) for form, model in forms.items()}
    images = _inputs()
    expected = _golden(graphs["qonnx"], images)
    for form, graph in graphs.items():
        assert [node.kind for node in graph.nodes] == ["Conv", "MaxPool", "Reshape", "MatMul"]
        np.testing.assert_array_equal(_golden(graph, images), expected, err_msg=form)
        assert _activation(graph).dtype == _activation(graphs["qonnx"]).dtype, form
    if "int4" in forms:  # onnx.reference runs ONNX's 4-bit types from the specification
        reference = np.concatenate(
            [run_onnx_reference(forms["int4"], {"x": image})["y"] for image in images]
        )
        np.testing.assert_array_equal(expected, reference)


@pytest.mark.parametrize("name", ["w4a4", "w2a2", "in4-out4"])
def test_lowbit_programs_run_on_the_instruction_simulator_as_golden(name):
    graph = import_model(qonnx_model(parameters(WIDTHS[name])))
    program = compile_model(graph, "tiny")
    images = _inputs(count=3)
    outputs, _ = run_program(program, {"x": images[:, 0]}, backend="isasim")
    np.testing.assert_array_equal(outputs["y"], _golden(graph, images))


@pytest.mark.parametrize("mode", ["ROUND", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"])
def test_rounding_modes_of_constants_are_qonnx(mode):
    """Weights off the quantization grid, rounded by each mode QONNX defines."""
    p = parameters(Bits(conv=6, narrow=False), seed=5)
    offsets = np.random.default_rng(0).choice([-0.5, -0.3, 0.0, 0.3, 0.5], size=p.conv_w.shape)
    model = qonnx_model(dataclasses.replace(p, conv_w=np.clip(p.conv_w, -30, 30)))
    w1 = next(init for init in model.graph.initializer if init.name == "w1")
    values = (np.clip(p.conv_w, -30, 30) + offsets) * p.conv_scale.reshape(8, 1, 1, 1)
    w1.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), "w1"))
    for node in model.graph.node:
        if node.name == "q_w1":
            del node.attribute[[a.name for a in node.attribute].index("rounding_mode")]
            node.attribute.append(helper.make_attribute("rounding_mode", mode))
    graph = import_model(model)
    images = _inputs()
    np.testing.assert_array_equal(_golden(graph, images), _qonnx(model, images))


def test_binary_weights():
    """BipolarQuant on a weight: +scale where the float weight is >= 0, else -scale."""
    model = _bipolar(qonnx_model(parameters(Bits(conv=8, narrow=False), seed=7)), "q_w1")
    graph = import_model(model)
    (conv,) = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    assert set(np.unique(conv.weight)) == {-1, 1}
    images = _inputs()
    np.testing.assert_array_equal(_golden(graph, images), _qonnx(model, images))


def _with_attribute(model: onnx.ModelProto, node_name: str, **attributes) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for node in model.graph.node:
        if node.name == node_name:
            for key, value in attributes.items():
                names = [a.name for a in node.attribute]
                if key in names:
                    del node.attribute[names.index(key)]
                node.attribute.append(helper.make_attribute(key, value))
    return model


def _set_constant(model: onnx.ModelProto, name: str, value) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(onnx.numpy_helper.from_array(np.asarray(value, np.float32), name))
    return model


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: _with_attribute(m, "q_act", rounding_mode="FLOOR"),
            "rounding_mode FLOOR on an activation: the device's requantizer rounds half to even",
        ),
        (
            lambda m: _with_attribute(m, "q_w1", rounding_mode="SIDEWAYS"),
            "rounding_mode 'SIDEWAYS' is not one of",
        ),
        (
            lambda m: _set_constant(m, "q_act_bits", 16.0),
            "activations of type uint16 are not supported (8 bits or fewer)",
        ),
        (lambda m: _set_constant(m, "q_act_bits", 2.5), "bit width [2.5] is not an integer"),
        (lambda m: _set_constant(m, "q_act_zero", 0.5), "zero point [0.5] is not an integer"),
        (
            lambda m: _set_constant(m, "q_act_scale", np.full(8, 0.25)),
            "per-channel activation quantization is not supported",
        ),
        (
            lambda m: _set_constant(m, "q_w1_scale", np.full((2, 1, 1, 1), 0.25)),
            "scales of shape [2, 1, 1, 1] and zero points of shape [8, 1, 1, 1] for a "
            "constant of shape [8, 2, 3, 3]",
        ),
    ],
)
def test_quant_problems_name_the_node_and_the_reason(edit, message):
    model = edit(qonnx_model(parameters(Bits())))
    with pytest.raises(UnsupportedModelError) as raised:
        import_model(model)
    assert message in str(raised.value)


def _bipolar(model: onnx.ModelProto, *names: str) -> onnx.ModelProto:
    """`model` with the Quant nodes `names` made BipolarQuant (same input and scale)."""
    nodes = list(model.graph.node)
    for index, node in enumerate(nodes):
        if node.name in names:
            nodes[index] = helper.make_node(
                "BipolarQuant", [node.input[0], node.input[1]], node.output, node.name, domain=QONNX
            )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def test_binary_weights_and_activations():
    """w1a1: binary conv and Gemm weights, and a binary activation after the conv (its
    accumulator's sign, through a lookup table on the device)."""
    p = parameters(Bits(conv=8, fc=8, narrow=False), seed=11)
    p = dataclasses.replace(p, conv_bias=np.zeros(8, np.int64))
    model = _bipolar(qonnx_model(p, act_signed=True), "q_w1", "q_act", "q_w2")
    graph = import_model(model)
    (conv,) = [node for node in graph.nodes if isinstance(node, ir.Conv)]
    assert conv.requant.table is not None and graph.tensors[conv.output].dtype == ir.IntType(2)
    # A blank image: every conv sum is exactly 0, whose sign is +1 (x >= 0).
    images = np.concatenate([np.zeros((1, 1, 2, 6, 6), np.float32), _inputs()])
    expected = _qonnx(model, images)
    np.testing.assert_array_equal(_golden(graph, images), expected)
    assert len(np.unique(expected)) > 5
    outputs, _ = run_program(compile_model(graph, "tiny"), {"x": images[:3, 0]}, backend="isasim")
    np.testing.assert_array_equal(outputs["y"], expected[:3])


def test_a_binary_activation_after_a_relu_is_refused_clearly():
    model = _bipolar(qonnx_model(parameters(Bits())), "q_act")
    with pytest.raises(UnsupportedModelError, match="a Relu or Clip between Conv and a binary"):
        import_model(model)


def test_older_domains_are_qonnx():
    """FINN's and Brevitas' older names for QONNX's domain import alike."""
    p = parameters(Bits())
    images = _inputs(count=2)
    expected = _golden(import_model(qonnx_model(p)), images)
    for domain in ("finn.custom_op.general", "onnx.brevitas"):
        model = qonnx_model(p)
        for node in model.graph.node:
            if node.domain == QONNX:
                node.domain = domain
        del model.opset_import[:]
        model.opset_import.extend([helper.make_opsetid("", 13), helper.make_opsetid(domain, 1)])
        np.testing.assert_array_equal(_golden(import_model(model), images), expected)


def test_a_mistyped_rounding_mode_attribute_is_read(tmp_path, caplog):
    """Some Brevitas exports type `rounding_mode` INT while it holds a string; the ONNX
    checker refuses that ("type field and data field mismatch"), the loader reads it as the
    string it holds, and the file on disk is not changed."""
    model = qonnx_model(parameters(Bits()))
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name == "rounding_mode":
                attribute.type = onnx.AttributeProto.INT
    path = tmp_path / "mistyped.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(onnx.checker.ValidationError, match="type field and data field mismatch"):
        onnx.checker.check_model(onnx.load(path))
    before = path.read_bytes()
    with caplog.at_level(logging.INFO):
        loaded = load_onnx(path)
    assert "is typed INT but holds a STRING" in caplog.text
    assert path.read_bytes() == before
    images = _inputs(count=2)
    graph = load_model(path)
    np.testing.assert_array_equal(_golden(graph, images), _golden(import_model(loaded), images))


def test_an_attribute_that_holds_two_values_is_still_refused(tmp_path):
    model = qonnx_model(parameters(Bits()))
    (attribute,) = [a for a in model.graph.node[0].attribute if a.name == "rounding_mode"]
    attribute.i = 3  # a string and an int: which one is meant cannot be told
    path = tmp_path / "two.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match="the ONNX checker rejects the model"):
        load_onnx(path)


def _with_batch_norm(model: onnx.ModelProto, after: str, acc_scale: np.ndarray, seed: int):
    """`model` with a BatchNormalization on the output of node `after`, whose per-channel
    scale is +-1 or +-2 and whose shifts are whole accumulator steps: exact in float32, so
    the folded integer model must equal QONNX's execution."""
    rng = np.random.default_rng(seed)
    channels = len(acc_scale)
    gamma = rng.choice([-1.0, -0.5, 0.5, 1.0], size=channels)
    a = np.abs(gamma) / 0.5
    values = {
        "bn_gamma": gamma,
        "bn_beta": rng.integers(-40, 40, size=channels) * a * acc_scale,
        "bn_mean": rng.integers(-40, 40, size=channels) * acc_scale,
        "bn_var": np.full(channels, 0.25),
    }
    model = onnx.ModelProto.FromString(model.SerializeToString())
    nodes = list(model.graph.node)
    index = next(i for i, node in enumerate(nodes) if node.name == after or after in node.output)
    produced = nodes[index].output[0]
    for node in nodes[index + 1 :]:
        node.input[:] = ["bn" if name == produced else name for name in node.input]
    norm = helper.make_node("BatchNormalization", [produced, *values], ["bn"], epsilon=0.0)
    nodes.insert(index + 1, norm)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(
        onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in values.items()
    )
    return model


@pytest.mark.parametrize("after", ["conv", "gemm"])
def test_batch_normalization_folds_into_the_conv_or_gemm(after):
    """Brevitas keeps BatchNormalization between a quantized Conv (or Linear) and its
    activation's quantizer: it is folded into the op, negative scales included."""
    p = parameters(Bits(), seed=13)
    acc = p.in_scale * p.conv_scale if after == "conv" else p.act_scale * p.fc_scale
    model = _with_batch_norm(qonnx_model(p), after, acc, seed=2)
    graph = import_model(model)
    assert [node.kind for node in graph.nodes] == ["Conv", "MaxPool", "Reshape", "MatMul"]
    images = _inputs()
    expected = _qonnx(model, images)
    np.testing.assert_array_equal(_golden(graph, images), expected)
    assert not np.array_equal(expected, _qonnx(qonnx_model(p), images))  # it changed things


def test_a_batch_normalization_elsewhere_runs_on_the_host():
    """After a MaxPool there is nothing to fold it into: the host runs it, and its result is
    quantized again (8 bits, signed) for the Gemm."""
    p = parameters(Bits(), seed=13)
    model = _with_batch_norm(qonnx_model(p), "pool", np.full(8, p.act_scale), seed=2)
    requantized = helper.make_node(
        "Quant",
        ["bn", "q_act_scale", "q_act_zero", "q_in_bits"],
        ["bn_q"],
        name="q_bn",
        domain=QONNX,
        signed=1,
        narrow=0,
        rounding_mode="ROUND",
    )
    nodes = list(model.graph.node)
    index = [node.output[0] for node in nodes].index("bn")
    nodes.insert(index + 1, requantized)
    nodes[index + 2].input[0] = "bn_q"  # the Flatten
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    graph = import_model(model)
    assert [node.kind for node in graph.nodes] == [
        "Conv",
        "MaxPool",
        "HostOp",
        "Reshape",
        "MatMul",
    ]
    images = _inputs()
    np.testing.assert_array_equal(_golden(graph, images), _qonnx(model, images))


def _images(count: int, shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *shape), dtype=np.float32) * 4 - 1


@pytest.mark.parametrize("shift", [0, -1, 1])
@pytest.mark.parametrize("mode", ["FLOOR", "CEIL", "ROUND"])
def test_trunc_of_an_average_pool_is_qonnx(mode, shift):
    """Brevitas' TruncAvgPool2d (AveragePool -> Trunc): the window sum over 4 * 2**shift,
    rounded by the mode and clamped to uint4 (with shift -1 the clamp matters). The AvgPool
    doubles the sum and adds an odd bias, so that the requantizer rounds as the mode does:
    QONNX's results on golden, and golden's on the instruction simulator."""
    model = trunc_pool_model(mode, shift=shift)
    x = _images(8, (2, 8, 8))
    expected = run_qonnx(model, {"x": x})["y"]
    graph = import_model(model)
    (pool,) = [node for node in graph.nodes if isinstance(node, ir.AvgPool)]
    assert (pool.tap_multiplier, pool.requant.shift.item()) == (2, 31 + 2 + shift)
    np.testing.assert_array_equal(run(graph, {"x": x})["y"], expected)
    outputs, _ = run_program(compile_model(graph, "tiny"), {"x": x}, backend="isasim")
    np.testing.assert_array_equal(outputs["y"], expected)
    if mode != "ROUND":  # the mode is the model's: rounding half to even gives other logits
        other = run_qonnx(trunc_pool_model("ROUND", shift=shift), {"x": x})["y"]
        assert not np.array_equal(other, expected)


@pytest.mark.parametrize("after", ["conv", "act"])
def test_multithreshold_is_qonnx(after):
    """FINN's MultiThreshold after a Conv (per-channel thresholds on its accumulator, some
    exactly on an accumulator value, with out_scale and out_bias) and of a quantized
    activation (one set of thresholds: one lookup table)."""
    model = threshold_model(after)
    x = _images(8, (2, 6, 6))
    expected = run_qonnx(model, {"x": x})["y"]
    graph = import_model(model)
    np.testing.assert_array_equal(run(graph, {"x": x})["y"], expected)
    outputs, _ = run_program(compile_model(graph, "default"), {"x": x}, backend="isasim")
    np.testing.assert_array_equal(outputs["y"], expected)
    assert len(np.unique(expected)) > 8
    tables = [node.requant.table for node in graph.nodes if getattr(node, "requant", None)]
    (table,) = [t for t in tables if t is not None]
    assert table.shape == ((6, 256) if after == "conv" else (1, 256))


def _edited(model: onnx.ModelProto, op_type: str, **changes) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for node in model.graph.node:
        if node.op_type == op_type:
            if "inputs" in changes:
                del node.input[changes["inputs"] :]
            for name, value in changes.get("attributes", {}).items():
                kept = [a for a in node.attribute if a.name != name]
                del node.attribute[:]
                node.attribute.extend([*kept, helper.make_attribute(name, value)])
    return model


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            lambda: threshold_model("conv", spread=200),
            r"thresholds span \d+ accumulator steps; at most 254 fit",
        ),
        (
            lambda: _edited(trunc_pool_model(), "Trunc", inputs=5),
            "Trunc with 5 inputs: QONNX's Trunc v2",
        ),
        (
            lambda: _edited(threshold_model("act"), "MultiThreshold", attributes={"out_bias": 0.3}),
            "out_scale 1 and out_bias 0.3 with 3 thresholds",
        ),
        (
            lambda: _edited(
                threshold_model("act"), "MultiThreshold", attributes={"data_layout": "NHWC"}
            ),
            "MultiThreshold data_layout NHWC: NCHW is supported",
        ),
    ],
)
def test_trunc_and_multithreshold_problems_name_the_node_and_the_reason(model, message):
    with pytest.raises(UnsupportedModelError, match=message):
        import_model(model())
