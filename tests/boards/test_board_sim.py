"""The board path without a board: the host runtime over a pseudo-terminal to the Verilated
SoC (core, memories, UART bridge, layer tracker; `--backend board-sim`). Every shipped model
gives isasim's outputs and counters, per layer too, also when the serial line damages,
drops and adds bytes."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.line_faults import DamagingLine, byte_faults, frame_faults
from verdigris.arch.config import load_config
from verdigris.board_runs import SIM_BAUD, run_on_board, simulated_board
from verdigris.cli import main
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program

pytestmark = pytest.mark.verilator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = sorted(p.name for p in (EXAMPLES / "models").glob("*_q*.onnx"))
CONFIG = load_config("tiny")


@pytest.fixture(scope="module")
def board_port(rtl_build_root):
    with simulated_board(CONFIG, build_root=rtl_build_root) as port:
        yield port


def _jobs(models):
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    jobs, expected = [], []
    for model in models:
        graph = import_model(EXAMPLES / "models" / model)
        program = compile_graph(graph, CONFIG)
        inputs = {graph.inputs[0].tensor.name: quantize_input(graph.inputs[0], sample)}
        jobs.append((program, inputs))
        expected.append(run_program(program, inputs))
    return jobs, expected


def _assert_like_isasim(models, expected, results):
    for model, (outputs, activity), result in zip(models, expected, results, strict=True):
        assert not result.error, model
        for name, value in outputs.items():
            np.testing.assert_array_equal(result.outputs[name], value, err_msg=model)
        assert result.activity == activity, model  # per layer too: the layer tracker


def test_every_shipped_model_on_the_simulated_board(board_port):
    jobs, expected = _jobs(MODELS)
    results = run_on_board(jobs, board_port, baud=SIM_BAUD)
    _assert_like_isasim(MODELS, expected, results)


def test_a_damaged_line_is_retried_and_nothing_is_believed_wrong(board_port):
    models = ["lenet_qdq.onnx", "mlp_qop.onnx"]
    jobs, expected = _jobs(models)
    to_board, board_hits = frame_faults(3, rate=0.2)
    to_host, host_hits = byte_faults(4, rate=0.0005)
    results = run_on_board(
        jobs,
        board_port,
        baud=SIM_BAUD,
        timeout=0.3,  # over the simulated bridge's idle time (about 80 ms)
        transport=lambda line: DamagingLine(line, to_board=to_board, to_host=to_host),
    )
    _assert_like_isasim(models, expected, results)
    assert all(board_hits.values()) and all(host_hits.values()), (board_hits, host_hits)


def test_report_prices_the_simulated_boards_counters(rtl_build_root, tmp_path, monkeypatch):
    """`verdigris report --backend board-sim` (the SoC the tests above built, from the
    session's build folder) gives isasim's report, per layer."""
    if rtl_build_root is not None:
        monkeypatch.setenv("VERDIGRIS_BUILD_DIR", str(rtl_build_root))
    model, samples = EXAMPLES / "models" / "lenet_qdq.onnx", EXAMPLES / "digits_samples.npy"
    reports = {}
    for backend in ("isasim", "board-sim"):
        path = tmp_path / f"{backend}.json"
        code = main(
            ["report", str(model), "--input", str(samples), "--config", "tiny",
             "--backend", backend, "--table", "ecp5", "--json", str(path)]
        )  # fmt: skip
        assert code == 0
        reports[backend] = json.loads(path.read_text())
    assert reports["board-sim"] == reports["isasim"]
    assert len(reports["isasim"]["layers"]) > 1
