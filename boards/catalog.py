"""The ECP5 boards the toolkit knows: each one's amaranth-boards platform and the name
openFPGALoader knows it by.

A board's name is what `--board` takes (`ulx3s-85f`); a name without its device
(`ulx3s`) is refused with the variants listed, since flashing a bitstream for one device
onto another fails on the board.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BOARDS", "Board", "BoardError", "board"]


class BoardError(ValueError):
    """A board name the toolkit does not know."""


@dataclass(frozen=True)
class Board:
    """One board: `name` (as `--board` takes it), its platform class in
    `amaranth_boards.<module>` (which names the ECP5 device on it) and openFPGALoader's
    `-b` name for it."""

    name: str
    module: str
    platform: str
    openfpgaloader: str

    def platform_class(self) -> type:
        """The amaranth-boards platform class (imported on use: it pulls in Amaranth)."""
        module = __import__(f"amaranth_boards.{self.module}", fromlist=[self.platform])
        return getattr(module, self.platform)

    @property
    def device(self) -> str:
        """The ECP5 part on the board (`LFE5U-85F`)."""
        return self.platform_class().device


def _ulx3s(size: str) -> Board:
    return Board(f"ulx3s-{size}f", "ulx3s", f"ULX3S_{size}F_Platform", "ulx3s")


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        *(_ulx3s(size) for size in ("12", "25", "45", "85")),
        Board("orangecrab-25f", "orangecrab_r0_2", "OrangeCrabR0_2_25FPlatform", "orangeCrab"),
        Board("orangecrab-85f", "orangecrab_r0_2", "OrangeCrabR0_2_85FPlatform", "orangeCrab"),
        Board("ecpix5-45f", "ecpix5", "ECPIX545Platform", "ecpix5"),
        Board("ecpix5-85f", "ecpix5", "ECPIX585Platform", "ecpix5"),
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
