"""Colorlight i5 and i9: ECP5 modules (LFE5U-25F and LFE5U-45F, BG381) sold for LED panels
and used on their extension board, which amaranth-boards lacks. Written in its style: a
private base holds what the modules share, each variant sets its device and its LED.

Pins are from the modules' published schematics (github.com/wuxx/Colorlight-FPGA-Projects,
i5 v7.0 and i9 v7.2): the 25 MHz oscillator on P3, the button on K18, and the serial port
of the extension board's USB debugger (CH552, CMSIS-DAP) on J17 (FPGA transmits) and H18
(FPGA receives). openFPGALoader loads them as `colorlight-i5` and `colorlight-i9`.
"""

from amaranth.build import Attrs, Clock, Pins, PinsN, Resource
from amaranth.vendor import LatticeECP5Platform
from amaranth_boards.resources import UARTResource

__all__ = ["ColorlightI5Platform", "ColorlightI9Platform"]

_LVCMOS33 = Attrs(IO_TYPE="LVCMOS33")


def _led(pin: str) -> Resource:
    """A module's one user LED (active low)."""
    return Resource("led", 0, PinsN(pin, dir="o"), _LVCMOS33)


class _ColorlightIPlatform(LatticeECP5Platform):
    package = "BG381"
    speed = "6"
    default_clk = "clk25"
    # Tuples: the platform only iterates them, and a class attribute stays unchanged.
    resources = (
        Resource("clk25", 0, Pins("P3", dir="i"), Clock(25e6), _LVCMOS33),
        Resource("button", 0, PinsN("K18", dir="i"), Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
        UARTResource(0, rx="H18", tx="J17", attrs=_LVCMOS33),
    )
    connectors = ()


class ColorlightI5Platform(_ColorlightIPlatform):
    device = "LFE5U-25F"
    resources = (*_ColorlightIPlatform.resources, _led("U16"))


class ColorlightI9Platform(_ColorlightIPlatform):
    device = "LFE5U-45F"
    resources = (*_ColorlightIPlatform.resources, _led("L2"))
