"""The requantizer on the store path: int32 accumulators to int8, as docs/isa.md's STORE."""

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer"]

# Bits of the rounding window t = floor(2p / 2**shift), which the int8 result depends on
# when t fits them: then |floor(t / 2) + 1| <= 256 covers every q with |q + zero_point| <= 128
# (zero_point is int8); when t does not fit, the clamp decides alone, from the sign of p.
_WINDOW = 10
# Stage 3 moves the window by 4 * (shift // 4) bits, stage 4 by the remaining 0..3 bits.
_COARSE_STEP_BITS = 2
_COARSE_STEP = 1 << _COARSE_STEP_BITS
_COARSE_BITS = _WINDOW + _COARSE_STEP - 1
_E_BITS = 65  # e = 2p, the product with one zero bit below it
_E_EXT_BITS = _COARSE_STEP * (63 // _COARSE_STEP) + _COARSE_BITS  # every coarse window fits


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
    the last requantized row; while ``result_valid`` is low both outputs hold. Everything is
    zero after reset.

    Ports. Per-lane ports are ``data.ArrayLayout`` arrays of ``lanes`` elements, lane ``i`` in
    bits ``[i*w, (i+1)*w)`` of the flat Verilog port:

    - ``valid`` (in, 1): a row is presented in this cycle.
    - ``raw`` (in, 1): the row is stored raw; only ``x`` is wanted.
    - ``acc``, ``bias`` (in, lanes x signed(acc_width)): accumulators and the entries' biases.
    - ``multiplier`` (in, lanes x signed(32)), ``shift`` (in, lanes x unsigned(6)),
      ``zero_point``, ``qmin``, ``qmax`` (in, lanes x signed(8)): the rest of the requant
      entries (docs/isa.md), read only for rows with ``raw`` low.
    - ``result_valid`` (out, 1): the outputs hold the row that entered :attr:`LATENCY` cycles
      ago.
    - ``result`` (out, lanes x signed(8)): ``y``.
    - ``raw_result`` (out, lanes x signed(acc_width)): ``x``.

    Pipeline (for ECP5 at about 100 MHz): 1. the add; 2. four 16 x 16 partial products per
    lane (one MULT18X18D each) and a carry-save compression; 3. the 64-bit carry-propagate
    add and a coarse shift of the rounding window; 4. the fine shift, rounding, zero point
    and clamp. A single 32 x 32 product with its adders in one cycle runs at about 85 MHz.

    Parameters
    ----------
    lanes : int
        Accumulators per row (the array's ``dim``); at least 1.
    acc_width : int
        Bits of the signed accumulators, biases and ``raw_result`` (2 to 32; 32 in Verdigris).
    """

    LATENCY = 4

    def __init__(self, lanes: int, *, acc_width: int = 32):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if (
            isinstance(acc_width, bool)
            or not isinstance(acc_width, int)
            or not 2 <= acc_width <= 32
        ):
            raise ValueError(f"acc_width must be an integer from 2 to 32, not {acc_width!r}")
        self.lanes = lanes
        self.acc_width = acc_width

        def per_lane(shape):
            return data.ArrayLayout(shape, lanes)

        acc = signed(acc_width)
        super().__init__(
            {
                "valid": In(1),
                "raw": In(1),
                "acc": In(per_lane(acc)),
                "bias": In(per_lane(acc)),
                "multiplier": In(per_lane(signed(32))),
                "shift": In(per_lane(unsigned(6))),
                "zero_point": In(per_lane(signed(8))),
                "qmin": In(per_lane(signed(8))),
                "qmax": In(per_lane(signed(8))),
                "result_valid": Out(1),
                "result": Out(per_lane(signed(8))),
                "raw_result": Out(per_lane(acc)),
            }
        )

    def elaborate(self, platform):
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
            """A pipeline register of this lane that takes `value` when `enable` is high."""
            reg = Signal(shape, name=f"{name}_{i}")
            with m.If(enable):
                m.d.sync += reg.eq(value)
            return reg

        acc_shape = signed(self.acc_width)

        # Stage 1: x = wrap(acc + bias); the entry fields for the requantizing stages.
        x = Signal(acc_shape, name=f"x_{i}")
        m.d.comb += x.eq(self.acc[i] + self.bias[i])  # eq() truncates: the wrap-around
        take = self.valid & ~self.raw
        x_raw_1 = stage(self.valid, acc_shape, x, "x_raw_1")
        x_1 = stage(take, signed(32), x, "x_1")  # sign-extended to the multiplier's width
        m_1 = stage(take, signed(32), self.multiplier[i], "m_1")
        n_1 = stage(take, 6, self.shift[i], "n_1")
        z_1 = stage(take, signed(8), self.zero_point[i], "z_1")
        qmin_1 = stage(take, signed(8), self.qmin[i], "qmin_1")
        qmax_1 = stage(take, signed(8), self.qmax[i], "qmax_1")

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
        n_2 = stage(load[0], 6, n_1, "n_2")
        z_2 = stage(load[0], signed(8), z_1, "z_2")
        qmin_2 = stage(load[0], signed(8), qmin_1, "qmin_2")
        qmax_2 = stage(load[0], signed(8), qmax_1, "qmax_2")

        # Stage 3: p, and the window t = floor(2p / 2**n) = e >> n with e = 2p, sign-extended
        # so that every window position exists. The window moves by 4*(n // 4) here.
        p = Signal(signed(64), name=f"p_{i}")
        m.d.comb += p.eq(sum_2 + carry_2)
        sign = p[63]
        e_ext = Cat(C(0, 1), p, sign.replicate(_E_EXT_BITS - _E_BITS))
        coarse = e_ext.bit_select(
            Cat(C(0, _COARSE_STEP_BITS), n_2[_COARSE_STEP_BITS:]), _COARSE_BITS
        )
        p_3 = stage(load[1], signed(64), p, "p_3")
        coarse_3 = stage(load[1], _COARSE_BITS, coarse, "coarse_3")
        fine_3 = stage(load[1], _COARSE_STEP_BITS, n_2[:_COARSE_STEP_BITS], "fine_3")
        # Which bits of e lie below the window (for the sticky bit) and which at or above
        # its sign bit (for the saturation test).
        below_3 = stage(load[1], _E_BITS, Cat(*(n_2 > j for j in range(_E_BITS))), "below_3")
        above = Cat(*(n_2 + _WINDOW - 1 <= j for j in range(_E_BITS)))
        above_3 = stage(load[1], _E_BITS, above, "above_3")
        # Clamp bounds for q = floor + up: q < qmin - z and q > qmax - z, as compares of floor.
        low_3 = stage(load[1], signed(10), qmin_2 - z_2 - 1, "low_3")
        high_3 = stage(load[1], signed(10), qmax_2 - z_2, "high_3")
        z_3 = stage(load[1], signed(8), z_2, "z_3")
        z1_3 = stage(load[1], signed(9), z_2 + 1, "z1_3")
        qmin_3 = stage(load[1], signed(8), qmin_2, "qmin_3")
        qmax_3 = stage(load[1], signed(8), qmax_2, "qmax_3")
        inverted_3 = stage(load[1], 1, qmin_2 > qmax_2, "inverted_3")
        x_raw_3 = stage(valid[1], acc_shape, x_raw_2, "x_raw_3")

        # Stage 4: round half to even, add the zero point, clamp.
        window = coarse_3.bit_select(fine_3, _WINDOW).as_signed()  # t, if t fits _WINDOW bits
        e_3 = Cat(C(0, 1), p_3)
        sign_3 = p_3[63]
        sticky = (e_3 & below_3).any()  # 2p has 1 bits below the window: not a tie
        saturated = ((e_3 ^ sign_3.replicate(_E_BITS)) & above_3).any()  # t does not fit
        floor = window[1:].as_signed()  # floor(p / 2**n)
        half = window[0]
        up = half & (sticky | floor[0])  # round up: above a half, or a tie to an odd floor
        plain = Signal(signed(10), name=f"plain_{i}")
        plus_one = Signal(signed(10), name=f"plus_one_{i}")
        m.d.comb += [plain.eq(floor + z_3), plus_one.eq(floor + z1_3)]
        too_low = Mux(saturated, sign_3, (floor < low_3) | ((floor == low_3) & ~up))
        too_high = Mux(saturated, ~sign_3, (floor > high_3) | ((floor == high_3) & up))
        y = Signal(signed(8), name=f"y_{i}")
        with m.If(inverted_3 | too_high):
            m.d.comb += y.eq(qmax_3)
        with m.Elif(too_low):
            m.d.comb += y.eq(qmin_3)
        with m.Else():
            m.d.comb += y.eq(Mux(up, plus_one, plain))
        with m.If(load[2]):
            m.d.sync += self.result[i].eq(y)
        with m.If(valid[2]):
            m.d.sync += self.raw_result[i].eq(x_raw_3)
