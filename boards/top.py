"""The SoC on a board's pins: the board's oscillator clocks it, the UART resource carries the
serial host port, and the board's LEDs (as many as it has, up to `LEDS`) show the SoC's
status."""

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from verdigris.arch.config import AccelConfig
from verdigris.boards.soc import LEDS, Soc
from verdigris.boards.uart import baud_divisor

__all__ = ["IDLE_SECONDS", "BoardTop"]

# A frame whose bytes stop for this long is given up: longer than the gaps a USB serial
# adapter leaves between its packets (milliseconds), shorter than the host's timeout (1 s).
IDLE_SECONDS = 0.1


class BoardTop(Elaboratable):
    """The SoC of `config` for a platform, its UART at `baud`; the clock is the platform's
    default clock (`clock_hz`)."""

    def __init__(self, config: AccelConfig, *, clock_hz: float, baud: int):
        self.config = config
        self.clock_hz = clock_hz
        self.baud = baud
        self.divisor = baud_divisor(clock_hz, baud)  # ValueError for a rate out of reach

    def elaborate(self, platform):
        m = Module()
        idle = round(IDLE_SECONDS * self.clock_hz)
        m.submodules.soc = soc = Soc(self.config, divisor=self.divisor, idle_cycles=idle)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.uart_rx.eq(rx.i), tx.o.eq(soc.uart_tx)]
        for index in range(len(LEDS)):
            try:
                led = platform.request("led", index, dir="-")
            except ResourceError:
                break  # a board with fewer LEDs shows the first ones
            m.submodules[f"led_{index}"] = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(soc.leds[index])
        return m
