"""The weight-stationary systolic array with double-buffered (shadow/active) weights."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from verdigris.hw.pe import check_widths

__all__ = ["ArrayPE", "SystolicArray", "array_signature"]


def array_signature(dim: int, operand_width: int, acc_width: int) -> dict:
    """The ports every array dataflow offers (see SystolicArray for the contract)."""
    operands = data.ArrayLayout(signed(operand_width), dim)
    return {
        "w_en": In(1),
        "w_row": In(max(1, (dim - 1).bit_length())),
        "w_data": In(operands),
        "a_valid": In(1),
        "a_data": In(operands),
        "a_swap": In(1),
        "p_valid": Out(1),
        "p_data": Out(data.ArrayLayout(signed(acc_width), dim)),
        "zero_count": Out((dim * dim).bit_length()),
    }


class ArrayPE(wiring.Component):
    """One multiply-accumulate cell of `SystolicArray`, with an active and a shadow weight.

    Activations travel left to right together with a ``valid`` and a ``swap`` flag, partial
    sums top to bottom. Contract (every output is registered: one cycle of latency on every
    path, one element per cycle):

    - The weight *used* in a cycle is the shadow weight if ``valid_in & swap_in``, else the
      active weight. In that case the active weight takes the shadow weight at the clock edge,
      so the swapping element and every later one use it.
    - ``psum_out`` ← ``psum_in + a_in * used weight``: an exact product, a sum wrapped modulo
      2**acc_width (two's complement).
    - ``a_out`` ← ``a_in``, ``valid_out`` ← ``valid_in``, ``swap_out`` ← ``valid_in & swap_in``
      (a swap travels only with a valid element).
    - When ``w_load`` is high, the shadow weight takes ``w_in``; it is seen by a swap from the
      next cycle on. A swap in the same cycle still takes the old shadow weight.
    - ``zero`` ← ``valid_in`` and (``a_in`` or the used weight is 0), for the activity counters.

    Parameters
    ----------
    operand_width : int
        Bits of the signed activation and weight operands (2 to 18).
    acc_width : int
        Bits of the signed partial sum; at least ``2 * operand_width``.
    """

    def __init__(self, *, operand_width: int = 8, acc_width: int = 32):
        check_widths(operand_width, acc_width)
        self.operand_width = operand_width
        self.acc_width = acc_width
        operand, acc = signed(operand_width), signed(acc_width)
        super().__init__(
            {
                "a_in": In(operand),
                "valid_in": In(1),
                "swap_in": In(1),
                "a_out": Out(operand),
                "valid_out": Out(1),
                "swap_out": Out(1),
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
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.valid_out.eq(self.valid_in),
            self.swap_out.eq(swap),
            # eq() truncates to acc_width: the wrap-around of the contract.
            self.psum_out.eq(self.psum_in + self.a_in * weight),
            self.zero.eq(self.valid_in & ((self.a_in == 0) | (weight == 0))),
            active.eq(weight),
        ]
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_in)
        return m


def _popcount_tree(bits: list) -> object:
    """Sum of 1-bit values as a balanced adder tree (log2 depth, widths grow one bit a level)."""
    level = list(bits)
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        level = pairs + level[len(pairs) * 2 :]
    return level[0]


class SystolicArray(wiring.Component):
    """A ``dim`` x ``dim`` weight-stationary systolic array of `ArrayPE` with double-buffered
    weights: a new tile loads into a shadow tile while the active tile computes.

    Ports (operands are signed ``operand_width`` bits, results signed ``acc_width`` bits; the
    vector ports are `data.ArrayLayout` views, element ``i`` at bits
    ``[i*width, (i+1)*width)`` of the flat Verilog port):

    - ``w_en`` (1), ``w_row`` (unsigned, ``max(1, ceil(log2(dim)))`` bits), ``w_data``
      (``dim`` operands): weight loading.
    - ``a_valid`` (1), ``a_data`` (``dim`` operands), ``a_swap`` (1): the input row stream.
    - ``p_valid`` (1), ``p_data`` (``dim`` results): the output row stream.
    - ``zero_count`` (``(dim*dim).bit_length()`` bits): zero-operand MACs, for the activity
      counters.

    Contract. Cycles are clock periods; "a row entered in cycle s" means ``a_valid`` was high
    in cycle ``s``.

    - **Shadow tile.** When ``w_en`` is high in cycle ``t``, shadow row ``w_row`` takes
      ``w_data`` (element ``c`` is ``W[w_row][c]``), visible to swaps from cycle ``t + 1``.
      Shadow rows change only when written; a ``w_row`` of ``dim`` or more writes nothing.
      Weight loading is independent of streaming: both may happen in the same cycle.
    - **Streaming.** When ``a_valid`` is high, ``a_data`` (the K-vector of one input row;
      element ``r`` goes to array row ``r``) enters. A row may enter every cycle. If
      ``a_swap`` is also high, that row and every later one use the shadow tile: the shadow
      tile becomes the active tile as the swap travels through the array with the data, PE
      ``(r, c)`` switching (taking shadow weight ``W[r][c]`` as it is in that cycle) when the
      row's element reaches it, ``r + c`` cycles after entry. Rows without ``a_swap`` use the
      current active tile. ``a_swap`` is ignored while ``a_valid`` is low. After reset both
      tiles are zero.
    - **Output.** Exactly ``latency = 2*dim - 1`` cycles after a row entered, ``p_valid`` is
      high and ``p_data[c] = sum_r a[r] * W[r][c]`` (``W`` the tile active at that row, the
      products exact, the sum wrapped to ``acc_width`` bits). Rows leave in entry order, one
      per cycle at full throughput. ``p_data`` is meaningless while ``p_valid`` is low.
    - **Zero count.** ``zero_count`` in cycle ``t`` is the number of PEs that, in cycle
      ``t - 2``, processed a valid element (PE ``(r, c)`` processes element ``r`` of a row
      entered in cycle ``s`` in cycle ``s + r + c``) whose activation or used weight is 0.
      So the count for a row is complete in cycle ``s + 2*dim`` (one cycle after its
      ``p_valid``), and over a GEMM the counts sum to its ``zero_macs`` (docs/isa.md).
    - **Safe reuse of the shadow tile.** Writing shadow row ``r`` in a cycle before
      ``s + r + dim - 1``, where ``s`` is the entry cycle of the last row with ``a_swap``,
      changes weights that swap has not yet taken (it has not reached PE ``(r, dim - 1)``)
      and corrupts that GEMM's results. The ISA's weight-swap rule (a weight load starts no
      earlier than ``dim`` cycles after the last swap stream start) and the compiler's
      order of writes (rows ``0 .. dim-1``, one per cycle) write row ``r`` no earlier than
      ``s + dim + r``, one cycle more than needed, so a program that obeys the rule cannot
      hit this, provided the controller's delay from an ISA cycle to a weight write is at
      most one cycle shorter than its delay to a row entry.

    Attributes ``latency`` (``2*dim - 1``) and ``zero_count_delay`` (2) give the timing
    above to controllers and models.

    On ECP5 each product (``operand_width`` up to 18) maps onto one MULT18X18D.

    Parameters
    ----------
    dim : int
        Side of the square array (rows = columns = K = N of one tile), at least 1.
    operand_width : int
        Bits of the signed activations and weights (2 to 18).
    acc_width : int
        Bits of the signed results; at least ``2 * operand_width``.
    """

    zero_count_delay = 2  # cycles from a PE's MAC to its contribution in zero_count

    def __init__(self, dim: int, *, operand_width: int = 8, acc_width: int = 32):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim must be a positive integer, not {dim!r}")
        check_widths(operand_width, acc_width)
        self.dim = dim
        self.operand_width = operand_width
        self.acc_width = acc_width
        self.latency = 2 * dim - 1
        super().__init__(array_signature(dim, operand_width, acc_width))

    def elaborate(self, _platform):
        m = Module()
        dim = self.dim
        pes = [
            [
                ArrayPE(operand_width=self.operand_width, acc_width=self.acc_width)
                for _ in range(dim)
            ]
            for _ in range(dim)
        ]
        for r, row in enumerate(pes):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe

        # Weight loading: a write goes straight to the shadow weights of one array row.
        for r, row in enumerate(pes):
            for c, pe in enumerate(row):
                m.d.comb += [
                    pe.w_in.eq(self.w_data[c]),
                    pe.w_load.eq(self.w_en & (self.w_row == r)),
                ]

        # Input skew: array row r sees a row's element r cycles after the row entered. The
        # flags are the same for every row, so one chain of dim - 1 stages serves all rows.
        valid_chain, swap_chain = [self.a_valid], [self.a_valid & self.a_swap]
        for stage in range(1, dim):
            valid, swap = Signal(name=f"valid_skew_{stage}"), Signal(name=f"swap_skew_{stage}")
            m.d.sync += [valid.eq(valid_chain[-1]), swap.eq(swap_chain[-1])]
            valid_chain.append(valid)
            swap_chain.append(swap)
        for r, row in enumerate(pes):
            a = self.a_data[r]
            for stage in range(1, r + 1):
                delayed = Signal(signed(self.operand_width), name=f"a_skew_{r}_{stage}")
                m.d.sync += delayed.eq(a)
                a = delayed
            m.d.comb += [
                row[0].a_in.eq(a),
                row[0].valid_in.eq(valid_chain[r]),
                row[0].swap_in.eq(swap_chain[r]),
            ]

        # The mesh: activations and flags to the right, partial sums down.
        for r, row in enumerate(pes):
            for c, pe in enumerate(row):
                if c > 0:
                    left = row[c - 1]
                    m.d.comb += [
                        pe.a_in.eq(left.a_out),
                        pe.valid_in.eq(left.valid_out),
                        pe.swap_in.eq(left.swap_out),
                    ]
                m.d.comb += pe.psum_in.eq(pes[r - 1][c].psum_out if r > 0 else 0)

        # Output de-skew: column c's sum leaves the bottom row dim + c cycles after entry; delay
        # it dim - 1 - c more cycles so a whole row leaves together.
        for c, pe in enumerate(pes[-1]):
            psum = pe.psum_out
            for stage in range(1, dim - c):
                delayed = Signal(signed(self.acc_width), name=f"p_deskew_{c}_{stage}")
                m.d.sync += delayed.eq(psum)
                psum = delayed
            m.d.comb += self.p_data[c].eq(psum)
        m.d.comb += self.p_valid.eq(pes[-1][-1].valid_out)

        # The PEs' zero flags are registered; one more register after the adder tree.
        m.d.sync += self.zero_count.eq(_popcount_tree([pe.zero for row in pes for pe in row]))
        return m
