"""The whole core under Verilator: every shipped model, compiled for tiny and default, runs
on the RTL with outputs bit-identical to golden and isasim, and the RTL's counters equal
isasim's Activity (cycles included)."""

from pathlib import Path

import numpy as np
import pytest

from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_device
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import run_fast, run_on_rtl

pytestmark = pytest.mark.verilator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = sorted(p.name for p in (EXAMPLES / "models").glob("*_q*.onnx"))


# `tiny` is `slow` (46 s): its cores run every shipped model in `make test` through the C++
# harness (test_layer_activity_rtl.py) and as the simulated board (tests/boards).
@pytest.mark.parametrize("config_name", [pytest.param("tiny", marks=pytest.mark.slow), "default"])
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


@pytest.mark.parametrize("runner", ["cocotb", "harness"])
def test_faults_stop_the_core_with_an_error(runner, rtl_build_root, tmp_path):
    """An illegal opcode and an out-of-range DMA address end with the error status within a
    few cycles, instead of hanging (the watchdog would fail the test); after the host's
    reset the core runs the next program (through either host-port driver)."""
    from verdigris.arch.isa import Buffer, Deps, Finish, Load, encode_program
    from verdigris.arch.program import Program

    config = load_config("tiny")
    good = Load(Deps(), Buffer.INP, False, 0, 1, 4, 0, 4)
    past_the_end = Load(Deps(), Buffer.INP, False, 0, 2, 4, config.main_memory_bytes - 4, 4)
    programs = [
        Program(config, (good, Finish(Deps())), (), (), ()),
        Program(config, (good, past_the_end, Finish(Deps())), (), (), ()),
    ]
    illegal = encode_program([good]) + bytes([9]) + bytes(15) + encode_program([Finish(Deps())])
    good_program, bad_program = programs
    # good, out of range, illegal opcode, and good again after the host's reset
    jobs = [(good_program, {}), (bad_program, {}), (good_program, {}), (good_program, {})]
    options = dict(
        expected_cycles=[100] * 4,
        raw_instructions=[None, None, illegal, None],
        build_root=rtl_build_root,
    )
    if runner == "cocotb":
        results = run_on_rtl(jobs, results_dir=tmp_path, **options)
    else:
        results = run_fast(jobs, **options)
    assert [r.error for r in results] == [False, True, True, False]
    assert all(r.activity.cycles < 20 for r in results)


@pytest.mark.slow  # 61 s; `make test` runs the shipped models on tiny_os (test_layer_activity_rtl)
def test_output_stationary_core_runs_the_shipped_models(rtl_build_root):
    """The output-stationary dataflow option: same Programs, same outputs and counters."""
    from verdigris.arch.config import AccelConfig

    config = AccelConfig.from_dict(
        {**load_config("default").to_dict(), "name": "default_os", "dataflow": "os"}
    )
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    jobs, expected = [], []
    for model in MODELS:
        graph = import_model(EXAMPLES / "models" / model)
        program = compile_graph(graph, config)
        inputs = {graph.inputs[0].tensor.name: quantize_input(graph.inputs[0], sample)}
        jobs.append((program, inputs))
        expected.append(run_program(program, inputs))
    results = run_fast(
        jobs, expected_cycles=[a.cycles for _, a in expected], build_root=rtl_build_root
    )
    for model, (outputs, activity), result in zip(MODELS, expected, results, strict=True):
        assert not result.error, model
        for name, value in outputs.items():
            np.testing.assert_array_equal(result.outputs[name], value, err_msg=model)
        assert result.activity == activity, model
