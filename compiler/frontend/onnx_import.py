"""Quantized ONNX (QDQ or QOperator) to the integer IR.

The importer walks the ONNX nodes in their (topological) order and keeps, for every ONNX
value name, what that value is:

- `_Act`: a device tensor, possibly seen through host steps (a DequantizeLinear makes the
  float view `(Dequantize,)` of it; Softmax/ArgMax add further host steps);
- `_QConst`: a quantized constant (weights, int32 biases) with its scales and zero points;
- `np.ndarray`: a plain constant (shapes, Clip bounds, float biases);
- `_Pending`: the float result of a compute node in a QDQ graph, waiting for the
  QuantizeLinear that fixes its output type (a Relu/Clip in between narrows the clamp).

QOperator nodes (QLinearConv, QGemm, ...) carry their output quantization and become IR ops
at once. Before any of this, `check_supported` lists every node that cannot be imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verdigris.compiler import ir
from verdigris.compiler.frontend.errors import (
    ModelError,
    ModelFileError,
    Problem,
    UnsupportedModelError,
)
from verdigris.compiler.quantize import (
    QuantizationError,
    activation_clamp,
    add_multipliers,
    make_requant,
)

__all__ = ["check_supported", "import_model", "load_onnx"]

logger = logging.getLogger(__name__)

MS = "com.microsoft"
# Ops the frontend imports, by domain.
SUPPORTED_OPS = {
    "": {
        "QuantizeLinear",
        "DequantizeLinear",
        "Conv",
        "Gemm",
        "MatMul",
        "Relu",
        "Clip",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Add",
        "Concat",
        "Flatten",
        "Reshape",
        "Softmax",
        "ArgMax",
        "Identity",
        "Constant",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    },
    MS: {
        "QGemm",
        "QLinearSoftmax",
        "QLinearAdd",
        "QLinearGlobalAveragePool",
        "QLinearAveragePool",
        "QLinearConcat",
    },
}
_ACTIVATION_DTYPES = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}
_OP_ADVICE = {
    "DynamicQuantizeLinear": "dynamically quantized models are not supported; quantize "
    "statically instead (`verdigris run MODEL_fp32.onnx --calibrate data.npz`)",
    "BatchNormalization": "fold BatchNormalization into the preceding Conv before quantizing "
    "(`--calibrate` on the float model does this)",
}


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file, with an error that names the file and the problem."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory; give the .onnx file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"{path}: the file is empty")
    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # protobuf raises DecodeError and others
        raise ModelFileError(
            f"{path}: not a readable ONNX model (truncated or another format?): {error}"
        ) from None
    if not model.graph.node:
        raise ModelFileError(f"{path}: not an ONNX model, or one with an empty graph")
    _accept_ir3_initializers(model, path)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as error:  # ValueError: bad UTF-8
        first = str(error).strip().splitlines()[0]
        raise ModelFileError(
            f"{path}: the ONNX checker rejects the model (IR version {model.ir_version}, "
            f"opset {_opset(model)}): {first}"
        ) from None
    return model


def _tensor_array(tensor: onnx.TensorProto, label: str) -> np.ndarray:
    """The values of a stored tensor (an initializer or a Constant's value). The ONNX checker
    does not compare a tensor's data with its shape and type, so a damaged file fails here."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(
            f"{label}: tensor '{tensor.name}' has data that does not match its shape "
            f"{list(tensor.dims)} or type ({error}); the file is damaged"
        ) from None


def _opset(model: onnx.ModelProto) -> int | str:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")


def _accept_ir3_initializers(model: onnx.ModelProto, path: Path) -> None:
    """IR version 3 requires every initializer to be a graph input too; many exported files
    break that rule and onnxruntime runs them anyway. Such a model means the same as IR 4,
    which dropped the rule, so it is read as IR 4 (in memory; the file is not changed)."""
    if model.ir_version >= 4:
        return
    inputs = {value.name for value in model.graph.input}
    if any(init.name not in inputs for init in model.graph.initializer):
        logger.info(
            "%s: IR version %d with initializers that are not inputs: read as IR 4",
            path,
            model.ir_version,
        )
        model.ir_version = 4


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class _Act:
    tensor: str  # IR device tensor
    steps: tuple[ir.HostStep, ...] = ()

    @property
    def is_float_view(self) -> bool:
        return len(self.steps) == 1 and isinstance(self.steps[0], ir.Dequantize)


@dataclass(frozen=True)
class _FloatInput:
    """A float model input, possibly reshaped (Flatten/Reshape) before its QuantizeLinear."""

    input: str
    shape: tuple[int, ...]
    original_shape: tuple[int, ...]


@dataclass(frozen=True)
class _QConst:
    values: np.ndarray  # raw integers as stored in the model
    scale: np.ndarray  # float64, per channel along `axis` or one
    zero_point: np.ndarray  # int64, same shape as scale
    axis: int

    def centred(self) -> np.ndarray:
        """values - zero_point, as int64, zero points broadcast along `axis`."""
        return self.values.astype(np.int64) - _along(self.zero_point, self.axis, self.values.ndim)

    def real(self) -> np.ndarray:
        return self.centred() * _along(self.scale, self.axis, self.values.ndim)


@dataclass(frozen=True)
class _Pending:
    """A float compute result; `build(out, clamp)` emits the ops once its output type is
    known. `low`/`high` are fused activation bounds in real units."""

    node: onnx.NodeProto
    build: Callable[[ir.Tensor, tuple[int, int]], list[ir.Op]]
    shape: tuple[int, ...]
    low: float | None = None
    high: float | None = None


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    values = np.asarray(values)
    if values.size <= 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _bits_for(values: np.ndarray) -> int:
    """Signed bits needed for `values` (at least 8: the int8 weight path)."""
    low, high = int(values.min(initial=0)), int(values.max(initial=0))
    bits = 2
    while not (-(1 << (bits - 1)) <= low and high < (1 << (bits - 1))):
        bits += 1
    return max(bits, 8)


# --------------------------------------------------------------------------- checks


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"#{index} ({node.output[0] if node.output else '?'})"


# What a handler raises when a node's attributes or inputs contradict each other (a damaged
# file, or a hand-edited graph that the ONNX checker lets through): reported as a problem of
# that node, with the Python error, rather than as a crash.
_INCONSISTENT = (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError)


def _inconsistent(error: Exception) -> str:
    return (
        f"its attributes or inputs are inconsistent ({type(error).__name__}: {error}); "
        "the model may be damaged"
    )


def check_supported(model: onnx.ModelProto) -> list[Problem]:
    """Every node whose op type or attributes the frontend does not support."""
    problems = []
    for index, node in enumerate(model.graph.node):
        label = _node_label(node, index)
        try:
            problems += _node_problems(node, label)
        except _INCONSISTENT as error:
            problems.append(Problem(label, node.op_type, _inconsistent(error)))
    return problems


def _node_problems(node: onnx.NodeProto, label: str) -> list[Problem]:
    """What keeps `node` from being imported: its op type, or attributes not supported."""
    problems = []
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    if node.op_type not in SUPPORTED_OPS.get(domain, set()):
        where = f" in domain '{domain}'" if domain else ""
        reason = _OP_ADVICE.get(node.op_type, f"op {node.op_type}{where} is not supported")
        return [Problem(label, node.op_type, reason)]
    attrs = _attrs(node)
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        problems.append(
            Problem(label, node.op_type, f"auto_pad={attrs['auto_pad']!r}; use explicit pads")
        )
    if node.op_type in ("AveragePool", "QLinearAveragePool") and not attrs.get(
        "count_include_pad", 0
    ):
        pads = attrs.get("pads", [])
        if any(pads):
            problems.append(
                Problem(
                    label,
                    node.op_type,
                    "padding with count_include_pad=0 divides border windows by different "
                    "counts; use count_include_pad=1 or no padding",
                )
            )
    if node.op_type in ("AveragePool", "QLinearAveragePool") and attrs.get("ceil_mode", 0):
        problems.append(Problem(label, node.op_type, "ceil_mode=1 is not supported"))
    if node.op_type in ("QLinearGlobalAveragePool", "QLinearAveragePool") and attrs.get(
        "channels_last", 0
    ):
        problems.append(Problem(label, node.op_type, "channels_last=1 is not supported"))
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        problems.append(Problem(label, node.op_type, "the Indices output is not supported"))
    if node.op_type in ("Gemm", "QGemm") and attrs.get("transA", 0):
        problems.append(Problem(label, node.op_type, "transA=1 is not supported"))
    return problems


# --------------------------------------------------------------------------- importer


class _Importer:
    def __init__(self, model: onnx.ModelProto, label: str, constants: dict[str, np.ndarray]):
        self.model = model
        self.label = label
        self.values: dict[str, object] = {}
        self.tensors: dict[str, ir.Tensor] = {}
        self.model_dtype: dict[str, str] = {}  # device tensor -> the model's integer type
        self.nodes: list[ir.Op] = []
        self.inputs: list[ir.GraphInput] = []
        self.problems: list[Problem] = []
        self.dynamic_batch = False
        initializers = {init.name: _tensor_array(init, label) for init in model.graph.initializer}
        self.values.update(initializers)
        self.values.update({k: np.asarray(v) for k, v in constants.items()})
        for value in model.graph.input:
            if value.name in self.values:
                continue
            self._graph_input(value)

    # ---- helpers

    def _shape_of(self, value: onnx.ValueInfoProto) -> tuple[int, ...]:
        dims = []
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(dim.dim_value)
            elif index == 0:
                self.dynamic_batch = True
                dims.append(1)
            else:
                raise ModelError(
                    f"{self.label}: input '{value.name}' has a symbolic dimension {index} "
                    f"('{dim.dim_param}'); only the batch dimension may be symbolic"
                )
        return tuple(dims)

    def _graph_input(self, value: onnx.ValueInfoProto) -> None:
        elem = value.type.tensor_type.elem_type
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
        except KeyError:  # 0 (UNDEFINED) or a number ONNX does not define
            raise ModelError(
                f"{self.label}: input '{value.name}' has no tensor type (element type {elem})"
            ) from None
        shape = self._shape_of(value)
        if dtype in _ACTIVATION_DTYPES:
            # An integer model input goes to the device as is (uint8 shifted to int8).
            name = value.name
            model_dtype = _ACTIVATION_DTYPES[dtype]
            self._new_tensor(name, shape, model_dtype, None, 0)
            self.inputs.append(ir.GraphInput(name, self.tensors[name], model_dtype))
            self.values[name] = _Act(name)
        elif np.issubdtype(dtype, np.floating):
            # Becomes a device tensor at its QuantizeLinear; the host quantizes it.
            self.values[value.name] = _FloatInput(value.name, shape, shape)
        else:
            raise ModelError(f"{self.label}: input '{value.name}' has unsupported type {dtype}")

    def _new_tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        model_dtype: str,
        scale: float | None,
        zero_point: int,
    ) -> ir.Tensor:
        """Register a device tensor; uint8 quantization becomes int8 with zero point - 128."""
        if model_dtype == "int32":
            tensor = ir.Tensor(name, tuple(shape), ir.INT32, None, 0)
        else:
            shift = 128 if model_dtype == "uint8" else 0
            tensor = ir.Tensor(name, tuple(shape), ir.INT8, scale, int(zero_point) - shift)
        self.tensors[name] = tensor
        self.model_dtype[name] = model_dtype
        return tensor

    def _problem(self, node: onnx.NodeProto, reason: str) -> None:
        index = list(self.model.graph.node).index(node)
        self.problems.append(Problem(_node_label(node, index), node.op_type, reason))

    def _const(self, _node: onnx.NodeProto, name: str, what: str) -> np.ndarray:
        value = self.values.get(name)
        if not isinstance(value, np.ndarray):
            raise _Skip(f"{what} ('{name}') must be a constant")
        return value

    def _opt_const(self, node: onnx.NodeProto, position: int, what: str) -> np.ndarray | None:
        if len(node.input) <= position or not node.input[position]:
            return None
        return self._const(node, node.input[position], what)

    def _qparams(
        self, node: onnx.NodeProto, scale_pos: int, zp_pos: int | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(scale, zero point, model dtype) from a node's constant inputs."""
        scale = self._const(node, node.input[scale_pos], "the scale").astype(np.float64)
        zero = self._opt_const(node, zp_pos, "the zero point") if zp_pos is not None else None
        if zero is None:
            zero = np.zeros(scale.shape, np.uint8)  # ONNX's default zero point type
        return scale, zero.astype(np.int64), _dtype_name(zero.dtype)

    def _activation(self, _node: onnx.NodeProto, name: str, *, float_view: bool) -> ir.Tensor:
        """The device tensor behind input `name` (a float view of one in QDQ graphs)."""
        value = self.values.get(name)
        if isinstance(value, _Act) and float_view and value.is_float_view:
            # The float value is what this DequantizeLinear says: (q - z) * s.
            step = value.steps[0]
            tensor = self.tensors[value.tensor]
            return replace(tensor, scale=step.scale, zero_point=step.zero_point)
        if isinstance(value, _Act) and not float_view and not value.steps:
            return self.tensors[value.tensor]
        if isinstance(value, _Pending):
            raise _Skip(f"input '{name}' is a float result that is never quantized")
        if isinstance(value, _Act):
            raise _Skip(f"input '{name}' is computed on the host (after Softmax/ArgMax)")
        raise _Skip(f"input '{name}' is not a quantized activation")

    def _weight(self, _node: onnx.NodeProto, name: str) -> _QConst:
        value = self.values.get(name)
        if isinstance(value, _QConst):
            return value
        raise _Skip(f"weight '{name}' must be a quantized constant (int8/uint8 with a scale)")

    def _emit(self, op: ir.Op) -> None:
        self.nodes.append(op)

    # ---- output quantization of QDQ compute nodes

    def _finalize(self, pending: _Pending, out_name: str, scale, zero, model_dtype) -> None:
        if scale.size != 1:
            raise _Skip("per-channel activation quantization is not supported")
        if model_dtype not in ("int8", "uint8"):
            raise _Skip(f"activations of type {model_dtype} are not supported (int8/uint8)")
        out = self._new_tensor(
            out_name, pending.shape, model_dtype, float(scale.item()), int(zero.item())
        )
        clamp = activation_clamp(out.dtype, out.scale, out.zero_point, pending.low, pending.high)
        for op in pending.build(out, clamp):
            self._emit(op)
        self.values[out_name] = _Act(out_name)

    # ---- per op type

    def run(self) -> None:
        for node in self.model.graph.node:
            handler = getattr(self, f"_op_{node.op_type}", None)
            try:
                if handler is None:
                    raise _Skip(f"op {node.op_type} is not supported")
                handler(node)
            except _Skip as skip:
                self._problem(node, str(skip))
            except QuantizationError as error:
                self._problem(node, str(error))
            except _INCONSISTENT as error:
                self._problem(node, _inconsistent(error))

    def _op_Constant(self, node):
        attrs = _attrs(node)
        if "value" not in attrs:
            raise _Skip("only Constant nodes with a tensor 'value' are supported")
        self.values[node.output[0]] = _tensor_array(attrs["value"], self.label)

    def _op_Identity(self, node):
        self.values[node.output[0]] = self.values.get(node.input[0])

    def _op_QuantizeLinear(self, node):
        scale, zero, model_dtype = self._qparams(node, 1, 2)
        source = self.values.get(node.input[0])
        out = node.output[0]
        if isinstance(source, _FloatInput):
            self._quantize_input(node, source, out, scale, zero, model_dtype)
        elif isinstance(source, _Pending):
            self._finalize(source, out, scale, zero, model_dtype)
        elif isinstance(source, _Act) and source.is_float_view:
            self._requantize_view(node, self.tensors[source.tensor], out, scale, zero, model_dtype)
        elif isinstance(source, _Act):
            step = ir.Quantize(float(scale.item()), int(zero.item()), model_dtype)
            self.values[out] = _Act(source.tensor, (*source.steps, step))
        elif isinstance(source, np.ndarray):
            axis = _attrs(node).get("axis", 1)
            info = _dtype_info(model_dtype)
            real = source.astype(np.float32) / _along(scale, axis, source.ndim)
            q = np.clip(np.rint(real) + _along(zero, axis, source.ndim), info.min, info.max)
            self.values[out] = _QConst(q.astype(np.int64), scale, zero, axis)
        else:
            raise _Skip(f"input '{node.input[0]}' is not something that can be quantized")

    def _quantize_input(self, node, source: _FloatInput, out, scale, zero, model_dtype):
        if scale.size != 1:
            raise _Skip("a model input must be quantized per tensor")
        if any(i.name == source.input for i in self.inputs):
            raise _Skip(f"input '{source.input}' is quantized twice")
        reshaped = source.shape != source.original_shape
        name = f"{source.input}__quantized" if reshaped else out
        tensor = self._new_tensor(
            name, source.original_shape, model_dtype, float(scale.item()), int(zero.item())
        )
        self.inputs.append(ir.GraphInput(source.input, tensor, "float32"))
        if reshaped:  # quantizing is element-wise, so reshaping after it is the same
            self._new_tensor(out, source.shape, model_dtype, tensor.scale, int(zero.item()))
            self._emit(ir.Reshape(f"{node.name}__reshape", (name,), out, source.shape))
        self.values[out] = _Act(out)

    def _requantize_view(self, node, source: ir.Tensor, out, scale, zero, model_dtype) -> None:
        """DequantizeLinear followed by QuantizeLinear: a rescale, or nothing."""
        shift = 128 if model_dtype == "uint8" else 0
        if (float(scale.item()), int(zero.item()) - shift) == (source.scale, source.zero_point):
            self.values[out] = _Act(source.name)
            return
        self._new_tensor(out, source.shape, model_dtype, float(scale.item()), zero.item())
        target = self.tensors[out]
        requant = make_requant(
            source.scale / target.scale, target.zero_point, (target.dtype.qmin, target.dtype.qmax)
        )
        self._emit(ir.Requantize(node.name or out, (source.name,), out, source.zero_point, requant))
        self.values[out] = _Act(out)

    def _op_DequantizeLinear(self, node):
        scale, zero, model_dtype = self._qparams(node, 1, 2)
        source = self.values.get(node.input[0])
        out = node.output[0]
        if isinstance(source, np.ndarray):
            axis = _attrs(node).get("axis", 1)
            if source.ndim and axis < 0:
                axis += source.ndim
            self.values[out] = _QConst(source, scale, zero, axis)
        elif isinstance(source, _Act) and not source.steps:
            tensor = self.tensors[source.tensor]
            if scale.size != 1:
                raise _Skip("per-channel dequantization of an activation is not supported")
            shift = 128 if model_dtype == "uint8" else 0
            step = ir.Dequantize(float(scale.item()), int(zero.item()) - shift)
            if tensor.scale is not None and not np.isclose(step.scale, tensor.scale, rtol=1e-6):
                logger.debug("%s dequantizes %s with another scale", node.name, tensor.name)
            self.values[out] = _Act(source.tensor, (step,))
        elif isinstance(source, _Act):
            step = ir.Dequantize(float(scale.item()), int(zero.item()))
            self.values[out] = _Act(source.tensor, (*source.steps, step))
        else:
            raise _Skip(f"input '{node.input[0]}' is not a quantized value")

    # Compute ops (QDQ): float results that wait for their QuantizeLinear.

    def _op_Conv(self, node):
        x = self._activation(node, node.input[0], float_view=True)
        weight = self._weight(node, node.input[1])
        bias = self.values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        attrs = _attrs(node)

        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            return [self._conv(node, x, weight, bias, attrs, out, clamp)]

        shape = _conv_shape(x.shape, weight.values.shape, attrs)
        self.values[node.output[0]] = _Pending(node, build, shape)

    def _op_Gemm(self, node):
        attrs = _attrs(node)
        self._matmul_pending(
            node, transpose_b=bool(attrs.get("transB", 0)), alpha=attrs.get("alpha", 1.0)
        )

    def _op_MatMul(self, node):
        self._matmul_pending(node, transpose_b=False, alpha=1.0)

    def _matmul_pending(self, node, *, transpose_b: bool, alpha: float):
        x = self._activation(node, node.input[0], float_view=True)
        weight = self._weight(node, node.input[1])
        bias = self.values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        beta = _attrs(node).get("beta", 1.0)
        weight = _transposed(weight) if transpose_b else weight

        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            return [self._matmul(node, x, weight, bias, out, clamp, alpha=alpha, beta=beta)]

        shape = _matmul_shape(x.shape, weight.values.shape)
        self.values[node.output[0]] = _Pending(node, build, shape)

    def _op_Add(self, node):
        a = self._activation(node, node.input[0], float_view=True)
        b = self._activation(node, node.input[1], float_view=True)
        if a.shape != b.shape:
            raise _Skip(f"Add of shapes {list(a.shape)} and {list(b.shape)} (no broadcasting)")

        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            return [self._add(node, a, b, out, clamp)]

        self.values[node.output[0]] = _Pending(node, build, a.shape)

    def _op_MaxPool(self, node):
        attrs = _attrs(node)
        value = self.values.get(node.input[0])
        if isinstance(value, _Act) and not value.steps:  # QOperator: pools the integers
            x = self.tensors[value.tensor]
            out = self._new_tensor(
                node.output[0],
                _pool_shape(x.shape, attrs),
                self.model_dtype[x.name],
                x.scale,
                x.zero_point + (128 if self.model_dtype[x.name] == "uint8" else 0),
            )
            self._emit(self._maxpool(node, x, out.name, attrs))
            self.values[out.name] = _Act(out.name)
            return
        x = self._activation(node, node.input[0], float_view=True)

        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            same = (out.scale, out.zero_point) == (x.scale, x.zero_point)
            full = clamp == (out.dtype.qmin, out.dtype.qmax)
            if same and full:
                return [self._maxpool(node, x, out.name, attrs)]
            pooled = self._new_tensor(
                f"{out.name}__pooled", out.shape, "int8", x.scale, x.zero_point
            )
            requant = make_requant(x.scale / out.scale, out.zero_point, clamp)
            return [
                self._maxpool(node, x, pooled.name, attrs),
                ir.Requantize(
                    f"{node.name}__rescale", (pooled.name,), out.name, x.zero_point, requant
                ),
            ]

        self.values[node.output[0]] = _Pending(node, build, _pool_shape(x.shape, attrs))

    def _op_AveragePool(self, node):
        x = self._activation(node, node.input[0], float_view=True)
        attrs = _attrs(node)
        self._avgpool_pending(node, x, attrs)

    def _op_GlobalAveragePool(self, node):
        x = self._activation(node, node.input[0], float_view=True)
        self._avgpool_pending(node, x, {"kernel_shape": list(x.shape[2:])})

    def _avgpool_pending(self, node, x: ir.Tensor, attrs: dict):
        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            return [self._avgpool(node, x, out, attrs, clamp, x.scale)]

        self.values[node.output[0]] = _Pending(node, build, _pool_shape(x.shape, attrs))

    def _op_Concat(self, node):
        axis = _attrs(node)["axis"]
        parts = [self._activation(node, name, float_view=True) for name in node.input]
        axis = axis + len(parts[0].shape) if axis < 0 else axis

        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            return self._concat(node, parts, out, clamp, axis)

        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        self.values[node.output[0]] = _Pending(node, build, tuple(shape))

    def _op_Relu(self, node):
        self._activation_fn(node, 0.0, None)

    def _op_Clip(self, node):
        attrs = _attrs(node)
        low = self._opt_const(node, 1, "the Clip minimum")
        high = self._opt_const(node, 2, "the Clip maximum")
        low = float(low) if low is not None else attrs.get("min")
        high = float(high) if high is not None else attrs.get("max")
        self._activation_fn(node, low, high)

    def _activation_fn(self, node, low: float | None, high: float | None):
        source = self.values.get(node.input[0])
        if isinstance(source, _Pending):
            new_low = low if source.low is None or low is None else max(low, source.low)
            new_high = high if source.high is None or high is None else min(high, source.high)
            if source.low is not None and low is None:
                new_low = source.low
            if source.high is not None and high is None:
                new_high = source.high
            self.values[node.output[0]] = replace(source, low=new_low, high=new_high)
            return
        x = self._activation(node, node.input[0], float_view=True)

        def build(out: ir.Tensor, clamp: tuple[int, int]) -> list[ir.Op]:
            requant = make_requant(x.scale / out.scale, out.zero_point, clamp)
            return [ir.Requantize(node.name, (x.name,), out.name, x.zero_point, requant)]

        self.values[node.output[0]] = _Pending(node, build, x.shape, low, high)

    def _op_Flatten(self, node):
        axis = _attrs(node).get("axis", 1)
        self._reshape(node, lambda shape: _flatten_shape(shape, axis), host=ir.Flatten(axis))

    def _op_Reshape(self, node):
        target = self._const(node, node.input[1], "the shape").astype(np.int64)
        self._reshape(node, lambda shape: _reshape_shape(shape, target), host=None)

    def _reshape(self, node, new_shape, host: ir.HostStep | None):
        value = self.values.get(node.input[0])
        out = node.output[0]
        if isinstance(value, _FloatInput):
            shape = new_shape(value.shape)
            if shape[0] != value.shape[0]:
                raise _Skip(f"reshape {list(value.shape)} -> {list(shape)} changes the batch")
            self.values[out] = replace(value, shape=shape)
        elif isinstance(value, _Act) and (not value.steps or value.is_float_view):
            x = self.tensors[value.tensor]
            shape = new_shape(x.shape)
            if shape[0] != x.shape[0]:
                raise _Skip(f"reshape {list(x.shape)} -> {list(shape)} changes the batch size")
            name = out if not value.steps else f"{out}__int"
            tensor = self._new_tensor(
                name,
                shape,
                self.model_dtype[x.name],
                x.scale,
                x.zero_point + (128 if self.model_dtype[x.name] == "uint8" else 0),
            )
            self._emit(ir.Reshape(node.name or out, (x.name,), tensor.name, shape))
            self.values[out] = _Act(tensor.name, value.steps)
        elif isinstance(value, _Act) and host is not None:
            self.values[out] = _Act(value.tensor, (*value.steps, host))
        else:
            raise _Skip(f"input '{node.input[0]}' cannot be reshaped here")

    def _op_Softmax(self, node):
        self._host_step(node, ir.Softmax(_attrs(node).get("axis", -1)))

    def _op_ArgMax(self, node):
        attrs = _attrs(node)
        self._host_step(node, ir.ArgMax(attrs.get("axis", 0), bool(attrs.get("keepdims", 1))))

    def _host_step(self, node, step: ir.HostStep):
        value = self.values.get(node.input[0])
        if not (isinstance(value, _Act) and value.steps):
            raise _Skip(
                f"{node.op_type} runs on the host and needs a dequantized input "
                f"('{node.input[0]}' is not one)"
            )
        self.values[node.output[0]] = _Act(value.tensor, (*value.steps, step))

    # QOperator ops: output quantization is known at once.

    def _op_QLinearConv(self, node):
        x = self._quantized_input(node, 0, 1, 2)
        weight = self._qconst_from(node, 3, 4, 5, axis=0)
        y_scale, y_zero, y_dtype = self._qparams(node, 6, 7)
        bias = self._opt_const(node, 8, "the bias")
        out = self._new_tensor(
            node.output[0],
            _conv_shape(x.shape, weight.values.shape, _attrs(node)),
            y_dtype,
            float(y_scale.item()),
            int(y_zero.item()),
        )
        bias_q = None if bias is None else _QConst(bias, np.array([np.nan]), np.zeros(1), 0)
        self._emit(self._conv(node, x, weight, bias_q, _attrs(node), out, _full(out)))
        self.values[out.name] = _Act(out.name)

    def _op_ConvInteger(self, node):
        x = self._activation(node, node.input[0], float_view=False)
        x_zero = self._opt_const(node, 2, "the input zero point")
        weight = self._qconst_from(node, 1, None, 3, axis=0)
        attrs = _attrs(node)
        out = self._new_tensor(
            node.output[0], _conv_shape(x.shape, weight.values.shape, attrs), "int32", None, 0
        )
        x = self._with_zero_point(x, x_zero)
        self._emit(self._conv(node, x, weight, None, attrs, out, None))
        self.values[out.name] = _Act(out.name)

    def _op_QLinearMatMul(self, node):
        x = self._quantized_input(node, 0, 1, 2)
        weight = self._qconst_from(node, 3, 4, 5, axis=-1)
        y_scale, y_zero, y_dtype = self._qparams(node, 6, 7)
        out = self._new_tensor(
            node.output[0],
            _matmul_shape(x.shape, weight.values.shape),
            y_dtype,
            float(y_scale.item()),
            int(y_zero.item()),
        )
        self._emit(self._matmul(node, x, weight, None, out, _full(out)))
        self.values[out.name] = _Act(out.name)

    def _op_MatMulInteger(self, node):
        x = self._activation(node, node.input[0], float_view=False)
        x_zero = self._opt_const(node, 2, "the input zero point")
        weight = self._qconst_from(node, 1, None, 3, axis=-1)
        out = self._new_tensor(
            node.output[0], _matmul_shape(x.shape, weight.values.shape), "int32", None, 0
        )
        x = self._with_zero_point(x, x_zero)
        self._emit(self._matmul(node, x, weight, None, out, None))
        self.values[out.name] = _Act(out.name)

    def _op_QGemm(self, node):
        attrs = _attrs(node)
        x = self._quantized_input(node, 0, 1, 2)
        weight = self._qconst_from(node, 3, 4, 5, axis=0 if attrs.get("transB", 0) else -1)
        weight = _transposed(weight) if attrs.get("transB", 0) else weight
        bias = self._opt_const(node, 6, "the bias")
        if len(node.input) <= 7 or not node.input[7]:
            raise _Skip("QGemm without y_scale (float output) is not supported")
        y_scale, y_zero, y_dtype = self._qparams(node, 7, 8)
        out = self._new_tensor(
            node.output[0],
            _matmul_shape(x.shape, weight.values.shape),
            y_dtype,
            float(y_scale.item()),
            int(y_zero.item()),
        )
        bias_q = None if bias is None else _QConst(bias, np.array([np.nan]), np.zeros(1), 0)
        alpha = attrs.get("alpha", 1.0)
        self._emit(self._matmul(node, x, weight, bias_q, out, _full(out), alpha=alpha))
        self.values[out.name] = _Act(out.name)

    def _op_QLinearSoftmax(self, node):
        value = self.values.get(node.input[0])
        if not isinstance(value, _Act):
            raise _Skip(f"input '{node.input[0]}' is not a quantized value")
        x_scale, x_zero, x_dtype = self._qparams(node, 1, 2)
        y_scale, y_zero, y_dtype = self._qparams(node, 3, 4)
        attrs = _attrs(node)
        axis = attrs.get("axis", -1 if attrs.get("opset", 13) >= 13 else 1)
        # A device tensor holds uint8 shifted to int8; a host Quantize result does not.
        shift = 128 if x_dtype == "uint8" and not value.steps else 0
        steps = (
            ir.Dequantize(float(x_scale.item()), int(x_zero.item()) - shift),
            ir.Softmax(axis),
            ir.Quantize(float(y_scale.item()), int(y_zero.item()), y_dtype),
        )
        self.values[node.output[0]] = _Act(value.tensor, (*value.steps, *steps))

    def _op_QLinearAdd(self, node):
        a = self._quantized_input(node, 0, 1, 2)
        b = self._quantized_input(node, 3, 4, 5)
        c_scale, c_zero, c_dtype = self._qparams(node, 6, 7)
        if a.shape != b.shape:
            raise _Skip(f"Add of shapes {list(a.shape)} and {list(b.shape)} (no broadcasting)")
        out = self._new_tensor(node.output[0], a.shape, c_dtype, c_scale.item(), c_zero.item())
        self._emit(self._add(node, a, b, out, _full(out)))
        self.values[out.name] = _Act(out.name)

    def _op_QLinearGlobalAveragePool(self, node):
        x = self._quantized_input(node, 0, 1, 2)
        self._qlinear_pool(node, x, {"kernel_shape": list(x.shape[2:])})

    def _op_QLinearAveragePool(self, node):
        x = self._quantized_input(node, 0, 1, 2)
        self._qlinear_pool(node, x, _attrs(node))

    def _qlinear_pool(self, node, x: ir.Tensor, attrs: dict):
        y_scale, y_zero, y_dtype = self._qparams(node, 3, 4)
        out = self._new_tensor(
            node.output[0], _pool_shape(x.shape, attrs), y_dtype, y_scale.item(), y_zero.item()
        )
        self._emit(self._avgpool(node, x, out, attrs, _full(out), x.scale))
        self.values[out.name] = _Act(out.name)

    def _op_QLinearConcat(self, node):
        y_scale, y_zero, y_dtype = self._qparams(node, 0, 1)
        parts = []
        for position in range(2, len(node.input), 3):
            parts.append(self._quantized_input(node, position, position + 1, position + 2))
        axis = _attrs(node)["axis"]
        axis = axis + len(parts[0].shape) if axis < 0 else axis
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        out = self._new_tensor(node.output[0], tuple(shape), y_dtype, y_scale.item(), y_zero.item())
        for op in self._concat(node, parts, out, _full(out), axis):
            self._emit(op)
        self.values[out.name] = _Act(out.name)

    def _quantized_input(self, node, value_pos: int, scale_pos: int, zp_pos: int) -> ir.Tensor:
        """A QOperator input: the device tensor with the quantization this node states."""
        x = self._activation(node, node.input[value_pos], float_view=False)
        scale, zero, model_dtype = self._qparams(node, scale_pos, zp_pos)
        shift = 128 if model_dtype == "uint8" else 0
        return replace(x, scale=float(scale.item()), zero_point=int(zero.item()) - shift)

    def _qconst_from(self, node, value_pos, scale_pos, zp_pos, axis: int) -> _QConst:
        values = self._const(node, node.input[value_pos], "the weight")
        if scale_pos is None:
            scale = np.array([np.nan])  # integer-only op: no scale
        else:
            scale = self._const(node, node.input[scale_pos], "the weight scale").astype(np.float64)
        zero = self._opt_const(node, zp_pos, "the weight zero point")
        zero = np.zeros(1, np.int64) if zero is None else zero.astype(np.int64)
        axis = axis + values.ndim if axis < 0 else axis
        return _QConst(values, scale.reshape(-1), zero.reshape(-1), axis)

    def _with_zero_point(self, x: ir.Tensor, zero: np.ndarray | None) -> ir.Tensor:
        if zero is None:
            return replace(x, zero_point=0 - (128 if self.model_dtype[x.name] == "uint8" else 0))
        if zero.size != 1:
            raise _Skip("a per-row input zero point is not supported")
        shift = 128 if self.model_dtype[x.name] == "uint8" else 0
        return replace(x, zero_point=int(zero.item()) - shift)

    # ---- IR op builders shared by QDQ and QOperator

    def _conv(self, node, x, weight: _QConst, bias, attrs, out, clamp) -> ir.Conv:
        group = attrs.get("group", 1)
        w = weight.centred()
        if weight.values.ndim != 4 or len(x.shape) != 4:
            raise _Skip(f"only 2-D convolutions are supported (weight {list(w.shape)})")
        if x.shape[1] != w.shape[1] * group:
            raise _Skip(f"input has {x.shape[1]} channels; weight expects {w.shape[1] * group}")
        w_scale = _per_channel(weight.scale, w.shape[0])
        bias_int = self._bias(node, bias, x, w_scale, w.shape[0])
        folded = bias_int - x.zero_point * w.reshape(w.shape[0], -1).sum(axis=1)
        requant = None
        if out.scale is not None:
            requant = make_requant(x.scale * w_scale / out.scale, out.zero_point, clamp)
        strides = tuple(attrs.get("strides", [1, 1]))
        dilations = tuple(attrs.get("dilations", [1, 1]))
        pads = attrs.get("pads", [0, 0, 0, 0])
        return ir.Conv(
            node.name or out.name,
            (x.name,),
            out.name,
            weight=w,
            weight_bits=_bits_for(w),
            bias=folded.astype(np.int64),
            input_zero_point=x.zero_point,
            strides=strides,
            pads=(pads[0], pads[1], pads[2], pads[3]),
            dilations=dilations,
            groups=group,
            requant=requant,
            weight_scale=None if np.isnan(w_scale).any() else w_scale,
        )

    def _matmul(self, node, x, weight: _QConst, bias, out, clamp, alpha=1.0, beta=1.0):
        w = weight.centred()
        if w.ndim < 2 or x.shape[-1] != w.shape[-2]:
            raise _Skip(f"cannot multiply {list(x.shape)} by weight {list(w.shape)}")
        columns = w.shape[-1]
        w_scale = _per_channel(weight.scale, columns) * alpha
        bias_int = self._bias(node, bias, x, w_scale, columns, beta=beta)
        folded = bias_int - x.zero_point * w.sum(axis=-2, keepdims=True)
        if w.ndim == 2:
            folded = folded.reshape(columns)
        requant = None
        if out.scale is not None:
            requant = make_requant(x.scale * w_scale / out.scale, out.zero_point, clamp)
        return ir.MatMul(
            node.name or out.name,
            (x.name,),
            out.name,
            weight=w,
            weight_bits=_bits_for(w),
            bias=folded.astype(np.int64),
            input_zero_point=x.zero_point,
            requant=requant,
            weight_scale=None if np.isnan(w_scale).any() else w_scale,
        )

    def _bias(self, _node, bias, x: ir.Tensor, w_scale, channels: int, beta=1.0) -> np.ndarray:
        """The bias in accumulator units (scale x_scale * w_scale), as int64 (channels,)."""
        if bias is None:
            return np.zeros(channels, np.int64)
        acc_scale = x.scale * w_scale
        if isinstance(bias, _QConst):
            if np.isnan(bias.scale).all():  # QOperator int32 bias: accumulator units
                if beta != 1.0:
                    raise _Skip("beta != 1 with an int32 bias is not supported")
                return np.broadcast_to(bias.values.astype(np.int64).reshape(-1), (channels,))
            bias_scale = np.broadcast_to(bias.scale.reshape(-1), (channels,))
            if beta == 1.0 and np.allclose(bias_scale, acc_scale, rtol=1e-6):
                # The quantizer's int32 bias is already in accumulator units: use it unrounded.
                return np.broadcast_to(bias.centred().reshape(-1), (channels,)).astype(np.int64)
            real = bias.real()
        else:
            real = np.asarray(bias, np.float64)
        real = np.broadcast_to(real.reshape(-1) * beta, (channels,))
        return np.rint(real / acc_scale).astype(np.int64)

    def _add(self, node, a: ir.Tensor, b: ir.Tensor, out: ir.Tensor, clamp) -> ir.Add:
        ma, mb, shift = add_multipliers(a.scale / out.scale, b.scale / out.scale)
        requant = ir.Requant(
            np.array([1], np.int64), np.array([shift], np.int64), out.zero_point, *clamp
        )
        return ir.Add(
            node.name or out.name,
            (a.name, b.name),
            out.name,
            a_zero_point=a.zero_point,
            b_zero_point=b.zero_point,
            a_multiplier=ma,
            b_multiplier=mb,
            requant=requant,
        )

    def _maxpool(self, node, x: ir.Tensor, out_name: str, attrs) -> ir.MaxPool:
        kernel = tuple(attrs["kernel_shape"])
        return ir.MaxPool(
            node.name or out_name,
            (x.name,),
            out_name,
            kernel=kernel,
            strides=tuple(attrs.get("strides", [1, 1])),
            pads=tuple(attrs.get("pads", [0, 0, 0, 0])),
            dilations=tuple(attrs.get("dilations", [1, 1])),
            ceil_mode=bool(attrs.get("ceil_mode", 0)),
        )

    def _avgpool(self, node, x, out, attrs, clamp, x_scale) -> ir.AvgPool:
        kernel = tuple(attrs["kernel_shape"])
        count = kernel[0] * kernel[1]
        return ir.AvgPool(
            node.name or out.name,
            (x.name,),
            out.name,
            kernel=kernel,
            strides=tuple(attrs.get("strides", [1, 1])),
            pads=tuple(attrs.get("pads", [0, 0, 0, 0])),
            input_zero_point=x.zero_point,
            requant=make_requant(x_scale / (out.scale * count), out.zero_point, clamp),
        )

    def _concat(self, node, parts: list[ir.Tensor], out: ir.Tensor, clamp, axis) -> list[ir.Op]:
        ops: list[ir.Op] = []
        names = []
        for index, part in enumerate(parts):
            same = (part.scale, part.zero_point) == (out.scale, out.zero_point)
            if same and clamp == (out.dtype.qmin, out.dtype.qmax):
                names.append(part.name)
                continue
            name = f"{out.name}__part{index}"
            self.tensors[name] = replace(out, name=name, shape=part.shape)
            self.model_dtype[name] = "int8"
            requant = make_requant(part.scale / out.scale, out.zero_point, clamp)
            ops.append(
                ir.Requantize(
                    f"{node.name}__rescale{index}", (part.name,), name, part.zero_point, requant
                )
            )
            names.append(name)
        ops.append(ir.Concat(node.name or out.name, tuple(names), out.name, axis))
        return ops

    # ---- the graph

    def outputs(self) -> list[ir.GraphOutput]:
        result = []
        for value in self.model.graph.output:
            ref = self.values.get(value.name)
            if isinstance(ref, _Act):
                dtype = self.model_dtype[ref.tensor]
                result.append(
                    ir.GraphOutput(value.name, self.tensors[ref.tensor], dtype, ref.steps)
                )
            elif isinstance(ref, _Pending):
                self.problems.append(
                    Problem(
                        ref.node.name or value.name,
                        ref.node.op_type,
                        f"its output '{value.name}' is a float result that is never quantized",
                    )
                )
            else:
                self.problems.append(
                    Problem(value.name, "output", "the output does not come from the model's ops")
                )
        return result


class _Skip(Exception):
    """Abandons one node with a reason; the importer collects them all."""


def _full(tensor: ir.Tensor) -> tuple[int, int]:
    return tensor.dtype.qmin, tensor.dtype.qmax


def _per_channel(scale: np.ndarray, channels: int) -> np.ndarray:
    scale = np.asarray(scale, np.float64).reshape(-1)
    if scale.size not in (1, channels):
        raise _Skip(f"{scale.size} weight scales for {channels} output channels")
    return np.broadcast_to(scale, (channels,)).copy()


def _transposed(weight: _QConst) -> _QConst:
    axis = weight.values.ndim - 1 - weight.axis if weight.values.ndim == 2 else weight.axis
    return _QConst(weight.values.T, weight.scale, weight.zero_point, axis)


def _dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).name


def _dtype_info(name: str) -> np.iinfo:
    return np.iinfo(np.dtype(name))


def _conv_shape(x_shape, w_shape, attrs) -> tuple[int, ...]:
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    spatial = []
    for i in range(2):
        span = dilations[i] * (w_shape[2 + i] - 1) + 1
        spatial.append((x_shape[2 + i] + pads[i] + pads[i + 2] - span) // strides[i] + 1)
    return (x_shape[0], w_shape[0], *spatial)


def _pool_shape(x_shape, attrs) -> tuple[int, ...]:
    kernel = attrs["kernel_shape"]
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    ceil = attrs.get("ceil_mode", 0)
    spatial = []
    for i in range(2):
        span = dilations[i] * (kernel[i] - 1) + 1
        room = x_shape[2 + i] + pads[i] + pads[i + 2] - span
        size = (-(-room // strides[i]) if ceil else room // strides[i]) + 1
        if ceil and (size - 1) * strides[i] >= x_shape[2 + i] + pads[i]:
            size -= 1
        spatial.append(size)
    return (x_shape[0], x_shape[1], *spatial)


def _matmul_shape(x_shape, w_shape) -> tuple[int, ...]:
    if len(w_shape) == 2:
        return (*x_shape[:-1], w_shape[-1])
    batch = np.broadcast_shapes(tuple(x_shape[:-2]), tuple(w_shape[:-2]))
    return (*batch, x_shape[-2], w_shape[-1])


def _flatten_shape(shape, axis) -> tuple[int, ...]:
    axis = axis + len(shape) if axis < 0 else axis
    return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))


def _reshape_shape(shape, target: np.ndarray) -> tuple[int, ...]:
    dims = [shape[i] if d == 0 else int(d) for i, d in enumerate(target)]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(shape)) // known
    if int(np.prod(dims)) != int(np.prod(shape)):
        raise _Skip(f"cannot reshape {list(shape)} to {target.tolist()}")
    return tuple(dims)


def import_model(
    model: onnx.ModelProto | str | Path,
    *,
    constants: dict[str, np.ndarray] | None = None,
    name: str | None = None,
) -> ir.Graph:
    """Import a quantized ONNX model into the IR.

    `constants` binds graph inputs to fixed values (for models whose weights are inputs,
    such as the ONNX backend node tests). Raises `ModelFileError` for unreadable files and
    `UnsupportedModelError` listing every node that cannot be imported.
    """
    label = str(model) if isinstance(model, str | Path) else (name or model.graph.name or "model")
    if isinstance(model, str | Path):
        model = load_onnx(model)
    problems = check_supported(model)
    if problems:
        raise UnsupportedModelError(label, problems, _advice(model, problems))
    if not _is_quantized(model):
        raise ModelError(
            f"{label}: this is a float model (no QuantizeLinear or QLinear* ops). Quantize it "
            "with calibration data: `verdigris run MODEL --calibrate data.npz` (see "
            "docs/frontend.md)"
        )
    importer = _Importer(model, label, constants or {})
    importer.run()
    outputs = importer.outputs()
    if importer.problems:
        raise UnsupportedModelError(label, importer.problems, "")
    graph_name = name or model.graph.name or Path(label).stem
    return ir.Graph(
        graph_name,
        tuple(importer.inputs),
        tuple(importer.nodes),
        tuple(outputs),
        dict(importer.tensors),
        importer.dynamic_batch,
    )


def _is_quantized(model: onnx.ModelProto) -> bool:
    quantized = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
    if any(node.op_type in quantized or node.domain == MS for node in model.graph.node):
        return True
    int_inputs = (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)
    return any(v.type.tensor_type.elem_type in int_inputs for v in model.graph.input)


def _advice(_model: onnx.ModelProto, problems: list[Problem]) -> str:
    if any(p.op_type == "DynamicQuantizeLinear" for p in problems):
        return (
            "This model is dynamically quantized. Verdigris runs statically quantized models: "
            "quantize the float model with calibration data instead (--calibrate)."
        )
    return ""
