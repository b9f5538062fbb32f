"""Reshapes on the host: a Reshape whose output cannot alias its input's memory for the ops
that read it becomes a host op that moves the values.

A device Reshape costs nothing: its output is its input's bytes under another shape
(compiler/backend/memory.py). That holds when the two shapes lay their elements out in the
same order in main memory (4-D tensors are channels-last, others row-major), when the only
readers are MatMuls of a flattened feature map (the backend permutes their weight rows to
match) or when only the host reads it (a host op or a model output: the host unpacks any
layout). Any other Reshape (a channel shuffle's 5-D -> 4-D before a Conv, a flatten read by
an Add) runs on the host, as an ONNX Reshape on the dequantized values, which moves them
without changing them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from verdigris.compiler import ir
from verdigris.compiler.backend.memory import row_major_in_memory

__all__ = ["reshapes_on_host"]


def _aliases(root: ir.Tensor, out: ir.Tensor, readers: list[ir.Op], is_output: bool) -> bool:
    if (row_major_in_memory(root.shape) and row_major_in_memory(out.shape)) or (
        root.shape == out.shape
    ):
        return True
    if readers and all(isinstance(r, ir.MatMul) for r in readers) and len(out.shape) == 2:
        return not is_output  # the flatten the backend permutes the weights for
    return all(isinstance(r, ir.HostOp) for r in readers)


def reshapes_on_host(graph: ir.Graph) -> ir.Graph:
    """The graph with each Reshape whose alias the device cannot use made a host op."""
    readers: dict[str, list[ir.Op]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    outputs = {o.tensor.name for o in graph.outputs}
    root: dict[str, str] = {}  # a device Reshape's output -> the tensor whose memory it uses
    nodes = []
    for node in graph.nodes:
        if not isinstance(node, ir.Reshape):
            nodes.append(node)
            continue
        source = root.get(node.inputs[0], node.inputs[0])
        x, out = graph.tensors[node.inputs[0]], graph.tensors[node.output]
        quantized = x.dtype.bits <= 8  # not a raw int32 accumulator
        if not quantized or _aliases(
            graph.tensors[source], out, readers.get(node.output, []), node.output in outputs
        ):
            root[node.output] = source
            nodes.append(node)
            continue
        # The same quantization in and out: a scale of 1 for an integer input without one.
        scale = x.scale if x.scale is not None else 1.0
        shape = np.array((0, *out.shape[1:]), np.int64)  # 0: the batch, as the input's
        compute = ir.HostCompute(
            inputs=(replace(x, scale=scale),),
            output=replace(out, scale=scale),
            nodes=(ir.HostNode("Reshape", (x.name, "shape"), (out.name,)),),
            result=out.name,
            constants=(("shape", shape),),
        )
        reason = (
            f"the device cannot lay {list(x.shape)} out as {list(out.shape)} in place for "
            "the ops that read it"
        )
        nodes.append(
            ir.HostOp(
                name=node.name,
                inputs=node.inputs,
                output=node.output,
                compute=compute,
                reason=reason,
            )
        )
    return replace(graph, nodes=tuple(nodes))
