# amaranth: UnusedElaboratable=no
"""The processing element in Amaranth's simulator, against its Python model."""

import pytest

from tests.support.pe import SignFlippedPE
from verdigris.hw.pe import ProcessingElement
from verdigris.verify.pe import PEInputs, PEModel, random_pe_inputs, simulate_pe
from verdigris.verify.protocol import wrap_signed


def _model_outputs(stimulus, operand_width, acc_width):
    model = PEModel(operand_width=operand_width, acc_width=acc_width)
    return [model.step(step) for step in stimulus]


@pytest.mark.parametrize(("operand_width", "acc_width"), [(8, 32), (4, 16), (2, 8), (16, 40)])
def test_pe_matches_model_on_random_inputs(operand_width, acc_width):
    stimulus = random_pe_inputs(
        operand_width, 1500, operand_width=operand_width, acc_width=acc_width
    )
    got = simulate_pe(stimulus, operand_width=operand_width, acc_width=acc_width)
    assert got == _model_outputs(stimulus, operand_width, acc_width)


@pytest.mark.parametrize("max_pack", [1, 2, 3])
def test_a_packing_pe_matches_model_at_every_pack(max_pack):
    stimulus = random_pe_inputs(10 + max_pack, 1500, max_pack=max_pack)
    assert {step.pack_in for step in stimulus} == set(range(max_pack + 1))
    got = simulate_pe(stimulus, max_pack=max_pack)
    assert got == _model_outputs(stimulus, 8, 32)


def test_packed_products_by_hand():
    # 0x7F = int4 (-1, 7) and int2 (-1, -1, -1, 1); 0x98 = int4 (-8, -7), int2 (0, -2, 1, -2).
    stimulus = [
        PEInputs(w_in=0x98 - 256, w_load=True),
        PEInputs(a_in=0x7F, valid_in=True, swap_in=True, pack_in=1),
        PEInputs(a_in=0x7F, valid_in=True, pack_in=2),
        PEInputs(a_in=0x7F, valid_in=True, pack_in=0),
    ]
    got = simulate_pe(stimulus, max_pack=2)
    assert got[1].psum_out == -1 * -8 + 7 * -7 and got[1].pack_out == 1
    assert got[2].psum_out == -1 * 0 + -1 * -2 + -1 * 1 + 1 * -2 and got[2].pack_out == 2
    assert got[3].psum_out == 127 * (0x98 - 256)


def test_binary_products_by_hand():
    """Binary bytes (bit 1: +1, bit 0: -1) multiply as 2 * popcount(XNOR) - 8, and a zero
    byte (eight -1) is no zero operand."""
    stimulus = [
        PEInputs(w_in=0x0F, w_load=True),
        PEInputs(a_in=0x3C, valid_in=True, swap_in=True, pack_in=3),  # 4 bits agree
        PEInputs(a_in=0x0F, valid_in=True, pack_in=3),  # all agree
        PEInputs(a_in=0x70 - 256 + 0x80, valid_in=True, pack_in=3),  # 0xF0: none agree
        PEInputs(w_in=0, w_load=True),
        PEInputs(a_in=0, valid_in=True, swap_in=True, pack_in=3),  # -1 * -1, eight times
        PEInputs(a_in=0, valid_in=True, pack_in=2),  # int2: a zero operand
    ]
    got = simulate_pe(stimulus, max_pack=3)
    assert [g.psum_out for g in got[1:4]] == [0, 8, -8]
    assert got[5].psum_out == 8 and not got[5].zero
    assert got[6].psum_out == 0 and got[6].zero


def test_pe_weight_swap_and_mac_by_hand():
    # Load shadow weight -3, swap it in with 5 on top of a partial sum of 100, keep using it.
    stimulus = [
        PEInputs(w_in=-3, w_load=True),
        PEInputs(a_in=5, valid_in=True, swap_in=True, psum_in=100, w_in=7, w_load=True),
        PEInputs(a_in=-128, valid_in=True, psum_in=0),  # no swap: the active weight stays -3
        PEInputs(a_in=2, valid_in=True, swap_in=True),  # swaps in the shadow weight 7
        PEInputs(a_in=0, valid_in=True),
    ]
    got = simulate_pe(stimulus)
    assert got[1].psum_out == 100 + 5 * -3
    assert got[1].a_out == 5 and got[1].valid_out and got[1].swap_out and not got[1].zero
    assert got[2].psum_out == 384 and not got[2].swap_out
    assert got[3].psum_out == 14
    assert got[4].zero


def test_pe_swap_needs_a_valid_element():
    stimulus = [
        PEInputs(w_in=9, w_load=True),
        PEInputs(a_in=1, swap_in=True),  # not valid: no swap, no zero count
        PEInputs(a_in=1, valid_in=True),
    ]
    got = simulate_pe(stimulus)
    assert not got[1].swap_out and not got[1].zero
    assert got[2].psum_out == 0 and got[2].zero


def test_pe_accumulator_wraps_like_int32():
    stimulus = [
        PEInputs(w_in=127, w_load=True),
        PEInputs(a_in=127, valid_in=True, swap_in=True, psum_in=2**31 - 1),
    ]
    got = simulate_pe(stimulus)
    assert got[1].psum_out == wrap_signed(2**31 - 1 + 127 * 127, 32) < 0


def test_random_comparison_catches_a_wrong_pe(monkeypatch):
    monkeypatch.setattr("verdigris.verify.pe.ProcessingElement", SignFlippedPE)
    stimulus = random_pe_inputs(3, 200)
    assert simulate_pe(stimulus) != _model_outputs(stimulus, 8, 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"operand_width": 1}, "operand_width must be an integer from 2 to 18, not 1"),
        ({"operand_width": "8"}, "operand_width must be an integer from 2 to 18, not '8'"),
        (
            {"operand_width": 8, "acc_width": 15},
            "acc_width must be an integer of at least 2 * operand_width = 16, not 15",
        ),
        (
            {"operand_width": 4, "acc_width": 16, "max_pack": 1},
            "max_pack must be 0 to 3, and above 0 only with 8-bit operands, not 1 with 4",
        ),
        ({"max_pack": 4}, "max_pack must be 0 to 3"),
    ],
)
def test_pe_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        ProcessingElement(**kwargs)
