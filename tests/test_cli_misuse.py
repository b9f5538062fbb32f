"""The `verdigris` command as a new user meets it, run through the installed entry point:
bad files, bad arrays and unusual calls give one-line errors, and no user file is lost.
(Issue #9; each test names the row of the issue it checks.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LENET = EXAMPLES / "models" / "lenet_qdq.onnx"
MLP_FP32 = EXAMPLES / "models" / "mlp_fp32.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"
ENTRY_POINT = Path(sys.executable).parent / "verdigris"


def verdigris(*arguments, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENTRY_POINT), *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and message in errors[0], result.stderr


@pytest.fixture
def work(tmp_path):
    """A folder with a copy of the LeNet model, its compiled program and sample arrays."""
    (tmp_path / "M.onnx").write_bytes(LENET.read_bytes())
    x = np.load(SAMPLES)
    np.save(tmp_path / "x.npy", x)
    assert verdigris("compile", "M.onnx", "-o", "M.vgp", cwd=tmp_path).returncode == 0
    return tmp_path


# ---------------------------------------------------------------- output paths (rows 1, 10, 11)


@pytest.mark.parametrize("target", ["M.onnx", "x.npy", "notes.txt"])
def test_compile_never_overwrites_a_file_that_is_not_a_program(work, target):
    (work / "notes.txt").write_text("my notes\n")
    before = (work / target).read_bytes()
    result = verdigris("compile", "M.onnx", "-o", target, cwd=work)
    assert_one_line_error(result, "must be a .vgp file")
    assert (work / target).read_bytes() == before


def test_compile_refuses_to_overwrite_its_calibration_data(tmp_path):
    calibration = tmp_path / "calib.vgp"  # a .vgp name, so only the input rule can refuse it
    np.save(tmp_path / "c.npy", np.load(SAMPLES))
    calibration.write_bytes((tmp_path / "c.npy").read_bytes())
    result = verdigris("compile", MLP_FP32, "--calibrate", calibration, "-o", calibration)
    assert_one_line_error(result, "refusing to overwrite an input")


@pytest.mark.parametrize("target", ["out.txt", "folder", "noext"])
def test_run_checks_the_output_path_before_running(work, target):
    (work / "folder").mkdir()
    result = verdigris("run", "M.onnx", "--input", "x.npy", "--output", target, cwd=work)
    assert_one_line_error(result, target)
    assert "sample(s) in" not in result.stdout  # refused before the run, not after


def test_compile_makes_missing_folders_and_refuses_a_folder_as_the_program(work):
    assert verdigris("compile", "M.onnx", "-o", "new/dir/y.vgp", cwd=work).returncode == 0
    assert (work / "new" / "dir" / "y.vgp").is_file()
    (work / "somedir").mkdir()
    result = verdigris("compile", "M.onnx", "-o", "somedir", cwd=work)
    assert_one_line_error(result, "somedir: is a directory")
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []


def test_folders_given_as_files_are_refused(work):
    (work / "existing_file").write_text("keep me\n")
    result = verdigris("verilog", "-o", "existing_file", cwd=work)
    assert_one_line_error(result, "existing_file: is a file")
    result = verdigris("compile", "M.onnx", "--dump-dir", "existing_file", cwd=work)
    assert_one_line_error(result, "existing_file: is a file")
    assert (work / "existing_file").read_text() == "keep me\n"


# ---------------------------------------------------------------- inputs (rows 5-7, 17-19, 29)


@pytest.mark.parametrize("backend", ["golden", "isasim", "rtl"])
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (lambda x: (x * 255).astype(np.uint8), "takes float32 values; got uint8"),
        (lambda x: x.astype(np.int8), "got int8"),
        (lambda x: x.astype(np.int64), "got int64"),
        (lambda x: x > 0.5, "got bool"),
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 70, np.nan, x), "NaN at"),
        (lambda x: x[:0], "no samples"),
    ],
)
def test_bad_arrays_are_refused_alike_on_every_backend(work, backend, values, message):
    np.save(work / "bad.npy", values(np.load(work / "x.npy")))
    model = "M.onnx" if backend == "golden" else "M.vgp"
    result = verdigris("run", model, "--input", "bad.npy", "--backend", backend, cwd=work)
    assert_one_line_error(result, message)


def test_the_first_nan_is_located(work):
    x = np.load(work / "x.npy")
    x[1, 0, 2, 3] = np.nan
    np.save(work / "nan.npy", x)
    result = verdigris("run", "M.onnx", "--input", "nan.npy", cwd=work)
    assert_one_line_error(result, "input input contains NaN at index (1, 0, 2, 3)")


def _two_input_model(path: Path) -> None:
    """out = a + b, quantized in QDQ form: the smallest model with two inputs."""
    nodes, inits = [], []
    for name in ("a", "b", "s"):
        inits += [
            numpy_helper.from_array(np.array(0.05, np.float32), f"{name}_scale"),
            numpy_helper.from_array(np.array(0, np.int8), f"{name}_zero"),
        ]
    for name in ("a", "b"):
        nodes += [
            helper.make_node(
                "QuantizeLinear", [name, f"{name}_scale", f"{name}_zero"], [f"{name}q"]
            ),
            helper.make_node(
                "DequantizeLinear", [f"{name}q", f"{name}_scale", f"{name}_zero"], [f"{name}f"]
            ),
        ]
    nodes += [
        helper.make_node("Add", ["af", "bf"], ["sum"]),
        helper.make_node("QuantizeLinear", ["sum", "s_scale", "s_zero"], ["sq"]),
        helper.make_node("DequantizeLinear", ["sq", "s_scale", "s_zero"], ["out"]),
    ]
    shape = ["N", 4, 4, 4]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_batch_sizes_that_differ_are_named(tmp_path):
    _two_input_model(tmp_path / "add.onnx")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "ab.npz",
        a=rng.normal(size=(8, 4, 4, 4)).astype(np.float32),
        b=rng.normal(size=(3, 4, 4, 4)).astype(np.float32),
    )
    for backend in ("golden", "isasim"):
        result = verdigris(
            "run", "add.onnx", "--input", "ab.npz", "--backend", backend, cwd=tmp_path
        )
        assert_one_line_error(result, "batch sizes differ between the inputs (a: 8, b: 3)")


def test_npz_arrays_that_are_not_named_after_the_inputs_are_reported(work):
    x = np.load(work / "x.npy")
    np.savez(work / "other.npz", pixels=x)
    result = verdigris("run", "M.onnx", "--input", "other.npz", cwd=work)
    assert result.returncode == 0
    assert "using array 'pixels' for input 'input'" in result.stderr
    np.savez(work / "extra.npz", input=x, labels=np.arange(len(x)))
    result = verdigris("run", "M.onnx", "--input", "extra.npz", cwd=work)
    assert result.returncode == 0
    assert "ignoring array(s) ['labels']" in result.stderr


def test_paths_that_are_not_what_they_claim(work):
    (work / "folder").mkdir()
    assert_one_line_error(
        verdigris("inspect", "folder", cwd=work), "folder: is a directory; give the .onnx file"
    )
    assert_one_line_error(
        verdigris("run", "M.onnx", "--input", "folder", cwd=work), "folder: is a directory"
    )
    (work / "text.npy").write_text("not an array\n")
    result = verdigris("run", "M.onnx", "--input", "text.npy", cwd=work)
    assert_one_line_error(result, "text.npy: not a .npy or .npz file")
    assert "allow_pickle" not in result.stderr


def test_program_extensions_ignore_case(work):
    (work / "LENET.VGP").write_bytes((work / "M.vgp").read_bytes())
    result = verdigris("inspect", "LENET.VGP", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "memory map:" in result.stdout


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        (lambda x: (x * 255).astype(np.uint8), "calibration data for input 'input' is uint8"),
        (lambda x: np.where(x > 0.9, np.nan, x), "contains NaN at index"),
    ],
)
def test_calibration_data_obeys_the_input_rule(tmp_path, calibration, message):
    np.save(tmp_path / "c.npy", calibration(np.load(SAMPLES)))
    result = verdigris("run", MLP_FP32, "--input", SAMPLES, "--calibrate", tmp_path / "c.npy")
    assert_one_line_error(result, message)


def test_calibrating_a_quantized_model_is_refused(work):
    result = verdigris("run", "M.onnx", "--input", "x.npy", "--calibrate", "x.npy", cwd=work)
    assert_one_line_error(result, "the model is already quantized")


def test_an_ir3_model_whose_initializers_are_not_inputs_imports(work):
    model = onnx.load(work / "M.onnx")
    model.ir_version = 3
    onnx.save(model, work / "ir3.onnx")
    result = verdigris("run", "ir3.onnx", "--input", "x.npy", cwd=work)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- options (rows 9, 20, 21, 24, 30)


def test_a_program_runs_only_on_its_own_config(work):
    result = verdigris(
        "run", "M.vgp", "--input", "x.npy", "--backend", "isasim", "--config", "tiny", cwd=work
    )
    assert_one_line_error(result, "compiled for config 'default', not 'tiny'")
    assert "rows: program 8 vs 4" in result.stderr
    result = verdigris(
        "run", "M.vgp", "--input", "x.npy", "--backend", "isasim", "--config", "nonsense", cwd=work
    )
    assert_one_line_error(result, "nonsense: neither a preset")
    result = verdigris(
        "run", "M.vgp", "--input", "x.npy", "--backend", "isasim", "--config", "default", cwd=work
    )
    assert result.returncode == 0, result.stderr


def test_options_a_command_does_not_use_are_noted(work):
    result = verdigris("run", "M.onnx", "--input", "x.npy", "--config", "tiny", cwd=work)
    assert result.returncode == 0
    assert "note: --config is ignored" in result.stderr
    result = verdigris(
        "run", "M.vgp", "--input", "x.npy", "--backend", "isasim", "--calibrate", "x.npy", cwd=work
    )
    assert result.returncode == 0
    assert "note: --calibrate is ignored" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--board", "ulx3s-25f", "--config", "tiny"], "config 'tiny' does not fit the ulx3s-25f"),
        (["--board", "ulx3s-85f", "--config", "default"], "about 225 block RAMs of its 208"),
        (["--board", "ulx3s-45f", "--baud", "3000000"], "3000000 baud cannot be made from a 25"),
        (["--board", "nope"], "unknown board 'nope'"),
    ],
)
def test_bitstream_refuses_what_cannot_build_before_yosys(arguments, message, tmp_path):
    result = verdigris("bitstream", *arguments, "-o", str(tmp_path / "b"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b" / "top.json").exists()  # yosys never ran


@pytest.mark.parametrize("count", ["-5", "0", "many"])
def test_demo_refuses_a_vector_count_below_one(count):
    result = verdigris("demo", "--vectors", count)
    assert result.returncode == 2 and "argument --vectors" in result.stderr
    assert "cycles match" not in result.stdout


def test_help_shows_defaults_and_the_backends():
    text = verdigris("run", "--help").stdout
    assert "golden: the integer reference model" in " ".join(text.split())
    assert "(default: golden)" in text
    assert "default: the model's name with .vgp" in " ".join(
        verdigris("compile", "--help").stdout.split()
    )
    assert "(default: 2000)" in verdigris("demo", "--help").stdout


# ---------------------------------------------------------------- process (rows 12, 15)


def test_ctrl_c_is_a_one_line_interruption(work):
    # ~32k images: tens of seconds on isasim, so the signal lands in the run, well after the
    # imports (a signal during Python's start-up is not the CLI's to handle).
    many = np.repeat(np.load(work / "x.npy"), 4000, axis=0)
    np.save(work / "many.npy", many)
    process = subprocess.Popen(
        [str(ENTRY_POINT), "run", "M.vgp", "--input", "many.npy", "--backend", "isasim"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(5)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in err and "interrupted" in err


def test_a_closed_pipe_ends_quietly(work):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, like `| head -0`
    process = subprocess.run(
        [str(ENTRY_POINT), "inspect", "M.vgp", "--disassemble"],
        cwd=work,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    os.close(write)
    assert process.stderr == ""
    assert process.returncode == 141


# ---------------------------------------------------------------- reports and API (rows 16, 27)


def test_inspect_and_run_report_one_utilization(work):
    inspected = verdigris("inspect", "M.vgp", cwd=work).stdout
    total = next(line for line in inspected.splitlines() if line.startswith("total"))
    run = verdigris("run", "M.vgp", "--input", "x.npy", "--backend", "isasim", cwd=work).stdout
    assert f"PE utilization {total.split()[-1]}" in run
    assert "MAC slots" not in run


def test_the_api_is_discoverable_and_takes_arrays_for_calibration():
    import verdigris

    for name in ("load_model", "compile_model", "run", "run_program", "program_report"):
        assert name in dir(verdigris)
    samples = np.load(SAMPLES)
    graph = verdigris.load_model(MLP_FP32, calibrate=samples)
    outputs = verdigris.run(graph, {"input": samples})
    from_file = verdigris.run(verdigris.load_model(MLP_FP32, calibrate=SAMPLES), {"input": samples})
    np.testing.assert_array_equal(outputs["output"], from_file["output"])
