"""The ECP5 boards the toolkit knows: each one's amaranth-boards platform and the name
openFPGALoader knows it by.

A board's name is what `--board` takes (`ulx3s-85f`); a name without its device
(`ulx3s`) is refused with the variants listed, since flashing a bitstream for one device
onto another fails on the board.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["BOARDS", "Board", "BoardError", "board"]


class BoardError(ValueError):
    """A board name the toolkit does not know."""


@dataclass(frozen=True)
class Board:
    """One board: `name` (as `--board` takes it), its platform class in `module` (which
    names the ECP5 device on it; amaranth-boards', or ours for a board it lacks) and
    openFPGALoader's `-b` name for it."""

    name: str
    module: str
    platform: str
    openfpgaloader: str

    def platform_class(self) -> type:
        """The amaranth-boards platform class (imported on use: it pulls in Amaranth)."""
        return getattr(importlib.import_module(self.module), self.platform)

    @property
    def device(self) -> str:
        """The ECP5 part on the board (`LFE5U-85F`)."""
        return self.platform_class().device

    @property
    def oscillator_mhz(self) -> float:
        """The board's oscillator (its platform's default clock), MHz."""
        return self.platform_class()().default_clk_frequency / 1e6


def _ulx3s(size: str) -> Board:
    return Board(f"ulx3s-{size}f", "amaranth_boards.ulx3s", f"ULX3S_{size}F_Platform", "ulx3s")


_ORANGECRAB = "verdigris.boards.orangecrab"  # with a serial port on its Feather header
_COLORLIGHT = "verdigris.boards.colorlight"


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        *(_ulx3s(size) for size in ("12", "25", "45", "85")),
        Board("orangecrab-25f", _ORANGECRAB, "OrangeCrabSerial25FPlatform", "orangeCrab"),
        Board("orangecrab-85f", _ORANGECRAB, "OrangeCrabSerial85FPlatform", "orangeCrab"),
        Board("ecpix5-45f", "amaranth_boards.ecpix5", "ECPIX545Platform", "ecpix5"),
        Board("ecpix5-85f", "amaranth_boards.ecpix5", "ECPIX585Platform", "ecpix5"),
        Board("colorlight-i5", _COLORLIGHT, "ColorlightI5Platform", "colorlight-i5"),
        Board("colorlight-i9", _COLORLIGHT, "ColorlightI9Platform", "colorlight-i9"),
    )
}


def board(name: str) -> Board:
    """The board called `name` (any case), or a BoardError listing the known ones."""
    found = BOARDS.get(name.lower())
    if found is not None:
        return found
    variants = [known for known in BOARDS if known.startswith(f"{name.lower()}-")]
    if variants:
        raise BoardError(
            f"board '{name}' comes with several devices: say which, one of {', '.join(variants)}"
        )
    raise BoardError(f"unknown board '{name}'; known boards: {', '.join(BOARDS)}")
