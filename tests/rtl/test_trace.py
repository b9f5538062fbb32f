"""`run --trace`: an FST waveform of an RTL run, from a separately built traced harness whose
results equal the untraced one's; bad requests are refused before anything runs."""

import struct
from pathlib import Path

import numpy as np
import pytest

from verdigris.api import run_program
from verdigris.arch.config import load_config
from verdigris.cli import main
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.host import quantize_input
from verdigris.sim.rtl.core_runner import run_fast

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODEL = EXAMPLES / "models" / "lenet_qdq.onnx"


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.load(EXAMPLES / "digits_samples.npy")[:1])
    return path


@pytest.fixture
def lenet_tiny():
    graph = import_model(MODEL)
    program = compile_graph(graph, load_config("tiny"))
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    return program, {graph.inputs[0].tensor.name: quantize_input(graph.inputs[0], sample)}


def fst_header(path: Path) -> dict[str, int]:
    """The fields of an FST file's header block (the first block; big-endian integers)."""
    data = path.read_bytes()[:74]
    assert data[0] == 0, "an FST file starts with its header block (type 0)"
    fields = struct.unpack(">QQQdQQQQQb", data[1:74])
    names = ("length", "start", "end", "endian", "memory", "scopes", "vars", "handles")
    return dict(zip((*names, "blocks", "timescale"), fields, strict=True))


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["run", *map(str, args)])
    return code, capsys.readouterr().err


def test_trace_needs_the_rtl_backend(image, tmp_path, capsys):
    code, err = run_cli(
        capsys, MODEL, "--input", image, "--backend", "isasim", "--trace", tmp_path / "w.fst"
    )
    assert code == 2
    assert "--trace needs --backend rtl" in err
    assert not (tmp_path / "w.fst").exists()


@pytest.mark.parametrize("name", ["wave.vcd", "folder.fst"])
def test_trace_names_refused_before_the_run(name, image, tmp_path, capsys, monkeypatch):
    """A folder, or a name that is not .fst, ends in a one-line error before any build."""
    (tmp_path / "folder.fst").mkdir()
    builds = tmp_path / "builds"
    monkeypatch.setenv("VERDIGRIS_BUILD_DIR", str(builds))
    code, err = run_cli(
        capsys, MODEL, "--input", image, "--config", "tiny", "--backend", "rtl",
        "--trace", tmp_path / name,
    )  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and str(tmp_path / name) in err
    assert not builds.exists()


def test_api_trace_needs_the_rtl_backend(lenet_tiny, tmp_path):
    program, _ = lenet_tiny
    with pytest.raises(ValueError, match="needs backend 'rtl'"):
        run_program(program, {}, backend="isasim", trace=tmp_path / "w.fst")


@pytest.mark.verilator
@pytest.mark.slow  # the traced core's build, 40 s: `make test-all`
def test_traced_run_equals_untraced(lenet_tiny, rtl_build_root, tmp_path):
    """Outputs and every Activity counter (cycles included) are the same with the trace, and
    the FST file covers every cycle of the run (2 time units per cycle)."""
    jobs = [lenet_tiny]
    (plain,) = run_fast(jobs, build_root=rtl_build_root)
    trace = tmp_path / "sub" / "lenet.fst"  # its folder is made
    (traced,) = run_fast(jobs, build_root=rtl_build_root, trace=trace)
    assert not plain.error and not traced.error
    assert plain.outputs.keys() == traced.outputs.keys()
    for name, value in plain.outputs.items():
        np.testing.assert_array_equal(traced.outputs[name], value)
    assert traced.activity == plain.activity
    header = fst_header(trace)
    assert header["end"] >= 2 * plain.activity.cycles  # loading and read-back come on top
    assert header["vars"] > 100  # every level of the hierarchy, not just the ports
    assert header["timescale"] == -12  # Verilator's default precision: 1 ps
    assert trace.stat().st_size > 10_000


@pytest.mark.verilator
@pytest.mark.slow
def test_cli_run_writes_the_waveform(image, rtl_build_root, tmp_path, capsys, monkeypatch):
    """`verdigris run MODEL --backend rtl --trace FILE` (the traced build of the test above,
    from the same cache folder)."""
    if rtl_build_root is not None:
        monkeypatch.setenv("VERDIGRIS_BUILD_DIR", str(rtl_build_root))
    trace = tmp_path / "lenet.fst"
    code = main(
        ["run", str(MODEL), "--input", str(image), "--config", "tiny", "--backend", "rtl",
         "--trace", str(trace)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"wrote {trace}" in out
    assert fst_header(trace)["end"] > 0
