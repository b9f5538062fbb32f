"""The shipped low-bit models (examples/lowbit.md: the digits LeNet trained with Brevitas at
8, 4, 2, 1 (binary) and mixed bits, exported as QONNX and QCDQ): the golden model gives QONNX's own
executor's logits on the test images, its accuracy is the one the page states, and the
instruction simulator runs them as the golden model does. (The RTL runs two of them in
tests/rtl/test_layer_activity_rtl.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from verdigris.api import compile_model, load_model, run, run_program
from verdigris.compiler import ir
from verdigris.verify.reference import run_qonnx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = (
    "lenet_w8a8_qonnx",
    "lenet_w4a4_qonnx",
    "lenet_w4a4_qcdq",
    "lenet_w2a2_qonnx",
    "lenet_w1a1_qonnx",
    "lenet_mixed_qonnx",
)
# The activation types after conv1, conv2 and fc1 (the ReLUs' widths; 8 bits unsigned is
# held as int8).
ACTIVATIONS = {
    "lenet_w8a8_qonnx": (ir.INT8,) * 3,
    "lenet_w4a4_qonnx": (ir.IntType(4, signed=False),) * 3,
    "lenet_w4a4_qcdq": (ir.IntType(4, signed=False),) * 3,
    "lenet_w2a2_qonnx": (ir.IntType(2, signed=False),) * 3,
    "lenet_w1a1_qonnx": (ir.IntType(2),) * 3,  # -1 or +1
    "lenet_mixed_qonnx": (ir.IntType(4, signed=False),) * 2 + (ir.IntType(2, signed=False),),
}


@pytest.fixture(scope="module")
def digits():
    data = np.load(EXAMPLES / "digits_test.npz")
    return data["x"], data["y"]


def _qonnx(path: Path, images: np.ndarray) -> np.ndarray:
    return run_qonnx(path, {"input": images})["output"]


def _documented_accuracy(name: str) -> float:
    """The accuracy under QONNX's executor that examples/lowbit.md states for the file."""
    text = (EXAMPLES / "lowbit.md").read_text()
    row = re.search(rf"\| `models/{name}\.onnx` \|.*\| ([\d.]+)% \|\n", text)
    assert row, f"examples/lowbit.md has no row for {name}"
    return float(row[1]) / 100


@pytest.mark.parametrize("name", MODELS)
def test_golden_is_qonnx_and_as_accurate_as_documented(name, digits):
    x, y = digits
    path = EXAMPLES / "models" / f"{name}.onnx"
    graph = load_model(path)
    logits = run(graph, {"input": x})["output"]
    np.testing.assert_array_equal(logits[:24], _qonnx(path, x[:24]))
    assert (logits.argmax(1) == y).mean() == pytest.approx(_documented_accuracy(name), abs=5e-5)
    convs = [n for n in graph.nodes if isinstance(n, ir.Conv | ir.MatMul)]
    assert tuple(graph.tensors[n.output].dtype for n in convs[:3]) == ACTIVATIONS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_golden_is_qonnx_on_every_test_image(name, digits):
    x, _ = digits
    path = EXAMPLES / "models" / f"{name}.onnx"
    np.testing.assert_array_equal(run(load_model(path), {"input": x})["output"], _qonnx(path, x))


@pytest.mark.parametrize("name", MODELS)
def test_the_instruction_simulator_runs_them_as_golden(name, digits):
    x, _ = digits
    graph = load_model(EXAMPLES / "models" / f"{name}.onnx")
    outputs, _ = run_program(compile_model(graph, "default"), {"input": x[:4]}, backend="isasim")
    np.testing.assert_array_equal(outputs["output"], run(graph, {"input": x[:4]})["output"])
