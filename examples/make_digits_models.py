"""Regenerate the shipped example models in examples/models/ from the scikit-learn digits set.

Trains four small networks with PyTorch (training only: the files it writes need neither
torch nor scikit-learn), exports each to float ONNX, quantizes each three ways with
onnxruntime's static quantizer, measures top-1 accuracy of every file under onnxruntime and
writes examples/README.md. Everything is seeded, so a rerun on the same package versions
writes the same files.

    python examples/make_digits_models.py

Needs torch and scikit-learn on top of the project's dependencies (under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

EXAMPLES_DIR = Path(__file__).resolve().parent
MODELS_DIR = EXAMPLES_DIR / "models"
OPSET = 13
SEED = 0
CALIBRATION_IMAGES = 200
CALIBRATION_BATCH = 20

log = logging.getLogger("make_digits_models")


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray  # float32 (N, 1, 8, 8) in [0, 1]
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split() -> Digits:
    """The 8x8 digits (pixel values 0..16) scaled to [0, 1], split 80/20, stratified."""
    data = load_digits()
    x = (data.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    return Digits(
        np.ascontiguousarray(x_train),
        np.ascontiguousarray(y_train),
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_test),
    )


# ---------------------------------------------------------------------------------------------
# Networks


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv without bias followed by BatchNorm; the exporter folds the BN into the conv."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    )


def make_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def make_lenet() -> nn.Module:
    """Logits during training; `with_softmax` adds the Softmax for export."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (identity, or 1x1 conv-BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, 3, stride)
        self.relu1 = nn.ReLU()
        self.conv2 = conv_bn(c_out, c_out, 3)
        self.shortcut = (
            conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()
        )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu1(self.conv1(x)))
        return self.relu2(out + self.shortcut(x))


def make_resnet() -> nn.Module:
    return nn.Sequential(
        conv_bn(1, 16, 3),
        nn.ReLU(),
        BasicBlock(16, 16, 1),
        BasicBlock(16, 32, 2),
        nn.AdaptiveAvgPool2d(1),  # exports as GlobalAveragePool
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def depthwise_separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        conv_bn(c_in, c_in, 3, stride, groups=c_in),
        nn.ReLU6(),
        conv_bn(c_in, c_out, 1),
        nn.ReLU6(),
    )


def make_mobilenet() -> nn.Module:
    return nn.Sequential(
        conv_bn(1, 16, 3),
        nn.ReLU6(),
        depthwise_separable(16, 32, 1),
        depthwise_separable(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable[[], nn.Module]
    epochs: int
    lr: float
    softmax_output: bool = False
    description: str = ""


RECIPES = (
    Recipe("mlp", make_mlp, 60, 1e-2, description="Flatten, Gemm 64-64-32-10 with ReLU; logits"),
    Recipe(
        "lenet",
        make_lenet,
        60,
        3e-3,
        softmax_output=True,
        description="2x (Conv 3x3, ReLU, MaxPool 2), Gemm 64-32-10, Softmax; probabilities",
    ),
    Recipe(
        "resnet",
        make_resnet,
        60,
        3e-3,
        description="Conv stem 16, residual block 16, residual block 32 (stride 2, 1x1 "
        "projection), GlobalAveragePool, Gemm; logits",
    ),
    Recipe(
        "mobilenet",
        make_mobilenet,
        60,
        1e-2,
        description="Conv stem 16 + ReLU6, 2 depthwise-separable blocks (dw 3x3 + pw 1x1, "
        "ReLU6 as Clip, one with stride 2), GlobalAveragePool, Gemm; logits",
    ),
)


# ---------------------------------------------------------------------------------------------
# Training and export


def train(recipe: Recipe, digits: Digits, seed: int) -> nn.Module:
    """Adam with cosine decay, minibatches of 32 in a seeded order; returns the model in eval."""
    torch.manual_seed(seed)
    model = recipe.build()
    x = torch.from_numpy(digits.x_train)
    y = torch.from_numpy(digits.y_train)
    steps_per_epoch = (len(x) + 31) // 32
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=recipe.epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(recipe.epochs):
        permutation = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), 32):
            batch = permutation[start : start + 32]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    if recipe.softmax_output:
        model = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    return model


def export_fp32(model: nn.Module) -> onnx.ModelProto:
    """Float ONNX, opset 13, input "input" (batch, 1, 8, 8), output "output" (batch, 10)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) warns that it is deprecated; it needs no
        # onnxscript and folds BatchNorm into Conv in eval mode, which is what we want here.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 8, 8),),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    leftover = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if leftover:
        raise RuntimeError(f"the exporter left BatchNormalization nodes unfolded: {leftover}")
    onnx.checker.check_model(proto, full_check=True)
    return proto


# ---------------------------------------------------------------------------------------------
# Quantization


class DigitsCalibrationReader(CalibrationDataReader):
    """Feeds the calibration images in fixed batches, in order."""

    def __init__(self, images: np.ndarray, batch: int = CALIBRATION_BATCH):
        self._batches = [images[i : i + batch] for i in range(0, len(images), batch)]
        self._iter: Iterator[np.ndarray] = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {"input": batch}

    def rewind(self) -> None:
        self._iter = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


@dataclass(frozen=True)
class Variant:
    suffix: str
    quant_format: QuantFormat
    activation_type: QuantType
    per_channel: bool
    description: str


# Weights are int8 and symmetric everywhere (the quantizer's default WeightSymmetric=True).
# Every other option stays at onnxruntime's default, which already quantizes Add,
# GlobalAveragePool, Softmax (all inputs and outputs) and MaxPool, Flatten (output reuses the
# input's parameters) in QDQ form, and folds ReLU/Clip into the preceding quantized output.
VARIANTS = (
    Variant(
        "qdq", QuantFormat.QDQ, QuantType.QInt8, True, "QDQ; int8 activations, per-channel weights"
    ),
    Variant(
        "qdq_u8", QuantFormat.QDQ, QuantType.QUInt8, False, "QDQ; uint8 activations, per-tensor"
    ),
    Variant(
        "qop",
        QuantFormat.QOperator,
        QuantType.QUInt8,
        False,
        "QOperator (QLinearConv, com.microsoft QGemm, ...); uint8 activations, per-tensor",
    ),
)


def prune_dead_code(model: onnx.ModelProto) -> int:
    """Remove nodes none of whose outputs is used, then unused initializers; returns how many.

    The quantizer folds Clip into the quantization range of its input but leaves the Constant
    nodes that fed Clip's min and max behind; nothing reads them.
    """
    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    removed = 0
    while True:
        used = {name for node in graph.node for name in node.input} | graph_outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
        removed += len(dead)
    used = {name for node in graph.node for name in node.input} | graph_outputs
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)
        removed += 1
    return removed


def quantize(fp32_path: Path, out_path: Path, variant: Variant, calibration: np.ndarray) -> None:
    quantize_static(
        fp32_path,
        out_path,
        DigitsCalibrationReader(calibration),
        quant_format=variant.quant_format,
        activation_type=variant.activation_type,
        weight_type=QuantType.QInt8,
        per_channel=variant.per_channel,
        calibrate_method=CalibrationMethod.MinMax,
    )
    model = onnx.load(out_path)
    if prune_dead_code(model):
        onnx.save(model, out_path)
    onnx.checker.check_model(model, full_check=True)


# ---------------------------------------------------------------------------------------------
# Measurement and report


def session(path: Path) -> ort.InferenceSession:
    """A CPU session with graph optimizations off, so the file runs as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def top1_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    (scores,) = session(path).run(["output"], {"input": x})
    return float(np.mean(np.argmax(scores, axis=1) == y))


def op_types(path: Path) -> list[str]:
    """Distinct op types of a file in first-seen order, contrib ops prefixed with their domain."""
    seen: dict[str, None] = {}
    for node in onnx.load(path).graph.node:
        contrib = node.domain not in ("", "ai.onnx")
        seen.setdefault(f"{node.domain}.{node.op_type}" if contrib else node.op_type, None)
    return list(seen)


def readme_text(
    accuracies: dict[str, dict[str, float]],
    ops: dict[str, list[str]],
    sizes: dict[str, int],
    n_test: int,
) -> str:
    columns = ["fp32", *(v.suffix for v in VARIANTS)]
    torch_version = torch.__version__.split("+")[0]  # without the local tag such as "+cpu"
    lines = [
        "# Example models",
        "",
        "Small classifiers for the scikit-learn digits set (8x8 grayscale, 10 classes), each as",
        "a float ONNX model and three statically quantized versions. They are the inputs for",
        "Verdigris' tests and demos; each file is a few KB and needs only onnx/onnxruntime.",
        "",
        "| model | network |",
        "|---|---|",
        *(f"| `{r.name}` | {r.description} |" for r in RECIPES),
        "",
        "Every file has one input `input`, float32 `(batch, 1, 8, 8)` with pixels scaled to",
        "[0, 1], and one output `output`, float32 `(batch, 10)`. Opset 13; BatchNorm is folded",
        "into the convolutions and ReLU6 is `Clip(0, 6)`.",
        "",
        "| file | format |",
        "|---|---|",
        "| `models/<name>_fp32.onnx` | float32 |",
        *(f"| `models/<name>_{v.suffix}.onnx` | {v.description} |" for v in VARIANTS),
        "",
        "Weights are int8 and symmetric in every quantized file. They were made with",
        "`onnxruntime.quantization.quantize_static`, MinMax calibration over the first",
        f"{CALIBRATION_IMAGES} training images and every other option at onnxruntime's default:",
        "activations are asymmetric, ReLU and Clip are folded into the quantization range of",
        "the tensor they follow (no Relu/Clip node is left), Add, GlobalAveragePool and Softmax",
        "get quantized inputs and outputs, MaxPool and Flatten after a quantized tensor keep its",
        "parameters, and Softmax outputs use scale 1/256 in the QOperator files. The Constant",
        "nodes that fed the folded Clips are removed afterwards.",
        "",
        f"`digits_test.npz` holds the test split (`x`: float32 `({n_test}, 1, 8, 8)`, `y`: int64",
        "labels) and `digits_samples.npy` its first 8 images. `verdigris.verify.reference` runs",
        "every file with `onnx.reference` (`run_onnx_reference`) or onnxruntime",
        "(`run_onnxruntime`).",
        "",
        "## Top-1 accuracy on the test split",
        "",
        f"onnxruntime {ort.__version__}, CPU, graph optimizations off, {n_test} images.",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for recipe in RECIPES:
        cells = [f"{100 * accuracies[recipe.name][c]:.2f} %" for c in columns]
        lines.append(f"| `{recipe.name}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Operators per file",
        "",
        "| file | bytes | op types |",
        "|---|---:|---|",
    ]
    for recipe in RECIPES:
        for column in columns:
            stem = f"{recipe.name}_{column}"
            lines.append(f"| `{stem}.onnx` | {sizes[stem]} | {', '.join(ops[stem])} |")
    lines += [
        "",
        "## Regenerating",
        "",
        "```console",
        f"$ pip install torch=={torch_version} scikit-learn=={sklearn.__version__}",
        "$ python examples/make_digits_models.py",
        "```",
        "",
        f"Training is seeded (seed {SEED}) and single-threaded and takes under a minute on 2",
        "cores; a rerun with the same package versions writes byte-identical files.",
        f"It was last run with torch {torch_version}, onnx {onnx.__version__}"
        f" and onnxruntime {ort.__version__}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="examples folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The quantizer logs a warning per call recommending its shape-inference pre-processing;
    # these graphs are already fully shaped by the exporter, so keep the output readable.
    logging.getLogger().setLevel(logging.ERROR)
    log.setLevel(logging.INFO)
    ort.set_default_logger_severity(3)  # errors only: no notes about initializers it drops

    # One thread makes the float reductions, and so the trained weights, reproducible.
    torch.set_num_threads(1)
    examples_dir: Path = args.out
    models_dir = examples_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)

    digits = load_digits_split()
    np.savez_compressed(examples_dir / "digits_test.npz", x=digits.x_test, y=digits.y_test)
    np.save(examples_dir / "digits_samples.npy", digits.x_test[:8])
    calibration = digits.x_train[:CALIBRATION_IMAGES]

    accuracies: dict[str, dict[str, float]] = {}
    ops: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for index, recipe in enumerate(RECIPES):
        started = time.perf_counter()
        model = train(recipe, digits, SEED + index)
        fp32_path = models_dir / f"{recipe.name}_fp32.onnx"
        onnx.save(export_fp32(model), fp32_path)
        paths = {"fp32": fp32_path}
        for variant in VARIANTS:
            paths[variant.suffix] = models_dir / f"{recipe.name}_{variant.suffix}.onnx"
            quantize(fp32_path, paths[variant.suffix], variant, calibration)
        accuracies[recipe.name] = {
            column: top1_accuracy(path, digits.x_test, digits.y_test)
            for column, path in paths.items()
        }
        for path in paths.values():
            ops[path.stem] = op_types(path)
            sizes[path.stem] = path.stat().st_size
        cells = ", ".join(f"{c} {100 * a:.2f}%" for c, a in accuracies[recipe.name].items())
        log.info("%-9s %5.1f s  %s", recipe.name, time.perf_counter() - started, cells)

    readme = readme_text(accuracies, ops, sizes, len(digits.y_test))
    (examples_dir / "README.md").write_text(readme)
    log.info("wrote %s and %d models in %s", examples_dir / "README.md", len(sizes), models_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
