"""The lookup pass (compiler/passes/lookups.py): element-wise host ops become the store's
lookup tables, fused into the op before them where nothing else reads its output, and the
compiled program gives golden's integers (golden runs the host ops themselves)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.graphs import conv_graph, random_inputs
from tests.support.tiny_models import calibration_inputs, mobile_block
from verdigris import api
from verdigris.arch.config import AccelConfig
from verdigris.compiler import ir
from verdigris.compiler.backend import compile_graph, layer_sizes
from verdigris.compiler.frontend import import_model
from verdigris.compiler.passes import lookups_on_device, verify_graph
from verdigris.sim.golden import run_device
from verdigris.sim.host import run_host_compute
from verdigris.sim.isasim import run_program

# dim 4 with room for two tables (so 8 channels of per-channel functions).
CONFIG = AccelConfig(name="lut2", rows=4, cols=4, lut_rows=512, main_memory_bytes=65536)


def _conv(oc: int = 6) -> ir.Graph:
    rng = np.random.default_rng(3)
    return conv_graph(
        rng,
        n=1,
        c=3,
        h=6,
        w=5,
        oc=oc,
        kernel=(3, 3),
        stride=1,
        pad=(1, 1, 1, 1),
        dilation=1,
        groups=1,
        zero_point=2,
        relu=False,
    )


def _tensor(graph: ir.Graph, name: str, scale: float, zero_point: int) -> ir.Tensor:
    return replace(graph.tensors["y"], name=name, scale=scale, zero_point=zero_point)


def _host(graph, name, inputs, output: ir.Tensor, nodes, constants=()) -> ir.HostOp:
    compute = ir.HostCompute(
        inputs=tuple(graph.tensors[i] for i in inputs),
        output=output,
        nodes=tuple(nodes),
        result=nodes[-1].outputs[0],
        constants=tuple(constants),
    )
    return ir.HostOp(name=name, inputs=tuple(inputs), output=output.name, compute=compute)


def _extend(graph: ir.Graph, ops: list[ir.HostOp], outputs: list[str]) -> ir.Graph:
    tensors = dict(graph.tensors)
    for op in ops:
        tensors[op.output] = op.compute.output
    return replace(
        graph,
        nodes=graph.nodes + tuple(ops),
        tensors=tensors,
        outputs=tuple(ir.GraphOutput(name, tensors[name], "int8") for name in outputs),
    )


def _sigmoid(graph: ir.Graph, name: str = "s") -> ir.HostOp:
    out = _tensor(graph, name, 1 / 256, -128)
    return _host(graph, f"{name}_op", ["y"], out, [ir.HostNode("Sigmoid", ("y",), (name,))])


def _silu(graph: ir.Graph) -> ir.Graph:
    sig = _sigmoid(graph)
    graph = _extend(graph, [sig], ["s"])
    out = _tensor(graph, "o", 0.03, -20)
    mul = _host(graph, "mul", ["y", "s"], out, [ir.HostNode("Mul", ("y", "s"), ("o",))])
    return _extend(graph, [mul], ["s", "o"])


def _scaled(graph: ir.Graph, scale: np.ndarray) -> ir.Graph:
    out = _tensor(graph, "o", 0.05, 0)
    node = ir.HostNode("Mul", ("y", "k"), ("o",))
    return _extend(graph, [_host(graph, "mul", ["y"], out, [node], [("k", scale)])], ["o"])


def _same_integers(before: ir.Graph, after: ir.Graph) -> None:
    verify_graph(after)
    feeds = random_inputs(np.random.default_rng(0), before)
    old, new = run_device(before, feeds), run_device(after, feeds)
    for output in before.outputs:
        np.testing.assert_array_equal(new[output.tensor.name], old[output.tensor.name])


def _runs_like_golden(graph: ir.Graph) -> None:
    """The compiled program on isasim against golden on the graph with its host ops."""
    feeds = random_inputs(np.random.default_rng(1), graph)
    golden = run_device(graph, feeds)
    outputs, _ = run_program(compile_graph(graph, CONFIG, host_runtime=run_host_compute), feeds)
    for output in graph.outputs:
        name = output.tensor.name
        np.testing.assert_array_equal(outputs[name], golden[name])


def test_a_sigmoid_after_a_conv_becomes_its_table():
    graph = _extend(_conv(), [_sigmoid(_conv())], ["s"])
    after = lookups_on_device(graph, CONFIG, run_host_compute)
    assert [n.kind for n in after.nodes] == ["Conv"]
    (conv,) = after.nodes
    assert conv.output == "s" and conv.requant.table.shape == (1, 256)
    assert "y" not in after.tensors
    # The table is the host op's own result for each value: sigmoid rises from 0 to 1.
    table = conv.requant.table[0]
    assert table[0] < -100 and table[-1] == 127 and np.all(np.diff(table) >= 0)
    # The energy floor's parameters count the table's entries, one byte each.
    plain = replace(conv, requant=replace(conv.requant, table=None))
    sizes = [layer_sizes(op, after, CONFIG)["weight_bytes"] for op in (conv, plain)]
    assert sizes[0] - sizes[1] == 256
    _same_integers(graph, after)
    _runs_like_golden(graph)


def test_silu_is_one_table_of_the_conv_output():
    graph = _silu(_conv())
    graph = replace(graph, outputs=graph.outputs[-1:])  # only x * sigmoid(x) is an output
    after = lookups_on_device(graph, CONFIG, run_host_compute)
    assert [n.kind for n in after.nodes] == ["Conv"]  # the sigmoid alone is not needed
    _same_integers(graph, after)
    _runs_like_golden(graph)


def test_a_tensor_read_elsewhere_is_looked_up_in_a_pass_of_its_own():
    graph = _silu(_conv())  # the sigmoid stays an output: y has two readers
    after = lookups_on_device(graph, CONFIG, run_host_compute)
    assert [n.kind for n in after.nodes] == ["Conv", "Requantize", "Requantize"]
    assert all(n.inputs == ("y",) for n in after.nodes[1:])
    _same_integers(graph, after)
    _runs_like_golden(graph)


def test_a_per_channel_function_takes_a_table_per_block_of_channels():
    scale = np.linspace(-2, 2, 6, dtype=np.float32).reshape(1, 6, 1, 1)
    graph = _scaled(_conv(6), scale)
    after = lookups_on_device(graph, CONFIG, run_host_compute)
    (conv,) = after.nodes
    assert conv.requant.table.shape == (6, 256)
    _same_integers(graph, after)
    _runs_like_golden(graph)
    # 12 channels need three tables of 4 lanes; the config holds two: it stays on the host.
    wide = _scaled(_conv(12), np.linspace(-2, 2, 12, dtype=np.float32).reshape(1, 12, 1, 1))
    assert lookups_on_device(wide, CONFIG, run_host_compute).nodes[-1].kind == "HostOp"


@pytest.mark.parametrize(
    "case",
    ["two tensors", "position-dependent constant", "NaN for some value", "not element-wise"],
)
def test_what_is_not_a_function_of_one_value_stays_on_the_host(case):
    graph = _conv()
    out = _tensor(graph, "o", 0.05, 0)
    if case == "two tensors":
        z = _tensor(graph, "z", 0.05, 0)
        graph = replace(
            graph,
            inputs=(*graph.inputs, ir.GraphInput("z", z, "int8")),
            tensors={**graph.tensors, "z": z},
        )
        op = _host(graph, "add", ["y", "z"], out, [ir.HostNode("Add", ("y", "z"), ("o",))])
    elif case == "position-dependent constant":
        ramp = np.arange(5, dtype=np.float32)  # along the width
        op = _host(
            graph, "mul", ["y"], out, [ir.HostNode("Mul", ("y", "k"), ("o",))], [("k", ramp)]
        )
    elif case == "NaN for some value":
        op = _host(graph, "log", ["y"], out, [ir.HostNode("Log", ("y",), ("o",))])
    else:
        op = _host(graph, "pool", ["y"], out, [ir.HostNode("GlobalMaxPool", ("y",), ("o",))])
        out = replace(out, shape=(1, 6, 1, 1))
        op = replace(op, compute=replace(op.compute, output=out))
    graph = _extend(graph, [op], ["o"])
    assert lookups_on_device(graph, CONFIG, run_host_compute).nodes[-1].kind == "HostOp"


def test_a_function_of_functions_of_one_tensor_is_one_table():
    graph = _extend(_conv(), [_sigmoid(_conv())], ["s"])
    out = _tensor(graph, "o", 0.05, 0)
    add = _host(graph, "add", ["y", "s"], out, [ir.HostNode("Add", ("y", "s"), ("o",))])
    graph = _extend(graph, [add], ["o"])
    after = lookups_on_device(graph, CONFIG, run_host_compute)
    assert [n.kind for n in after.nodes] == ["Conv"]
    _same_integers(graph, after)


def test_a_config_without_tables_changes_nothing():
    graph = _extend(_conv(), [_sigmoid(_conv())], ["s"])
    assert lookups_on_device(graph, replace(CONFIG, lut_rows=0), run_host_compute) is graph


def test_a_mobilenet_v3_block_runs_wholly_on_the_device():
    """HardSwish, SiLU and HardSigmoid as tables, the squeeze-excitation gate as a Mul: no
    host call; isasim gives golden's integers, and golden is within one LSB of
    onnxruntime."""
    model = mobile_block()
    graph = import_model(model)
    program = api.compile_model(graph, "tiny")
    assert program.host_calls == ()
    assert [layer.kind for layer in program.layers].count("Mul") == 1
    x = calibration_inputs((1, 3, 7, 6), 4, seed=2)
    golden = api.run(graph, {"x": x}, raw=True)
    ours, _ = api.run_program(program, {"x": x}, backend="isasim", raw=True)
    np.testing.assert_array_equal(ours["y"], golden["y"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options)
    reference = session.run(None, {"x": x})[0]
    lsb = graph.outputs[0].steps[0].scale
    assert np.abs(api.run(graph, {"x": x})["y"] - reference).max() <= lsb * 1.001
