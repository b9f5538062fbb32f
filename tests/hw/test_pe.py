# amaranth: UnusedElaboratable=no
"""The processing element in Amaranth's simulator, against its Python model."""

import pytest
from amaranth.hdl import Module

from verdigris.hw.pe import ProcessingElement
from verdigris.sim.amaranth_sim import simulate_pe
from verdigris.sim.blockmodels import PEInputs, PEModel, random_pe_inputs, wrap_signed


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


def test_pe_weight_shift_and_mac_by_hand():
    # Load weight -3, then multiply 5 by it on top of a partial sum of 100.
    stimulus = [
        PEInputs(w_in=-3, w_load=True),
        PEInputs(a_in=5, psum_in=100),
        PEInputs(a_in=-128, psum_in=0, w_in=7),  # w_load low: the weight stays -3
    ]
    got = simulate_pe(stimulus)
    assert [o.w_out for o in got] == [-3, -3, -3]
    assert got[1].psum_out == 100 + 5 * -3
    assert got[2].psum_out == 384
    assert got[1].a_out == 5 and not got[1].a_zero


def test_pe_accumulator_wraps_like_int32():
    stimulus = [PEInputs(w_in=127, w_load=True), PEInputs(a_in=127, psum_in=2**31 - 1)]
    got = simulate_pe(stimulus)
    assert got[1].psum_out == wrap_signed(2**31 - 1 + 127 * 127, 32) < 0


class _SignFlippedPE(ProcessingElement):
    """A PE with a deliberate bug, to show the random comparison catches one."""

    def elaborate(self, _platform):
        m = Module()
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.psum_out.eq(self.psum_in - self.a_in * self.w_out),
            self.a_zero.eq((self.a_in == 0) | (self.w_out == 0)),
        ]
        with m.If(self.w_load):
            m.d.sync += self.w_out.eq(self.w_in)
        return m


def test_random_comparison_catches_a_wrong_pe(monkeypatch):
    monkeypatch.setattr("verdigris.sim.amaranth_sim.ProcessingElement", _SignFlippedPE)
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
    ],
)
def test_pe_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        ProcessingElement(**kwargs)
