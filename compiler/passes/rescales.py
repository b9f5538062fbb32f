"""Rescale elision: a Requantize that maps every integer to itself goes, and its readers
(ops and graph outputs) read its input instead; one that only clamps (and moves the zero
point) goes into the op before it.

The frontend emits a rescale wherever quantizations may differ (a DequantizeLinear ->
QuantizeLinear pair, each Concat input, a standalone ReLU/Clip); where they turn out equal,
the rescale is this identity: multiplier 2**shift, the input's zero point as the output's,
the full clamp of the same type. A clamp-only rescale (multiplier 2**shift, any zero points
and clamp) is what narrows a tensor to fewer bits: QONNX's narrow range, a QCDQ Clip.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from verdigris.compiler import ir

__all__ = ["elide_identity_rescales", "fold_clamps", "is_identity_rescale"]


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


def _unit_scale(node: ir.Op) -> bool:
    """Whether `node` is a Requantize that only moves the zero point and clamps."""
    if not isinstance(node, ir.Requantize) or node.requant.table is not None:
        return False
    requant = node.requant
    return bool(np.all(requant.multiplier == np.left_shift(1, requant.shift)))


def fold_clamps(graph: ir.Graph) -> ir.Graph:
    """The graph with each clamp-only rescale merged into the op that makes its input, where
    nothing else reads that input. The op's result r (after its own rounding) was
    clamp(r + z, lo, hi); the rescale made clamp(that - z_in + z_out, lo', hi'). With
    d = z_out - z_in that is clamp(r + z + d, max(lo + d, lo'), min(hi + d, hi')): one
    requantization, exact."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
    outputs = {output.tensor.name for output in graph.outputs}
    nodes = list(graph.nodes)
    made_by = {node.output: index for index, node in enumerate(nodes)}
    merged: set[int] = set()  # the rescales merged into the op before them
    between: set[str] = set()  # the tensors they read
    for index, node in enumerate(nodes):
        if not _unit_scale(node):
            continue
        source = node.inputs[0]
        before = made_by.get(source)
        requant = None if before is None else getattr(nodes[before], "requant", None)
        if (
            requant is None
            or requant.table is not None
            or readers[source] != 1
            or source in outputs
            or graph.tensors[source].shape != graph.tensors[node.output].shape
        ):
            continue
        shift = node.requant.zero_point - node.input_zero_point
        low = max(requant.qmin + shift, node.requant.qmin)
        high = min(requant.qmax + shift, node.requant.qmax)
        if low > high:  # every value clamps to one bound: leave it as it is
            continue
        requant = replace(
            requant, zero_point=requant.zero_point + shift, qmin=int(low), qmax=int(high)
        )
        nodes[before] = replace(nodes[before], output=node.output, requant=requant)
        made_by[node.output] = before
        merged.add(index)
        between.add(source)
    if not merged:
        return graph
    kept = tuple(node for index, node in enumerate(nodes) if index not in merged)
    tensors = {name: tensor for name, tensor in graph.tensors.items() if name not in between}
    return replace(graph, nodes=kept, tensors=tensors)
