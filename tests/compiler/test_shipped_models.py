"""Every shipped example model, on the whole digits test split: the golden model against the
ONNX reference implementation (onnx.reference, with the com.microsoft ops of
verdigris.verify.reference). Within one LSB everywhere, identical on >= 99.9% of elements,
and the same top-1 class for every sample."""

from pathlib import Path

import numpy as np
import pytest

from verdigris.compiler import ir
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_graph
from verdigris.verify.reference import run_onnx_reference

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The QDQ and QOperator files (the low-bit QONNX ones have tests/compiler/test_lowbit_models.py:
# onnx.reference has no QONNX ops).
FORMATS = ("_qdq.onnx", "_qdq_u8.onnx", "_qop.onnx")
MODELS = sorted(p.name for p in (EXAMPLES / "models").glob("*.onnx") if p.name.endswith(FORMATS))


@pytest.fixture(scope="module")
def digits():
    data = np.load(EXAMPLES / "digits_test.npz")
    return data["x"], data["y"]


def test_all_four_networks_in_three_formats_ship():
    assert len(MODELS) == 12, MODELS


@pytest.mark.parametrize("model", MODELS)
def test_golden_matches_onnx_reference(model, digits):
    x, labels = digits
    path = EXAMPLES / "models" / model
    graph = import_model(path)
    ours = run_graph(graph, {"input": x})["output"]
    reference = run_onnx_reference(path, {"input": x})["output"]

    dequantize = graph.outputs[0].steps[0]
    assert isinstance(dequantize, ir.Dequantize)
    error = np.abs(ours - reference) / dequantize.scale
    assert error.max() <= 1.0 + 1e-3
    assert np.mean(error < 1e-3) >= 0.999
    np.testing.assert_array_equal(ours.argmax(axis=1), reference.argmax(axis=1))
    assert np.mean(ours.argmax(axis=1) == labels) > 0.9
