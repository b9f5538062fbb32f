"""The ECP5 PLL (EHXPLLL) that makes the SoC's clock, the config's `clock_mhz`, from a
board's oscillator.

The output is fed back (FEEDBK_PATH CLKOP), so it runs at
`input / CLKI_DIV * CLKFB_DIV`, and the VCO at that times CLKOP_DIV. The limits are the ones
Project Trellis' ecppll applies: the phase detector between 3.125 and 400 MHz, the VCO
between 400 and 800 MHz, the output between 3.125 and 400 MHz.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = [
    "PllError",
    "PllSettings",
    "add_sync_from_pll",
    "clock_pll",
    "fastest_clock",
    "pll_settings",
]

PFD_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
OUTPUT_MHZ = (3.125, 400.0)
_INPUT_DIVS = range(1, 129)
_FEEDBACK_DIVS = range(1, 81)
_OUTPUT_DIVS = range(1, 129)
# Lattice's tools put the VCO nearest the middle of its range.
_VCO_MID_MHZ = sum(VCO_MHZ) / 2
# A clock within this share of the one asked for is taken: the config's cycles are turned
# into time at `clock_mhz`, so the board must run at it, as closely as its crystal keeps time
# (50 to 100 ppm).
TOLERANCE = 1e-4


class PllError(ValueError):
    """A clock the PLL cannot make from a board's oscillator."""


@dataclass(frozen=True)
class PllSettings:
    """EHXPLLL dividers and the frequencies they give (MHz)."""

    input_div: int
    feedback_div: int
    output_div: int
    input_mhz: float

    @property
    def output_mhz(self) -> float:
        return self.input_mhz / self.input_div * self.feedback_div

    @property
    def vco_mhz(self) -> float:
        return self.output_mhz * self.output_div


def _all_settings(input_mhz: float) -> list[PllSettings]:
    """Every pair of input and feedback dividers the chip allows from `input_mhz`, each with
    the output divider that puts the VCO nearest the middle of its range (Lattice's choice)."""
    found = []
    for input_div in _INPUT_DIVS:
        pfd = input_mhz / input_div
        if not PFD_MHZ[0] <= pfd <= PFD_MHZ[1]:
            continue
        for feedback_div in _FEEDBACK_DIVS:
            out = pfd * feedback_div
            # The VCO runs at out * output_div: the output dividers that put it in range.
            low = max(_OUTPUT_DIVS.start, -int(-VCO_MHZ[0] // out))
            high = min(_OUTPUT_DIVS.stop - 1, int(VCO_MHZ[1] // out))
            if low <= high and OUTPUT_MHZ[0] <= out <= OUTPUT_MHZ[1]:
                output_div = min(range(low, high + 1), key=lambda d: abs(out * d - _VCO_MID_MHZ))
                found.append(PllSettings(input_div, feedback_div, output_div, input_mhz))
    return found


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * b


def pll_settings(input_mhz: float, output_mhz: float) -> PllSettings:
    """The dividers that make `output_mhz` from `input_mhz` exactly, the VCO nearest the middle
    of its range; PllError naming the nearest clocks the PLL makes when none does."""
    if not OUTPUT_MHZ[0] <= output_mhz <= OUTPUT_MHZ[1]:
        raise PllError(
            f"the ECP5 PLL makes {OUTPUT_MHZ[0]:g} to {OUTPUT_MHZ[1]:g} MHz, not {output_mhz:g} MHz"
        )
    found = _all_settings(input_mhz)
    exact = [s for s in found if _same(s.output_mhz, output_mhz)]
    if not exact:
        below = [s.output_mhz for s in found if s.output_mhz < output_mhz]
        above = [s.output_mhz for s in found if s.output_mhz > output_mhz]
        nearest = [f"{f:.6g} MHz" for f in (max(below, default=0), min(above, default=0)) if f]
        raise PllError(
            f"the ECP5 PLL cannot make {output_mhz:g} MHz from the board's {input_mhz:g} MHz "
            f"oscillator; the nearest clocks it makes are {' or '.join(nearest)}: set the "
            "config's clock_mhz to one of them"
        )
    return min(exact, key=lambda s: (abs(s.vco_mhz - _VCO_MID_MHZ), s.input_div))


def fastest_clock(input_mhz: float, limit_mhz: float) -> float:
    """The fastest clock up to `limit_mhz` the board's oscillator (`input_mhz`) gives: itself,
    or through the PLL."""
    if _same(input_mhz, limit_mhz):
        return input_mhz
    clocks = [s.output_mhz for s in _all_settings(input_mhz) if s.output_mhz <= limit_mhz]
    clocks += [input_mhz] if input_mhz <= limit_mhz else []
    if any(_same(clock, limit_mhz) for clock in clocks):
        return limit_mhz  # as asked, not its rounding in the dividers
    return max(clocks)


def clock_pll(input_mhz: float, output_mhz: float) -> PllSettings | None:
    """The PLL that makes `output_mhz` from the oscillator's `input_mhz`, None when the
    oscillator runs at it; PllError as `pll_settings`."""
    return None if _same(input_mhz, output_mhz) else pll_settings(input_mhz, output_mhz)


def add_sync_from_pll(m: Module, platform, s: PllSettings) -> None:
    """Define the `sync` domain in `m` (the design's top: the domain is used below it) at
    `s.output_mhz`, from the platform's default clock through the PLL, held in reset until
    the PLL locks; nextpnr is told its clock."""
    m.submodules.oscillator = oscillator = io.Buffer(
        "i", platform.request(platform.default_clk, dir="-")
    )
    m.domains.sync = sync = ClockDomain("sync")
    locked = Signal()
    m.submodules.pll = Instance(
        "EHXPLLL",
        # The frequencies and loop-filter settings Lattice's tools attach to a PLL, as
        # Trellis' ecppll writes them.
        a_FREQUENCY_PIN_CLKI=f"{s.input_mhz:g}",
        a_FREQUENCY_PIN_CLKOP=f"{s.output_mhz:g}",
        a_ICP_CURRENT="12",
        a_LPF_RESISTOR="8",
        a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED",
        p_INTFB_WAKE="DISABLED",
        p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA",
        p_CLKOP_ENABLE="ENABLED",
        p_CLKI_DIV=s.input_div,
        p_CLKFB_DIV=s.feedback_div,
        p_CLKOP_DIV=s.output_div,
        # CLKOP lags half an output period (in VCO cycles), as Lattice's tools set it.
        p_CLKOP_CPHASE=s.output_div // 2,
        p_CLKOP_FPHASE=0,
        p_FEEDBK_PATH="CLKOP",
        i_CLKI=oscillator.i,
        i_CLKFB=sync.clk,
        i_RST=0,
        i_STDBY=0,
        i_PHASESEL0=0,
        i_PHASESEL1=0,
        i_PHASEDIR=1,
        i_PHASESTEP=1,
        i_PHASELOADREG=1,
        i_PLLWAKESYNC=0,
        i_ENCLKOP=0,
        o_CLKOP=sync.clk,
        o_LOCK=locked,
    )
    platform.add_clock_constraint(sync.clk, s.output_mhz * 1e6)
    m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
