"""The ONNX ops the frontend imports, each declared once: its handler, the IR device ops it
may produce, the attribute checks run before any work, and whether only a quantized model
contains it.

Everything else is derived from `ONNX_OPS`: the supported-op list (`SUPPORTED_OPS`), the
"not supported" problems of `check_supported`, the importer's dispatch, the ops calibration
refuses (an already-quantized model) and the table in docs/frontend.md (a test compares
them). The backend's per-IR-op table (`compiler/backend/device_ops.py`) covers every IR op
named here (also tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx

from verdigris.arch.host_steps import HOST_OPS
from verdigris.compiler import ir
from verdigris.compiler.frontend import qdq, qdq_ops, qonnx_ops, qoperator_ops, shape_ops
from verdigris.compiler.frontend.host_compute import QLINEAR_FORMS
from verdigris.compiler.frontend.onnx_file import QONNX_DOMAINS, attributes
from verdigris.compiler.frontend.shapes import AUTO_PADS
from verdigris.compiler.frontend.values import MS

QONNX = QONNX_DOMAINS[0]

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = [
    "MS",
    "ONNX_OPS",
    "SUPPORTED_OPS",
    "OnnxOp",
    "attribute_problems",
    "auto_pad_check",
    "lookup",
    "markdown_table",
    "node_domain",
]


# A check reads a node and its attributes and gives the reason it cannot be imported, or None.
Check = Callable[[onnx.NodeProto, dict], str | None]


@dataclass(frozen=True)
class OnnxOp:
    """One supported ONNX op. `produces`: the IR device ops its handler may emit (the
    importer enforces it); none for ops that only keep values or add host steps."""

    op_type: str
    handler: Callable[[Importer, onnx.NodeProto], None]
    produces: tuple[type[ir.Op], ...] = ()
    domain: str = ""
    checks: tuple[Check, ...] = ()
    quantized: bool = False  # only a quantized model has it (calibration refuses such)
    notes: str = ""  # for docs/frontend.md


def auto_pad_check(_node: onnx.NodeProto, attrs: dict) -> str | None:
    """auto_pad is one ONNX defines (the handlers turn it into explicit pads)."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in AUTO_PADS:
        return f"auto_pad={auto_pad!r} is not one of {', '.join(AUTO_PADS)}"
    return None


def _count_include_pad(_node: onnx.NodeProto, attrs: dict) -> str | None:
    if not attrs.get("count_include_pad", 0) and any(attrs.get("pads", [])):
        return (
            "padding with count_include_pad=0 divides border windows by different "
            "counts (the device divides every window by one)"
        )
    return None


def _no_ceil_mode(_node: onnx.NodeProto, attrs: dict) -> str | None:
    return "ceil_mode=1 is not supported" if attrs.get("ceil_mode", 0) else None


def _no_channels_last(_node: onnx.NodeProto, attrs: dict) -> str | None:
    return "channels_last=1 is not supported" if attrs.get("channels_last", 0) else None


def _no_indices(node: onnx.NodeProto, _attrs: dict) -> str | None:
    if len(node.output) > 1 and node.output[1]:
        return "the Indices output is not supported"
    return None


def _no_trans_a(_node: onnx.NodeProto, attrs: dict) -> str | None:
    return "transA=1 is not supported" if attrs.get("transA", 0) else None


_AVERAGE_POOL_CHECKS = (_count_include_pad, _no_ceil_mode)

ONNX_OPS: tuple[OnnxOp, ...] = (
    # Quantization boundaries (QDQ).
    OnnxOp(
        "QuantizeLinear",
        qdq.quantize_linear,
        (ir.Requantize, ir.Reshape, ir.HostOp),
        quantized=True,
        notes="fixes the type of a float input, an op's result or a constant",
    ),
    OnnxOp(
        "DequantizeLinear",
        qdq.dequantize_linear,
        quantized=True,
        notes="a float view of an activation, or a quantized constant",
    ),
    # QONNX quantizers (Brevitas, FINN): a QuantizeLinear and DequantizeLinear in one node.
    OnnxOp(
        "Quant",
        qonnx_ops.quant,
        (ir.Requantize, ir.Reshape, ir.HostOp),
        domain=QONNX,
        quantized=True,
        notes="1 to 8 bits on activations (ROUND), 1 to 32 on constants (any rounding mode); "
        "signed, narrow; per-channel on constants",
    ),
    OnnxOp(
        "IntQuant",
        qonnx_ops.quant,
        (ir.Requantize, ir.Reshape, ir.HostOp),
        domain=QONNX,
        quantized=True,
        notes="Quant's newer name",
    ),
    OnnxOp(
        "BipolarQuant",
        qonnx_ops.bipolar_quant,
        (ir.Requantize,),
        domain=QONNX,
        quantized=True,
        notes="binary (+1/-1) weights; a binary activation after a Conv or Gemm (the "
        "accumulator's sign, by a lookup table) or of a quantized tensor",
    ),
    OnnxOp(
        "Trunc",
        qonnx_ops.trunc,
        domain=QONNX,
        quantized=True,
        notes="v2 (Brevitas' TruncAvgPool2d) after an AveragePool or GlobalAveragePool: "
        "FLOOR, CEIL or ROUND of the window sum over a power of two, exactly",
    ),
    OnnxOp(
        "MultiThreshold",
        qonnx_ops.multi_threshold,
        (ir.Requantize,),
        domain=QONNX,
        quantized=True,
        notes="FINN's threshold activation, per channel or one set, out_scale/out_bias; of a "
        "quantized tensor (a lookup table), or after a Conv, Gemm or MatMul (thresholds on "
        "its accumulator spanning at most 254 steps)",
    ),
    # Float compute ops between DequantizeLinear and QuantizeLinear (QDQ).
    OnnxOp(
        "Conv",
        qdq_ops.conv,
        (ir.Conv,),
        notes="strides, pads or any auto_pad, dilations, groups (depthwise)",
    ),
    OnnxOp("Gemm", qdq_ops.gemm, (ir.MatMul,), checks=(_no_trans_a,), notes="transB, alpha, beta"),
    OnnxOp("MatMul", qdq_ops.matmul, (ir.MatMul,), notes="with a constant weight"),
    OnnxOp(
        "BatchNormalization",
        qdq_ops.batch_normalization,
        notes="folded into the Conv or Gemm right before it (Brevitas keeps it); elsewhere "
        "on the host",
    ),
    OnnxOp(
        "Relu",
        qdq_ops.relu,
        (ir.Requantize,),
        notes="fused into the preceding op's clamp, or a standalone clamp",
    ),
    OnnxOp(
        "Clip",
        qdq_ops.clip,
        (ir.Requantize,),
        notes="fused into the preceding op's clamp, or a standalone clamp",
    ),
    OnnxOp(
        "MaxPool",
        qdq_ops.max_pool,
        (ir.MaxPool,),
        checks=(_no_indices,),
        notes="including ceil_mode and auto_pad; QDQ or on integers",
    ),
    OnnxOp(
        "AveragePool",
        qdq_ops.average_pool,
        (ir.AvgPool,),
        checks=_AVERAGE_POOL_CHECKS,
        notes="count_include_pad=1 or no padding",
    ),
    OnnxOp(
        "GlobalAveragePool",
        qdq_ops.global_average_pool,
        (ir.AvgPool,),
        notes="an average pool over the whole feature map",
    ),
    OnnxOp(
        "Add",
        qdq_ops.add,
        (ir.Add,),
        notes="two same-shape tensors (residual, with rescale)",
    ),
    OnnxOp(
        "Concat",
        qdq_ops.concat,
        (ir.Requantize, ir.Concat),
        notes="inputs rescaled to the output's quantization where they differ",
    ),
    # Values, shapes and host steps.
    OnnxOp("Flatten", shape_ops.flatten, (ir.Reshape,), notes="on the device or the host"),
    OnnxOp("Reshape", shape_ops.reshape, (ir.Reshape,), notes="with a constant shape"),
    OnnxOp("Identity", shape_ops.identity, notes="an alias"),
    OnnxOp("Constant", shape_ops.constant, notes="with a tensor `value`"),
    # QOperator and integer-only ops.
    OnnxOp(
        "QLinearConv",
        qoperator_ops.qlinear_conv,
        (ir.Conv,),
        quantized=True,
        notes="as Conv; int32 bias",
    ),
    OnnxOp(
        "QLinearMatMul",
        qoperator_ops.qlinear_matmul,
        (ir.MatMul,),
        quantized=True,
        notes="with a constant weight",
    ),
    OnnxOp(
        "ConvInteger",
        qoperator_ops.conv_integer,
        (ir.Conv,),
        quantized=True,
        notes="int32 result: a graph output only",
    ),
    OnnxOp(
        "MatMulInteger",
        qoperator_ops.matmul_integer,
        (ir.MatMul,),
        quantized=True,
        notes="int32 result: a graph output only",
    ),
    OnnxOp(
        "QGemm",
        qoperator_ops.qgemm,
        (ir.MatMul,),
        domain=MS,
        checks=(_no_trans_a,),
        quantized=True,
        notes="with y_scale",
    ),
    OnnxOp(
        "QLinearAdd",
        qoperator_ops.qlinear_add,
        (ir.Add,),
        domain=MS,
        quantized=True,
        notes="two same-shape tensors",
    ),
    OnnxOp(
        "QLinearGlobalAveragePool",
        qoperator_ops.qlinear_global_average_pool,
        (ir.AvgPool,),
        domain=MS,
        checks=(_no_channels_last,),
        quantized=True,
        notes="channels_last=0",
    ),
    OnnxOp(
        "QLinearAveragePool",
        qoperator_ops.qlinear_average_pool,
        (ir.AvgPool,),
        domain=MS,
        checks=(*_AVERAGE_POOL_CHECKS, _no_channels_last),
        quantized=True,
        notes="count_include_pad=1 or no padding; channels_last=0",
    ),
    OnnxOp(
        "QLinearConcat",
        qoperator_ops.qlinear_concat,
        (ir.Requantize, ir.Concat),
        domain=MS,
        quantized=True,
        notes="inputs rescaled to the output's quantization where they differ",
    ),
)

_BY_KEY = {(op.domain, op.op_type): op for op in ONNX_OPS}
if len(_BY_KEY) != len(ONNX_OPS):
    raise AssertionError("an ONNX op is registered twice")

# Ops the frontend imports, by domain.
SUPPORTED_OPS: dict[str, set[str]] = {}
for _op in ONNX_OPS:
    SUPPORTED_OPS.setdefault(_op.domain, set()).add(_op.op_type)
del _op


def node_domain(node: onnx.NodeProto) -> str:
    """The node's domain, with the default domain's two spellings as "" and QONNX's older
    names as its own."""
    if node.domain in ("", "ai.onnx"):
        return ""
    return QONNX if node.domain in QONNX_DOMAINS else node.domain


def lookup(node: onnx.NodeProto) -> OnnxOp | None:
    """The registered op for `node`, or None where the frontend does not support it."""
    return _BY_KEY.get((node_domain(node), node.op_type))


def attribute_problems(op: OnnxOp, node: onnx.NodeProto) -> list[str]:
    """Every reason the device handler of `op` refuses `node`'s attributes."""
    attrs = attributes(node)
    reasons = (check(node, attrs) for check in (auto_pad_check, *op.checks))
    return [reason for reason in reasons if reason is not None]


def markdown_table() -> str:
    """The supported ops as the Markdown tables in docs/frontend.md: the ops with a device
    handler, then the ops the host runs (where the device cannot)."""
    lines = ["| op | domain | IR ops | notes |", "|---|---|---|---|"]
    for op in ONNX_OPS:
        produces = ", ".join(kind.__name__ for kind in op.produces) or "—"
        lines.append(f"| {op.op_type} | {op.domain or 'ai.onnx'} | {produces} | {op.notes} |")
    lines += ["", "| on the host | domain | runs as |", "|---|---|---|"]
    lines.append(f"| {', '.join(sorted(HOST_OPS))} | ai.onnx | itself, in float32 |")
    for op_type, form in QLINEAR_FORMS.items():
        domain = form.domain or "ai.onnx"
        lines.append(f"| {op_type} | {domain} | dequantize, {form.float_op}, quantize |")
    return "\n".join(lines)
