"""An output-stationary array with the same ports and timing as `SystolicArray`.

Each of the `dim` rows of PEs takes one input row at a time and keeps its `dim` output
sums in place (output-stationary) while the row's `dim` activations are fed to it one per
cycle, each multiplied by the matching row of the weight tile. Input rows are dealt to the
PE rows in turn, so a new row may enter every cycle, as in the weight-stationary array.

Contract: identical to `SystolicArray` (weight-tile loading into a shadow tile, the swap on
the first row that uses it, `p_valid`/`p_data` exactly `2*dim - 1` cycles after a row
entered, rows in order, `zero_count` summing to the GEMM's zero-operand MACs), so the
compiler, the cycle model and the compute unit do not change with the dataflow. The two
tiles are two banks: a swap flips which one new rows use, and writes from the swap's entry
cycle on go to the bank it frees. A row entered in cycle t reads weight row k of its bank
in cycle t + 1 + k, so the last row before a swap entering in cycle s reads row r in
s + r: the contract's safe reuse (row r rewritten no earlier than s + r) holds here too.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data

from verdigris.hw.array import ArrayBase, _popcount_tree
from verdigris.hw.pe import PACK_BITS, multiply, zero_operand

__all__ = ["OutputStationaryArray"]


class OutputStationaryArray(ArrayBase):
    """Output-stationary `dim` x `dim` array (at least 2 x 2) with `ArrayBase`'s ports and
    contract; see the module docstring. Each MAC is counted in ``zero_count`` one cycle
    after it happens."""

    zero_count_delay = 1
    min_dim = 2

    def elaborate(self, _platform):
        m = Module()
        dim = self.dim
        operand, acc = signed(self.operand_width), signed(self.acc_width)
        tiles = [
            [[Signal(operand, name=f"w{b}_{r}_{c}") for c in range(dim)] for r in range(dim)]
            for b in range(2)
        ]
        active = Signal()  # the bank rows without a swap use
        shadow = ~active

        # Weight loading into the shadow bank; in the cycle a swap row enters, into the bank
        # it frees (the contract lets a load follow the swap that closely).
        write_bank = Signal()
        m.d.comb += write_bank.eq(Mux(self.a_valid & self.a_swap, active, shadow))
        for bank in range(2):
            for r in range(dim):
                with m.If(self.w_en & (self.w_row == r) & (write_bank == bank)):
                    m.d.sync += [tiles[bank][r][c].eq(self.w_data[c]) for c in range(dim)]

        # Dealing rows to PE rows in turn.
        slot = Signal(range(dim))
        entering_bank = Signal()
        m.d.comb += entering_bank.eq(Mux(self.a_swap, shadow, active))
        with m.If(self.a_valid):
            m.d.sync += slot.eq(Mux(slot == dim - 1, 0, slot + 1))
            with m.If(self.a_swap):
                m.d.sync += active.eq(shadow)

        finishing = []  # per PE row: (done this cycle, final sums)
        zeros = []
        for r in range(dim):
            row = Signal(data.ArrayLayout(operand, dim), name=f"row_{r}")
            bank = Signal(name=f"bank_{r}")
            pack = Signal(PACK_BITS, name=f"pack_{r}")
            step = Signal(range(dim + 1), init=dim, name=f"step_{r}")  # dim: idle
            m.d.sync += step.eq(Mux(step == dim, dim, step + 1))
            # A row entering in the cycle this PE row finishes its previous one wins.
            with m.If(self.a_valid & (slot == r)):
                m.d.sync += [
                    row.eq(self.a_data),
                    bank.eq(entering_bank),
                    pack.eq(self.a_pack),
                    step.eq(0),
                ]
            busy = step != dim
            activation = Signal(operand, name=f"a_{r}")
            m.d.comb += activation.eq(row[0])
            with m.Switch(step):
                for k in range(dim):
                    with m.Case(k):
                        m.d.comb += activation.eq(row[k])
            sums = [Signal(acc, name=f"sum_{r}_{c}") for c in range(dim)]
            final = [Signal(acc, name=f"final_{r}_{c}") for c in range(dim)]
            for c in range(dim):
                weight = Signal(operand, name=f"weight_{r}_{c}")
                m.d.comb += weight.eq(tiles[0][0][c])
                with m.Switch(step):
                    for k in range(dim):
                        with m.Case(k):
                            m.d.comb += weight.eq(Mux(bank, tiles[1][k][c], tiles[0][k][c]))
                product = multiply(m, activation, weight, pack, self.max_pack)
                m.d.comb += final[c].eq(Mux(step == 0, product, sums[c] + product))
                with m.If(busy):
                    m.d.sync += sums[c].eq(final[c])
                zeros.append(busy & zero_operand(activation, weight, pack, self.max_pack))
            finishing.append((busy & (step == dim - 1), final))

        # One PE row at most finishes per cycle: register its sums, then delay them to the
        # weight-stationary array's latency.
        valid = Signal()
        out = Signal(data.ArrayLayout(acc, dim))
        m.d.sync += valid.eq(0)
        for done, final in finishing:
            with m.If(done):
                m.d.sync += [valid.eq(1), *[out[c].eq(final[c]) for c in range(dim)]]
        # A row entering in cycle t finishes its last MAC in t + dim and is in `out` from
        # t + dim + 1; dim - 2 more stages make 2*dim - 1.
        for stage in range(dim - 2):
            next_valid = Signal(name=f"valid_d{stage}")
            next_out = Signal.like(out, name=f"out_d{stage}")
            m.d.sync += [next_valid.eq(valid), next_out.eq(out)]
            valid, out = next_valid, next_out
        m.d.comb += [self.p_valid.eq(valid), self.p_data.eq(out)]

        count = Signal.like(self.zero_count)
        m.d.sync += count.eq(_popcount_tree(zeros))
        m.d.comb += self.zero_count.eq(count)
        return m
