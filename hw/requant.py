"""The requantizer on the store path: accumulators to output operands, as docs/isa.md's
STORE."""

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.isa import REQ_ENTRY

__all__ = ["Requantizer"]

# The requant entry's multiplier and shift, as the ISA defines them (REQ_ENTRY); the
# product's split into 16 x 16 DSP products below is written for a 32-bit multiplier.
_MULTIPLIER_BITS = 8 * REQ_ENTRY["multiplier"].itemsize
_SHIFT_BITS = 6  # shifts 0..63

# e = 2p is shifted right by n = 4k + f (f < 4) in two steps: stage 3 takes the coarse window
# c = floor(e / 2**(4k)) in `coarse_bits` bits, stage 4 reads q from c's bits f and up. For
# w-bit outputs w + 5 bits suffice (13 for int8): when c does not fit them,
# |floor(e / 2**n)| >= 2**(w + 4) / 2**3, so |q| >= 2**w and the clamp decides alone, from
# the sign of p (the zero point and the bounds are w-bit). c's sign bit must start a group
# of e, (coarse_bits - 1) % _COARSE_STEP == 0, so w + 5 is rounded up to such a width.
_COARSE_STEP_BITS = 2
_COARSE_STEP = 1 << _COARSE_STEP_BITS
_E_BITS = 65  # e = 2p, the product with one zero bit below it
_GROUPS = -(-_E_BITS // _COARSE_STEP)  # 4-bit groups of e, the last one sign-extended


def _coarse_bits(output_width: int) -> int:
    """Bits of the coarse window c for `output_width`-bit outputs (13 for 8)."""
    return _COARSE_STEP * -(-(output_width + 4) // _COARSE_STEP) + 1


def _round_up(half, sticky, floor_odd):
    """Round half to even: up when the dropped part is above one half (the half bit and a
    1 bit below it), or exactly one half and the floor is odd."""
    return half & (sticky | floor_odd)


class Requantizer(wiring.Component):
    """Requantizes one accumulator row chunk per cycle, each lane with its own requant entry.

    For every lane, exactly the STORE arithmetic of docs/isa.md (and the golden model's
    requantizer, ``verdigris.sim.golden.requantize``):

    - ``x = wrap(acc + bias)``, modulo ``2**acc_width`` (two's complement);
    - ``p = x * multiplier``, exact (signed 32 x signed 32, at most 2**62 in magnitude);
    - ``q = round_half_even(p / 2**shift)``, which for ``shift`` 1..62 is the ISA's
      ``(p + 2**(shift-1) - 1 + ((p >> shift) & 1)) >> shift``; the result is also exact for
      ``shift`` 0 (``q = p``) and 63, which the ISA leaves out;
    - ``y = min(max(q + zero_point, qmin), qmax)``, so ``qmin > qmax`` gives ``qmax``.

    Timing: fixed latency :attr:`LATENCY` = 4 cycles and a throughput of one row per cycle.
    A row presented with ``valid`` high before clock edge ``t`` shows on the outputs, with
    ``result_valid`` high, after edge ``t + 3`` (four edges later), rows leave in order, and
    any pattern of gaps is allowed; there is no back-pressure.

    Outputs of a row: ``raw_result`` is ``x`` for every valid row. ``result`` is ``y`` for a
    valid row with ``raw`` low. On a raw row the requantizing stages do not load (the
    multipliers stay still and the entry need not be valid), so ``result`` keeps the value of
    the last requantized row; while ``result_valid`` is low both outputs hold. The outputs
    are zero after reset (the pipeline's data registers are not reset: nothing reads them
    before a row loads them).

    Ports. Per-lane ports are ``data.ArrayLayout`` arrays of ``lanes`` elements, lane ``i`` in
    bits ``[i*w, (i+1)*w)`` of the flat Verilog port:

    - ``valid`` (in, 1): a row is presented in this cycle.
    - ``raw`` (in, 1): the row is stored raw; only ``x`` is wanted.
    - ``acc``, ``bias`` (in, lanes x signed(acc_width)): accumulators and the entries' biases.
    - ``multiplier`` (in, lanes x signed(32)), ``shift`` (in, lanes x unsigned(6)),
      ``zero_point``, ``qmin``, ``qmax`` (in, lanes x signed(output_width)): the rest of the
      requant entries (docs/isa.md), read only for rows with ``raw`` low.
    - ``result_valid`` (out, 1): the outputs hold the row that entered :attr:`LATENCY` cycles
      ago.
    - ``result`` (out, lanes x signed(output_width)): ``y``.
    - ``raw_result`` (out, lanes x signed(acc_width)): ``x``.

    Pipeline: 1. the add; 2. four 16 x 16 partial products per lane (one MULT18X18D each on
    ECP5) and a carry-save layer; 3. the 64-bit carry-propagate add and a coarse shift of the
    rounding window; 4. the fine shift, rounding, zero point and clamp. Measured on an
    LFE5U-85F, speed grade 6 (yosys synth_ecp5, nextpnr-ecp5): 107 MHz for one lane, 90 MHz
    for eight, limited by the routing into and out of the DSP columns. One stage fewer does
    not reach 100 MHz: a 32 x 32 product with its adders alone runs at 85 MHz.

    Parameters
    ----------
    lanes : int
        Accumulators per row (the array's ``dim``); at least 1.
    acc_width : int
        Bits of the signed accumulators, biases and ``raw_result`` (2 to 32; 32 in Verdigris).
    output_width : int
        Bits of the signed outputs, zero points and bounds (2 to 16; a byte in the core).
    """

    LATENCY = 4

    def __init__(self, lanes: int, *, acc_width: int = 32, output_width: int = 8):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if (
            isinstance(acc_width, bool)
            or not isinstance(acc_width, int)
            or not 2 <= acc_width <= 32
        ):
            raise ValueError(f"acc_width must be an integer from 2 to 32, not {acc_width!r}")
        if (
            isinstance(output_width, bool)
            or not isinstance(output_width, int)
            or not 2 <= output_width <= 16
        ):
            raise ValueError(f"output_width must be an integer from 2 to 16, not {output_width!r}")
        self.lanes = lanes
        self.acc_width = acc_width
        self.output_width = output_width
        out = signed(output_width)

        def per_lane(shape):
            return data.ArrayLayout(shape, lanes)

        acc = signed(acc_width)
        super().__init__(
            {
                "valid": In(1),
                "raw": In(1),
                "acc": In(per_lane(acc)),
                "bias": In(per_lane(acc)),
                "multiplier": In(per_lane(signed(_MULTIPLIER_BITS))),
                "shift": In(per_lane(unsigned(_SHIFT_BITS))),
                "zero_point": In(per_lane(out)),
                "qmin": In(per_lane(out)),
                "qmax": In(per_lane(out)),
                "result_valid": Out(1),
                "result": Out(per_lane(out)),
                "raw_result": Out(per_lane(acc)),
            }
        )

    def elaborate(self, _platform):
        m = Module()

        # Row control. `valid_k` / `load_k`: stage k holds a row / a row to requantize.
        # Data registers load only for such rows (clock enables), so idle cycles and raw
        # rows leave the multipliers and the rounding logic still.
        valid_1, valid_2, valid_3 = Signal(), Signal(), Signal()
        load_1, load_2, load_3 = Signal(), Signal(), Signal()
        m.d.sync += [
            valid_1.eq(self.valid),
            valid_2.eq(valid_1),
            valid_3.eq(valid_2),
            self.result_valid.eq(valid_3),
            load_1.eq(self.valid & ~self.raw),
            load_2.eq(load_1),
            load_3.eq(load_2),
        ]

        for lane in range(self.lanes):
            self._elaborate_lane(m, lane, (valid_1, valid_2, valid_3), (load_1, load_2, load_3))
        return m

    def _elaborate_lane(self, m: Module, i: int, valid, load) -> None:
        def stage(enable, shape, value, name):
            """A pipeline register of this lane that takes `value` when `enable` is high.
            Without a reset: a stage is read only for a row that loaded it, and reset-less
            data registers need no reset routing on an FPGA and keep this block's logic out
            of what Verilator settles whenever `rst` may change (the core's model runs
            about 1.2 times faster)."""
            reg = Signal(shape, name=f"{name}_{i}", reset_less=True)
            with m.If(enable):
                m.d.sync += reg.eq(value)
            return reg

        acc_shape = signed(self.acc_width)
        width = self.output_width
        out = signed(width)
        coarse_bits = _coarse_bits(width)
        coarse_sign_group = (coarse_bits - 1) // _COARSE_STEP  # c's sign bit's group above 4k
        e_ext_bits = _COARSE_STEP * (63 // _COARSE_STEP) + coarse_bits  # every window fits

        # Stage 1: x = wrap(acc + bias); the entry fields for the requantizing stages.
        x = Signal(acc_shape, name=f"x_{i}")
        m.d.comb += x.eq(self.acc[i] + self.bias[i])  # eq() truncates: the wrap-around
        take = self.valid & ~self.raw
        x_raw_1 = stage(self.valid, acc_shape, x, "x_raw_1")
        multiplier = signed(_MULTIPLIER_BITS)
        x_1 = stage(take, multiplier, x, "x_1")  # sign-extended to the multiplier's width
        m_1 = stage(take, multiplier, self.multiplier[i], "m_1")
        n_1 = stage(take, _SHIFT_BITS, self.shift[i], "n_1")
        z_1 = stage(take, out, self.zero_point[i], "z_1")
        qmin_1 = stage(take, out, self.qmin[i], "qmin_1")
        qmax_1 = stage(take, out, self.qmax[i], "qmax_1")

        # Stage 2: p = x * m from four products of at most 17 x 16 bits (one DSP each),
        # reduced from three to two addends by a carry-save layer so that stage 3 has a
        # single carry chain. Sums below are modulo 2**64, where p fits.
        x_lo, x_hi = x_1[:16], x_1[16:].as_signed()
        m_lo, m_hi = m_1[:16], m_1[16:].as_signed()
        high_low = Signal(signed(64), name=f"high_low_{i}")  # x_hi*m_hi*2**32 + x_lo*m_lo
        cross_a = Signal(signed(64), name=f"cross_a_{i}")
        cross_b = Signal(signed(64), name=f"cross_b_{i}")
        m.d.comb += [
            high_low.eq(Cat(x_lo * m_lo, x_hi * m_hi)),
            cross_a.eq((x_lo * m_hi) << 16),
            cross_b.eq((x_hi * m_lo) << 16),
        ]
        a, b, c = high_low, cross_a, cross_b
        sum_2 = stage(load[0], signed(64), a ^ b ^ c, "sum_2")
        carry_2 = stage(load[0], signed(64), ((a & b) | (a & c) | (b & c)) << 1, "carry_2")
        x_raw_2 = stage(valid[0], acc_shape, x_raw_1, "x_raw_2")
        n_2 = stage(load[0], _SHIFT_BITS, n_1, "n_2")
        z_2 = stage(load[0], out, z_1, "z_2")
        qmin_2 = stage(load[0], out, qmin_1, "qmin_2")
        qmax_2 = stage(load[0], out, qmax_1, "qmax_2")

        # Stage 3: p and the coarse window c (see _coarse_bits). In parallel, from the entry
        # alone, the clamp thresholds in c's units (see stage 4) and group masks.
        p = Signal(signed(64), name=f"p_{i}")
        m.d.comb += p.eq(sum_2 + carry_2)
        e_ext = Cat(C(0, 1), p, p[63].replicate(e_ext_bits - _E_BITS))
        coarse_shift = Cat(C(0, _COARSE_STEP_BITS), n_2[_COARSE_STEP_BITS:])  # 4k
        fine = n_2[:_COARSE_STEP_BITS]  # f
        p_3 = stage(load[1], signed(64), p, "p_3")
        coarse_3 = stage(
            load[1], signed(coarse_bits), e_ext.bit_select(coarse_shift, coarse_bits), "coarse_3"
        )
        fine_3 = stage(load[1], _COARSE_STEP_BITS, fine, "fine_3")
        # Masks over the 4-bit groups of e: the groups below c (for the sticky bit) and those
        # at or above c's sign bit (when one differs from the sign, c is not exact).
        k = n_2[_COARSE_STEP_BITS:]
        groups_below_3 = stage(
            load[1], _GROUPS, Cat(*(k > g for g in range(_GROUPS))), "groups_below_3"
        )
        groups_beyond = Cat(*(k + coarse_sign_group <= g for g in range(_GROUPS)))
        groups_beyond_3 = stage(load[1], _GROUPS, groups_beyond, "groups_beyond_3")
        low = Signal(signed(width + 2), name=f"low_{i}")  # q + z < qmin  <=>  q < low
        high = Signal(signed(width + 2), name=f"high_{i}")  # q + z > qmax  <=>  q > high
        m.d.comb += [low.eq(qmin_2 - z_2), high.eq(qmax_2 - z_2)]
        threshold_shape = signed(coarse_bits + 1)
        low_3 = stage(load[1], threshold_shape, (2 * low - 1) << fine, "low_3")
        high_3 = stage(load[1], threshold_shape, (2 * high + 1) << fine, "high_3")
        low_odd_3 = stage(load[1], 1, low[0], "low_odd_3")
        high_odd_3 = stage(load[1], 1, high[0], "high_odd_3")
        z_3 = stage(load[1], width, z_2, "z_3")  # the zero point modulo 2**w, and plus one
        z1_3 = stage(load[1], width, z_2 + 1, "z1_3")
        qmin_3 = stage(load[1], out, qmin_2, "qmin_3")
        qmax_3 = stage(load[1], out, qmax_2, "qmax_3")
        inverted_3 = stage(load[1], 1, qmin_2 > qmax_2, "inverted_3")
        x_raw_3 = stage(valid[1], acc_shape, x_raw_2, "x_raw_3")

        # Stage 4: the clamp decisions, compared in c's units so that they do not wait for the
        # fine shift: q < low  <=>  e < (2*low - 1) * 2**n, or equal and low odd (a tie to
        # the even low - 1); q > high  <=>  e > (2*high + 1) * 2**n, or equal and high odd.
        # Both thresholds are multiples of 2**(4k), so e against them is c against
        # (2*low - 1) << f and (2*high + 1) << f, with the bits of e below c breaking a tie.
        e_3 = Cat(C(0, 1), p_3, p_3[63].replicate(_GROUPS * _COARSE_STEP - _E_BITS))
        sign_3 = p_3[63]
        groups = [e_3[g * _COARSE_STEP : (g + 1) * _COARSE_STEP] for g in range(_GROUPS)]
        nonzero = Cat(*(group.any() for group in groups))
        differ = Cat(*((group ^ sign_3.replicate(_COARSE_STEP)).any() for group in groups))
        coarse_sticky = (nonzero & groups_below_3).any()  # e has 1 bits below c
        overflow = (differ & groups_beyond_3).any()  # c is not exact: |q| >= 2**w
        too_low = Mux(
            overflow,
            sign_3,
            (coarse_3 < low_3) | ((coarse_3 == low_3) & ~coarse_sticky & low_odd_3),
        )
        too_high = Mux(
            overflow,
            ~sign_3,
            (coarse_3 > high_3) | ((coarse_3 == high_3) & (coarse_sticky | high_odd_3)),
        )
        # Inside the clamp range, y = floor + up + z modulo 2**w, with floor = c >> (f + 1),
        # the half bit c[f] and the sticky bits below it. The sums for all four f are formed
        # in parallel and the fine shift selects among them.
        half = coarse_3.bit_select(fine_3, 1)
        floor_odd = coarse_3.bit_select(fine_3 + 1, 1)
        fine_sticky = (
            coarse_3[: _COARSE_STEP - 1] & Cat(*(fine_3 > j for j in range(_COARSE_STEP - 1)))
        ).any()
        up = _round_up(half, coarse_sticky | fine_sticky, floor_odd)
        window = [coarse_3[f + 1 : f + 1 + width] for f in range(_COARSE_STEP)]
        plain = Cat(*((bits + z_3)[:width] for bits in window))
        plus_one = Cat(*((bits + z1_3)[:width] for bits in window))
        inside = Mux(up, plus_one.word_select(fine_3, width), plain.word_select(fine_3, width))
        y = Signal(out, name=f"y_{i}")
        with m.If(inverted_3 | too_high):
            m.d.comb += y.eq(qmax_3)
        with m.Elif(too_low):
            m.d.comb += y.eq(qmin_3)
        with m.Else():
            m.d.comb += y.eq(inside)
        with m.If(load[2]):
            m.d.sync += self.result[i].eq(y)
        with m.If(valid[2]):
            m.d.sync += self.raw_result[i].eq(x_raw_3)
