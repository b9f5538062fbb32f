"""The PLL's dividers (boards/pll.py) for the boards' oscillators, and the SoC clocked at its
config's clock_mhz: through the PLL, or refused before yosys when the PLL cannot make it.
The PLL in a real bitstream is in test_bitstream.py."""

import dataclasses

import pytest

from verdigris.boards.build import BuildError, build_bitstream
from verdigris.boards.catalog import board
from verdigris.boards.fit import BOARD_CLOCK_MHZ, board_config
from verdigris.boards.pll import (
    OUTPUT_MHZ,
    PFD_MHZ,
    VCO_MHZ,
    PllError,
    clock_pll,
    pll_settings,
)

# ULX3S and Colorlight, ECPIX-5 (the OrangeCrab's 48 MHz makes fewer of these clocks: its
# board's own config is checked below)
OSCILLATORS_MHZ = (25, 100)


def _within(value, limits):
    return limits[0] <= value <= limits[1]


@pytest.mark.parametrize("oscillator", OSCILLATORS_MHZ)
@pytest.mark.parametrize("clock", (BOARD_CLOCK_MHZ, 10, 12.5, 20, 30, 50, 100, 400))
def test_the_dividers_make_the_clock_exactly_within_the_chips_limits(oscillator, clock):
    s = pll_settings(oscillator, clock)
    assert s.output_mhz == pytest.approx(clock, rel=1e-9)
    assert _within(oscillator / s.input_div, PFD_MHZ)
    assert _within(s.vco_mhz, VCO_MHZ)
    assert s.vco_mhz == pytest.approx(oscillator / s.input_div * s.feedback_div * s.output_div)
    assert 1 <= s.input_div <= 128 and 1 <= s.feedback_div <= 80 and 1 <= s.output_div <= 128


def test_a_clock_the_pll_cannot_make_names_the_nearest_it_makes():
    with pytest.raises(PllError, match=r"cannot make 33\.3 MHz") as raised:
        pll_settings(25, 33.3)
    message = str(raised.value)
    assert "32.1429 MHz or 33.3333 MHz" in message
    for named in (32.1429, 33.3333):  # as printed, the PLL makes them
        assert pll_settings(25, named).output_mhz == pytest.approx(named, rel=1e-5)


@pytest.mark.parametrize("clock", (OUTPUT_MHZ[0] / 2, OUTPUT_MHZ[1] * 2))
def test_a_clock_outside_the_pll_is_refused(clock):
    with pytest.raises(PllError, match=r"the ECP5 PLL makes 3\.125 to 400 MHz"):
        pll_settings(25, clock)


@pytest.mark.parametrize(
    ("name", "clock", "pll"),
    [("ulx3s-25f", 25, None), ("ecpix5-85f", 25, (4, 1, 24)), ("orangecrab-25f", 24, (2, 1, 25))],
)
def test_a_boards_own_config_runs_at_the_fastest_clock_up_to_25_mhz(name, clock, pll):
    config = board_config(board(name))
    assert config.clock_mhz == clock
    settings = clock_pll(board(name).oscillator_mhz, config.clock_mhz)
    dividers = settings and (settings.input_div, settings.feedback_div, settings.output_div)
    assert dividers == pll


def test_a_clock_the_pll_cannot_make_is_refused_before_yosys(tmp_path):
    ecpix5 = board("ecpix5-45f")
    config = dataclasses.replace(board_config(ecpix5), clock_mhz=33.3)
    with pytest.raises(BuildError, match=r"cannot make 33\.3 MHz from the board.s 100 MHz"):
        build_bitstream(ecpix5, config, tmp_path, baud=115_200)
    assert not any(tmp_path.iterdir())
