"""The SoC a board runs: the core with its memories in block RAM (`CoreWithMemories`), the
UART bridge that serves its host port over a serial line (boards/bridge.py), the layer
tracker that records the counters at each layer boundary (boards/tracker.py) and status
LEDs. A board's platform (boards/catalog.py) gives the pins; this top takes plain signals,
so that the same design runs under Amaranth's simulator and Verilator (`board-sim`).
"""

from amaranth.hdl import Cat, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import COUNTERS
from verdigris.boards.bridge import Bridge
from verdigris.boards.tracker import LayerTracker
from verdigris.boards.uart import UartReceiver, UartTransmitter
from verdigris.hw.core_memories import CoreWithMemories

__all__ = ["LEDS", "TRACKER_TARGETS", "BridgedCore", "Soc"]

# What each LED shows, from LED 0.
LEDS = ("running", "done", "error", "serial activity")
# The layer tracker's targets: Programs of up to 16 layers get per-layer counters (its
# records take two block RAMs).
TRACKER_TARGETS = 16


class BridgedCore(wiring.Component):
    """`CoreWithMemories` and its layer tracker behind the UART bridge, the serial side as
    bytes: the SoC without its UART and LEDs (what the tests simulate a byte a cycle).

    Members
    -------
    rx_data : In(8), rx_valid : In(1); tx_data : Out(8), tx_valid : Out(1), tx_ready : In(1)
        The bridge's byte streams (`Bridge`).
    running, done, error : Out(1)
        The core's.
    activity : Out(1)
        A byte in or out this cycle.
    """

    rx_data: In(8)
    rx_valid: In(1)
    tx_data: Out(8)
    tx_valid: Out(1)
    tx_ready: In(1)
    running: Out(1)
    done: Out(1)
    error: Out(1)
    activity: Out(1)

    def __init__(self, config: AccelConfig, *, idle_cycles: int):
        self.config = config
        self.idle_cycles = idle_cycles
        super().__init__()

    def elaborate(self, _platform):
        m = Module()
        core = CoreWithMemories(self.config)
        shapes = {
            name: member.shape
            for name, member in core.signature.members.items()
            if member.flow is Out
        }
        m.submodules.bridge = bridge = Bridge(
            self.config, shapes, idle_cycles=self.idle_cycles, max_targets=TRACKER_TARGETS
        )
        m.submodules.core = ResetInserter(bridge.core_reset)(core)
        m.submodules.tracker = tracker = LayerTracker(shapes, max_targets=TRACKER_TARGETS)
        # The bridge drives the core's host port and reads its status and counters.
        for name, member in bridge.signature.members.items():
            if hasattr(core, name):
                outer, inner = getattr(bridge, name), getattr(core, name)
                m.d.comb += inner.eq(outer) if member.flow is Out else outer.eq(inner)
        # The tracker watches the core's run and counters; the bridge loads its targets and
        # reads its records.
        m.d.comb += [tracker.start.eq(bridge.run), tracker.done.eq(core.done)]
        for name in COUNTERS:
            m.d.comb += getattr(tracker, name).eq(getattr(core, name))
        for name in ("target_addr", "target_data", "target_we", "record_addr"):
            m.d.comb += getattr(tracker, name).eq(getattr(bridge, name))
        for name in ("record_data", "records", "overrun"):
            m.d.comb += getattr(bridge, name).eq(getattr(tracker, name))
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(bridge, name)
            m.d.comb += inner.eq(outer) if member.flow is In else outer.eq(inner)
        return m


class Soc(wiring.Component):
    """Core, memories, UART bridge, layer tracker and LEDs (see the module docstring).

    Parameters
    ----------
    config : AccelConfig
        The core's config.
    divisor : int
        Clock cycles a UART bit (`verdigris.boards.uart.baud_divisor`).
    idle_cycles : int
        Cycles without a byte after which the bridge gives up a frame; longer than any gap
        the host's serial adapter leaves inside a frame.

    Members
    -------
    uart_rx : In(1), uart_tx : Out(1)
        The serial line, idle high.
    leds : Out(len(LEDS))
        LEDS, active high; the activity LED is stretched to be seen.
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    leds: Out(len(LEDS))

    def __init__(self, config: AccelConfig, *, divisor: int, idle_cycles: int):
        self.config = config
        self.divisor = divisor
        self.idle_cycles = idle_cycles
        super().__init__()

    def elaborate(self, _platform):
        m = Module()
        m.submodules.bridged = bridged = BridgedCore(self.config, idle_cycles=self.idle_cycles)
        m.submodules.rx = rx = UartReceiver(self.divisor)
        m.submodules.tx = tx = UartTransmitter(self.divisor)
        m.d.comb += [
            rx.rx.eq(self.uart_rx),
            bridged.rx_data.eq(rx.data),
            bridged.rx_valid.eq(rx.valid),
            tx.data.eq(bridged.tx_data),
            tx.valid.eq(bridged.tx_valid),
            bridged.tx_ready.eq(tx.ready),
            self.uart_tx.eq(tx.tx),
        ]
        # The activity LED stays on for about a tenth of a second after a byte, at 25 MHz.
        glow = Signal(22)
        with m.If(bridged.activity):
            m.d.sync += glow.eq(-1)
        with m.Elif(glow != 0):
            m.d.sync += glow.eq(glow - 1)
        leds = Cat(bridged.running, bridged.done, bridged.error, glow != 0)
        m.d.comb += self.leds.eq(leds)
        return m
