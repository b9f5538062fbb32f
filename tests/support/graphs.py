"""Single-op integer IR graphs built directly (no ONNX), for backend property tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from verdigris.compiler import ir
from verdigris.compiler.quantize import add_multipliers, make_requant


def _tensor(name, shape, zero_point=0, scale=0.05):
    return ir.Tensor(name, tuple(shape), ir.INT8, scale, zero_point)


def _graph(name, inputs, nodes, output, tensors) -> ir.Graph:
    graph_inputs = tuple(ir.GraphInput(t.name, t, "int8") for t in inputs)
    out = tensors[output]
    return ir.Graph(
        name,
        graph_inputs,
        tuple(nodes),
        (ir.GraphOutput("y", out, "int8"),),
        tensors,
        dynamic_batch=False,
    )


def conv_graph(
    rng, *, n, c, h, w, oc, kernel, stride, pad, dilation, groups, zero_point, relu
) -> ir.Graph:
    kh, kw = kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    oh = (h + pad[0] + pad[2] - dilation * (kh - 1) - 1) // sh + 1
    ow = (w + pad[1] + pad[3] - dilation * (kw - 1) - 1) // sw + 1
    x = _tensor("x", (n, c, h, w), zero_point)
    y = _tensor("y", (n, oc, oh, ow), -5)
    weight = rng.integers(-128, 128, (oc, c // groups, kh, kw))
    weight[rng.random(weight.shape) < 0.2] = 0  # zero weights exercise zero-MAC counting
    bias = rng.integers(-5000, 5000, oc) - zero_point * weight.reshape(oc, -1).sum(axis=1)
    scales = rng.uniform(1e-4, 4e-3, oc)
    clamp = (-5, 127) if relu else (-128, 127)
    node = ir.Conv(
        "conv",
        ("x",),
        "y",
        weight,
        8,
        bias,
        zero_point,
        (sh, sw),
        tuple(pad),
        (dilation, dilation),
        groups,
        make_requant(scales, -5, clamp),
    )
    return _graph("conv", [x], [node], "y", {"x": x, "y": y})


def matmul_graph(rng, *, m, k, n, zero_point) -> ir.Graph:
    x = _tensor("x", (m, k), zero_point)
    y = _tensor("y", (m, n), 3)
    weight = rng.integers(-128, 128, (k, n))
    bias = rng.integers(-20000, 20000, n) - zero_point * weight.sum(axis=0)
    requant = make_requant(rng.uniform(1e-4, 2e-3, n), 3, (-128, 127))
    node = ir.MatMul("matmul", ("x",), "y", weight, 8, bias, zero_point, requant)
    return _graph("matmul", [x], [node], "y", {"x": x, "y": y})


def pool_graph(rng, *, kind, n, c, h, w, kernel, stride, pad, zero_point) -> ir.Graph:
    oh = (h + pad[0] + pad[2] - kernel) // stride + 1
    ow = (w + pad[1] + pad[3] - kernel) // stride + 1
    x = _tensor("x", (n, c, h, w), zero_point)
    y = _tensor("y", (n, c, oh, ow), zero_point)
    if kind == "max":
        node = ir.MaxPool("pool", ("x",), "y", (kernel, kernel), (stride, stride), tuple(pad))
    else:
        requant = make_requant(
            1.0 / (kernel * kernel) * rng.uniform(0.5, 2), zero_point, (-128, 127)
        )
        node = ir.AvgPool(
            "pool", ("x",), "y", (kernel, kernel), (stride, stride), tuple(pad), zero_point, requant
        )
    return _graph("pool", [x], [node], "y", {"x": x, "y": y})


def add_graph(_rng, *, shape, za, zb) -> ir.Graph:
    a, b = _tensor("a", shape, za, 0.03), _tensor("b", shape, zb, 0.07)
    y = _tensor("y", shape, -10, 0.08)
    ma, mb, shift = add_multipliers(0.03 / 0.08, 0.07 / 0.08)
    requant = ir.Requant(np.array([1]), np.array([shift]), -10, -128, 127)
    node = ir.Add("add", ("a", "b"), "y", za, zb, ma, mb, requant)
    return _graph("add", [a, b], [node], "y", {"a": a, "b": b, "y": y})


def mul_graph(rng, *, n, c, h, w, zx, zg) -> ir.Graph:
    """x (n, c, h, w) times its per-channel gate g (n, c, 1, 1)."""
    x, g = _tensor("x", (n, c, h, w), zx, 0.04), _tensor("g", (n, c, 1, 1), zg, 1 / 256)
    y = _tensor("y", (n, c, h, w), 7, 0.03)
    requant = make_requant(0.04 / 256 / 0.03 * rng.uniform(0.5, 2), 7, (-128, 127))
    node = ir.Mul("mul", ("x", "g"), "y", zx, zg, requant)
    return _graph("mul", [x, g], [node], "y", {"x": x, "g": g, "y": y})


def with_table(rng, graph: ir.Graph, *, per_channel: bool) -> ir.Graph:
    """`graph` whose one op ends in a random lookup table (per channel or not)."""
    (node,) = graph.nodes
    out = graph.tensors[node.output]
    channels = out.shape[-1] if isinstance(node, ir.MatMul) else out.shape[1]
    table = rng.integers(-128, 128, (channels if per_channel else 1, 256))
    node = replace(node, requant=replace(node.requant, table=table))
    return replace(graph, nodes=(node,))


def random_inputs(rng, graph: ir.Graph) -> dict[str, np.ndarray]:
    return {i.tensor.name: rng.integers(-128, 128, i.tensor.shape) for i in graph.inputs}
