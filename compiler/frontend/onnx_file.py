"""Reading an ONNX file: the bytes, the ONNX checker, stored tensors and node attributes,
each failure a `ModelFileError` that names the file and the problem."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnx.version_converter
from onnx import external_data_helper, helper, numpy_helper

from verdigris.compiler.frontend.errors import ModelError, ModelFileError

__all__ = [
    "MIN_OPSET",
    "QONNX_DOMAINS",
    "attributes",
    "describe_dims",
    "fix_input_shapes",
    "load_onnx",
    "node_label",
    "parse_dims",
    "tensor_array",
    "upgrade_opset",
]

logger = logging.getLogger(__name__)

# The oldest default-domain opset the handlers read (per-channel QuantizeLinear, Clip's min
# and max as inputs, Softmax over the last axis); older models are converted to it.
MIN_OPSET = 13


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
    _check_text(model, path)
    _load_external_data(model, path)
    _accept_ir3_initializers(model, path)
    _repair_qonnx_attributes(model, path)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, TypeError) as error:  # bad UTF-8
        first = str(error).strip().splitlines()[0]
        raise ModelFileError(
            f"{path}: the ONNX checker rejects the model (IR version {model.ir_version}, "
            f"opset {_opset(model)}): {first}"
        ) from None
    return model


def tensor_array(tensor: onnx.TensorProto, label: str) -> np.ndarray:
    """The values of a stored tensor (an initializer or a Constant's value). The ONNX checker
    does not compare a tensor's data with its shape and type, so a damaged file fails here."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(
            f"{label}: tensor '{tensor.name}' has data that does not match its shape "
            f"{list(tensor.dims)} or type ({error}); the file is damaged"
        ) from None


# The types ONNX defines for the attributes the handlers read (the checker does not compare
# them for every op, so a damaged or hand-edited file can have a float stride).
_ATTRIBUTE_TYPES = {
    **dict.fromkeys(("strides", "pads", "dilations", "kernel_shape", "perm", "axes"), "INTS"),
    **dict.fromkeys(
        (
            *("group", "axis", "ceil_mode", "count_include_pad", "transA", "transB"),
            *("keepdims", "select_last_index", "channels_last", "storage_order", "saturate"),
            "block_size",
        ),
        "INT",
    ),
    **dict.fromkeys(("alpha", "beta", "min", "max"), "FLOAT"),
    "auto_pad": "STRING",
    "value": "TENSOR",
}


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes by name, as Python values. TypeError where an attribute the
    handlers read has another type than ONNX defines for it."""
    for attribute in node.attribute:
        expected = _ATTRIBUTE_TYPES.get(attribute.name)
        actual = onnx.AttributeProto.AttributeType.Name(attribute.type)
        if expected is not None and actual != expected:
            raise TypeError(f"attribute '{attribute.name}' is {actual}; ONNX defines {expected}")
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def node_label(node: onnx.NodeProto, index: int) -> str:
    """How errors name a node: its name, or its position and first output."""
    return node.name or f"#{index} ({node.output[0] if node.output else '?'})"


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


# The AttributeProto field that holds each type's value (the scalar types).
_ATTRIBUTE_FIELDS = {
    onnx.AttributeProto.FLOAT: "f",
    onnx.AttributeProto.INT: "i",
    onnx.AttributeProto.STRING: "s",
    onnx.AttributeProto.TENSOR: "t",
    onnx.AttributeProto.GRAPH: "g",
}
# QONNX's domain (Brevitas and FINN export its quantizers), then the older names for it that
# files people have still use.
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")


def _repair_qonnx_attributes(model: onnx.ModelProto, path: Path) -> None:
    """Some Brevitas exports give a QONNX node's string attribute (`rounding_mode`) the
    type INT, which the ONNX checker refuses ("type field and data field mismatch"). Where
    such a node's attribute holds exactly one scalar value, its type is set to that value's;
    nothing else of the file is changed (and only the copy in memory)."""
    for node in model.graph.node:
        if node.domain not in QONNX_DOMAINS:
            continue
        for attribute in node.attribute:
            held = [kind for kind, field in _ATTRIBUTE_FIELDS.items() if attribute.HasField(field)]
            if len(held) == 1 and attribute.type != held[0]:
                logger.info(
                    "%s: node '%s' attribute '%s' is typed %s but holds a %s; read as the %s",
                    path,
                    node.name,
                    attribute.name,
                    onnx.AttributeProto.AttributeType.Name(attribute.type),
                    *[onnx.AttributeProto.AttributeType.Name(held[0])] * 2,
                )
                attribute.type = held[0]


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Tensors saved with `save_as_external_data=True` read their data files, which sit next
    to the model (their `location` is relative to its folder)."""
    external = [
        tensor
        for tensor in external_data_helper._get_all_tensors(model)
        if external_data_helper.uses_external_data(tensor)
    ]
    folder = path.resolve().parent
    for tensor in external:
        info = external_data_helper.ExternalDataInfo(tensor)
        location = Path(info.location)
        if location.is_absolute() or ".." in location.parts or not info.location:
            raise ModelFileError(
                f"{path}: tensor '{tensor.name}' has its data in {info.location!r}, outside "
                "the model's folder; keep external data files next to the model"
            )
        data_file = folder / location
        if not data_file.is_file():
            raise ModelFileError(
                f"{path}: tensor '{tensor.name}' has its data in '{info.location}', which is "
                f"missing; put {data_file.name} next to the model (in {folder})"
            )
    if not external:
        return
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except (OSError, ValueError, TypeError) as error:
        raise ModelFileError(f"{path}: cannot read the external data: {error}") from None
    for tensor in external:
        size = _item_size(tensor)
        expected = None if size is None else int(np.prod(tensor.dims, dtype=np.int64)) * size
        if expected is not None and len(tensor.raw_data) != expected:
            raise ModelFileError(
                f"{path}: tensor '{tensor.name}' has {len(tensor.raw_data)} bytes of external "
                f"data for shape {list(tensor.dims)}; the data file is truncated or another one"
            )


def _item_size(tensor: onnx.TensorProto) -> int | None:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None


def upgrade_opset(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """`model`, converted by onnx's version converter to opset `MIN_OPSET` where its
    default-domain opset is older (the file is not changed)."""
    opset = _opset(model)
    if not isinstance(opset, int) or opset >= MIN_OPSET:
        return model
    try:
        converted = onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as error:  # the converter raises RuntimeError, ValueError and others
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(
            f"{label}: opset {opset} is older than {MIN_OPSET}, and onnx's version converter "
            f"cannot convert it: {first}; re-export the model at opset {MIN_OPSET} or newer"
        ) from None
    logger.info("%s: converted from opset %d to opset %d", label, opset, MIN_OPSET)
    return converted


def _check_text(model: onnx.ModelProto, path: Path) -> None:
    """ModelFileError where a name is not UTF-8 text: protobuf then gives bytes, which the
    checker lets through (a damaged file)."""
    graph = model.graph
    values = [*graph.input, *graph.output, *graph.value_info, *graph.initializer]
    for index, node in enumerate(graph.node):
        texts = [node.name, node.op_type, node.domain, *node.input, *node.output]
        bad = next((text for text in texts if not isinstance(text, str)), None)
        if bad is not None:
            raise ModelFileError(
                f"{path}: node {index} has a name that is not UTF-8 text ({bad!r}); "
                "the file is damaged"
            )
    for value in values:
        if not isinstance(value.name, str):
            raise ModelFileError(
                f"{path}: the name {value.name!r} is not UTF-8 text; the file is damaged"
            )


def parse_dims(text: str) -> tuple[int, ...]:
    """`1,3,224,224` as a shape; ValueError with the reason where it is not one."""
    parts = text.split(",")
    if not text or any(not part.strip() for part in parts):
        raise ValueError(f"{text!r} is not a shape; give dimensions like 1,3,224,224")
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"{text!r} is not a shape; give whole numbers like 1,3,224,224") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"{text!r}: every dimension must be positive")
    return dims


def fix_input_shapes(
    model: onnx.ModelProto,
    shapes: dict[str, tuple[int, ...]],
    label: str,
    batch: int | None = None,
) -> onnx.ModelProto:
    """A copy of `model` with the inputs named in `shapes` given those fixed shapes, and ONNX
    shape inference run again so that the shapes after them follow. With `batch` (the
    CLI's `--batch N`), every input's first dimension becomes `batch`, also where the model
    fixes it (at 1, as most exports do); its other dimensions must be known."""
    if not shapes and batch is None:
        return model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    initializers = {init.name for init in fixed.graph.initializer}
    inputs = {v.name: v for v in fixed.graph.input if v.name not in initializers}
    if batch is not None:
        shapes = _batched(inputs, shapes, batch, label)
    for name, dims in shapes.items():
        if name not in inputs:
            raise ModelError(
                f"{label}: --input-shape names '{name}', which is not an input of the model; "
                f"its inputs are {', '.join(repr(n) for n in inputs) or 'none'}"
            )
        dims = tuple(int(d) for d in dims)
        if not dims or any(d <= 0 for d in dims):
            raise ModelError(f"{label}: --input-shape {name}: {list(dims)} is not a shape")
        shape = inputs[name].type.tensor_type.shape
        if inputs[name].type.tensor_type.HasField("shape"):
            if len(shape.dim) != len(dims):
                raise ModelError(
                    f"{label}: input '{name}' has {len(shape.dim)} dimensions "
                    f"({describe_dims(inputs[name])}); --input-shape gives {len(dims)}"
                )
            for index, (dim, size) in enumerate(zip(shape.dim, dims, strict=True)):
                if index == 0 and batch is not None:
                    continue  # --batch replaces the model's batch
                if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                    raise ModelError(
                        f"{label}: input '{name}' has dimension {index} fixed at "
                        f"{dim.dim_value}; --input-shape gives {size}"
                    )
        inputs[name].type.tensor_type.ClearField("shape")
        inputs[name].type.tensor_type.shape.SetInParent()
        for size in dims:
            inputs[name].type.tensor_type.shape.dim.add().dim_value = size
    del fixed.graph.value_info[:]  # stale: inferred from the symbolic shapes
    try:
        return onnx.shape_inference.infer_shapes(fixed)
    except Exception as error:  # InferenceError and others
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(
            f"{label}: ONNX shape inference fails with the input shapes given: {first}"
        ) from None


def _batched(
    inputs: dict[str, onnx.ValueInfoProto],
    shapes: dict[str, tuple[int, ...]],
    batch: int,
    label: str,
) -> dict[str, tuple[int, ...]]:
    """The shape of every input with its first dimension `batch`: as given in `shapes`, or
    the model's own."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        raise ModelError(f"{label}: --batch {batch!r}: give a positive whole number")
    shapes = {name: tuple(int(d) for d in dims) for name, dims in shapes.items()}
    batched = {}
    for name, value in inputs.items():
        if name in shapes:
            if shapes[name][:1] != (batch,):
                given = shapes[name][0] if shapes[name] else "none"
                raise ModelError(
                    f"{label}: --input-shape {name} gives batch {given}, --batch {batch}; "
                    "give one of them, or the same batch in both"
                )
            batched[name] = shapes[name]
            continue
        dims = value.type.tensor_type.shape.dim
        known = [d.HasField("dim_value") and d.dim_value > 0 for d in dims]
        if not value.type.tensor_type.HasField("shape") or not dims or not all(known[1:]):
            raise ModelError(
                f"{label}: --batch {batch}: input '{name}' has dimensions "
                f"({describe_dims(value) or 'none'}) beyond the batch that are not fixed; give "
                f"its whole shape with --input-shape {name}={batch},..."
            )
        batched[name] = (batch, *(d.dim_value for d in dims[1:]))
    return {**shapes, **batched}


def describe_dims(value: onnx.ValueInfoProto) -> str:
    """An input's dimensions as `1,3,H,W`: numbers where fixed, names or ? where not."""
    dims = value.type.tensor_type.shape.dim
    return ",".join(
        str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
        for d in dims
    )
