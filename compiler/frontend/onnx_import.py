"""Quantized ONNX (QDQ or QOperator) to the integer IR: the frontend's entry point.

`import_model` reads the file (`onnx_file.py`), lists every node it cannot import before
any work (`support.py`, from the op registry `registry.py`), walks the nodes with one
handler per op (`importer.py`; handlers in `qdq.py`, `qdq_ops.py`, `qoperator_ops.py`,
`shape_ops.py`, `host_compute.py`, building IR ops with `builders.py`), and then runs the
graph passes (`verdigris.compiler.passes`) on the imported graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from verdigris.compiler import ir, passes
from verdigris.compiler.frontend import registry
from verdigris.compiler.frontend.errors import ModelError, Problem, UnsupportedModelError
from verdigris.compiler.frontend.importer import Importer
from verdigris.compiler.frontend.onnx_file import (
    fix_input_shapes,
    load_onnx,
    node_label,
    upgrade_opset,
)
from verdigris.compiler.frontend.registry import MS
from verdigris.compiler.frontend.support import check_supported

__all__ = ["import_model", "translate_model"]


def import_model(
    model: onnx.ModelProto | str | Path,
    *,
    constants: dict[str, np.ndarray] | None = None,
    name: str | None = None,
    verify: bool | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
) -> ir.Graph:
    """Import a quantized ONNX model into the IR: translate it, then run the graph passes.

    `constants` binds graph inputs to fixed values (for models whose weights are inputs,
    such as the ONNX backend node tests). Raises `ModelFileError` for unreadable files and
    `UnsupportedModelError` listing every node that cannot be imported. `verify` checks the
    graph after translation and after every pass (`verify_graph`; default: the
    VERDIGRIS_VERIFY_GRAPH environment variable). `input_shapes` fixes the shapes of inputs
    with symbolic or unknown dimensions, by input name (`--input-shape`); `batch` sets
    every input's first dimension (`--batch`, `fix_input_shapes`).
    """
    graph = translate_model(
        model, constants=constants, name=name, input_shapes=input_shapes, batch=batch
    )
    for output in graph.outputs:
        if batch is not None and output.tensor.shape[:1] != (batch,):
            raise ModelError(
                f"{graph.name}: --batch {batch}: output '{output.name}' has shape "
                f"{output.tensor.shape}, not a batch of {batch}: the model fixes its batch "
                "(a Reshape to a constant shape, say); re-export it with a dynamic batch"
            )
    return passes.run_passes(graph, verify=verify)


def translate_model(
    model: onnx.ModelProto | str | Path,
    *,
    constants: dict[str, np.ndarray] | None = None,
    name: str | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
) -> ir.Graph:
    """The ONNX model as the IR, node for node, before any pass."""
    label = str(model) if isinstance(model, str | Path) else (name or model.graph.name or "model")
    if isinstance(model, str | Path):
        model = load_onnx(model)
    model = upgrade_opset(model, label)
    model = fix_input_shapes(model, dict(input_shapes or {}), label, batch)
    problems = check_supported(model)
    if not _is_quantized(model):
        if problems:
            raise UnsupportedModelError(label, problems, _advice(problems))
        raise ModelError(
            f"{label}: this is a float model (no QuantizeLinear, QLinear* or QONNX Quant ops). "
            "Quantize it with calibration data: `verdigris run MODEL --calibrate data.npz` "
            "(see docs/frontend.md)"
        )
    # The nodes the registry refuses are not imported; every other node is, so that the
    # error lists every blocker at once, in node order.
    importer = Importer(model, label, constants or {})
    importer.run(blocked=frozenset(problem.node for problem in problems))
    outputs = importer.outputs()
    if problems or importer.problems:
        order = {node_label(node, i): i for i, node in enumerate(model.graph.node)}
        every = sorted([*problems, *importer.problems], key=lambda p: order.get(p.node, len(order)))
        raise UnsupportedModelError(label, every, _advice(problems))
    return importer.graph(name or model.graph.name or Path(label).stem, outputs)


def _is_quantized(model: onnx.ModelProto) -> bool:
    quantized = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
    if any(
        node.op_type in quantized or registry.node_domain(node) in (MS, registry.QONNX)
        for node in model.graph.node
    ):
        return True
    int_inputs = (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)
    return any(v.type.tensor_type.elem_type in int_inputs for v in model.graph.input)


def _advice(problems: list[Problem]) -> str:
    if any(p.op_type == "DynamicQuantizeLinear" for p in problems):
        return (
            "This model is dynamically quantized. Verdigris runs statically quantized models: "
            "quantize the float model with calibration data instead (--calibrate)."
        )
    return ""
