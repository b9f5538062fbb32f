"""The weight-stationary systolic array with double-buffered (shadow/active) weights, and
`ArrayBase`, the ports and contract every array dataflow shares."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.isa import address_bits
from verdigris.hw.pe import PACK_BITS, ProcessingElement, check_max_pack, check_widths

__all__ = ["ArrayBase", "ArrayPE", "SystolicArray", "array_signature"]


def array_signature(dim: int, operand_width: int, acc_width: int) -> dict:
    """The ports every array dataflow offers (see SystolicArray for the contract)."""
    operands = data.ArrayLayout(signed(operand_width), dim)
    return {
        "w_en": In(1),
        "w_row": In(address_bits(dim)),
        "w_data": In(operands),
        "a_valid": In(1),
        "a_data": In(operands),
        "a_swap": In(1),
        "a_pack": In(PACK_BITS),
        "p_valid": Out(1),
        "p_data": Out(data.ArrayLayout(signed(acc_width), dim)),
        "zero_count": Out((dim * dim).bit_length()),
    }


# The PE the array instantiates: the one PE of hw/pe.py (a module attribute, so that a test
# can put a variant in its place).
ArrayPE = ProcessingElement


def _popcount_tree(bits: list) -> object:
    """Sum of 1-bit values as a balanced adder tree (log2 depth, widths grow one bit a level)."""
    level = list(bits)
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        level = pairs + level[len(pairs) * 2 :]
    return level[0]


class ArrayBase(wiring.Component):
    """What every array dataflow shares: the ports, their contract and the parameter checks.
    A subclass builds the array in `elaborate` and sets ``zero_count_delay`` and, if it needs
    more than one row, ``min_dim``.

    Ports (operands are signed ``operand_width`` bits, results signed ``acc_width`` bits; the
    vector ports are `data.ArrayLayout` views, element ``i`` at bits
    ``[i*width, (i+1)*width)`` of the flat Verilog port):

    - ``w_en`` (1), ``w_row`` (unsigned, ``max(1, ceil(log2(dim)))`` bits), ``w_data``
      (``dim`` operands): weight loading.
    - ``a_valid`` (1), ``a_data`` (``dim`` operands), ``a_swap`` (1), ``a_pack``: the input
      row stream; ``a_pack`` is the row's GEMM `pack` (0 unless ``max_pack`` > 0).
    - ``p_valid`` (1), ``p_data`` (``dim`` results): the output row stream.
    - ``zero_count`` (``(dim*dim).bit_length()`` bits): zero-operand MACs, for the activity
      counters.

    Contract. Cycles are clock periods; "a row entered in cycle s" means ``a_valid`` was high
    in cycle ``s``.

    - **Shadow tile.** When ``w_en`` is high in cycle ``t``, shadow row ``w_row`` takes
      ``w_data`` (element ``c`` is ``W[w_row][c]``). A swap row entering in cycle ``s``
      takes every write to row ``r`` made in a cycle before ``s`` and none made in
      ``s + r`` or later. (In the weight-stationary array element ``c`` is written in
      cycle ``t + c``, travelling along the row as a swap does, and a swap sees it from the
      next cycle.) Shadow rows change only when written; a ``w_row`` of ``dim`` or more
      writes nothing. Weight loading is independent of streaming: both may happen in the
      same cycle.
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
      products exact, the sum wrapped to ``acc_width`` bits; with a pack, each product is
      that of the bytes' packed operands, `verdigris.hw.pe.multiply`). Rows leave in
      entry order, one
      per cycle at full throughput. ``p_data`` is meaningless while ``p_valid`` is low.
    - **Zero count.** ``zero_count`` in cycle ``t`` is the number of MACs of cycle
      ``t - zero_count_delay`` on a valid element whose activation or used weight is 0, so
      over a GEMM the counts sum to its ``zero_macs`` (docs/isa.md). In the
      weight-stationary array (``zero_count_delay`` = 2) PE ``(r, c)`` processes element
      ``r`` of a row entered in cycle ``s`` in cycle ``s + r + c``, so the count for a row
      is complete in cycle ``s + 2*dim`` (one cycle after its ``p_valid``).
    - **Safe reuse of the shadow tile.** Writing shadow row ``r`` in a cycle before
      ``s + r``, where ``s`` is the entry cycle of the last row with ``a_swap``, changes
      weights that rows streamed with that swap's tile still need (in the
      weight-stationary array, the swap has not yet reached PE ``(r, c)``) and corrupts
      their results. The compute unit writes row ``r`` of a load that starts in ISA cycle
      ``L`` in ``L + 2 + r`` and lets a row that starts streaming in ISA cycle ``S`` enter
      in ``S + 2``; docs/isa.md's early weight load never starts a load before the stream
      start of the GEMM before it, so ``L >= S`` and every write is safe, with no cycle to
      spare.

    Attributes ``latency`` (``2*dim - 1``) and ``zero_count_delay`` give the timing above
    to controllers and models.

    Parameters
    ----------
    dim : int
        Side of the square array (rows = columns = K = N of one tile), at least
        ``min_dim``.
    operand_width : int
        Bits of the signed activations and weights (2 to 18).
    acc_width : int
        Bits of the signed results; at least ``2 * operand_width``.
    max_pack : int
        The widest `pack` the array multiplies (`ProcessingElement`'s ``max_pack``).
    """

    zero_count_delay: int  # cycles from a PE's MAC to its contribution in zero_count
    min_dim = 1

    def __init__(self, dim: int, *, operand_width: int = 8, acc_width: int = 32, max_pack: int = 0):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < self.min_dim:
            if self.min_dim == 1:
                raise ValueError(f"dim must be a positive integer, not {dim!r}")
            raise ValueError(f"dim must be an integer of at least {self.min_dim}, not {dim!r}")
        check_widths(operand_width, acc_width)
        self.dim = dim
        self.operand_width = operand_width
        self.acc_width = acc_width
        check_max_pack(max_pack, operand_width)
        self.max_pack = max_pack
        self.latency = 2 * dim - 1
        super().__init__(array_signature(dim, operand_width, acc_width))


class SystolicArray(ArrayBase):
    """A ``dim`` x ``dim`` weight-stationary systolic array of `ProcessingElement` (hw/pe.py)
    with double-buffered weights: a new tile loads into a shadow tile while the active tile
    computes. The ports and their contract are `ArrayBase`'s; here every PE ``(r, c)``
    holds weight ``W[r][c]``, activations flow right and partial sums down, with skew and
    de-skew registers at the edges. Weight writes are skewed by column like the
    activations (``dim * (dim - 1) / 2`` operand registers), so that a tile may be
    rewritten right behind the swap and weight tiles can follow each other every ``dim``
    cycles.

    On ECP5 each product (``operand_width`` up to 18) maps onto one MULT18X18D.
    """

    zero_count_delay = 2

    def elaborate(self, _platform):
        m = Module()
        dim = self.dim
        pes = [
            [
                ArrayPE(
                    operand_width=self.operand_width,
                    acc_width=self.acc_width,
                    max_pack=self.max_pack,
                )
                for _ in range(dim)
            ]
            for _ in range(dim)
        ]
        for r, row in enumerate(pes):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe

        # Weight loading: a write reaches column c's shadow weights c cycles later, as the
        # swap does, so a row may be rewritten as soon as the swap has entered it.
        w_en, w_row = self.w_en, self.w_row
        for c in range(dim):
            w_in = self.w_data[c]
            if c > 0:
                next_en = Signal(name=f"w_en_skew_{c}")
                next_row = Signal.like(w_row, name=f"w_row_skew_{c}")
                m.d.sync += [next_en.eq(w_en), next_row.eq(w_row)]
                w_en, w_row = next_en, next_row
                for stage in range(1, c + 1):
                    delayed = Signal(signed(self.operand_width), name=f"w_skew_{c}_{stage}")
                    m.d.sync += delayed.eq(w_in)
                    w_in = delayed
            for r in range(dim):
                m.d.comb += [pes[r][c].w_in.eq(w_in), pes[r][c].w_load.eq(w_en & (w_row == r))]

        # Input skew: array row r sees a row's element r cycles after the row entered. The
        # flags are the same for every row, so one chain of dim - 1 stages serves all rows.
        valid_chain, swap_chain = [self.a_valid], [self.a_valid & self.a_swap]
        pack_chain = [self.a_pack]
        for stage in range(1, dim):
            valid, swap = Signal(name=f"valid_skew_{stage}"), Signal(name=f"swap_skew_{stage}")
            pack = Signal(PACK_BITS, name=f"pack_skew_{stage}")
            m.d.sync += [valid.eq(valid_chain[-1]), swap.eq(swap_chain[-1])]
            m.d.sync += pack.eq(pack_chain[-1])
            valid_chain.append(valid)
            swap_chain.append(swap)
            pack_chain.append(pack)
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
                row[0].pack_in.eq(pack_chain[r]),
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
                        pe.pack_in.eq(left.pack_out),
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
