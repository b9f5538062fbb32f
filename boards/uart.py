"""An 8N1 UART: a receiver and a transmitter of whole bytes, `divisor` clock cycles a bit.

The receiver takes the line through a two-flop synchronizer, waits half a bit after the
start bit's falling edge, checks the start bit is still low (a glitch is not a byte), then
samples each data bit (least significant first) in the middle of its bit time. A byte whose
stop bit is low is dropped (a framing error): the bridge's CRC and the host's retry deal with
what is lost. The transmitter sends a byte when `valid` and it is idle (`ready`).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "UartReceiver", "UartTransmitter", "baud_divisor"]

MIN_DIVISOR = 4  # clock cycles a bit, at least: the receiver samples in the middle of a bit


def baud_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles a bit for `baud` at `clock_hz`; ValueError when the nearest whole number
    is more than 2% off (a UART tolerates about 4% between the two ends) or too small."""
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR or abs(clock_hz / divisor - baud) > 0.02 * baud:
        raise ValueError(
            f"{baud} baud cannot be made from a {clock_hz / 1e6:g} MHz clock: choose a rate "
            f"near {clock_hz:g} Hz over a whole number of at least {MIN_DIVISOR}"
        )
    return divisor


def _checked(divisor: int) -> int:
    if divisor < MIN_DIVISOR:
        raise ValueError(f"a UART bit takes at least {MIN_DIVISOR} cycles, not {divisor}")
    return divisor


class UartReceiver(wiring.Component):
    """Members: `rx` In(1), the line (idle high); `data` Out(8) and `valid` Out(1), a
    one-cycle strobe for each byte received with its stop bit high."""

    rx: In(1, init=1)
    data: Out(8)
    valid: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _checked(divisor)
        super().__init__()

    def elaborate(self, _platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(range(9))  # data bits sampled so far
        shift = Signal(8)
        m.d.sync += self.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("idle"), m.If(~line):
                m.d.sync += timer.eq(self.divisor // 2 - 1)
                m.next = "start"
            with m.State("start"), m.If(timer == 0):
                with m.If(line):
                    m.next = "idle"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "data"
            with m.State("data"), m.If(timer == 0):
                m.d.sync += [shift.eq(shift >> 1 | line << 7), timer.eq(self.divisor - 1)]
                m.d.sync += bits.eq(bits + 1)
                with m.If(bits == 7):
                    m.next = "stop"
            with m.State("stop"), m.If(timer == 0):
                with m.If(line):
                    m.d.sync += [self.data.eq(shift), self.valid.eq(1)]
                m.next = "idle"  # a low stop bit: the byte is dropped
        return m


class UartTransmitter(wiring.Component):
    """Members: `data` In(8), `valid` In(1), `ready` Out(1): a byte is taken in a cycle with
    both high; `tx` Out(1), the line (idle high)."""

    data: In(8)
    valid: In(1)
    ready: Out(1)
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _checked(divisor)
        super().__init__()

    def elaborate(self, _platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)  # stop, data (MSB first in), start: sent from bit 0
        left = Signal(range(11))  # bits still to send
        # Ready while idle, and in the last cycle of a stop bit: bytes go back to back.
        last = (left == 1) & (timer == 0)
        m.d.comb += [self.ready.eq((left == 0) | last), self.tx.eq(frame[0])]
        with m.If(self.ready & self.valid):
            m.d.sync += [
                frame.eq(self.data << 1 | 1 << 9),
                left.eq(10),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif((left != 0) & (timer == 0)):
            m.d.sync += [frame.eq(frame >> 1 | 1 << 9), left.eq(left - 1)]
            m.d.sync += timer.eq(self.divisor - 1)
        with m.Elif(left != 0):
            m.d.sync += timer.eq(timer - 1)
        return m
