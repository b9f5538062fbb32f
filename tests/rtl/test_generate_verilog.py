"""Generated Verilog does not grow with memory sizes: the core's memories are outside it, and
where a design holds them inside, an all-zero memory gets no initial block
(generate_verilog) and Verilator builds start it at zero."""

import re
import subprocess

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig, load_config
from verdigris.hw.core_top import CoreTop
from verdigris.sim.rtl import verilator
from verdigris.sim.rtl.verilator import build_harness, design_sources, generate_verilog

# One `initial` assignment per memory row, as yosys writes an Amaranth memory's contents.
ROW_INIT = re.compile(r"^\s*\\?[\w.$]+\s*\[\d+\] = ", re.MULTILINE)


class _Rom(wiring.Component):
    """A memory with the given contents and a synchronous read port."""

    def __init__(self, init):
        self.init = init
        super().__init__({"addr": In(4), "data": Out(8)})

    def elaborate(self, _platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=8, depth=16, init=self.init)
        port = mem.read_port()
        m.d.comb += [port.addr.eq(self.addr), self.data.eq(port.data)]
        return m


def test_core_verilog_does_not_grow_with_its_memories():
    tiny = load_config("tiny")
    xl_sized = {"main_memory_bytes": 2**32, "instruction_capacity": 2**24}
    bigger = AccelConfig.from_dict({**tiny.to_dict(), **xl_sized})
    small_text = generate_verilog(CoreTop(tiny), "core")
    big_text = generate_verilog(CoreTop(bigger), "core")
    # Only address widths change: the memories are outside, behind the memory interfaces.
    assert len(big_text) < 1.01 * len(small_text)
    assert "output [29:0] main_read_addr;" in big_text  # 2**30 words of 4 bytes
    assert "output [23:0] code_addr;" in big_text
    assert " main [" not in big_text and " imem [" not in big_text


def test_core_with_memories_inside_does_not_write_them_out_row_by_row():
    tiny = load_config("tiny")
    bigger = AccelConfig.from_dict({**tiny.to_dict(), "main_memory_bytes": 16 * 49152})
    small_text = generate_verilog(CoreTop(tiny, memories=True), "core")
    big_text = generate_verilog(CoreTop(bigger, memories=True), "core")
    assert len(big_text) < 1.01 * len(small_text)
    assert ROW_INIT.search(small_text) is None  # no memory written out row by row
    assert "reg [31:0] main [196607:0];" in big_text  # the memory itself is there


def test_a_memory_with_contents_keeps_them():
    text = generate_verilog(_Rom([7, 0, 9]), "rom")
    assert len(ROW_INIT.findall(text)) == 16
    assert ROW_INIT.search(generate_verilog(_Rom([]), "rom")) is None


def test_design_sources_cover_the_hw_and_arch_modules_the_core_reads():
    names = {f"{path.parent.name}/{path.name}" for path in design_sources()}
    for name in ("hw/core.py", "hw/core_top.py", "arch/config.py", "arch/isa.py"):
        assert name in names
    assert "arch/program.py" not in names  # the hardware never reads a Program


def test_the_design_key_follows_the_sources_not_the_verilog(tmp_path, monkeypatch):
    source = tmp_path / "pe.py"
    source.write_text("WIDTH = 8\n")
    monkeypatch.setattr(verilator, "design_sources", lambda: [source])
    key = verilator._design_key(None, "PE")
    assert verilator._design_key(None, "PE") == key
    assert verilator._design_key(None, "PE, other parameters") != key
    source.write_text("WIDTH = 9\n")
    assert verilator._design_key(None, "PE") != key


READ_ZEROS = """
#include <cstdio>
#include "Vtop.h"
#include "verilated.h"
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop top;
    int sum = 0;
    for (int a = 0; a < 16; ++a) {
        top.addr = a;
        top.clk = 0; top.eval(); top.clk = 1; top.eval();
        sum += top.data;
    }
    std::printf("%d\\n", sum);
    return 0;
}
"""


@pytest.mark.verilator
def test_a_memory_without_an_initial_value_starts_at_zero_in_verilator(tmp_path):
    harness = tmp_path / "main.cpp"
    harness.write_text(READ_ZEROS)
    binary = build_harness(
        generate_verilog(_Rom([]), "rom"), "rom", harness, {}, build_root=tmp_path / "builds"
    )
    assert subprocess.run([binary], capture_output=True, text=True).stdout == "0\n"
