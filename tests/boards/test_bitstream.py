"""Real bitstreams with the open flow (`synth`: minutes of yosys and nextpnr; CI runs the
first through `make ci-bitstream`): the ulx3s-25f's largest config, built by the CLI and
checked by unpacking it with yowasp-ecpunpack; and the build is reproducible, byte for byte
(`slow` too: two builds)."""

import subprocess
import sys
from pathlib import Path

import pytest

from verdigris.boards.build import TOOLS
from verdigris.boards.catalog import board
from verdigris.boards.fit import board_config
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


def test_a_real_bitstream_for_a_25f(tmp_path):
    _tools()
    folder = tmp_path / "build"
    result = _build(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    config = board_config(board(BOARD))
    assert f"building the SoC of '{BOARD}' ({config.rows}x{config.cols}, int8)" in result.stdout
    for resource in ("LUT4", "FF", "DSP", "EBR", "Fmax"):
        assert f"  {resource} " in result.stdout
    assert "bitstream: built in" in result.stderr
    assert (folder / "config.toml").read_text() == config.to_toml()
    # The bitstream unpacks into the configuration of the board's device.
    unpack = subprocess.run(
        [find_tool("yowasp-ecpunpack"), "top.bit", "unpacked.config"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unpack.returncode == 0, unpack.stderr
    unpacked = (folder / "unpacked.config").read_text()
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
