"""Reference execution of ONNX models, independent of Verdigris' own compiler and executors.

Three runners with the same call shape, `(model, feeds) -> {output name: array}`:

- `run_onnx_reference` evaluates the model with `onnx.reference.ReferenceEvaluator` (numpy,
  written from the ONNX specification), extended with the com.microsoft contrib operators that
  onnxruntime's QOperator quantizer writes (QGemm, QLinearAdd, QLinearMul,
  QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat, QLinearLeakyRelu,
  QLinearSoftmax). Those follow onnxruntime's ContribOperators.md: dequantize the inputs,
  compute in float32, quantize the result (round half to even, add the zero point, saturate).
  Where the formula leaves the float32 evaluation order open, the order of onnxruntime's CPU
  kernels is used, so that exact ties round alike: QGemm and QLinearGlobalAveragePool multiply
  an exact int32 accumulator by one float32 factor, QLinearAdd scales each operand by its
  ratio to the output scale. onnx.reference's own QLinearConv is replaced by `QLinearConv`,
  the same arithmetic with a vectorized convolution (60 to 200 times faster on the examples).
- `run_onnxruntime` runs onnxruntime's CPU provider, with graph optimizations off unless asked:
  its optimized QDQ graphs round differently, so only the unoptimized run is a fair second
  opinion.
- `run_qonnx` runs a QONNX model (Brevitas' low-bit exports) with QONNX's own executor.

A model with an operator a runner cannot execute raises `ReferenceRunError` naming it.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops import load_op
from onnx.reference.ops.op_qlinear_conv import QLinearConv as _SpecQLinearConv
from onnx.reference.ops_optimized.op_conv_optimized import _conv_implementation_im2col

__all__ = [
    "CONTRIB_OPS",
    "MS_DOMAIN",
    "ReferenceRunError",
    "run_onnx_reference",
    "run_onnxruntime",
    "run_qonnx",
]

log = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
# onnx.reference implements DequantizeLinear only from opset 19 (QuantizeLinear from 10); older
# models are converted to this opset, whose Q/DQ semantics for 8-bit types are unchanged.
_FIRST_QDQ_OPSET = 19
_CONVERT_TO_OPSET = 21

ModelLike = onnx.ModelProto | str | Path


class ReferenceRunError(RuntimeError):
    """A runner cannot execute a model, usually because of an operator it does not implement."""

    def __init__(self, message: str, *, op_type: str | None = None, domain: str | None = None):
        super().__init__(message)
        self.op_type = op_type
        self.domain = domain


# ---------------------------------------------------------------------------------------------
# Quantization arithmetic shared by the contrib kernels


def _scalar(value: np.ndarray) -> np.float32:
    """A per-tensor scale given as a scalar or a one-element tensor."""
    array = np.asarray(value, dtype=np.float32)
    if array.size != 1:
        raise ValueError(f"expected a per-tensor (one-element) scale, got shape {array.shape}")
    return np.float32(array.reshape(-1)[0])


def _zero_point(value: np.ndarray | None) -> np.int32:
    """An optional per-tensor zero point as an int32 (absent means 0)."""
    if value is None:
        return np.int32(0)
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f"expected a per-tensor zero point, got shape {array.shape}")
    return np.int32(array.reshape(-1)[0])


def _output_dtype(zero_point: np.ndarray | None, fallback: np.dtype) -> np.dtype:
    """The quantized output type: that of the output zero point, else of the quantized input."""
    dtype = np.dtype(fallback if zero_point is None else np.asarray(zero_point).dtype)
    if dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise TypeError(f"quantized tensors must be int8 or uint8, not {dtype}")
    return dtype


def _dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None) -> np.ndarray:
    """scale * (x - zero_point) in float32, as DequantizeLinear does."""
    centered = np.asarray(x).astype(np.int32) - _zero_point(zero_point)
    return (centered.astype(np.float32) * _scalar(scale)).astype(np.float32)


def _round_saturate(
    values: np.ndarray, zero_point: np.ndarray | None, dtype: np.dtype
) -> np.ndarray:
    """round-half-to-even(values) + zero_point, clamped to dtype's range (QuantizeLinear)."""
    info = np.iinfo(dtype)
    rounded = np.rint(np.asarray(values, dtype=np.float32)).astype(np.int64)
    return np.clip(rounded + int(_zero_point(zero_point)), info.min, info.max).astype(dtype)


def _quantize(
    values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, dtype: np.dtype
) -> np.ndarray:
    """saturate(round(values / scale) + zero_point) with the division in float32."""
    scaled = np.asarray(values, dtype=np.float32) / _scalar(scale)
    return _round_saturate(scaled, zero_point, dtype)


# ---------------------------------------------------------------------------------------------
# com.microsoft kernels (input order and attributes as in onnxruntime's ContribOperators.md)


class QGemm(OpRun):
    """Y = quantize(alpha * A' B' * a_scale * b_scale + C * a_scale * b_scale), C int32.

    A' B' is an exact integer product of zero-point-corrected operands (int32 accumulator);
    the requantization factor alpha * a_scale * b_scale / y_scale is one float32 per output
    column. Without y_zero_point the output is float32.
    """

    op_domain = MS_DOMAIN

    def _run(
        self,
        a: np.ndarray,
        a_scale: np.ndarray,
        a_zero_point: np.ndarray,
        b: np.ndarray,
        b_scale: np.ndarray,
        b_zero_point: np.ndarray | None,
        c: np.ndarray | None = None,
        y_scale: np.ndarray | None = None,
        y_zero_point: np.ndarray | None = None,
        alpha: float = 1.0,
        transA: int = 0,
        transB: int = 0,
    ) -> tuple[np.ndarray]:
        a_int = np.asarray(a).astype(np.int64) - int(_zero_point(a_zero_point))
        a_int = a_int.T if transA else a_int
        b_int = np.asarray(b).astype(np.int64)
        b_int = b_int.T if transB else b_int  # now (K, N)
        if b_zero_point is not None:
            b_int = b_int - np.asarray(b_zero_point).astype(np.int64).reshape(-1)
        accumulator = a_int @ b_int
        if c is not None:
            accumulator = accumulator + np.asarray(c).astype(np.int64)
        # The hardware (and onnxruntime) accumulate in 32 bits: wrap like a register would.
        accumulator = accumulator.astype(np.int32)

        factor = np.float32(alpha) * _scalar(a_scale) * np.asarray(b_scale, np.float32).reshape(-1)
        if y_scale is not None:
            factor = factor / _scalar(y_scale)
        scaled = accumulator.astype(np.float32) * factor.astype(np.float32)
        if y_zero_point is None:
            return (scaled.astype(np.float32),)
        return (_round_saturate(scaled, y_zero_point, _output_dtype(y_zero_point, a.dtype)),)


class _QLinearBinary(OpRun):
    """Shared input handling of QLinearAdd and QLinearMul (numpy broadcasting)."""

    op_domain = MS_DOMAIN

    def _run(
        self,
        a: np.ndarray,
        a_scale: np.ndarray,
        a_zero_point: np.ndarray | None,
        b: np.ndarray,
        b_scale: np.ndarray,
        b_zero_point: np.ndarray | None,
        c_scale: np.ndarray,
        c_zero_point: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        dtype = _output_dtype(c_zero_point, a.dtype)
        real = self._combine(
            np.asarray(a).astype(np.int32) - _zero_point(a_zero_point),
            _scalar(a_scale),
            np.asarray(b).astype(np.int32) - _zero_point(b_zero_point),
            _scalar(b_scale),
            _scalar(c_scale),
        )
        return (_round_saturate(real, c_zero_point, dtype),)

    @staticmethod
    @abc.abstractmethod
    def _combine(
        a: np.ndarray, a_scale: np.float32, b: np.ndarray, b_scale: np.float32, c_scale: np.float32
    ) -> np.ndarray:
        """The real-valued result divided by c_scale, from zero-point-corrected operands."""


class QLinearAdd(_QLinearBinary):
    """C = (A_scale (A - A_zp) + B_scale (B - B_zp)) / C_scale + C_zp, in float32.

    Evaluated as (A - A_zp) (A_scale / C_scale) + (B - B_zp) (B_scale / C_scale), the order
    onnxruntime's kernels use: the formula's order rounds some exact ties off (2.7 - 0.6) / 0.04
    to 52.500004 instead of 52.5.
    """

    @staticmethod
    def _combine(
        a: np.ndarray, a_scale: np.float32, b: np.ndarray, b_scale: np.float32, c_scale: np.float32
    ) -> np.ndarray:
        a_ratio, b_ratio = a_scale / c_scale, b_scale / c_scale
        return a.astype(np.float32) * a_ratio + b.astype(np.float32) * b_ratio


class QLinearMul(_QLinearBinary):
    """C = (A - A_zp)(B - B_zp) * (A_scale B_scale / C_scale) + C_zp, in float32."""

    @staticmethod
    def _combine(
        a: np.ndarray, a_scale: np.float32, b: np.ndarray, b_scale: np.float32, c_scale: np.float32
    ) -> np.ndarray:
        product = (a.astype(np.int64) * b.astype(np.int64)).astype(np.float32)
        return product * (a_scale * b_scale / c_scale)


class QLinearGlobalAveragePool(OpRun):
    """Mean over the spatial axes: exact integer sum of (X - x_zp) times one float32 factor
    x_scale / (y_scale * spatial size), then + y_zp; NCHW, or NHWC with channels_last=1."""

    op_domain = MS_DOMAIN

    def _run(
        self,
        x: np.ndarray,
        x_scale: np.ndarray,
        x_zero_point: np.ndarray | None,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray | None,
        channels_last: int = 0,
    ) -> tuple[np.ndarray]:
        x = np.asarray(x)
        spatial = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
        size = int(np.prod([x.shape[axis] for axis in spatial]))
        centered = x.astype(np.int64) - int(_zero_point(x_zero_point))
        total = centered.sum(axis=spatial, keepdims=True).astype(np.int32)
        factor = _scalar(x_scale) / (_scalar(y_scale) * np.float32(size))
        scaled = total.astype(np.float32) * np.float32(factor)
        return (_round_saturate(scaled, y_zero_point, _output_dtype(y_zero_point, x.dtype)),)


class QLinearAveragePool(OpRun):
    """Dequantize, AveragePool in float32 (onnx.reference's kernel), quantize."""

    op_domain = MS_DOMAIN

    def _run(
        self,
        x: np.ndarray,
        x_scale: np.ndarray,
        x_zero_point: np.ndarray | None,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray | None = None,
        auto_pad: str = "NOTSET",
        ceil_mode: int = 0,
        channels_last: int = 0,
        count_include_pad: int = 0,
        kernel_shape: list[int] | None = None,
        pads: list[int] | None = None,
        strides: list[int] | None = None,
    ) -> tuple[np.ndarray]:
        if kernel_shape is None:
            raise ValueError("QLinearAveragePool needs kernel_shape")
        real = _dequantize(x, x_scale, x_zero_point)
        if channels_last:  # the float kernel wants channels first
            real = np.moveaxis(real, -1, 1)
        attributes: dict[str, object] = {
            "auto_pad": auto_pad,
            "ceil_mode": ceil_mode,
            "count_include_pad": count_include_pad,
            "kernel_shape": kernel_shape,
        }
        if pads is not None:
            attributes["pads"] = pads
        if strides is not None:
            attributes["strides"] = strides
        node = onnx.helper.make_node("AveragePool", ["X"], ["Y"], **attributes)
        (pooled,) = ReferenceEvaluator(node).run(None, {"X": real})
        if channels_last:
            pooled = np.moveaxis(pooled, 1, -1)
        dtype = _output_dtype(y_zero_point, np.asarray(x).dtype)
        return (_quantize(pooled, y_scale, y_zero_point, dtype),)


class QLinearConcat(OpRun):
    """Inputs: Y_scale, Y_zero_point, then (tensor, scale, zero point) per concatenated input;
    each input is dequantized, the floats concatenated along axis and quantized once."""

    op_domain = MS_DOMAIN

    def _run(
        self, y_scale: np.ndarray, y_zero_point: np.ndarray, *inputs: np.ndarray, axis: int = 0
    ) -> tuple[np.ndarray]:
        if not inputs or len(inputs) % 3:
            raise ValueError("QLinearConcat takes (tensor, scale, zero point) triples")
        parts = [
            _dequantize(inputs[i], inputs[i + 1], inputs[i + 2]) for i in range(0, len(inputs), 3)
        ]
        dtype = _output_dtype(y_zero_point, np.asarray(inputs[0]).dtype)
        return (_quantize(np.concatenate(parts, axis=axis), y_scale, y_zero_point, dtype),)


class QLinearLeakyRelu(OpRun):
    """quantize(x if x >= 0 else alpha x) on the dequantized input."""

    op_domain = MS_DOMAIN

    def _run(
        self,
        x: np.ndarray,
        x_scale: np.ndarray,
        x_zero_point: np.ndarray | None,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray | None = None,
        alpha: float = 0.01,
    ) -> tuple[np.ndarray]:
        real = _dequantize(x, x_scale, x_zero_point)
        leaky = np.where(real >= 0, real, np.float32(alpha) * real).astype(np.float32)
        dtype = _output_dtype(y_zero_point, np.asarray(x).dtype)
        return (_quantize(leaky, y_scale, y_zero_point, dtype),)


class QLinearSoftmax(OpRun):
    """quantize(Softmax(dequantize(X))) in float32.

    `opset` is the opset of the Softmax it replaces: from 13 the softmax runs along `axis`
    (default -1), before 13 over all axes from `axis` on (default 1), as Softmax does.
    """

    op_domain = MS_DOMAIN

    def _run(
        self,
        x: np.ndarray,
        x_scale: np.ndarray,
        x_zero_point: np.ndarray | None,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray | None = None,
        axis: int | None = None,
        opset: int = 13,
    ) -> tuple[np.ndarray]:
        real = _dequantize(x, x_scale, x_zero_point)
        if opset >= 13:
            probabilities = _softmax(real, -1 if axis is None else axis)
        else:
            start = (1 if axis is None else axis) % real.ndim
            flat = real.reshape(*real.shape[:start], -1)
            probabilities = _softmax(flat, -1).reshape(real.shape)
        dtype = _output_dtype(y_zero_point, np.asarray(x).dtype)
        return (_quantize(probabilities, y_scale, y_zero_point, dtype),)


def _softmax(values: np.ndarray, axis: int) -> np.ndarray:
    shifted = values - values.max(axis=axis, keepdims=True)
    exponentials = np.exp(shifted, dtype=np.float32)
    return (exponentials / exponentials.sum(axis=axis, keepdims=True)).astype(np.float32)


class QLinearConv(_SpecQLinearConv):
    """onnx.reference's QLinearConv, with the im2col convolution of its optimized float Conv.

    The specification kernel convolves pixel by pixel in Python (about 0.15 s per digits image
    for the example ResNet); the arithmetic here is the same line for line (int32 operands
    minus zero points, exact integer convolution, then the same float scaling and rounding),
    only the integer convolution is one matrix product.
    """

    def _run(
        self,
        x: np.ndarray,
        x_scale: np.ndarray,
        x_zero_point: np.ndarray | None,
        w: np.ndarray,
        w_scale: np.ndarray,
        w_zero_point: np.ndarray | None,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray | None,
        B: np.ndarray | None = None,
        auto_pad: str | None = None,
        dilations: list[int] | None = None,
        group: int | None = None,
        kernel_shape: list[int] | None = None,
        pads: list[int] | None = None,
        strides: list[int] | None = None,
    ) -> tuple[np.ndarray]:
        auto_pad = auto_pad or self.auto_pad
        if auto_pad not in (None, "NOTSET"):
            # The im2col helper computes SAME/VALID pads from the wrong axes; the spec kernel
            # gets them right.
            return super()._run(
                x,
                x_scale,
                x_zero_point,
                w,
                w_scale,
                w_zero_point,
                y_scale,
                y_zero_point,
                B,
                auto_pad=auto_pad,
                dilations=dilations,
                group=group,
                kernel_shape=kernel_shape,
                pads=pads,
                strides=strides,
            )
        x_int = np.asarray(x).astype(np.int32)
        if x_zero_point is not None:
            x_int -= np.asarray(x_zero_point).astype(np.int32)
        w_int = np.asarray(w).astype(np.int32)
        if w_zero_point is not None:
            w_zp = np.asarray(w_zero_point).astype(np.int32)
            if w_zp.ndim == 1 and w_zp.shape[0] == w_int.shape[0]:
                w_zp = w_zp.reshape((-1,) + (1,) * (w_int.ndim - 1))
            w_int -= w_zp
        accumulator = _conv_implementation_im2col(
            x_int,
            w_int,
            B,
            auto_pad,
            dilations or self.dilations,
            group or self.group,
            kernel_shape or self.kernel_shape,
            pads or self.pads,
            strides or self.strides,
        ).astype(np.int32)
        if np.size(w_scale) > 1:
            w_scale = np.expand_dims(np.asarray(w_scale).reshape(-1), (0, *range(2, x_int.ndim)))
        # As in the specification kernel: int32 times a float32 factor gives float64 here.
        real = accumulator * (x_scale * w_scale / y_scale)
        dtype = _output_dtype(y_zero_point, np.asarray(x).dtype)
        info = np.iinfo(dtype)
        if y_zero_point is not None:
            real = real + y_zero_point
        return (np.round(np.clip(real, info.min, info.max)).astype(dtype),)


CONTRIB_OPS: tuple[type[OpRun], ...] = (
    QGemm,
    QLinearAdd,
    QLinearMul,
    QLinearGlobalAveragePool,
    QLinearAveragePool,
    QLinearConcat,
    QLinearLeakyRelu,
    QLinearSoftmax,
)
_CONTRIB_NAMES = frozenset(op.__name__ for op in CONTRIB_OPS)
# Default-domain kernels that replace onnx.reference's own for speed, not for different results.
_FAST_KERNELS: tuple[type[OpRun], ...] = (QLinearConv,)


# ---------------------------------------------------------------------------------------------
# Runners


def _load(model: ModelLike) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(Path(model))


def _default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    raise ReferenceRunError("the model imports no default-domain (ai.onnx) opset")


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of a graph, including those of subgraphs (If, Loop, Scan bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _nodes(subgraph)


def _with_reference_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model itself, or a copy converted to opset 21 when it has Q/DQ nodes older than 19."""
    version = _default_opset(model)
    has_qdq = any(
        node.domain in ("", "ai.onnx") and node.op_type in ("QuantizeLinear", "DequantizeLinear")
        for node in _nodes(model.graph)
    )
    if version >= _FIRST_QDQ_OPSET or not has_qdq:
        return model
    log.debug("converting the model from opset %d to %d", version, _CONVERT_TO_OPSET)
    try:
        return version_converter.convert_version(model, _CONVERT_TO_OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors and C++ errors
        raise ReferenceRunError(
            f"onnx.reference runs DequantizeLinear only from opset {_FIRST_QDQ_OPSET}, and "
            f"converting this opset-{version} model to opset {_CONVERT_TO_OPSET} failed: {exc}",
            op_type="DequantizeLinear",
            domain="",
        ) from exc


# Domains onnx.reference has kernels for besides the default one (checked when it loads them).
_REFERENCE_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training", "experimental"}
)


def _check_reference_ops(model: onnx.ModelProto) -> None:
    """Raise ReferenceRunError for the first operator onnx.reference and CONTRIB_OPS lack."""
    versions = {opset.domain: opset.version for opset in model.opset_import}
    local_functions = {(f.domain, f.name) for f in model.functions}
    for node in _nodes(model.graph):
        if (node.domain, node.op_type) in local_functions:
            continue
        if node.domain == MS_DOMAIN:
            if node.op_type not in _CONTRIB_NAMES:
                raise ReferenceRunError(
                    f"no reference kernel for {MS_DOMAIN}.{node.op_type} (node {node.name!r}); "
                    f"implemented contrib ops: {', '.join(sorted(_CONTRIB_NAMES))}",
                    op_type=node.op_type,
                    domain=node.domain,
                )
        elif node.domain not in _REFERENCE_DOMAINS:
            raise ReferenceRunError(
                f"no reference kernel for {node.domain}.{node.op_type} (node {node.name!r}): "
                f"onnx.reference knows the domains {', '.join(sorted(_REFERENCE_DOMAINS))}",
                op_type=node.op_type,
                domain=node.domain,
            )
        elif node.domain in ("", "ai.onnx"):
            version = versions.get(node.domain, versions.get("", 0))
            try:
                load_op("", node.op_type, version)
            except (NotImplementedError, RuntimeError) as exc:
                raise ReferenceRunError(
                    f"onnx.reference has no kernel for {node.op_type} at opset {version} "
                    f"(node {node.name!r}): {exc}",
                    op_type=node.op_type,
                    domain="",
                ) from exc


def run_onnx_reference(model: ModelLike, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run `model` with onnx.reference (plus CONTRIB_OPS); returns every graph output by name."""
    proto = _with_reference_opset(_load(model))
    _check_reference_ops(proto)
    try:
        evaluator = ReferenceEvaluator(proto, new_ops=[*CONTRIB_OPS, *_FAST_KERNELS])
    except NotImplementedError as exc:  # ai.onnx.ml and the preview domains are checked here
        match = re.search(r"Node type '(?P<op>[^']+)' from domain '(?P<domain>[^']*)'", str(exc))
        raise ReferenceRunError(
            f"onnx.reference cannot run this model: {exc}",
            op_type=match["op"] if match else None,
            domain=match["domain"] if match else None,
        ) from exc
    names = [output.name for output in proto.graph.output]
    results = evaluator.run(None, dict(feeds))
    return dict(zip(names, results, strict=True))


# onnxruntime's messages for an operator it does not know or has no kernel for.
_ORT_OP_PATTERNS = (
    re.compile(r'In Node, \("[^"]*", (?P<op>[\w.]+), "(?P<domain>[^"]*)"'),
    re.compile(r"Fatal error: (?P<domain>[\w.]*):(?P<op>[\w.]+)\("),
    re.compile(r"implementation for (?P<op>[\w.]+)\((?P<version>\d+)\)"),
)


def _ort_error(exc: Exception) -> ReferenceRunError:
    message = str(exc)
    for pattern in _ORT_OP_PATTERNS:
        match = pattern.search(message)
        if match:
            groups = match.groupdict()
            return ReferenceRunError(
                f"onnxruntime cannot run operator {match['op']}: {message}",
                op_type=match["op"],
                domain=groups.get("domain"),
            )
    return ReferenceRunError(f"onnxruntime cannot load this model: {message}")


def run_onnxruntime(
    model: ModelLike, feeds: Mapping[str, np.ndarray], *, optimize: bool = False
) -> dict[str, np.ndarray]:
    """Run `model` on onnxruntime's CPU provider; graph optimizations off unless `optimize`."""
    # Imported here: onnx.reference users should not pay for loading onnxruntime.
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except (ort_state.Fail, ort_state.InvalidGraph, ort_state.NotImplemented) as exc:
        raise _ort_error(exc) from exc
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


def run_qonnx(model: ModelLike, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a QONNX model (Brevitas' or FINN's `Quant`, `BipolarQuant`, ...) with QONNX's own
    executor (`qonnx.core.onnx_exec.execute_onnx`, after its `cleanup_model`), one sample of
    the batch at a time (such files are usually exported with batch 1). qonnx is in the
    `dev` extra, not a dependency of the toolkit."""
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.util.cleanup import cleanup_model
    except ImportError as exc:
        raise ReferenceRunError(f"QONNX's executor needs the qonnx package: {exc}") from exc
    proto = _load(model)
    wrapper = cleanup_model(ModelWrapper(proto))  # it also renames inputs and outputs

    def fed(graph: onnx.GraphProto) -> list[str]:  # exporters list initializers as inputs too
        stored = {init.name for init in graph.initializer}
        return [v.name for v in graph.input if v.name not in stored]

    inputs = dict(zip(fed(proto.graph), fed(wrapper.graph), strict=True))
    outputs = [v.name for v in proto.graph.output]
    samples = len(next(iter(feeds.values())))
    results: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for index in range(samples):
        context = {inputs[name]: value[index : index + 1] for name, value in feeds.items()}
        got = execute_onnx(wrapper, context)
        for name, value in zip(outputs, wrapper.graph.output, strict=True):
            results[name].append(got[value.name])
    return {name: np.concatenate(values) for name, values in results.items()}
