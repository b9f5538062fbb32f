"""Regenerate the low-bit example models in examples/models/ from the scikit-learn digits set.

Trains the digits LeNet (the network of `lenet` in examples/README.md) with Brevitas'
quantization-aware training at several precisions, exports each as QONNX (Brevitas'
`Quant` nodes), one also as QCDQ (QuantizeLinear -> Clip -> DequantizeLinear), measures top-1
accuracy of the trained model and of every file under QONNX's own executor
(`qonnx.core.onnx_exec.execute_onnx`) and writes examples/lowbit.md. Seeded, so a rerun on
the same package versions trains the same networks.

    python examples/make_lowbit_models.py

Needs the `examples` extra (torch, brevitas, scikit-learn) and qonnx (the `dev` extra); a few
minutes on 2 cores. The files it writes need neither torch nor Brevitas.
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import onnx
import torch
from brevitas.export import export_onnx_qcdq, export_qonnx
from brevitas.quant import (
    Int8WeightPerTensorFloat,
    Int32Bias,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
)
from make_digits_models import Digits, load_digits_split
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.util.cleanup import cleanup_model
from torch import nn

EXAMPLES_DIR = Path(__file__).resolve().parent
MODELS_DIR = EXAMPLES_DIR / "models"
SEED = 0
EPOCHS = 40
LR = 3e-3

log = logging.getLogger("make_lowbit_models")


@dataclass(frozen=True)
class Precision:
    """Bits of each layer's weights and of the activation after it: conv1, conv2, fc1, fc2
    (fc2's output is the logits, quantized to 8 bits in every model)."""

    name: str
    weights: tuple[int, int, int, int]
    activations: tuple[int, int, int]
    description: str
    qcdq: bool = False  # also export this one as QCDQ


PRECISIONS = (
    Precision("w8a8", (8, 8, 8, 8), (8, 8, 8), "8-bit weights and activations"),
    Precision("w4a4", (4, 4, 4, 4), (4, 4, 4), "4-bit weights and activations", qcdq=True),
    Precision("w2a2", (2, 2, 2, 2), (2, 2, 2), "2-bit weights (ternary: -1, 0, 1) and activations"),
    Precision(
        "w1a1",
        (8, 1, 1, 8),
        (1, 1, 1),
        "binary (+1/-1) conv2 and fc1 weights and binary activations; 8-bit first and last layers",
    ),
    Precision(
        "mixed",
        (8, 4, 2, 8),
        (4, 4, 2),
        "8-bit first and last layers, 4-bit conv2, 2-bit fc1; activations 4, 4, 2 bits",
    ),
)


class WeightPerChannel(Int8WeightPerTensorFloat):
    """Symmetric, narrow-range weights with one scale per output channel."""

    scaling_per_output_channel = True


class BinaryWeights(SignedBinaryWeightPerTensorConst):
    """+-1/8 (Brevitas' default is +-0.1): with a power-of-two scale the sums of a binary
    layer are exact in float32 too, so QONNX's float execution finds the same signs as the
    integer accumulator where a sum is exactly 0 (with 0.1 it finds -1.5e-8 there)."""

    scaling_const = 0.125


def _weights(bits: int) -> dict:
    """Brevitas' weight quantizer for `bits`: 1 is binary (+1/-1, BipolarQuant)."""
    if bits == 1:
        return {"weight_quant": BinaryWeights}
    return {"weight_quant": WeightPerChannel, "weight_bit_width": bits}


class LowBitLeNet(nn.Module):
    """2x (Conv 3x3, ReLU, MaxPool 2), Gemm 64-32-10: the digits LeNet, quantized. The input
    is quantized to 8 bits (signed), the logits to 8 bits; biases are int32 in the
    accumulator's scale. A 1-bit activation is binary (+1/-1: the sign of the layer's
    output, in place of the ReLU)."""

    def __init__(self, precision: Precision):
        super().__init__()
        w, a = precision.weights, precision.activations

        def conv(c_in: int, c_out: int, bits: int) -> nn.Module:
            return qnn.QuantConv2d(
                c_in, c_out, 3, padding=1, bias_quant=Int32Bias, **_weights(bits)
            )

        def linear(c_in: int, c_out: int, bits: int) -> nn.Module:
            return qnn.QuantLinear(c_in, c_out, bias=True, bias_quant=Int32Bias, **_weights(bits))

        def relu(bits: int) -> nn.Module:
            if bits == 1:
                return qnn.QuantIdentity(
                    act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True
                )
            return qnn.QuantReLU(bit_width=bits, return_quant_tensor=True)

        self.features = nn.Sequential(
            qnn.QuantIdentity(bit_width=8, return_quant_tensor=True),
            conv(1, 8, w[0]),
            relu(a[0]),
            nn.MaxPool2d(2),
            conv(8, 16, w[1]),
            relu(a[1]),
            nn.MaxPool2d(2),
        )
        self.fc1 = linear(64, 32, w[2])
        self.relu3 = relu(a[2])
        self.fc2 = linear(32, 10, w[3])
        self.logits = qnn.QuantIdentity(bit_width=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        return self.logits(self.fc2(self.relu3(self.fc1(x))))


def train(precision: Precision, digits: Digits) -> nn.Module:
    """Adam with cosine decay, minibatches of 32 in a seeded order; the model in eval."""
    torch.manual_seed(SEED)
    model = LowBitLeNet(precision)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    steps = EPOCHS * ((len(x) + 31) // 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        permutation = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), 32):
            batch = permutation[start : start + 32]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def torch_accuracy(model: nn.Module, digits: Digits) -> float:
    with torch.no_grad():
        logits = model(torch.from_numpy(digits.x_test))
    return float((logits.argmax(1).numpy() == digits.y_test).mean())


def export(model: nn.Module, path: Path, *, qcdq: bool) -> None:
    """QONNX (dynamo exporter, opset 20 plus QONNX's domain) or QCDQ (the TorchScript
    exporter: the dynamo one refuses a quantized bias in QCDQ), one input "input" of shape
    (1, 1, 8, 8) and one output "output"."""
    example = torch.zeros(1, 1, 8, 8)
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = Path(scratch) / "raw.onnx"
        if qcdq:
            export_onnx_qcdq(model, example, str(raw), dynamo=False, opset_version=13)
        else:
            export_qonnx(model, example, str(raw))
        proto = onnx.load(raw)
    _rename(proto, proto.graph.input[0].name, "input")
    _rename(proto, proto.graph.output[0].name, "output")
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def _rename(proto: onnx.ModelProto, old: str, new: str) -> None:
    for value in (*proto.graph.input, *proto.graph.output):
        if value.name == old:
            value.name = new
    for node in proto.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def qonnx_logits(path: Path, images: np.ndarray) -> np.ndarray:
    """The model's output under QONNX's executor, one image at a time (the files have batch
    1)."""
    model = cleanup_model(ModelWrapper(str(path)))  # names the input and output anew
    source, result = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {source: image[None]})[result] for image in images])


# A row of the accuracy table that write_readme writes.
_ROW = re.compile(
    r"^\| `models/(?P<file>[^`]+)` \| (?P<description>.*) \| (?P<trained>[\d.]+)% \| "
    r"(?P<exported>[\d.]+)% \|$",
    re.MULTILINE,
)


def documented_rows() -> dict[str, tuple[str, str, float, float]]:
    """The rows examples/lowbit.md has now, by file (kept for the precisions `--only` skips)."""
    path = EXAMPLES_DIR / "lowbit.md"
    text = path.read_text() if path.exists() else ""
    return {
        m["file"]: (
            m["file"],
            m["description"],
            float(m["trained"]) / 100,
            float(m["exported"]) / 100,
        )
        for m in _ROW.finditer(text)
    }


def _files(precision: Precision) -> list[tuple[str, bool]]:
    """(file name, QCDQ?) of each form a precision is exported in."""
    forms = [("qonnx", False)] + ([("qcdq", True)] if precision.qcdq else [])
    return [(f"lenet_{precision.name}_{form}.onnx", qcdq) for form, qcdq in forms]


def write_readme(rows: list[tuple[str, str, float, float]], seconds: float) -> None:
    lines = [
        "# Low-bit example models",
        "",
        "The digits LeNet of [README.md](README.md) (2x (Conv 3x3, ReLU, MaxPool 2), Gemm",
        "64-32-10; logits), trained with Brevitas' quantization-aware training at several",
        "precisions and exported as QONNX (`Quant` nodes in the `qonnx.custom_op.general`",
        "domain); `lenet_w4a4_qcdq.onnx` is the 4-bit model again in QCDQ form",
        "(QuantizeLinear -> Clip -> DequantizeLinear, opset 13). Weights are symmetric with",
        "one scale per output channel (narrow range: 2 bits are -1, 0, 1), activations after",
        "each ReLU unsigned, the input and the logits signed 8-bit, biases int32. The binary",
        "layers of `w1a1` have weights of +-1/8 (`BipolarQuant`) and, in place of the ReLU,",
        "the sign of their output (+-1). Input",
        '"input" float32 (1, 1, 8, 8) with pixels in [0, 1], output "output" float32 (1, 10).',
        "",
        "Regenerate with `python examples/make_lowbit_models.py` (needs the `examples` extra",
        f"and qonnx). Brevitas {version('brevitas')}, torch {torch.__version__}, qonnx "
        f"{version('qonnx')};",
        f"{EPOCHS} epochs from scratch, seed {SEED}; about {seconds:.0f} s a precision on 2",
        "cores.",
        "",
        "## Top-1 accuracy on the test split (360 images)",
        "",
        "| file | precision | trained model (torch) | file (QONNX's executor) |",
        "|---|---|---:|---:|",
    ]
    for file, description, trained, exported in rows:
        lines.append(f"| `models/{file}` | {description} | {trained:.2%} | {exported:.2%} |")
    lines += [
        "",
        "Verdigris' golden model gives the same logits as QONNX's executor on every test",
        "image (`tests/compiler/test_lowbit_models.py`).",
        "",
    ]
    (EXAMPLES_DIR / "lowbit.md").write_text("\n".join(lines).replace(" %", "%"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--only", help="train and export only these precisions (comma-separated names)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    start = time.perf_counter()
    digits = load_digits_split()
    chosen = set(args.only.split(",")) if args.only else {p.name for p in PRECISIONS}
    unknown = chosen - {p.name for p in PRECISIONS}
    if unknown:
        parser.error(f"unknown precisions {sorted(unknown)}")
    rows = documented_rows() if args.only else {}
    for precision in PRECISIONS:
        if precision.name not in chosen:
            continue
        model = train(precision, digits)
        trained = torch_accuracy(model, digits)
        for file, qcdq in _files(precision):
            export(model, MODELS_DIR / file, qcdq=qcdq)
            logits = qonnx_logits(MODELS_DIR / file, digits.x_test)
            exported = float((logits.argmax(1) == digits.y_test).mean())
            print(f"{file}: trained {trained:.2%}, file {exported:.2%}", flush=True)
            rows[file] = (file, precision.description, trained, exported)
    order = [file for precision in PRECISIONS for file, _ in _files(precision)]
    seconds = (time.perf_counter() - start) / len(chosen)
    write_readme([rows[file] for file in order if file in rows], seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
