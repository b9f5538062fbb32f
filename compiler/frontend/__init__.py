"""ONNX frontend: quantized ONNX models (QDQ, QOperator, or float + calibration) to the IR."""

from verdigris.compiler.frontend.errors import (
    ModelError,
    ModelFileError,
    Problem,
    UnsupportedModelError,
)
from verdigris.compiler.frontend.onnx_file import load_onnx
from verdigris.compiler.frontend.onnx_import import import_model, translate_model

__all__ = [
    "ModelError",
    "ModelFileError",
    "Problem",
    "UnsupportedModelError",
    "import_model",
    "load_onnx",
    "translate_model",
]
