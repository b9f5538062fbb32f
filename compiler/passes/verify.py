"""The graph verifier: what every graph between the frontend and the backend satisfies.

`verify_graph(graph)` raises one `GraphError` listing every violation:

- names: op names unique; every tensor written once (by one op, or as a graph input); every
  name an op, input or output uses is in `graph.tensors`, under its own name;
- order: every op input is a graph input or an earlier op's output;
- outputs: every graph output's tensor is a graph input or an op's output, and is the
  tensor `graph.tensors` holds;
- shapes: each op's output shape follows from its inputs and attributes;
- types: device activations are int8; only a Conv/MatMul without requantization writes
  int32 (and only then); every requantization is well formed (one entry or one per output
  channel, shift 1..62, multiplier in [0, 2**31), the output's zero point, a clamp inside
  the output type).
"""

from __future__ import annotations

import numpy as np

from verdigris.arch.isa import LUT_ENTRIES
from verdigris.compiler import ir
from verdigris.compiler.frontend.shapes import conv_shape, matmul_shape, pool_shape
from verdigris.compiler.quantize import MAX_SHIFT

__all__ = ["GraphError", "verify_graph"]


class GraphError(ValueError):
    """A graph breaks an invariant of the IR (a bug in the frontend or a pass)."""


def verify_graph(graph: ir.Graph) -> None:
    """Raise `GraphError` naming every broken invariant of `graph`."""
    problems: list[str] = []
    for name, tensor in graph.tensors.items():
        if tensor.name != name:
            problems.append(f"tensor '{name}' is stored under another name ('{tensor.name}')")
    defined: set[str] = set()
    for graph_input in graph.inputs:
        problems += _known(graph, graph_input.tensor.name, f"input '{graph_input.name}'")
        if graph_input.tensor.name in defined:
            problems.append(f"input tensor '{graph_input.tensor.name}' is bound twice")
        defined.add(graph_input.tensor.name)
    op_names: set[str] = set()
    for node in graph.nodes:
        where = f"{node.kind} '{node.name}'"
        if node.name in op_names:
            problems.append(f"{where}: another op has the same name")
        op_names.add(node.name)
        for name in node.inputs:
            problems += _known(graph, name, where)
            if name not in defined:
                problems.append(f"{where}: input '{name}' is not defined before it")
        problems += _known(graph, node.output, where)
        if node.output in defined:
            problems.append(f"{where}: output '{node.output}' is already written")
        defined.add(node.output)
        if all(name in graph.tensors for name in (*node.inputs, node.output)):
            problems += [f"{where}: {problem}" for problem in _op_problems(node, graph)]
    for graph_output in graph.outputs:
        tensor = graph_output.tensor
        where = f"output '{graph_output.name}'"
        problems += _known(graph, tensor.name, where)
        if tensor.name not in defined:
            problems.append(f"{where}: tensor '{tensor.name}' is never produced")
        elif graph.tensors.get(tensor.name) != tensor:
            problems.append(f"{where}: tensor '{tensor.name}' differs from the graph's")
    if problems:
        raise GraphError(f"graph '{graph.name}' is not valid:\n  - " + "\n  - ".join(problems))


def _known(graph: ir.Graph, name: str, where: str) -> list[str]:
    return [] if name in graph.tensors else [f"{where}: tensor '{name}' is not in the graph"]


def _op_problems(node: ir.Op, graph: ir.Graph) -> list[str]:
    inputs = [graph.tensors[name] for name in node.inputs]
    out = graph.tensors[node.output]
    problems = []
    expected = _expected_shape(node, inputs)
    if isinstance(expected, str):
        problems.append(expected)
    elif expected is not None and tuple(expected) != tuple(out.shape):
        problems.append(f"output shape {list(out.shape)}, expected {list(expected)}")
    # Activations are of 8 bits or fewer (int4, uint4, ... as the model has them), held in
    # the device's int8.
    for tensor in inputs:
        if tensor.dtype.bits > 8:
            problems.append(f"input '{tensor.name}' is {tensor.dtype}, not 8 bits or fewer")
    raw = isinstance(node, ir.Conv | ir.MatMul) and node.requant is None
    if raw and out.dtype != ir.INT32:
        problems.append(f"output '{out.name}' is {out.dtype}, expected {ir.INT32}")
    elif not raw and out.dtype.bits > 8:
        problems.append(f"output '{out.name}' is {out.dtype}, expected 8 bits or fewer")
    if isinstance(node, ir.Conv | ir.MatMul):
        channels = node.weight.shape[0] if isinstance(node, ir.Conv) else node.weight.shape[-1]
        # (channels,); a batched MatMul's bias broadcasts over its weight's batch
        if not node.bias.shape or node.bias.shape[-1] != channels:
            problems.append(f"bias shape {list(node.bias.shape)} for {channels} channels")
    requant = getattr(node, "requant", None)
    if requant is not None:
        channels = out.shape[-1] if isinstance(node, ir.MatMul) else out.shape[1]
        problems += _requant_problems(requant, out, channels)
    return problems


def _requant_problems(requant: ir.Requant, out: ir.Tensor, channels: int) -> list[str]:
    problems = []
    sizes = {requant.multiplier.size, requant.shift.size}
    if requant.multiplier.size != requant.shift.size or not sizes <= {1, channels}:
        problems.append(
            f"requant has {requant.multiplier.size} multipliers and {requant.shift.size} "
            f"shifts for {channels} channels"
        )
    if np.any(requant.shift < 1) or np.any(requant.shift > MAX_SHIFT):
        problems.append(f"requant shift outside 1..{MAX_SHIFT}")
    if np.any(requant.multiplier < 0) or np.any(requant.multiplier >= 1 << 31):
        problems.append("requant multiplier outside [0, 2**31)")
    table = requant.table
    # The clamp is of the requantizer's result: the output's type, or with a lookup table
    # the int8 the table is indexed by.
    domain = out.dtype if table is None else ir.INT8
    if not domain.qmin <= requant.qmin <= requant.qmax <= domain.qmax:
        problems.append(f"clamp [{requant.qmin}, {requant.qmax}] outside {domain}")
    if table is None:
        # Without a lookup the requantizer's result is the output (with one, the table's
        # entries are, and the zero point is the table's input's).
        if requant.zero_point != out.zero_point:
            problems.append(
                f"requant zero point {requant.zero_point}, output '{out.name}' has {out.zero_point}"
            )
    elif table.ndim != 2 or len(table) not in (1, channels) or table.shape[1] != LUT_ENTRIES:
        problems.append(
            f"lookup table of shape {list(table.shape)} for {channels} channels, expected "
            f"[1, {LUT_ENTRIES}] or [{channels}, {LUT_ENTRIES}]"
        )
    elif table.min() < out.dtype.qmin or table.max() > out.dtype.qmax:
        problems.append(f"lookup table entries outside {out.dtype}")
    elif len(table) > 1 and len(out.shape) not in (2, 4):
        problems.append(f"a per-channel lookup table on a {len(out.shape)}-D output")
    return problems


def _expected_shape(node: ir.Op, inputs: list[ir.Tensor]) -> tuple[int, ...] | str | None:
    """The output shape `node` makes of its inputs (a problem text if the inputs do not
    fit the op; None for an op without a shape rule)."""
    x = inputs[0]
    match node:
        case ir.Conv():
            if len(x.shape) != 4 or x.shape[1] != node.weight.shape[1] * node.groups:
                return f"input {list(x.shape)} does not fit weight {list(node.weight.shape)}"
            attrs = {"pads": node.pads, "strides": node.strides, "dilations": node.dilations}
            return conv_shape(x.shape, node.weight.shape, attrs)
        case ir.MatMul():
            if x.shape[-1] != node.weight.shape[-2]:
                return f"input {list(x.shape)} does not fit weight {list(node.weight.shape)}"
            return matmul_shape(x.shape, node.weight.shape)
        case ir.MaxPool() | ir.AvgPool():
            if len(x.shape) != 4:
                return f"input {list(x.shape)} is not NCHW"
            attrs = {
                "kernel_shape": node.kernel,
                "pads": node.pads,
                "strides": node.strides,
                "dilations": getattr(node, "dilations", (1, 1)),
                "ceil_mode": int(node.ceil_mode),
            }
            return pool_shape(x.shape, attrs)
        case ir.Mul():
            gate = inputs[1].shape
            if len(x.shape) != 4 or tuple(gate) != (*x.shape[:2], 1, 1):
                return f"a gate of shape {list(gate)} for an input of shape {list(x.shape)}"
            return x.shape
        case ir.Add() | ir.Requantize():
            if any(tuple(t.shape) != tuple(x.shape) for t in inputs):
                return f"inputs of shapes {[list(t.shape) for t in inputs]}"
            return x.shape
        case ir.Concat():
            rest = {tuple(d for i, d in enumerate(t.shape) if i != node.axis) for t in inputs}
            if len(rest) != 1 or not 0 <= node.axis < len(x.shape):
                return f"inputs of shapes {[list(t.shape) for t in inputs]} on axis {node.axis}"
            shape = list(x.shape)
            shape[node.axis] = sum(t.shape[node.axis] for t in inputs)
            return tuple(shape)
        case ir.Reshape():
            if int(np.prod(x.shape)) != int(np.prod(node.shape)):
                return f"cannot reshape {list(x.shape)} to {list(node.shape)}"
            return node.shape
    return None
