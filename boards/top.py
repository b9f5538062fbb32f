"""The SoC on a board's pins: clocked at the config's `clock_mhz` (the board's oscillator
through the PLL, or the oscillator itself when it runs at that clock), the UART resource
carries the serial host port, and the board's LEDs (as many as it has, up to `LEDS`) show
the SoC's status; a board with an RGB LED instead shows errors red, done green and a run
or serial traffic blue."""

from __future__ import annotations

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from verdigris.arch.config import AccelConfig
from verdigris.boards.pll import PllSettings, add_sync_from_pll, clock_pll
from verdigris.boards.soc import LEDS, Soc
from verdigris.boards.uart import baud_divisor

__all__ = ["IDLE_SECONDS", "BoardTop", "board_top"]

# A frame whose bytes stop for this long is given up: longer than the gaps a USB serial
# adapter leaves between its packets (milliseconds), shorter than the host's timeout (1 s).
IDLE_SECONDS = 0.1


def board_top(config: AccelConfig, *, oscillator_hz: float, baud: int) -> BoardTop:
    """The SoC of `config` for a platform whose default clock runs at `oscillator_hz`, its
    UART at `baud`. PllError for a `clock_mhz` the PLL cannot make, ValueError for a rate
    that clock cannot make (both before a design exists)."""
    pll = clock_pll(oscillator_hz / 1e6, config.clock_mhz)
    divisor = baud_divisor(config.clock_mhz * 1e6, baud)
    return BoardTop(config, pll=pll, divisor=divisor)


class BoardTop(Elaboratable):
    """The SoC of `config`, clocked by `pll` (None: the board's oscillator runs at
    `clock_mhz`), its UART `divisor` cycles a bit (`board_top` works both out)."""

    def __init__(self, config: AccelConfig, *, pll: PllSettings | None, divisor: int):
        self.config = config
        self.clock_hz = config.clock_mhz * 1e6
        self.pll = pll
        self.divisor = divisor

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            add_sync_from_pll(m, platform, self.pll)
        idle = round(IDLE_SECONDS * self.clock_hz)
        m.submodules.soc = soc = Soc(self.config, divisor=self.divisor, idle_cycles=idle)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.uart_rx.eq(rx.i), tx.o.eq(soc.uart_tx)]
        shown = {name: soc.leds[index] for index, name in enumerate(LEDS)}
        pins = []
        for index in range(len(LEDS)):
            try:
                pins.append(platform.request("led", index, dir="-"))
            except ResourceError:
                break  # a board with fewer LEDs shows the first ones
        if pins:
            values = list(shown.values())
        else:  # an RGB LED (OrangeCrab, ECPIX-5): red error, green done, blue busy
            try:
                rgb = platform.request("rgb_led", 0, dir="-")
            except ResourceError:
                return m
            pins = [rgb.r, rgb.g, rgb.b]
            busy = shown["running"] | shown["serial activity"]
            values = [shown["error"], shown["done"], busy]
        for index, (pin, value) in enumerate(zip(pins, values, strict=False)):
            m.submodules[f"led_{index}"] = buffer = io.Buffer("o", pin)
            m.d.comb += buffer.o.eq(value)
        return m
