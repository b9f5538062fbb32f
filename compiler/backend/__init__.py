"""Compiler backend: integer IR -> Program for one AccelConfig.

The pipeline, in the order it runs (`compile_graph`):

1. check      — every op and tensor can run on this config (types, shapes, sizes);
2. layout     — channels-last layouts, and where a Flatten makes a MatMul's rows permute;
3. constants  — weight tiles in array order and requant tables, from address 0;
4. memory     — activations placed after the constants, reusing dead tensors' space;
5. lower      — instructions per op: tiling, double buffering, dependency tokens; a host op
                ends the device segment before it (FINISH) and becomes a host call;
6. package    — bindings for inputs/outputs, host steps, the layer table: the Program.

With `dump_dir`, each step writes what it produced as text, to check it against golden.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import LANE_BITS, REQ_ENTRY, disassemble
from verdigris.arch.program import Binding, HostCall, LayerInfo, Program, Segment
from verdigris.compiler import ir
from verdigris.compiler.backend.constants import ConstantPool
from verdigris.compiler.backend.device_ops import constants_for, device_op, lower_op
from verdigris.compiler.backend.host import host_side
from verdigris.compiler.backend.lower import Lowerer
from verdigris.compiler.backend.memory import CompileError, natural_layout, plan_memory
from verdigris.compiler.backend.packing import INT8, Packed, plan_packing
from verdigris.compiler.backend.unroll import pad_columns
from verdigris.compiler.passes.lookups import Evaluate, lookups_on_device

__all__ = ["CompileError", "compile_graph", "layer_sizes"]

logger = logging.getLogger(__name__)


def check_graph(graph: ir.Graph, config: AccelConfig) -> None:
    """Every problem at once, naming the op and what to do."""
    problems = []
    consumers: dict[str, list[ir.Op]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    for node in graph.nodes:
        out = graph.tensors[node.output]
        if isinstance(node, ir.HostOp):
            problems += _host_op_problems(node, graph)
            continue
        entry = device_op(node)
        if entry is None:
            problems.append(f"{node.name}: {node.kind} cannot run on the accelerator")
            continue
        if entry.nchw and len(out.shape) != 4:
            problems.append(f"{node.name}: {node.kind} needs 4-D NCHW tensors, not {out.shape}")
        if isinstance(node, ir.Conv | ir.MatMul) and node.weight_bits > LANE_BITS:
            problems.append(
                f"{node.name}: weights need {node.weight_bits} bits; the array multiplies "
                f"int{LANE_BITS} at most"
            )
        if out.dtype.bits == 32 and any(True for _ in consumers.get(node.output, [])):
            problems.append(
                f"{node.name}: its int32 output feeds other ops; only a graph "
                "output may be a raw accumulator"
            )
        if isinstance(node, ir.Reshape):
            source = graph.tensors[node.inputs[0]]
            users = consumers.get(node.output, [])
            flattening = len(source.shape) == 4 and source.shape[2:] != (1, 1)
            if flattening and any(not isinstance(u, ir.MatMul | ir.HostOp) for u in users):
                problems.append(
                    f"{node.name}: a Flatten/Reshape of a feature map may only "
                    "feed MatMul/Gemm on the accelerator"
                )
    if problems:
        raise CompileError(
            f"graph '{graph.name}' cannot be compiled for config "
            f"'{config.name}':\n  - " + "\n  - ".join(problems)
        )


def _host_op_problems(node: ir.HostOp, graph: ir.Graph) -> list[str]:
    """A host op reads and writes quantized tensors of 8 bits or fewer (it dequantizes and
    quantizes)."""
    problems = []
    for name in (*node.inputs, node.output):
        tensor = graph.tensors[name]
        if tensor.dtype.bits > 8:
            problems.append(
                f"{node.name}: the host op reads or writes '{name}' as {tensor.dtype}; "
                "host ops take quantized tensors of 8 bits or fewer"
            )
    return problems


def _binding(name: str, layouts, graph: ir.Graph) -> Binding:
    layout = layouts[name]
    assert layout.packed == INT8, f"{name} crosses to the host packed"  # plan_packing's rule
    dtype = "int32" if graph.tensors[name].dtype.bits == 32 else "int8"
    return Binding(
        name=name,
        dram_addr=layout.addr,
        dtype=dtype,
        shape=layout.shape,
        pre_shape=layout.pre_shape,
        perm=layout.perm,
    )


def layer_sizes(
    node: ir.Op, graph: ir.Graph, config: AccelConfig, packing: dict[str, Packed] | None = None
) -> dict[str, int]:
    """The op's true sizes in bytes for one run, without the compiled layout's padding:
    LayerInfo's `input_bytes`, `weight_bytes` and `output_bytes`, the floor's counts
    (docs/energy.md, "The floor").

    Activations count at their main-memory element size (1 byte up to 8 bits, 4 for int32;
    packed, as `packing` (`plan_packing`) stores them), each distinct input tensor once
    (both operands of an Add, every input of a Concat); of a Conv's or pool's input only
    the pixels some output window covers (a 1x1 Conv of stride 2 needs a quarter of its
    input). The weights count a byte each, or packed as the op's input is, as main memory
    holds them (a grouped convolution's weights as they are, not expanded to the dense
    matrix the array multiplies). An op with parameters of its own
    (Conv, MatMul, AvgPool, Add, Requantize) adds the requant entries the requantizer must
    read: one per output channel where they differ by channel (a bias, per-channel scales),
    else one row of the table (min(channels, dim)), and the entries of its lookup table, if
    any; MaxPool's and Concat's identity table is not the op's own.
    """
    packing = packing or {}

    def nbytes(name: str) -> int:
        return natural_layout(graph.tensors[name], 0, packing.get(name, INT8)).nbytes

    out = graph.tensors[node.output]
    inputs = sum(nbytes(name) for name in dict.fromkeys(node.inputs))
    if isinstance(node, ir.Conv | ir.MaxPool | ir.AvgPool):
        source = graph.tensors[node.inputs[0]]
        dilations = getattr(node, "dilations", (1, 1))
        covered = [
            _covered(
                source.shape[2 + axis],
                out.shape[2 + axis],
                node.kernel[axis],
                node.strides[axis],
                node.pads[axis],
                dilations[axis],
            )
            for axis in (0, 1)
        ]
        inputs = nbytes(node.inputs[0]) * covered[0] * covered[1] // math.prod(source.shape[2:])
    weights = 0
    weight = getattr(node, "weight", None)
    if weight is not None:
        weights = -(-weight.size * packing.get(node.inputs[0], INT8).bits // 8)
    if hasattr(node, "requant"):
        channels = out.shape[-1] if isinstance(node, ir.MatMul) else out.shape[1]
        requant = node.requant
        per_channel = isinstance(node, ir.Conv | ir.MatMul) or requant.per_channel
        entries = channels if per_channel else min(channels, config.dim)
        weights += entries * REQ_ENTRY.itemsize
        if requant is not None and requant.table is not None:  # its entries, once each
            weights += requant.table.size  # a byte per entry
    return {
        "input_bytes": inputs,
        "weight_bytes": weights,
        "output_bytes": nbytes(node.output),
    }


def _model_work(
    node: ir.Op | None, model: ir.Graph, config: AccelConfig, packing: dict[str, Packed]
) -> dict:
    """A layer's useful MACs and sizes: those of the model's op `node`, or none for an op
    the backend added."""
    if node is None:
        return {"macs": 0, "input_bytes": 0, "weight_bytes": 0, "output_bytes": 0}
    return {"macs": ir.macs(node, model), **layer_sizes(node, model, config, packing)}


def _covered(size: int, out_size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """How many of an axis' `size` input positions some output window covers (padding
    excluded)."""
    starts = np.arange(out_size)[:, None] * stride - pad
    positions = starts + np.arange(kernel)[None, :] * dilation
    return int(np.unique(positions[(positions >= 0) & (positions < size)]).size)


def compile_graph(
    graph: ir.Graph,
    config: AccelConfig,
    *,
    dump_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    host_runtime: Evaluate | None = None,
) -> Program:
    """Compile the integer IR for `config`. Deterministic: the same graph and config give
    byte-identical Programs. `progress(done, total)` hears each op lowered. With the
    host-op runtime (`host_runtime`: `verdigris.sim.host.run_host_compute`), element-wise
    host ops become the device's lookup tables (`lookups_on_device`); without, they stay
    host calls."""
    dump = _Dumper(dump_dir)
    if host_runtime is not None:
        graph = lookups_on_device(graph, config, host_runtime)
    # The model's ops, for the useful MACs and the sizes of each layer (its floor): an op
    # the backend adds (a padded copy of a conv's input) moves data and has none.
    model_ops = {node.name: node for node in graph.nodes}
    model = graph
    # Packing first, as it changes which convs run unrolled, then again with the copies.
    graph = pad_columns(graph, config, plan_packing(graph, config))
    check_graph(graph, config)
    dump("1-check", lambda: ir.format_graph(graph))
    packing = plan_packing(graph, config)

    # shapes, orders and packing; addresses follow
    layouts = plan_memory(graph, config, 0, packing).layouts
    dump(
        "2-layout",
        lambda: "\n".join(
            f"{k}: {v.shape} as {v.pre_shape} perm {v.perm}"
            + (f" packed int{v.packed.bits} - {v.packed.offset}" if v.packed != INT8 else "")
            for k, v in layouts.items()
        ),
    )

    pool = ConstantPool(config.dma_bytes)
    constants = {
        node.name: constants_for(node, graph, layouts, pool, config) for node in graph.nodes
    }
    dump("3-constants", lambda: f"{len(pool.data)} bytes of weights and requant tables")

    plan = plan_memory(graph, config, len(pool.data), packing)
    dump(
        "4-memory",
        lambda: "\n".join(f"{k}: @{v.addr} {v.nbytes} B" for k, v in plan.layouts.items()),
    )

    # Device segments: each is lowered on its own (its tokens balance within it) and ends
    # with FINISH; a host op runs between two.
    instructions: list = []
    lowerer = Lowerer(config)
    layers, calls = [], []
    segment_layers = 0  # layers lowered into the open segment (an alias has no instructions)
    for index, node in enumerate(graph.nodes):
        if progress is not None:
            progress(index, len(graph.nodes))
        if isinstance(node, ir.HostOp):
            if segment_layers:
                instructions += lowerer.emitter.finish()
                lowerer, segment_layers = Lowerer(config), 0
            calls.append(
                HostCall(
                    name=node.name,
                    at=len(instructions),
                    compute=node.compute,
                    inputs=tuple(_binding(name, plan.layouts, graph) for name in node.inputs),
                    output=_binding(node.output, plan.layouts, graph),
                )
            )
            continue
        first = len(instructions) + len(lowerer.emitter.instructions)
        lower_op(lowerer, node, graph, plan.layouts, constants[node.name])
        out = graph.tensors[node.output]
        layers.append(
            LayerInfo(
                name=node.name,
                kind=node.kind,
                first=first,
                last=len(instructions) + len(lowerer.emitter.instructions),
                output_shape=tuple(out.shape),
                **_model_work(model_ops.get(node.name), model, config, packing),
            )
        )
        segment_layers += 1
    if segment_layers or not instructions:
        instructions += lowerer.emitter.finish()
    if progress is not None:
        progress(len(graph.nodes), len(graph.nodes))
    if len(instructions) > config.instruction_capacity:
        raise CompileError(
            f"the program needs {len(instructions):,} instructions; config '{config.name}' "
            f"holds {config.instruction_capacity:,}. Use a larger config."
        )
    dump(
        "5-lower",
        lambda: "\n".join(f"{i:6d}  {disassemble(x)}" for i, x in enumerate(instructions)),
    )

    program = Program(
        config=config,
        instructions=tuple(instructions),
        segments=(Segment(addr=0, data=bytes(pool.data)),) if pool.data else (),
        inputs=tuple(_binding(i.tensor.name, plan.layouts, graph) for i in graph.inputs),
        outputs=tuple(_binding(o.tensor.name, plan.layouts, graph) for o in graph.outputs),
        layers=tuple(layers),
        host=host_side(graph),
        name=graph.name,
        host_calls=tuple(calls),
    )
    logger.info(
        "compiled %s for %s: %d instructions, %d host ops, %d bytes of constants, %d of memory",
        graph.name,
        config.name,
        len(instructions),
        len(calls),
        len(pool.data),
        plan.activations_end,
    )
    dump(
        "6-package", lambda: f"{len(instructions)} instructions; memory end {plan.activations_end}"
    )
    return program


class _Dumper:
    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str, text: Callable[[], str]) -> None:
        """Write what `text` makes (made only when dumping: a long listing costs seconds)."""
        if self.folder:
            (self.folder / f"{step}.txt").write_text(text() + "\n")
