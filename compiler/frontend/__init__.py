"""ONNX frontend: quantized ONNX models (QDQ, QOperator, or float + calibration) to the IR."""

from verdigris.compiler.frontend.errors import (
    ModelError,
    ModelFileError,
    Problem,
    UnsupportedModelError,
)
from verdigris.compiler.frontend.onnx_import import import_model, load_onnx

__all__ = [
    "ModelError",
    "ModelFileError",
    "Problem",
    "UnsupportedModelError",
    "import_model",
    "load_onnx",
]
