"""The Verilator build cache: a cached design is found without generating its Verilog, a
build keeps only what runs, two processes wanting one design build it once, interrupted
builds leave nothing behind, and bench results in
temporary folders are removed unless a test failed."""

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.pe import PE_MAIN, SignFlippedPE
from verdigris.arch.config import load_config
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.hw.pe import ProcessingElement
from verdigris.sim.host import quantize_input
from verdigris.sim.rtl import core_runner
from verdigris.sim.rtl.core_runner import _core_design
from verdigris.sim.rtl.verilator import (
    BUILD_LOG,
    RECORD,
    build_harness,
    build_verilator,
    generate_verilog,
    remove_stale_staging,
)
from verdigris.verify.pe import run_pe_bench

pytestmark = pytest.mark.verilator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PE_IDENTITY = "ProcessingElement() for tests/rtl/test_rtl_cache.py"


def _no_verilog():
    raise AssertionError("a cached build must not generate Verilog")


@pytest.fixture(scope="module")
def pe_harness(tmp_path_factory):
    """The PE with PE_MAIN, built once under an identity: (build root, harness, binary)."""
    folder = tmp_path_factory.mktemp("pe_harness")
    harness = folder / "main.cpp"
    harness.write_text(PE_MAIN)
    root = folder / "builds"
    binary = build_harness(
        lambda: generate_verilog(ProcessingElement(), "pe"),
        "pe",
        harness,
        {},
        identity=PE_IDENTITY,
        build_root=root,
    )
    return root, harness, binary


def test_a_build_keeps_only_its_binary_a_record_and_its_log(pe_harness):
    _, _, binary = pe_harness
    assert sorted(p.name for p in binary.parent.iterdir()) == sorted([BUILD_LOG, RECORD, "harness"])
    record = json.loads((binary.parent / RECORD).read_text())
    assert record["design"]["identity"] == PE_IDENTITY
    assert record["kind"] == "harness" and record["build_seconds"] > 0
    assert subprocess.run([binary], capture_output=True, text=True).stdout == "25\n"


def test_a_cached_build_is_found_without_generating_verilog(pe_harness):
    root, harness, binary = pe_harness
    events = []
    again = build_harness(
        _no_verilog,
        "pe",
        harness,
        {},
        identity=PE_IDENTITY,
        build_root=root,
        progress=lambda *event: events.append(event),
    )
    assert again == binary
    assert events == [("cached", 1, 1)]


def test_a_cocotb_build_keeps_only_its_binary_a_record_and_its_log(rtl_build_root):
    top = "processingelement_8x8_32"  # as run_pe_bench names it: shared with its tests
    build = build_verilator(
        generate_verilog(ProcessingElement(), top), top, build_root=rtl_build_root
    )
    assert sorted(p.name for p in build.build_dir.iterdir()) == sorted([BUILD_LOG, RECORD, top])


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_stale_staging_folders_are_removed(tmp_path):
    key = "core_tiny_harness-0123456789abcdef"
    dead = tmp_path / f".{key}.pid{_dead_pid()}.k2j4h5"
    alive = tmp_path / f".{key}.pid{os.getpid()}.x8y7z6"
    reused_pid = tmp_path / f".{key}.pid{os.getpid()}.a1b2c3"  # alive, but two days old
    old_layout = tmp_path / ".core_tiny_harness-_1u3mci_"  # before the pid was in the name
    young_old_layout = tmp_path / ".core_default_harness-a1b2c3d4"
    other = tmp_path / ".cache_of_something_else"
    build = tmp_path / key
    for folder in (dead, alive, reused_pid, old_layout, young_old_layout, other, build):
        folder.mkdir()
        (folder / "Vtop.o").write_bytes(b"\0" * 100)
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (reused_pid, old_layout, other):
        os.utime(folder, (two_days_ago, two_days_ago))

    assert sorted(remove_stale_staging(tmp_path)) == sorted([dead, reused_pid, old_layout])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, young_old_layout, other, build)
    )


BUILD_AND_REPORT = """
import sys
from pathlib import Path
from verdigris.hw.pe import ProcessingElement
from verdigris.sim.rtl.verilator import build_harness, generate_verilog
build_harness(
    lambda: generate_verilog(ProcessingElement(), "pe"),
    "pe",
    Path(sys.argv[1]),
    {},
    identity="interrupted by a signal",
    build_root=Path(sys.argv[2]),
    progress=lambda step, done, total: print(step, flush=True),
)
"""


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in words:
            found.append(words.replace("\0", " "))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_build_leaves_no_staging_folder(signum, tmp_path):
    harness, root = tmp_path / "main.cpp", tmp_path / "builds"
    harness.write_text(PE_MAIN)
    with subprocess.Popen(
        [sys.executable, "-c", BUILD_AND_REPORT, str(harness), str(root)],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        for line in process.stdout:
            if line.strip() == "compiling":
                break
        time.sleep(0.5)  # make and the compiler are running
        process.send_signal(signum)
        assert process.wait(timeout=60) == -signum  # it still ends by the signal
    assert list(root.iterdir()) == []
    # make and its compilers were stopped with it.
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(root)) == []


def test_two_processes_wanting_one_design_build_it_once(tmp_path):
    harness, root = tmp_path / "main.cpp", tmp_path / "builds"
    harness.write_text(PE_MAIN)
    command = [sys.executable, "-c", BUILD_AND_REPORT, str(harness), str(root)]
    with (
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as first,
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as second,
    ):
        steps = [first.stdout.read().split(), second.stdout.read().split()]
    assert (first.returncode, second.returncode) == (0, 0)
    # One built it (generating Verilog, verilating, compiling); the other waited and found it.
    assert sorted(len(s) > 1 for s in steps) == [False, True]
    assert sorted(s[-1] for s in steps) == ["built", "cached"]
    (build,) = root.iterdir()  # the build alone: no staging folder, no lock file
    assert (build / "harness").exists()


def test_a_cached_core_runs_without_generating_verilog(rtl_build_root, monkeypatch):
    config = load_config("tiny")
    graph = import_model(EXAMPLES / "models" / "mlp_qdq.onnx")
    sample = np.load(EXAMPLES / "digits_samples.npy")[:1]
    program = compile_graph(graph, config)
    jobs = [(program, {graph.inputs[0].tensor.name: quantize_input(graph.inputs[0], sample)})]
    first = core_runner.run_fast(jobs, build_root=rtl_build_root)  # builds it, or the session has
    monkeypatch.setattr(core_runner, "generate_verilog", lambda *_args: _no_verilog())
    events = []
    again = core_runner.run_fast(
        jobs, build_root=rtl_build_root, progress=lambda *event: events.append(event)
    )
    assert events == [("cached", 1, 1)]
    assert again[0].activity == first[0].activity
    for name, value in first[0].outputs.items():
        np.testing.assert_array_equal(again[0].outputs[name], value)


def test_cocotb_results_in_a_temporary_folder_go_unless_a_test_failed(
    rtl_build_root, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert run_pe_bench(vectors=10, build_root=rtl_build_root) == (1, 0)
    assert list(tmp_path.iterdir()) == []

    with caplog.at_level(logging.ERROR, logger="verdigris.sim.rtl.verilator"):
        assert run_pe_bench(SignFlippedPE(), vectors=50, build_root=rtl_build_root) == (1, 1)
    (kept,) = tmp_path.iterdir()
    assert kept.name.startswith("verdigris-cocotb-")
    assert f"kept in {kept}" in caplog.text


def test_the_clock_is_not_part_of_a_simulated_cores_identity():
    config = load_config("tiny")
    faster = dataclasses.replace(config, clock_mhz=config.clock_mhz * 2)
    _, identity = _core_design(config, "core_tiny", design="top")
    _, same = _core_design(faster, "core_tiny", design="top")
    _, other = _core_design(dataclasses.replace(config, queue_depth=4), "core_tiny", design="top")
    _, inside = _core_design(config, "core_tiny", design="memories")
    assert identity == same
    assert identity != other
    assert identity != inside
