"""Real bitstreams with the open flow (`synth`: minutes of yosys and nextpnr; CI runs the
first two through `make ci-bitstream`): the ulx3s-25f's largest config, built by the CLI and
checked by unpacking it with yowasp-ecpunpack; the PLL that clocks the SoC, in a small
design; and the build is reproducible, byte for byte (`slow` too: two builds)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from verdigris.boards.build import TOOLS, tool_environment
from verdigris.boards.catalog import board
from verdigris.boards.fit import board_config
from verdigris.boards.pll import add_sync_from_pll, pll_settings
from verdigris.sim.rtl.tools import find_tool, not_found

pytestmark = pytest.mark.synth

BOARD = "ulx3s-25f"


def _tools() -> None:
    for command in (*TOOLS.values(), "yowasp-ecpunpack"):
        if find_tool(command) is None:
            pytest.skip(f"{not_found(command)}: run `make install`")


def _build(folder: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "verdigris"), "bitstream", "--board", BOARD]
    return subprocess.run(
        [*command, "-o", str(folder)], capture_output=True, text=True, check=False
    )


def _unpack(folder: Path) -> str:
    """The bitstream in `folder` unpacked by yowasp-ecpunpack: the chip's configuration."""
    unpack = subprocess.run(
        [find_tool("yowasp-ecpunpack"), "top.bit", "unpacked.config"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unpack.returncode == 0, unpack.stderr
    return (folder / "unpacked.config").read_text()


def test_a_real_bitstream_for_a_25f(tmp_path):
    _tools()
    folder = tmp_path / "build"
    result = _build(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    config = board_config(board(BOARD))
    shape = f"{config.rows}x{config.cols}, int8, {config.clock_mhz:g} MHz"
    assert f"building the SoC of '{BOARD}' ({shape})" in result.stdout
    # The ULX3S's 25 MHz oscillator is the config's clock: no PLL.
    assert "the SoC runs at the config's 25 MHz (the board's oscillator)" in result.stdout
    for resource in ("LUT4", "FF", "DSP", "EBR", "Fmax"):
        assert f"  {resource} " in result.stdout
    assert "bitstream: built in" in result.stderr
    assert (folder / "config.toml").read_text() == config.to_toml()
    # The bitstream unpacks into the configuration of the board's device.
    unpacked = _unpack(folder)
    assert unpacked.startswith(f".device {board(BOARD).device}")
    assert unpacked.count(".tile ") > 1000  # a design, not an empty chip
    print(result.stdout)


@pytest.mark.slow
def test_the_same_inputs_give_the_same_bitstream_bytes(tmp_path):
    _tools()
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        assert _build(folder).returncode == 0
    assert (first / "top.bit").read_bytes() == (second / "top.bit").read_bytes()


class _Blink(Elaboratable):
    """A counter on an LED, clocked through the PLL as the SoC is."""

    def __init__(self, settings):
        self.settings = settings

    def elaborate(self, platform):
        m = Module()
        add_sync_from_pll(m, platform, self.settings)
        count = Signal(24)
        m.d.sync += count.eq(count + 1)
        m.submodules.led = led = io.Buffer("o", platform.request("rgb_led", 0, dir="-").r)
        m.d.comb += led.o.eq(count[-1])
        return m


def test_the_pll_clocks_the_design_at_the_configs_clock(tmp_path):
    _tools()
    # From the ECPIX-5's oscillator; 30 MHz has no divider of 1, which the chip stores as 0
    # and ecpunpack leaves out.
    settings = pll_settings(100, 30)
    platform = board("ecpix5-45f").platform_class()()
    options = "--seed 1 --report report.json"
    plan = platform.prepare(_Blink(settings), name="top", nextpnr_opts=options, emit_src=False)
    plan.execute_local(str(tmp_path), env=tool_environment())
    # nextpnr times the PLL's output at 30 MHz, not the oscillator's 100.
    fmax = json.loads((tmp_path / "report.json").read_text())["fmax"]
    assert [round(net["constraint"], 3) for net in fmax.values()] == [30]
    # The chip's PLL holds the dividers (each stored less one).
    unpacked = _unpack(tmp_path)
    for word, value in (
        ("CLKI_DIV", settings.input_div - 1),
        ("CLKFB_DIV", settings.feedback_div - 1),
        ("CLKOP_DIV", settings.output_div - 1),
    ):
        assert f"word: {word} {value:07b}" in unpacked
