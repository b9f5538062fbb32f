"""The importer's state and the helpers every op handler uses.

`Importer` walks the ONNX nodes in their (topological) order, keeping for every ONNX value
name what it is (`values.py`), the device tensors made so far and the ops emitted. Each node
goes to the handler its op registers (`registry.py`); a handler that cannot import its node
raises `Skip` with the reason, and the importer collects every such problem.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import onnx
from onnx import helper

from verdigris.compiler import ir
from verdigris.compiler.frontend import registry
from verdigris.compiler.frontend.errors import ModelError, Problem
from verdigris.compiler.frontend.host_compute import host_node
from verdigris.compiler.frontend.onnx_file import describe_dims, node_label, tensor_array
from verdigris.compiler.frontend.values import (
    ACTIVATION_DTYPES,
    INCONSISTENT,
    Act,
    FloatInput,
    HostValue,
    Pending,
    QConst,
    Skip,
    check_qparams,
    device_type,
    dtype_name,
    inconsistent,
    uint8_shift,
)
from verdigris.compiler.quantize import QuantizationError, activation_clamp

__all__ = ["Importer"]

logger = logging.getLogger(__name__)

# The value of every output of a node that could not be imported.
BLOCKED = object()


class Importer:
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
        self._current = 0  # the index of the node being imported
        # The registered op whose node is being imported: what `emit` may be given.
        self._producer: registry.OnnxOp | None = None
        initializers = {init.name: tensor_array(init, label) for init in model.graph.initializer}
        self.values.update(initializers)
        self.values.update({k: np.asarray(v) for k, v in constants.items()})
        for value in model.graph.input:
            if value.name in self.values:
                continue
            self._graph_input(value)

    # ---- the walk

    def run(self, blocked: frozenset[str] = frozenset()) -> None:
        """Import every node: on the device where it can run there, else on the host
        (`host_compute.py`). Nodes named in `blocked` (by `node_label`: problems found
        already) are not imported; neither is a node that reads what a failed node makes,
        so each problem is reported once, at its source, and every other one is found."""
        for index, node in enumerate(self.model.graph.node):
            if node_label(node, index) in blocked or any(
                self.values.get(name) is BLOCKED for name in node.input if name
            ):
                self._block(node)
                continue
            self._current = index
            try:
                reason = self._on_device(node)
                if reason is not None:
                    self._producer = None
                    host_node(self, node, reason)
            except Skip as skip:
                self.problem(node, str(skip))
                self._block(node)
            except QuantizationError as error:
                self.problem(node, str(error))
                self._block(node)
            except INCONSISTENT as error:
                self.problem(node, inconsistent(error))
                self._block(node)
        self._producer = None

    def _on_device(self, node: onnx.NodeProto) -> str | None:
        """Import `node` with its registered handler; None if that worked, else why the
        device cannot run it (the handler refused it before emitting anything)."""
        self._producer = registry.lookup(node)
        if self._producer is None:
            return f"op {node.op_type} is not supported on the device"
        refused = registry.attribute_problems(self._producer, node)
        if refused:
            return refused[0]
        emitted = len(self.nodes)
        try:
            self._producer.handler(self, node)
        except Skip as skip:
            if len(self.nodes) != emitted:
                raise
            return str(skip)
        return None

    def label_of(self, node: onnx.NodeProto) -> str:
        """How errors and reports name `node`, the node being imported (its name, or its
        position and output)."""
        return node_label(node, self._current)

    def _block(self, node: onnx.NodeProto) -> None:
        for name in node.output:
            if name:
                self.values[name] = BLOCKED

    def graph(self, name: str, outputs: list[ir.GraphOutput]) -> ir.Graph:
        """The graph imported (after `run`), with the `outputs` found."""
        return ir.Graph(
            name=name,
            inputs=tuple(self.inputs),
            nodes=tuple(self.nodes),
            outputs=tuple(outputs),
            tensors=dict(self.tensors),
            dynamic_batch=self.dynamic_batch,
        )

    def outputs(self) -> list[ir.GraphOutput]:
        result = []
        for value in self.model.graph.output:
            ref = self.values.get(value.name)
            if isinstance(ref, Act):
                dtype = self.model_dtype[ref.tensor]
                result.append(
                    ir.GraphOutput(
                        name=value.name,
                        tensor=self.tensors[ref.tensor],
                        onnx_int_dtype=dtype,
                        steps=ref.steps,
                    )
                )
            elif ref is BLOCKED:
                continue  # its source's problem is reported already
            elif isinstance(ref, HostValue) and len(ref.inputs) == 1:
                # Host nodes after the device: steps of the output they read.
                [view] = ref.inputs
                steps = (
                    ir.Dequantize(scale=view.scale, zero_point=view.zero_point),
                    ir.Compute(
                        nodes=ref.nodes, input=view.name, result=ref.name, constants=ref.constants
                    ),
                )
                result.append(
                    ir.GraphOutput(
                        name=value.name,
                        tensor=self.tensors[view.name],
                        onnx_int_dtype=self.model_dtype[view.name],
                        steps=steps,
                    )
                )
            elif isinstance(ref, HostValue):
                self.problems.append(
                    Problem(
                        ref.node,
                        "output",
                        f"its output '{value.name}' is a float result of host ops that reads "
                        f"{len(ref.inputs)} device tensors; a float output may read one (not "
                        "supported yet: quantize it)",
                    )
                )
            elif isinstance(ref, Pending):
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

    # ---- graph inputs

    def _shape_of(self, value: onnx.ValueInfoProto) -> tuple[int, ...]:
        if not value.type.tensor_type.HasField("shape"):
            raise ModelError(
                f"{self.label}: input '{value.name}' has no shape; give it one with "
                f"--input-shape {value.name}=1,3,224,224 (its real dimensions)"
            )
        dims = []
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(dim.dim_value)
            elif index == 0:
                self.dynamic_batch = True
                dims.append(1)
            else:
                what = f"symbolic ('{dim.dim_param}')" if dim.dim_param else "unknown"
                raise ModelError(
                    f"{self.label}: input '{value.name}' has dimension {index} {what}; only "
                    f"the batch dimension may be: fix it with --input-shape "
                    f"{value.name}={describe_dims(value)} (each name or ? a number)"
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
        if dtype in ACTIVATION_DTYPES:
            # An integer model input goes to the device as is (uint8 shifted to int8).
            name = value.name
            model_dtype = ACTIVATION_DTYPES[dtype]
            self.new_tensor(name, shape, model_dtype, None, 0)
            self.inputs.append(
                ir.GraphInput(name=name, tensor=self.tensors[name], onnx_dtype=model_dtype)
            )
            self.values[name] = Act(name)
        elif np.issubdtype(dtype, np.floating):
            # Becomes a device tensor at its QuantizeLinear; the host quantizes it.
            self.values[value.name] = FloatInput(value.name, shape, shape)
        else:
            raise ModelError(f"{self.label}: input '{value.name}' has unsupported type {dtype}")

    # ---- tensors, ops and problems

    def new_tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        model_dtype: str,
        scale: float | None,
        zero_point: int,
    ) -> ir.Tensor:
        """Register a device tensor; uint8 quantization becomes int8 with zero point - 128,
        a type of fewer bits stays itself (`device_type`)."""
        if model_dtype == "int32":
            tensor = ir.Tensor(
                name=name, shape=tuple(shape), dtype=ir.INT32, scale=None, zero_point=0
            )
        else:
            shift = uint8_shift(model_dtype)
            tensor = ir.Tensor(
                name=name,
                shape=tuple(shape),
                dtype=device_type(model_dtype),
                scale=scale,
                zero_point=int(zero_point) - shift,
            )
        self.add_tensor(tensor, model_dtype)
        return tensor

    def add_tensor(self, tensor: ir.Tensor, model_dtype: str) -> None:
        """Register a device tensor made elsewhere, and the model's integer type for it."""
        self.tensors[tensor.name] = tensor
        self.model_dtype[tensor.name] = model_dtype

    def model_zero_point(self, tensor: ir.Tensor) -> int:
        """`tensor`'s zero point in the model's own integer type (uint8 unshifted)."""
        return tensor.zero_point + uint8_shift(self.model_dtype[tensor.name])

    def emit(self, op: ir.Op) -> None:
        producer = self._producer
        if producer is not None and not isinstance(op, producer.produces):
            raise AssertionError(
                f"{producer.op_type} emitted {op.kind}; its registry entry declares "
                f"{[kind.__name__ for kind in producer.produces]}"
            )
        self.nodes.append(op)

    def problem(self, node: onnx.NodeProto, reason: str) -> None:
        self.problems.append(Problem(self.label_of(node), node.op_type, reason))

    # ---- inputs of a node

    def const(self, name: str, what: str) -> np.ndarray:
        value = self.values.get(name)
        if not isinstance(value, np.ndarray):
            raise Skip(f"{what} ('{name}') must be a constant")
        return value

    def opt_const(self, node: onnx.NodeProto, position: int | None, what: str) -> np.ndarray | None:
        if position is None or len(node.input) <= position or not node.input[position]:
            return None
        return self.const(node.input[position], what)

    def qparams(
        self, node: onnx.NodeProto, scale_pos: int, zp_pos: int | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(scale, zero point, model dtype) from a node's constant inputs."""
        scale = self.const(node.input[scale_pos], "the scale")
        zero = self.opt_const(node, zp_pos, "the zero point")
        check_qparams(scale, zero)
        scale = scale.astype(np.float64)
        if zero is None:
            zero = np.zeros(scale.shape, np.uint8)  # ONNX's default zero point type
        return scale, zero.astype(np.int64), dtype_name(zero.dtype)

    def activation(self, name: str, *, float_view: bool) -> ir.Tensor:
        """The device tensor behind input `name` (a float view of one in QDQ graphs)."""
        value = self.values.get(name)
        if isinstance(value, Act) and float_view and value.is_float_view:
            # The float value is what this DequantizeLinear says: (q - z) * s.
            step = value.steps[0]
            tensor = self.tensors[value.tensor]
            return replace(tensor, scale=step.scale, zero_point=step.zero_point)
        if isinstance(value, Act) and not float_view and not value.steps:
            return self.tensors[value.tensor]
        if isinstance(value, Pending):
            raise Skip(f"input '{name}' is a float result that is never quantized")
        raise Skip(f"input '{name}' is not a quantized activation")

    def weight(self, name: str) -> QConst:
        value = self.values.get(name)
        if isinstance(value, QConst):
            return value
        raise Skip(f"weight '{name}' must be a quantized constant (int8/uint8 with a scale)")

    def optional_input(self, node: onnx.NodeProto, position: int):
        """The value of input `position`, or None where the node does not have it."""
        if len(node.input) > position and node.input[position]:
            return self.values.get(node.input[position])
        return None

    # ---- output quantization of QDQ compute nodes

    def finalize(self, pending: Pending, out_name: str, scale, zero, model_dtype) -> None:
        """The QuantizeLinear after a QDQ compute node: its output type is known, so the
        node's ops are built (by the handler's `build`, with the fused activation clamp)."""
        if scale.size != 1:
            raise Skip("per-channel activation quantization is not supported")
        out = self.new_tensor(
            out_name, pending.shape, model_dtype, float(scale.item()), int(zero.item())
        )
        clamp = activation_clamp(out.dtype, out.scale, out.zero_point, pending.low, pending.high)
        self.emit_pending(pending, out, clamp)
        self.values[out_name] = Act(out_name)

    def emit_pending(
        self, pending: Pending, out: ir.Tensor, clamp: tuple[int, int], **changes
    ) -> None:
        """Emit a compute node's ops, writing `out` with `clamp`; the last op with the fields
        `changes` (a binary activation's requant to the accumulator's sign, a Trunc's
        rounding, a MultiThreshold's table)."""
        ops = pending.build(out, clamp)
        if changes:
            ops[-1] = replace(ops[-1], **changes)
        quantizer = self._producer
        self._producer = registry.lookup(pending.node)  # the ops are the compute node's
        try:
            for op in ops:
                self.emit(op)
        finally:
            self._producer = quantizer
