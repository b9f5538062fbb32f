"""The core as a chip top: what Verilator builds and what a board build starts from.

`CoreTop` has the host port of `Core` (hw/core.py) and registers every input, reset
included, once before the core sees it. The core therefore sees exactly the host's input
sequence `INPUT_LATENCY` cycles later, and the host sees every answer that much later than on
a bare `Core`: `main_rdata` two cycles after `main_addr`, `done` falls two cycles after the
`run` strobe, and the core leaves reset one cycle after `rst` falls.

Why: on an FPGA, registered inputs keep the pins out of the core's timing paths. In
Verilator they keep the top-level inputs (above all `rst`, which reaches every register's
next-state logic) out of the core's combinational logic, which Verilator would otherwise
settle again on every `eval()` call as well as after each clock edge (`bench/rtl_speed.py`
measures the difference against the bare core).
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from verdigris.arch.config import AccelConfig
from verdigris.hw.core import Core

__all__ = ["INPUT_LATENCY", "CoreTop"]

INPUT_LATENCY = 1


class CoreTop(wiring.Component):
    def __init__(self, config: AccelConfig):
        self._core = Core(config)
        self.config = config
        super().__init__(self._core.signature)

    def elaborate(self, _platform):
        m = Module()
        m.domains.core = ClockDomain()
        m.submodules.core = core = DomainRenamer("core")(self._core)
        m.d.comb += ClockSignal("core").eq(ClockSignal("sync"))
        # Reset-less, or `rst` would reset this register to 0 instead of passing it on.
        core_reset = Signal(reset_less=True)
        m.d.sync += core_reset.eq(ResetSignal("sync"))
        m.d.comb += ResetSignal("core").eq(core_reset)
        for name, member in self.signature.members.items():
            if member.flow == In:
                m.d.sync += getattr(core, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(core, name))
        return m
