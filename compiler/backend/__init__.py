"""Compiler backend: integer IR -> Program for one AccelConfig.

The pipeline, in the order it runs (`compile_graph`):

1. check      — every op and tensor can run on this config (types, shapes, sizes);
2. layout     — channels-last layouts, and where a Flatten makes a MatMul's rows permute;
3. constants  — weight tiles in array order and requant tables, from address 0;
4. memory     — activations placed after the constants, reusing dead tensors' space;
5. lower      — instructions per op: tiling, double buffering, dependency tokens;
6. package    — bindings for inputs/outputs, host steps, the layer table: the Program.

With `dump_dir`, each step writes what it produced as text, to check it against golden.
"""

from __future__ import annotations

import logging
from pathlib import Path

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import disassemble
from verdigris.arch.program import Binding, LayerInfo, Program, Segment
from verdigris.compiler import ir
from verdigris.compiler.backend.host import host_to_json
from verdigris.compiler.backend.lower import ConstantPool, Lowerer, constants_for
from verdigris.compiler.backend.memory import CompileError, plan_memory

__all__ = ["CompileError", "compile_graph"]

logger = logging.getLogger(__name__)

_DEVICE_OPS = (
    ir.Conv,
    ir.MatMul,
    ir.MaxPool,
    ir.AvgPool,
    ir.Add,
    ir.Requantize,
    ir.Concat,
    ir.Reshape,
)


def check_graph(graph: ir.Graph, config: AccelConfig) -> None:
    """Every problem at once, naming the op and what to do."""
    problems = []
    consumers: dict[str, list[ir.Op]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    for node in graph.nodes:
        out = graph.tensors[node.output]
        if not isinstance(node, _DEVICE_OPS):
            problems.append(f"{node.name}: {node.kind} cannot run on the accelerator")
            continue
        if isinstance(node, ir.Conv | ir.MaxPool | ir.AvgPool) and len(out.shape) != 4:
            problems.append(f"{node.name}: {node.kind} needs 4-D NCHW tensors, not {out.shape}")
        if isinstance(node, ir.Conv | ir.MatMul) and node.weight_bits > config.operand_bits:
            problems.append(
                f"{node.name}: weights need {node.weight_bits} bits; config '{config.name}' "
                f"multiplies int{config.operand_bits}"
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
            if flattening and any(not isinstance(u, ir.MatMul) for u in users):
                problems.append(
                    f"{node.name}: a Flatten/Reshape of a feature map may only "
                    "feed MatMul/Gemm on the accelerator"
                )
    if problems:
        raise CompileError(
            f"graph '{graph.name}' cannot be compiled for config "
            f"'{config.name}':\n  - " + "\n  - ".join(problems)
        )


def _binding(name: str, layouts, graph: ir.Graph) -> Binding:
    layout = layouts[name]
    dtype = "int32" if graph.tensors[name].dtype.bits == 32 else "int8"
    return Binding(name, layout.addr, dtype, layout.shape, layout.pre_shape, layout.perm)


def compile_graph(
    graph: ir.Graph, config: AccelConfig, *, dump_dir: str | Path | None = None
) -> Program:
    """Compile the integer IR for `config`. Deterministic: the same graph and config give
    byte-identical Programs."""
    dump = _Dumper(dump_dir)
    check_graph(graph, config)
    dump("1-check", ir.format_graph(graph))

    layouts = plan_memory(graph, config, 0).layouts  # shapes and orders; addresses follow
    dump(
        "2-layout",
        "\n".join(f"{k}: {v.shape} as {v.pre_shape} perm {v.perm}" for k, v in layouts.items()),
    )

    pool = ConstantPool(config.dma_bytes)
    constants = {
        node.name: constants_for(node, graph, layouts, pool, config) for node in graph.nodes
    }
    dump("3-constants", f"{len(pool.data)} bytes of weights and requant tables")

    plan = plan_memory(graph, config, len(pool.data))
    dump("4-memory", "\n".join(f"{k}: @{v.addr} {v.nbytes} B" for k, v in plan.layouts.items()))

    lowerer = Lowerer(config)
    layers = []
    for node in graph.nodes:
        first = len(lowerer.emitter.instructions)
        lowerer.lower(node, graph, plan.layouts, constants[node.name])
        out = graph.tensors[node.output]
        layers.append(
            LayerInfo(
                node.name,
                node.kind,
                first,
                len(lowerer.emitter.instructions),
                ir.macs(node, graph),
                tuple(out.shape),
            )
        )
    instructions = lowerer.emitter.finish()
    if len(instructions) > config.instruction_capacity:
        raise CompileError(
            f"the program needs {len(instructions):,} instructions; config '{config.name}' "
            f"holds {config.instruction_capacity:,}. Use a larger config."
        )
    dump("5-lower", "\n".join(f"{i:6d}  {disassemble(x)}" for i, x in enumerate(instructions)))

    program = Program(
        config=config,
        instructions=tuple(instructions),
        segments=(Segment(0, bytes(pool.data)),) if pool.data else (),
        inputs=tuple(_binding(i.tensor.name, plan.layouts, graph) for i in graph.inputs),
        outputs=tuple(_binding(o.tensor.name, plan.layouts, graph) for o in graph.outputs),
        layers=tuple(layers),
        host=host_to_json(graph),
        name=graph.name,
    )
    logger.info(
        "compiled %s for %s: %d instructions, %d bytes of constants, %d of memory",
        graph.name,
        config.name,
        len(instructions),
        len(pool.data),
        plan.activations_end,
    )
    dump("6-package", f"{len(instructions)} instructions; memory end {plan.activations_end}")
    return program


class _Dumper:
    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str, text: str) -> None:
        if self.folder:
            (self.folder / f"{step}.txt").write_text(text + "\n")
