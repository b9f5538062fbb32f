"""Standalone Verilator builds (the C++ harness path): progress, caching and build errors,
on the PE so that a build takes seconds."""

import subprocess

import pytest

from tests.support.pe import PE_MAIN
from verdigris.hw.pe import ProcessingElement
from verdigris.sim.rtl.verilator import RtlError, build_harness, generate_verilog

pytestmark = pytest.mark.verilator


def _build(tmp_path, source: str, events: list):
    harness = tmp_path / "main.cpp"
    harness.write_text(source)
    return build_harness(
        generate_verilog(ProcessingElement(), "pe"),
        "pe",
        harness,
        {},
        build_root=tmp_path / "builds",
        progress=lambda *event: events.append(event),
    )


def test_a_harness_build_reports_its_steps_and_is_cached(tmp_path):
    events = []
    binary = _build(tmp_path, PE_MAIN, events)
    steps = list(dict.fromkeys(step for step, _, _ in events))  # in order, without repeats
    assert steps == ["generating Verilog", "verilating", "compiling", "built"]
    compiling = [event for event in events if event[0] == "compiling"]
    total = compiling[-1][2]
    assert total >= 3  # the model, the Verilator runtime, the harness, the link
    assert compiling[-1] == ("compiling", total, total)
    done = [count for _, count, _ in compiling]
    assert done == sorted(done)
    assert events[-1] == ("built", 1, 1)
    assert subprocess.run([binary], capture_output=True, text=True).stdout == "25\n"

    events.clear()
    assert _build(tmp_path, PE_MAIN, events) == binary
    assert events == [("cached", 1, 1)]  # reused: nothing to build


def test_a_failing_harness_build_says_why_and_leaves_nothing(tmp_path):
    with pytest.raises(RtlError, match=r"(?s)C\+\+ build .* failed.*error: .undefined_name"):
        _build(tmp_path, PE_MAIN.replace("return 0;", "return undefined_name;"), [])
    assert [p.name for p in (tmp_path / "builds").iterdir()] == []
