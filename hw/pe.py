"""The processing element: the multiply-accumulate cell the weight-stationary array is
built of (`verdigris.hw.array.SystolicArray`), also verified and benchmarked on its own
(`verdigris.verify.pe`, `verdigris demo`)."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.isa import BINARY_PACK, LANE_BITS, OPERAND_WIDTHS, operand_width

__all__ = [
    "PACK_BITS",
    "ProcessingElement",
    "check_max_pack",
    "check_widths",
    "dsp_packs",
    "multiply",
    "spread",
    "zero_operand",
]

# Bits of a GEMM's `pack` (arch/isa.py) as it travels with the data through the array.
PACK_BITS = (len(OPERAND_WIDTHS) - 1).bit_length()


# Bits between the packed operands of one multiplier input, per pack: the products of a
# packed dot product land in fields this wide, the dot product itself in field 2**pack - 1,
# and the sum of the fields below it stays within +-2**(field * (2**pack - 1) - 1), so it
# can be rounded away (docs/hardware.md, "Packed operands in the PE's multiplier").
_FIELD = {1: 9, 2: 5}


def spread(byte, pack: int, *, reverse: bool = False):
    """The 2**pack signed operands of `byte` spread `_FIELD[pack]` bits apart over one
    multiplier input (operand j at field j, or with `reverse` at field 2**pack - 1 - j)."""
    width, count = operand_width(pack), 1 << pack
    lanes = [byte[j * width : (j + 1) * width].as_signed() for j in range(count)]
    if reverse:
        lanes.reverse()
    total = lanes[0]
    for j, lane in enumerate(lanes[1:], start=1):
        total = total + (lane << (_FIELD[pack] * j))
    return total


def dsp_packs(max_pack: int) -> range:
    """The packs up to `max_pack` that the multiplier computes: all but binary."""
    return range(1, min(max_pack, BINARY_PACK - 1) + 1)


def multiply(m: Module, a, w, pack, max_pack: int, spread_w: dict | None = None):
    """The product of two operand bytes at `pack` (docs/isa.md, GEMM), on one multiplier:
    a * w for pack 0; for pack p > 0 the dot product of their 2**p packed operands, which
    the same 18x18 product gives when the operands are spread `_FIELD[p]` bits apart, a's
    lowest first and w's highest first: its middle field is Σ a_j * w_j (Bit Fusion's idea
    on one DSP). With `max_pack` 0, just a * w. `spread_w` may give w already spread, by
    pack (`spread(w, p, reverse=True)`): a PE keeps its stationary weight so, off the
    multiplier's path. Binary operands (BINARY_PACK) skip the multiplier: their dot product
    is 2 * popcount(XNOR(a, w)) - 8, in LUTs."""
    if not max_pack:
        return a * w
    packs = dsp_packs(max_pack)
    spread_w = spread_w or {p: spread(w, p, reverse=True) for p in packs}
    x, y = Signal(signed(18), name="mul_x"), Signal(signed(18), name="mul_y")
    m.d.comb += [x.eq(a), y.eq(w)]
    for p in packs:
        with m.If(pack == p):
            m.d.comb += [x.eq(spread(a, p)), y.eq(spread_w[p])]
    product = Signal(signed(36), name="mul_p")
    m.d.comb += product.eq(x * y)
    result = product
    if max_pack >= BINARY_PACK:
        agree = ~(a ^ w)[:LANE_BITS]
        # -8..8: eq() keeps the low bits of the sum, which are that in two's complement.
        binary = Signal(signed(5), name="xnor_dot")
        m.d.comb += binary.eq(2 * sum(agree[j] for j in range(LANE_BITS)) - LANE_BITS)
        result = Mux(pack == BINARY_PACK, binary, result)
    for p in packs:
        field, width, count = _FIELD[p], operand_width(p), 1 << p
        low = field * (count - 1)  # the dot product's field starts here
        value = ((product + (1 << (low - 1))) >> low)[:field]
        highest = count << (2 * width - 2)  # every product (-2**(width-1))**2
        if highest < 1 << (field - 1):  # the field's two's complement holds the range
            dot = value.as_signed()
        else:  # int2: -8..16 in 5 bits
            dot = Mux(value > highest, value - (1 << field), value)
        result = Mux(pack == p, dot, result)
    return result


def zero_operand(a, w, pack, max_pack: int):
    """Whether a product of bytes a and w has a zero operand (the activity counters' zero
    MACs): a or w is 0, unless they are binary (a zero byte is eight -1)."""
    zero = (a == 0) | (w == 0)
    return zero & (pack != BINARY_PACK) if max_pack >= BINARY_PACK else zero


def check_widths(operand_width, acc_width) -> None:
    """The operand and accumulator widths every PE accepts; ValueError quoting a bad one."""
    if not isinstance(operand_width, int) or not 2 <= operand_width <= 18:
        raise ValueError(f"operand_width must be an integer from 2 to 18, not {operand_width!r}")
    if not isinstance(acc_width, int) or acc_width < 2 * operand_width:
        raise ValueError(
            f"acc_width must be an integer of at least 2 * operand_width = "
            f"{2 * operand_width}, not {acc_width!r}"
        )


def check_max_pack(max_pack, operand_width) -> None:
    """The packs a PE may compute: up to the narrowest OPERAND_WIDTHS, and only on bytes."""
    if max_pack not in range(len(OPERAND_WIDTHS)) or (max_pack and operand_width != LANE_BITS):
        raise ValueError(
            f"max_pack must be 0 to {len(OPERAND_WIDTHS) - 1}, and above 0 only with "
            f"{LANE_BITS}-bit operands, not {max_pack!r} with {operand_width}"
        )


class ProcessingElement(wiring.Component):
    """One multiply-accumulate cell of the weight-stationary `SystolicArray`, with an active
    and a shadow weight (double-buffered weights: a new tile loads while the old computes).

    Activations travel left to right together with a ``valid`` and a ``swap`` flag, partial
    sums top to bottom. Contract (every output is registered: one cycle of latency on every
    path, one element per cycle):

    - The weight *used* in a cycle is the shadow weight if ``valid_in & swap_in``, else the
      active weight. In that case the active weight takes the shadow weight at the clock edge,
      so the swapping element and every later one use it.
    - ``psum_out`` ← ``psum_in + a_in * used weight``: an exact product, a sum wrapped modulo
      2**acc_width (two's complement). With ``pack_in`` = p > 0 (at most ``max_pack``), the
      product is that of packed operands: the dot product of the 2**p signed operands of
      ``a_in`` and of the weight (`multiply`, docs/isa.md GEMM).
    - ``a_out`` ← ``a_in``, ``valid_out`` ← ``valid_in``, ``swap_out`` ← ``valid_in & swap_in``
      (a swap travels only with a valid element), ``pack_out`` ← ``pack_in``.
    - When ``w_load`` is high, the shadow weight takes ``w_in``; it is seen by a swap from the
      next cycle on. A swap in the same cycle still takes the old shadow weight.
    - ``zero`` ← ``valid_in`` and (``a_in`` or the used weight is 0) and the pack is not
      binary (`zero_operand`), for the activity counters.

    After reset both weights are zero. On ECP5, yosys maps an int8 product onto one
    MULT18X18D DSP (tests/synth), and so are the packed int4 and int2 dot products; the
    binary one is LUTs (`multiply`).

    Parameters
    ----------
    operand_width : int
        Bits of the signed activation and weight operands (2 to 18).
    acc_width : int
        Bits of the signed partial sum; at least ``2 * operand_width``.
    max_pack : int
        The most operands a byte packs, as a `pack` (0: int8 only, 1: also two int4, 2:
        also four int2, 3: also eight binary); above 0 the operands must be bytes.
    """

    def __init__(self, *, operand_width: int = 8, acc_width: int = 32, max_pack: int = 0):
        check_widths(operand_width, acc_width)
        check_max_pack(max_pack, operand_width)
        self.operand_width = operand_width
        self.acc_width = acc_width
        self.max_pack = max_pack
        operand, acc = signed(operand_width), signed(acc_width)
        super().__init__(
            {
                "a_in": In(operand),
                "valid_in": In(1),
                "swap_in": In(1),
                "a_out": Out(operand),
                "valid_out": Out(1),
                "swap_out": Out(1),
                "pack_in": In(PACK_BITS),
                "pack_out": Out(PACK_BITS),
                "psum_in": In(acc),
                "psum_out": Out(acc),
                "w_in": In(operand),
                "w_load": In(1),
                "zero": Out(1),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        operand = signed(self.operand_width)
        active = Signal(operand)
        shadow = Signal(operand)
        swap = self.valid_in & self.swap_in
        weight = Signal(operand)
        m.d.comb += weight.eq(Mux(swap, shadow, active))
        # Both weights also kept spread for each pack, written with them (`multiply`).
        spread_w = {}
        for p in dsp_packs(self.max_pack):
            spread_active = Signal(signed(18), name=f"active_spread_{p}")
            spread_shadow = Signal(signed(18), name=f"shadow_spread_{p}")
            spread_w[p] = Mux(swap, spread_shadow, spread_active)
            m.d.sync += spread_active.eq(spread_w[p])
            with m.If(self.w_load):
                m.d.sync += spread_shadow.eq(spread(self.w_in, p, reverse=True))
        product = multiply(m, self.a_in, weight, self.pack_in, self.max_pack, spread_w)
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.valid_out.eq(self.valid_in),
            self.swap_out.eq(swap),
            self.pack_out.eq(self.pack_in),
            # eq() truncates to acc_width: the wrap-around of the contract.
            self.psum_out.eq(self.psum_in + product),
            self.zero.eq(
                self.valid_in & zero_operand(self.a_in, weight, self.pack_in, self.max_pack)
            ),
            active.eq(weight),
        ]
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_in)
        return m
