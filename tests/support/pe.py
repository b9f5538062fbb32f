"""What the PE's tests share: a PE with a deliberate fault, and a C++ main for a Verilator
harness build of the PE."""

from amaranth.hdl import Module, Mux, Signal

from verdigris.hw.pe import ProcessingElement


class SignFlippedPE(ProcessingElement):
    """A PE with a deliberate bug, to show the random comparison catches one."""

    def elaborate(self, _platform):
        m = Module()
        active, shadow = Signal.like(self.a_in), Signal.like(self.a_in)
        swap = self.valid_in & self.swap_in
        weight = Mux(swap, shadow, active)
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.valid_out.eq(self.valid_in),
            self.swap_out.eq(swap),
            self.psum_out.eq(self.psum_in - self.a_in * weight),
            self.zero.eq(self.valid_in & ((self.a_in == 0) | (weight == 0))),
            active.eq(weight),
        ]
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_in)
        return m


# Loads shadow weight 5, then swaps it in and computes psum_out = 10 + 3 * 5.
PE_MAIN = """
#include <cstdio>
#include "Vtop.h"
#include "verilated.h"
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop top;
    auto tick = [&] { top.clk = 0; top.eval(); top.clk = 1; top.eval(); };
    top.rst = 0;
    top.w_in = 5; top.w_load = 1; tick();
    top.w_load = 0; top.valid_in = 1; top.swap_in = 1; top.a_in = 3; top.psum_in = 10; tick();
    std::printf("%d\\n", static_cast<int>(top.psum_out));
    return 0;
}
"""
