"""A Program runs without the compiler (architecture brief: "everything an executor or the
board needs is in arch/"): in a Python where `verdigris.compiler` cannot be imported, a
compiled .vgp loads, runs on the instruction simulator through the API and through
`verdigris run` (outputs those of a normal run), reports a bad input, and `verdigris
inspect` describes it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.support.program_files import header_of, with_header
from verdigris.api import compile_model, load_model, run_program
from verdigris.arch.program import ProgramError, load_program, save_program

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "examples" / "models" / "lenet_qdq.onnx"
SAMPLES = ROOT / "examples" / "digits_samples.npy"

# Makes every import of verdigris.compiler (and its submodules) fail, as where the compiler
# is not installed; then runs the program as a user would, without it.
SCRIPT = textwrap.dedent(
    """
    import sys

    class NoCompiler:
        def find_spec(self, name, path=None, target=None):
            if name == "verdigris.compiler" or name.startswith("verdigris.compiler."):
                raise ImportError(f"no module named {name!r} (the compiler is absent)")
            return None

    sys.meta_path.insert(0, NoCompiler())

    import numpy as np

    try:
        import verdigris.compiler
    except ImportError:
        pass
    else:
        raise SystemExit("the compiler could be imported")

    from verdigris import cli
    from verdigris.api import run_program
    from verdigris.arch.program import load_program

    program_path, samples, api_out, cli_out, bad = sys.argv[1:]
    program = load_program(program_path)
    outputs, activity = run_program(program, {"input": np.load(samples)}, backend="isasim")
    np.savez(api_out, cycles=activity.cycles, **outputs)
    run = ["run", program_path, "--backend", "isasim", "--input"]
    status = cli.main([*run, samples, "--output", cli_out])
    assert status == 0, status
    assert cli.main([*run, bad]) == 2
    assert cli.main(["inspect", program_path]) == 0
    loaded = sorted(name for name in sys.modules if name.startswith("verdigris.compiler"))
    assert not loaded, loaded
    print("ran without the compiler")
    """
)


@pytest.fixture(scope="module")
def program_file(tmp_path_factory) -> Path:
    return save_program(compile_model(MODEL), tmp_path_factory.mktemp("vgp") / "lenet.vgp")


def test_the_compiled_host_side_is_the_graphs_and_round_trips(program_file):
    graph = load_model(MODEL)
    host = load_program(program_file).host
    assert host.inputs == tuple(graph.inputs) and host.outputs == tuple(graph.outputs)
    assert host.dynamic_batch == graph.dynamic_batch
    # The model's quantized Softmax is a host call between the device and the output's
    # dequantization.
    assert [step.kind for step in host.outputs[0].steps] == ["Dequantize"]
    [call] = load_program(program_file).host_calls
    assert [node.op_type for node in call.compute.nodes] == ["Softmax"]


def test_a_program_runs_with_the_compiler_absent(tmp_path, program_file):
    samples = np.load(SAMPLES)
    want, want_activity = run_program(load_program(program_file), {"input": samples})
    bad = tmp_path / "integers.npy"
    np.save(bad, samples.astype(np.int64))  # a float model refuses integers
    api_out, cli_out = tmp_path / "api.npz", tmp_path / "cli.npy"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, program_file, SAMPLES, api_out, cli_out, bad],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ran without the compiler" in result.stdout
    assert (
        "verdigris run: error: input input: the model takes float32 values; got int64 data"
        in result.stderr
    )
    with np.load(api_out) as got:
        assert sorted(got.files) == sorted(["cycles", *want])
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value)
            assert got[name].dtype == value.dtype
        assert int(got["cycles"]) == want_activity.cycles
    (name,) = want  # LeNet has one output, which the CLI writes as .npy
    np.testing.assert_array_equal(np.load(cli_out), want[name])


def test_a_malformed_host_side_is_refused_naming_the_field(tmp_path, program_file):
    data = program_file.read_bytes()
    header = header_of(data)
    header["host"]["outputs"][0]["steps"][0]["kind"] = "Dequantise"
    path = tmp_path / "bad.vgp"
    path.write_bytes(with_header(data, header))
    with pytest.raises(ProgramError) as info:
        load_program(path)
    assert str(info.value).startswith(
        f"{path}: malformed program: field 'host.outputs[0].steps[0].kind' must be one of "
        "'Dequantize', 'Compute', not 'Dequantise'."
    )
