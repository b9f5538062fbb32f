"""Kernel rows unrolled onto the array's rows: convolutions with few input channels.

A conv step is normally one kernel tap and one block of `dim` input channels, so a layer
with C < dim channels (a first layer: C = 1 or 3) keeps only C of the array's rows busy.
In channels-last memory, though, the kw taps of a kernel row lie one after another for an
output pixel: its window row is kw * C consecutive bytes. Unrolled, a step reads `dim` of
those bytes per output pixel (a chunk of the window row) and the weight tile's rows are the
matching (tap, channel) pairs, so a kernel row takes ceil(kw * C / dim) steps instead of
kw * ceil(C / dim) (ResNet's 7x7 first layer on 8x8: 3 instead of 7).

Every byte of a window row must then be an input value: a row that starts left of the
input or ends right of it would read the neighbouring row. `pad_columns` therefore gives
such a conv an input with its padding columns already in memory: an identity 1x1 conv
before it, the layer `pad_columns(<conv>)`, writes the input with `pads[1]` and `pads[3]`
columns of the pad value on each side (exact: weight 1, bias -pad value, requant x 1), and
the conv itself keeps only its vertical padding, which the lowering fills row by row. The
copy is data movement: its layer has no useful MACs and no floor (`compile_graph`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.compiler import ir
from verdigris.compiler.backend.packing import Packed

__all__ = ["conv_row_chunks", "pad_columns"]

# out = acc exactly: multiplier 2**30, shift 30.
_UNIT = (np.array([1 << 30]), np.array([30]))


def conv_row_chunks(node: ir.Conv, in_channels: int, dim: int) -> int:
    """How many steps a kernel row of `node` takes unrolled (see the module docstring), or
    0 where it runs one (tap, channel block) per step: unrolled needs a dense conv without
    horizontal padding or dilation, and pays where it takes fewer steps."""
    kw = node.kernel[1]
    chunks = -(-kw * in_channels // dim)
    plain = kw * -(-in_channels // dim)
    eligible = node.groups == 1 and node.dilations == (1, 1) and node.pads[1] == node.pads[3] == 0
    return chunks if eligible and chunks < plain else 0


def pad_columns(
    graph: ir.Graph, config: AccelConfig, packing: dict[str, Packed] | None = None
) -> ir.Graph:
    """`graph` with an identity conv that writes the horizontally padded input before each
    conv that would run unrolled but for its horizontal padding (the module docstring says
    why); that conv then has vertical padding only. The same graph if there is none. An
    input in `packing` (`plan_packing`) has a byte of packed channels per channel."""
    packing = packing or {}
    nodes: list[ir.Op] = []
    tensors = dict(graph.tensors)
    for node in graph.nodes:
        if isinstance(node, ir.Conv) and (node.pads[1] or node.pads[3]):
            top, left, bottom, right = node.pads
            unpadded = replace(node, pads=(top, 0, bottom, 0))
            x = tensors[node.inputs[0]]
            per_byte = packing[x.name].per_byte if x.name in packing else 1
            if conv_row_chunks(unpadded, -(-x.shape[1] // per_byte), config.dim):
                width = x.shape[3] + left + right
                padded = replace(x, name=f"padded({node.name})", shape=(*x.shape[:3], width))
                tensors[padded.name] = padded
                pad_value = node.input_zero_point
                nodes.append(_copy_with_columns(node.name, x, padded, left, right, pad_value))
                node = replace(unpadded, inputs=(padded.name, *node.inputs[1:]))
        nodes.append(node)
    if len(nodes) == len(graph.nodes):
        return graph
    return replace(graph, nodes=tuple(nodes), tensors=tensors)


def _copy_with_columns(
    name: str, x: ir.Tensor, out: ir.Tensor, left: int, right: int, zero_point: int
) -> ir.Conv:
    """x, with `left` and `right` columns of `zero_point` (the conv's pad value): a 1x1
    conv with the identity weight, input zero point and bias -zero_point (acc = x - z, 0 in
    the padding) and requant x 1 to zero point z. The same integers."""
    channels = x.shape[1]
    weight = np.eye(channels, dtype=np.int64).reshape(channels, channels, 1, 1)
    multiplier, shift = _UNIT
    return ir.Conv(
        name=f"pad_columns({name})",
        inputs=(x.name,),
        output=out.name,
        weight=weight,
        weight_bits=8,
        bias=np.full(channels, -zero_point, np.int64),
        input_zero_point=zero_point,
        strides=(1, 1),
        pads=(0, left, 0, right),
        dilations=(1, 1),
        groups=1,
        requant=ir.Requant(multiplier, shift, zero_point, -128, 127),
    )
