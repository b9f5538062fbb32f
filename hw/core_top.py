"""The core as a chip top: what Verilator builds and what a board build starts from.

`CoreTop` has the ports of `Core` (hw/core.py), or with ``memories=True`` of
`CoreWithMemories` (hw/core_memories.py), and registers every host input, reset included,
once before the core sees it. The core therefore sees exactly the host's input sequence
`INPUT_LATENCY` cycles later, and the host sees every answer that much later than on a bare
core: `done` falls two cycles after the `run` strobe, `main_rdata` (with memories) comes
two cycles after `main_addr`, and the core leaves reset one cycle after `rst` falls.

The ports are flat, as a chip's pins: the memory interfaces' members are named
`main_read_addr`, `main_read_en`, `main_read_data`, `main_write_addr`, `main_write_data`,
`main_write_en`, `code_addr`, `code_en` and `code_data`. The read data (`main_read_data`,
`code_data`) is not registered: it comes from a memory's output register already, and one
more cycle would break the timing the core counts on (hw/core.py).

Why: on an FPGA, registered inputs keep the pins out of the core's timing paths. In
Verilator they keep the top-level inputs (above all `rst`, which reaches every register's
next-state logic) out of the core's combinational logic, which Verilator would otherwise
settle again on every `eval()` call as well as after each clock edge (`bench/rtl_speed.py`
measures the difference against the bare core).
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.hw.core import Core
from verdigris.hw.core_memories import CoreWithMemories

__all__ = ["INPUT_LATENCY", "CoreTop"]

INPUT_LATENCY = 1

# The members whose inputs come straight from a memory's output register.
_MEMORY_DATA = (("main_read", "data"), ("code", "data"))


class CoreTop(wiring.Component):
    """`Core` (or `CoreWithMemories`) as a chip top: the same ports, every host input
    (``rst`` included) registered once before the core sees it (see the module docstring
    for the timing this adds).

    Parameters
    ----------
    config : AccelConfig
        The configuration of the core inside.
    memories : bool
        Whether main memory and the code memory are inside, in block RAM, loaded through
        the host port (`CoreWithMemories`, for the cocotb bench), or outside, behind the
        memory interfaces (`Core`, for the C++ harness and a board with memories of its own).
    registered : bool
        Whether the host inputs are registered (the default); without, the top is the bare
        core with flat ports and `INPUT_LATENCY` 0 (the baseline of bench/rtl_speed.py).

    Members
    -------
    The inner design's, flat (an interface member ``a.b`` is the port ``a_b``), with the
    same widths.
    """

    def __init__(self, config: AccelConfig, *, memories: bool = False, registered: bool = True):
        self._core = CoreWithMemories(config) if memories else Core(config)
        self.config = config
        self.registered = registered
        core = self._core
        members = {
            "_".join(path): (In if member.flow == In else Out)(member.shape)
            for path, member, _ in core.signature.flatten(core)
        }
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        core = self._core
        if self.registered:
            m.domains.core = ClockDomain()
            m.submodules.core = core = DomainRenamer("core")(core)
            m.d.comb += ClockSignal("core").eq(ClockSignal("sync"))
            # Reset-less, or `rst` would reset this register to 0 instead of passing it on.
            core_reset = Signal(reset_less=True)
            m.d.sync += core_reset.eq(ResetSignal("sync"))
            m.d.comb += ResetSignal("core").eq(core_reset)
        else:
            m.submodules.core = core
        for path, member, value in core.signature.flatten(core):
            pin = getattr(self, "_".join(path))
            if member.flow == Out:
                m.d.comb += pin.eq(value)
            elif self.registered and path not in _MEMORY_DATA:
                m.d.sync += value.eq(pin)
            else:
                m.d.comb += value.eq(pin)
        return m
