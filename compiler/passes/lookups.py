"""Element-wise functions on the device: host ops that map each int8 value of one device
tensor to an int8 value become lookup tables on the store path (docs/isa.md, STORE).

A host op qualifies when every node of its float island is element-wise (`ELEMENTWISE`),
its constants vary at most along the channel axis, and each of its inputs is one device
tensor x or a function of x that qualified before it (SiLU as x * sigmoid(x), where the
sigmoid is a host op of its own). Its table is the host op's own result for each of the 256
values of x (per channel when a constant differs by channel), computed by the host-op
runtime, so the device gives what the host would, bit for bit. The compiler may not import
the runtime (it is an executor's, in sim/), so the caller hands it in: `evaluate` is
`verdigris.sim.host.run_host_compute` (verdigris.api does so). A table is fused into the
op that writes x when nothing else reads x (one cycle more per STORE); otherwise it runs as
a Requantize of x (one pass over the tensor).

How many tables fit is the config's (`lut_rows`), so the backend runs this pass
(`compile_graph`), not the frontend's pipeline; golden runs the imported graph, whose host
ops give the same integers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import LUT_ENTRIES
from verdigris.compiler import ir
from verdigris.compiler.quantize import IDENTITY

__all__ = ["ELEMENTWISE", "Evaluate", "lookups_on_device"]

# The host-op runtime: a host op's integer result for integer inputs, a ValueError for
# inputs it has no result for (a NaN).
Evaluate = Callable[[ir.HostCompute, Sequence[np.ndarray]], np.ndarray]

# The host op types whose output element depends only on the input elements at the same
# position (and on constants).
ELEMENTWISE = frozenset(
    {
        "Abs", "Add", "BatchNormalization", "Ceil", "Clip", "Div", "Elu", "Erf", "Exp",
        "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log", "Max",
        "Mean", "Min", "Mish", "Mul", "Neg", "PRelu", "Pow", "Reciprocal", "Relu", "Selu",
        "Sigmoid", "Softplus", "Sub", "Sum", "Tanh",
    }
)  # fmt: skip

# The int8 values a table is indexed by, in table order.
_VALUES = np.arange(LUT_ENTRIES, dtype=np.int64) - LUT_ENTRIES // 2

# Ops whose requantizer a table can follow.
_FUSIBLE = (ir.Conv, ir.MatMul, ir.AvgPool, ir.Add, ir.Mul, ir.Requantize)

# A function of a device tensor: (the tensor, its table: (1 or channels, 256) int64).
_Function = tuple[str, np.ndarray]


def lookups_on_device(graph: ir.Graph, config: AccelConfig, evaluate: Evaluate) -> ir.Graph:
    """`graph` with each qualifying host op a lookup table on the device (module docstring),
    as many as `config`'s lut buffer holds per op; `evaluate` computes the tables."""
    tables_held = config.lut_rows // LUT_ENTRIES
    if not tables_held:
        return graph
    functions: dict[str, _Function] = {}
    made: set[str] = set()
    nodes = []
    for node in graph.nodes:
        host = isinstance(node, ir.HostOp)
        found = _as_function(node, graph, functions, evaluate) if host else None
        if found is None or _tables(found[1], config.dim) > tables_held:
            nodes.append(node)
            continue
        base, table = functions[node.output] = found
        made.add(node.name)
        nodes.append(
            ir.Requantize(
                name=node.name,
                inputs=(base,),
                output=node.output,
                input_zero_point=0,
                requant=replace(IDENTITY, table=table),
            )
        )
    graph = _drop_unread(replace(graph, nodes=tuple(nodes)), made)
    return _fuse(graph, made)


def _tables(table: np.ndarray, dim: int) -> int:
    """Lut-buffer tables a table needs: one, or one per block of `dim` channels."""
    return 1 if len(table) == 1 else -(-len(table) // dim)


def _as_function(
    node: ir.HostOp, graph: ir.Graph, functions: dict[str, _Function], evaluate: Evaluate
):
    """(x, table) if host op `node` is an element-wise function of one int8 device tensor x,
    else None."""
    compute = node.compute
    if any(n.op_type not in ELEMENTWISE for n in compute.nodes):
        return None
    if any(t.dtype != ir.INT8 for t in (*compute.inputs, compute.output)):
        return None
    sources = [functions.get(name, (name, None)) for name in node.inputs]
    bases = {base for base, _ in sources}
    if len(bases) != 1:
        return None
    base = bases.pop()
    shape = graph.tensors[base].shape
    if len(shape) < 2 or graph.tensors[node.output].shape != shape:
        return None
    # The 256 values along the batch axis, and one of each channel (rank 2 or 4: the axis the
    # store's lanes run along) or none: a constant that varies along any other axis would
    # broadcast the result to another shape, and the op does not qualify.
    channels = shape[1] if len(shape) in (2, 4) else 1
    probe_shape = (LUT_ENTRIES, channels) + (1,) * (len(shape) - 2)
    probe = np.broadcast_to(_VALUES.reshape((-1,) + (1,) * (len(shape) - 1)), probe_shape)
    channel = np.arange(channels).reshape((1, -1) + (1,) * (len(shape) - 2))
    arguments = [
        probe if table is None else table[channel % len(table), probe + LUT_ENTRIES // 2]
        for _, table in sources
    ]
    try:
        with np.errstate(all="ignore"):
            result = evaluate(compute, arguments)
    except ValueError:
        return None  # a NaN for some value, or an island the probe does not fit
    if result.shape != probe_shape:
        return None
    table = result.reshape(LUT_ENTRIES, channels).T.astype(np.int64)
    if (table == table[:1]).all():
        table = table[:1]
    return base, table


def _drop_unread(graph: ir.Graph, made: set[str]) -> ir.Graph:
    """The graph without the lookups in `made` that nothing reads any more (a sigmoid whose
    only reader, x * sigmoid(x), now reads x)."""
    read = {o.tensor.name for o in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if node.name in made and node.output not in read:
            continue
        kept.append(node)
        read.update(node.inputs)
    names = {i.tensor.name for i in graph.inputs} | {n.output for n in kept}
    tensors = {k: v for k, v in graph.tensors.items() if k in names}
    return replace(graph, nodes=tuple(reversed(kept)), tensors=tensors)


def _fuse(graph: ir.Graph, made: set[str]) -> ir.Graph:
    """Each lookup in `made` whose input is written by an op with a requantizer and read by
    nothing else becomes that op's table."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.tensor.name for o in graph.outputs}
    writer = {node.output: index for index, node in enumerate(graph.nodes)}
    nodes: list[ir.Op | None] = list(graph.nodes)
    tensors = dict(graph.tensors)
    for index, node in enumerate(graph.nodes):
        if node.name not in made:
            continue
        x = node.inputs[0]
        source = writer.get(x)
        producer = nodes[source] if source is not None else None
        if (
            not isinstance(producer, _FUSIBLE)
            or producer.requant is None
            or producer.requant.table is not None
            or readers[x] != 1
            or x in outputs
        ):
            continue
        table = node.requant.table
        nodes[source] = replace(
            producer, output=node.output, requant=replace(producer.requant, table=table)
        )
        nodes[index] = None
        del tensors[x]
    return replace(graph, nodes=tuple(n for n in nodes if n is not None), tensors=tensors)
