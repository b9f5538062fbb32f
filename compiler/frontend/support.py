"""What the frontend cannot import, found before any work: every node whose op type is not
registered (`registry.py`) or whose attributes its registered checks reject, unless the host
can run it (`host_compute.runs_on_host`: the importer then decides, by its inputs)."""

from __future__ import annotations

import onnx

from verdigris.compiler.frontend import registry
from verdigris.compiler.frontend.errors import Problem
from verdigris.compiler.frontend.host_compute import runs_on_host
from verdigris.compiler.frontend.onnx_file import node_label
from verdigris.compiler.frontend.values import INCONSISTENT, inconsistent

__all__ = ["check_supported"]

# Unsupported ops that get advice instead of "op X is not supported".
_OP_ADVICE = {
    "DynamicQuantizeLinear": "dynamically quantized models are not supported; quantize "
    "statically instead (`verdigris run MODEL_fp32.onnx --calibrate data.npz`)",
}


def check_supported(model: onnx.ModelProto) -> list[Problem]:
    """Every node whose op type or attributes the frontend does not support."""
    problems = []
    for index, node in enumerate(model.graph.node):
        label = node_label(node, index)
        try:
            problems += _node_problems(node, label)
        except INCONSISTENT as error:
            problems.append(Problem(label, node.op_type, inconsistent(error)))
    return problems


def _unsupported_reason(node: onnx.NodeProto) -> str:
    """Why an op that is not registered cannot be imported."""
    domain = registry.node_domain(node)
    where = f" in domain '{domain}'" if domain else ""
    return _OP_ADVICE.get(node.op_type, f"op {node.op_type}{where} is not supported")


def _node_problems(node: onnx.NodeProto, label: str) -> list[Problem]:
    """What keeps `node` from being imported: its op type, or attributes not supported."""
    if runs_on_host(node):
        return []
    op = registry.lookup(node)
    if op is None:
        return [Problem(label, node.op_type, _unsupported_reason(node))]
    return [
        Problem(label, node.op_type, reason) for reason in registry.attribute_problems(op, node)
    ]
