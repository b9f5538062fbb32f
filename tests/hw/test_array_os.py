# amaranth: UnusedElaboratable=no
"""The output-stationary array against the weight-stationary array's contract: the same
compiler-style GEMM sequences give the same result rows in the same cycles, and the same
number of zero-operand MACs."""

import pytest

from verdigris.hw.array_os import OutputStationaryArray
from verdigris.verify.array import (
    ArrayInputs,
    GemmSpec,
    gemm_stimulus,
    random_gemm_stimulus,
    simulate_array,
)


@pytest.mark.parametrize(("dim", "acc_width"), [(2, 32), (4, 32), (8, 32), (4, 16)])
def test_os_array_runs_gemm_sequences_like_the_ws_contract(dim, acc_width):
    stimulus = random_gemm_stimulus(dim * 7 + acc_width, dim, 40, acc_width=acc_width)
    inputs = [*stimulus.inputs, *[ArrayInputs()] * (2 * dim + 2)]
    dut = OutputStationaryArray(dim, acc_width=acc_width)
    got = simulate_array(dim, inputs, acc_width=acc_width, dut=dut)
    entered = [t for t, step in enumerate(inputs) if step.a_valid]
    left = [t for t, out in enumerate(got) if out.p_valid]
    assert left == [t + 2 * dim - 1 for t in entered]
    assert tuple(out.p_data for out in got if out.p_valid) == stimulus.rows
    assert sum(out.zero_count for out in got) == stimulus.zero_macs


@pytest.mark.parametrize(("dim", "max_pack"), [(2, 3), (4, 1)])
def test_a_packing_os_array_runs_gemm_sequences_like_the_ws_contract(dim, max_pack):
    stimulus = random_gemm_stimulus(dim * 3 + max_pack, dim, 40, max_pack=max_pack)
    assert {step.a_pack for step in stimulus.inputs if step.a_valid} == {0, *range(max_pack + 1)}
    inputs = [*stimulus.inputs, *[ArrayInputs()] * (2 * dim + 2)]
    got = simulate_array(dim, inputs, dut=OutputStationaryArray(dim, max_pack=max_pack))
    assert tuple(out.p_data for out in got if out.p_valid) == stimulus.rows
    assert sum(out.zero_count for out in got) == stimulus.zero_macs


def test_os_array_rejects_bad_parameters():
    with pytest.raises(ValueError, match="dim must be an integer of at least 2, not 1"):
        OutputStationaryArray(1)


def test_os_array_safe_reuse_margin_of_the_early_weight_load():
    """As in the weight-stationary array: a load at the previous GEMM's stream start keeps
    both GEMMs right; one cycle earlier corrupts the first."""
    dim = 4
    tiles = [
        tuple(tuple(r * dim + c + 1 + 16 * k for c in range(dim)) for r in range(dim))
        for k in range(2)
    ]
    rows = ((1, 2, -3, 4),)
    for idle, right in ((-1, True), (-2, False)):
        gemms = [GemmSpec(tiles[0], rows), GemmSpec(tiles[1], rows, idle)]
        stimulus = gemm_stimulus(dim, gemms)
        inputs = [*stimulus.inputs, *[ArrayInputs()] * (2 * dim + 2)]
        got = simulate_array(dim, inputs, dut=OutputStationaryArray(dim))
        result = tuple(out.p_data for out in got if out.p_valid)
        assert (result == stimulus.rows) is right
