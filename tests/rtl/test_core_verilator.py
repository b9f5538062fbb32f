"""The whole core under Verilator: every shipped model, compiled for tiny and default, runs
on the RTL with outputs bit-identical to golden and isasim, and the RTL's counters equal
isasim's Activity (cycles included)."""

from pathlib import Path

import numpy as np
import pytest

from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import quantize_input, run_device
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import run_on_rtl

pytestmark = pytest.mark.verilator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = sorted(p.name for p in (EXAMPLES / "models").glob("*_qdq.onnx"))


@pytest.mark.parametrize("config_name", ["tiny", "default"])
def test_shipped_models_on_rtl(config_name, rtl_build_root, tmp_path):
    config = load_config(config_name)
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    jobs, expected = [], []
    for model in MODELS:
        graph = import_model(EXAMPLES / "models" / model)
        program = compile_graph(graph, config)
        device_input = quantize_input(graph.inputs[0], sample)
        inputs = {graph.inputs[0].tensor.name: device_input}
        golden = run_device(graph, inputs)
        outputs, activity = run_program(program, inputs)
        for binding in program.outputs:
            np.testing.assert_array_equal(outputs[binding.name], golden[binding.name])
        jobs.append((program, inputs))
        expected.append((model, outputs, activity))
    results = run_on_rtl(
        jobs,
        expected_cycles=[a.cycles for _, _, a in expected],
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    for (model, outputs, activity), result in zip(expected, results, strict=True):
        assert not result.error, model
        for name, value in outputs.items():
            np.testing.assert_array_equal(result.outputs[name], value, err_msg=model)
        assert result.activity == activity, model
