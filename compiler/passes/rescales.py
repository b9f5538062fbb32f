"""Rescale elision: a Requantize that maps every integer to itself goes, and its readers
(ops and graph outputs) read its input instead.

The frontend emits a rescale wherever quantizations may differ (a DequantizeLinear ->
QuantizeLinear pair, each Concat input, a standalone ReLU/Clip); where they turn out equal,
the rescale is this identity: multiplier 2**shift, the input's zero point as the output's,
the full clamp of the same type.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from verdigris.compiler import ir

__all__ = ["elide_identity_rescales", "is_identity_rescale"]


def is_identity_rescale(node: ir.Op, graph: ir.Graph) -> bool:
    """Whether `node` is a Requantize whose output equals its input, element for element."""
    if not isinstance(node, ir.Requantize):
        return False
    x, out = graph.tensors[node.inputs[0]], graph.tensors[node.output]
    requant = node.requant
    return (
        x.dtype == out.dtype
        and tuple(x.shape) == tuple(out.shape)
        and bool(np.all(requant.multiplier == np.left_shift(1, requant.shift)))
        and requant.zero_point == node.input_zero_point
        and (requant.qmin, requant.qmax) == (out.dtype.qmin, out.dtype.qmax)
    )


def elide_identity_rescales(graph: ir.Graph) -> ir.Graph:
    """The graph without identity rescales; their output tensors are dropped."""
    source: dict[str, str] = {}  # elided output -> the tensor it copies
    nodes: list[ir.Op] = []
    for node in graph.nodes:
        inputs = tuple(source.get(name, name) for name in node.inputs)
        if inputs != node.inputs:
            node = replace(node, inputs=inputs)
        if is_identity_rescale(node, graph):
            source[node.output] = node.inputs[0]
            continue
        nodes.append(node)
    if not source:
        return graph
    outputs = tuple(
        replace(output, tensor=graph.tensors[source[output.tensor.name]])
        if output.tensor.name in source
        else output
        for output in graph.outputs
    )
    tensors = {name: tensor for name, tensor in graph.tensors.items() if name not in source}
    return replace(graph, nodes=tuple(nodes), outputs=outputs, tensors=tensors)
