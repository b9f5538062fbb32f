# amaranth: UnusedElaboratable=no
"""The systolic array in Amaranth's simulator, against its Python model and GEMM semantics."""

import re

import pytest
from amaranth.hdl import Module, Mux, Signal, Value, signed

from tests.support.array import MisalignedColumnArray
from verdigris.hw.array import ArrayPE, SystolicArray
from verdigris.verify.array import (
    ArrayInputs,
    ArrayModel,
    GemmSpec,
    gemm_stimulus,
    random_array_inputs,
    random_gemm_stimulus,
    simulate_array,
)


def _valid_rows(outputs):
    return tuple(o.p_data for o in outputs if o.p_valid)


def _check_against_model(stimulus, dim, operand_width=8, acc_width=32):
    """The model matches GEMM semantics, and the array matches the model in every cycle."""
    inputs = list(stimulus.inputs)
    want = ArrayModel(dim, operand_width=operand_width, acc_width=acc_width).run(inputs)
    assert _valid_rows(want) == stimulus.rows
    assert sum(o.zero_count for o in want) == stimulus.zero_macs
    got = simulate_array(dim, inputs, operand_width=operand_width, acc_width=acc_width)
    mismatches = [t for t, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not mismatches, (
        f"{len(mismatches)} cycles differ, first {mismatches[0]}: "
        f"got {got[mismatches[0]]}, want {want[mismatches[0]]}"
    )


@pytest.mark.parametrize(
    ("dim", "operand_width", "acc_width"),
    [(2, 8, 32), (4, 8, 32), (8, 8, 32), (2, 8, 16), (8, 8, 16), (4, 4, 8)],
)
def test_array_runs_gemm_sequences_like_the_model(dim, operand_width, acc_width):
    seed = dim * 10 + acc_width
    stimulus = random_gemm_stimulus(seed, dim, 40, operand_width=operand_width, acc_width=acc_width)
    if acc_width < 32:  # the sums must really wrap: a wide accumulator gives other rows
        wide = random_gemm_stimulus(seed, dim, 40, operand_width=operand_width, acc_width=64)
        assert wide.inputs == stimulus.inputs and wide.rows != stimulus.rows
    _check_against_model(stimulus, dim, operand_width, acc_width)


@pytest.mark.parametrize(("dim", "max_pack"), [(2, 2), (4, 1), (4, 3)])
def test_a_packing_array_runs_gemm_sequences_like_the_model(dim, max_pack):
    stimulus = random_gemm_stimulus(dim + max_pack, dim, 40, max_pack=max_pack)
    inputs = list(stimulus.inputs)
    packs = {step.a_pack for step in inputs if step.a_valid}
    assert packs == set(range(max_pack + 1))
    want = ArrayModel(dim).run(inputs)
    assert _valid_rows(want) == stimulus.rows
    got = simulate_array(dim, inputs, dut=SystolicArray(dim, max_pack=max_pack))
    assert got == want
    unconstrained = random_array_inputs(dim, 300, dim, max_pack=max_pack)
    unconstrained += [ArrayInputs()] * (2 * dim + 2)
    got = simulate_array(dim, unconstrained, dut=SystolicArray(dim, max_pack=max_pack))
    assert got == ArrayModel(dim).run(unconstrained)


@pytest.mark.parametrize("dim", [2, 3, 4, 8])
def test_array_matches_model_on_unconstrained_random_cycles(dim):
    # Writes, swaps and rows in any cycle, including shadow writes racing a swap.
    inputs = random_array_inputs(dim, 600, dim)
    inputs += [ArrayInputs()] * (2 * dim + 2)
    assert simulate_array(dim, inputs) == ArrayModel(dim).run(inputs)


def _identity(dim, scale=1):
    return tuple(tuple(scale if r == c else 0 for c in range(dim)) for r in range(dim))


def test_latency_and_full_throughput_by_hand():
    dim = 4
    rows = ((1, 2, 3, 4), (-5, 6, -7, 8), (127, -128, 0, 1))
    stimulus = gemm_stimulus(dim, [GemmSpec(_identity(dim, 2), rows)])
    got = simulate_array(dim, list(stimulus.inputs))
    entered = [t for t, step in enumerate(stimulus.inputs) if step.a_valid]
    assert entered == [4, 5, 6]  # the load takes cycles 0..3
    left = [t for t, out in enumerate(got) if out.p_valid]
    assert left == [t + 2 * dim - 1 for t in entered]
    assert _valid_rows(got) == tuple(tuple(2 * v for v in row) for row in rows)


def test_rows_before_a_swap_keep_the_old_tile():
    # Tile B is loaded while tile A's rows stream; rows without a swap still use A.
    dim = 2
    a_tile, b_tile = _identity(dim, 1), ((0, 3), (5, 0))
    swap = ArrayInputs(a_valid=True, a_data=(1, 2), a_swap=True)
    row = ArrayInputs(a_valid=True, a_data=(1, 2))
    inputs = [
        ArrayInputs(w_en=True, w_row=0, w_data=tuple(a_tile[0])),
        ArrayInputs(w_en=True, w_row=1, w_data=tuple(a_tile[1])),
        swap,  # from here on: A
        row,
        ArrayInputs(),
        # B is written while these rows enter; they still use A.
        ArrayInputs(a_valid=True, a_data=(1, 2), w_en=True, w_row=0, w_data=tuple(b_tile[0])),
        ArrayInputs(a_valid=True, a_data=(1, 2), w_en=True, w_row=1, w_data=tuple(b_tile[1])),
        swap,  # from here on: B
        row,
        *[ArrayInputs()] * 4,
    ]
    got = simulate_array(dim, inputs)
    assert _valid_rows(got) == ((1, 2), (1, 2), (1, 2), (1, 2), (10, 3), (10, 3))
    assert got == ArrayModel(dim).run(inputs)


def test_zero_count_timing_by_hand():
    # One row of zeros into a 2x2 array in cycle 0: PE (r, c) processes it in cycle r + c
    # and is counted two cycles later.
    inputs = [ArrayInputs(a_valid=True, a_data=(0, 0)), *[ArrayInputs()] * 6]
    got = simulate_array(2, inputs)
    assert [o.zero_count for o in got] == [0, 0, 1, 2, 1, 0, 0]


def test_safe_reuse_margin_of_the_early_weight_load():
    """A load may start at the stream start of the GEMM before it (the earliest docs/isa.md's
    early weight load allows after a one-row GEMM): its row r is written right behind the
    swap. One cycle earlier corrupts the GEMM that swapped: every PE takes the new tile."""
    dim = 4
    tiles = [
        tuple(tuple(r * dim + c + 1 + 16 * k for c in range(dim)) for r in range(dim))
        for k in range(2)
    ]
    rows = ((1, 2, -3, 4),)

    def stimulus(idle):
        return gemm_stimulus(dim, [GemmSpec(tiles[0], rows), GemmSpec(tiles[1], rows, idle)])

    safe = stimulus(-1)
    assert safe.starts[1] == dim  # the first GEMM's stream start
    _check_against_model(safe, dim)
    broken = stimulus(-2)
    want = ArrayModel(dim).run(list(broken.inputs))
    assert simulate_array(dim, list(broken.inputs)) == want
    got_rows = _valid_rows(want)
    assert got_rows[0] != broken.rows[0] and got_rows[0] == broken.rows[1]


class _LateSwapPE(ArrayPE):
    """A deliberately broken PE: the swapping element still uses the old active weight."""

    def elaborate(self, _platform):
        m = Module()
        active, shadow = Signal(signed(self.operand_width)), Signal(signed(self.operand_width))
        swap = self.valid_in & self.swap_in
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.valid_out.eq(self.valid_in),
            self.swap_out.eq(swap),
            self.psum_out.eq(self.psum_in + self.a_in * active),
            self.zero.eq(self.valid_in & ((self.a_in == 0) | (active == 0))),
            active.eq(Mux(swap, shadow, active)),
        ]
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_in)
        return m


def test_comparison_catches_a_wrong_deskew():
    stimulus = random_gemm_stimulus(5, 4, 8)
    inputs = list(stimulus.inputs)
    got = simulate_array(4, inputs, dut=MisalignedColumnArray(4))
    assert got != ArrayModel(4).run(inputs)


def test_comparison_catches_a_late_swap(monkeypatch):
    monkeypatch.setattr("verdigris.hw.array.ArrayPE", _LateSwapPE)
    stimulus = random_gemm_stimulus(6, 4, 8)
    got = simulate_array(4, list(stimulus.inputs))
    assert _valid_rows(got) != stimulus.rows


@pytest.mark.parametrize(
    ("dim", "w_row_bits", "zero_count_bits"), [(1, 1, 1), (2, 1, 3), (3, 2, 4), (8, 3, 7)]
)
def test_port_widths(dim, w_row_bits, zero_count_bits):
    array = SystolicArray(dim, operand_width=4, acc_width=12)
    assert array.latency == 2 * dim - 1
    assert len(array.w_row) == w_row_bits
    assert len(array.zero_count) == zero_count_bits
    assert len(Value.cast(array.a_data)) == len(Value.cast(array.w_data)) == 4 * dim
    assert len(Value.cast(array.p_data)) == 12 * dim


def test_one_by_one_array():
    inputs = [
        ArrayInputs(w_en=True, w_row=0, w_data=(-7,)),
        ArrayInputs(a_valid=True, a_data=(3,), a_swap=True),
        *[ArrayInputs()] * 3,
    ]
    got = simulate_array(1, inputs)
    assert got == ArrayModel(1).run(inputs)
    assert _valid_rows(got) == ((-21,),)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, "dim must be a positive integer, not 0"),
        (("4",), {}, "dim must be a positive integer, not '4'"),
        ((True,), {}, "dim must be a positive integer, not True"),
        ((4,), {"operand_width": 1}, "operand_width must be an integer from 2 to 18, not 1"),
        ((4,), {"operand_width": 19}, "operand_width must be an integer from 2 to 18, not 19"),
        (
            (4,),
            {"operand_width": 8, "acc_width": 15},
            "acc_width must be an integer of at least 2 * operand_width = 16, not 15",
        ),
    ],
)
def test_array_rejects_bad_parameters(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SystolicArray(*args, **kwargs)


def test_array_pe_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"^acc_width must be an integer of at least 2 \* "):
        ArrayPE(operand_width=8, acc_width=8)


def test_simulate_array_rejects_a_mismatched_dut():
    message = "dut has dim 2, operand_width 8 and acc_width 32, not 4, 8 and 32"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        simulate_array(4, [], dut=SystolicArray(2))
