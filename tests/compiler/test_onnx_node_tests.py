"""Conformance: the ONNX backend node tests for quantized ops that ship inside the onnx
wheel (1.22), imported and run on the golden model, against their stored outputs.

These tests feed weights and quantization parameters as graph inputs; they are bound as
constants, since Verdigris compiles weights into the program."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_graph

NODE_TESTS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
CASES = sorted(
    path.name
    for pattern in (
        "test_qlinearconv*",
        "test_qlinearmatmul*",
        "test_convinteger*",
        "test_matmulinteger*",
    )
    for path in NODE_TESTS.glob(pattern)
)


def _tensor(path: Path) -> np.ndarray:
    proto = onnx.TensorProto()
    proto.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(proto)


def test_the_node_tests_are_there():
    # onnx 1.23 stopped shipping them; the pin in pyproject keeps 1.22.
    assert len(CASES) == 12, CASES


@pytest.mark.parametrize("case", CASES)
def test_node_test_matches_stored_output(case):
    folder = NODE_TESTS / case
    model = onnx.load(folder / "model.onnx")
    names = [value.name for value in model.graph.input]
    for data_set in sorted(folder.glob("test_data_set_*")):
        inputs = [_tensor(p) for p in sorted(data_set.glob("input_*.pb"))]
        expected = _tensor(data_set / "output_0.pb")
        graph = import_model(model, constants=dict(zip(names[1:], inputs[1:], strict=True)))
        got = run_graph(graph, {names[0]: inputs[0]}, raw=True)[model.graph.output[0].name]
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
