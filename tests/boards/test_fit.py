"""Fitting a board before synthesis (boards/fit.py): the estimates against what yosys and
nextpnr used, the largest config of each board, the refusals, and every board's SoC
elaborated for its platform (Amaranth's build files, without running the tools)."""

import dataclasses
import re
from pathlib import Path

import pytest

from verdigris.arch.config import load_config
from verdigris.boards.build import BuildError, build_bitstream
from verdigris.boards.catalog import BOARDS, Board, board
from verdigris.boards.fit import DEVICES, FitError, board_config, check_fit, needs
from verdigris.boards.top import board_top

DOCS = Path(__file__).resolve().parents[2] / "docs" / "boards.md"


def test_estimates_against_the_builds():
    """DSPs and block RAM as yosys used them (ulx3s-25f's 2x2 config; tiny on an 85F before
    the layer tracker's 2 block RAMs and 2,714 LUT4s); LUT4s within 15 % above nextpnr's
    count (docs/boards.md)."""
    tiny = load_config("tiny")
    built = dataclasses.replace(  # the 2x2 config of the 25F build that was measured
        tiny, name="ulx3s-25f", rows=2, cols=2, main_memory_bytes=16384, instruction_capacity=4096
    )
    tiny, small = needs(tiny), needs(built)
    assert (small.dsp, small.ebr) == (22, 49)
    assert 14_333 <= small.lut4 <= 1.15 * 14_333
    assert (tiny.dsp, tiny.ebr) == (46, 99 + 2)
    assert 16_237 + 2_714 <= tiny.lut4 <= 1.15 * (16_237 + 2_714)
    assert needs(load_config("default")).dsp == 118
    # The 25F and 45F boards' configs as built by bench/fpga.py and `verdigris bitstream`
    # (the OrangeCrab and the ECPIX-5 with the PLL): block RAMs and LUT4s.
    builds = (
        ("ulx3s-25f", 53, 14_875),
        ("ulx3s-25f", 53, 14_809),  # at 25 MHz (the config's clock is in its fingerprint)
        ("orangecrab-25f", 53, 14_805),
        ("ulx3s-45f", 93, 18_932),
        ("ecpix5-45f", 93, 19_024),  # before its RGB LED was wired
        ("ecpix5-45f", 93, 18_988),
    )
    for name, ebr, lut4 in builds:
        estimate = needs(board_config(board(name)))
        assert 0.95 * ebr <= estimate.ebr <= ebr
        assert lut4 <= estimate.lut4 <= 1.15 * lut4


def test_every_board_has_a_largest_config_that_fits_it_or_says_none():
    for name, known in BOARDS.items():
        for bits in (8, 4, 2, 1):
            if DEVICES[known.device].lut4 < 20_000:
                with pytest.raises(FitError, match="not even a 2x2 array fits the ulx3s-12f"):
                    board_config(known, bits)
                continue
            config = board_config(known, bits)
            assert (config.name, config.operand_bits) == (name, bits)
            check_fit(known, config)
            bigger = dataclasses.replace(config, rows=2 * config.rows, cols=2 * config.cols)
            with pytest.raises(FitError):
                check_fit(known, bigger)


def test_the_docs_table_of_largest_configs_is_the_code_s():
    rows = re.findall(
        r"^\| (\d+F) \(`([^`]+)`.*?\| 8, 4, 2, 1 \| (\d+)\u00d7\d+ \| (\d+) KiB \| ([\d,]+) \|",
        DOCS.read_text(),
        re.M,
    )
    assert len(rows) == 3
    for _size, name, dim, kib, instructions in rows:
        for bits in (8, 4, 2, 1):
            config = board_config(board(name), bits)
            assert config.rows == int(dim) and config.main_memory_bytes == 1024 * int(kib)
            assert config.instruction_capacity == int(instructions.replace(",", ""))


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("ulx3s-25f", "tiny", "46 DSPs of its 28 and about 101 block RAMs of its 56; without "
         "--config, `verdigris bitstream --board ulx3s-25f` builds the largest that fits (2x2, "
         "16 KiB of main memory, 4096 instructions)"),
        ("ulx3s-85f", "default", "about 225 block RAMs of its 208"),
        ("ulx3s-12f", "tiny", "no config fits it"),
    ],
)  # fmt: skip
def test_a_config_that_does_not_fit_is_refused_with_what_fits(name, config, message):
    with pytest.raises(FitError) as raised:
        check_fit(board(name), load_config(config))
    assert message in str(raised.value)


def test_a_platform_without_a_serial_port_is_refused_before_yosys(tmp_path):
    # amaranth-boards' own OrangeCrab, without the serial port ours adds on its Feather pins
    bare = Board(
        "orangecrab-bare",
        "amaranth_boards.orangecrab_r0_2",
        "OrangeCrabR0_2_25FPlatform",
        "orangeCrab",
    )
    with pytest.raises(BuildError, match="has no `uart` resource"):
        build_bitstream(bare, board_config(board("orangecrab-25f")), tmp_path, baud=115_200)
    assert not any(tmp_path.iterdir())


# One board of each platform class and size: the SoC of its largest config elaborated with
# its pins (Amaranth writes the RTLIL and the build script, no tool runs).
SERIAL_BOARDS = [n for n in BOARDS if n != "ulx3s-12f"]


@pytest.mark.parametrize("name", SERIAL_BOARDS)
def test_every_board_elaborates_with_its_largest_config(name, tmp_path):
    known = board(name)
    platform = known.platform_class()()
    config = board_config(known)
    top = board_top(config, oscillator_hz=platform.default_clk_frequency, baud=115_200)
    plan = platform.prepare(top, name="top", nextpnr_opts="--seed 1")
    plan.extract(str(tmp_path))
    lpf = (tmp_path / "top.lpf").read_text()
    rtlil = (tmp_path / "top.il").read_text()
    # The SoC runs at the config's clock: through the PLL, constrained at that clock, when
    # the board's oscillator runs at another.
    pll = platform.default_clk_frequency != config.clock_mhz * 1e6
    assert ("EHXPLLL" in rtlil) == pll
    assert (f"{config.clock_mhz * 1e6} HZ" in lpf) or not pll
    uart = platform.lookup("uart", 0)
    for pin in (
        subsignal.ios[0].names[0] for subsignal in uart.ios if subsignal.name in ("rx", "tx")
    ):
        assert f'SITE "{pin}"' in lpf  # the UART is on its pins
    # The status LEDs: the board's first LED, or its RGB LED's three.
    leds = [platform.lookup("led", 0)] if ("led", 0) in platform.resources else []
    leds = leds or [c for c in platform.lookup("rgb_led", 0).ios if c.name in ("r", "g", "b")]
    for led in leds:
        assert f'SITE "{led.ios[0].names[0]}"' in lpf
    assert "--seed 1" in (tmp_path / "build_top.sh").read_text()
    assert (tmp_path / "top.il").stat().st_size > 100_000
