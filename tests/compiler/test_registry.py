"""The op registry: each supported ONNX op declared once, and everything derived from it
(the docs' table, the backend's per-IR-op table, the "not supported" problems)."""

import re
from pathlib import Path

import onnx
import pytest
from onnx import helper

from tests.support.tiny_models import BUILDERS, quantize
from verdigris.compiler import ir
from verdigris.compiler.backend.device_ops import DEVICE_OPS
from verdigris.compiler.frontend import UnsupportedModelError, import_model, registry
from verdigris.compiler.frontend.calibrate import check_float_model
from verdigris.compiler.frontend.errors import ModelError
from verdigris.compiler.frontend.registry import SUPPORTED_OPS
from verdigris.sim import golden

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_frontend_table_is_the_registry():
    assert registry.markdown_table() in (DOCS / "frontend.md").read_text()


def test_supported_ops_are_the_registry():
    listed = {(domain, op) for domain, ops in SUPPORTED_OPS.items() for op in ops}
    assert listed == {(op.domain, op.op_type) for op in registry.ONNX_OPS}
    assert len(registry.ONNX_OPS) == len(listed)


def test_every_ir_op_the_frontend_produces_has_a_backend_entry():
    # HostOp is the one IR op that is not a device op: the backend makes it a host call.
    # A pass makes Mul, of a host op (gates_on_device).
    produced = {kind for op in registry.ONNX_OPS for kind in op.produces} | {ir.Mul}
    assert produced == set(DEVICE_OPS) | {ir.HostOp}
    device_ops = {
        cls for cls in vars(ir).values() if isinstance(cls, type) and issubclass(cls, ir.Op)
    }
    assert set(DEVICE_OPS) == device_ops - {ir.Op, ir.HostOp}


def test_the_golden_model_has_a_rule_for_every_device_op():
    assert set(golden.RULES) == set(DEVICE_OPS)


def test_docs_compiler_lowering_table_names_every_device_op():
    text = (DOCS / "compiler.md").read_text()
    section = text.split("## Lowering", 1)[1].split("##", 1)[0]
    first_column = " ".join(re.findall(r"^\| ([^|]+) \|", section, flags=re.M))
    for op in DEVICE_OPS:
        assert op.__name__ in first_column, op.__name__


def _model(op_type: str, domain: str = "") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.INT8, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.INT8, [1, 4])
    node = helper.make_node(op_type, ["x"], ["y"], name="n", domain=domain)
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("op_type", "domain", "reason"),
    [
        ("NonZero", "", "op NonZero is not supported"),
        ("Conv", "com.example", "op Conv in domain 'com.example' is not supported"),
        ("QLinearAdd", "", "op QLinearAdd is not supported"),  # registered for com.microsoft
    ],
)
def test_unregistered_ops_are_reported(op_type, domain, reason):
    with pytest.raises(UnsupportedModelError) as raised:
        import_model(_model(op_type, domain))
    assert [p.op_type for p in raised.value.problems] == [op_type]
    assert reason in raised.value.problems[0].reason


def test_registered_checks_run_in_order():
    """QLinearAveragePool's three checks, after the common auto_pad check."""
    node = helper.make_node(
        "QLinearAveragePool",
        ["x", "s", "z", "s", "z"],
        ["y"],
        name="pool",
        domain=registry.MS,
        kernel_shape=[2, 2],
        pads=[1, 1, 1, 1],
        ceil_mode=1,
        channels_last=1,
        auto_pad="SAME_CENTER",
    )
    op = registry.lookup(node)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    reasons = [check(node, attrs) for check in (registry.auto_pad_check, *op.checks)]
    assert [r.split()[0] for r in reasons] == [
        "auto_pad='SAME_CENTER'",
        "padding",
        "ceil_mode=1",
        "channels_last=1",
    ]


def test_calibration_refuses_exactly_the_quantized_ops():
    for op in registry.ONNX_OPS:
        model = _model(op.op_type, op.domain)
        if op.quantized:
            with pytest.raises(ModelError, match="already quantized"):
                check_float_model(model, "m.onnx")
        else:
            check_float_model(model, "m.onnx")


def test_the_importer_holds_handlers_to_their_declared_ir_ops(monkeypatch):
    """A handler that emits an IR op its entry does not declare is a frontend bug."""
    conv = registry.lookup(helper.make_node("Conv", [], []))
    model = quantize(BUILDERS["conv"]())
    broken = {**registry._BY_KEY, ("", "Conv"): registry.OnnxOp("Conv", conv.handler, (ir.MatMul,))}
    monkeypatch.setattr(registry, "_BY_KEY", broken)
    with pytest.raises(
        AssertionError, match=r"Conv emitted Conv; its registry entry declares \['MatMul'\]"
    ):
        import_model(model)
