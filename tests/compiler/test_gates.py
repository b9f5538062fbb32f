"""The gate pass (compiler/passes/gates.py): a host op that multiplies a feature map by its
per-channel gate becomes an ir.Mul on the device, within one LSB of the host's float
result; any other Mul stays on the host."""

from __future__ import annotations

import numpy as np
import pytest

from verdigris.compiler import ir
from verdigris.compiler.passes import gates_on_device, verify_graph
from verdigris.sim.golden import run_device


def _tensor(name, shape, scale, zero_point=0) -> ir.Tensor:
    return ir.Tensor(name, tuple(shape), ir.INT8, scale, zero_point)


def _graph(x_shape, g_shape, *, gate_first=False) -> ir.Graph:
    x, g = _tensor("x", x_shape, 0.05, -3), _tensor("g", g_shape, 1 / 256, -128)
    y = _tensor("y", x_shape, 0.04, 5)
    names = ("g", "x") if gate_first else ("x", "g")
    compute = ir.HostCompute(
        inputs=(x, g), output=y, nodes=(ir.HostNode("Mul", names, ("y",)),), result="y"
    )
    op = ir.HostOp(name="mul", inputs=("x", "g"), output="y", compute=compute)
    return ir.Graph(
        "gate",
        (ir.GraphInput("x", x, "int8"), ir.GraphInput("g", g, "int8")),
        (op,),
        (ir.GraphOutput("y", y, "int8"),),
        {"x": x, "g": g, "y": y},
        dynamic_batch=False,
    )


@pytest.mark.parametrize("gate_first", [False, True])
def test_a_feature_map_times_its_gate_runs_on_the_device(gate_first):
    graph = _graph((2, 5, 4, 3), (2, 5, 1, 1), gate_first=gate_first)
    after = gates_on_device(graph)
    verify_graph(after)
    (mul,) = after.nodes
    assert isinstance(mul, ir.Mul) and mul.inputs == ("x", "g")
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.integers(-128, 128, i.tensor.shape) for i in graph.inputs}
    host, device = run_device(graph, feeds)["y"], run_device(after, feeds)["y"]
    # The host rounds its float32 product once; the device requantizes the exact integer
    # product: equal but where the result lies within rounding error of a half.
    assert np.abs(host - device).max() <= 1
    assert np.mean(host == device) >= 0.99


@pytest.mark.parametrize(
    ("x_shape", "g_shape"),
    [((1, 5, 4, 3), (1, 5, 4, 3)), ((1, 5, 4, 3), (1, 1, 1, 1)), ((1, 5, 4, 3), (1, 5, 4, 1))],
    ids=["two feature maps", "one scalar", "a gate per row"],
)
def test_other_products_stay_on_the_host(x_shape, g_shape):
    graph = _graph(x_shape, g_shape)
    assert isinstance(gates_on_device(graph).nodes[0], ir.HostOp)
