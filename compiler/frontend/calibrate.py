"""Float models plus calibration data: quantize with onnxruntime's static quantizer.

The float model is first pre-processed by onnxruntime (shape inference and its basic graph
optimizations, which fold BatchNormalization into the preceding Conv), then quantized to QDQ
with int8 activations and per-channel int8 weights by default, using MinMax calibration on
the given samples. The result goes through the same importer as any QDQ model.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from verdigris.compiler.frontend.errors import ModelError

__all__ = [
    "CalibrationError",
    "load_calibration",
    "quantize_float_model",
    "read_named_arrays",
]

logger = logging.getLogger(__name__)


class CalibrationError(ModelError):
    """The calibration data does not fit the model."""


def read_named_arrays(
    path: str | Path, names: list[str], error: type[Exception], what: str
) -> dict[str, np.ndarray]:
    """Arrays for the model inputs `names` from .npy (a single-input model) or .npz (arrays
    named after the inputs, or one array for a single-input model). Problems raise `error`
    with a message naming the file (`what` says what the file is for)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what} file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as problem:
        raise error(f"{path}: not a .npy/.npz file: {problem}") from None
    if isinstance(data, np.ndarray):
        arrays = {"": data}
    else:
        with data:
            arrays = {key: data[key] for key in data.files}
    if len(arrays) == 1 and len(names) == 1:
        return {names[0]: next(iter(arrays.values()))}
    missing = [name for name in names if name not in arrays]
    if missing:
        raise error(
            f"{path}: has arrays {sorted(arrays)}, but the model's inputs are {names}; "
            f"name the arrays after the inputs (missing: {missing})"
        )
    return {name: arrays[name] for name in names}


def load_calibration(path: str | Path, input_names: list[str]) -> dict[str, np.ndarray]:
    """Calibration samples (float32) for each model input."""
    arrays = read_named_arrays(path, input_names, CalibrationError, "calibration")
    return {name: value.astype(np.float32) for name, value in arrays.items()}


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
        prepared = Path(folder) / "prepared.onnx"
        quantized = Path(folder) / "quantized.onnx"
        logger.info("pre-processing %s (shape inference, BatchNorm folding)", model_path)
        try:
            # ONNX shape inference suffices for CNNs; the symbolic one would need sympy.
            quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
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
