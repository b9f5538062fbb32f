"""Build the real-model corpus: the onnx wheel's `light` CNNs with seeded random weights,
each as a float model, calibration images and two onnxruntime-quantized versions.

The onnx wheel (1.22.0 here) ships ImageNet classifiers under
`onnx/backend/test/data/light/` (AlexNet, DenseNet-121, Inception v1 and v2, ResNet-50,
ShuffleNet, SqueezeNet, VGG-19, ZFNet-512) whose weights are all one constant (0.02, made
by ConstantOfShape nodes). This script gives every weight a seeded random value of a
sensible scale (He-normal over the fan-in for Conv and Gemm weights, small biases, BatchNorm
and scale-layer parameters near identity) and writes, per model NAME, into the cache
(default `~/.cache/verdigris/corpus/`, or `--out DIR`):

- `NAME_fp32.onnx`: the float model (original opset; IR version raised to 7 so that the
  weights are initializers, not graph inputs);
- `NAME_calib.npy`: `--images` seeded random images of the input's shape (float32,
  standard normal clipped to +-3, like normalized ImageNet pixels);
- `NAME_qdq.onnx`: onnxruntime `quantize_static`, QDQ, int8 activations, per-channel int8
  weights (s8s8);
- `NAME_qop.onnx`: onnxruntime `quantize_static`, QOperator, uint8 activations, per-tensor
  int8 weights (u8s8).

Both quantized files come from the same model, converted to opset 13 (onnxruntime would
lift opset 9 only to 11, where per-channel DequantizeLinear is invalid) and pre-processed
(`quant_pre_process`: shape inference and onnxruntime's basic optimizations, which fold
BatchNormalization into Conv where it follows one), with MinMax calibration on the
calibration images. Everything is seeded per model (from its name), so a rerun with the
same package versions writes byte-identical files. Nothing here goes into the repository:
the files are 1 to 550 MB each (2 GB for the whole set).

Warnings of onnxruntime's quantizer are counted per model and the first one is shown.

Usage (offline; about 2.5 minutes on 2 cores for the whole set, VGG-19 alone 70 s)::

    python examples/make_corpus.py                     # every light model
    python examples/make_corpus.py --models resnet50,squeezenet --out /tmp/corpus

A model that fails to quantize gets one error line on stderr and the others go on; the
exit status is 1 if any failed. `bench/corpus.py` reads the cache.

torchvision architectures (mobilenet_v2, mobilenet_v3_small/large, efficientnet_b0,
resnet18, shufflenet_v2_x1_0, squeezenet1_1, googlenet, regnet_x_400mf) come from
`examples/make_torchvision_corpus.py`, into the same cache with the same files; it needs
torch and torchvision (5.5 GB) in a venv of their own and imports `calibration_images`,
`quantize` and the warning counter from here.

TODO (not code yet), beyond CNN classifiers, from the issue: a text detector and
recognizer, a super-resolution net, a voice-activity detector.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, version_converter

logger = logging.getLogger("make_corpus")

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
DEFAULT_OUT = Path.home() / ".cache" / "verdigris" / "corpus"
# The quantized files' opset (the float file keeps the original one).
QUANTIZE_OPSET = 13
# Ops that only pass a weight through on its way to the op that uses it.
PASS_THROUGH = ("Unsqueeze", "Reshape", "Identity", "Squeeze", "Flatten")


def light_models() -> dict[str, Path]:
    """The light models of the installed onnx wheel, by short name (`resnet50`)."""
    return {p.stem.removeprefix("light_"): p for p in sorted(LIGHT.glob("light_*.onnx"))}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    found: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            found.setdefault(name, []).append((node, index))
    return found


def _use(name: str, consumers) -> tuple[str, int, onnx.NodeProto | None]:
    """The op and input index that finally uses the float constant `name`, following
    Unsqueeze/Reshape chains (the Caffe scale layers, a reshaped FC weight)."""
    for _ in range(8):
        uses = consumers.get(name, [])
        if not uses:
            return "", -1, None
        node, index = uses[0]
        if node.op_type in PASS_THROUGH and index == 0:
            name = node.output[0]
            continue
        if node.op_type in ("Mul", "Add", "Sum", "Sub", "Div"):
            return node.op_type, 1, node  # a constant operand: scale (Mul) or shift
        return node.op_type, index, node
    return "", -1, None


def random_weight(shape: tuple[int, ...], op: str, index: int, node, rng) -> np.ndarray:
    """A seeded random value for a weight of `shape` used as input `index` of `op`."""
    size = int(np.prod(shape)) if shape else 1

    def normal(std: float) -> np.ndarray:
        return rng.normal(0.0, std, shape).astype(np.float32)

    if op == "Conv" and index == 1:  # He-normal over the fan-in C/groups * kH * kW
        return normal(np.sqrt(2.0 / max(1, size // shape[0])))
    if op == "Gemm" and index == 1:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        fan_in = shape[1] if (trans_b and len(shape) == 2) else shape[0]
        if len(shape) != 2:  # reshaped on its way: guess a square-ish split
            fan_in = int(np.sqrt(size))
        return normal(np.sqrt(2.0 / max(1, fan_in)))
    if op == "BatchNormalization":
        return {
            1: rng.uniform(0.8, 1.2, shape),  # scale
            2: rng.normal(0.0, 0.05, shape),  # bias
            3: rng.normal(0.0, 0.1, shape),  # running mean
            4: rng.uniform(0.5, 1.5, shape),  # running variance
        }.get(index, rng.normal(0.0, 0.05, shape)).astype(np.float32)
    if op == "Mul":  # a Caffe scale layer: near 1
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    return normal(0.01)  # biases and anything else


def randomize(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """A copy of `model` whose float weights (ConstantOfShape outputs and float
    initializers) are seeded random initializers, listed no more as graph inputs."""
    rng = np.random.default_rng(seed)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    consumers = _consumers(graph)
    stored = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weights: dict[str, np.ndarray] = {}
    kept_nodes = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in stored:
            shape = tuple(int(d) for d in stored[node.input[0]])
            op, index, user = _use(node.output[0], consumers)
            weights[node.output[0]] = random_weight(shape, op, index, user, rng)
        else:
            kept_nodes.append(node)
    for name, value in stored.items():
        if value.dtype == np.float32 and name in consumers:
            op, index, user = _use(name, consumers)
            weights[name] = random_weight(value.shape, op, index, user, rng)
    used = {name for node in kept_nodes for name in node.input}
    initializers = [numpy_helper.from_array(v, n) for n, v in weights.items()]
    initializers += [
        numpy_helper.from_array(v, n)
        for n, v in stored.items()
        if n not in weights and n in used  # shapes for Reshape and the like
    ]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    names = {i.name for i in initializers} | set(stored)
    inputs = [i for i in graph.input if i.name not in names]
    del graph.input[:]
    graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 7)
    onnx.checker.check_model(model)
    return model


def calibration_images(model: onnx.ModelProto, count: int, seed: int) -> np.ndarray:
    """`count` seeded images of the model's (single) input shape, batch axis first."""
    (graph_input,) = model.graph.input
    dims = [d.dim_value or 1 for d in graph_input.type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed + 1)
    images = rng.standard_normal((count, *dims[1:]))
    return np.clip(images, -3.0, 3.0).astype(np.float32)


def quantize(prepared: Path, out: Path, images: np.ndarray, input_name: str, qop: bool):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.index = 0

        def get_next(self):
            if self.index >= len(images):
                return None
            self.index += 1
            return {input_name: images[self.index - 1 : self.index]}

    quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=QuantFormat.QOperator if qop else QuantFormat.QDQ,
        activation_type=QuantType.QUInt8 if qop else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=not qop,
        calibrate_method=CalibrationMethod.MinMax,
    )


def first_line(error: BaseException) -> str:
    """An error as one line: its type and the first line of its text."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def quantize_forms(
    model: onnx.ModelProto, name: str, out: Path, images: np.ndarray, opset: int | None
) -> list[str]:
    """`NAME_qdq.onnx` and `NAME_qop.onnx` of a float model: converted to `opset` (None:
    as it is), pre-processed, quantized; returns the steps that failed (with why)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    failures = []
    with tempfile.TemporaryDirectory(prefix="verdigris-corpus-") as folder:
        upgraded = Path(folder) / "upgraded.onnx"
        prepared = Path(folder) / "prepared.onnx"
        try:
            if opset is not None:
                model = version_converter.convert_version(model, opset)
            onnx.save(model, upgraded)
            quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        except Exception as error:  # onnxruntime's own errors have no common type
            return [f"opset / pre-process: {first_line(error)}"]
        for form, qop in (("qdq", False), ("qop", True)):
            target = out / f"{name}_{form}.onnx"
            try:
                quantize(prepared, target, images, model.graph.input[0].name, qop)
            except Exception as error:
                target.unlink(missing_ok=True)
                failures.append(f"{form}: {first_line(error)}")
    return failures


def build(name: str, source: Path, out: Path, count: int) -> list[str]:
    """Write the four files of one model; returns the forms that failed (with why)."""
    seed = zlib.crc32(name.encode())
    model = randomize(onnx.load(source), seed)
    fp32 = out / f"{name}_fp32.onnx"
    onnx.save(model, fp32)
    images = calibration_images(model, count, seed)
    np.save(out / f"{name}_calib.npy", images)
    # onnxruntime's quantizer only lifts opset 9 to 11, where DequantizeLinear has no
    # `axis`: its per-channel QDQ output would be invalid ONNX.
    return quantize_forms(model, name, out, images, QUANTIZE_OPSET)


class _Warnings(logging.Handler):
    """Collects the warnings onnxruntime's quantizer logs (one per weight it cannot
    quantize per channel, say), to be summed up per model instead of flooding stderr."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != logger.name:
            self.messages.append(record.getMessage())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache folder")
    parser.add_argument("--models", help="comma-separated short names (default: all)")
    parser.add_argument("--images", type=int, default=4, help="calibration images per model")
    args = parser.parse_args(argv)
    warnings = _Warnings()
    logging.basicConfig(level=logging.WARNING, handlers=[warnings], force=True)
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    available = light_models()
    names = args.models.split(",") if args.models else list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; available: {', '.join(available)}")
    if args.images < 1:
        parser.error(f"--images must be at least 1, not {args.images}")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        start = time.perf_counter()
        logger.info("%s: randomizing, calibrating, quantizing ...", name)
        try:
            failures = build(name, available[name], args.out, args.images)
        except Exception as error:
            failures = [f"{type(error).__name__}: {str(error).splitlines()[0]}"]
        for failure in failures:
            logger.error("%s: FAILED %s", name, failure)
        if warnings.messages:
            logger.info(
                "%s: onnxruntime warned %d time(s), first: %s",
                name,
                len(warnings.messages),
                warnings.messages[0],
            )
            warnings.messages.clear()
        failed += bool(failures)
        logger.info("%s: done in %.1f s", name, time.perf_counter() - start)
    logger.info("wrote %s (%d of %d models with a failure)", args.out, failed, len(names))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
