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
    """`Core` as a chip top: the same ports, every input (``rst`` included) registered once
    before the core sees it (see the module docstring for the timing this adds).

    Parameters
    ----------
    config : AccelConfig
        The configuration of the core inside.

    Members
    -------
    run, main_addr, main_wdata, main_we, imem_addr, imem_wdata, imem_we : ``In(...)``
        `Core`'s host-port inputs, with the same names and widths, seen by the core
        `INPUT_LATENCY` cycle later.
    running, done, error, main_rdata : ``Out(...)``
        `Core`'s status and main-memory read data, straight from the core.
    cycles, load_busy_cycles, ..., compute_nops_completed : ``Out(32)`` or ``Out(48)``
        `Core`'s performance and completion counters, named and ordered as
        `verdigris.arch.counters.COUNTERS` (the host-port protocol), straight from the core.
    """

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
