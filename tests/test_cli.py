"""The `verdigris` command line: inspect, run, and its errors."""

import io
import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from verdigris.cli import _BuildProgress, _WorkProgress, main
from verdigris.verify.reference import run_onnx_reference

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LENET = EXAMPLES / "models" / "lenet_qop.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"


def test_inspect_prints_ir_and_layer_table(capsys):
    assert main(["inspect", str(EXAMPLES / "models" / "resnet_qdq.onnx")]) == 0
    out = capsys.readouterr().out
    assert "Add        /2/Add" in out
    assert "requant per-channel" in out
    assert "total (per sample)" in out
    assert "533,824" in out  # MACs per image of the tiny ResNet


def test_run_writes_outputs_matching_the_reference(tmp_path, capsys):
    target = tmp_path / "out" / "probabilities.npy"
    assert main(["run", str(LENET), "--input", str(SAMPLES), "--output", str(target)]) == 0
    assert "top-1 per sample" in capsys.readouterr().out
    ours = np.load(target)
    reference = run_onnx_reference(LENET, {"input": np.load(SAMPLES)})["output"]
    np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))
    assert ours.dtype == np.float32 and ours.shape == (8, 10)


def test_run_raw_gives_the_models_integer_type(tmp_path):
    target = tmp_path / "raw.npy"
    assert main(["run", str(LENET), "--input", str(SAMPLES), "--output", str(target), "--raw"]) == 0
    assert np.load(target).dtype == np.uint8  # the QOperator model's activations are uint8


def test_run_refuses_to_overwrite_its_input(tmp_path, capsys):
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.load(SAMPLES))
    before = inputs.read_bytes()
    assert main(["run", str(LENET), "--input", str(inputs), "--output", str(inputs)]) == 2
    assert "refusing to overwrite an input file" in capsys.readouterr().err
    assert inputs.read_bytes() == before


def test_float_model_runs_with_calibration(capsys):
    model = EXAMPLES / "models" / "mlp_fp32.onnx"
    assert main(["run", str(model), "--input", str(SAMPLES), "--calibrate", str(SAMPLES)]) == 0
    assert "output: float32[8, 10]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["inspect", "nowhere.onnx"], "nowhere.onnx: no such file"),
        (["run", str(LENET), "--input", "nowhere.npy"], "nowhere.npy: no such input file"),
        (["compile", str(LENET), "--config", "huge"], "huge: neither a preset"),
        (["inspect", str(EXAMPLES / "models" / "mlp_fp32.onnx")], "float model"),
    ],
)
def test_errors_are_one_line_without_traceback(arguments, message, capsys):
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_wrong_input_shape_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 64), np.float32))
    assert main(["run", str(LENET), "--input", str(bad)]) == 2
    assert (
        "input input has shape (2, 64); the model expects (1, 1, 8, 8)" in capsys.readouterr().err
    )


def test_compile_inspect_and_run_a_program(tmp_path, capsys):
    program = tmp_path / "lenet.vgp"
    assert main(["compile", str(LENET), "--config", "tiny", "-o", str(program)]) == 0
    assert "instructions" in capsys.readouterr().out
    assert main(["inspect", str(program), "--disassemble"]) == 0
    out = capsys.readouterr().out
    assert "memory map:" in out and "util" in out and "gemm" in out and "finish" in out
    target = tmp_path / "out.npy"
    arguments = ["run", str(program), "--input", str(SAMPLES), "--backend", "isasim"]
    assert main([*arguments, "--output", str(target)]) == 0
    assert "cycles" in capsys.readouterr().out
    golden = tmp_path / "golden.npy"
    assert main(["run", str(LENET), "--input", str(SAMPLES), "--output", str(golden)]) == 0
    np.testing.assert_array_equal(np.load(target), np.load(golden))


def test_golden_cannot_run_a_program(tmp_path, capsys):
    program = tmp_path / "mlp.vgp"
    assert main(["compile", str(EXAMPLES / "models" / "mlp_qdq.onnx"), "-o", str(program)]) == 0
    assert main(["run", str(program), "--input", str(SAMPLES)]) == 2
    assert "golden model runs the ONNX model" in capsys.readouterr().err


def test_corrupted_program_is_a_clear_error(tmp_path, capsys):
    program = tmp_path / "bad.vgp"
    program.write_bytes(b"VGRSPROG" + b"\0" * 100)
    assert main(["inspect", str(program)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


BUILD_STEPS = [("verilating", 0, 0)] + [("compiling", done, 4) for done in range(5)]


def test_build_progress_in_a_log_is_one_line_per_step_and_the_end():
    stream = _Stream(tty=False)
    progress = _BuildProgress("rtl: building", stream)
    for step in BUILD_STEPS:
        progress(*step)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "rtl: building: verilating",
        "rtl: building: compiling [........................] 0/4 steps",
        "rtl: building: compiling [########################] 4/4 steps",
    ]


def test_build_progress_in_a_log_shows_a_long_step_every_ten_seconds(monkeypatch):
    clock = iter([0.0, 4.0, 9.0, 12.0, 15.0, 23.0, 30.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stream = _Stream(tty=False)
    progress = _BuildProgress("rtl: building", stream)
    progress("verilating", 0, 0)
    for _ in range(5):  # the builder's heartbeat: the same event again
        progress("compiling", 1, 4)
    progress("built", 1, 1)
    lines = stream.getvalue().splitlines()
    # A line at each new step and 10 s after the last line (at 15 s, not at 9, 12 or 23 s).
    assert [line.rsplit(", ", 1)[-1] for line in lines[:-1]] == ["0 s", "4 s", "15 s"]
    assert lines[-1] == "rtl: building: built in 30 s"
    assert progress.describe() == "core built in 30 s"


def test_build_progress_of_a_cached_core_shows_nothing():
    stream = _Stream(tty=False)
    progress = _BuildProgress("rtl: building", stream)
    progress("cached", 1, 1)
    assert stream.getvalue() == ""
    assert progress.describe() == "cached core" and progress.seconds == 0


def test_build_progress_on_a_terminal_redraws_one_bar():
    stream = _Stream(tty=True)
    progress = _BuildProgress("rtl: building", stream)
    for step in BUILD_STEPS:
        progress(*step)
    text = stream.getvalue()
    assert text.count("\r") == len(BUILD_STEPS)
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "[############............] 2/4 steps" in text


def test_work_progress_shows_nothing_for_short_work(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.9])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stream = _Stream(tty=True)
    progress = _WorkProgress("compiling", "ops", stream)
    for done in (1, 2, 3):
        progress(done, 3)
    assert stream.getvalue() == ""


def test_work_progress_in_a_log_after_two_seconds_every_ten_and_the_end(monkeypatch):
    clock = iter([0.0, 1.0, 2.5, 5.0, 13.0, 14.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stream = _Stream(tty=False)
    progress = _WorkProgress("isasim: simulating", "instructions", stream)
    for done in (8192, 16384, 24576, 32768, 40000):
        progress(done, 40000)
    assert stream.getvalue().splitlines() == [
        "isasim: simulating [#########...............] 16,384/40,000 instructions, 2 s",
        "isasim: simulating [###################.....] 32,768/40,000 instructions, 13 s",
        "isasim: simulating [########################] 40,000/40,000 instructions, 14 s",
    ]


def test_long_compiles_and_simulations_report_progress(monkeypatch):
    from verdigris import api
    from verdigris.sim import isasim

    compiled, simulated = [], []
    program = api.compile_model(
        EXAMPLES / "models" / "lenet_qdq.onnx", progress=lambda *a: compiled.append(a)
    )
    # LeNet's 8 ops and the padded copy of its first conv's input (compiler/backend/unroll.py)
    assert compiled[0] == (0, 9) and compiled[-1] == (9, 9)
    monkeypatch.setattr(isasim, "_PROGRESS_EVERY", 50)  # LeNet is short
    x = np.load(EXAMPLES / "digits_samples.npy")[:2]
    api.run_program(program, {"input": x}, simulation_progress=lambda *a: simulated.append(a))
    total = 2 * len(program.instructions)
    assert len(simulated) > 4 and simulated[-1] == (total, total)
    assert all(a[0] <= b[0] <= total for a, b in itertools.pairwise(simulated))
    assert {t for _, t in simulated} == {total}


def test_verilog_writes_the_registered_top_and_a_summary(tmp_path, capsys):
    assert main(["verilog", "--config", "tiny", "-o", str(tmp_path)]) == 0
    text = (tmp_path / "verdigris_core_tiny.v").read_text()
    assert "module verdigris_core_tiny(" in text
    assert "core_rst" in text  # the reset, registered once by CoreTop before the core
    summary = (tmp_path / "verdigris_core_tiny.txt").read_text()
    assert "4x4 = 16 PEs" in summary
    assert "16 PEs" in capsys.readouterr().out


def test_verilog_of_a_core_with_256_mib_of_main_memory(tmp_path, capsys):
    assert main(["verilog", "--config", "xl", "-o", str(tmp_path)]) == 0
    text = (tmp_path / "verdigris_core_xl.v").read_text()
    assert "output [23:0] main_read_addr;" in text  # 2**24 words of 16 bytes, outside
    assert "input [127:0] code_data;" in text
    assert "outside the core" in capsys.readouterr().out
