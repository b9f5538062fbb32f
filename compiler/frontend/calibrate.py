"""Float models plus calibration data: quantize with onnxruntime's static quantizer.

The float model is first pre-processed by onnxruntime (shape inference and its basic graph
optimizations, which fold BatchNormalization into the preceding Conv), then quantized to QDQ
with int8 activations and per-channel int8 weights by default, using MinMax calibration on
the given samples. The result goes through the same importer as any QDQ model.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from verdigris.arch.tensor_files import read_named_arrays
from verdigris.compiler.frontend.errors import ModelError
from verdigris.compiler.frontend.onnx_file import load_onnx, upgrade_opset
from verdigris.compiler.frontend.registry import ONNX_OPS

__all__ = [
    "CalibrationError",
    "check_float_model",
    "load_calibration",
    "quantize_float_model",
]

logger = logging.getLogger(__name__)


class CalibrationError(ModelError):
    """The calibration data does not fit the model."""


def load_calibration(
    source: str | Path | np.ndarray | Mapping[str, np.ndarray], input_names: list[str]
) -> dict[str, np.ndarray]:
    """Calibration samples (float32) for each model input, from a .npy/.npz file, one array
    (a single-input model) or arrays by input name. The data obeys the rule for inputs of a
    float model: floating-point values, no NaN, at least one sample."""
    if isinstance(source, np.ndarray):
        source = {input_names[0]: source} if len(input_names) == 1 else {"": source}
    if isinstance(source, Mapping):
        missing = [name for name in input_names if name not in source]
        if missing:
            raise CalibrationError(
                f"calibration data has arrays {sorted(source)}; the model's inputs are "
                f"{input_names} (missing: {missing})"
            )
        arrays = {name: np.asarray(source[name]) for name in input_names}
        where = "calibration data"
    else:
        arrays = read_named_arrays(source, input_names, CalibrationError, "calibration")
        where = str(source)
    for name, value in arrays.items():
        if value.dtype.kind != "f":
            raise CalibrationError(
                f"{where}: calibration data for input '{name}' is {value.dtype}; the float "
                "model takes floating-point values, scaled as in training (for example "
                "x.astype(np.float32))"
            )
        if value.ndim == 0 or len(value) == 0:
            raise CalibrationError(f"{where}: no calibration samples for input '{name}'")
        if np.isnan(value).any():
            index = tuple(int(i) for i in np.argwhere(np.isnan(value))[0])
            raise CalibrationError(
                f"{where}: calibration data for input '{name}' contains NaN at index {index}"
            )
    return {name: value.astype(np.float32) for name, value in arrays.items()}


# Ops that only a quantized model contains (the registered ones marked `quantized`, and
# DynamicQuantizeLinear, which the frontend rejects): such a model has its scales already.
_QUANTIZED_OPS = {op.op_type for op in ONNX_OPS if op.quantized} | {"DynamicQuantizeLinear"}


def check_float_model(model: onnx.ModelProto, path: str | Path) -> None:
    """Refuse to calibrate a model that is quantized already: quantizing it a second time
    would silently change its outputs."""
    found = sorted({n.op_type for n in model.graph.node if n.op_type in _QUANTIZED_OPS})
    if found:
        raise CalibrationError(
            f"{path}: the model is already quantized (it has {', '.join(found)}); run it "
            "without --calibrate (calibration data is only for float models)"
        )


def quantize_float_model(
    model_path: str | Path,
    calibration: dict[str, np.ndarray],
    *,
    per_channel: bool = True,
    activations: str = "int8",
    max_samples: int = 512,
) -> onnx.ModelProto:
    """A QDQ-quantized copy of the float model at `model_path` (the file is not changed)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    counts = {len(v) for v in calibration.values()}
    if len(counts) != 1 or not counts.pop():
        raise CalibrationError("calibration arrays must be non-empty with equal sample counts")
    samples = min(len(next(iter(calibration.values()))), max_samples)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.index = 0

        def get_next(self):
            if self.index >= samples:
                return None
            feed = {k: v[self.index : self.index + 1] for k, v in calibration.items()}
            self.index += 1
            return feed

    activation_type = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[activations]
    with tempfile.TemporaryDirectory(prefix="verdigris-calibrate-") as folder:
        source = Path(model_path)
        prepared = Path(folder) / "prepared.onnx"
        quantized = Path(folder) / "quantized.onnx"
        # Quantize at the opset the importer reads: onnxruntime's quantizer lifts an old
        # model only to opset 11, where per-channel DequantizeLinear is not valid ONNX.
        model = load_onnx(source)
        upgraded = upgrade_opset(model, str(source))
        if upgraded is not model:
            source = Path(folder) / "upgraded.onnx"
            onnx.save(upgraded, str(source))
        logger.info("pre-processing %s (shape inference, BatchNorm folding)", model_path)
        try:
            # ONNX shape inference suffices for CNNs; the symbolic one would need sympy.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception as error:
            raise CalibrationError(
                f"{model_path}: onnxruntime could not prepare it: {error}"
            ) from None
        logger.info("calibrating on %d samples and quantizing (QDQ)", samples)
        try:
            quantize_static(
                str(prepared),
                str(quantized),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=activation_type,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as error:
            raise CalibrationError(
                f"{model_path}: onnxruntime's quantizer failed ({type(error).__name__}: "
                f"{error}); check that the calibration data has the model's input shape"
            ) from None
        return onnx.load(quantized)
