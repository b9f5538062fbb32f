"""The IR ops the accelerator runs, each declared once: its constants builder and its
lowering (the Lowerer method that emits its instructions; none for an alias), and whether
it needs 4-D NCHW tensors.

`check_graph` (`__init__.py`) rejects any op not declared here; `constants_for` and
`lower_op` dispatch through the table. The frontend's op registry
(`compiler/frontend/registry.py`) names, per ONNX op, the IR ops it produces; a test checks
that each of them is declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from verdigris.arch.config import AccelConfig
from verdigris.compiler import ir
from verdigris.compiler.backend.constants import (
    ConstantPool,
    OpConstants,
    gemm_constants,
    identity_constants,
    no_constants,
    requant_constants,
)
from verdigris.compiler.backend.lower import Lowerer
from verdigris.compiler.backend.memory import CompileError, Layout

__all__ = ["DEVICE_OPS", "DeviceOp", "constants_for", "device_op", "lower_op"]

Constants = Callable[[ir.Op, ir.Graph, dict[str, Layout], ConstantPool, AccelConfig], OpConstants]
Lowering = Callable[[Lowerer, ir.Op, ir.Graph, dict[str, Layout], OpConstants], None]


@dataclass(frozen=True)
class DeviceOp:
    """How the backend compiles one IR op type."""

    op: type[ir.Op]
    constants: Constants
    lower: Lowering | None  # None: no instructions (the output aliases the input)
    nchw: bool = False  # its tensors must be 4-D NCHW


DEVICE_OPS: dict[type[ir.Op], DeviceOp] = {
    entry.op: entry
    for entry in (
        DeviceOp(ir.Conv, gemm_constants, Lowerer.conv, nchw=True),
        DeviceOp(ir.MatMul, gemm_constants, Lowerer.matmul),
        DeviceOp(ir.MaxPool, identity_constants, Lowerer.pool, nchw=True),
        DeviceOp(ir.AvgPool, requant_constants, Lowerer.pool, nchw=True),
        DeviceOp(ir.Add, requant_constants, Lowerer.add),
        DeviceOp(ir.Mul, requant_constants, Lowerer.mul, nchw=True),
        DeviceOp(ir.Requantize, requant_constants, Lowerer.requantize),
        DeviceOp(ir.Concat, identity_constants, Lowerer.concat),
        DeviceOp(ir.Reshape, no_constants, None),
    )
}


def device_op(node: ir.Op) -> DeviceOp | None:
    """The table entry for `node`'s type, or None where the accelerator cannot run it."""
    return DEVICE_OPS.get(type(node))


def constants_for(
    node: ir.Op,
    graph: ir.Graph,
    layouts: dict[str, Layout],
    pool: ConstantPool,
    config: AccelConfig,
) -> OpConstants:
    """Append an op's weight tiles and requant table to the pool."""
    entry = device_op(node)
    if entry is None:
        return OpConstants()
    return entry.constants(node, graph, layouts, pool, config)


def lower_op(
    lowerer: Lowerer,
    node: ir.Op,
    graph: ir.Graph,
    layouts: dict[str, Layout],
    constants: OpConstants,
) -> None:
    """Emit `node`'s instructions; each layer starts after the previous layer's stores."""
    entry = device_op(node)
    if entry is not None and entry.lower is None:
        return
    lowerer.begin_layer(node.name)
    if entry is None:
        raise CompileError(f"op {node.name}: {node.kind} has no lowering")
    entry.lower(lowerer, node, graph, layouts, constants)
    lowerer.flush()  # the layer's instructions are its own (LayerInfo.first/last)
