"""Per-channel gates on the device: a host op that only multiplies a feature map x
(N, C, H, W) by a gate g (N, C, 1, 1), as a squeeze-excitation block does, becomes an
`ir.Mul`, which the device runs with VECTOR scale and a lane-scaled write (docs/isa.md).

The host op computes in float32 and rounds once; the device multiplies the integers exactly
and requantizes with the 31-bit multiplier of s_x * s_g / s_y, as every other requantizing
op does. The two can differ by one output LSB where the real result lies within rounding
error of a half (docs/quantization.md, "How close to ONNX this is").
"""

from __future__ import annotations

from dataclasses import replace

from verdigris.compiler import ir
from verdigris.compiler.quantize import QuantizationError, make_requant

__all__ = ["gates_on_device"]


def gates_on_device(graph: ir.Graph) -> ir.Graph:
    """`graph` with every host op that is one Mul of a feature map by its per-channel gate
    an `ir.Mul` on the device."""
    nodes = tuple(_as_gate(node) if isinstance(node, ir.HostOp) else node for node in graph.nodes)
    return replace(graph, nodes=nodes)


def _as_gate(node: ir.HostOp) -> ir.Op:
    compute = node.compute
    if len(compute.nodes) != 1 or compute.constants or len(compute.inputs) != 2:
        return node
    (mul,) = compute.nodes
    inputs = {tensor.name: tensor for tensor in compute.inputs}
    if mul.op_type != "Mul" or set(mul.inputs) != set(inputs) or len(set(mul.inputs)) != 2:
        return node
    x, g = (inputs[name] for name in mul.inputs)
    if len(g.shape) == 4 and g.shape[2:] != (1, 1):
        x, g = g, x  # the gate may come first
    out = compute.output
    if (
        len(x.shape) != 4
        or tuple(g.shape) != (*x.shape[:2], 1, 1)
        or tuple(out.shape) != tuple(x.shape)
        or any(t.dtype != ir.INT8 for t in (x, g, out))
    ):
        return node
    try:
        requant = make_requant(x.scale * g.scale / out.scale, out.zero_point, (-128, 127))
    except QuantizationError:
        return node  # a ratio the requantizer cannot express: the host computes it
    return ir.Mul(
        name=node.name,
        inputs=(x.name, g.name),
        output=node.output,
        x_zero_point=x.zero_point,
        g_zero_point=g.zero_point,
        requant=requant,
    )
