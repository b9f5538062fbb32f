"""Ops the device cannot run, imported as float ops on the host (docs/frontend.md, "Device
and host").

A node the device cannot take (its op has no device handler, or the handler refuses its
attributes or inputs) runs on the host when its op is one of `HOST_OPS` and its inputs are
dequantized device tensors, results of other host nodes, or constants. Its outputs are then
`HostValue`s: float values the host computes. A QuantizeLinear of one makes it a device
tensor again, as an `ir.HostOp` that holds every host node it needs (the island). In a
QOperator model, a data-movement op (Transpose, Slice, ...) on an integer tensor runs on the
host directly: it moves values, so its output keeps its input's quantization. So does a
linear Resize of an integer tensor, which onnxruntime computes on the integers themselves
(float32 sums, truncated): the host computes the same (`_resize_integers`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper

from verdigris.arch.host_steps import HOST_OPS
from verdigris.compiler import ir
from verdigris.compiler.frontend.shapes import AUTO_PADS
from verdigris.compiler.frontend.values import (
    MS,
    Act,
    HostValue,
    QConst,
    Skip,
    along,
    uint8_shift,
)

if TYPE_CHECKING:
    from verdigris.compiler.frontend.importer import Importer

__all__ = ["MOVES_VALUES", "QLINEAR_FORMS", "host_node", "host_op", "runs_on_host"]


# Ops whose outputs are values of their inputs (or the same value several times): on an
# integer tensor they give the same integers, with the same quantization.
MOVES_VALUES = frozenset(
    {
        "DepthToSpace", "Flatten", "Gather", "GlobalMaxPool", "Identity", "MaxPool", "Reshape",
        "Slice", "SpaceToDepth", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze",
    }
)  # fmt: skip


def _moves_values(op_type: str, attributes: dict) -> bool:
    """Whether the op's outputs are values of its inputs (or a Pad's constant)."""
    if op_type == "Resize":
        return attributes.get("mode", "nearest") == "nearest"
    return op_type in MOVES_VALUES or op_type == "Pad"


def _output_shapes(
    im: Importer,
    node: onnx.NodeProto,
    op_type: str,
    attributes: tuple,
    inputs: list[tuple[str, tuple[int, ...] | None, np.ndarray | None]],
) -> list[tuple[int, ...]]:
    """The shapes of a host node's outputs, by ONNX shape inference on the node alone, its
    inputs' shapes known (`inputs`: name, shape, and the value of a constant)."""
    opset = next((o.version for o in im.model.opset_import if o.domain in ("", "ai.onnx")), 13)
    infos, initializers = [], []
    for name, shape, value in inputs:
        if not name:
            continue
        if value is not None:
            initializers.append(onnx.numpy_helper.from_array(value, name))
        infos.append(
            helper.make_tensor_value_info(
                name,
                onnx.TensorProto.INT64
                if value is not None and value.dtype.kind in "iu"
                else onnx.TensorProto.FLOAT,
                shape if value is None else value.shape,
            )
        )
    probe = helper.make_node(
        op_type, [n for n, _, _ in inputs], list(node.output), **dict(attributes)
    )
    graph = helper.make_graph([probe], "probe", infos, [], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 13))])
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as error:  # onnx raises several types
        raise Skip(f"{op_type} on the host: ONNX shape inference fails ({error})") from None
    found = {v.name: v.type.tensor_type for v in inferred.graph.value_info}
    shapes = []
    for output in node.output:
        known = found.get(output)
        dims = (
            tuple(d.dim_value for d in known.shape.dim)
            if known and known.HasField("shape")
            else None
        )
        if output and (dims is None or min(dims, default=1) <= 0):
            raise Skip(
                f"the shape of '{output}' is not known (ONNX shape inference cannot infer it)"
            )
        shapes.append(dims or ())
    return shapes


def _attribute(attribute: onnx.AttributeProto):
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list) and all(isinstance(v, int | float) for v in value):
        return tuple(value)
    if isinstance(value, int | float):
        return value
    kind = onnx.AttributeProto.AttributeType.Name(attribute.type)
    raise Skip(f"attribute '{attribute.name}' of type {kind} cannot run on the host")


def runs_on_host(node: onnx.NodeProto) -> bool:
    """Whether the host may run `node` (if its inputs allow): the importer decides."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    form = QLINEAR_FORMS.get(node.op_type)
    if form is not None:
        return domain == form.domain
    return domain == "" and node.op_type in HOST_OPS


class _Island:
    """The host nodes, dequantized device tensors and constants a host value needs."""

    def __init__(self):
        self.tensors: dict[str, ir.Tensor] = {}
        self.nodes: list[ir.HostNode] = []
        self.constants: dict[str, np.ndarray] = {}

    def tensor(self, tensor: ir.Tensor) -> str:
        known = self.tensors.setdefault(tensor.name, tensor)
        if (known.scale, known.zero_point) != (tensor.scale, tensor.zero_point):
            raise Skip(f"'{tensor.name}' is dequantized with two different scales")
        return tensor.name

    def value(self, value: HostValue) -> str:
        for tensor in value.inputs:
            self.tensor(tensor)
        self.nodes += value.nodes
        self.constants.update(value.constants)
        return value.name

    def constant(self, name: str, array: np.ndarray) -> str:
        self.constants[name] = array
        return name

    def host_values(self, im: Importer, node, shapes, host: ir.HostNode, reason: str) -> None:
        """Make `node`'s outputs host values, computed by this island and `host`."""
        nodes = tuple(dict.fromkeys([*self.nodes, host]))  # shared ancestors once
        for output, shape in zip(node.output, shapes, strict=True):
            if output:
                im.values[output] = HostValue(
                    name=output,
                    shape=shape,
                    node=_op_name(im, node, output),
                    inputs=tuple(self.tensors.values()),
                    nodes=nodes,
                    constants=tuple(self.constants.items()),
                    reason=reason,
                )


def _op_name(im: Importer, node: onnx.NodeProto, output: str) -> str:
    """The name of the host op that computes `output` of `node` (the node being imported):
    the node's label, with the output's name where the node has several (a Split)."""
    label = im.label_of(node)
    return label if sum(1 for name in node.output if name) == 1 else f"{label}:{output}"


def _float_constant(value: np.ndarray | QConst) -> np.ndarray:
    """A constant as the host node reads it: a quantized one as DequantizeLinear computes
    it (in float32), integers (shapes, indices, axes) as int64, floats as float32."""
    if isinstance(value, QConst):
        centred = value.centred().astype(np.float32)
        scale = np.asarray(value.scale, np.float32)
        return centred * along(scale, value.axis, centred.ndim)
    return value.astype(np.float32 if np.issubdtype(value.dtype, np.floating) else np.int64)


def host_node(im: Importer, node: onnx.NodeProto, reason: str) -> None:
    """Import `node` as a host node (`reason`: why not on the device), or Skip saying why it
    cannot run on the host either."""
    if not runs_on_host(node):
        raise Skip(reason)
    if node.op_type in QLINEAR_FORMS:
        _qlinear(im, node, reason)
        return
    attributes = tuple((a.name, _attribute(a)) for a in node.attribute)
    sources = [im.values.get(name) if name else None for name in node.input]
    integers = [v for v in sources if isinstance(v, Act) and not v.steps]
    if (
        integers
        and _moves_values(node.op_type, dict(attributes))
        and all(v is None or isinstance(v, np.ndarray) or v in integers for v in sources)
    ):
        _move_integers(im, node, reason, attributes, sources)
        return
    if (
        node.op_type == "Resize"
        and integers
        and all(v is None or isinstance(v, np.ndarray) or v in integers for v in sources)
    ):
        _resize_integers(im, node, reason, attributes, sources)
        return
    island = _Island()
    inputs, probes = [], []
    for name, value in zip(node.input, sources, strict=True):
        if not name:
            inputs.append("")
            probes.append(("", None, None))
            continue
        if isinstance(value, HostValue):
            inputs.append(island.value(value))
            probes.append((name, value.shape, None))
        elif isinstance(value, Act) and value.is_float_view:
            view = im.activation(name, float_view=True)
            inputs.append(island.tensor(view))
            probes.append((name, view.shape, None))
        elif isinstance(value, np.ndarray | QConst):
            array = _float_constant(value)
            inputs.append(island.constant(name, array))
            probes.append((name, None, array))
        elif isinstance(value, Act) and not value.steps:
            raise Skip(
                f"{reason}; on the host, {node.op_type} of the integer tensor '{name}' needs "
                "its dequantized values (a QDQ model), as it computes new values"
            )
        else:
            raise Skip(f"{reason}; on the host it needs dequantized inputs ('{name}' is not one)")
    shapes = _output_shapes(im, node, node.op_type, attributes, probes)
    if node.op_type == "ConvTranspose":
        _check_conv_transpose(reason, dict(attributes), probes)
    host = ir.HostNode(node.op_type, tuple(inputs), tuple(node.output), attributes)
    island.host_values(im, node, shapes, host, reason)


def _check_conv_transpose(reason: str, attributes: dict, probes) -> None:
    """Skip a ConvTranspose whose attributes ONNX shape inference lets through but the host
    (and onnxruntime) refuse, naming the attribute: the host's runtime (sim/host_ops.py)
    checks the same when it runs."""
    x_shape, w_shape = [shape if value is None else value.shape for _, shape, value in probes[:2]]
    spatial = len(x_shape) - 2
    if spatial < 1 or len(w_shape) != len(x_shape):
        raise Skip(f"{reason}; a weight of shape {w_shape} for an input of shape {x_shape}")
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise Skip(f"{reason}; auto_pad {auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    group = attributes.get("group", 1)
    if group < 1 or x_shape[1] % group or w_shape[0] != x_shape[1]:
        raise Skip(
            f"{reason}; group {group} with {x_shape[1]} input channels and a weight of "
            f"shape {w_shape}"
        )
    kernel = tuple(w_shape[2:])
    if tuple(attributes.get("kernel_shape", kernel)) != kernel:
        raise Skip(f"{reason}; kernel_shape {attributes['kernel_shape']} is not the weight's")
    strides = tuple(attributes.get("strides", (1,) * spatial))
    dilations = tuple(attributes.get("dilations", (1,) * spatial))
    adjust = tuple(attributes.get("output_padding", (0,) * spatial))
    if len(adjust) != spatial or any(a >= s for a, s in zip(adjust, strides, strict=False)):
        raise Skip(
            f"{reason}; output_padding {list(adjust)} must be below strides "
            f"{list(strides)} (onnxruntime's limit)"
        )
    given = attributes.get("output_shape")
    if given is None or len(given) != spatial or len(strides) != spatial:
        return  # ONNX shape inference checks the rest
    axes = zip(x_shape[2:], kernel, strides, dilations, adjust, given, strict=False)
    for n, k, s, d, a, out in axes:
        if out > (n - 1) * s + (k - 1) * d + a + s:
            raise Skip(
                f"{reason}; output_shape {list(given)} is larger than the input allows "
                "(onnxruntime's limit: less than one stride past the full result)"
            )


def _move_integers(im: Importer, node, reason: str, attributes, sources) -> None:
    """A data-movement op on integer device tensors: a host op whose output keeps the
    quantization of its inputs (which must share one). It runs on the dequantized values
    and quantizes them back, which gives the same integers."""
    tensors = {v.tensor: im.tensors[v.tensor] for v in sources if isinstance(v, Act)}
    first = next(iter(tensors.values()))
    if any((t.scale, t.zero_point) != (first.scale, first.zero_point) for t in tensors.values()):
        raise Skip(f"{reason}; on the host its inputs need one quantization")
    # An integer model input has no scale: any scale moves its values alike.
    scale = first.scale if first.scale is not None else 1.0
    views = tuple(replace(t, scale=scale) for t in tensors.values())
    constants, probes = {}, []
    for position, (name, value) in enumerate(zip(node.input, sources, strict=True)):
        if isinstance(value, np.ndarray):
            constants[name] = _float_constant(value)
            if node.op_type == "Pad" and position == 2:  # a value of the tensor's type
                centred = value.astype(np.int64) - im.model_zero_point(first)
                constants[name] = centred.astype(np.float32) * np.float32(scale)
            probes.append((name, None, constants[name]))
        else:
            probes.append((name, im.tensors[value.tensor].shape if value else None, None))
    shapes = _output_shapes(im, node, node.op_type, attributes, probes)
    host = ir.HostNode(node.op_type, tuple(node.input), tuple(node.output), attributes)
    for output, shape in zip(node.output, shapes, strict=True):
        if not output:
            continue
        zero = im.model_zero_point(first)
        out = im.new_tensor(output, shape, im.model_dtype[first.name], first.scale, zero)
        compute = ir.HostCompute(
            inputs=views,
            output=replace(out, scale=scale),
            nodes=(host,),
            result=output,
            constants=tuple(constants.items()),
        )
        _emit(im, _op_name(im, node, output), compute, reason)
        im.values[output] = Act(out.name)


# The coordinate transformations the host's Resize computes as onnxruntime does.
_RESIZE_COORDINATES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
)


def _resize_integers(im: Importer, node, reason: str, attributes, sources) -> None:
    """A linear Resize of an integer tensor (a QOperator model). onnxruntime interpolates the
    model's integers (uint8 or int8) in float32 and truncates the result toward zero; the
    output keeps the input's quantization. The host does the same: the integers dequantized
    with scale 1 and a zero point that undoes the device's uint8 shift, the float Resize
    (onnxruntime's sums, sim/host_ops.py), a truncation toward zero (Floor of a uint8
    result, which is never negative; Floor above zero plus Ceil below for int8), quantized
    back with scale 1: the same integers."""
    options = dict(attributes)
    mode = options.get("mode", "nearest")
    coordinates = options.get("coordinate_transformation_mode", "half_pixel")
    if mode != "linear":
        raise Skip(
            f"{reason}; a Resize of an integer tensor in mode '{mode}' is not supported "
            "(nearest and linear are)"
        )
    if coordinates not in _RESIZE_COORDINATES:
        raise Skip(
            f"{reason}; a linear Resize of an integer tensor with "
            f"coordinate_transformation_mode '{coordinates}' is not supported "
            f"({', '.join(_RESIZE_COORDINATES)} are)"
        )
    if options.get("antialias", 0):
        raise Skip(f"{reason}; a linear Resize with antialias=1 is not supported")
    [value] = {v.tensor: v for v in sources if isinstance(v, Act)}.values()
    if sources.index(value) != 0:
        raise Skip(f"{reason}; its roi, scales or sizes are an integer tensor")
    tensor = im.tensors[value.tensor]
    model_dtype = im.model_dtype[tensor.name]
    constants, probes = {}, []
    for name, source in zip(node.input, sources, strict=True):
        if isinstance(source, np.ndarray):
            constants[name] = _float_constant(source)
            probes.append((name, None, constants[name]))
        else:
            probes.append((name, tensor.shape if source is not None else None, None))
    [shape] = _output_shapes(im, node, node.op_type, attributes, probes)
    _check_linear_layout(reason, options, sources, tensor.shape, shape)
    # The model's integers as floats: q = device value + the uint8 shift.
    unshifted = -uint8_shift(model_dtype)
    view = replace(tensor, scale=1.0, zero_point=unshifted)
    output = node.output[0]
    resized = f"{output}:interpolated"
    inputs = (tensor.name, *node.input[1:])
    nodes = [ir.HostNode("Resize", inputs, (resized,), attributes)]
    if model_dtype == "uint8":
        nodes.append(ir.HostNode("Floor", (resized,), (output,), ()))
    else:
        zero = f"{output}:zero"
        constants[zero] = np.zeros((), np.float32)
        above, below = f"{output}:above", f"{output}:below"
        nodes += [
            ir.HostNode("Max", (resized, zero), (above,), ()),
            ir.HostNode("Floor", (above,), (f"{above}:floor",), ()),
            ir.HostNode("Min", (resized, zero), (below,), ()),
            ir.HostNode("Ceil", (below,), (f"{below}:ceil",), ()),
            ir.HostNode("Add", (f"{above}:floor", f"{below}:ceil"), (output,), ()),
        ]
    out = im.new_tensor(output, shape, model_dtype, tensor.scale, im.model_zero_point(tensor))
    compute = ir.HostCompute(
        inputs=(view,),
        output=replace(out, scale=1.0, zero_point=unshifted),
        nodes=tuple(nodes),
        result=output,
        constants=tuple(constants.items()),
    )
    _emit(im, _op_name(im, node, output), compute, reason)
    im.values[output] = Act(out.name)


def _check_linear_layout(reason, options, sources, in_shape, out_shape) -> None:
    """Skip unless onnxruntime runs this linear Resize of an integer tensor with the float
    kernels the host reproduces: over the 2 or 3 innermost axes of a 2-D to 5-D tensor
    (sim/host_ops.py, `_linear_kernel`). Its channels-last kernel (4-D, scales [1, s, s, 1])
    weighs int8/uint8 in 10-bit fixed point, which float ops do not reproduce."""
    rank = len(in_shape)
    if tuple(in_shape) == tuple(out_shape):
        return  # a copy
    given = sources[2] if len(sources) > 2 else None
    scales = [o / i for o, i in zip(out_shape, in_shape, strict=True)]
    if isinstance(given, np.ndarray) and given.size:
        axes = options.get("axes") or range(rank)
        scales = [1.0] * rank
        for axis, scale in zip(axes, given.reshape(-1), strict=False):
            scales[axis % rank] = float(np.float32(scale))
    outer = rank in (4, 5) and scales[0] == 1 and scales[1] == 1
    if rank in (2, 3) or outer:
        return
    if rank == 4 and scales[0] == 1 and scales[3] == 1:
        raise Skip(
            f"{reason}; a linear Resize of an integer tensor over axes 1 and 2 "
            f"(scales {scales}): onnxruntime computes it channels-last in 10-bit fixed "
            "point, which the host does not reproduce"
        )
    raise Skip(
        f"{reason}; a linear Resize of an integer tensor with scales {scales}: "
        "onnxruntime resizes only the 2 or 3 innermost axes of a 2-D to 5-D tensor"
    )


def _emit(im: Importer, name: str, compute: ir.HostCompute, reason: str) -> None:
    """Emit the host op of `compute`, named `name` (with its output's name where a host op
    of that name exists: one host value quantized twice)."""
    if any(op.name == name for op in im.nodes):
        name = f"{name}:{compute.output.name}"
    im.emit(
        ir.HostOp(
            name=name,
            inputs=tuple(t.name for t in compute.inputs),
            output=compute.output.name,
            compute=compute,
            reason=reason,
        )
    )


def host_op(im: Importer, value: HostValue, out_name: str, scale, zero, model_dtype: str) -> None:
    """The QuantizeLinear of a host value: the host op that computes it, whose output is the
    device tensor `out_name`."""
    if scale.size != 1:
        raise Skip("per-channel activation quantization is not supported")
    if model_dtype not in ("int8", "uint8"):
        raise Skip(f"activations of type {model_dtype} are not supported (int8/uint8)")
    out = im.new_tensor(out_name, value.shape, model_dtype, float(scale.item()), int(zero.item()))
    compute = ir.HostCompute(
        inputs=value.inputs,
        output=out,
        nodes=value.nodes,
        result=value.name,
        constants=value.constants,
    )
    _emit(im, value.node, compute, value.reason)
    im.values[out_name] = Act(out_name)


# ---- QOperator ops the host runs: dequantize the inputs, the float op, quantize the output


@dataclass(frozen=True)
class QLinearForm:
    """A com.microsoft QLinear op as a float op: its quantized inputs (value, scale, zero
    point positions), its output's (scale, zero point) positions."""

    float_op: str
    inputs: tuple[tuple[int, int, int], ...]
    output: tuple[int, int]
    domain: str = MS


QLINEAR_FORMS = {
    "QLinearSigmoid": QLinearForm("Sigmoid", ((0, 1, 2),), (3, 4)),
    "QLinearLeakyRelu": QLinearForm("LeakyRelu", ((0, 1, 2),), (3, 4)),
    "QLinearMul": QLinearForm("Mul", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearAdd": QLinearForm("Add", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearAveragePool": QLinearForm("AveragePool", ((0, 1, 2),), (3, 4)),
    "QLinearGlobalAveragePool": QLinearForm("GlobalAveragePool", ((0, 1, 2),), (3, 4)),
    "QLinearReduceMean": QLinearForm("ReduceMean", ((0, 1, 2),), (3, 4)),
    "QLinearSoftmax": QLinearForm("Softmax", ((0, 1, 2),), (3, 4)),
    # Inputs from position 2 in threes (value, scale, zero point); filled in by `_qlinear`.
    "QLinearConcat": QLinearForm("Concat", (), (0, 1)),
    # On the device when its second input is a constant weight.
    "QLinearMatMul": QLinearForm("MatMul", ((0, 1, 2), (3, 4, 5)), (6, 7), domain=""),
}


def _qlinear(im: Importer, node: onnx.NodeProto, reason: str) -> None:
    form = QLINEAR_FORMS[node.op_type]
    # channels_last and opset are the contrib op's own; the float op does not take them.
    own = ("channels_last", "opset")
    attributes = tuple((a.name, _attribute(a)) for a in node.attribute if a.name not in own)
    if any(a.name == "channels_last" and a.i for a in node.attribute):
        raise Skip(f"{reason}; channels_last=1 is not supported on the host either")
    if node.op_type == "QLinearSoftmax":
        _check_softmax_axis(im, node)
    positions = form.inputs or tuple((p, p + 1, p + 2) for p in range(2, len(node.input), 3))
    island = _Island()
    inputs, probes = [], []
    for value_pos, scale_pos, zp_pos in positions:
        name = node.input[value_pos]
        value = im.values.get(name)
        scale, zero, model_dtype = im.qparams(node, scale_pos, zp_pos)
        if isinstance(value, Act) and not value.steps:
            tensor = im.tensors[value.tensor]
            view = replace(
                tensor,
                scale=float(scale.item()),
                zero_point=int(zero.item()) - uint8_shift(model_dtype),
            )
            inputs.append(island.tensor(view))
            probes.append((name, view.shape, None))
        elif isinstance(value, np.ndarray):  # a quantized constant
            real = (value.astype(np.int64) - zero).astype(np.float32) * scale.astype(np.float32)
            inputs.append(island.constant(name, real))
            probes.append((name, None, real))
        else:
            raise Skip(f"{reason}; input '{name}' is not a quantized activation or constant")
    shapes = _output_shapes(im, node, form.float_op, attributes, probes)
    scale, zero, model_dtype = im.qparams(node, *form.output)
    if model_dtype not in ("int8", "uint8"):
        raise Skip(f"activations of type {model_dtype} are not supported (int8/uint8)")
    out = im.new_tensor(
        node.output[0], shapes[0], model_dtype, float(scale.item()), int(zero.item())
    )
    host = ir.HostNode(form.float_op, tuple(inputs), (node.output[0],), attributes)
    compute = ir.HostCompute(
        inputs=tuple(island.tensors.values()),
        output=out,
        nodes=(host,),
        result=node.output[0],
        constants=tuple(island.constants.items()),
    )
    _emit(im, im.label_of(node), compute, reason)
    im.values[out.name] = Act(out.name)


def _check_softmax_axis(im: Importer, node: onnx.NodeProto) -> None:
    """A QLinearSoftmax of opset < 13 normalizes over every axis from `axis` on (the input
    seen as 2-D); opset 13's Softmax over `axis` alone. They agree when `axis` is the last."""
    opset = next((a.i for a in node.attribute if a.name == "opset"), 13)
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 else 1)
    value = im.values.get(node.input[0])
    rank = len(im.tensors[value.tensor].shape) if isinstance(value, Act) else 1
    if opset < 13 and axis % rank != rank - 1:
        raise Skip(f"QLinearSoftmax of opset {opset} over the axes from {axis} on is not supported")
