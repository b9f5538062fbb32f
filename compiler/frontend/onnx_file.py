"""Reading an ONNX file: the bytes, the ONNX checker, stored tensors and node attributes,
each failure a `ModelFileError` that names the file and the problem."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verdigris.compiler.frontend.errors import ModelFileError

__all__ = ["attributes", "load_onnx", "node_label", "tensor_array"]

logger = logging.getLogger(__name__)


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


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes by name, as Python values."""
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
