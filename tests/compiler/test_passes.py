"""The graph passes and the graph verifier: each pass is checked on graphs built in code
(structure and golden outputs before and after) and on every imported test model, with the
verifier run before the first pass and after each one."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.support.tiny_models import BUILDERS, FORMATS, quantize
from verdigris.compiler import ir
from verdigris.compiler.frontend.builders import rescale
from verdigris.compiler.frontend.onnx_import import import_model, translate_model
from verdigris.compiler.passes import (
    PASSES,
    GraphError,
    elide_identity_rescales,
    run_passes,
    verify_graph,
)
from verdigris.compiler.quantize import make_requant
from verdigris.sim.golden import run_device

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


def _tensor(name, scale=0.1, zero_point=0, shape=(1, 4, 2, 2)):
    return ir.Tensor(name, shape, ir.INT8, scale, zero_point)


def _rescale(name, x, out, clamp=None):
    """The frontend's rescale op, by default clamped to the whole int8 range."""
    return rescale(name, x, out, clamp or (out.dtype.qmin, out.dtype.qmax))


def _graph(nodes, tensors, outputs):
    x = tensors[0]
    return ir.Graph(
        name="g",
        inputs=(ir.GraphInput("x", x, "int8"),),
        nodes=tuple(nodes),
        outputs=tuple(ir.GraphOutput(t.name, t, "int8") for t in outputs),
        tensors={t.name: t for t in tensors},
        dynamic_batch=False,
    )


def _rescales_graph():
    """x -> a (same quantization: an identity) -> b (another scale) -> c (same as b, but
    clamped: not an identity); a and c are outputs."""
    x = _tensor("x", zero_point=3)
    a = _tensor("a", zero_point=3)
    b = _tensor("b", scale=0.2, zero_point=-5)
    c = _tensor("c", scale=0.2, zero_point=-5)
    nodes = [
        _rescale("copy", x, a),
        _rescale("halve", a, b),
        _rescale("relu", b, c, clamp=(-5, 127)),
    ]
    return _graph(nodes, [x, a, b, c], [a, c])


def _golden(graph, x):
    values = run_device(graph, {"x": x})
    return [values[output.tensor.name] for output in graph.outputs]


def test_elide_identity_rescales_structure_and_outputs():
    graph = _rescales_graph()
    verify_graph(graph)
    after = elide_identity_rescales(graph)
    verify_graph(after)
    assert [node.name for node in after.nodes] == ["halve", "relu"]
    assert after.nodes[0].inputs == ("x",)
    assert [output.tensor.name for output in after.outputs] == ["x", "c"]
    assert [output.name for output in after.outputs] == ["a", "c"]
    assert "a" not in after.tensors
    x = np.random.default_rng(0).integers(-128, 128, (1, 4, 2, 2)).astype(np.int8)
    for before_value, after_value in zip(_golden(graph, x), _golden(after, x), strict=True):
        np.testing.assert_array_equal(before_value, after_value)


def test_passes_are_pure_and_idempotent():
    graph = _rescales_graph()
    nodes, tensors = graph.nodes, dict(graph.tensors)
    once = run_passes(graph, verify=True)
    assert graph.nodes == nodes and graph.tensors == tensors  # the input is not changed
    twice = run_passes(once, verify=True)
    assert [n.name for n in twice.nodes] == [n.name for n in once.nodes]
    assert elide_identity_rescales(twice) is twice  # nothing to do: the same graph


def test_pipeline_order():
    assert [step.__name__ for step in PASSES] == [
        "elide_identity_rescales",
        "fold_clamps",
        "reshapes_on_host",
        "gates_on_device",
    ]


def _models():
    for path in sorted(EXAMPLES.glob("*_q*.onnx")):
        yield pytest.param(lambda path=path: translate_model(path), id=path.name)
    for name in sorted(BUILDERS):
        for fmt in FORMATS:
            yield pytest.param(
                lambda name=name, fmt=fmt: translate_model(
                    quantize(BUILDERS[name](), **FORMATS[fmt]), name=name
                ),
                id=f"{name}-{fmt}",
            )


@pytest.mark.parametrize("translate", list(_models()))
def test_every_model_verifies_after_every_pass(translate):
    graph = translate()
    verify_graph(graph)
    for step in PASSES:
        graph = step(graph)
        verify_graph(graph)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("name", "translated", "imported"),
    [
        # One Concat input has the output's quantization already: its rescale goes.
        (
            "concat",
            ["Conv", "Conv", "Requantize", "Requantize", "Concat"],
            ["Conv", "Conv", "Requantize", "Concat"],
        ),
        # QDQ: the DequantizeLinear -> QuantizeLinear around a Flatten is an identity.
        (
            "flatten_gemm",
            ["Conv", "Reshape", "Requantize", "MatMul"],
            ["Conv", "Reshape", "MatMul"],
        ),
    ],
)
def test_identity_rescales_of_imported_models_go(name, fmt, translated, imported):
    model = quantize(BUILDERS[name](), **FORMATS[fmt])
    before = translate_model(model, name=name)
    after = import_model(model, name=name)
    if name == "flatten_gemm" and FORMATS[fmt]["fmt"] == "qop":
        translated = imported  # QOperator has no DequantizeLinear -> QuantizeLinear pair
    assert [n.kind for n in before.nodes] == translated
    assert [n.kind for n in after.nodes] == imported
    assert after.nodes[-1].inputs[0] in after.tensors
    assert set(after.tensors) <= set(before.tensors)
    assert len(before.tensors) - len(after.tensors) == len(before.nodes) - len(after.nodes)


def _broken(**changes):
    return replace(_rescales_graph(), **changes)


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (
            lambda g: replace(g, nodes=(g.nodes[1], g.nodes[0], g.nodes[2])),
            "Requantize 'halve': input 'a' is not defined before it",
        ),
        (
            lambda g: replace(g, nodes=(g.nodes[0], replace(g.nodes[1], name="copy"), g.nodes[2])),
            "Requantize 'copy': another op has the same name",
        ),
        (
            lambda g: replace(g, nodes=(*g.nodes, replace(g.nodes[2], name="again"))),
            "Requantize 'again': output 'c' is already written",
        ),
        (
            lambda g: replace(g, nodes=g.nodes[:2]),
            "output 'c': tensor 'c' is never produced",
        ),
        (
            lambda g: replace(g, tensors={**g.tensors, "b": replace(g.tensors["b"], shape=(1, 4))}),
            "Requantize 'halve': output shape [1, 4], expected [1, 4, 2, 2]",
        ),
        (
            lambda g: replace(g, tensors={**g.tensors, "c": replace(g.tensors["c"], zero_point=0)}),
            "requant zero point -5, output 'c' has 0",
        ),
        (
            lambda g: replace(
                g, tensors={**g.tensors, "b": replace(g.tensors["b"], dtype=ir.INT32)}
            ),
            "output 'b' is int32, expected 8 bits or fewer",
        ),
        (
            lambda g: replace(g, tensors={k: v for k, v in g.tensors.items() if k != "b"}),
            "Requantize 'halve': tensor 'b' is not in the graph",
        ),
    ],
)
def test_verifier_names_the_broken_invariant(graph, message):
    with pytest.raises(GraphError, match="graph 'g' is not valid") as raised:
        verify_graph(graph(_rescales_graph()))
    assert message in str(raised.value)


def test_verifier_checks_op_shapes():
    x = _tensor("x")
    y = ir.Tensor("y", (1, 2, 2, 2), ir.INT8, 0.1, 0)
    conv = ir.Conv(
        name="conv",
        inputs=("x",),
        output="y",
        weight=np.ones((2, 4, 3, 3), np.int64),
        weight_bits=8,
        bias=np.zeros(2, np.int64),
        input_zero_point=0,
        strides=(1, 1),
        pads=(0, 0, 0, 0),
        dilations=(1, 1),
        groups=1,
        requant=make_requant(1.0, 0, (-128, 127)),
    )
    with pytest.raises(GraphError, match=r"output shape \[1, 2, 2, 2\], expected \[1, 2, 0, 0\]"):
        verify_graph(_graph([conv], [x, y], [y]))


def test_a_failing_verification_names_the_pass():
    def break_names(graph):
        return replace(graph, nodes=(*graph.nodes, graph.nodes[0]))

    with pytest.raises(GraphError, match="after break_names: graph 'g' is not valid"):
        run_passes(_rescales_graph(), passes=[break_names], verify=True)
